/// The work of a source subtask, a round at a time so it can share its thread with other tasks:
/// reads its splits round-robin a chunk at a time (stopping early when output is held back by a
/// full channel), assigns timestamps, runs one watermark generator per split and combines them
/// (minimum over active splits), emits watermarks periodically (or after every record when the
/// interval is 0), and emits +∞ once every split of a bounded source is done.
@usableFromInline
final class SourceLoop<S: Source> {
    @usableFromInline
    final class SplitState {
        @usableFromInline let reader: S.Reader
        @usableFromInline let generator: any WatermarkGenerator<S.Element>
        /// The generator when it is the common bounded-out-of-orderness one: its `onEvent` (a
        /// maximum) is then inlined instead of called through the existential for every record.
        @usableFromInline let bounded: BoundedOutOfOrdernessWatermarks<S.Element>?
        @usableFromInline let output: WatermarkMultiplexer.SplitOutput
        @usableFromInline let splitId: String

        @usableFromInline
        init(reader: S.Reader, generator: any WatermarkGenerator<S.Element>,
             output: WatermarkMultiplexer.SplitOutput, splitId: String) {
            self.reader = reader
            self.generator = generator
            self.bounded = generator as? BoundedOutOfOrdernessWatermarks<S.Element>
            self.output = output
            self.splitId = splitId
        }
    }

    /// Buffers the multiplexer's decisions so they can be emitted with `try`.
    @usableFromInline
    final class Pending {
        @exclusivity(unchecked) @usableFromInline var changes: [WatermarkMultiplexer.Change] = []
        @usableFromInline init() {}
    }

    @usableFromInline let source: S
    @usableFromInline let output: Output<S.Element>
    @usableFromInline let metrics: OperatorMetrics
    @usableFromInline let clock: any ProcessingTimeClock
    @usableFromInline let backpressure: OutputBackpressure
    @usableFromInline let assigner: WatermarkStrategy<S.Element>.TimestampAssigner?
    @usableFromInline let pending = Pending()
    @usableFromInline let multiplexer: WatermarkMultiplexer
    @exclusivity(unchecked) @usableFromInline var states: [SplitState] = []
    @usableFromInline let interval: Int64
    @usableFromInline let chunk: Int
    @exclusivity(unchecked) @usableFromInline var nextPeriodic: Int64
    @usableFromInline let rejectedCounter: Counter
    @exclusivity(unchecked) @usableFromInline var started = false
    /// Set once the final watermark has been emitted (bounded sources only).
    @exclusivity(unchecked) @usableFromInline var ended = false

    @usableFromInline
    init(source: S, splits: [S.Split], strategy: WatermarkStrategy<S.Element>, output: Output<S.Element>,
         metrics: OperatorMetrics, clock: any ProcessingTimeClock, intervalMillis: Int64, chunk: Int,
         backpressure: OutputBackpressure) throws {
        self.source = source
        self.output = output
        self.metrics = metrics
        self.clock = clock
        self.backpressure = backpressure
        self.assigner = strategy.timestampAssigner
        self.interval = intervalMillis
        self.chunk = max(1, chunk)
        let pending = self.pending
        self.multiplexer = WatermarkMultiplexer { pending.changes.append($0) }
        self.nextPeriodic = clock.currentTimeMillis() + intervalMillis
        self.rejectedCounter = metrics.counter("numRecordsRejected")
        let readers = try source.createReaders(for: splits)
        precondition(readers.count == splits.count, "createReaders returns one reader per split")
        for (split, reader) in zip(splits, readers) {
            states.append(SplitState(reader: reader, generator: strategy.createGenerator(clock: clock),
                                     output: multiplexer.output(for: split.splitId), splitId: split.splitId))
        }
    }

    /// Whether the source keeps running without data (it must be polled).
    @usableFromInline var isUnbounded: Bool { source.boundedness == .continuousUnbounded }

    @usableFromInline
    func close() {
        for s in states { s.reader.close() }
        states.removeAll()
    }

    /// The unfinished splits with the position of their next record, for a checkpoint. Finished
    /// splits are left out: a restored job does not read them again.
    @usableFromInline
    func snapshotSplits(checkpointId: CheckpointId) throws -> [[UInt8]] {
        try states.map { try StateCodec.encode($0.reader.snapshotSplit(checkpointId: checkpointId)) }
    }

    @usableFromInline
    func notifyCheckpointComplete(_ id: CheckpointId) throws {
        for s in states { try s.reader.notifyCheckpointComplete(id) }
    }

    @usableFromInline
    func drain() throws {
        guard !pending.changes.isEmpty else { return }
        let changes = pending.changes
        pending.changes.removeAll(keepingCapacity: true)
        for c in changes {
            switch c {
            case .watermark(let wm): try output.emitWatermark(wm)
            case .status(let s): try output.emitWatermarkStatus(s)
            }
        }
    }

    @usableFromInline
    func periodicEmit() throws {
        multiplexer.deferred { for s in states { s.generator.onPeriodicEmit(output: s.output) } }
        try drain()
    }

    /// One round. Returns whether anything was read or emitted.
    @inlinable
    func step() throws -> Bool {
        guard !ended else { return false }
        if !started {
            started = true
            if states.isEmpty, isUnbounded {
                // No split for this subtask: it must not hold back downstream watermarks.
                try output.emitWatermarkStatus(.idle)
            }
        }
        var readAny = false
        var i = 0
        while i < states.count, !backpressure.blocked {
            let s = states[i]
            var ended = false
            var n = 0
            reading: while n < chunk {
                switch try s.reader.next() {
                case .record(let value, let sourceTs):
                    let ts = assigner?(value, sourceTs) ?? sourceTs
                    metrics.recordsIn &+= 1
                    if let bounded = s.bounded {
                        bounded.onEvent(value, timestamp: ts, output: s.output)
                    } else {
                        s.generator.onEvent(value, timestamp: ts, output: s.output)
                    }
                    try output.collect(value, timestamp: ts)
                    if interval == 0 {
                        s.generator.onPeriodicEmit(output: s.output)
                        if !pending.changes.isEmpty { try drain() }
                    }
                    n += 1
                    if backpressure.blocked { break reading }
                case .rejected(let record):
                    metrics.recordsIn &+= 1
                    rejectedCounter.inc()
                    try output.collect(SourceOutputs.rejected, record, timestamp: record.timestamp)
                    n += 1
                    if backpressure.blocked { break reading }
                case .nothingAvailable:
                    break reading
                case .endOfSplit:
                    ended = true
                    break reading
                }
            }
            if n > 0 { readAny = true }
            if ended {
                s.reader.close()
                states.remove(at: i)
                multiplexer.release(splitId: s.splitId)
                try drain()
                readAny = true
            } else {
                i += 1
            }
        }

        let now = clock.currentTimeMillis()
        if interval > 0, now >= nextPeriodic {
            try periodicEmit()
            nextPeriodic = now + interval
        } else if interval == 0, !readAny {
            // Idleness is checked even with interval 0, when there is nothing to read.
            try periodicEmit()
        }
        if states.isEmpty, !isUnbounded {
            try output.emitWatermark(Timestamps.maxWatermark)
            self.ended = true
            return true
        }
        return readAny
    }
}

/// A running source subtask, type-erased for the task loop.
@usableFromInline
struct SourceInstance {
    @usableFromInline let step: () throws -> Bool
    @usableFromInline let isEnded: () -> Bool
    @usableFromInline let close: () -> Void
    @usableFromInline let snapshotSplits: (CheckpointId) throws -> [[UInt8]]
    @usableFromInline let notifyCheckpointComplete: (CheckpointId) throws -> Void

    @inlinable
    init<S: Source>(_ loop: SourceLoop<S>) {
        step = {
            do { return try loop.step() } catch { throw wrapFailure(error, loop.metrics, key: nil) }
        }
        isEnded = { loop.ended }
        close = { loop.close() }
        snapshotSplits = { id in
            do { return try loop.snapshotSplits(checkpointId: id) } catch { throw wrapFailure(error, loop.metrics, key: nil) }
        }
        notifyCheckpointComplete = { id in
            do { try loop.notifyCheckpointComplete(id) } catch { throw wrapFailure(error, loop.metrics, key: nil) }
        }
    }
}
