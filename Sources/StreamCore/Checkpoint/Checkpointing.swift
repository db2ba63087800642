/// Checkpoint ids count up from 1 within a job's checkpoint directory.
public typealias CheckpointId = Int64

/// Something told when a checkpoint completed or was given up (Flink's `CheckpointListener`).
/// Called on the task's thread, between records.
public protocol CheckpointListener: AnyObject {
    /// Checkpoint `id` is complete: its manifest is durable. Commit what was pre-committed for it
    /// (and for any earlier id whose notification was missed).
    func notifyCheckpointComplete(_ id: CheckpointId) throws
    /// Checkpoint `id` will not complete. What was pre-committed for it stays pending: the next
    /// completed checkpoint covers it.
    func notifyCheckpointAborted(_ id: CheckpointId)
}

extension CheckpointListener {
    public func notifyCheckpointAborted(_ id: CheckpointId) {}
}

/// A sink writer that takes part in checkpoints (what Flink's `TwoPhaseCommitSinkFunction` and
/// Sink V2's stateful, committing writers do). The runtime calls, on the writer's task thread:
/// - `initializeState` once before the first record: with the state of the checkpoint the job
///   restores from (one entry per writer of the previous run that hands state to this subtask —
///   several after a change of parallelism), or with `[]` on a fresh start;
/// - `snapshotState` when barrier `id` has reached the writer: everything written before the barrier
///   must be pre-committed (flushed, durable, not yet visible); returns the writer's state for the
///   checkpoint (e.g. its pending transactions);
/// - `notifyCheckpointComplete` once checkpoint `id` is durable.
public protocol CheckpointedSinkWriter: SinkWriter, CheckpointListener {
    func initializeState(_ restored: [[UInt8]]) throws
    func snapshotState(checkpointId: CheckpointId) throws -> [UInt8]
}
