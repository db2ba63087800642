/// Counters of one operator summed over its subtasks.
public struct OperatorSummary: Sendable {
    public let id: Int
    public let name: String
    public let parallelism: Int
    public var numRecordsIn: Int64 = 0
    public var numRecordsOut: Int64 = 0
    /// Named counters (e.g. `numLateRecordsDropped`), summed.
    public var counters: [String: Int64] = [:]
    /// State entries and timers left when the job ended, summed.
    public var leftover = Leftover()
    /// Records in, per subtask.
    public var recordsInPerSubtask: [Int64]
}

/// What `execute()` returns: runtime and per-operator counters (Flink's `JobExecutionResult`).
public struct JobExecutionResult: Sendable {
    public let jobName: String
    public let netRuntimeMillis: Int64
    /// In the order the operators were added to the job.
    public let operators: [OperatorSummary]
    /// One entry per input gate (consumer subtask × input).
    public let exchanges: [ExchangeStats]
    /// CPU time each slot's thread used (slot i runs subtask i of every chain), in nanoseconds.
    /// The busiest slot bounds throughput when every slot has a core of its own.
    public let slotCPUNanos: [UInt64]

    /// The operator of that name (the first, if several share it).
    public func `operator`(_ name: String) -> OperatorSummary? {
        operators.first { $0.name == name }
    }

    /// The highest number of elements queued at once in any gate.
    public var peakQueuedElements: Int { exchanges.map(\.peakQueuedElements).max() ?? 0 }
}

extension JobExecutionResult: CustomStringConvertible {
    public var description: String {
        var lines = ["Job '\(jobName)' finished in \(netRuntimeMillis) ms"]
        for op in operators {
            var line = "  \(op.name) ×\(op.parallelism): in \(op.numRecordsIn), out \(op.numRecordsOut)"
            for (k, v) in op.counters.sorted(by: { $0.key < $1.key }) { line += ", \(k) \(v)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
