/// A counter an operator or function can bump; summed over subtasks in the job result.
public final class Counter {
    @exclusivity(unchecked) public internal(set) var value: Int64 = 0
    public init() {}
    @inlinable public func inc(_ by: Int64 = 1) { add(by) }
    @usableFromInline func add(_ by: Int64) { value &+= by }
}

/// Counters of one operator instance (one subtask). Confined to the task thread.
public final class OperatorMetrics {
    public let operatorName: String
    public let subtaskIndex: Int
    public let parallelism: Int
    @exclusivity(unchecked) @usableFromInline var recordsIn: Int64 = 0
    @exclusivity(unchecked) @usableFromInline var recordsOut: Int64 = 0
    /// Set when the operator's only output is the input of an operator chained to it, which counts
    /// every record it receives: then this operator's records out are that operator's records in,
    /// and its output calls the consumer directly instead of through a closure that counts.
    @usableFromInline var recordsOutCountedBy: OperatorMetrics?
    @exclusivity(unchecked) public private(set) var counters: [String: Counter] = [:]
    /// The last watermark this operator received (after combining its inputs); `Int64.min` before
    /// the first. Read by reporters for the watermark lag.
    @exclusivity(unchecked) @usableFromInline var inputWatermark: Int64 = Int64.min

    public init(operatorName: String, subtaskIndex: Int, parallelism: Int = 1) {
        self.operatorName = operatorName
        self.subtaskIndex = subtaskIndex
        self.parallelism = parallelism
    }

    /// A named counter, created on first use (e.g. `numLateRecordsDropped`). Create counters when
    /// the operator is set up or opened: reporters read the set of counters from another thread.
    public func counter(_ name: String) -> Counter {
        if let c = counters[name] { return c }
        let c = Counter()
        counters[name] = c
        return c
    }

    public var numRecordsIn: Int64 { recordsIn }
    public var numRecordsOut: Int64 { recordsOut &+ (recordsOutCountedBy?.recordsIn ?? 0) }
}

/// What a function or operator instance knows about where it runs, and its access to keyed state
/// (Flink's `RuntimeContext`).
public final class RuntimeContext {
    public let operatorName: String
    public let subtaskIndex: Int
    public let parallelism: Int
    public let maxParallelism: Int
    public let processingTime: ProcessingTimeService
    public let metrics: OperatorMetrics
    public let keyedStateStore: KeyedStateStore?

    public init(operatorName: String, subtaskIndex: Int, parallelism: Int, maxParallelism: Int,
                processingTime: ProcessingTimeService, metrics: OperatorMetrics,
                keyedStateStore: KeyedStateStore?) {
        self.operatorName = operatorName
        self.subtaskIndex = subtaskIndex
        self.parallelism = parallelism
        self.maxParallelism = maxParallelism
        self.processingTime = processingTime
        self.metrics = metrics
        self.keyedStateStore = keyedStateStore
    }

    private func store(_ what: String) throws -> KeyedStateStore {
        guard let s = keyedStateStore else { throw StateError.notKeyed(what) }
        return s
    }

    public func getState<T>(_ d: ValueStateDescriptor<T>) throws -> ValueState<T> {
        try store("ValueState '\(d.name)'").getState(d)
    }
    public func getListState<T>(_ d: ListStateDescriptor<T>) throws -> ListState<T> {
        try store("ListState '\(d.name)'").getListState(d)
    }
    public func getMapState<UK, UV>(_ d: MapStateDescriptor<UK, UV>) throws -> MapState<UK, UV> {
        try store("MapState '\(d.name)'").getMapState(d)
    }
    public func getNamespacedState<V>(_ d: NamespacedStateDescriptor<V>) throws -> NamespacedValueState<V> {
        try store("NamespacedValueState '\(d.name)'").getNamespacedState(d)
    }
    public func getTimeSortedListState<T>(_ d: TimeSortedListStateDescriptor<T>) throws -> TimeSortedListState<T> {
        try store("TimeSortedListState '\(d.name)'").getTimeSortedListState(d)
    }
    public func getReducingState<T>(_ d: ReducingStateDescriptor<T>) throws -> ReducingState<T> {
        try store("ReducingState '\(d.name)'").getReducingState(d)
    }
    public func getAggregatingState<F>(_ d: AggregatingStateDescriptor<F>) throws -> AggregatingState<F> {
        try store("AggregatingState '\(d.name)'").getAggregatingState(d)
    }
}

/// What the runtime hands an operator factory: where to emit and where it runs.
public struct OperatorSetup<Out> {
    public let output: Output<Out>
    public let runtime: RuntimeContext
    public init(output: Output<Out>, runtime: RuntimeContext) {
        self.output = output
        self.runtime = runtime
    }
}

/// What the runtime hands a keyed operator factory: also the keyed state and timers.
public struct KeyedOperatorSetup<K: StreamKey, Out> {
    public let output: Output<Out>
    public let runtime: RuntimeContext
    public let keyed: KeyedContext<K>
    public init(output: Output<Out>, runtime: RuntimeContext, keyed: KeyedContext<K>) {
        self.output = output
        self.runtime = runtime
        self.keyed = keyed
    }
}
