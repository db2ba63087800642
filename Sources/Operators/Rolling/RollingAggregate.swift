import StreamCore

/// An aggregate that can also take a value back out (Flink SQL's retractable aggregate functions),
/// as rolling (OVER) windows need.
public protocol RollingAggregate<Input, Accumulator, Result>: Sendable {
    associatedtype Input
    associatedtype Accumulator: Codable
    associatedtype Result
    func createAccumulator() -> Accumulator
    func accumulate(_ accumulator: inout Accumulator, _ value: Input)
    func retract(_ accumulator: inout Accumulator, _ value: Input)
    func result(_ accumulator: Accumulator) -> Result
}

/// A record with the rolling aggregate as of that record.
public struct Rolling<Row, Value> {
    public let row: Row
    public let value: Value
    @inlinable public init(row: Row, value: Value) { self.row = row; self.value = value }
}

extension Rolling: Sendable where Row: Sendable, Value: Sendable {}
extension Rolling: Equatable where Row: Equatable, Value: Equatable {}

/// Count, sum, min, max and average of an integer field (money in cents, counts) over the range.
public struct CountSumMinMax<Input>: RollingAggregate {
    public struct Accumulator: Codable, Sendable {
        public var count: Int64 = 0
        public var sum: Int64 = 0
        /// The values in ascending order, repeats included (a multiset: min and max survive
        /// retraction). A sorted array beats a hashed multiset at the sizes a range holds: an
        /// insertion or retraction is a binary search and a short move, min and max are its ends.
        public var sortedValues: [Int64] = []
        @inlinable public init() {}

        /// The first index whose value is `>= v` (`> v` when `after`).
        @inlinable
        func index(of v: Int64, after: Bool) -> Int {
            var lo = 0, hi = sortedValues.count
            while lo < hi {
                let mid = (lo &+ hi) >> 1
                let x = sortedValues[mid]
                if x < v || (after && x == v) { lo = mid &+ 1 } else { hi = mid }
            }
            return lo
        }
    }

    public struct Result: Sendable, Equatable, CustomStringConvertible {
        public let count: Int64
        public let sum: Int64
        public let min: Int64?
        public let max: Int64?
        @inlinable public init(count: Int64, sum: Int64, min: Int64?, max: Int64?) {
            self.count = count; self.sum = sum; self.min = min; self.max = max
        }
        /// Exact average as sum / count (nil when empty).
        public var average: Double? { count == 0 ? nil : Double(sum) / Double(count) }
        public var description: String { "count=\(count) sum=\(sum) min=\(min.map(String.init) ?? "-") max=\(max.map(String.init) ?? "-")" }
    }

    @usableFromInline let field: @Sendable (Input) -> Int64
    @inlinable public init(_ field: @escaping @Sendable (Input) -> Int64) { self.field = field }

    @inlinable public func createAccumulator() -> Accumulator { Accumulator() }

    @inlinable public func accumulate(_ acc: inout Accumulator, _ value: Input) {
        let v = field(value)
        acc.count += 1
        acc.sum += v
        if let last = acc.sortedValues.last, v < last {
            acc.sortedValues.insert(v, at: acc.index(of: v, after: true))
        } else {
            acc.sortedValues.append(v)
        }
    }

    @inlinable public func retract(_ acc: inout Accumulator, _ value: Input) {
        let v = field(value)
        acc.count -= 1
        acc.sum -= v
        let i = acc.index(of: v, after: false)
        if i < acc.sortedValues.count, acc.sortedValues[i] == v { acc.sortedValues.remove(at: i) }
    }

    @inlinable public func result(_ acc: Accumulator) -> Result {
        Result(count: acc.count, sum: acc.sum, min: acc.sortedValues.first, max: acc.sortedValues.last)
    }
}

/// Flink SQL's `OVER (PARTITION BY key ORDER BY rowtime RANGE BETWEEN INTERVAL r PRECEDING AND
/// CURRENT ROW)` on event time (`RowTimeRangeBoundedPrecedingFunction`): rows wait until the
/// watermark passes their time, then each row is emitted, in time order, with the aggregate over the
/// key's rows whose time is in `[t - range, t]` (rows with equal time are peers and see each other).
/// A row whose time is not after the key's last triggering time is dropped and counted (Flink starts
/// that time at 0, so rows at or before the epoch are dropped too).
///
/// State clean-up is Flink 2.3's, observable details included (found by the differential test): each
/// accepted row at `ts` makes sure a clean-up timer is due no earlier than `ts + range + 1`, by
/// registering one at `ts + ⌊1.5 · range⌋ + 1` when the pending one is earlier; when the due clean-up
/// timer fires, the key's rows, accumulator and last triggering time are cleared (so a later row of any
/// positive time is accepted again); any other timer, a superseded clean-up timer included, moves the
/// last triggering time to its own time. State per key is bounded by the range.
public final class RowTimeOverOperator<K: StreamKey, F: RollingAggregate>: OneInputStreamOperator where F.Input: Codable {
    public typealias In = F.Input
    public typealias Out = Rolling<F.Input, F.Result>
    public let output: Output<Out>
    @usableFromInline let function: F
    @usableFromInline let range: Int64
    @usableFromInline let keyed: KeyedContext<K>
    @usableFromInline let rows: MapState<Int64, [F.Input]>
    @usableFromInline let retained: ValueState<[Int64]>
    @usableFromInline let accumulator: ValueState<F.Accumulator>
    @usableFromInline let lastTriggering: ValueState<Int64>
    @usableFromInline let cleanupTime: ValueState<Int64>
    @usableFromInline let dropped: Counter
    @exclusivity(unchecked) @usableFromInline var timers: InternalTimerService<K, VoidNamespace>!

    @inlinable
    public init(_ function: F, range: Duration, setup: KeyedOperatorSetup<K, Out>) throws {
        self.output = setup.output
        self.function = function
        self.range = Timestamps.milliseconds(range)
        self.keyed = setup.keyed
        self.rows = try setup.runtime.getMapState(MapStateDescriptor<Int64, [F.Input]>("over-rows"))
        self.retained = try setup.runtime.getState(ValueStateDescriptor<[Int64]>("over-retained"))
        self.accumulator = try setup.runtime.getState(ValueStateDescriptor<F.Accumulator>("over-accumulator"))
        self.lastTriggering = try setup.runtime.getState(ValueStateDescriptor<Int64>("over-last-time"))
        self.cleanupTime = try setup.runtime.getState(ValueStateDescriptor<Int64>("over-cleanup-time"))
        self.dropped = setup.runtime.metrics.counter("numLateRecordsDropped")
        self.timers = setup.keyed.timerService(
            name: "over-timers", namespace: VoidNamespace.self,
            onEventTime: { [unowned self] t in try self.onTimer(t.timestamp) }, onProcessingTime: { _ in })
    }

    @inlinable
    public func processElement(_ value: F.Input, timestamp ts: Int64) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        guard ts > (lastTriggering.value() ?? 0) else {
            dropped.inc()
            return
        }
        let isNew = rows.modify(ts, initial: []) { buffered -> Bool in
            buffered.append(value)
            return buffered.count == 1
        }
        if isNew { timers.registerEventTimeTimer(namespace: VoidNamespace(), time: ts) }
        let earliest = ts &+ range &+ 1
        if (cleanupTime.value() ?? Int64.min) < earliest {
            let due = ts &+ Int64(Double(range) * 1.5) &+ 1
            timers.registerEventTimeTimer(namespace: VoidNamespace(), time: due)
            cleanupTime.update(due)
        }
    }

    @inlinable
    func onTimer(_ t: Int64) throws {
        if let due = cleanupTime.value(), due <= t {
            rows.clear()
            retained.clear()
            accumulator.clear()
            lastTriggering.clear()
            cleanupTime.clear()
            return
        }
        defer { lastTriggering.update(t) }
        guard let current = rows.get(t) else { return }
        // Retract what fell out of [t - range, t]; `retained` holds emitted times in ascending order.
        let expired = retained.modify(initial: []) { kept -> ArraySlice<Int64> in
            var drop = 0
            while drop < kept.count, t &- kept[drop] > range { drop += 1 }
            let gone = kept[0..<drop]
            kept.removeFirst(drop)
            kept.append(t)
            return gone
        }
        let value = accumulator.modify(initial: function.createAccumulator()) { acc -> F.Result in
            for old in expired { for row in rows.get(old) ?? [] { function.retract(&acc, row) } }
            for row in current { function.accumulate(&acc, row) }
            return function.result(acc)
        }
        for old in expired { rows.remove(old) }
        for row in current { try output.collect(Rolling(row: row, value: value), timestamp: t) }
    }
}

/// The on-arrival variant the online jobs need: each record is emitted at once with the aggregate
/// over the key's records seen so far whose time is in `[t - range, t]` (freshness over
/// completeness: a record arriving later does not change results already emitted). Records older
/// than the newest time minus `range` minus `disorder` are forgotten, so state is bounded by the
/// range; a record that old when it arrives is dropped and counted.
public final class ArrivalOverOperator<K: StreamKey, F: RollingAggregate>: OneInputStreamOperator where F.Input: Codable {
    public typealias In = F.Input
    public typealias Out = Rolling<F.Input, F.Result>
    public let output: Output<Out>
    @usableFromInline let function: F
    @usableFromInline let range: Int64
    @usableFromInline let disorder: Int64
    /// Rows by time, and their times in ascending order.
    @usableFromInline let rows: MapState<Int64, [F.Input]>
    @usableFromInline let times: ValueState<[Int64]>
    @usableFromInline let dropped: Counter

    @inlinable
    public init(_ function: F, range: Duration, disorder: Duration = .zero, setup: KeyedOperatorSetup<K, Out>) throws {
        self.output = setup.output
        self.function = function
        self.range = Timestamps.milliseconds(range)
        self.disorder = Timestamps.milliseconds(disorder)
        self.rows = try setup.runtime.getMapState(MapStateDescriptor<Int64, [F.Input]>("over-rows"))
        self.times = try setup.runtime.getState(ValueStateDescriptor<[Int64]>("over-times"))
        self.dropped = setup.runtime.metrics.counter("numLateRecordsDropped")
    }

    @inlinable
    public func processElement(_ value: F.Input, timestamp ts: Int64) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        var known = times.value() ?? []
        let newest = max(known.last ?? ts, ts)
        let horizon = newest &- range &- disorder
        guard ts >= horizon else {
            dropped.inc()
            return
        }
        // Insert in time order (usually at the end).
        if var same = rows.get(ts) {
            same.append(value)
            rows.put(ts, same)
        } else {
            rows.put(ts, [value])
            var i = known.count
            while i > 0, known[i - 1] > ts { i -= 1 }
            known.insert(ts, at: i)
        }
        // Aggregate [ts - range, ts] over what has been seen.
        var acc = function.createAccumulator()
        var i = known.count - 1
        while i >= 0, known[i] > ts { i -= 1 }
        while i >= 0, ts &- known[i] <= range {
            for row in rows.get(known[i]) ?? [] { function.accumulate(&acc, row) }
            i -= 1
        }
        try output.collect(Rolling(row: value, value: function.result(acc)), timestamp: ts)
        // Forget what no future record can reach.
        var drop = 0
        while drop < known.count, known[drop] < horizon {
            rows.remove(known[drop])
            drop += 1
        }
        known.removeFirst(drop)
        times.update(known)
    }
}

extension KeyedStream where T: Codable & SendableMetatype {
    /// Flink SQL's `OVER (... RANGE BETWEEN range PRECEDING AND CURRENT ROW)`, emitted on the watermark.
    @inlinable
    public func over<F: RollingAggregate>(_ function: F, range: Duration, name: String = "Over") -> DataStream<Rolling<T, F.Result>>
    where F.Input == T {
        transform(name) { try RowTimeOverOperator(function, range: range, setup: $0) }
    }

    /// The same aggregate emitted on arrival of each record (the online feature path).
    @inlinable
    public func overOnArrival<F: RollingAggregate>(_ function: F, range: Duration, disorder: Duration = .zero,
                                                   name: String = "OverOnArrival") -> DataStream<Rolling<T, F.Result>>
    where F.Input == T {
        transform(name) { try ArrivalOverOperator(function, range: range, disorder: disorder, setup: $0) }
    }
}
