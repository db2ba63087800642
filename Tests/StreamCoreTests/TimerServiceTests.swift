import StreamCore
import StreamTesting
import XCTest

/// DESIGN.md rule 6: timers fire when the watermark reaches them, in timestamp order, deduplicated
/// per (key, time); a timer at or behind the watermark waits for the next advance.
final class TimerServiceTests: XCTestCase {
    struct Cmd: Sendable {
        let key: String
        let timer: Int64
        var processingTime = false
        var delete = false
    }

    /// Registers (or deletes) the timer each command names; logs every firing.
    final class Timers: KeyedProcessFunction {
        typealias Key = String
        var reregisterInTimer: Int64?
        func processElement(_ c: Cmd, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            switch (c.processingTime, c.delete) {
            case (false, false): ctx.timerService.registerEventTimeTimer(c.timer)
            case (false, true): ctx.timerService.deleteEventTimeTimer(c.timer)
            case (true, false): ctx.timerService.registerProcessingTimeTimer(c.timer)
            case (true, true): ctx.timerService.deleteProcessingTimeTimer(c.timer)
            }
        }
        func onTimer(_ t: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            let domain = ctx.timeDomain == .eventTime ? "event" : "processing"
            try out.collect("\(ctx.currentKey)@\(t) \(domain)")
            if let r = reregisterInTimer, ctx.timeDomain == .eventTime, t < r {
                ctx.timerService.registerEventTimeTimer(r)
            }
        }
    }

    func harness(_ f: Timers = Timers()) -> KeyedOneInputOperatorHarness<String, KeyedProcessOperator<Timers>> {
        ProcessFunctionHarnesses.forKeyedProcessFunction(f, key: { $0.key })
    }

    func testFiresWhenWatermarkReachesTimeInTimestampOrder() throws {
        let h = harness()
        try h.processElement(Cmd(key: "b", timer: 300))
        try h.processElement(Cmd(key: "a", timer: 100))
        try h.processElement(Cmd(key: "c", timer: 200))
        try h.processWatermark(99)
        XCTAssertEqual(h.records, [])
        try h.processWatermark(250)
        XCTAssertEqual(h.records, ["a@100 event", "c@200 event"])
        try h.processWatermark(300)
        XCTAssertEqual(h.records, ["a@100 event", "c@200 event", "b@300 event"], "fires at watermark == t")
        XCTAssertEqual(h.numEventTimeTimers, 0)
    }

    func testDeduplicatedPerKeyAndTime() throws {
        let h = harness()
        for _ in 0..<3 { try h.processElement(Cmd(key: "a", timer: 100)) }
        try h.processElement(Cmd(key: "b", timer: 100))
        XCTAssertEqual(h.numEventTimeTimers, 2)
        try h.processWatermark(1_000)
        XCTAssertEqual(h.records.sorted(), ["a@100 event", "b@100 event"])
    }

    func testTimerAtOrBehindWatermarkWaitsForNextAdvance() throws {
        let h = harness()
        try h.processWatermark(500)
        try h.processElement(Cmd(key: "a", timer: 400))   // behind
        try h.processElement(Cmd(key: "b", timer: 500))   // at
        XCTAssertEqual(h.records, [], "not fired at registration")
        try h.processElement(Cmd(key: "z", timer: 1_000))
        try h.processWatermark(501)
        XCTAssertEqual(h.records, ["a@400 event", "b@500 event"], "fires with the next watermark advance")
        try h.processElement(Cmd(key: "c", timer: 10))
        XCTAssertEqual(h.records.count, 2)
        try h.processWatermark(502)
        XCTAssertEqual(h.records.last, "c@10 event")
        XCTAssertEqual(h.numEventTimeTimers, 1, "z@1000 still pending")
    }

    func testTimerRegisteredInOnTimerAtOrBeforeWatermarkFiresInSameAdvance() throws {
        let f = Timers()
        f.reregisterInTimer = 150
        let h = harness(f)
        try h.processElement(Cmd(key: "a", timer: 100))
        try h.processWatermark(200)
        XCTAssertEqual(h.records, ["a@100 event", "a@150 event"])
    }

    func testDeleteEventTimeTimer() throws {
        let h = harness()
        try h.processElement(Cmd(key: "a", timer: 100))
        try h.processElement(Cmd(key: "a", timer: 200))
        try h.processElement(Cmd(key: "a", timer: 100, delete: true))
        XCTAssertEqual(h.numEventTimeTimers, 1)
        try h.processWatermark(1_000)
        XCTAssertEqual(h.records, ["a@200 event"])
        // Registered again after deletion: fires once.
        try h.processElement(Cmd(key: "a", timer: 2_000))
        try h.processElement(Cmd(key: "a", timer: 2_000, delete: true))
        try h.processElement(Cmd(key: "a", timer: 2_000))
        try h.processWatermark(3_000)
        XCTAssertEqual(h.records, ["a@200 event", "a@2000 event"])
    }

    func testTimerOutputTimestampsAndOrderingWithWatermark() throws {
        let h = harness()
        try h.processElement(Cmd(key: "a", timer: 100), timestamp: 42)
        try h.processElement(Cmd(key: "a", timer: 7, processingTime: true))
        try h.processWatermark(100)
        try h.setProcessingTime(7)
        XCTAssertEqual(h.log, [.record("a@100 event", timestamp: 100), .watermark(100),
                               .record("a@7 processing", timestamp: nil)],
                       "timer output comes before the watermark that fired it; processing-time output has no timestamp")
    }

    func testProcessingTimeTimersFollowTheManualClock() throws {
        let h = harness()
        try h.setProcessingTime(1_000)
        try h.processElement(Cmd(key: "a", timer: 1_500, processingTime: true))
        try h.processElement(Cmd(key: "b", timer: 1_200, processingTime: true))
        try h.processElement(Cmd(key: "b", timer: 1_200, processingTime: true))
        try h.processElement(Cmd(key: "c", timer: 500, processingTime: true))   // in the past
        XCTAssertEqual(h.numProcessingTimeTimers, 3)
        try h.setProcessingTime(1_001)
        XCTAssertEqual(h.records, ["c@500 processing"], "a past timer fires at the next check")
        try h.setProcessingTime(1_499)
        XCTAssertEqual(h.records, ["c@500 processing", "b@1200 processing"])
        try h.setProcessingTime(10_000)
        XCTAssertEqual(h.records, ["c@500 processing", "b@1200 processing", "a@1500 processing"])
        XCTAssertTrue(try h.finish().isEmpty)
    }

    func testCurrentWatermarkVisibleInProcessElement() throws {
        final class Echo: KeyedProcessFunction {
            typealias Key = Int
            func processElement(_ v: Int, _ ctx: KeyedProcessContext<Int>, _ out: Collector<Int64>) throws {
                try out.collect(ctx.timerService.currentWatermark())
            }
        }
        let h = ProcessFunctionHarnesses.forKeyedProcessFunction(Echo(), key: { $0 })
        try h.processElement(1)
        try h.processWatermark(77)
        try h.processElement(2)
        XCTAssertEqual(h.records, [Int64.min, 77])
    }

    func testFinalWatermarkLeavesNoTimers() throws {
        let h = harness()
        for i in 0..<50 { try h.processElement(Cmd(key: "k\(i % 7)", timer: Int64(i * 1_000))) }
        try h.processWatermark(Int64.max)
        XCTAssertEqual(h.records.count, 50)
        XCTAssertTrue(try h.finish().isEmpty)
    }

    func testKeyedCoProcessTimersUseTheMinimumOfBothInputs() throws {
        final class Join: KeyedCoProcessFunction {
            typealias Key = String
            func processElement1(_ v: Cmd, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
                ctx.timerService.registerEventTimeTimer(v.timer)
            }
            func processElement2(_ v: Cmd, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
                ctx.timerService.registerEventTimeTimer(v.timer)
            }
            func onTimer(_ t: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
                try out.collect("\(ctx.currentKey)@\(t)")
            }
        }
        let h = ProcessFunctionHarnesses.forKeyedCoProcessFunction(Join(), key1: { $0.key }, key2: { $0.key })
        try h.processElement1(Cmd(key: "a", timer: 100))
        try h.processElement2(Cmd(key: "b", timer: 50))
        try h.processWatermark1(1_000)
        XCTAssertEqual(h.records, [], "input 2 still at Long.MIN_VALUE holds the operator back")
        try h.processWatermark2(60)
        XCTAssertEqual(h.records, ["b@50"])
        try h.processWatermark2(2_000)
        XCTAssertEqual(h.records, ["b@50", "a@100"])
        XCTAssertEqual(h.watermarks, [60, 1_000])
    }
}
