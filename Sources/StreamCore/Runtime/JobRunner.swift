import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Configuration of a run, captured when the job starts.
struct RunConfig {
    let maxParallelism: Int
    let autoWatermarkIntervalMillis: Int64
    let clock: any ProcessingTimeClock
    let batchSize: Int
    let channelCapacity: Int
    let chainingEnabled: Bool
    let sourceChunkSize: Int
    let bufferTimeoutNanos: UInt64
    let checkpoint: CheckpointConfig?
    let restore: CompletedCheckpoint?
    let stateBackend: StateBackendKind
}

/// Turns the logical graph into chains of operators, one task per chain and subtask, and runs the
/// tasks in slots as Flink shares slots: slot `i` runs subtask `i` of every chain on one thread,
/// so a job with parallelism N uses N threads. Tasks in a slot take turns (a task yields when its
/// input is empty or its output is held back by a full channel); a slot parks when none can make
/// progress and is woken by arriving batches, freed channels, due timers or cancellation. Nothing
/// blocks, so nothing can deadlock: in the DAG some task can always move. The first failure cancels
/// the job.
final class JobRun: @unchecked Sendable {
    let jobName: String
    let nodes: [StreamNode]
    let config: RunConfig
    /// Node → the upstream node it is chained to (same task).
    private(set) var chainedTo: [Int: Int] = [:]
    /// Node → (consumer node, index of the edge in the consumer's inputs).
    private(set) var consumers: [Int: [(node: Int, edge: Int)]] = [:]
    /// Chain head → subtask → input index → gate.
    private var gates: [Int: [[Int: AnyInputGate]]] = [:]
    /// (consumer, edge index) → first channel of that edge in the consumer's gate.
    private var channelOffsets: [Int: [Int: Int]] = [:]
    /// One parker per slot (= subtask index).
    private var parkers: [Parker] = []
    private var splitsBySource: [Int: [Any]] = [:]

    private let cancelled = Atomic<Bool>(false)
    /// Guards `failure` and `summaries`, which every task thread writes once.
    private let stateLock = ConditionLock()
    private var failure: (any Error)?
    private var summaries: [(node: Int, subtask: Int, metrics: OperatorMetrics, leftover: Leftover)] = []
    private var threads: [NativeThread] = []
    private var slotCPUNanos: [UInt64] = []
    /// Per slot: where its thread spends its time, and its operators once they are open (for
    /// `RunningJobs` readings; guarded by `stateLock`).
    private var slotTimes: [SlotTimes] = []
    private var openedMetrics: [[(node: Int, metrics: OperatorMetrics)]] = []
    private var startNanos: UInt64 = 0
    private var endNanos: UInt64 = 0
    /// Set when checkpointing is on.
    private(set) var coordinator: CheckpointCoordinator?
    /// (chain head, subtask) → task number, for acknowledgements.
    private var taskIds: [Int: [Int]] = [:]
    private var triggerThread: NativeThread?
    private let triggerParker = Parker()

    init(jobName: String, nodes: [StreamNode], config: RunConfig) throws {
        self.jobName = jobName
        self.nodes = nodes
        self.config = config
        try validate()
        plan()
    }

    // MARK: planning

    private func validate() throws {
        guard !nodes.isEmpty else { throw JobConfigurationError("the job has no operators: add a source and a sink") }
        for n in nodes where n.parallelism < 1 || n.parallelism > config.maxParallelism {
            throw JobConfigurationError("operator '\(n.name)' has parallelism \(n.parallelism); it must be between 1 and the max parallelism \(config.maxParallelism)")
        }
    }

    private func isChainable(_ n: StreamNode) -> Bool {
        guard config.chainingEnabled, !n.startsNewChain, n.inputs.count == 1, case .oneInput = n.kind else { return false }
        let e = n.inputs[0]
        let up = nodes[e.source]
        guard up.parallelism == n.parallelism else { return false }
        // A forward edge is a direct call; with one producer and one consumer any exchange is one.
        return e.isForward || n.parallelism == 1
    }

    private func isPointwise(_ e: StreamEdge, consumer: StreamNode) -> Bool {
        e.isForward && nodes[e.source].parallelism == consumer.parallelism
    }

    private func plan() {
        let slots = nodes.map(\.parallelism).max() ?? 1
        parkers = (0..<slots).map { _ in Parker() }
        for n in nodes {
            for (i, e) in n.inputs.enumerated() { consumers[e.source, default: []].append((n.id, i)) }
            if isChainable(n) { chainedTo[n.id] = n.inputs[0].source }
        }
        for n in nodes where chainedTo[n.id] == nil && !n.isSource {
            var offsets: [Int: Int] = [:]
            var channelsPerInput: [Int: Int] = [:]
            for (i, e) in n.inputs.enumerated() {
                offsets[i] = channelsPerInput[e.inputIndex, default: 0]
                channelsPerInput[e.inputIndex, default: 0] += isPointwise(e, consumer: n) ? 1 : nodes[e.source].parallelism
            }
            channelOffsets[n.id] = offsets
            var perSubtask: [[Int: AnyInputGate]] = []
            for s in 0..<n.parallelism {
                var byInput: [Int: AnyInputGate] = [:]
                for (inputIndex, channels) in channelsPerInput.sorted(by: { $0.key < $1.key }) {
                    let ops = n.inputs.first { $0.inputIndex == inputIndex }!.ops
                    let gate = ops.makeGate(parkers[s], channels, inputIndex, config.channelCapacity, config.batchSize, n.name, s)
                    // Channel → the slot of its producer, to wake it when the channel has room.
                    for (i, e) in n.inputs.enumerated() where e.inputIndex == inputIndex {
                        let first = offsets[i]!
                        if isPointwise(e, consumer: n) {
                            gate.producers[first] = parkers[s]
                        } else {
                            for j in 0..<nodes[e.source].parallelism { gate.producers[first + j] = parkers[j] }
                        }
                    }
                    byInput[inputIndex] = gate
                }
                perSubtask.append(byInput)
            }
            gates[n.id] = perSubtask
        }
    }

    /// Chain heads in graph order.
    var heads: [StreamNode] { nodes.filter { chainedTo[$0.id] == nil } }

    // MARK: running

    /// The operator's identity in checkpoints: stable for the same job code.
    func operatorId(_ n: StreamNode) -> String { "\(n.id)-\(n.name)" }

    func start() throws {
        try validateRestore()
        for n in nodes {
            if case .source(_, let enumerate, let decode) = n.kind {
                if let restore = config.restore {
                    // Resume the splits the checkpoint recorded, not a fresh enumeration.
                    let states = restore.operators.filter { $0.operatorId == operatorId(n) }.sorted { $0.subtask < $1.subtask }
                    splitsBySource[n.id] = try decode(states.flatMap { $0.sourceSplits ?? [] })
                } else {
                    splitsBySource[n.id] = try enumerate(n.parallelism)
                }
            }
        }
        var nextTask = 0
        for head in heads {
            taskIds[head.id] = (0..<head.parallelism).map { _ in defer { nextTask += 1 }; return nextTask }
        }
        if let cp = config.checkpoint {
            let c = CheckpointCoordinator(config: cp, jobName: jobName, maxParallelism: config.maxParallelism,
                                          taskCount: nextTask, clock: config.clock,
                                          firstId: try cp.store.firstCheckpointId(restoring: config.restore?.id))
            c.wake = { [parkers] in for p in parkers { p.unpark() } }
            c.fail = { [weak self] error in self?.fail(error) }
            coordinator = c
            if let interval = cp.interval {
                let millis = max(1, Timestamps.milliseconds(interval))
                let parker = triggerParker
                triggerThread = NativeThread(name: "checkpoint-trigger") { [weak self] in
                    while let self, !c.isStopped, !self.cancelled.load(ordering: .relaxed) {
                        parker.park(timeoutMillis: millis)
                        if c.isStopped || self.cancelled.load(ordering: .relaxed) { break }
                        c.trigger()
                    }
                }
            }
        }
        startNanos = monotonicNanos()
        slotCPUNanos = Array(repeating: 0, count: parkers.count)
        slotTimes = parkers.map { _ in SlotTimes() }
        openedMetrics = Array(repeating: [], count: parkers.count)
        RunningJobs.register(self)
        for slot in parkers.indices {
            let tasks = heads.filter { slot < $0.parallelism }
            let thread = NativeThread(name: "slot-\(slot)") { [self] in self.runSlot(slot, heads: tasks) }
            threads.append(thread)
        }
    }

    func cancel() {
        cancelled.store(true, ordering: .releasing)
        coordinator?.stop()
        triggerParker.unpark()
        for p in parkers { p.unpark() }
    }

    /// The checkpoint to restore must fit this job: same max parallelism, and every operator with
    /// state still in the job.
    private func validateRestore() throws {
        guard let restore = config.restore else { return }
        guard restore.maxParallelism == config.maxParallelism else {
            throw CheckpointError("checkpoint \(restore.id) was taken with max parallelism \(restore.maxParallelism) but the job has \(config.maxParallelism): key groups would not match; set env.maxParallelism = \(restore.maxParallelism)")
        }
        let known = Set(nodes.map(operatorId))
        let unknown = Set(restore.operators.filter { s in
            !s.keyedState.isEmpty || s.operatorState != nil || !(s.sourceSplits ?? []).isEmpty || s.rocksDB != nil
        }.map(\.operatorId)).subtracting(known)
        guard unknown.isEmpty else {
            throw CheckpointError("checkpoint \(restore.id) holds state of operators this job does not have: \(unknown.sorted().joined(separator: ", ")); the job graph changed (operators are identified by position and name)")
        }
    }

    /// What subtask `subtask` of `n` takes over from the checkpoint: the key groups it owns from
    /// every old subtask, and the operator state of old subtasks `i` with `i % parallelism == subtask`.
    private func restoredState(_ n: StreamNode, subtask: Int) -> RestoredState? {
        guard let restore = config.restore else { return nil }
        let states = restore.operators.filter { $0.operatorId == operatorId(n) }.sorted { $0.subtask < $1.subtask }
        var r = RestoredState(checkpointId: restore.id)
        if let range = KeyGroupRangeAssignment.keyGroupRange(maxParallelism: config.maxParallelism,
                                                             parallelism: n.parallelism, operatorIndex: subtask) {
            r.keyGroups = states.flatMap { $0.keyedState.filter { range.contains($0.keyGroup) } }
            r.rocksDB = states.compactMap(\.rocksDB).filter { $0.keyGroups.overlaps(range) }
        }
        r.operatorStates = states.filter { $0.subtask % n.parallelism == subtask }.compactMap(\.operatorState)
        return r
    }

    private func fail(_ error: any Error) {
        let first = stateLock.withLock { () -> Bool in
            if failure == nil || (failure is TaskCancelled && !(error is TaskCancelled)) {
                let wasNil = failure == nil
                failure = error
                return wasNil
            }
            return false
        }
        if first { cancel() }
    }

    /// Waits for the job's threads; safe to call from several threads and more than once.
    func join() throws -> JobExecutionResult {
        try joinLock.withLock {
            if let outcome = joined { return try outcome.get() }
            for t in threads { t.join() }
            RunningJobs.unregister(self)
            coordinator?.stop()
            triggerParker.unpark()
            triggerThread?.join()
            coordinator?.joinStoreThreads()
            endNanos = monotonicNanos()
            let (failure, summaries) = stateLock.withLock { (self.failure, self.summaries) }
            let outcome: Result<JobExecutionResult, any Error>
            if let failure {
                outcome = .failure(failure is TaskCancelled ? JobCancelledError() : failure)
            } else {
                outcome = .success(result(summaries))
            }
            joined = outcome
            return try outcome.get()
        }
    }
    private let joinLock = ConditionLock()

    /// The job's counters and slot times now (see `RunningJobs`).
    func reading() -> JobMetricsReading {
        let (opened, times) = stateLock.withLock { (openedMetrics, slotTimes) }
        return JobMetricsReading(jobName: jobName, operators: opened.flatMap { $0.map { $0.metrics.reading(node: $0.node) } },
                                 slots: times.indices.map { times[$0].reading(subtask: $0) })
    }
    private var joined: Result<JobExecutionResult, any Error>?

    private func result(_ summaries: [(node: Int, subtask: Int, metrics: OperatorMetrics, leftover: Leftover)]) -> JobExecutionResult {
        var ops = nodes.map { n in
            OperatorSummary(id: n.id, name: n.name, parallelism: n.parallelism,
                            recordsInPerSubtask: Array(repeating: 0, count: n.parallelism))
        }
        for s in summaries {
            ops[s.node].numRecordsIn += s.metrics.numRecordsIn
            ops[s.node].numRecordsOut += s.metrics.numRecordsOut
            ops[s.node].recordsInPerSubtask[s.subtask] = s.metrics.numRecordsIn
            for (k, c) in s.metrics.counters { ops[s.node].counters[k, default: 0] += c.value }
            for (k, v) in s.leftover.stateEntries { ops[s.node].leftover.stateEntries[k, default: 0] += v }
            ops[s.node].leftover.eventTimeTimers += s.leftover.eventTimeTimers
            ops[s.node].leftover.processingTimeTimers += s.leftover.processingTimeTimers
        }
        let exchanges = gates.keys.sorted().flatMap { id in
            gates[id]!.flatMap { byInput in byInput.keys.sorted().map { byInput[$0]!.stats } }
        }
        return JobExecutionResult(jobName: jobName, netRuntimeMillis: Int64((endNanos - startNanos) / 1_000_000),
                                  operators: ops, exchanges: exchanges, slotCPUNanos: slotCPUNanos)
    }

    // MARK: slots and tasks

    /// One chain of one subtask, run a step at a time by its slot.
    private final class TaskRunner {
        enum Phase { case running, draining, finished }

        let processingTime: ProcessingTimeService
        let backpressure = OutputBackpressure()
        /// Number of this task in acknowledgements; -1 without checkpointing.
        var taskId = -1
        var coordinator: CheckpointCoordinator?
        var operatorId: (StreamNode) -> String = { _ in "" }
        /// Last barrier this task took a snapshot for, and last completion it passed on.
        var lastBarrier: CheckpointId = 0
        var lastNotified: CheckpointId = 0
        /// The barrier being aligned and how many channels delivered it.
        var aligning: CheckpointId = 0
        var arrived = 0
        var writers: [PartitionWriter] = []
        /// Post-order: consumers before producers; the head last.
        var instances: [(node: StreamNode, instance: OperatorInstance)] = []
        var source: (node: StreamNode, run: SourceInstance, metrics: OperatorMetrics)?
        var gates: [AnyInputGate] = []
        var phase = Phase.running
        /// Whether the last step found nothing to do while the source waits for data.
        var idleSource = false

        init(processingTime: ProcessingTimeService) {
            self.processingTime = processingTime
        }

        /// Ships held-back output first; takes input only when nothing is held back.
        func step() throws -> Bool {
            var progress = false
            if backpressure.blocked {
                for w in writers where w.hasPending { if try w.ship(partial: false) { progress = true } }
                if writers.contains(where: \.hasPending) { return progress }
                backpressure.blocked = false
            }
            switch phase {
            case .finished:
                return progress
            case .draining:
                if try ship(partial: true) { progress = true }
                if writers.allSatisfy(\.isDrained) {
                    phase = .finished
                    progress = true
                }
                return progress
            case .running:
                if let c = coordinator {
                    try notifyIfCompleted(c)
                    if source != nil {
                        let t = c.triggered.load(ordering: .acquiring)
                        if t > lastBarrier { try checkpoint(t); progress = true }
                    }
                }
                let clock = processingTime.clock
                if let due = processingTime.nextDueTime, clock.currentTimeMillis() >= due {
                    try processingTime.fireDue(now: clock.currentTimeMillis())
                    progress = true
                }
                if let src = source {
                    let advanced = try src.run.step()
                    idleSource = !advanced
                    if advanced { progress = true }
                    if src.run.isEnded() { try endOfInput(headIsOperator: false); progress = true }
                } else {
                    var rounds = 0
                    while rounds < 8, !backpressure.blocked {
                        var processed = 0
                        for g in gates { processed += try g.processAvailable(maxBatches: 2) }
                        if processed == 0 { break }
                        progress = true
                        rounds += 1
                    }
                    if gates.allSatisfy(\.isFinished) { try endOfInput(headIsOperator: true); progress = true }
                }
                return progress
            }
        }

        /// Ends the input of every chained operator after the head, head first, then finishes each;
        /// then appends end-of-partition to every exchange.
        func endOfInput(headIsOperator: Bool) throws {
            for (i, entry) in instances.reversed().enumerated() {
                let isHead = headIsOperator && i == 0
                if !isHead { try entry.instance.endInput(1) }
                try entry.instance.finish()
            }
            for w in writers { try w.endPartition() }
            phase = .draining
        }

        /// Takes this task's snapshot for checkpoint `id`: source positions, every chained operator's
        /// state (sinks pre-commit here), then sends barrier `id` downstream and acknowledges.
        func checkpoint(_ id: CheckpointId) throws {
            guard let c = coordinator, id > lastBarrier else { return }
            lastBarrier = id
            let start = monotonicNanos()
            var states: [PendingSubtaskState] = []
            if let src = source {
                var st = OperatorSubtaskState(operatorId: operatorId(src.node), subtask: src.metrics.subtaskIndex,
                                              parallelism: src.node.parallelism)
                st.sourceSplits = try src.run.snapshotSplits(id)
                states.append(PendingSubtaskState(state: st, encodeKeyed: nil))
            }
            for (node, inst) in instances.reversed() { states.append(try inst.snapshot(id, operatorId: operatorId(node))) }
            if phase == .running { for w in writers { try w.emitBarrier(id) } }
            c.acknowledge(id, task: taskId, states: states, pauseNanos: monotonicNanos() &- start)
        }

        /// Passes a completed checkpoint on to the chain's operators (sinks commit).
        func notifyIfCompleted(_ c: CheckpointCoordinator) throws {
            let done = c.completed.load(ordering: .acquiring)
            guard done > lastNotified else { return }
            lastNotified = done
            for (_, inst) in instances.reversed() { try inst.checkpointComplete(done) }
            if let src = source { try src.run.notifyCheckpointComplete(done) }
            c.taskNotified(done, task: taskId)
        }

        /// Barrier `id` arrived on a channel of one of this task's gates (which blocked it).
        func barrierArrived(_ id: CheckpointId) throws {
            if id <= lastBarrier {
                for g in gates { g.unblockAll() }   // stale: nothing to align
                return
            }
            if id > aligning { aligning = id; arrived = 0 }
            arrived += 1
            try checkAligned()
        }

        /// Alignment ends when every channel that has not ended delivered the barrier.
        func checkAligned() throws {
            guard aligning > lastBarrier else { return }
            let open = gates.reduce(0) { $0 + $1.channelCount - $1.endedChannels }
            guard arrived >= open else { return }
            for g in gates { g.unblockAll() }
            try checkpoint(aligning)
        }

        /// Sends partly filled batches as far as channels have room (latency when idle); sinks
        /// flush what they buffer — waiting for it when the task is `idle`, not when it is busy
        /// (a buffer timeout passed while records keep coming).
        func ship(partial: Bool, idle: Bool = true) throws -> Bool {
            var shipped = false
            for w in writers { if try w.ship(partial: partial) { shipped = true } }
            if partial {
                for (_, instance) in instances {
                    if let f = idle ? instance.flushIdle : instance.flushBusy {
                        do { try f() } catch { throw wrapFailure(error, instance.metrics, key: nil) }
                    }
                }
            }
            return shipped
        }
    }

    private func runSlot(_ slot: Int, heads: [StreamNode]) {
        let parker = parkers[slot]
        let clock = config.clock
        var tasks: [TaskRunner] = []
        do {
            for head in heads {
                let task = TaskRunner(processingTime: ProcessingTimeService(clock: clock))
                tasks.append(task)
                if let c = coordinator {
                    task.coordinator = c
                    task.taskId = taskIds[head.id]![slot]
                    task.operatorId = { [unowned self] in self.operatorId($0) }
                }
                try instantiate(head, subtask: slot, task: task)
                if let byInput = gates[head.id]?[slot] { task.gates = byInput.keys.sorted().map { byInput[$0]! } }
                if task.coordinator != nil {
                    for g in task.gates {
                        g.onBarrier = { [unowned task] id, _ in try task.barrierArrived(id) }
                        g.onChannelEnded = { [unowned task] in try task.checkAligned() }
                    }
                }
            }
            for task in tasks { for (_, inst) in task.instances { try inst.open() } }
            let opened = tasks.flatMap { t in
                t.instances.map { ($0.node.id, $0.instance.metrics) } + (t.source.map { [($0.node.id, $0.metrics)] } ?? [])
            }
            stateLock.withLock { openedMetrics[slot] = opened }
            let times = slotTimes[slot]
            times.startNanos.store(monotonicNanos(), ordering: .relaxed)
            var lastShipped = monotonicNanos()
            while true {
                if cancelled.load(ordering: .relaxed) { throw TaskCancelled() }
                // A busy slot still ships partial batches every buffer timeout.
                let nanos = monotonicNanos()
                if nanos &- lastShipped >= config.bufferTimeoutNanos {
                    for task in tasks { _ = try task.ship(partial: true, idle: false) }
                    lastShipped = nanos
                }
                var progress = false
                var allFinished = true
                for task in tasks where task.phase != .finished {
                    if try task.step() { progress = true }
                    if task.phase != .finished {
                        allFinished = false
                    } else if let c = task.coordinator {
                        c.taskFinished(task.taskId)
                    }
                }
                if let c = coordinator {
                    // Finished tasks still take part: they acknowledge with their final state and
                    // pass completions on, until the final checkpoint has completed.
                    let t = c.triggered.load(ordering: .acquiring)
                    for task in tasks where task.phase == .finished {
                        if t > task.lastBarrier { try task.checkpoint(t); progress = true }
                        try task.notifyIfCompleted(c)
                    }
                    if allFinished, c.finalCompleted.load(ordering: .acquiring) {
                        for task in tasks { try task.notifyIfCompleted(c) }
                        break
                    }
                } else if allFinished {
                    break
                }
                if progress { continue }
                var shipped = false
                for task in tasks { if try task.ship(partial: true) { shipped = true } }
                if shipped { continue }
                // Nothing to do: park until woken, a timer is due, or an idle source should be polled.
                let now = clock.currentTimeMillis()
                var timeout: Int64 = 50
                for task in tasks where task.phase == .running {
                    if let due = task.processingTime.nextDueTime { timeout = min(timeout, due - now) }
                    if task.source != nil, task.idleSource { timeout = min(timeout, 1) }
                }
                if clock.isManual { timeout = min(timeout, 5) }
                let parked = monotonicNanos()
                parker.park(timeoutMillis: max(1, timeout))
                // Parked with output held back by a full channel: back-pressured; else idle.
                let waited = monotonicNanos() &- parked
                if tasks.contains(where: { $0.backpressure.blocked }) {
                    times.backPressuredNanos.add(waited, ordering: .relaxed)
                } else {
                    times.idleNanos.add(waited, ordering: .relaxed)
                }
            }
        } catch {
            fail(error)
        }
        for task in tasks {
            for (_, inst) in task.instances { inst.close() }
            task.source?.run.close()
        }
        let cpu = threadCPUNanos()
        slotTimes[slot].endNanos.store(monotonicNanos(), ordering: .relaxed)
        stateLock.withLock {
            slotCPUNanos[slot] = cpu
            for task in tasks {
                for (node, inst) in task.instances {
                    summaries.append((node.id, slot, inst.metrics, inst.leftover))
                }
                if let src = task.source { summaries.append((src.node.id, slot, src.metrics, Leftover())) }
            }
        }
    }

    /// Builds node `n` of this task and, recursively, the operators chained after it.
    private func instantiate(_ n: StreamNode, subtask: Int, task: TaskRunner) throws {
        var main: [AnyOutput] = []
        var side: [String: [AnyOutput]] = [:]
        var sideOps: [String: TypeOps] = [:]
        /// Metrics of the chained consumers fed by the main output.
        var chainedMainMetrics: [OperatorMetrics] = []
        for (consumerId, edgeIndex) in consumers[n.id] ?? [] {
            let consumer = nodes[consumerId]
            let edge = consumer.inputs[edgeIndex]
            let target: AnyOutput
            if chainedTo[consumerId] == n.id {
                try instantiate(consumer, subtask: subtask, task: task)
                let instance = task.instances.last { $0.node.id == consumerId }!.instance
                target = instance.inputs[edge.inputIndex - 1]
                if edge.sideTag == nil { chainedMainMetrics.append(instance.metrics) }
            } else {
                let consumerGates = gates[consumerId]!.map { $0[edge.inputIndex]! }
                let pointwise = isPointwise(edge, consumer: consumer)
                let targets = pointwise ? [consumerGates[subtask]] : consumerGates
                let channel = channelOffsets[consumerId]![edgeIndex]! + (pointwise ? 0 : subtask)
                let (out, writer) = edge.ops.makeWriter(edge.partitioner, targets, channel, config.batchSize,
                                                        config.maxParallelism, subtask, task.backpressure)
                task.writers.append(writer)
                target = out
            }
            if let tag = edge.sideTag {
                side[tag, default: []].append(target)
                sideOps[tag] = edge.ops
            } else {
                main.append(target)
            }
        }
        var sideOutputs: [String: AnyOutput] = [:]
        for (tag, targets) in side { sideOutputs[tag] = sideOps[tag]!.makeOutput(targets, [:], nil) }
        let metrics = OperatorMetrics(operatorName: n.name, subtaskIndex: subtask, parallelism: n.parallelism)
        // One chained consumer counts every record it gets (`OperatorInstance` inputs do), so it
        // counts this operator's records out too and the output needs no counting closure.
        let countedBy = main.count == 1 && chainedMainMetrics.count == 1 ? chainedMainMetrics[0] : nil
        metrics.recordsOutCountedBy = countedBy
        let output = n.outputOps.makeOutput(main, sideOutputs, countedBy == nil ? metrics : nil)
        let context = NodeContext(operatorName: n.name, subtaskIndex: subtask, parallelism: n.parallelism,
                                  maxParallelism: config.maxParallelism, processingTime: task.processingTime,
                                  autoWatermarkIntervalMillis: config.autoWatermarkIntervalMillis, metrics: metrics,
                                  restored: n.isSource ? nil : restoredState(n, subtask: subtask),
                                  stateBackend: config.stateBackend, operatorId: operatorId(n))
        switch n.kind {
        case .source(let factory, _, _):
            let all = splitsBySource[n.id] ?? []
            let mine = all.indices.filter { $0 % n.parallelism == subtask }.map { all[$0] }
            let env = SourceTaskEnvironment(autoWatermarkIntervalMillis: config.autoWatermarkIntervalMillis,
                                            chunkSize: config.sourceChunkSize, backpressure: task.backpressure)
            task.source = (n, try factory(context, env, mine, output), metrics)
        case .oneInput(let factory), .twoInput(let factory):
            let instance = try factory(context, output)
            task.instances.append((n, instance))
            if let byInput = gates[n.id]?[subtask] {
                for (inputIndex, gate) in byInput {
                    let ops = n.inputs.first { $0.inputIndex == inputIndex }!.ops
                    ops.bindGate(gate, instance.inputs[inputIndex - 1]) { try instance.endInput(inputIndex) }
                }
            }
        }
    }
}

/// The job was built wrongly: the message says what to change.
public struct JobConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The job was cancelled before it finished.
public struct JobCancelledError: Error, CustomStringConvertible {
    public var description: String { "the job was cancelled" }
}

/// A job running in the background (Flink's `JobClient`).
public final class JobClient: Sendable {
    let run: JobRun
    init(run: JobRun) { self.run = run }

    /// Stops every task; `waitForResult` then throws `JobCancelledError`.
    public func cancel() { run.cancel() }

    /// Blocks until the job ends.
    public func waitForResult() throws -> JobExecutionResult { try run.join() }

    /// Takes a checkpoint now and waits until it is complete (stored); returns its id.
    @discardableResult
    public func triggerCheckpoint(savepoint: Bool = false) throws -> CheckpointId {
        guard let c = run.coordinator else {
            throw CheckpointError("checkpointing is off: call env.enableCheckpointing(...) before executeAsync()")
        }
        var id: CheckpointId?
        while id == nil {
            if c.isStopped { throw CheckpointError("the job has ended; no checkpoint was taken") }
            id = c.trigger(savepoint: savepoint)
            if id == nil { usleep(1_000) }   // one is in progress
        }
        guard c.waitFor(id!) else { throw CheckpointError("the job ended before checkpoint \(id!) completed") }
        return id!
    }

    /// Figures of the checkpoints completed so far.
    public var checkpointStats: [CheckpointStats] { run.coordinator?.stats ?? [] }

    /// Takes a savepoint, then cancels the job (Flink's stop-with-savepoint); returns its id.
    public func stopWithSavepoint() throws -> CheckpointId {
        let id = try triggerCheckpoint(savepoint: true)
        // Let every sink commit what the savepoint covers before the tasks stop.
        _ = run.coordinator?.waitUntilNotified(id)
        run.cancel()
        _ = try? run.join()
        return id
    }
}
