import Operators
import StreamTesting
import XCTest

/// Rolling (OVER) aggregates: Flink SQL's RANGE ... PRECEDING AND CURRENT ROW on the watermark
/// (DESIGN rule 9), and the on-arrival variant.
class OverTests: XCTestCase {
    struct Txn: Codable, Sendable, Equatable {
        let card: String
        let cents: Int64
    }

    typealias Agg = CountSumMinMax<Txn>
    let fiveMinutes: Duration = .minutes(5)

    func rowtime() throws -> KeyedOneInputOperatorHarness<String, RowTimeOverOperator<String, Agg>> {
        try KeyedOneInputOperatorHarness(key: { $0.card }) { try RowTimeOverOperator(Agg { $0.cents }, range: self.fiveMinutes, setup: $0) }
    }

    func lines(_ h: OperatorHarnessBase<Rolling<Txn, Agg.Result>>) -> [String] {
        h.recordsWithTimestamps.map { "\($0.0.row.card):\($0.0.row.cents)@\($0.1!) \($0.0.value)" }
    }

    func testRangeIsInclusiveAndPeersSeeEachOther() throws {
        let h = try rowtime()
        try h.processElement(Txn(card: "c", cents: 1), timestamp: 1_000)
        try h.processElement(Txn(card: "c", cents: 2), timestamp: 2_000)
        try h.processElement(Txn(card: "c", cents: 3), timestamp: 2_000)
        try h.processElement(Txn(card: "c", cents: 4), timestamp: 301_000)
        try h.processElement(Txn(card: "c", cents: 5), timestamp: 301_001)
        try h.processWatermark(1_999)
        XCTAssertEqual(lines(h), ["c:1@1000 count=1 sum=1 min=1 max=1"])
        try h.processWatermark(Int64.max)
        XCTAssertEqual(lines(h), [
            "c:1@1000 count=1 sum=1 min=1 max=1",
            "c:2@2000 count=3 sum=6 min=1 max=3",
            "c:3@2000 count=3 sum=6 min=1 max=3",
            "c:4@301000 count=4 sum=10 min=1 max=4",   // 301000 - 1000 = 5 min: still inside
            "c:5@301001 count=4 sum=14 min=2 max=5",   // 1000 is now out
        ])
    }

    func testLateRowsFollowFlinksLastTriggeringRule() throws {
        let h = try rowtime()
        try h.processElement(Txn(card: "c", cents: 1), timestamp: 10_000)
        try h.processWatermark(20_000)
        XCTAssertEqual(h.records.count, 1)
        // Behind the watermark but after the last emitted time: kept, emitted at the next advance.
        try h.processElement(Txn(card: "c", cents: 2), timestamp: 15_000)
        XCTAssertEqual(h.records.count, 1)
        // At or before the last emitted time: dropped and counted.
        try h.processElement(Txn(card: "c", cents: 3), timestamp: 10_000)
        // At or before the epoch: Flink starts the last time at 0.
        try h.processElement(Txn(card: "c", cents: 4), timestamp: 0)
        XCTAssertEqual(h.metrics.counter("numLateRecordsDropped").value, 2)
        try h.processWatermark(20_001)
        XCTAssertEqual(lines(h).last, "c:2@15000 count=2 sum=3 min=1 max=2")
    }

    func testStateIsBoundedByTheRange() throws {
        let h = try rowtime()
        for i in 1...2_000 { try h.processElement(Txn(card: "c", cents: Int64(i)), timestamp: Int64(i) * 1_000) }
        try h.processWatermark(2_000_000)
        XCTAssertEqual(h.records.count, 2_000)
        XCTAssertEqual(h.records.last?.value.count, 301, "rows in [t - 300 s, t] at one per second")
        // The key's buffered rows cover the range, not the history.
        h.keyed.setCurrentKey("c")
        let buffered = try h.keyed.backend.getMapState(MapStateDescriptor<Int64, [Txn]>("over-rows"))
        XCTAssertEqual(buffered.entries().count, 301)
        // Once the watermark passes the clean-up time, nothing of the key is left.
        try h.processWatermark(Int64.max)
        h.keyed.setCurrentKey("c")
        XCTAssertEqual(buffered.entries().count, 0)
        XCTAssertEqual(h.numEventTimeTimers, 0)
    }

    /// Flink 2.3's clean-up timers (RowTimeRangeBoundedPrecedingFunction), as the differential test
    /// against Flink showed them: a superseded clean-up timer moves the last triggering time, and the
    /// due one clears the key, after which an old row is accepted again.
    func testCleanupTimersAsFlink() throws {
        let h = try rowtime()   // range 300 000 ms: clean-up due no earlier than ts + 300 001, set at ts + 450 001
        try h.processElement(Txn(card: "c", cents: 1), timestamp: 100_000)      // clean-up timer at 550 001
        try h.processElement(Txn(card: "c", cents: 2), timestamp: 300_000)      // 600 001 > 550 001: new one at 750 001
        try h.processWatermark(560_000)                                           // fires 100 000, 300 000, stale 550 001
        XCTAssertEqual(lines(h), ["c:1@100000 count=1 sum=1 min=1 max=1", "c:2@300000 count=2 sum=3 min=1 max=2"])
        // The superseded clean-up timer moved the last triggering time to 550 001: this row is dropped.
        try h.processElement(Txn(card: "c", cents: 3), timestamp: 550_000)
        XCTAssertEqual(h.metrics.counter("numLateRecordsDropped").value, 1)
        try h.processElement(Txn(card: "c", cents: 4), timestamp: 550_002)      // kept; clean-up now due at 1 000 003
        try h.processWatermark(760_000)                                           // fires 550 002 and the stale 750 001
        XCTAssertEqual(lines(h).last, "c:4@550002 count=2 sum=6 min=2 max=4")
        try h.processWatermark(1_000_003)                                         // the due clean-up
        // The clean-up cleared the key, last triggering time included: a row from long ago is accepted.
        try h.processElement(Txn(card: "c", cents: 5), timestamp: 1_000)
        try h.processWatermark(1_000_004)
        XCTAssertEqual(lines(h).last, "c:5@1000 count=1 sum=5 min=5 max=5")
        XCTAssertEqual(h.metrics.counter("numLateRecordsDropped").value, 1)
    }

    func testMatchesANaiveRecomputation() throws {
        var rng = SeededRandom(seed: 5)
        var events: [(Txn, Int64)] = []
        for i in 0..<1_500 {
            events.append((Txn(card: "k\(rng.next() % 4)", cents: Int64(rng.next() % 500)), 1 + Int64(i) * 900 + Int64(rng.next() % 4_000)))
        }
        let h = try rowtime()
        var maxTs: Int64 = 0
        for (i, (e, ts)) in events.enumerated() {
            try h.processElement(e, timestamp: ts)
            maxTs = max(maxTs, ts)
            if i % 10 == 9 { try h.processWatermark(maxTs - 5_000) }   // bound 5 s > disorder 4 s: nothing late
        }
        try h.processWatermark(Int64.max)
        var expected: [String] = []
        for (e, ts) in events {
            let peers = events.filter { $0.0.card == e.card && $0.1 <= ts && ts - $0.1 <= 300_000 }.map(\.0.cents)
            expected.append("\(e.card):\(e.cents)@\(ts) count=\(peers.count) sum=\(peers.reduce(0, +)) min=\(peers.min()!) max=\(peers.max()!)")
        }
        XCTAssertEqual(lines(h).sorted(), expected.sorted())
        XCTAssertEqual(h.metrics.counter("numLateRecordsDropped").value, 0)
    }

    func testOnArrivalEmitsAtOnceFromWhatWasSeen() throws {
        let h = try KeyedOneInputOperatorHarness<String, ArrivalOverOperator<String, Agg>>(key: { $0.card }) {
            try ArrivalOverOperator(Agg { $0.cents }, range: .minutes(5), disorder: .seconds(30), setup: $0)
        }
        try h.processElement(Txn(card: "c", cents: 10), timestamp: 100_000)
        XCTAssertEqual(lines(h), ["c:10@100000 count=1 sum=10 min=10 max=10"], "no watermark needed")
        try h.processElement(Txn(card: "c", cents: 20), timestamp: 350_000)
        try h.processElement(Txn(card: "c", cents: 5), timestamp: 90_000)       // out of order, within disorder
        try h.processElement(Txn(card: "c", cents: 7), timestamp: 401_000)      // 100000 now out of range
        try h.processElement(Txn(card: "c", cents: 1), timestamp: 60_000)       // older than newest - range - disorder
        XCTAssertEqual(lines(h), [
            "c:10@100000 count=1 sum=10 min=10 max=10",
            "c:20@350000 count=2 sum=30 min=10 max=20",
            "c:5@90000 count=1 sum=5 min=5 max=5",        // only what is in [90000 - 5 min, 90000]
            "c:7@401000 count=2 sum=27 min=7 max=20",
        ])
        XCTAssertEqual(h.metrics.counter("numLateRecordsDropped").value, 1)
    }
}
