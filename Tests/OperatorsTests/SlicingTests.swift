import Operators
import StreamTesting
import XCTest

/// The sliced sliding-window operator gives exactly the general window operator's output — per key,
/// in order, with timestamps, lateness re-fires and late side output — on seeded random input.
class SlicingTests: XCTestCase {
    struct Event: Codable, Sendable, Equatable {
        let key: String
        let value: Int64
    }

    static let late = OutputTag<Event>("late")

    func logic() -> WindowLogic<String, Event, [Int64], String> {
        WindowLogic(add: { acc, e in [(acc?[0] ?? 0) + 1, (acc?[1] ?? 0) + e.value] },
                    merge: { [$0[0] + $1[0], $0[1] + $1[1]] },
                    emit: { key, ctx, acc, out in try out.collect("\(key) \(ctx.window) n=\(acc[0]) sum=\(acc[1])") })
    }

    func perKey(_ log: [HarnessEvent<String>]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for event in log {
            switch event {
            case .record(let line, let ts): out[String(line.split(separator: " ")[0]), default: []].append("\(line) @\(ts ?? -1)")
            case .sideOutput(_, let value, let ts):
                let e = value as! Event
                out["late", default: []].append("\(e.key):\(e.value) @\(ts ?? -1)")
            default: break
            }
        }
        return out
    }

    func testSlicedEqualsGeneralOnRandomInput() throws {
        for (seed, lateness, withTag) in [(UInt64(1), Int64(0), true), (2, 15_000, true), (3, 15_000, false), (4, 40_000, true)] {
            var rng = SeededRandom(seed: seed)
            let tag: OutputTag<Event>? = withTag ? Self.late : nil
            let general = try KeyedOneInputOperatorHarness<String, WindowOperator<String, Event, [Int64], String>>(key: { $0.key }) { setup in
                try WindowOperator(assigner: SlidingEventTimeWindows.of(.seconds(60), .seconds(15)),
                                   allowedLateness: .milliseconds(lateness), lateDataTag: tag, logic: self.logic(), setup: setup)
            }
            let sliced = try KeyedOneInputOperatorHarness<String, SlicingWindowOperator<String, Event, [Int64], String>>(key: { $0.key }) { setup in
                try SlicingWindowOperator(size: .seconds(60), slide: .seconds(15), allowedLateness: .milliseconds(lateness),
                                          lateDataTag: tag, logic: self.logic(), setup: setup)
            }
            for h in [general as OperatorHarnessBase<String>, sliced] { if let tag { h.captureSideOutput(tag) } }
            var maxTs: Int64 = -200_000
            var lastWatermark = Int64.min
            for i in 0..<3_000 {
                let base = Int64(i) * 700 - 200_000
                let jitter = Int64(rng.next() % 40_000)
                let farLate = rng.next() % 50 == 0 ? Int64(rng.next() % 200_000) : 0
                let ts = base - jitter - farLate
                let e = Event(key: "k\(rng.next() % 3)", value: Int64(rng.next() % 100))
                try general.processElement(e, timestamp: ts)
                try sliced.processElement(e, timestamp: ts)
                maxTs = max(maxTs, ts)
                if rng.next() % 20 == 0, maxTs - 10_000 > lastWatermark {
                    lastWatermark = maxTs - 10_000
                    try general.processWatermark(lastWatermark)
                    try sliced.processWatermark(lastWatermark)
                }
            }
            try general.processWatermark(Int64.max)
            try sliced.processWatermark(Int64.max)
            let expected = perKey(general.log), got = perKey(sliced.log)
            XCTAssertFalse(expected.isEmpty)
            XCTAssertEqual(got, expected, "seed \(seed), lateness \(lateness)")
            if withTag { XCTAssertFalse((expected["late"] ?? []).isEmpty, "the data has late records") }
            XCTAssertEqual(sliced.metrics.counter("numLateRecordsDropped").value,
                           general.metrics.counter("numLateRecordsDropped").value)
            XCTAssertTrue(sliced.leftover.isEmpty, "\(sliced.leftover)")
        }
    }
}
