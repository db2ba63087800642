import Synchronization

/// What one operator subtask has counted so far, read from outside its task thread.
public struct OperatorReading: Sendable, Equatable {
    /// The operator's node in the job graph (names need not be unique: several `Map`s).
    public let operatorId: Int
    public let operatorName: String
    public let subtaskIndex: Int
    public let recordsIn: Int64
    public let recordsOut: Int64
    /// The operator's named counters (`numLateRecordsDropped`, …).
    public let counters: [String: Int64]
    /// The last watermark the operator received (combined over its inputs); nil before the first.
    public let inputWatermark: Int64?
}

/// Where a slot's thread spent its time since the job started (Flink's busy / idle /
/// back-pressured time of a task; here per slot, which runs subtask `i` of every chain).
public struct SlotReading: Sendable, Equatable {
    public let subtaskIndex: Int
    public let busyNanos: UInt64
    public let idleNanos: UInt64
    public let backPressuredNanos: UInt64
}

/// A reading of a running job, for reporters (the Prometheus endpoint).
public struct JobMetricsReading: Sendable {
    public let jobName: String
    public let operators: [OperatorReading]
    public let slots: [SlotReading]
}

/// The jobs running in this process, as reporters find them (Flink's metric registry): a job is
/// registered while its tasks run. Reading a job's counters takes no lock on the task threads:
/// the counters are plain integers written by their task thread and read here as they are, like
/// Flink's `SimpleCounter` read by a reporter (a reading may be a moment old, never torn on the
/// 64-bit machines this runs on).
public enum RunningJobs {
    private static let runs = Mutex<(live: [ObjectIdentifier: Weak], ended: [JobMetricsReading])>(([:], []))
    private struct Weak: @unchecked Sendable { weak var run: JobRun? }

    static func register(_ run: JobRun) {
        runs.withLock { $0.live[ObjectIdentifier(run)] = Weak(run: run) }
    }

    /// The job's threads have ended: its final reading is handed to the next `readings()`, so
    /// what it counted after the last scrape is not lost.
    static func unregister(_ run: JobRun) {
        let final = run.reading()
        runs.withLock {
            $0.live[ObjectIdentifier(run)] = nil
            // Kept for the next reading only; a process nobody reads keeps the last few.
            if $0.ended.count >= 16 { $0.ended.removeFirst() }
            $0.ended.append(final)
        }
    }

    /// A reading of every job running now, and the final readings of jobs that ended since the
    /// last call (for one reporter per process).
    public static func readings() -> [JobMetricsReading] {
        let (live, ended) = runs.withLock { r in
            defer { r.ended.removeAll() }
            return (r.live.values.compactMap(\.run), r.ended)
        }
        return ended + live.map { $0.reading() }
    }
}

/// Busy, idle and back-pressured time of one slot thread, written by it, read by reporters.
final class SlotTimes: Sendable {
    let startNanos = Atomic<UInt64>(0)
    let idleNanos = Atomic<UInt64>(0)
    let backPressuredNanos = Atomic<UInt64>(0)
    let endNanos = Atomic<UInt64>(0)

    func reading(subtask: Int) -> SlotReading {
        let start = startNanos.load(ordering: .relaxed)
        let end = endNanos.load(ordering: .relaxed)
        let now = end != 0 ? end : monotonicNanos()
        let idle = idleNanos.load(ordering: .relaxed)
        let pressured = backPressuredNanos.load(ordering: .relaxed)
        let elapsed = start == 0 ? 0 : now &- start
        return SlotReading(subtaskIndex: subtask, busyNanos: elapsed > idle &+ pressured ? elapsed &- idle &- pressured : 0,
                           idleNanos: idle, backPressuredNanos: pressured)
    }
}

extension OperatorMetrics {
    func reading(node: Int) -> OperatorReading {
        OperatorReading(operatorId: node, operatorName: operatorName, subtaskIndex: subtaskIndex, recordsIn: numRecordsIn,
                        recordsOut: numRecordsOut, counters: counters.mapValues(\.value),
                        inputWatermark: inputWatermark == Int64.min ? nil : inputWatermark)
    }
}
