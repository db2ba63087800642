import Operators
import StreamTesting
import XCTest

/// Windows through the DataStream API on the threaded runtime, checked against a naive oracle.
final class WindowJobTests: XCTestCase {
    struct Event: Codable, Sendable {
        let key: String
        let value: Int64
        let ts: Int64
    }

    struct Sum: AggregateFunction {
        func createAccumulator() -> Int64 { 0 }
        func add(_ e: Event, to acc: inout Int64) { acc += e.value }
        func getResult(_ acc: Int64) -> Int64 { acc }
        func merge(_ a: Int64, _ b: Int64) -> Int64 { a + b }
    }

    final class Label: ProcessWindowFunction {
        typealias Key = String
        func process(_ key: String, _ ctx: WindowContext, _ elements: [Int64], _ out: Collector<String>) throws {
            try out.collect("\(key)|\(ctx.window.start)|\(elements[0])")
        }
    }

    final class Everything: ProcessWindowFunction {
        typealias Key = String
        func process(_ key: String, _ ctx: WindowContext, _ elements: [Event], _ out: Collector<String>) throws {
            try out.collect("\(key)|\(ctx.window.start)|\(elements.count)|\(elements.map(\.value).reduce(0, +))")
        }
    }

    /// Events per key with timestamps shuffled within 2 s; the watermark bound (3 s) leaves none late.
    static func events(seed: UInt64, count: Int) -> [Event] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { i in
            Event(key: "k\(rng.next() % 17)", value: Int64(rng.next() % 1_000), ts: Int64(i) * 250 + Int64(rng.next() % 2_000))
        }
    }

    func run(_ events: [Event], parallelism: Int, _ build: (KeyedStream<Event, String>) -> DataStream<String>) throws -> [String] {
        let env = StreamExecutionEnvironment(parallelism: parallelism)
        env.autoWatermarkInterval = .zero
        env.bufferSize = 16
        let keyed = env.fromSource(CollectionSource(events),
                                   watermarkStrategy: WatermarkStrategy<Event>.forBoundedOutOfOrderness(.seconds(3))
                                       .withTimestampAssigner { e, _ in e.ts },
                                   name: "events")
            .keyBy { $0.key }
        return try build(keyed).executeAndCollect().sorted()
    }

    func testTumblingAndSlidingMatchTheOracleAtParallelism1And2() throws {
        let events = Self.events(seed: 11, count: 4_000)
        var tumbling: [String: Int64] = [:], sliding: [String: Int64] = [:]
        for e in events {
            let t = TimeWindow.windowStart(timestamp: e.ts, offset: 0, size: 10_000)
            tumbling["\(e.key)|\(t)", default: 0] += e.value
            var s = TimeWindow.windowStart(timestamp: e.ts, offset: 0, size: 5_000)
            while s > e.ts - 30_000 { sliding["\(e.key)|\(s)", default: 0] += e.value; s -= 5_000 }
        }
        let expectedTumbling = tumbling.map { "\($0.key)|\($0.value)" }.sorted()
        let expectedSliding = sliding.map { "\($0.key)|\($0.value)" }.sorted()
        for p in [1, 2] {
            let gotT = try run(events, parallelism: p) { $0.window(TumblingEventTimeWindows.of(.seconds(10))).aggregate(Sum(), Label()) }
            XCTAssertEqual(gotT, expectedTumbling, "tumbling at parallelism \(p)")
            let gotS = try run(events, parallelism: p) { $0.window(SlidingEventTimeWindows.of(.seconds(30), .seconds(5))).aggregate(Sum(), Label()) }
            XCTAssertEqual(gotS, expectedSliding, "sliding at parallelism \(p)")
        }
    }

    func testReduceProcessAndLateSideOutputThroughTheAPI() throws {
        let late = OutputTag<Event>("late")
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.autoWatermarkInterval = .zero
        let events = [Event(key: "a", value: 1, ts: 1_000), Event(key: "b", value: 7, ts: 3_000),
                      Event(key: "a", value: 2, ts: 15_000),
                      Event(key: "a", value: 40, ts: 2_000)]   // late: the watermark is at 14 999
        let keyed = env.fromSource(CollectionSource(events),
                                   watermarkStrategy: WatermarkStrategy<Event>.forMonotonousTimestamps().withTimestampAssigner { e, _ in e.ts },
                                   name: "events", parallelism: 1)   // one source subtask: a deterministic watermark
            .keyBy { $0.key }
        let windowed = keyed.window(TumblingEventTimeWindows.of(.seconds(10))).sideOutputLateData(late)
        let sums = windowed.reduce { Event(key: $0.key, value: $0.value + $1.value, ts: max($0.ts, $1.ts)) }
        let lateSink = CollectSink<Event>(), sumSink = CollectSink<Event>()
        sums.sinkTo(sumSink)
        sums.getSideOutput(late).sinkTo(lateSink)
        // Without a side output the late record is dropped and counted.
        let all = keyed.window(TumblingEventTimeWindows.of(.seconds(10))).process(Everything())
        let allSink = CollectSink<String>()
        all.sinkTo(allSink)
        let result = try env.execute()
        XCTAssertEqual(sumSink.values.map { "\($0.key)=\($0.value)" }.sorted(), ["a=1", "a=2", "b=7"])
        XCTAssertEqual(sumSink.records.map(\.timestamp).compactMap { $0 }.sorted(), [9_999, 9_999, 19_999])
        XCTAssertEqual(lateSink.values.map(\.value), [40])
        XCTAssertEqual(allSink.values.sorted(), ["a|0|1|1", "a|10000|1|2", "b|0|1|7"])
        XCTAssertEqual(result.operators.filter { $0.name == "Window" }.map { $0.counters["numLateRecordsDropped"] ?? 0 }, [0, 1],
                       "without a side output the late record is counted")
    }

    func testCountWindows() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        let events = (1...7).map { Event(key: $0 % 2 == 0 ? "even" : "odd", value: Int64($0), ts: 0) }
        let keyed = env.fromData(events).keyBy { $0.key }
        let tumblingSink = CollectSink<Int64>(), slidingSink = CollectSink<Int64>()
        keyed.countWindow(2).aggregate(Sum()).sinkTo(tumblingSink)
        keyed.countWindow(3, 1).aggregate(Sum()).sinkTo(slidingSink)
        try env.execute()
        // odd: 1,3,5,7 → [1+3, 5+7]; even: 2,4,6 → [2+4] (6 waits for a partner forever).
        XCTAssertEqual(tumblingSink.values.sorted(), [4, 6, 12])
        XCTAssertEqual(tumblingSink.records.map(\.timestamp), [Int64.max, Int64.max, Int64.max])
        // Last three at every record: odd 1, 4, 9, 15; even 2, 6, 12.
        XCTAssertEqual(slidingSink.values.sorted(), [1, 2, 4, 6, 9, 12, 15])
    }
}

