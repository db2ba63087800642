import StreamCore
import XCTest

/// The DataStream API end to end on the threaded runtime.
final class ApiTests: XCTestCase {
    func testMapFilterFlatMapAndCounters() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        let sink = CollectSink<Int64>()
        env.fromSequence(1, 100)
            .map(name: "square") { $0 * $0 }
            .filter(name: "even") { $0 % 2 == 0 }
            .flatMap(name: "twice") { [$0, -$0] }
            .sinkTo(sink)
        let result = try env.execute()
        let squares: [Int64] = (1...100).map { Int64($0) * Int64($0) }
        let expected: [Int64] = squares.filter { $0 % 2 == 0 }.flatMap { [$0, -$0] }
        XCTAssertEqual(sink.values.sorted(), expected.sorted())
        XCTAssertEqual(result.operator("square")?.numRecordsIn, 100)
        XCTAssertEqual(result.operator("even")?.numRecordsIn, 100)
        XCTAssertEqual(result.operator("even")?.numRecordsOut, 50)
        XCTAssertEqual(result.operator("twice")?.numRecordsOut, 100)
        XCTAssertEqual(result.operator("square")?.recordsInPerSubtask, [50, 50], "fromSequence splits over both subtasks")
        XCTAssertEqual(result.operator("square")?.parallelism, 2)
    }

    func testCollectorFlatMapAndTimestampsPreserved() throws {
        let env = StreamExecutionEnvironment(parallelism: 1)
        let sink = CollectSink<String>()
        env.fromData(["a b", "c"], timestamps: [100, 200])
            .flatMap { (line: String, out: Collector<String>) in
                for word in line.split(separator: " ") { try out.collect(String(word)) }
            }
            .sinkTo(sink)
        try env.execute()
        XCTAssertEqual(sink.records.map(\.value), ["a", "b", "c"])
        XCTAssertEqual(sink.records.map(\.timestamp), [100, 100, 200])
    }

    static let small = OutputTag<Int64>("small")

    final class Split: ProcessFunction {
        func processElement(_ v: Int64, _ ctx: ProcessContext, _ out: Collector<String>) throws {
            if v < 10 { try ctx.output(ApiTests.small, v) } else { try out.collect("big \(v)@\(ctx.timestamp.map(String.init) ?? "-")") }
        }
    }

    func testProcessFunctionWithSideOutputAtAnotherParallelism() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        let main = CollectSink<String>(), side = CollectSink<Int64>()
        let processed = env.fromSequence(1, 20).process(name: "split", Split())
        processed.sinkTo(main)
        processed.getSideOutput(Self.small).map { $0 * 100 }.setParallelism(1).sinkTo(side, parallelism: 1)
        try env.execute()
        XCTAssertEqual(main.values.sorted(), (10...20).map { "big \($0)@-" }.sorted())
        XCTAssertEqual(side.values.sorted(), (1...9).map { Int64($0 * 100) })
    }

    func testUnionOfThreeStreams() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        let a = env.fromData([1, 2]), b = env.fromData([3]), c = env.fromData([4, 5, 6])
        let got = try a.union(b, c).map { $0 * 10 }.executeAndCollect()
        XCTAssertEqual(got.sorted(), [10, 20, 30, 40, 50, 60])
    }

    final class Tagger: CoProcessFunction {
        func processElement1(_ v: Int, _ ctx: ProcessContext, _ out: Collector<String>) throws { try out.collect("int \(v)") }
        func processElement2(_ v: String, _ ctx: ProcessContext, _ out: Collector<String>) throws { try out.collect("str \(v)") }
    }

    func testConnectWithCoProcessFunction() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        let got = try env.fromData([1, 2]).connect(env.fromData(["x"])).process(Tagger()).executeAndCollect()
        XCTAssertEqual(got.sorted(), ["int 1", "int 2", "str x"])
    }

    struct Txn: Sendable { let device: String; let amount: Int }
    struct Device: Sendable { let id: String; let country: String }

    /// Enriches transactions with the latest device country seen for the same device id.
    final class Enrich: KeyedCoProcessFunction {
        typealias Key = String
        var country: ValueState<String>!
        var pending: ListState<Int>!
        func open(_ context: RuntimeContext) throws {
            country = try context.getState(ValueStateDescriptor<String>("country"))
            pending = try context.getListState(ListStateDescriptor<Int>("pending"))
        }
        func processElement1(_ t: Txn, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            if let c = country.value() { try out.collect("\(t.device):\(t.amount):\(c)") } else { pending.add(t.amount) }
        }
        func processElement2(_ d: Device, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            country.update(d.country)
            for amount in pending.get() { try out.collect("\(d.id):\(amount):\(d.country)") }
            pending.clear()
        }
    }

    func testKeyedConnectSharesStatePerKey() throws {
        let env = StreamExecutionEnvironment(parallelism: 3)
        let txns = env.fromData((0..<30).map { Txn(device: "d\($0 % 5)", amount: $0) })
        let devices = env.fromData((0..<5).map { Device(id: "d\($0)", country: $0 % 2 == 0 ? "FR" : "DE") })
        let got = try txns.keyBy { $0.device }.connect(devices.keyBy { $0.id }).process(Enrich()).executeAndCollect()
        let expected = (0..<30).map { "d\($0 % 5):\($0):\(($0 % 5) % 2 == 0 ? "FR" : "DE")" }
        XCTAssertEqual(got.sorted(), expected.sorted(), "every transaction joined once, whichever side came first")
    }

    func testBroadcastRebalanceAndForwardAcrossParallelism() throws {
        let env = StreamExecutionEnvironment(parallelism: 1)
        let broadcast = CollectSink<Int>(), rebalanced = CollectSink<Int>(), mismatch = CollectSink<Int>()
        let src = env.fromData(Array(0..<10))
        src.broadcast().map { $0 }.setParallelism(3).sinkTo(broadcast, parallelism: 3)
        src.rebalance().map { $0 }.setParallelism(2).sinkTo(rebalanced, parallelism: 2)
        // A forward edge into an operator of another parallelism still delivers everything.
        src.map { $0 + 100 }.setParallelism(4).sinkTo(mismatch, parallelism: 4)
        let result = try env.execute()
        XCTAssertEqual(broadcast.values.count, 30)
        XCTAssertEqual(Set(broadcast.values), Set(0..<10))
        XCTAssertEqual(rebalanced.values.sorted(), Array(0..<10))
        XCTAssertEqual(rebalanced.records(ofSubtask: 0).count, 5, "round-robin")
        XCTAssertEqual(mismatch.values.sorted(), Array(100..<110))
        XCTAssertEqual(result.operators.filter { $0.name == "Map" }.map(\.numRecordsIn), [30, 10, 10])
    }

    func testExplainShowsChains() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.fromSequence(1, 10).map(name: "m") { $0 }.filter(name: "f") { _ in true }
            .keyBy { $0 }.process(name: "count", Passthrough())
            .sinkTo(DiscardingSink<Int64>(), name: "out")
        let plan = try env.explain()
        XCTAssertEqual(plan, """
            chain ×2: Sequence Source -> m -> f
            chain ×2: count -> out  <= f
            """)
        let single = StreamExecutionEnvironment(parallelism: 1)
        single.fromSequence(1, 10).keyBy { $0 }.process(name: "count", Passthrough()).sinkTo(DiscardingSink<Int64>(), name: "out")
        XCTAssertEqual(try single.explain(), "chain ×1: Sequence Source -> count -> out",
                       "with one producer and one consumer keyBy is chained")
    }

    final class Passthrough: KeyedProcessFunction {
        typealias Key = Int64
        func processElement(_ v: Int64, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<Int64>) throws { try out.collect(v) }
    }


    func testUnboundedJobRunsUntilCancelled() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.fromSource(ScriptedSource<Int>(.continuousUnbounded) { _ in .nothingAvailable }, watermarkStrategy: .noWatermarks(), name: "endless")
            .keyBy { $0 }.map { $0 }.sinkTo(DiscardingSink<Int>())
        let client = try env.executeAsync()
        usleep(50_000)
        client.cancel()
        XCTAssertThrowsError(try client.waitForResult()) { error in
            XCTAssertTrue(error is JobCancelledError, "\(error)")
        }
    }

    final class EventTimeOrder: KeyedProcessFunction {
        typealias Key = String
        func processElement(_ v: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            ctx.timerService.registerEventTimeTimer(v + 1_000)
        }
        func onTimer(_ t: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            try out.collect("\(t)@wm\(ctx.timerService.currentWatermark() == Int64.max ? "∞" : "\(ctx.timerService.currentWatermark())")")
        }
    }

    func testAssignTimestampsAndWatermarksMidStream() throws {
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.autoWatermarkInterval = .zero
        let got = try env.fromData([Int64(1_000), 5_000, 3_000, 9_000])
            .assignTimestampsAndWatermarks(WatermarkStrategy<Int64>.forMonotonousTimestamps().withTimestampAssigner { v, _ in v })
            .keyBy { _ in "k" }
            .process(EventTimeOrder())
            .executeAndCollect()
        // wm after 5000 is 4999 (fires 2000); after 9000 is 8999 (fires 4000, 6000); the rest at +∞.
        XCTAssertEqual(got, ["2000@wm4999", "4000@wm8999", "6000@wm8999", "10000@wm∞"])
    }

    func testPrintSinkRuns() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.fromData(["printed by ApiTests"]).print("api")
        let result = try env.execute()
        XCTAssertEqual(result.operator("Print to Std. Out")?.numRecordsIn, 1)
    }
}
