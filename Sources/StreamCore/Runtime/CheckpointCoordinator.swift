import CoreMetrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A checkpoint could not be taken or the job could not be restored: the message says why.
public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// Flink's checkpoint coordinator, for one run: numbers checkpoints, tells source tasks to inject
/// barrier N (they poll `triggered`), collects every task's acknowledgement with its state, hands
/// the completed checkpoint to the store, and only then publishes `completed` so tasks notify their
/// sinks. One checkpoint at a time. Finished tasks acknowledge from their slot with their final
/// state; when every task has finished, a final checkpoint commits what the sinks wrote last.
final class CheckpointCoordinator: @unchecked Sendable {
    /// Unchecked: the acknowledged states' encoders hold copies the tasks handed over and no
    /// longer touch; only the thread that stores the checkpoint runs them.
    struct Pending: @unchecked Sendable {
        let id: CheckpointId
        let isSavepoint: Bool
        let startNanos: UInt64
        var acks: [Int: [PendingSubtaskState]] = [:]
        var maxPauseNanos: UInt64 = 0
    }

    let config: CheckpointConfig
    let jobName: String
    let maxParallelism: Int
    let taskCount: Int
    let clock: any ProcessingTimeClock
    /// Latest checkpoint whose barriers sources must inject.
    let triggered = Atomic<Int64>(0)
    /// Latest checkpoint the store holds.
    let completed = Atomic<Int64>(0)
    /// Set when the final checkpoint (after every task finished) has completed.
    let finalCompleted = Atomic<Bool>(false)
    private let lock = ConditionLock()
    private var nextId: CheckpointId
    private var pending: Pending?
    private var finished = Set<Int>()
    private var finalId: CheckpointId?
    private var failure: (any Error)?
    private var stopped = false
    private var storeThreads: [NativeThread] = []
    /// Task → the latest completion it passed on.
    private var notified: [Int: CheckpointId] = [:]
    /// Figures of completed checkpoints, for reports.
    private var statsList: [CheckpointStats] = []
    var stats: [CheckpointStats] { lock.withLock { statsList } }
    var wake: () -> Void = {}
    var fail: (any Error) -> Void = { _ in }
    /// Through swift-metrics (nothing without a bootstrapped backend; Telemetry serves them).
    private let metrics = CheckpointMetrics()

    init(config: CheckpointConfig, jobName: String, maxParallelism: Int, taskCount: Int,
         clock: any ProcessingTimeClock, firstId: CheckpointId) {
        self.config = config
        self.jobName = jobName
        self.maxParallelism = maxParallelism
        self.taskCount = taskCount
        self.clock = clock
        self.nextId = firstId
    }

    /// Starts checkpoint `nextId` unless one is in progress; returns its id.
    @discardableResult
    func trigger(savepoint: Bool = false) -> CheckpointId? {
        let id: CheckpointId? = lock.withLock {
            guard pending == nil, !stopped, finalId == nil else { return nil }
            let id = nextId
            nextId += 1
            pending = Pending(id: id, isSavepoint: savepoint, startNanos: monotonicNanos())
            return id
        }
        guard let id else { return nil }
        triggered.store(id, ordering: .releasing)
        wake()
        return id
    }

    /// Task `task` (a chain head and subtask) has taken its snapshot for `id`.
    func acknowledge(_ id: CheckpointId, task: Int, states: [PendingSubtaskState], pauseNanos: UInt64 = 0) {
        var complete: Pending?
        lock.withLock {
            guard var p = pending, p.id == id, p.acks[task] == nil else { return }
            p.acks[task] = states
            p.maxPauseNanos = max(p.maxPauseNanos, pauseNanos)
            pending = p
            // Complete: it stays `pending` until stored, so the next checkpoint cannot start (and
            // complete) before this one is durable — completions are published in order.
            if p.acks.count == taskCount { complete = p }
        }
        // Storing (files, fsync) happens off the task threads: the last task to acknowledge goes
        // straight back to its records.
        if let p = complete {
            let thread = NativeThread(name: "checkpoint-\(p.id)") { [self] in self.finish(p) }
            lock.withLock { storeThreads.append(thread) }
        }
    }

    private func finish(_ p: Pending) {
        let checkpoint: CompletedCheckpoint
        do {
            // Encode what the tasks copied (here, not on their threads), then store.
            let operators = try p.acks.keys.sorted().flatMap { try p.acks[$0]!.map { try $0.materialize() } }
            checkpoint = CompletedCheckpoint(
                id: p.id, jobName: jobName, maxParallelism: maxParallelism, timestampMillis: clock.currentTimeMillis(),
                isSavepoint: p.isSavepoint, operators: operators)
            try config.store.store(checkpoint)
            lock.withLock { pending = nil }
        } catch {
            lock.withLock { failure = error; pending = nil; lock.signal() }
            metrics.failures.increment()
            fail(CheckpointError("checkpoint \(p.id) could not be stored: \(error)"))
            return
        }
        let keyedBytes = checkpoint.operators.reduce(0) { total, op in
            total + op.keyedState.reduce(0) { $0 + $1.entries.count + $1.timers.count }
        }
        let bytes = checkpoint.operators.reduce(keyedBytes) { total, op in
            total + (op.operatorState?.count ?? 0) + (op.sourceSplits ?? []).reduce(0) { $0 + $1.count }
        }
        let stats = CheckpointStats(id: p.id, durationNanos: monotonicNanos() &- p.startNanos,
                                    maxTaskPauseNanos: p.maxPauseNanos, stateBytes: bytes)
        metrics.completed(stats, keyedStateBytes: keyedBytes)
        let isFinal = lock.withLock { () -> Bool in
            statsList.append(stats)
            return p.id == finalId
        }
        completed.store(p.id, ordering: .releasing)
        if isFinal { finalCompleted.store(true, ordering: .releasing) }
        lock.withLock { lock.signal() }
        wake()
        // Every task finished while this one ran: now the final checkpoint.
        triggerFinalIfDue()
    }

    /// Task `task` has finished (its input ended and its output drained).
    func taskFinished(_ task: Int) {
        lock.withLock { _ = finished.insert(task) }
        triggerFinalIfDue()
    }

    private func triggerFinalIfDue() {
        let id: CheckpointId? = lock.withLock {
            guard finished.count == taskCount, finalId == nil, pending == nil, !stopped else { return nil }
            let id = nextId
            nextId += 1
            finalId = id
            pending = Pending(id: id, isSavepoint: false, startNanos: monotonicNanos())
            return id
        }
        guard let id else { return }
        triggered.store(id, ordering: .releasing)
        wake()
    }

    /// Blocks until checkpoint `id` completed (true) or the run stopped or failed (false).
    func waitFor(_ id: CheckpointId) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while completed.load(ordering: .acquiring) < id {
            if stopped || failure != nil { return false }
            lock.wait(timeoutMillis: 50)
        }
        return true
    }

    /// Task `task` passed completion `id` on to its operators (its sinks committed).
    func taskNotified(_ id: CheckpointId, task: Int) {
        lock.withLock {
            notified[task] = max(notified[task] ?? 0, id)
            lock.signal()
        }
    }

    /// Blocks until every task passed completion `id` (or a later one) on; false if the run stopped.
    func waitUntilNotified(_ id: CheckpointId) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while notified.values.filter({ $0 >= id }).count < taskCount {
            if stopped || failure != nil { return false }
            lock.wait(timeoutMillis: 20)
        }
        return true
    }

    /// The run ended: no more checkpoints.
    func stop() {
        lock.withLock { stopped = true; lock.signal() }
    }

    /// Waits for checkpoints being stored (call after `stop`, when the tasks have ended).
    func joinStoreThreads() {
        let threads = lock.withLock { storeThreads }
        for t in threads { t.join() }
    }

    var isStopped: Bool { lock.withLock { stopped } }
}

/// Figures of one completed checkpoint.
public struct CheckpointStats: Sendable, Equatable {
    public let id: CheckpointId
    /// From trigger until the store had it.
    public let durationNanos: UInt64
    /// The longest time one task spent taking its snapshot (its processing paused meanwhile).
    public let maxTaskPauseNanos: UInt64
    /// Encoded state, before compression.
    public let stateBytes: Int
}

/// The checkpoint series (Prometheus names; the job label comes from the exporter).
struct CheckpointMetrics {
    let duration = CoreMetrics.Timer(label: "tributary_checkpoint_duration_seconds")
    let completedCount = CoreMetrics.Counter(label: "tributary_checkpoints_completed_total")
    let failures = CoreMetrics.Counter(label: "tributary_checkpoint_failures_total")
    let lastId = Gauge(label: "tributary_last_checkpoint_id")
    let lastTimestamp = Gauge(label: "tributary_last_checkpoint_timestamp_seconds")
    let size = Gauge(label: "tributary_checkpoint_size_bytes")
    let maxPause = Gauge(label: "tributary_last_checkpoint_max_pause_seconds")
    let stateSize = Gauge(label: "tributary_state_size_bytes")

    func completed(_ s: CheckpointStats, keyedStateBytes: Int) {
        duration.recordNanoseconds(Int64(clamping: s.durationNanos))
        completedCount.increment()
        lastId.record(s.id)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        lastTimestamp.record(Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
        size.record(s.stateBytes)
        maxPause.record(Double(s.maxTaskPauseNanos) / 1e9)
        stateSize.record(keyedStateBytes)
    }
}
