@testable import Operators
import StreamTesting
import XCTest

/// The operators' own state and timers (flat window table, timer lists, session arrays, join
/// buffers) go into a checkpoint and come back: an operator restored from a snapshot taken
/// mid-stream, given the same watermark and the rest of the input, emits what the original emits,
/// per key in the same order, and ends with no state or timers left.
class WindowCheckpointTests: XCTestCase {
    /// Where a test keeps the RocksDB files of its snapshots (as a checkpoint store would).
    var keptFiles: TemporaryDirectory?

    /// What a restoring subtask gets from `snapshot` (RocksDB files copied away first: the local
    /// checkpoint goes with its backend).
    func restorable(_ snapshot: KeyedStateSnapshot) throws -> RestoredState {
        var r = RestoredState(checkpointId: 1)
        r.keyGroups = snapshot.keyGroups
        if var h = snapshot.rocksDB {
            if keptFiles == nil { keptFiles = try TemporaryDirectory() }
            for i in h.files.indices {
                let dest = keptFiles!.path + "/" + h.files[i].sharedName
                if access(dest, F_OK) != 0 { XCTAssertEqual(link(h.files[i].path, dest), 0) }
                h.files[i].path = dest
            }
            r.rocksDB = [h]
        }
        return r
    }

    typealias Event = AlignedWindowTests.Event

    static let late = OutputTag<Event>("late")

    typealias WindowHarness = KeyedOneInputOperatorHarness<String, WindowOperator<String, Event, [Int64], String>>
    typealias SlicedHarness = KeyedOneInputOperatorHarness<String, SlicingWindowOperator<String, Event, [Int64], String>>

    static let logic = AlignedWindowTests.logic

    /// Per key (and "late"), the records in order.
    func perKey(_ log: [HarnessEvent<String>]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for event in log {
            switch event {
            case .record(let line, let ts): out[String(line.split(separator: " ")[0]), default: []].append("\(line) @\(ts ?? -1)")
            case .sideOutput(_, let value, let ts): out["late", default: []].append("\((value as! Event).key):\((value as! Event).value) @\(ts ?? -1)")
            default: break
            }
        }
        return out
    }

    func input(seed: UInt64) -> [(Event, Int64, Int64?)] {
        var rng = SeededRandom(seed: seed)
        var out: [(Event, Int64, Int64?)] = []
        var maxTs: Int64 = 0, last = Int64.min
        for i in 0..<2_000 {
            let ts = Int64(i) * 700 - Int64(rng.next() % 30_000) - (rng.next() % 40 == 0 ? Int64(rng.next() % 100_000) : 0)
            maxTs = max(maxTs, ts)
            var wm: Int64?
            if rng.next() % 15 == 0, maxTs - 10_000 > last { last = maxTs - 10_000; wm = last }
            out.append((Event(key: "k\(Int64(i / 300) + Int64(rng.next() % 4))", value: Int64(rng.next() % 100)), ts, wm))
        }
        return out
    }

    /// Runs `make` straight through and, from a snapshot at the middle, restored; compares.
    func check<Op: OneInputStreamOperator>(_ name: String, seed: UInt64,
                                           _ make: @escaping (KeyedOperatorSetup<String, String>) throws -> Op) throws
    where Op.In == Event, Op.Out == String {
        let events = input(seed: seed)
        let original = try KeyedOneInputOperatorHarness<String, Op>(key: { $0.key }, make)
        original.captureSideOutput(Self.late)
        var watermark = Int64.min
        for (e, ts, wm) in events.prefix(1_000) {
            try original.processElement(e, timestamp: ts)
            if let wm { try original.processWatermark(wm); watermark = wm }
        }
        let snapshot = try restorable(try original.keyed.captureKeyedState(1)())
        XCTAssertFalse(snapshot.keyGroups.isEmpty && snapshot.rocksDB.isEmpty, name)
        _ = original.extractLog()
        let restored = try KeyedOneInputOperatorHarness<String, Op>(key: { $0.key }) { setup in
            try setup.keyed.restore(snapshot)
            return try make(setup)
        }
        restored.captureSideOutput(Self.late)
        XCTAssertEqual(restored.leftover, original.leftover, "\(name): the same state and timers are back")
        try restored.processWatermark(watermark)
        XCTAssertEqual(restored.records, [], "\(name): nothing fires again")
        _ = restored.extractLog()
        for h in [original, restored] {
            for (e, ts, wm) in events.dropFirst(1_000) {
                try h.processElement(e, timestamp: ts)
                if let wm { try h.processWatermark(wm) }
            }
            try h.processWatermark(Int64.max)
            XCTAssertTrue(h.leftover.isEmpty, "\(name): \(h.leftover)")
        }
        let expected = perKey(original.log)
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(perKey(restored.log), expected, name)
    }

    func testWindowsRestoreMidStream() throws {
        let cases: [(String, WindowAssigner, Int64)] = [
            ("tumbling", TumblingEventTimeWindows.of(.seconds(20)), 0),
            ("tumbling-lateness", TumblingEventTimeWindows.of(.seconds(20)), 15_000),
            ("sliding-lateness", SlidingEventTimeWindows.of(.seconds(60), .seconds(15)), 15_000),
            ("session", EventTimeSessionWindows.withGap(.seconds(3)), 0),
            ("session-lateness", EventTimeSessionWindows.withGap(.seconds(3)), 5_000),
        ]
        for (seed, (name, assigner, lateness)) in cases.enumerated() {
            try check(name, seed: UInt64(seed + 1)) { setup in
                try WindowOperator(assigner: assigner, allowedLateness: .milliseconds(lateness), lateDataTag: Self.late,
                                   logic: Self.logic(), setup: setup)
            }
        }
        for lateness in [Int64(0), 15_000] {
            try check("sliced \(lateness)", seed: 9) { setup in
                try SlicingWindowOperator(size: .seconds(60), slide: .seconds(15), allowedLateness: .milliseconds(lateness),
                                          lateDataTag: Self.late, logic: Self.logic(), setup: setup)
            }
        }
    }

    final class Pair: ProcessJoinFunction {
        func processElement(_ l: Event, _ r: Event, _ ctx: JoinContext, _ out: Collector<String>) throws {
            try out.collect("\(l.key) \(l.value)-\(r.value)@\(ctx.timestamp)")
        }
    }

    func testIntervalJoinRestoresMidStream() throws {
        typealias Join = IntervalJoinOperator<String, Event, Event, Pair>
        let make: (KeyedOperatorSetup<String, String>) throws -> Join = { setup in
            try Join(Pair(), lower: .seconds(-20), upper: .seconds(5), setup: setup)
        }
        let events = input(seed: 21)
        let original = try TwoInputOperatorHarness<String, Join>(key1: { $0.key }, key2: { $0.key }, make)
        func feed(_ h: TwoInputOperatorHarness<String, Join>, _ part: ArraySlice<(Event, Int64, Int64?)>) throws {
            for (i, (e, ts, wm)) in zip(part.indices, part) {
                if i % 2 == 0 { try h.processElement1(e, timestamp: ts) } else { try h.processElement2(e, timestamp: ts) }
                if let wm { try h.processBothWatermarks(wm) }
            }
        }
        try feed(original, events.prefix(1_000))
        let watermark = events.prefix(1_000).compactMap(\.2).last!
        let snapshot = try restorable(try original.keyed!.captureKeyedState(1)())
        _ = original.extractLog()
        let restored = try TwoInputOperatorHarness<String, Join>(key1: { $0.key }, key2: { $0.key }) { setup in
            try setup.keyed.restore(snapshot)
            return try make(setup)
        }
        XCTAssertEqual(restored.leftover, original.leftover)
        try restored.processBothWatermarks(watermark)
        for h in [original, restored] {
            try feed(h, events.dropFirst(1_000))
            try h.processBothWatermarks(Int64.max)
            XCTAssertTrue(h.leftover.isEmpty, "\(h.leftover)")
        }
        XCTAssertFalse(original.records.isEmpty)
        XCTAssertEqual(restored.records.sorted(), original.records.sorted())
    }
}
