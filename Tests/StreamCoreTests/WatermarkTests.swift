import StreamCore
import StreamTesting
import XCTest

/// DESIGN.md rule 2: watermark arithmetic, emission, min-merge, idleness and end of input.
final class WatermarkTests: XCTestCase {

    // MARK: arithmetic

    func testBoundedOutOfOrdernessIsMaxMinusBoundMinusOne() {
        let gen = BoundedOutOfOrdernessWatermarks<Int>(outOfOrdernessMillis: 5_000)
        let out = RecordingWatermarkOutput()
        gen.onPeriodicEmit(output: out)
        XCTAssertEqual(out.watermarks, [Int64.min], "before any event the watermark is Long.MIN_VALUE")
        gen.onEvent(0, timestamp: 10_000, output: out)
        gen.onEvent(0, timestamp: 7_000, output: out)  // out of order: max stays 10 000
        gen.onPeriodicEmit(output: out)
        XCTAssertEqual(out.watermarks.last, 10_000 - 5_000 - 1)
        gen.onEvent(0, timestamp: 12_345, output: out)
        gen.onPeriodicEmit(output: out)
        XCTAssertEqual(out.watermarks.last, 7_344)
    }

    func testMonotonousIsMaxMinusOneAndSQLVariantIsMaxMinusBound() {
        let mono = WatermarkStrategy<Int>.forMonotonousTimestamps().createGenerator(clock: ManualClock())
        let sql = WatermarkStrategy<Int>.forSQLBoundedOutOfOrderness(.seconds(5)).createGenerator(clock: ManualClock())
        let a = RecordingWatermarkOutput(), b = RecordingWatermarkOutput()
        mono.onEvent(0, timestamp: 1_000, output: a)
        sql.onEvent(0, timestamp: 10_000, output: b)
        mono.onPeriodicEmit(output: a)
        sql.onPeriodicEmit(output: b)
        XCTAssertEqual(a.watermarks, [999])
        XCTAssertEqual(b.watermarks, [5_000])
    }

    /// Flink SQL's watermark assigner starts at 0 and emits only increases, so before the epoch
    /// (and up to bound past it) no watermark is emitted; found by the differential test.
    func testSQLVariantEmitsNothingAtOrBelowZero() {
        let sql = WatermarkStrategy<Int>.forSQLBoundedOutOfOrderness(.seconds(2)).createGenerator(clock: ManualClock())
        let out = RecordingWatermarkOutput()
        for ts: Int64 in [-60_000, -1, 1_999, 2_000, 2_001] {
            sql.onEvent(0, timestamp: ts, output: out)
            sql.onPeriodicEmit(output: out)
        }
        XCTAssertEqual(out.watermarks, [1])
    }

    func testNegativeTimestampsDoNotOverflow() {
        let gen = BoundedOutOfOrdernessWatermarks<Int>(outOfOrdernessMillis: 300_000)
        let out = RecordingWatermarkOutput()
        gen.onEvent(0, timestamp: -1, output: out)
        gen.onPeriodicEmit(output: out)
        XCTAssertEqual(out.watermarks, [-300_002])
    }

    // MARK: emission in a job

    func testIntervalZeroEmitsAfterEveryRecordThatRaisesItAndNeverDecreases() throws {
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.autoWatermarkInterval = .zero
        let ts: [Int64] = [1_000, 3_000, 2_000, 3_000, 7_000, 6_500, 10_000]
        let sink = CollectSink<String>()
        env.fromSource(CollectionSource(Array(0..<ts.count), timestamps: ts),
                       watermarkStrategy: .forBoundedOutOfOrderness(.seconds(1)), name: "src")
            .transform("log") { WatermarkLogger<Int>(output: $0.output) }
            .sinkTo(sink)
        try env.execute()
        XCTAssertEqual(sink.values, [
            "r:0@1000", "w:-1",
            "r:1@3000", "w:1999",
            "r:2@2000",            // behind the max: no watermark
            "r:3@3000",            // equal to the max: the watermark does not move
            "r:4@7000", "w:5999",
            "r:5@6500",
            "r:6@10000", "w:8999",
            "w:+inf",              // end of input
        ])
    }

    func testPeriodicEmissionFollowsTheInjectedClock() throws {
        // assignTimestampsAndWatermarks with a 200 ms interval, driven by the harness's manual clock.
        let strategy = WatermarkStrategy<Int64>.forBoundedOutOfOrderness(.milliseconds(100))
            .withTimestampAssigner { v, _ in v }
        let harness = OneInputOperatorHarness(startTime: 0) {
            TimestampsAndWatermarksOperator(strategy: strategy, autoWatermarkIntervalMillis: 200, setup: $0)
        }
        try harness.processElement(1_000)
        try harness.processElement(1_500)
        XCTAssertEqual(harness.watermarks, [], "nothing before the first interval elapses")
        try harness.setProcessingTime(199)
        XCTAssertEqual(harness.watermarks, [])
        try harness.setProcessingTime(200)
        XCTAssertEqual(harness.watermarks, [1_399])
        try harness.processElement(1_200)
        try harness.setProcessingTime(400)
        XCTAssertEqual(harness.watermarks, [1_399], "an unchanged watermark is not emitted again")
        try harness.processElement(2_000)
        try harness.setProcessingTime(650)
        XCTAssertEqual(harness.watermarks, [1_399, 1_899])
        // Upstream watermarks are replaced, except the final one.
        try harness.processWatermark(5_000)
        XCTAssertEqual(harness.watermarks, [1_399, 1_899])
        try harness.processWatermark(Int64.max)
        XCTAssertEqual(harness.watermarks.last, Int64.max)
        XCTAssertEqual(harness.records, [1_000, 1_500, 1_200, 2_000])
        XCTAssertEqual(harness.recordsWithTimestamps.map(\.1), [1_000, 1_500, 1_200, 2_000])
    }

    // MARK: min-merge

    func testSplitsOfOneSourceSubtaskAreMergedByMinimum() throws {
        // Two splits read round-robin one record at a time; split 0 runs ahead in event time.
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.autoWatermarkInterval = .zero
        env.sourceChunkSize = 1
        let source = DataGeneratorSource<Int64>(count: 8, splits: 2, timestamp: { i in
            i < 4 ? (i + 1) * 1_000 : (i - 3) * 100
        }) { $0 }
        let sink = CollectSink<String>()
        env.fromSource(source, watermarkStrategy: .forMonotonousTimestamps(), name: "src")
            .transform("log") { WatermarkLogger<Int64>(output: $0.output) }
            .sinkTo(sink)
        try env.execute()
        let watermarks = sink.values.filter { $0.hasPrefix("w:") }
        XCTAssertEqual(watermarks, ["w:99", "w:199", "w:299", "w:399", "w:+inf"],
                       "the slower split holds the watermark back; a finished split no longer counts")
    }

    func testMultiplexerMinimumIdlenessAndRelease() {
        var changes: [WatermarkMultiplexer.Change] = []
        let m = WatermarkMultiplexer { changes.append($0) }
        let a = m.output(for: "a"), b = m.output(for: "b")
        a.emitWatermark(100)
        XCTAssertEqual(changes, [], "b has no watermark yet: the minimum is still Long.MIN_VALUE")
        b.emitWatermark(50)
        XCTAssertEqual(changes, [.watermark(50)])
        b.emitWatermark(40)
        XCTAssertEqual(changes, [.watermark(50)], "per-split decreases are ignored")
        b.markIdle()
        XCTAssertEqual(changes, [.watermark(50), .watermark(100)], "an idle split is left out")
        a.markIdle()
        XCTAssertEqual(changes.last, .status(.idle), "all idle: the subtask turns idle")
        b.emitWatermark(120)
        XCTAssertEqual(Array(changes.suffix(2)), [.status(.active), .watermark(120)])
        m.release(splitId: "b")
        XCTAssertEqual(m.combinedWatermark, 120)
    }

    func testMultiplexerFlushesMaximumWhenAllSplitsTurnIdle() {
        var changes: [WatermarkMultiplexer.Change] = []
        let m = WatermarkMultiplexer { changes.append($0) }
        let a = m.output(for: "a"), b = m.output(for: "b")
        a.emitWatermark(10)
        b.emitWatermark(30)
        XCTAssertEqual(changes, [.watermark(10)])
        a.markIdle()
        XCTAssertEqual(changes, [.watermark(10), .watermark(30)])
        b.markIdle()
        XCTAssertEqual(changes.last, .status(.idle))
    }

    func testValveTakesMinimumOverAlignedChannels() {
        var valve = StatusWatermarkValve(channels: 3)
        XCTAssertNil(valve.inputWatermark(10, channel: 0))
        XCTAssertNil(valve.inputWatermark(20, channel: 1))
        XCTAssertEqual(valve.inputWatermark(5, channel: 2), .emitWatermark(5))
        XCTAssertNil(valve.inputWatermark(4, channel: 2), "a channel's watermark never goes back")
        XCTAssertEqual(valve.inputWatermark(15, channel: 2), .emitWatermark(10))
        XCTAssertEqual(valve.inputWatermark(30, channel: 0), .emitWatermark(15))
    }

    func testValveLeavesIdleChannelsOutAndRealignsThem() {
        var valve = StatusWatermarkValve(channels: 2)
        _ = valve.inputWatermark(100, channel: 0)
        XCTAssertEqual(valve.inputWatermark(10, channel: 1), .emitWatermark(10))
        // Channel 1 goes idle: the minimum over the rest is 100.
        XCTAssertEqual(valve.inputStatus(.idle, channel: 1), [.emitWatermark(100)])
        XCTAssertEqual(valve.inputWatermark(150, channel: 0), .emitWatermark(150))
        // Channel 1 comes back behind the output: it is not aligned until it catches up.
        XCTAssertEqual(valve.inputStatus(.active, channel: 1), [])
        XCTAssertNil(valve.inputWatermark(120, channel: 1))
        XCTAssertEqual(valve.inputWatermark(200, channel: 0), .emitWatermark(200), "unaligned channel does not hold back")
        XCTAssertNil(valve.inputWatermark(210, channel: 1), "caught up: aligned again, but 200 is still the minimum")
        XCTAssertEqual(valve.inputWatermark(300, channel: 0), .emitWatermark(210))
    }

    func testValveFlushesMaximumAndTurnsIdleWhenAllChannelsIdle() {
        var valve = StatusWatermarkValve(channels: 2)
        _ = valve.inputWatermark(50, channel: 0)
        XCTAssertEqual(valve.inputWatermark(70, channel: 1), .emitWatermark(50))
        XCTAssertEqual(valve.inputStatus(.idle, channel: 1), [])
        XCTAssertEqual(valve.inputStatus(.idle, channel: 0), [.emitWatermark(70), .emitStatus(.idle)])
        XCTAssertNil(valve.inputWatermark(500, channel: 0), "watermarks of idle channels are ignored")
        XCTAssertEqual(valve.inputStatus(.active, channel: 0), [.emitStatus(.active)])
        XCTAssertEqual(valve.inputWatermark(500, channel: 0), .emitWatermark(500))
    }

    func testTwoInputOperatorsCombineAsFlinksIndexedCombinedWatermarkStatus() {
        var c = TwoInputWatermarkCombiner()
        XCTAssertEqual(c.watermark(100, input: 1), [], "input 2 still at Long.MIN_VALUE")
        XCTAssertEqual(c.watermark(40, input: 2), [.emitWatermark(40)])
        XCTAssertEqual(c.status(.idle, input: 2), [.emitWatermark(100)], "an idle input is left out")
        XCTAssertEqual(c.watermark(150, input: 1), [.emitWatermark(150)])
        XCTAssertEqual(c.status(.idle, input: 1), [.emitStatus(.idle)], "both idle: the operator is idle")
        // A watermark makes its input active again (PartialWatermark.setWatermark clears idleness).
        XCTAssertEqual(c.watermark(200, input: 2), [.emitStatus(.active), .emitWatermark(200)])
        XCTAssertEqual(c.combinedWatermark, 200)
    }

    func testParallelSourcesMergeByMinimumDownstream() throws {
        // Two source subtasks with different event-time speeds feed one operator over an exchange:
        // it never sees a watermark beyond what the slower subtask allows, and ends at +inf.
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.autoWatermarkInterval = .zero
        env.bufferSize = 4
        let source = DataGeneratorSource<Int64>(count: 200, splits: 2, timestamp: { i in
            i < 100 ? i * 10 : (i - 100) * 1_000
        }) { $0 }
        let sink = CollectSink<String>()
        env.fromSource(source, watermarkStrategy: .forMonotonousTimestamps(), name: "src")
            .transform("log", parallelism: 1) { WatermarkLogger<Int64>(output: $0.output) }
            .sinkTo(sink, parallelism: 1)
        try env.execute()
        let watermarks = sink.values.filter { $0.hasPrefix("w:") }.map { $0.dropFirst(2) }
        XCTAssertEqual(watermarks.last, "+inf")
        let finite = watermarks.dropLast().map { Int64($0)! }
        XCTAssertEqual(finite, finite.sorted(), "watermarks never decrease")
        // With the minimum over both subtasks, no record of either is ever behind the watermark
        // (timestamps are monotonous per subtask); taking the faster one would make the slow
        // subtask's records late.
        var current = Int64.min
        var records = 0
        for line in sink.values {
            if line.hasPrefix("w:") {
                current = line == "w:+inf" ? Int64.max : Int64(line.dropFirst(2))!
            } else {
                let ts = Int64(line.split(separator: "@")[1])!
                XCTAssertGreaterThan(ts, current, "record \(line) arrived behind watermark \(current)")
                records += 1
            }
        }
        XCTAssertEqual(records, 200)
    }

    // MARK: idleness

    func testIdlenessNeedsTimeoutAfterFirstQuietCheck() {
        let clock = ManualClock(0)
        let gen = WatermarkStrategy<Int>.forBoundedOutOfOrderness(.zero).withIdleness(.seconds(1))
            .createGenerator(clock: clock)
        let out = RecordingWatermarkOutput()
        gen.onEvent(0, timestamp: 100, output: out)
        gen.onPeriodicEmit(output: out)                 // activity since last check
        XCTAssertEqual(out.events, ["w:99"])
        clock.set(500)
        gen.onPeriodicEmit(output: out)                 // first quiet check: starts the timer
        clock.set(1_500)
        gen.onPeriodicEmit(output: out)                 // exactly the timeout: not yet
        XCTAssertFalse(out.events.contains("idle"))
        clock.set(1_501)
        gen.onPeriodicEmit(output: out)
        XCTAssertEqual(out.events.last, "idle")
        let count = out.events.count
        gen.onPeriodicEmit(output: out)
        XCTAssertEqual(out.events.count, count, "idle is reported once")
        gen.onEvent(0, timestamp: 200, output: out)
        gen.onPeriodicEmit(output: out)
        XCTAssertEqual(out.events.last, "w:199", "an event makes it active again")
    }

    func testIdleSplitDoesNotHoldBackTheSubtask() {
        let clock = ManualClock(0)
        var changes: [WatermarkMultiplexer.Change] = []
        let m = WatermarkMultiplexer { changes.append($0) }
        let strategy = WatermarkStrategy<Int>.forMonotonousTimestamps().withIdleness(.milliseconds(100))
        let busy = strategy.createGenerator(clock: clock), quiet = strategy.createGenerator(clock: clock)
        let busyOut = m.output(for: "busy"), quietOut = m.output(for: "quiet")
        quiet.onEvent(0, timestamp: 10, output: quietOut)
        for t in stride(from: Int64(0), through: 400, by: 50) {
            clock.set(t)
            busy.onEvent(0, timestamp: 1_000 + t, output: busyOut)
            m.deferred {
                busy.onPeriodicEmit(output: busyOut)
                quiet.onPeriodicEmit(output: quietOut)
            }
        }
        guard case .watermark(let last)? = changes.last(where: { if case .watermark = $0 { true } else { false } }) else {
            return XCTFail("no watermark: \(changes)")
        }
        XCTAssertEqual(last, 1_399, "once the quiet split is idle the busy split's watermark passes")
        XCTAssertTrue(changes.contains(.watermark(9)), "before idleness the quiet split held it at 9")
    }

    // MARK: end of input

    func testEndOfInputFiresEverythingPending() throws {
        final class FireAtEnd: KeyedProcessFunction {
            typealias Key = Int
            func processElement(_ v: Int, _ ctx: KeyedProcessContext<Int>, _ out: Collector<String>) throws {
                ctx.timerService.registerEventTimeTimer(1_000_000_000 + Int64(v))
            }
            func onTimer(_ t: Int64, _ ctx: KeyedProcessContext<Int>, _ out: Collector<String>) throws {
                try out.collect("fired \(ctx.currentKey) at \(t) wm=\(ctx.timerService.currentWatermark() == Int64.max ? "+inf" : "?")")
            }
        }
        let env = StreamExecutionEnvironment(parallelism: 2)
        let got = try env.fromData([3, 1, 2]).keyBy { $0 }.process(FireAtEnd()).executeAndCollect()
        XCTAssertEqual(got.sorted(), [
            "fired 1 at 1000000001 wm=+inf", "fired 2 at 1000000002 wm=+inf", "fired 3 at 1000000003 wm=+inf",
        ])
    }
}
