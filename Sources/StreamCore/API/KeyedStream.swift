/// A stream partitioned by key (Flink's `KeyedStream`): operators on it get keyed state and timers
/// for the key of each record.
public struct KeyedStream<T, K: StreamKey> {
    public let stream: DataStream<T>
    public let key: @Sendable (T) -> K

    @inlinable
    init(stream: DataStream<T>, key: @escaping @Sendable (T) -> K) {
        self.stream = stream
        self.key = key
    }

    public var environment: StreamExecutionEnvironment { stream.environment }

    /// Adds a keyed one-input operator (how windows, rolling aggregates and joins plug in).
    @inlinable
    public func transform<Op: OneInputStreamOperator>(
        _ name: String, parallelism: Int? = nil,
        _ factory: @escaping @Sendable (KeyedOperatorSetup<K, Op.Out>) throws -> Op
    ) -> DataStream<Op.Out> where Op.In == T {
        let key = self.key
        let opFactory: OperatorFactory = { ctx, anyOutput in
            let output = unsafeDowncast(anyOutput, to: Output<Op.Out>.self)
            let keyed = try ctx.makeKeyedContext(K.self)
            let backend = keyed.backend
            let op = try factory(KeyedOperatorSetup(output: output, runtime: ctx.runtimeContext(keyedStateStore: backend),
                                                    keyed: keyed))
            return OperatorInstance.keyedOneInput(op, keyed: keyed, key: key, metrics: ctx.metrics)
        }
        let env = stream.environment
        let id = env.addNode(name: name, parallelism: parallelism, inputs: stream.edges(),
                             outputOps: .make(Op.Out.self), kind: .oneInput(opFactory))
        return DataStream<Op.Out>(environment: env, node: id)
    }

    /// Runs a `KeyedProcessFunction`; the expression is evaluated once per parallel subtask.
    @inlinable
    public func process<F: KeyedProcessFunction>(
        name: String = "KeyedProcess", _ function: @autoclosure @escaping @Sendable () -> F
    ) -> DataStream<F.Output> where F.Input == T, F.Key == K {
        transform(name) { KeyedProcessOperator(function(), setup: $0) }
    }

    /// A non-keyed map over the key-partitioned stream (as in Flink, where a KeyedStream is a
    /// DataStream: records stay partitioned by key).
    @inlinable
    public func map<U>(name: String = "Map", _ f: @escaping @Sendable (T) throws -> U) -> DataStream<U> {
        stream.map(name: name, f)
    }

    @inlinable
    public func filter(name: String = "Filter", _ predicate: @escaping @Sendable (T) throws -> Bool) -> DataStream<T> {
        stream.filter(name: name, predicate)
    }

    @inlinable
    @discardableResult
    public func sinkTo<S: Sink>(_ sink: S, name: String = "Sink", parallelism: Int? = nil) -> DataStreamSink where S.Input == T {
        stream.sinkTo(sink, name: name, parallelism: parallelism)
    }

    /// Connects with another keyed stream with the same key type.
    @inlinable
    public func connect<U>(_ other: KeyedStream<U, K>) -> KeyedConnectedStreams<T, U, K> {
        KeyedConnectedStreams(first: self, second: other)
    }
}

/// Two streams feeding one two-input operator (Flink's `ConnectedStreams`).
public struct ConnectedStreams<A, B> {
    public let first: DataStream<A>
    public let second: DataStream<B>

    @inlinable
    init(first: DataStream<A>, second: DataStream<B>) {
        precondition(first.environment === second.environment, "connect of streams from different environments")
        self.first = first
        self.second = second
    }

    /// Adds a two-input operator.
    @inlinable
    public func transform<Op: TwoInputStreamOperator>(
        _ name: String, parallelism: Int? = nil,
        _ factory: @escaping @Sendable (OperatorSetup<Op.Out>) throws -> Op
    ) -> DataStream<Op.Out> where Op.In1 == A, Op.In2 == B {
        let opFactory: OperatorFactory = { ctx, anyOutput in
            let output = unsafeDowncast(anyOutput, to: Output<Op.Out>.self)
            let op = try factory(OperatorSetup(output: output, runtime: ctx.runtimeContext(keyedStateStore: nil)))
            return OperatorInstance.twoInput(op, keyed: KeyedContext<Int>?.none, key1: nil, key2: nil, metrics: ctx.metrics)
        }
        let env = first.environment
        let id = env.addNode(name: name, parallelism: parallelism,
                             inputs: first.edges(inputIndex: 1) + second.edges(inputIndex: 2),
                             outputOps: .make(Op.Out.self), kind: .twoInput(opFactory))
        return DataStream<Op.Out>(environment: env, node: id)
    }

    @inlinable
    public func process<F: CoProcessFunction>(
        name: String = "CoProcess", _ function: @autoclosure @escaping @Sendable () -> F
    ) -> DataStream<F.Output> where F.Input1 == A, F.Input2 == B {
        transform(name) { CoProcessOperator(function(), setup: $0) }
    }

    /// Keys both inputs (Flink's `ConnectedStreams.keyBy`).
    @inlinable
    public func keyBy<K: StreamKey>(_ key1: @escaping @Sendable (A) -> K,
                                    _ key2: @escaping @Sendable (B) -> K) -> KeyedConnectedStreams<A, B, K> {
        KeyedConnectedStreams(first: first.keyBy(key1), second: second.keyBy(key2))
    }
}

/// Two keyed streams with the same key type feeding one keyed two-input operator.
public struct KeyedConnectedStreams<A, B, K: StreamKey> {
    public let first: KeyedStream<A, K>
    public let second: KeyedStream<B, K>

    @inlinable
    init(first: KeyedStream<A, K>, second: KeyedStream<B, K>) {
        self.first = first
        self.second = second
    }

    /// Adds a keyed two-input operator (e.g. an interval join).
    @inlinable
    public func transform<Op: TwoInputStreamOperator>(
        _ name: String, parallelism: Int? = nil,
        _ factory: @escaping @Sendable (KeyedOperatorSetup<K, Op.Out>) throws -> Op
    ) -> DataStream<Op.Out> where Op.In1 == A, Op.In2 == B {
        let key1 = first.key, key2 = second.key
        let opFactory: OperatorFactory = { ctx, anyOutput in
            let output = unsafeDowncast(anyOutput, to: Output<Op.Out>.self)
            let keyed = try ctx.makeKeyedContext(K.self)
            let backend = keyed.backend
            let op = try factory(KeyedOperatorSetup(output: output, runtime: ctx.runtimeContext(keyedStateStore: backend),
                                                    keyed: keyed))
            return OperatorInstance.twoInput(op, keyed: keyed, key1: key1, key2: key2, metrics: ctx.metrics)
        }
        let env = first.environment
        let id = env.addNode(name: name, parallelism: parallelism,
                             inputs: first.stream.edges(inputIndex: 1) + second.stream.edges(inputIndex: 2),
                             outputOps: .make(Op.Out.self), kind: .twoInput(opFactory))
        return DataStream<Op.Out>(environment: env, node: id)
    }

    @inlinable
    public func process<F: KeyedCoProcessFunction>(
        name: String = "KeyedCoProcess", _ function: @autoclosure @escaping @Sendable () -> F
    ) -> DataStream<F.Output> where F.Input1 == A, F.Input2 == B, F.Key == K {
        transform(name) { KeyedCoProcessOperator(function(), setup: $0) }
    }
}
