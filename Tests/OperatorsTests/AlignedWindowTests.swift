@testable import Operators
import StreamTesting
import XCTest

/// The aligned path of `WindowOperator` (flat table, per-window-end timer lists), its session path
/// and the sliced operator give exactly the general path's output — the whole log in order, records, watermarks and late side output — and
/// holds the same state and timers, on seeded random input with late records and keys that come
/// and go.
class AlignedWindowTests: XCTestCase {
    struct Event: Codable, Sendable, Equatable {
        let key: String
        let value: Int64
    }

    static let late = OutputTag<Event>("late")

    typealias Harness = KeyedOneInputOperatorHarness<String, WindowOperator<String, Event, [Int64], String>>

    static func logic() -> WindowLogic<String, Event, [Int64], String> {
        WindowLogic(
            add: { acc, e in [(acc?[0] ?? 0) + 1, (acc?[1] ?? 0) + e.value] },
            merge: { [$0[0] + $1[0], $0[1] + $1[1]] },
            emit: { key, ctx, acc, out in
                try out.collect("\(key) \(ctx.window) n=\(acc[0]) sum=\(acc[1]) wm=\(ctx.currentWatermark)")
            })
    }

    func harness(_ assigner: WindowAssigner, lateness: Int64, tag: OutputTag<Event>?, general: Bool) throws -> Harness {
        let h = try Harness(key: { $0.key }) { setup in
            try WindowOperator(assigner: assigner, allowedLateness: .milliseconds(lateness), lateDataTag: tag,
                               logic: Self.logic(), setup: setup, general: general)
        }
        if let tag { h.captureSideOutput(tag) }
        return h
    }

    /// The sliced operator for a sliding assigner, otherwise the aligned path.
    func fastHarness(_ assigner: WindowAssigner, lateness: Int64, tag: OutputTag<Event>?,
                     sliced: Bool) throws -> Driven {
        guard sliced, case .sliding(let size, let slide, let offset) = assigner.kind, size % slide == 0 else {
            let h = try harness(assigner, lateness: lateness, tag: tag, general: false)
            return Driven(base: h, element: { try h.processElement($0, timestamp: $1) }, watermark: { try h.processWatermark($0) })
        }
        let h = try KeyedOneInputOperatorHarness<String, SlicingWindowOperator<String, Event, [Int64], String>>(key: { $0.key }) { setup in
            try SlicingWindowOperator(size: .milliseconds(size), slide: .milliseconds(slide), offset: .milliseconds(offset),
                                      allowedLateness: .milliseconds(lateness), lateDataTag: tag, logic: Self.logic(), setup: setup)
        }
        if let tag { h.captureSideOutput(tag) }
        return Driven(base: h, element: { try h.processElement($0, timestamp: $1) }, watermark: { try h.processWatermark($0) })
    }

    /// A harness of either operator type.
    struct Driven {
        let base: OperatorHarnessBase<String>
        let element: (Event, Int64) throws -> Void
        let watermark: (Int64) throws -> Void
    }

    func describe(_ log: [HarnessEvent<String>]) -> [String] {
        log.map { event in
            switch event {
            case .record(let line, let ts): return "\(line) @\(ts ?? -1)"
            case .sideOutput(_, let value, let ts): return "late \((value as! Event).key):\((value as! Event).value) @\(ts ?? -1)"
            case .watermark(let w): return "wm \(w)"
            default: return "\(event)"
            }
        }
    }

    func testAlignedEqualsGeneralOnRandomInput() throws {
        let assigners: [(String, WindowAssigner)] = [
            ("tumbling", TumblingEventTimeWindows.of(.seconds(20))),
            ("tumbling-offset", TumblingEventTimeWindows.of(.seconds(20), offset: .seconds(7))),
            ("sliding", SlidingEventTimeWindows.of(.seconds(60), .seconds(15))),
            ("sliding-uneven", SlidingEventTimeWindows.of(.seconds(50), .seconds(20))),
            ("session-1s", EventTimeSessionWindows.withGap(.seconds(1))),
            ("session-3s", EventTimeSessionWindows.withGap(.seconds(3))),
            ("session-20s", EventTimeSessionWindows.withGap(.seconds(20))),
        ]
        for (name, assigner) in assigners {
          for sliced in [false, true] {
            for (seed, lateness, withTag) in [(UInt64(1), Int64(0), true), (2, 15_000, true), (3, 15_000, false), (4, 40_000, true),
                                              (5, 0, false), (6, 0, true)] {
                var rng = SeededRandom(seed: seed)
                let tag: OutputTag<Event>? = withTag ? Self.late : nil
                let general = try harness(assigner, lateness: lateness, tag: tag, general: true)
                let aligned = try fastHarness(assigner, lateness: lateness, tag: tag, sliced: sliced)
                var maxTs: Int64 = -200_000
                var lastWatermark = Int64.min
                for i in 0..<3_000 {
                    let base = Int64(i) * 700 - 200_000
                    let jitter = Int64(rng.next() % 40_000)
                    let farLate = rng.next() % 50 == 0 ? Int64(rng.next() % 200_000) : 0
                    let ts = base - jitter - farLate
                    // Keys come and go, so slots are freed and reused.
                    let e = Event(key: "k\(Int64(i / 400) + Int64(rng.next() % 4))", value: Int64(rng.next() % 100))
                    try general.processElement(e, timestamp: ts)
                    try aligned.element(e, ts)
                    maxTs = max(maxTs, ts)
                    if rng.next() % 20 == 0, maxTs - 10_000 > lastWatermark {
                        lastWatermark = maxTs - 10_000
                        try general.processWatermark(lastWatermark)
                        try aligned.watermark(lastWatermark)
                        if !sliced { XCTAssertEqual(aligned.base.leftover, general.leftover, "\(name) seed \(seed) at \(i)") }
                    }
                }
                try general.processWatermark(Int64.max)
                try aligned.watermark(Int64.max)
                let expected = describe(general.log)
                XCTAssertFalse(expected.isEmpty)
                XCTAssertEqual(describe(aligned.base.log), expected, "\(name) sliced \(sliced) seed \(seed), lateness \(lateness)")
                if withTag { XCTAssertTrue(expected.contains { $0.hasPrefix("late") }, "the data has late records") }
                XCTAssertEqual(aligned.base.metrics.counter("numLateRecordsDropped").value,
                               general.metrics.counter("numLateRecordsDropped").value)
                XCTAssertTrue(aligned.base.leftover.isEmpty, "\(aligned.base.leftover)")
            }
          }
        }
    }
}
