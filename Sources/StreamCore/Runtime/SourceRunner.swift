/// The loop of a source subtask: reads its splits round-robin a chunk at a time, assigns
/// timestamps, runs one watermark generator per split and combines them (minimum over active
/// splits), emits watermarks periodically (or after every record when the interval is 0), fires
/// processing-time callbacks, flushes exchanges when it has nothing to read, and emits +∞ when all
/// splits of a bounded source are done.
@usableFromInline
enum SourceRunner {
    @usableFromInline
    final class SplitState<Reader: SourceSplitReader> {
        @usableFromInline let reader: Reader
        @usableFromInline let generator: any WatermarkGenerator<Reader.Element>
        @usableFromInline let output: WatermarkMultiplexer.SplitOutput
        @usableFromInline let splitId: String

        @usableFromInline
        init(reader: Reader, generator: any WatermarkGenerator<Reader.Element>,
             output: WatermarkMultiplexer.SplitOutput, splitId: String) {
            self.reader = reader
            self.generator = generator
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

    @inlinable
    static func run<S: Source>(source: S, splits: [S.Split], strategy: WatermarkStrategy<S.Element>,
                               output: Output<S.Element>, metrics: OperatorMetrics,
                               env: SourceTaskEnvironment) throws {
        let clock = env.processingTime.clock
        let pending = Pending()
        let multiplexer = WatermarkMultiplexer { pending.changes.append($0) }
        let assigner = strategy.timestampAssigner
        var states: [SplitState<S.Reader>] = []
        for split in splits {
            let reader = try source.createReader(for: split)
            states.append(SplitState(reader: reader, generator: strategy.createGenerator(clock: clock),
                                     output: multiplexer.output(for: split.splitId), splitId: split.splitId))
        }
        defer { for s in states { s.reader.close() } }

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
        func periodicEmit() throws {
            multiplexer.deferred { for s in states { s.generator.onPeriodicEmit(output: s.output) } }
            try drain()
        }

        let interval = env.autoWatermarkIntervalMillis
        let chunk = max(1, env.chunkSize)
        var nextPeriodic = clock.currentTimeMillis() + interval

        if states.isEmpty, source.boundedness == .continuousUnbounded {
            // No split for this subtask: it must not hold back downstream watermarks.
            try output.emitWatermarkStatus(.idle)
        }

        while !states.isEmpty || source.boundedness == .continuousUnbounded {
            if env.isCancelled() { throw TaskCancelled() }
            var readAny = false
            var i = 0
            while i < states.count {
                let s = states[i]
                var ended = false
                var n = 0
                reading: while n < chunk {
                    switch try s.reader.next() {
                    case .record(let value, let sourceTs):
                        let ts = assigner?(value, sourceTs) ?? sourceTs
                        metrics.recordsIn &+= 1
                        s.generator.onEvent(value, timestamp: ts, output: s.output)
                        do { try output.collect(value, timestamp: ts) } catch {
                            throw wrapFailure(error, metrics, key: nil)
                        }
                        if interval == 0 {
                            s.generator.onPeriodicEmit(output: s.output)
                            if !pending.changes.isEmpty { try drain() }
                        }
                        n += 1
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
                } else {
                    i += 1
                }
            }

            let now = clock.currentTimeMillis()
            if interval > 0, now >= nextPeriodic {
                try periodicEmit()
                nextPeriodic = now + interval
            }
            try env.processingTime.fireDue(now: now)
            if !readAny {
                // Nothing to read: idleness is checked even with interval 0, and partial batches
                // leave now rather than wait to fill up.
                if interval == 0 { try periodicEmit() }
                try env.flushWriters()
                if let s = states.first {
                    s.reader.waitForData(timeoutMillis: 5)
                } else if source.boundedness == .continuousUnbounded {
                    SourceRunner.sleepMillis(5)
                }
            }
        }
        try output.emitWatermark(Timestamps.maxWatermark)
    }

    @usableFromInline
    static func sleepMillis(_ ms: Int) {
        var ts = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
        nanosleep(&ts, nil)
    }
}

#if canImport(Glibc)
import Glibc
#endif
