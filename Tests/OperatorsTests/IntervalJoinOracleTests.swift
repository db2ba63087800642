import Operators
import StreamTesting
import XCTest

/// The interval join against a direct model of Flink's operator — rows buffered per key and side,
/// each with its own cleanup timer at `ts + max(relativeUpper, 0)` fired on watermark advances, a
/// row behind the watermark late — on seeded input dense in boundary cases (timestamps equal to
/// the watermark, to cleanup times, to the bounds), with late rows and keys that come and go.
final class IntervalJoinOracleTests: XCTestCase {
    struct Row: Codable, Sendable { let key: Int; let id: Int }

    final class Pair: ProcessJoinFunction {
        func processElement(_ l: Row, _ r: Row, _ ctx: JoinContext, _ out: Collector<String>) throws {
            try out.collect("l\(l.id)-r\(r.id)@\(ctx.timestamp)")
        }
    }

    static let lateLeft = OutputTag<Row>("late-left")
    static let lateRight = OutputTag<Row>("late-right")

    /// Flink's operator, written out plainly.
    struct Model {
        let lower: Int64, upper: Int64
        var left: [(key: Int, id: Int, ts: Int64, cleanup: Int64)] = []
        var right: [(key: Int, id: Int, ts: Int64, cleanup: Int64)] = []
        var watermark = Int64.min

        mutating func add(_ row: Row, _ ts: Int64, isLeft: Bool) -> [String] {
            if ts < watermark { return [isLeft ? "late-left \(row.id)" : "late-right \(row.id)"] }
            let relLower = isLeft ? lower : -upper, relUpper = isLeft ? upper : -lower
            let entry = (row.key, row.id, ts, relUpper > 0 ? ts + relUpper : ts)
            if isLeft { left.append(entry) } else { right.append(entry) }
            let others = isLeft ? right : left
            return others.filter { $0.key == row.key && $0.ts >= ts + relLower && $0.ts <= ts + relUpper }.map {
                isLeft ? "l\(row.id)-r\($0.id)@\(max(ts, $0.ts))" : "l\($0.id)-r\(row.id)@\(max(ts, $0.ts))"
            }.sorted()
        }

        mutating func advance(_ wm: Int64) {
            watermark = wm
            left.removeAll { $0.cleanup <= wm }
            right.removeAll { $0.cleanup <= wm }
        }

        var keysWithRows: [String: Int] {
            var counts: [String: Int] = [:]
            if !left.isEmpty { counts["join-left"] = Set(left.map(\.key)).count }
            if !right.isEmpty { counts["join-right"] = Set(right.map(\.key)).count }
            return counts
        }
    }

    func testMatchesFlinksOperatorModel() throws {
        for (seed, lower, upper, lowerExclusive, upperExclusive) in [
            (UInt64(1), Int64(-20), Int64(0), false, false), (2, -20, 10, false, false), (3, -5, 15, true, true),
            (4, 5, 25, false, true), (5, -30, -10, true, false), (6, 0, 0, false, false),
        ] {
            var rng = SeededRandom(seed: seed)
            let h = try TwoInputOperatorHarness<Int, IntervalJoinOperator<Int, Row, Row, Pair>>(key1: { $0.key }, key2: { $0.key }) { setup in
                try IntervalJoinOperator(Pair(), lower: .milliseconds(lower), upper: .milliseconds(upper),
                                         lowerExclusive: lowerExclusive, upperExclusive: upperExclusive,
                                         leftLateData: Self.lateLeft, rightLateData: Self.lateRight, setup: setup)
            }
            h.captureSideOutput(Self.lateLeft).captureSideOutput(Self.lateRight)
            var model = Model(lower: lower + (lowerExclusive ? 1 : 0), upper: upper - (upperExclusive ? 1 : 0))
            var maxTs: Int64 = 0
            var watermark = Int64.min
            for i in 0..<4_000 {
                let ts = Int64(i / 4) - Int64(rng.next() % 12)
                let row = Row(key: Int(rng.next() % 3) + i / 700, id: i)
                let isLeft = rng.next() % 2 == 0
                _ = h.extractLog()
                if isLeft { try h.processElement1(row, timestamp: ts) } else { try h.processElement2(row, timestamp: ts) }
                let got = h.extractLog().map { event -> String in
                    switch event {
                    case .record(let s, let ts): return "\(s)#\(ts!)"
                    case .sideOutput(let tag, let v, _): return "\(tag) \((v as! Row).id)"
                    default: return "\(event)"
                    }
                }.sorted()
                let expected = model.add(row, ts, isLeft: isLeft).map { $0.hasPrefix("late") ? $0 : "\($0)#\($0.split(separator: "@")[1])" }
                XCTAssertEqual(got, expected, "seed \(seed), row \(i) at \(ts), watermark \(watermark)")
                maxTs = max(maxTs, ts)
                if rng.next() % 6 == 0, maxTs - 8 > watermark {
                    watermark = maxTs - Int64(rng.next() % 10)
                    if watermark > model.watermark {
                        try h.processBothWatermarks(watermark)
                        model.advance(watermark)
                        XCTAssertEqual(h.leftover.stateEntries, model.keysWithRows, "seed \(seed) after watermark \(watermark)")
                    }
                }
            }
            try h.processBothWatermarks(Int64.max)
            XCTAssertTrue(h.leftover.isEmpty, "\(h.leftover)")
        }
    }
}
