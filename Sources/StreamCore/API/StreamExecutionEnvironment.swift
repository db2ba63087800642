/// The entry point of a job (Flink's `StreamExecutionEnvironment`): sources are added here, the
/// graph is built with `DataStream` operations, and `execute()` runs it.
public final class StreamExecutionEnvironment: @unchecked Sendable {
    /// Default parallelism of operators (sources from collections always run with 1).
    public var parallelism: Int
    /// Number of key groups: the upper bound for parallelism and the unit of state redistribution.
    public var maxParallelism = KeyGroupRangeAssignment.defaultMaxParallelism
    /// How often sources and `assignTimestampsAndWatermarks` emit watermarks, in processing time.
    /// Zero emits after every record that raises the watermark (deterministic tests).
    public var autoWatermarkInterval: Duration = .milliseconds(200)
    /// Processing time for timers, idleness, TTL and periodic watermarks.
    public var clock: any ProcessingTimeClock = SystemClock()
    /// Elements per batch between tasks.
    public var bufferSize = 2048
    /// Batches a channel holds before its producer must wait (back-pressure).
    public var channelCapacity = 4
    /// Longest a partly filled batch waits before it is shipped while its thread is busy with other
    /// work (Flink's buffer timeout); an idle thread ships at once.
    public var bufferTimeout: Duration = .milliseconds(10)
    /// Chain forward-connected operators of equal parallelism into direct calls.
    public var chainingEnabled = true
    /// Records a source reads from one split before turning to the next.
    public var sourceChunkSize = 256
    /// Checkpointing (off when nil): see `enableCheckpointing`.
    public var checkpointConfig: CheckpointConfig?
    /// A checkpoint to resume from: sources continue at its positions, operators get their state.
    public var restoreFrom: CompletedCheckpoint?
    /// Where keyed state lives (Flink's `state.backend.type`): `.heap` (default) or
    /// `.rocksDB(RocksDBStateOptions(directory:))`.
    public var stateBackend: StateBackendKind = .heap

    /// Takes a checkpoint every `interval` (nil: only when asked, `JobClient.triggerCheckpoint`,
    /// and the final one when a bounded job ends) and hands each completed one to `store`.
    public func enableCheckpointing(_ interval: Duration?, store: any CompletedCheckpointStore = InMemoryCheckpointStore()) {
        checkpointConfig = CheckpointConfig(interval: interval, store: store)
    }

    @usableFromInline var nodes: [StreamNode] = []

    public init(parallelism: Int = 1) {
        precondition(parallelism >= 1, "parallelism must be at least 1")
        self.parallelism = parallelism
    }

    @usableFromInline
    func addNode(name: String, parallelism: Int?, inputs: [StreamEdge], outputOps: TypeOps,
                 kind: StreamNode.Kind) -> Int {
        let node = StreamNode(id: nodes.count, name: name, parallelism: parallelism ?? self.parallelism,
                              inputs: inputs, outputOps: outputOps, kind: kind)
        nodes.append(node)
        return node.id
    }

    @usableFromInline func node(_ id: Int) -> StreamNode { nodes[id] }

    // MARK: sources

    /// Adds a source; each split gets a watermark generator from `watermarkStrategy`.
    @inlinable
    public func fromSource<S: Source>(_ source: S, watermarkStrategy: WatermarkStrategy<S.Element>,
                                      name: String, parallelism: Int? = nil) -> DataStream<S.Element> {
        let factory: SourceFactory = { ctx, env, splits, anyOutput in
            let output = unsafeDowncast(anyOutput, to: Output<S.Element>.self)
            let typedSplits = splits.map { $0 as! S.Split }
            let metrics = ctx.metrics
            do {
                let loop = try SourceLoop(source: source, splits: typedSplits, strategy: watermarkStrategy, output: output,
                                          metrics: metrics, clock: ctx.processingTime.clock,
                                          intervalMillis: env.autoWatermarkIntervalMillis, chunk: env.chunkSize,
                                          backpressure: env.backpressure)
                return SourceInstance(loop)
            } catch {
                throw wrapFailure(error, metrics, key: nil)
            }
        }
        let id = addNode(name: name, parallelism: parallelism, inputs: [], outputOps: .make(S.Element.self),
                         kind: .source(factory, enumerate: { p in try source.createSplits(parallelism: p).map { $0 as Any } },
                                       decodeSplits: { encoded in try encoded.map { try StateCodec.decode(S.Split.self, from: $0) as Any } }))
        return DataStream(environment: self, node: id)
    }

    /// A bounded stream of the given elements, read by one subtask, without timestamps unless given
    /// (Flink's `fromData`).
    @inlinable
    public func fromData<T: Sendable>(_ elements: [T], timestamps: [Int64]? = nil,
                                      name: String = "Collection Source") -> DataStream<T> {
        fromSource(CollectionSource(elements, timestamps: timestamps), watermarkStrategy: .noWatermarks(),
                   name: name, parallelism: 1)
    }

    /// Same as `fromData`.
    @inlinable
    public func fromCollection<T: Sendable>(_ elements: [T], name: String = "Collection Source") -> DataStream<T> {
        fromData(elements, name: name)
    }

    /// The numbers `from...to`, split over the parallel subtasks (Flink's `fromSequence`).
    @inlinable
    public func fromSequence(_ from: Int64, _ to: Int64, name: String = "Sequence Source") -> DataStream<Int64> {
        precondition(from <= to, "fromSequence needs from <= to")
        return fromSource(DataGeneratorSource(count: to - from + 1) { from + $0 },
                          watermarkStrategy: .noWatermarks(), name: name)
    }

    // MARK: execution

    func makeRun(_ jobName: String) throws -> JobRun {
        guard autoWatermarkInterval >= .zero else {
            throw JobConfigurationError("autoWatermarkInterval must not be negative")
        }
        guard bufferSize >= 1, channelCapacity >= 1 else {
            throw JobConfigurationError("bufferSize and channelCapacity must be at least 1")
        }
        guard (1...KeyGroupRangeAssignment.upperBoundMaxParallelism).contains(maxParallelism) else {
            throw JobConfigurationError("maxParallelism is \(maxParallelism); it must be between 1 and \(KeyGroupRangeAssignment.upperBoundMaxParallelism)")
        }
        guard sourceChunkSize >= 1, bufferTimeout >= .zero else {
            throw JobConfigurationError("sourceChunkSize must be at least 1 and bufferTimeout not negative")
        }
        let config = RunConfig(maxParallelism: maxParallelism,
                               autoWatermarkIntervalMillis: Timestamps.milliseconds(autoWatermarkInterval),
                               clock: clock, batchSize: bufferSize, channelCapacity: channelCapacity,
                               chainingEnabled: chainingEnabled, sourceChunkSize: sourceChunkSize,
                               bufferTimeoutNanos: UInt64(max(0, Timestamps.milliseconds(bufferTimeout))) * 1_000_000,
                               checkpoint: checkpointConfig, restore: restoreFrom, stateBackend: stateBackend)
        return try JobRun(jobName: jobName, nodes: nodes, config: config)
    }

    /// Runs the job to completion (bounded sources) and returns its counters. A failing operator
    /// fails the job with a `JobExecutionError` naming operator, subtask and key.
    @discardableResult
    public func execute(_ jobName: String = "Tributary job") throws -> JobExecutionResult {
        let run = try makeRun(jobName)
        try run.start()
        return try run.join()
    }

    /// Starts the job in the background.
    public func executeAsync(_ jobName: String = "Tributary job") throws -> JobClient {
        let run = try makeRun(jobName)
        try run.start()
        return JobClient(run: run)
    }

    /// A readable plan: chains, parallelism and exchanges.
    public func explain() throws -> String {
        let run = try makeRun("plan")
        var lines: [String] = []
        for head in run.heads {
            var chain = [head.name]
            var frontier = [head.id]
            while let id = frontier.popLast() {
                for (c, _) in run.consumers[id] ?? [] where run.chainedTo[c] == id {
                    chain.append(nodes[c].name)
                    frontier.append(c)
                }
            }
            let inputs = head.inputs.map { e in
                "\(nodes[e.source].name)\(e.sideTag.map { "[\($0)]" } ?? "")"
            }
            lines.append("chain ×\(head.parallelism): " + chain.joined(separator: " -> ")
                         + (inputs.isEmpty ? "" : "  <= " + inputs.joined(separator: ", ")))
        }
        return lines.joined(separator: "\n")
    }
}
