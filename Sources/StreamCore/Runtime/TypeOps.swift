/// Per-record-type operations the runtime needs when it wires a job: fan-out outputs, exchange
/// writers and input gates. Made in the typed (specialized) context of the DataStream API, so the
/// per-record closures they create are specialized for `T`, while the runtime that calls them stays
/// non-generic.
public final class TypeOps: @unchecked Sendable {
    @usableFromInline let makeOutput: ([AnyOutput], [String: AnyOutput], OperatorMetrics?) -> AnyOutput
    @usableFromInline let makeGate: (Parker, Int, Int, Int, Int, String, Int) -> AnyInputGate
    @usableFromInline let bindGate: (AnyInputGate, AnyOutput, @escaping () throws -> Void) -> Void
    @usableFromInline let makeWriter: (Any, [AnyInputGate], Int, Int, Int, Int, OutputBackpressure) -> (AnyOutput, PartitionWriter)

    @usableFromInline
    init(makeOutput: @escaping ([AnyOutput], [String: AnyOutput], OperatorMetrics?) -> AnyOutput,
         makeGate: @escaping (Parker, Int, Int, Int, Int, String, Int) -> AnyInputGate,
         bindGate: @escaping (AnyInputGate, AnyOutput, @escaping () throws -> Void) -> Void,
         makeWriter: @escaping (Any, [AnyInputGate], Int, Int, Int, Int, OutputBackpressure) -> (AnyOutput, PartitionWriter)) {
        self.makeOutput = makeOutput
        self.makeGate = makeGate
        self.bindGate = bindGate
        self.makeWriter = makeWriter
    }

    /// Builds the operations for records of type `T`. Must be called from inlinable code so it is specialized.
    @inlinable
    public static func make<T>(_ type: T.Type = T.self) -> TypeOps {
        TypeOps(
            makeOutput: { main, side, metrics in
                let targets = main.map { unsafeDowncast($0, to: Output<T>.self) }
                let watermarkTargets: [AnyOutput] = main + Array(side.values)
                let record: (T, Int64) throws -> Void
                switch (targets.count, metrics) {
                case (0, _):
                    record = { _, _ in }
                case (1, let m?):
                    let only = targets[0]
                    record = { v, ts in m.recordsOut &+= 1; try only.collect(v, timestamp: ts) }
                case (1, nil):
                    record = targets[0].recordSink   // the target's own entry point: no extra hop per record
                default:
                    record = { v, ts in
                        metrics?.recordsOut &+= 1
                        for t in targets { try t.collect(v, timestamp: ts) }
                    }
                }
                return Output<T>(
                    record: record,
                    watermark: { wm in for t in watermarkTargets { try t.emitWatermark(wm) } },
                    status: { s in for t in watermarkTargets { try t.emitWatermarkStatus(s) } },
                    sideOutputs: side)
            },
            makeGate: { parker, channels, inputIndex, capacity, batchSize, consumer, subtask in
                InputGate<T>(consumer: parker, channels: channels, inputIndex: inputIndex, capacity: capacity,
                             batchSize: batchSize, consumerName: consumer, subtask: subtask)
            },
            bindGate: { anyGate, anyTarget, onEnded in
                let gate = unsafeDowncast(anyGate, to: InputGate<T>.self)
                let target = unsafeDowncast(anyTarget, to: Output<T>.self)
                var valve = StatusWatermarkValve(channels: gate.channelCount)
                func handle(_ element: StreamElement<T>, _ channel: Int) throws {
                    switch element {
                    case .record(let v, let ts):
                        try target.collect(v, timestamp: ts)
                    case .watermark(let wm):
                        if case .emitWatermark(let out)? = valve.inputWatermark(wm, channel: channel) {
                            try target.emitWatermark(out)
                        }
                    case .status(let s):
                        for action in valve.inputStatus(s, channel: channel) {
                            switch action {
                            case .emitWatermark(let out): try target.emitWatermark(out)
                            case .emitStatus(let st): try target.emitWatermarkStatus(st)
                            }
                        }
                    case .barrier(let id):
                        gate.block(channel)
                        try gate.onBarrier(id, channel)
                    case .endOfPartition:
                        gate.endedChannels += 1
                        try gate.onChannelEnded()
                        if gate.isFinished { try onEnded() }
                    }
                }
                gate.process = { batch, channel in try batch.drain { try handle($0, channel) } }
            },
            makeWriter: { anyPartitioner, anyGates, channel, batchSize, maxParallelism, start, backpressure in
                let partitioner = anyPartitioner as! Partitioner<T>
                let gates = anyGates.map { unsafeDowncast($0, to: InputGate<T>.self) }
                let writer = ExchangeWriter<T>(gates: gates, channel: channel, batchSize: batchSize,
                                               route: partitioner.route(maxParallelism: maxParallelism, parallelism: gates.count),
                                               start: start, backpressure: backpressure)
                return (writer.asOutput(), writer)
            })
    }
}
