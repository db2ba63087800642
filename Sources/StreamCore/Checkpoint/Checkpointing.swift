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

import Synchronization

/// How snapshot entries are encoded. One place, so the encoding can change without touching the
/// state classes.
@usableFromInline
enum StateCodec {
    @usableFromInline
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try BinaryEncoder().encode(value)
    }

    @usableFromInline
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try BinaryDecoder().decode(type, from: bytes)
    }
}

/// The keyed state of one key group of one operator: entries per key and timers.
public struct KeyGroupState: Codable, Sendable, Equatable {
    public var keyGroup: Int
    /// Encoded `KeyGroupBlock<K>`: the group's keys and, per state, the values of those that hold one.
    public var entries: [UInt8]
    /// Encoded `[TimerEntry<K>]`.
    public var timers: [UInt8]
}

/// An operator subtask's keyed state in a checkpoint.
public struct KeyedStateSnapshot: Sendable {
    /// Heap: entries and timers by key group. RocksDB: timers by key group.
    public var keyGroups: [KeyGroupState]
    /// RocksDB: the database's checkpoint.
    public var rocksDB: RocksDBStateHandle?
}

/// The state of one operator subtask in a checkpoint.
public struct OperatorSubtaskState: Codable, Sendable {
    /// The operator's identity in the job graph (stable for the same job code).
    public var operatorId: String
    public var subtask: Int
    public var parallelism: Int
    public var keyedState: [KeyGroupState] = []
    /// Non-keyed state (a sink's pending transactions); handed to subtask `i % newParallelism` on
    /// restore.
    public var operatorState: [UInt8]?
    /// A source's unfinished splits with their positions, each encoded on its own so they can be
    /// redistributed; nil for operators.
    public var sourceSplits: [[UInt8]]?
    /// Keyed state kept in RocksDB (then `keyedState` holds only timers).
    public var rocksDB: RocksDBStateHandle?

    public init(operatorId: String, subtask: Int, parallelism: Int) {
        self.operatorId = operatorId
        self.subtask = subtask
        self.parallelism = parallelism
    }
}

/// A checkpoint every task acknowledged.
public struct CompletedCheckpoint: Codable, Sendable {
    public let id: CheckpointId
    public let jobName: String
    public let maxParallelism: Int
    public let timestampMillis: Int64
    public var isSavepoint: Bool
    public var operators: [OperatorSubtaskState]
}

/// Where completed checkpoints go. The runtime calls `store` on the coordinator thread before it
/// tells any task the checkpoint completed.
public protocol CompletedCheckpointStore: AnyObject, Sendable {
    func store(_ checkpoint: CompletedCheckpoint) throws
    /// The first checkpoint id of a run that restores `restored` (nil: a fresh start).
    func firstCheckpointId(restoring restored: CheckpointId?) throws -> CheckpointId
}

extension CompletedCheckpointStore {
    public func firstCheckpointId(restoring restored: CheckpointId?) throws -> CheckpointId { (restored ?? 0) + 1 }
}

/// Keeps completed checkpoints in memory (tests, and the default when no directory is set).
/// RocksDB state files are hard-linked into a temporary directory of the store's own (removed with
/// it), so they outlive the job that wrote them.
public final class InMemoryCheckpointStore: CompletedCheckpointStore, Sendable {
    private let all = Mutex<[CompletedCheckpoint]>([])
    private let fileDirectory = Mutex<String?>(nil)
    public init() {}

    deinit {
        if let dir = fileDirectory.withLock({ $0 }) { try? CheckpointFiles.removeTree(dir) }
    }

    public func store(_ checkpoint: CompletedCheckpoint) throws {
        var checkpoint = checkpoint
        for i in checkpoint.operators.indices {
            guard var handle = checkpoint.operators[i].rocksDB else { continue }
            let dir = try fileDirectory.withLock { dir -> String in
                if let dir { return dir }
                let made = "/tmp/tributary-checkpoint-files-" + CheckpointFiles.randomSuffix()
                try CheckpointFiles.makeDirectories(made)
                dir = made
                return made
            }
            for j in handle.files.indices {
                let dest = dir + "/" + handle.files[j].sharedName
                if CheckpointFiles.fileSize(dest) != handle.files[j].size {
                    try? CheckpointFiles.removeTree(dest)
                    try CheckpointFiles.linkOrCopy(from: handle.files[j].path, to: dest)
                }
                handle.files[j].path = dest
            }
            checkpoint.operators[i].rocksDB = handle
        }
        all.withLock { [checkpoint] in $0.append(checkpoint) }
    }
    public var checkpoints: [CompletedCheckpoint] { all.withLock { $0 } }
    public var latest: CompletedCheckpoint? { all.withLock { $0.last } }
}

/// Checkpointing of a job (Flink's `CheckpointConfig`).
public struct CheckpointConfig: Sendable {
    /// Time between the start of one checkpoint and the next; nil: only on demand
    /// (`JobClient.triggerCheckpoint`) and at the end of a bounded job.
    public var interval: Duration?
    public var store: any CompletedCheckpointStore
    public init(interval: Duration?, store: any CompletedCheckpointStore) {
        self.interval = interval
        self.store = store
    }
}

/// What an operator subtask gets back on restore.
public struct RestoredState: Sendable {
    public var checkpointId: CheckpointId
    /// Keyed state of the key groups this subtask owns.
    public var keyGroups: [KeyGroupState] = []
    /// Operator state of the old subtasks this one takes over.
    public var operatorStates: [[UInt8]] = []
    /// A source's splits (nil: the operator is not a source, or it had no state).
    public var sourceSplits: [[UInt8]]?
    /// RocksDB checkpoints of the old subtasks whose key groups overlap this subtask's.
    public var rocksDB: [RocksDBStateHandle] = []

    public init(checkpointId: CheckpointId) { self.checkpointId = checkpointId }
}
