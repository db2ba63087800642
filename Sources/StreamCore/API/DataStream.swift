/// A stream of records of type `T` (Flink's `DataStream`). Operations add operators to the
/// environment's graph and return the resulting stream; nothing runs until `execute()`.
public struct DataStream<T> {
    public let environment: StreamExecutionEnvironment
    /// Nodes (and side output tags) whose records make up this stream; more than one after `union`.
    @usableFromInline let endpoints: [(node: Int, sideTag: String?)]
    /// Set by `rebalance()`, `broadcast()`, `forward()`, or `keyBy`.
    @usableFromInline let partitioner: Partitioner<T>?
    @usableFromInline let ops: TypeOps

    @inlinable
    init(environment: StreamExecutionEnvironment, node: Int, sideTag: String? = nil) {
        self.init(environment: environment, endpoints: [(node, sideTag)], partitioner: nil, ops: .make(T.self))
    }

    @inlinable
    init(environment: StreamExecutionEnvironment, endpoints: [(node: Int, sideTag: String?)],
         partitioner: Partitioner<T>?, ops: TypeOps) {
        self.environment = environment
        self.endpoints = endpoints
        self.partitioner = partitioner
        self.ops = ops
    }

    @usableFromInline var singleNode: StreamNode {
        precondition(endpoints.count == 1 && endpoints[0].sideTag == nil,
                     "name/setParallelism apply to the stream of one operator, not a union or side output")
        return environment.node(endpoints[0].node)
    }

    /// Input edges from this stream into a new operator at `inputIndex`.
    @inlinable
    func edges(inputIndex: Int = 1) -> [StreamEdge] {
        endpoints.map { e in
            StreamEdge(source: e.node, sideTag: e.sideTag, partitioner: partitioner ?? .forward,
                       inputIndex: inputIndex, ops: ops)
        }
    }

    // MARK: naming and parallelism

    /// Names the operator that produces this stream.
    @discardableResult
    public func name(_ name: String) -> DataStream<T> {
        singleNode.name = name
        return self
    }

    /// Sets the parallelism of the operator that produces this stream.
    @discardableResult
    public func setParallelism(_ parallelism: Int) -> DataStream<T> {
        precondition(parallelism >= 1, "parallelism must be at least 1")
        singleNode.parallelism = parallelism
        return self
    }

    /// Starts a new chain at the operator that produces this stream.
    @discardableResult
    public func startNewChain() -> DataStream<T> {
        singleNode.startsNewChain = true
        return self
    }

    // MARK: partitioning

    /// Round-robin over the next operator's subtasks.
    @inlinable public func rebalance() -> DataStream<T> { repartitioned(.rebalance) }
    /// Every record to every subtask of the next operator.
    @inlinable public func broadcast() -> DataStream<T> { repartitioned(.broadcast) }
    /// Subtask i to subtask i (the default between operators of equal parallelism).
    @inlinable public func forward() -> DataStream<T> { repartitioned(.forward) }

    @inlinable
    func repartitioned(_ p: Partitioner<T>) -> DataStream<T> {
        DataStream(environment: environment, endpoints: endpoints, partitioner: p, ops: ops)
    }

    // MARK: transformations

    /// Adds a one-input operator built by `factory` for each subtask (Flink's `transform`).
    @inlinable
    public func transform<Op: OneInputStreamOperator>(
        _ name: String, parallelism: Int? = nil,
        _ factory: @escaping @Sendable (OperatorSetup<Op.Out>) throws -> Op
    ) -> DataStream<Op.Out> where Op.In == T {
        let opFactory: OperatorFactory = { ctx, anyOutput in
            let output = unsafeDowncast(anyOutput, to: Output<Op.Out>.self)
            let op = try factory(OperatorSetup(output: output, runtime: ctx.runtimeContext(keyedStateStore: nil)))
            return OperatorInstance.oneInput(op, metrics: ctx.metrics)
        }
        let id = environment.addNode(name: name, parallelism: parallelism, inputs: edges(),
                                     outputOps: .make(Op.Out.self), kind: .oneInput(opFactory))
        return DataStream<Op.Out>(environment: environment, node: id)
    }

    @inlinable
    public func map<U>(name: String = "Map", _ f: @escaping @Sendable (T) throws -> U) -> DataStream<U> {
        transform(name) { StreamMap(f, output: $0.output) }
    }

    @inlinable
    public func filter(name: String = "Filter", _ predicate: @escaping @Sendable (T) throws -> Bool) -> DataStream<T> {
        transform(name) { StreamFilter(predicate, output: $0.output) }
    }

    /// Emits any number of records per input through the collector.
    @inlinable
    public func flatMap<U>(name: String = "FlatMap", _ f: @escaping @Sendable (T, Collector<U>) throws -> Void) -> DataStream<U> {
        transform(name) { StreamFlatMap(f, output: $0.output) }
    }

    /// Emits the elements of the returned sequence.
    @inlinable
    public func flatMap<S: Sequence & SendableMetatype>(name: String = "FlatMap", _ f: @escaping @Sendable (T) throws -> S) -> DataStream<S.Element> where S.Iterator: SendableMetatype {
        flatMap(name: name) { (v: T, out: Collector<S.Element>) in
            for x in try f(v) { try out.collect(x) }
        }
    }

    /// Runs a `ProcessFunction`; the expression is evaluated once per parallel subtask.
    @inlinable
    public func process<F: ProcessFunction>(name: String = "Process", _ function: @autoclosure @escaping @Sendable () -> F) -> DataStream<F.Output> where F.Input == T {
        transform(name) { ProcessOperator(function(), setup: $0) }
    }

    /// Assigns timestamps and watermarks mid-stream; upstream watermarks are replaced.
    @inlinable
    public func assignTimestampsAndWatermarks(_ strategy: WatermarkStrategy<T>, name: String = "Timestamps/Watermarks") -> DataStream<T> {
        let env = environment
        let interval = Timestamps.milliseconds(env.autoWatermarkInterval)
        return transform(name) { setup in
            TimestampsAndWatermarksOperator(strategy: strategy, autoWatermarkIntervalMillis: interval, setup: setup)
        }
    }

    /// Partitions by key (Flink's `keyBy`): records with equal keys go to the same subtask, where
    /// keyed state and timers are available.
    @inlinable
    public func keyBy<K: StreamKey>(_ key: @escaping @Sendable (T) -> K) -> KeyedStream<T, K> {
        KeyedStream(stream: repartitioned(.hash(key)), key: key)
    }

    /// Merges streams of the same type.
    @inlinable
    public func union(_ others: DataStream<T>...) -> DataStream<T> {
        precondition(others.allSatisfy { $0.environment === environment }, "union of streams from different environments")
        return DataStream(environment: environment, endpoints: endpoints + others.flatMap(\.endpoints),
                          partitioner: partitioner, ops: ops)
    }

    /// Connects two streams for a two-input operator.
    @inlinable
    public func connect<U>(_ other: DataStream<U>) -> ConnectedStreams<T, U> {
        ConnectedStreams(first: self, second: other)
    }

    /// The records the operator producing this stream emitted to `tag`.
    @inlinable
    public func getSideOutput<S>(_ tag: OutputTag<S>) -> DataStream<S> {
        precondition(endpoints.count == 1 && endpoints[0].sideTag == nil,
                     "getSideOutput applies to the stream of one operator")
        return DataStream<S>(environment: environment, node: endpoints[0].node, sideTag: tag.id)
    }

    // MARK: sinks

    /// Writes the stream to a sink.
    @inlinable
    @discardableResult
    public func sinkTo<S: Sink>(_ sink: S, name: String = "Sink", parallelism: Int? = nil) -> DataStreamSink where S.Input == T {
        let opFactory: OperatorFactory = { ctx, _ in
            let writer = try sink.createWriter(SinkInitContext(subtaskIndex: ctx.subtaskIndex, parallelism: ctx.parallelism))
            let instance = OperatorInstance.oneInput(SinkOperator(writer: writer), metrics: ctx.metrics)
            instance.flushIdle = { try writer.flushIdle() }
            instance.flushBusy = { try writer.flushBusy() }
            if let transactional = writer as? any CheckpointedSinkWriter {
                try transactional.initializeState(ctx.restored?.operatorStates ?? [])
                instance.snapshotOperatorState = { id in try transactional.snapshotState(checkpointId: id) }
                instance.notifyCheckpointComplete = { id in try transactional.notifyCheckpointComplete(id) }
            }
            return instance
        }
        let id = environment.addNode(name: name, parallelism: parallelism, inputs: edges(),
                                     outputOps: .make(Void.self), kind: .oneInput(opFactory))
        return DataStreamSink(environment: environment, node: id)
    }

    /// Prints each record (Flink's `print()`).
    @inlinable
    @discardableResult
    public func print(_ prefix: String? = nil) -> DataStreamSink {
        sinkTo(PrintSink<T>(prefix: prefix), name: "Print to Std. Out")
    }
}

extension DataStream where T: Sendable {
    /// Runs the job and returns this stream's records (Flink's `executeAndCollect`): for tests and
    /// small bounded jobs.
    public func executeAndCollect(_ jobName: String = "collect") throws -> [T] {
        let sink = CollectSink<T>()
        sinkTo(sink, name: "Collect")
        try environment.execute(jobName)
        return sink.values
    }
}

/// The sink end of a stream, for naming it and setting its parallelism.
public struct DataStreamSink {
    public let environment: StreamExecutionEnvironment
    @usableFromInline let node: Int

    @usableFromInline init(environment: StreamExecutionEnvironment, node: Int) {
        self.environment = environment
        self.node = node
    }

    @discardableResult
    public func name(_ name: String) -> DataStreamSink {
        environment.node(node).name = name
        return self
    }

    @discardableResult
    public func setParallelism(_ p: Int) -> DataStreamSink {
        environment.node(node).parallelism = p
        return self
    }
}
