import StreamCore
import StreamTesting
import XCTest

/// The same job gives the same per-key results at parallelism 1, 2 and 4, whatever the batching,
/// and they equal a naive recomputation (the oracle).
final class ParallelismTests: XCTestCase {
    struct Event: Sendable {
        let key: String
        let amount: Int64
        let ts: Int64
    }

    /// Running count and sum per key on arrival; the count of each key's events per minute of event
    /// time when the watermark passes that minute (timers + MapState).
    final class PerKeyFeatures: KeyedProcessFunction {
        typealias Key = String
        var count: ValueState<Int64>!
        var sum: ValueState<Int64>!
        var perMinute: MapState<Int64, Int64>!

        func open(_ context: RuntimeContext) throws {
            count = try context.getState(ValueStateDescriptor<Int64>("count"))
            sum = try context.getState(ValueStateDescriptor<Int64>("sum"))
            perMinute = try context.getMapState(MapStateDescriptor<Int64, Int64>("per-minute"))
        }

        func processElement(_ e: Event, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            let c = (count.value() ?? 0) + 1
            let s = (sum.value() ?? 0) + e.amount
            count.update(c)
            sum.update(s)
            try out.collect("A|\(e.key)|\(c)|\(s)")
            let minute = e.ts / 60_000
            perMinute.put(minute, (perMinute.get(minute) ?? 0) + 1)
            ctx.timerService.registerEventTimeTimer((minute + 1) * 60_000 - 1)
        }

        func onTimer(_ t: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            let minute = (t + 1) / 60_000 - 1
            try out.collect("M|\(ctx.currentKey)|\(minute)|\(perMinute.get(minute) ?? -1)")
            perMinute.remove(minute)
        }
    }

    /// Events grouped in 4 splits; each key lives in one split, timestamps shuffled within 1 s.
    static func events(seed: UInt64, count: Int) -> [Event] {
        var rng = SeededRandom(seed: seed)
        var out: [Event] = []
        let perSplit = count / 4
        for split in 0..<4 {
            var chunk: [Event] = []
            for i in 0..<perSplit {
                let key = "s\(split)-k\(Int.random(in: 0..<40, using: &rng))"
                let base = Int64(i) * 700
                chunk.append(Event(key: key, amount: Int64.random(in: 1...50_000, using: &rng),
                                   ts: base + Int64.random(in: 0..<1_000, using: &rng)))
            }
            out += chunk
        }
        return out
    }

    func run(_ events: [Event], parallelism: Int, seed: UInt64) throws -> (arrival: [String: [String]], minutes: [String: [String]]) {
        var rng = SeededRandom(seed: seed &* 31 &+ UInt64(parallelism))
        let env = StreamExecutionEnvironment(parallelism: parallelism)
        env.bufferSize = Int.random(in: 1...64, using: &rng)
        env.channelCapacity = Int.random(in: 1...4, using: &rng)
        env.sourceChunkSize = Int.random(in: 1...50, using: &rng)
        env.autoWatermarkInterval = Bool.random(using: &rng) ? .zero : .milliseconds(1)
        let perSplit = events.count / 4
        let source = DataGeneratorSource<Event>(count: Int64(events.count), splits: 4,
                                                timestamp: { events[Int($0)].ts }) { events[Int($0)] }
        XCTAssertEqual(source.createSplits(parallelism: parallelism).map { $0.end - $0.position }, Array(repeating: Int64(perSplit), count: 4))
        let sink = CollectSink<String>()
        env.fromSource(source, watermarkStrategy: .forBoundedOutOfOrderness(.seconds(2)), name: "events")
            .filter { $0.amount % 17 != 0 }
            .keyBy { $0.key }
            .process(PerKeyFeatures())
            .sinkTo(sink)
        let result = try env.execute("parallel-\(parallelism)")
        XCTAssertTrue(result.operator("KeyedProcess")!.leftover.isEmpty, "state and timers cleaned up")
        var arrival: [String: [String]] = [:], minutes: [String: [String]] = [:]
        for line in sink.values {
            let key = String(line.split(separator: "|")[1])
            if line.hasPrefix("A|") { arrival[key, default: []].append(line) } else { minutes[key, default: []].append(line) }
        }
        return (arrival, minutes.mapValues { $0.sorted() })
    }

    static func oracle(_ events: [Event]) -> (arrival: [String: [String]], minutes: [String: [String]]) {
        var arrival: [String: [String]] = [:], minutes: [String: [String]] = [:]
        var count: [String: Int64] = [:], sum: [String: Int64] = [:], perMinute: [String: [Int64: Int64]] = [:]
        for e in events where e.amount % 17 != 0 {
            count[e.key, default: 0] += 1
            sum[e.key, default: 0] += e.amount
            arrival[e.key, default: []].append("A|\(e.key)|\(count[e.key]!)|\(sum[e.key]!)")
            perMinute[e.key, default: [:]][e.ts / 60_000, default: 0] += 1
        }
        for (key, m) in perMinute {
            minutes[key] = m.map { "M|\(key)|\($0.key)|\($0.value)" }.sorted()
        }
        return (arrival, minutes)
    }

    func testSameResultsAtParallelism124AndAsTheOracle() throws {
        for seed in [UInt64(7), 42, 1_234] {
            let events = Self.events(seed: seed, count: 6_000)
            let expected = Self.oracle(events)
            for p in [1, 2, 4] {
                let got = try run(events, parallelism: p, seed: seed)
                XCTAssertEqual(got.arrival, expected.arrival, "seed \(seed), parallelism \(p): on-arrival features")
                XCTAssertEqual(got.minutes, expected.minutes, "seed \(seed), parallelism \(p): per-minute counts")
            }
        }
    }
}
