import Operators
import StreamTesting
import XCTest

/// DESIGN.md rules 1, 3, 4 and 5 on the window operator, driven by hand.
class WindowTests: XCTestCase {
    struct Event: Codable, Sendable, Equatable {
        let key: String
        let value: Int64
    }

    struct CountSum: AggregateFunction {
        func createAccumulator() -> [Int64] { [0, 0] }
        func add(_ e: Event, to acc: inout [Int64]) { acc[0] += 1; acc[1] += e.value }
        func getResult(_ acc: [Int64]) -> String { "count=\(acc[0]) sum=\(acc[1])" }
        func merge(_ a: [Int64], _ b: [Int64]) -> [Int64] { [a[0] + b[0], a[1] + b[1]] }
    }

    /// Formats results with their window.
    final class Describe: ProcessWindowFunction {
        typealias Key = String
        func process(_ key: String, _ ctx: WindowContext, _ elements: [String], _ out: Collector<String>) throws {
            try out.collect("\(key) \(ctx.window) \(elements[0])")
        }
    }

    static let late = OutputTag<Event>("late")

    typealias Harness = KeyedOneInputOperatorHarness<String, WindowOperator<String, Event, [Int64], String>>

    func harness(_ assigner: WindowAssigner, lateness: Duration = .zero, tag: OutputTag<Event>? = nil) throws -> Harness {
        let f = CountSum(), describe = Describe()
        let h = try Harness(key: { $0.key }) { setup in
            try WindowOperator(assigner: assigner, allowedLateness: lateness, lateDataTag: tag, logic: WindowLogic(
                add: { acc, v in var a = acc ?? f.createAccumulator(); f.add(v, to: &a); return a },
                merge: f.merge,
                emit: { key, ctx, acc, out in try describe.process(key, ctx, [f.getResult(acc)], out) }), setup: setup)
        }
        if let tag { h.captureSideOutput(tag) }
        return h
    }

    func e(_ key: String = "a", _ value: Int64 = 1) -> Event { Event(key: key, value: value) }

    // MARK: rule 1: assignment

    func testTumblingAssignmentIsATrueFloorAlsoForNegativeTimestamps() {
        let five = TumblingEventTimeWindows.of(.minutes(5))
        func windows(_ ts: Int64, _ a: WindowAssigner = five) -> [TimeWindow] {
            var out: [TimeWindow] = []
            a.assignWindows(timestamp: ts, into: &out)
            return out
        }
        XCTAssertEqual(windows(0), [TimeWindow(start: 0, end: 300_000)])
        XCTAssertEqual(windows(299_999), [TimeWindow(start: 0, end: 300_000)])
        XCTAssertEqual(windows(300_000), [TimeWindow(start: 300_000, end: 600_000)])
        XCTAssertEqual(windows(-1), [TimeWindow(start: -300_000, end: 0)])
        XCTAssertEqual(windows(-300_001), [TimeWindow(start: -600_000, end: -300_000)])
        XCTAssertEqual(windows(70_000, TumblingEventTimeWindows.of(.minutes(1), offset: .seconds(15))),
                       [TimeWindow(start: 15_000, end: 75_000)])
        XCTAssertEqual(TimeWindow(start: 0, end: 300_000).maxTimestamp, 299_999)
    }

    func testSlidingAssignsEveryWindowContainingTheTimestamp() {
        let sliding = SlidingEventTimeWindows.of(.minutes(30), .minutes(5))
        var out: [TimeWindow] = []
        sliding.assignWindows(timestamp: 1_000_000, into: &out)
        XCTAssertEqual(out.count, 6)
        for w in out { XCTAssertTrue(w.start <= 1_000_000 && 1_000_000 < w.end, "\(w)") }
        XCTAssertEqual(out.map(\.start), [900_000, 600_000, 300_000, 0, -300_000, -600_000])
        out.removeAll()
        sliding.assignWindows(timestamp: -1, into: &out)
        XCTAssertEqual(out.first, TimeWindow(start: -300_000, end: 1_500_000))
    }

    // MARK: rules 3 and 4: firing, one result per window, no result for empty windows

    func testFiresWhenWatermarkReachesEndMinusOne() throws {
        let h = try harness(TumblingEventTimeWindows.of(.minutes(5)))
        try h.processElement(e("a", 3), timestamp: 10)
        try h.processElement(e("a", 4), timestamp: 299_999)
        try h.processElement(e("b", 5), timestamp: 300_000)
        try h.processWatermark(299_998)
        XCTAssertEqual(h.records, [])
        try h.processWatermark(299_999)
        XCTAssertEqual(h.recordsWithTimestamps.map { "\($0.0) @\($0.1!)" }, ["a [0, 300000) count=2 sum=7 @299999"])
        try h.processWatermark(10_000_000)   // no records in [300000..): only b's window, no empty windows
        XCTAssertEqual(h.records, ["a [0, 300000) count=2 sum=7", "b [300000, 600000) count=1 sum=5"])
        XCTAssertTrue(h.leftover.isEmpty, "state and timers purged: \(h.leftover)")
    }

    func testWithoutLatenessALateRecordIsDroppedAndCounted() throws {
        let h = try harness(TumblingEventTimeWindows.of(.seconds(10)))
        try h.processElement(e(), timestamp: 1_000)
        try h.processWatermark(9_999)
        try h.processElement(e("a", 100), timestamp: 5_000)
        XCTAssertEqual(h.records, ["a [0, 10000) count=1 sum=1"], "exactly one result per window")
        XCTAssertEqual(h.metrics.counter("numLateRecordsDropped").value, 1)
    }

    func testSlidingRecordStillCountsInWindowsNotYetFired() throws {
        let h = try harness(SlidingEventTimeWindows.of(.seconds(10), .seconds(5)), tag: Self.late)
        try h.processElement(e("a", 1), timestamp: 7_000)       // windows [0,10000) and [5000,15000)
        try h.processWatermark(9_999)                          // fires [0,10000)
        try h.processElement(e("a", 10), timestamp: 6_000)      // late for [0,10000), on time for [5000,15000)
        try h.processWatermark(14_999)
        XCTAssertEqual(h.records, ["a [0, 10000) count=1 sum=1", "a [5000, 15000) count=2 sum=11"])
        XCTAssertEqual(h.sideOutput(Self.late), [], "not late for all of its windows: no side output")
        try h.processElement(e("a", 100), timestamp: 9_000)     // late for both of its windows
        XCTAssertEqual(h.sideOutput(Self.late), [e("a", 100)])
        XCTAssertEqual(h.metrics.counter("numLateRecordsDropped").value, 0)
    }

    // MARK: rule 5: allowed lateness

    func testAllowedLatenessRefiresCumulativelyThenPurges() throws {
        let h = try harness(TumblingEventTimeWindows.of(.seconds(10)), lateness: .seconds(5), tag: Self.late)
        try h.processElement(e("a", 1), timestamp: 1_000)
        try h.processWatermark(9_999)
        XCTAssertEqual(h.records, ["a [0, 10000) count=1 sum=1"])
        try h.processElement(e("a", 2), timestamp: 2_000)      // after firing, before late: re-fire at once
        XCTAssertEqual(h.records.last, "a [0, 10000) count=2 sum=3", "full cumulative result, another row")
        try h.processWatermark(14_998)
        try h.processElement(e("a", 4), timestamp: 3_000)
        XCTAssertEqual(h.records.last, "a [0, 10000) count=3 sum=7")
        XCTAssertEqual(h.leftover.stateEntries["window-contents"], 1)
        try h.processWatermark(14_999)                         // end - 1 + L: purged
        XCTAssertNil(h.leftover.stateEntries["window-contents"])
        try h.processElement(e("a", 8), timestamp: 4_000)      // now late for its only window
        XCTAssertEqual(h.sideOutput(Self.late), [e("a", 8)])
        XCTAssertEqual(h.records.count, 3)
        XCTAssertTrue(h.leftover.isEmpty)
    }

    func testFirstRecordAfterWatermarkPassedTheEndFiresAtOnceWithJustThatRecord() throws {
        let h = try harness(TumblingEventTimeWindows.of(.seconds(10)), lateness: .seconds(30))
        try h.processWatermark(25_000)
        try h.processElement(e("a", 9), timestamp: 12_345)
        XCTAssertEqual(h.records, ["a [10000, 20000) count=1 sum=9"])
    }

    // MARK: sessions

    func testSessionsMergeWhenTheyTouch() throws {
        let h = try harness(EventTimeSessionWindows.withGap(.seconds(10)))
        try h.processElement(e("a", 1), timestamp: 0)          // [0, 10000)
        try h.processElement(e("a", 2), timestamp: 30_000)     // [30000, 40000)
        try h.processElement(e("a", 4), timestamp: 5_000)      // merges into [0, 15000)
        try h.processElement(e("b", 8), timestamp: 1_000)      // other key
        try h.processWatermark(14_998)
        XCTAssertEqual(h.records, ["b [1000, 11000) count=1 sum=8"])
        try h.processElement(e("a", 16), timestamp: 20_000)    // [20000,30000) touches [30000,40000): merges
        try h.processWatermark(14_999)
        XCTAssertEqual(h.records.last, "a [0, 15000) count=2 sum=5")
        try h.processWatermark(100_000)
        XCTAssertEqual(h.records.last, "a [20000, 40000) count=2 sum=18")
        XCTAssertEqual(h.records.count, 3)
        XCTAssertTrue(h.leftover.isEmpty, "\(h.leftover)")
    }

    func testSessionBridgingTwoSessionsMergesAllThree() throws {
        let h = try harness(EventTimeSessionWindows.withGap(.seconds(10)))
        try h.processElement(e("a", 1), timestamp: 0)
        try h.processElement(e("a", 2), timestamp: 25_000)
        try h.processElement(e("a", 4), timestamp: 12_000)     // [12000,22000) touches neither
        XCTAssertEqual(h.leftover.stateEntries["window-contents"], 1, "one key with one map of sessions")
        try h.processElement(e("a", 8), timestamp: 10_000)     // [10000,20000) bridges [0,10000) and [12000,22000)
        try h.processWatermark(Int64.max)
        XCTAssertEqual(h.records, ["a [0, 22000) count=3 sum=13", "a [25000, 35000) count=1 sum=2"])
    }

    // MARK: processing time

    func testProcessingTimeWindowsFireOnTheClock() throws {
        let h = try harness(TumblingProcessingTimeWindows.of(.seconds(1)))
        try h.setProcessingTime(100)
        try h.processElement(e("a", 1))
        try h.processElement(e("a", 2))
        try h.setProcessingTime(998)
        XCTAssertEqual(h.records, [])
        try h.setProcessingTime(999)
        XCTAssertEqual(h.records, ["a [0, 1000) count=2 sum=3"])
        try h.setProcessingTime(1_500)
        try h.processElement(e("a", 5))
        try h.setProcessingTime(1_998)
        XCTAssertEqual(h.records.count, 1)
        try h.setProcessingTime(5_000)
        XCTAssertEqual(h.recordsWithTimestamps.map { "\($0.0) @\($0.1!)" },
                       ["a [0, 1000) count=2 sum=3 @999", "a [1000, 2000) count=1 sum=5 @1999"])
        XCTAssertTrue(h.leftover.isEmpty)
    }

    func testEventTimeWindowsNeedTimestamps() throws {
        let h = try harness(TumblingEventTimeWindows.of(.seconds(1)))
        XCTAssertThrowsError(try h.processElement(e())) { error in
            XCTAssertTrue("\(error)".contains("no timestamp"), "\(error)")
        }
    }
}
