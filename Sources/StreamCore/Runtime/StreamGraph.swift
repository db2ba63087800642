/// What an operator factory gets on the task thread.
public struct NodeContext {
    public let operatorName: String
    public let subtaskIndex: Int
    public let parallelism: Int
    public let maxParallelism: Int
    public let processingTime: ProcessingTimeService
    public let autoWatermarkIntervalMillis: Int64
    public let metrics: OperatorMetrics
    /// The state this subtask restores from a checkpoint, if the job was started from one.
    public let restored: RestoredState?
    /// Where keyed state lives.
    public let stateBackend: StateBackendKind
    /// The operator's identity in checkpoints (names its RocksDB directory).
    public let operatorId: String

    /// A keyed state backend for this subtask (its key-group range), restored from the checkpoint
    /// the job starts from. Call from inlinable code so it is specialized for `K`.
    @inlinable
    public func makeKeyedContext<K: StreamKey>(_ key: K.Type) throws -> KeyedContext<K> {
        var rocksDB: RocksDBStateOptions?
        if case .rocksDB(let options) = stateBackend { rocksDB = options }
        let range = KeyGroupRangeAssignment.keyGroupRange(maxParallelism: maxParallelism, parallelism: parallelism,
                                                          operatorIndex: subtaskIndex)
        let backend = try KeyedStateBackend<K>(clock: processingTime.clock, maxParallelism: maxParallelism,
                                               keyGroupRange: range, rocksDB: rocksDB,
                                               name: "\(operatorId)-\(subtaskIndex)")
        let keyed = KeyedContext(backend: backend, processingTime: processingTime)
        if let restored { try keyed.restore(restored) }
        return keyed
    }

    public func runtimeContext(keyedStateStore: KeyedStateStore?) -> RuntimeContext {
        RuntimeContext(operatorName: operatorName, subtaskIndex: subtaskIndex, parallelism: parallelism,
                       maxParallelism: maxParallelism, processingTime: processingTime, metrics: metrics,
                       keyedStateStore: keyedStateStore)
    }
}

/// What a source factory gets besides the node context.
@usableFromInline
struct SourceTaskEnvironment {
    @usableFromInline let autoWatermarkIntervalMillis: Int64
    @usableFromInline let chunkSize: Int
    @usableFromInline let backpressure: OutputBackpressure
}

@usableFromInline typealias OperatorFactory = @Sendable (NodeContext, AnyOutput) throws -> OperatorInstance
@usableFromInline typealias SourceFactory = @Sendable (NodeContext, SourceTaskEnvironment, [Any], AnyOutput) throws -> SourceInstance

/// An input edge of a node in the logical graph.
@usableFromInline
struct StreamEdge: @unchecked Sendable {
    @usableFromInline let source: Int
    /// Side output of the source node this edge reads, or nil for the main output.
    @usableFromInline let sideTag: String?
    /// `Partitioner<T>` of the records on this edge.
    @usableFromInline let partitioner: Any
    @usableFromInline let isForward: Bool
    /// 1 or 2.
    @usableFromInline let inputIndex: Int
    /// Operations for the record type on this edge.
    @usableFromInline let ops: TypeOps

    @usableFromInline
    init<T>(source: Int, sideTag: String?, partitioner: Partitioner<T>, inputIndex: Int, ops: TypeOps) {
        self.source = source
        self.sideTag = sideTag
        self.partitioner = partitioner
        self.isForward = partitioner.isForward
        self.inputIndex = inputIndex
        self.ops = ops
    }
}

/// A node of the logical graph: a source or an operator, with its parallelism and input edges.
@usableFromInline
final class StreamNode: @unchecked Sendable {
    @usableFromInline enum Kind {
        case source(SourceFactory, enumerate: @Sendable (Int) throws -> [Any],
                    decodeSplits: @Sendable ([[UInt8]]) throws -> [Any])
        case oneInput(OperatorFactory)
        case twoInput(OperatorFactory)
    }

    @usableFromInline let id: Int
    @usableFromInline var name: String
    @usableFromInline var parallelism: Int
    @usableFromInline var inputs: [StreamEdge]
    /// Operations for the node's main output type.
    @usableFromInline let outputOps: TypeOps
    @usableFromInline let kind: Kind
    @usableFromInline var startsNewChain = false

    @usableFromInline
    init(id: Int, name: String, parallelism: Int, inputs: [StreamEdge], outputOps: TypeOps, kind: Kind) {
        self.id = id
        self.name = name
        self.parallelism = parallelism
        self.inputs = inputs
        self.outputOps = outputOps
        self.kind = kind
    }

    var isSource: Bool { if case .source = kind { return true } else { return false } }
}
