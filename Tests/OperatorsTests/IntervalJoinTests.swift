import Operators
import StreamTesting
import XCTest

/// Interval join (DESIGN rule 7): bounds, symmetry, cleanup, late rows, and a relational oracle.
class IntervalJoinTests: XCTestCase {
    struct Txn: Codable, Sendable { let card: String; let id: Int }
    struct Device: Codable, Sendable { let card: String; let id: Int }

    final class Pair: ProcessJoinFunction {
        func processElement(_ l: Txn, _ r: Device, _ ctx: JoinContext, _ out: Collector<String>) throws {
            try out.collect("t\(l.id)-d\(r.id)@\(ctx.timestamp)")
        }
    }

    static let lateTxn = OutputTag<Txn>("late-txn")

    typealias Harness = TwoInputOperatorHarness<String, IntervalJoinOperator<String, Txn, Device, Pair>>

    func harness(_ lower: Duration, _ upper: Duration, lowerExclusive: Bool = false, upperExclusive: Bool = false) throws -> Harness {
        let h = try Harness(key1: { $0.card }, key2: { $0.card }) { setup in
            try IntervalJoinOperator(Pair(), lower: lower, upper: upper, lowerExclusive: lowerExclusive,
                                     upperExclusive: upperExclusive, leftLateData: Self.lateTxn, setup: setup)
        }
        h.captureSideOutput(Self.lateTxn)
        return h
    }

    func testBoundsAreInclusiveByDefaultAndBothSidesJoin() throws {
        let h = try harness(.seconds(-2), .seconds(1))
        try h.processElement1(Txn(card: "c", id: 1), timestamp: 10_000)
        for (id, ts) in [(1, 7_999), (2, 8_000), (3, 11_000), (4, 11_001)] {
            try h.processElement2(Device(card: "c", id: id), timestamp: Int64(ts))
        }
        try h.processElement2(Device(card: "x", id: 9), timestamp: 10_000)   // other key
        // A left row arriving after the right rows finds them too (the symmetric path).
        try h.processElement1(Txn(card: "c", id: 2), timestamp: 9_500)
        // Pairs of one arriving row come in buffer order, which is unordered (as Flink's MapState).
        XCTAssertEqual(Array(h.records.prefix(2)).sorted(), ["t1-d2@10000", "t1-d3@11000"])
        // 9500 + [-2000, 1000] = [7500, 10500]: d1 (7999) and d2 (8000) join; d3 (11000) does not.
        XCTAssertEqual(Array(h.records.suffix(2)).sorted(), ["t2-d1@9500", "t2-d2@9500"])
        XCTAssertEqual(h.recordsWithTimestamps.map(\.1).sorted(by: { $0! < $1! }), [9_500, 9_500, 10_000, 11_000],
                       "the later timestamp of the pair")
    }

    func testExclusiveBounds() throws {
        let h = try harness(.seconds(-2), .seconds(1), lowerExclusive: true, upperExclusive: true)
        try h.processElement1(Txn(card: "c", id: 1), timestamp: 10_000)
        for (id, ts) in [(1, 8_000), (2, 8_001), (3, 10_999), (4, 11_000)] {
            try h.processElement2(Device(card: "c", id: id), timestamp: Int64(ts))
        }
        XCTAssertEqual(h.records.sorted(), ["t1-d2@10000", "t1-d3@10999"])
    }

    func testBuffersAreCleanedUpAsTheWatermarkPassesAndLateRowsAreDropped() throws {
        let h = try harness(.minutes(-5), .zero)
        try h.processElement1(Txn(card: "c", id: 1), timestamp: 1_000_000)
        try h.processElement2(Device(card: "c", id: 1), timestamp: 900_000)
        XCTAssertEqual(h.records, ["t1-d1@1000000"])
        XCTAssertEqual(h.leftover.stateEntries, ["join-left": 1, "join-right": 1])
        try h.processBothWatermarks(1_000_000)
        // A left row is kept until ts + upper (0) passes; a right row until ts - lower (5 min) passes.
        XCTAssertEqual(h.leftover.stateEntries, ["join-right": 1])
        try h.processBothWatermarks(1_200_000)
        XCTAssertTrue(h.leftover.isEmpty, "\(h.leftover)")
        // Behind the watermark: late, to the side output, not joined.
        try h.processElement2(Device(card: "c", id: 2), timestamp: 1_250_000)
        try h.processElement1(Txn(card: "c", id: 3), timestamp: 1_100_000)
        XCTAssertEqual(h.sideOutput(Self.lateTxn).map(\.id), [3])
        XCTAssertEqual(h.records, ["t1-d1@1000000"])
    }

    func testMatchesTheRelationalJoinWhenNothingIsLate() throws {
        var rng = SeededRandom(seed: 9)
        let h = try harness(.seconds(-30), .seconds(10))
        var txns: [(Txn, Int64)] = [], devices: [(Device, Int64)] = []
        var maxTs: Int64 = 0
        for i in 0..<1_200 {
            let ts = Int64(i) * 1_000 + Int64(rng.next() % 5_000)
            let card = "k\(rng.next() % 5)"
            maxTs = max(maxTs, ts)
            if rng.next() % 2 == 0 {
                let t = Txn(card: card, id: i)
                txns.append((t, ts))
                try h.processElement1(t, timestamp: ts)
            } else {
                let d = Device(card: card, id: i)
                devices.append((d, ts))
                try h.processElement2(d, timestamp: ts)
            }
            if i % 25 == 24 { try h.processBothWatermarks(maxTs - 6_000) }
        }
        try h.processBothWatermarks(Int64.max)
        var expected: [String] = []
        for (t, tts) in txns {
            for (d, dts) in devices where d.card == t.card && dts >= tts - 30_000 && dts <= tts + 10_000 {
                expected.append("t\(t.id)-d\(d.id)@\(max(tts, dts))")
            }
        }
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(h.records.sorted(), expected.sorted())
        XCTAssertTrue(h.leftover.isEmpty, "\(h.leftover)")
        XCTAssertTrue(h.sideOutput(Self.lateTxn).isEmpty)
    }

    func testThroughTheAPI() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.autoWatermarkInterval = .zero
        let txns = env.fromData([Txn(card: "a", id: 1), Txn(card: "b", id: 2)], timestamps: [10_000, 20_000])
            .assignTimestampsAndWatermarks(.forMonotonousTimestamps())
        let devices = env.fromData([Device(card: "a", id: 7), Device(card: "b", id: 8)], timestamps: [9_000, 30_000])
            .assignTimestampsAndWatermarks(.forMonotonousTimestamps())
        let got = try txns.keyBy { $0.card }
            .intervalJoin(devices.keyBy { $0.card })
            .between(.seconds(-5), .zero)
            .process(Pair())
            .executeAndCollect()
        XCTAssertEqual(got, ["t1-d7@10000"])
    }
}
