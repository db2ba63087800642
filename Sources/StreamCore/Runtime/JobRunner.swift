import Synchronization

/// Configuration of a run, captured when the job starts.
struct RunConfig {
    let maxParallelism: Int
    let autoWatermarkIntervalMillis: Int64
    let clock: any ProcessingTimeClock
    let batchSize: Int
    let channelCapacity: Int
    let chainingEnabled: Bool
    let sourceChunkSize: Int
}

/// Turns the logical graph into chains of operators, one task per chain and subtask, each on its own
/// thread; runs them and gathers the result. The first failure cancels every task.
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
    private var mailboxes: [TaskMailbox] = []
    private var splitsBySource: [Int: [Any]] = [:]

    private let cancelled = Atomic<Bool>(false)
    /// Guards `failure` and `summaries`, which every task thread writes once.
    private let stateLock = ConditionLock(conditions: 1)
    private var failure: (any Error)?
    private var summaries: [(node: Int, subtask: Int, metrics: OperatorMetrics, leftover: Leftover)] = []
    private var threads: [NativeThread] = []
    private var startNanos: UInt64 = 0
    private var endNanos: UInt64 = 0

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
                let mailbox = TaskMailbox()
                mailboxes.append(mailbox)
                var byInput: [Int: AnyInputGate] = [:]
                for (inputIndex, channels) in channelsPerInput.sorted(by: { $0.key < $1.key }) {
                    let ops = n.inputs.first { $0.inputIndex == inputIndex }!.ops
                    let gate = ops.makeGate(mailbox, channels, inputIndex, config.channelCapacity, config.batchSize, n.name, s)
                    mailbox.gates.append(gate)
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

    func start() throws {
        for n in nodes {
            if case .source(_, let enumerate) = n.kind { splitsBySource[n.id] = try enumerate(n.parallelism) }
        }
        startNanos = monotonicNanos()
        for head in heads {
            for s in 0..<head.parallelism {
                let thread = NativeThread(name: "\(head.name)-\(s)") { [self] in self.runTask(head: head, subtask: s) }
                threads.append(thread)
            }
        }
    }

    func cancel() {
        cancelled.store(true, ordering: .releasing)
        for m in mailboxes { m.cancel() }
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

    func join() throws -> JobExecutionResult {
        for t in threads { t.join() }
        endNanos = monotonicNanos()
        let (failure, summaries) = stateLock.withLock { (self.failure, self.summaries) }
        if let failure {
            if failure is TaskCancelled { throw JobCancelledError() }
            throw failure
        }
        return result(summaries)
    }

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
                                  operators: ops, exchanges: exchanges)
    }

    // MARK: one task

    private final class TaskState {
        var writers: [PartitionWriter] = []
        /// Post-order: consumers before producers; the head last.
        var instances: [(node: StreamNode, instance: OperatorInstance)] = []
        var source: (node: StreamNode, run: SourceInstance, metrics: OperatorMetrics)?
    }

    private func runTask(head: StreamNode, subtask: Int) {
        let processingTime = ProcessingTimeService(clock: config.clock)
        let task = TaskState()
        do {
            try instantiate(head, subtask: subtask, task: task, processingTime: processingTime)
            for (_, inst) in task.instances { try inst.open() }
            if let src = task.source {
                let env = SourceTaskEnvironment(
                    isCancelled: { [unowned self] in self.cancelled.load(ordering: .relaxed) },
                    flushWriters: { for w in task.writers { try w.flushAll() } },
                    processingTime: processingTime, autoWatermarkIntervalMillis: config.autoWatermarkIntervalMillis,
                    chunkSize: config.sourceChunkSize)
                try src.run.run(env)
                try finishChain(task, headIsOperator: false)
            } else {
                try runInputLoop(head: head, subtask: subtask, task: task, processingTime: processingTime)
                try finishChain(task, headIsOperator: true)
            }
            for w in task.writers { try w.finishPartition() }
        } catch {
            fail(error)
        }
        for (_, inst) in task.instances { inst.close() }
        stateLock.withLock {
            for (node, inst) in task.instances {
                summaries.append((node.id, subtask, inst.metrics, inst.leftover))
            }
            if let src = task.source { summaries.append((src.node.id, subtask, src.metrics, Leftover())) }
        }
    }

    /// Ends the input of every chained operator after the head, head first, then finishes each.
    private func finishChain(_ task: TaskState, headIsOperator: Bool) throws {
        for (i, entry) in task.instances.reversed().enumerated() {
            let isHead = headIsOperator && i == 0
            if !isHead { try entry.instance.endInput(1) }
            try entry.instance.finish()
        }
    }

    /// Builds node `n` of this task and, recursively, the operators chained after it.
    private func instantiate(_ n: StreamNode, subtask: Int, task: TaskState, processingTime: ProcessingTimeService) throws {
        var main: [AnyOutput] = []
        var side: [String: [AnyOutput]] = [:]
        var sideOps: [String: TypeOps] = [:]
        for (consumerId, edgeIndex) in consumers[n.id] ?? [] {
            let consumer = nodes[consumerId]
            let edge = consumer.inputs[edgeIndex]
            let target: AnyOutput
            if chainedTo[consumerId] == n.id {
                try instantiate(consumer, subtask: subtask, task: task, processingTime: processingTime)
                target = task.instances.last { $0.node.id == consumerId }!.instance.inputs[edge.inputIndex - 1]
            } else {
                let consumerGates = gates[consumerId]!.map { $0[edge.inputIndex]! }
                let pointwise = isPointwise(edge, consumer: consumer)
                let targets = pointwise ? [consumerGates[subtask]] : consumerGates
                let channel = channelOffsets[consumerId]![edgeIndex]! + (pointwise ? 0 : subtask)
                let (out, writer) = edge.ops.makeWriter(edge.partitioner, targets, channel, config.batchSize,
                                                        config.maxParallelism, subtask)
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
        let output = n.outputOps.makeOutput(main, sideOutputs, metrics)
        let context = NodeContext(operatorName: n.name, subtaskIndex: subtask, parallelism: n.parallelism,
                                  maxParallelism: config.maxParallelism, processingTime: processingTime,
                                  autoWatermarkIntervalMillis: config.autoWatermarkIntervalMillis, metrics: metrics)
        switch n.kind {
        case .source(let factory, _):
            let all = splitsBySource[n.id] ?? []
            let mine = all.indices.filter { $0 % n.parallelism == subtask }.map { all[$0] }
            task.source = (n, try factory(context, mine, output), metrics)
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

    private func runInputLoop(head: StreamNode, subtask: Int, task: TaskState, processingTime: ProcessingTimeService) throws {
        let byInput = gates[head.id]![subtask]
        let gateList = byInput.keys.sorted().map { byInput[$0]! }
        let mailbox = gateList[0].mailbox
        let lock = mailbox.lock
        let clock = config.clock
        var cursor = 0
        var batches = 0

        func findData() -> (AnyInputGate, Int)? {
            for i in 0..<gateList.count {
                let g = gateList[(cursor + i) % gateList.count]
                if let c = g.channelWithData() {
                    cursor = (cursor + i + 1) % gateList.count
                    return (g, c)
                }
            }
            return nil
        }
        func allFinished() -> Bool { gateList.allSatisfy(\.isFinished) }
        func flushAndFireTimers() throws {
            for w in task.writers { try w.flushAll() }
            try processingTime.fireDue(now: clock.currentTimeMillis())
        }

        while true {
            lock.lock()
            var found: (AnyInputGate, Int)?
            while true {
                if mailbox.cancelled { lock.unlock(); throw TaskCancelled() }
                found = findData()
                if found != nil || allFinished() { break }
                lock.unlock()
                try flushAndFireTimers()
                lock.lock()
                if mailbox.cancelled { continue }
                found = findData()
                if found != nil || allFinished() { break }
                var timeout: Int64? = processingTime.nextDueTime.map { max(1, $0 - clock.currentTimeMillis()) }
                if clock.isManual, let t = timeout { timeout = min(t, 5) }
                lock.wait(TaskMailbox.dataAvailable, timeoutMillis: timeout)
            }
            guard let (gate, channel) = found else { lock.unlock(); return }
            do { try gate.processBatch(channel: channel) } catch { lock.unlock(); throw error }
            lock.unlock()
            batches &+= 1
            if batches & 15 == 0, let due = processingTime.nextDueTime, clock.currentTimeMillis() >= due {
                try processingTime.fireDue(now: clock.currentTimeMillis())
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
}
