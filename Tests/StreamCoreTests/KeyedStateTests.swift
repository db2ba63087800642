import StreamCore
import StreamTesting
import XCTest

/// Keyed state per key, and TTL exactly as Flink's StateTtlConfig (processing time,
/// expired when lastAccess + ttl <= now).
class KeyedStateTests: XCTestCase {
    enum Op: Sendable {
        case set(String, Int64?)
        case get(String)
        case listAdd(String, Int64)
        case listGet(String)
        case mapPut(String, String, Int64)
        case mapGet(String, String)
        case mapRemove(String, String)
        case mapEntries(String)
        case reduce(String, Int64)
        case aggregate(String, Int64)
        case clearAll(String)

        var key: String {
            switch self {
            case .set(let k, _), .get(let k), .listAdd(let k, _), .listGet(let k), .mapPut(let k, _, _),
                 .mapGet(let k, _), .mapRemove(let k, _), .mapEntries(let k), .reduce(let k, _),
                 .aggregate(let k, _), .clearAll(let k):
                return k
            }
        }
    }

    struct Average: AggregateFunction {
        func createAccumulator() -> [Int64] { [0, 0] }
        func add(_ value: Int64, to acc: inout [Int64]) { acc[0] += value; acc[1] += 1 }
        func getResult(_ acc: [Int64]) -> Int64 { acc[1] == 0 ? 0 : acc[0] / acc[1] }
        func merge(_ a: [Int64], _ b: [Int64]) -> [Int64] { [a[0] + b[0], a[1] + b[1]] }
    }

    /// Applies each op to the current key's state and emits what it read.
    final class StateOps: KeyedProcessFunction {
        typealias Key = String
        let ttl: StateTtlConfig?
        var value: ValueState<Int64>!
        var list: ListState<Int64>!
        var map: MapState<String, Int64>!
        var sum: ReducingState<Int64>!
        var avg: AggregatingState<Average>!

        init(ttl: StateTtlConfig? = nil) { self.ttl = ttl }

        func open(_ context: RuntimeContext) throws {
            var v = ValueStateDescriptor<Int64>("value")
            var l = ListStateDescriptor<Int64>("list")
            var m = MapStateDescriptor<String, Int64>("map")
            if let ttl { v.ttl = ttl; l.ttl = ttl; m.ttl = ttl }
            value = try context.getState(v)
            list = try context.getListState(l)
            map = try context.getMapState(m)
            sum = try context.getReducingState(ReducingStateDescriptor<Int64>("sum") { $0 + $1 })
            avg = try context.getAggregatingState(AggregatingStateDescriptor("avg", Average()))
            XCTAssertTrue(try context.getState(v) === value, "same name, same state object")
        }

        func processElement(_ op: Op, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            switch op {
            case .set(_, let v): value.update(v)
            case .get: try out.collect("value=\(value.value().map(String.init) ?? "nil")")
            case .listAdd(_, let v): list.add(v)
            case .listGet: try out.collect("list=\(list.get())")
            case .mapPut(_, let k, let v): map.put(k, v)
            case .mapGet(_, let k): try out.collect("map[\(k)]=\(map.get(k).map(String.init) ?? "nil")")
            case .mapRemove(_, let k): map.remove(k)
            case .mapEntries: try out.collect("entries=\(map.entries().map { "\($0.key):\($0.value)" }.sorted())")
            case .reduce(_, let v):
                sum.add(v)
                try out.collect("sum=\(sum.get()!)")
            case .aggregate(_, let v):
                avg.add(v)
                try out.collect("avg=\(avg.get()!)")
            case .clearAll:
                value.clear(); list.clear(); map.clear(); sum.clear(); avg.clear()
            }
        }
    }

    func harness(ttl: StateTtlConfig? = nil) -> KeyedOneInputOperatorHarness<String, KeyedProcessOperator<StateOps>> {
        ProcessFunctionHarnesses.forKeyedProcessFunction(StateOps(ttl: ttl), key: { $0.key })
    }

    func feed(_ h: KeyedOneInputOperatorHarness<String, KeyedProcessOperator<StateOps>>, _ ops: [Op]) throws -> [String] {
        let before = h.records.count
        for op in ops { try h.processElement(op) }
        return Array(h.records.dropFirst(before))
    }

    func testValuesAreIsolatedPerKey() throws {
        let h = harness()
        XCTAssertEqual(try feed(h, [.set("a", 1), .set("b", 2), .get("a"), .get("b"), .get("c")]),
                       ["value=1", "value=2", "value=nil"])
        XCTAssertEqual(try feed(h, [.set("a", nil), .get("a"), .get("b")]), ["value=nil", "value=2"],
                       "update(nil) clears")
    }

    func testListMapReducingAggregating() throws {
        let h = harness()
        XCTAssertEqual(try feed(h, [.listAdd("a", 1), .listAdd("a", 2), .listAdd("b", 9), .listGet("a"), .listGet("b"), .listGet("z")]),
                       ["list=[1, 2]", "list=[9]", "list=[]"])
        XCTAssertEqual(try feed(h, [.mapPut("a", "x", 1), .mapPut("a", "y", 2), .mapPut("a", "x", 3), .mapGet("a", "x"),
                                    .mapRemove("a", "y"), .mapEntries("a"), .mapEntries("b")]),
                       ["map[x]=3", "entries=[\"x:3\"]", "entries=[]"])
        XCTAssertEqual(try feed(h, [.reduce("a", 5), .reduce("a", 7), .reduce("b", 1)]), ["sum=5", "sum=12", "sum=1"])
        XCTAssertEqual(try feed(h, [.aggregate("a", 10), .aggregate("a", 20), .aggregate("a", 60)]), ["avg=10", "avg=15", "avg=30"])
    }

    func testClearedKeysReleaseTheirSlot() throws {
        let h = harness()
        _ = try feed(h, [.set("a", 1), .listAdd("a", 1), .mapPut("a", "k", 1), .set("b", 2)])
        XCTAssertEqual(Set(h.keysWithState), ["a", "b"])
        XCTAssertEqual(h.leftover.stateEntries, ["value": 2, "list": 1, "map": 1])
        _ = try feed(h, [.clearAll("a")])
        XCTAssertEqual(h.keysWithState, ["b"])
        XCTAssertEqual(h.keyed.backend.totalEntries, 1)
        // The freed slot is reused without leaking the old key's values.
        XCTAssertEqual(try feed(h, [.set("c", 3), .get("c"), .listGet("c"), .mapEntries("c"), .get("a")]),
                       ["value=3", "list=[]", "entries=[]", "value=nil"])
        XCTAssertEqual(Set(h.keysWithState), ["b", "c"])
    }

    func testStateNamesAreTypedAndNeedAKeyedStream() throws {
        final class Clash: KeyedProcessFunction {
            typealias Key = Int
            func open(_ context: RuntimeContext) throws {
                _ = try context.getState(ValueStateDescriptor<Int64>("x"))
                _ = try context.getListState(ListStateDescriptor<Int64>("x"))
            }
            func processElement(_ v: Int, _ ctx: KeyedProcessContext<Int>, _ out: Collector<Int>) throws {}
        }
        let clash = ProcessFunctionHarnesses.forKeyedProcessFunction(Clash(), key: { $0 })
        XCTAssertThrowsError(try clash.open()) { error in
            XCTAssertTrue("\(error)".contains("'x' is already registered"), "\(error)")
        }

        final class NotKeyed: ProcessFunction {
            func open(_ context: RuntimeContext) throws { _ = try context.getState(ValueStateDescriptor<Int>("v")) }
            func processElement(_ v: Int, _ ctx: ProcessContext, _ out: Collector<Int>) throws {}
        }
        let notKeyed = ProcessFunctionHarnesses.forProcessFunction(NotKeyed())
        XCTAssertThrowsError(try notKeyed.open()) { error in
            XCTAssertTrue("\(error)".contains("keyBy"), "\(error)")
        }
    }

    // MARK: TTL

    func testValueExpiresExactlyAtLastAccessPlusTtl() throws {
        let h = harness(ttl: StateTtlConfig(ttl: .milliseconds(100)))
        try h.setProcessingTime(1_000)
        _ = try feed(h, [.set("a", 1)])
        try h.setProcessingTime(1_099)
        XCTAssertEqual(try feed(h, [.get("a")]), ["value=1"])
        try h.setProcessingTime(1_100)
        XCTAssertEqual(try feed(h, [.get("a")]), ["value=nil"], "expired at lastAccess + ttl")
        XCTAssertTrue(h.keysWithState.isEmpty, "expired value removed on read")
    }

    func testWriteRestartsTheClockButReadOnlyWithOnReadAndWrite() throws {
        let onWrite = harness(ttl: StateTtlConfig(ttl: .milliseconds(100)))
        let onRead = harness(ttl: StateTtlConfig(ttl: .milliseconds(100), updateType: .onReadAndWrite))
        for h in [onWrite, onRead] {
            try h.setProcessingTime(0)
            _ = try feed(h, [.set("a", 1)])
            try h.setProcessingTime(80)
            _ = try feed(h, [.get("a")])
            try h.setProcessingTime(150)
        }
        XCTAssertEqual(try feed(onWrite, [.get("a")]), ["value=nil"], "a read does not extend with onCreateAndWrite")
        XCTAssertEqual(try feed(onRead, [.get("a")]), ["value=1"], "the read at 80 extended it to 180")
        try onWrite.setProcessingTime(160)
        _ = try feed(onWrite, [.set("a", 2)])
        try onWrite.setProcessingTime(259)
        XCTAssertEqual(try feed(onWrite, [.get("a")]), ["value=2"], "a write restarts the clock")
    }

    func testReturnExpiredIfNotCleanedUpReturnsItOnce() throws {
        let h = harness(ttl: StateTtlConfig(ttl: .milliseconds(10), stateVisibility: .returnExpiredIfNotCleanedUp,
                                            incrementalCleanupSize: 0))
        _ = try feed(h, [.set("a", 5)])
        try h.setProcessingTime(50)
        XCTAssertEqual(try feed(h, [.get("a"), .get("a")]), ["value=5", "value=nil"])
    }

    func testListElementsAndMapEntriesExpireOneByOne() throws {
        let h = harness(ttl: StateTtlConfig(ttl: .milliseconds(100)))
        try h.setProcessingTime(0)
        _ = try feed(h, [.listAdd("a", 1), .mapPut("a", "old", 1)])
        try h.setProcessingTime(60)
        _ = try feed(h, [.listAdd("a", 2), .mapPut("a", "new", 2)])
        try h.setProcessingTime(120)
        XCTAssertEqual(try feed(h, [.listGet("a"), .mapGet("a", "old"), .mapEntries("a")]),
                       ["list=[2]", "map[old]=nil", "entries=[\"new:2\"]"])
        try h.setProcessingTime(200)
        XCTAssertEqual(try feed(h, [.listGet("a"), .mapEntries("a")]), ["list=[]", "entries=[]"])
        XCTAssertTrue(h.keysWithState.isEmpty)
    }

    func testIncrementalCleanupRemovesOtherKeysExpiredEntries() throws {
        let h = harness(ttl: StateTtlConfig(ttl: .milliseconds(100), incrementalCleanupSize: 5))
        for i in 0..<40 { try h.processElement(.set("k\(i)", Int64(i))) }
        XCTAssertEqual(h.leftover.stateEntries["value"], 40)
        try h.setProcessingTime(1_000)
        // Accesses to one fresh key sweep expired entries of the others, 5 per access.
        for _ in 0..<4 { try h.processElement(.set("fresh", 1)) }
        let remaining = h.leftover.stateEntries["value"] ?? 0
        XCTAssertLessThan(remaining, 41)
        XCTAssertGreaterThanOrEqual(remaining, 41 - 20)
        for _ in 0..<20 { try h.processElement(.set("fresh", 1)) }
        XCTAssertEqual(h.leftover.stateEntries["value"], 1, "only the fresh key is left")
    }

    func testRemoveExpiredSweepsEverything() throws {
        let h = harness(ttl: StateTtlConfig(ttl: .milliseconds(100), incrementalCleanupSize: 0))
        for i in 0..<10 { _ = try feed(h, [.set("k\(i)", 1), .listAdd("k\(i)", 1), .mapPut("k\(i)", "x", 1)]) }
        XCTAssertEqual(h.keyed.backend.totalEntries, 30)
        try h.setProcessingTime(100)
        h.keyed.backend.removeExpired()
        XCTAssertEqual(h.keyed.backend.totalEntries, 0)
        XCTAssertTrue(h.keysWithState.isEmpty)
    }

    func testModifyChangesValuesInPlaceAndRespectsTtl() throws {
        final class Ops: KeyedProcessFunction {
            typealias Key = String
            var list: ValueState<[Int64]>!
            var map: MapState<String, [Int64]>!
            func open(_ context: RuntimeContext) throws {
                list = try context.getState(ValueStateDescriptor<[Int64]>("list").withTimeToLive(StateTtlConfig(ttl: .milliseconds(100))))
                map = try context.getMapState(MapStateDescriptor<String, [Int64]>("map").withTimeToLive(StateTtlConfig(ttl: .milliseconds(100))))
            }
            func processElement(_ v: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
                let n = list.modify(initial: []) { xs -> Int in xs.append(v); return xs.count }
                let m = map.modify("k", initial: []) { xs -> Int in xs.append(v); return xs.count }
                try out.collect("\(n) \(m)")
            }
        }
        let h = ProcessFunctionHarnesses.forKeyedProcessFunction(Ops(), key: { _ in "a" })
        try h.setProcessingTime(0)
        try h.processElement(1)
        try h.processElement(2)
        try h.setProcessingTime(50)
        try h.processElement(3)       // a write restarts the clock
        try h.setProcessingTime(149)
        try h.processElement(4)
        try h.setProcessingTime(400)  // expired: starts over from `initial`
        try h.processElement(5)
        XCTAssertEqual(h.records, ["1 1", "2 2", "3 3", "4 4", "1 1"])
    }
}
