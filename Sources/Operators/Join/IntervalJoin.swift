import StreamCore

/// What a join function sees about the pair (Flink's `ProcessJoinFunction.Context`).
public struct JoinContext: Sendable {
    public let leftTimestamp: Int64
    public let rightTimestamp: Int64
    @inlinable public init(leftTimestamp: Int64, rightTimestamp: Int64) {
        self.leftTimestamp = leftTimestamp
        self.rightTimestamp = rightTimestamp
    }
    /// The pair's timestamp: the later of the two.
    public var timestamp: Int64 { max(leftTimestamp, rightTimestamp) }
}

/// Turns a joined pair into output (Flink's `ProcessJoinFunction`). One instance per subtask.
public protocol ProcessJoinFunction<Left, Right, Output>: AnyObject, SendableMetatype {
    associatedtype Left
    associatedtype Right
    associatedtype Output
    func open(_ context: RuntimeContext) throws
    func processElement(_ left: Left, _ right: Right, _ ctx: JoinContext, _ out: Collector<Output>) throws
}

extension ProcessJoinFunction {
    public func open(_ context: RuntimeContext) throws {}
}

/// Flink's `IntervalJoinOperator`: joins `left` and `right` rows of the same key when
/// `right.ts ∈ [left.ts + lower, left.ts + upper]` (bounds inclusive unless made exclusive). Both
/// inputs run one symmetric code path with the bounds negated for the right side; rows wait in
/// per-key buffers by timestamp and are removed once the watermark passes them by the bound; a row
/// whose timestamp is behind the watermark is late and dropped (or sent to that side's late output).
///
/// Each side's rows are a `TimeSortedListState` (per key, sorted by timestamp): a row is appended,
/// the other side's matching rows are one binary search and a contiguous run. Instead of a timer per
/// row, each key and side has one pending cleanup time, that of its earliest row, in a heap of
/// (time, slot): when the watermark reaches it, every row of the key whose cleanup time has passed
/// goes — the rows Flink's per-row timers remove at that watermark.
public final class IntervalJoinOperator<K: StreamKey, L: Codable, R: Codable, F: ProcessJoinFunction>: TwoInputStreamOperator
where F.Left == L, F.Right == R {
    public typealias Out = F.Output
    public let output: Output<F.Output>
    @usableFromInline let function: F
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let lower: Int64
    @usableFromInline let upper: Int64
    @usableFromInline let leftLate: OutputTag<L>?
    @usableFromInline let rightLate: OutputTag<R>?
    @usableFromInline let leftBuffer: TimeSortedListState<L>
    @usableFromInline let rightBuffer: TimeSortedListState<R>
    @usableFromInline let keyed: KeyedContext<K>
    @usableFromInline let collector: Collector<F.Output>
    @usableFromInline let lateDropped: Counter
    @exclusivity(unchecked) @usableFromInline var leftCleanup = CleanupQueue()
    @exclusivity(unchecked) @usableFromInline var rightCleanup = CleanupQueue()
    @exclusivity(unchecked) @usableFromInline var currentWatermark = Int64.min

    public enum Side: Hashable, Sendable, Codable { case left, right }

    /// One side's pending cleanups: per key slot the cleanup time of its earliest row, and a heap of
    /// (time, slot) in which the entry with that time is current and others are stale.
    @usableFromInline
    struct CleanupQueue {
        @usableFromInline var heap = SlotTimerHeap()
        @usableFromInline var scheduled: [Int64] = []
        @usableFromInline var keys = 0
        @usableFromInline init() {}

        /// The key in `slot` has a new earliest row, cleaned up at `time`.
        @inlinable
        mutating func schedule(slot: Int, time: Int64) {
            if slot >= scheduled.count { scheduled.append(contentsOf: repeatElement(Int64.min, count: slot + 1 - scheduled.count)) }
            let current = scheduled[slot]
            if current == Int64.min {
                keys += 1
            } else if current <= time {
                return
            }
            scheduled[slot] = time
            heap.push(slot: slot, time: time)
        }
    }

    @inlinable
    public init(_ function: F, lower: Duration, upper: Duration, lowerExclusive: Bool = false, upperExclusive: Bool = false,
                leftLateData: OutputTag<L>? = nil, rightLateData: OutputTag<R>? = nil,
                setup: KeyedOperatorSetup<K, F.Output>) throws {
        var lo = Timestamps.milliseconds(lower), hi = Timestamps.milliseconds(upper)
        if lowerExclusive { lo += 1 }
        if upperExclusive { hi -= 1 }
        guard lo <= hi else { throw WindowError(description: "interval join: lower bound \(lo) must not exceed upper bound \(hi)") }
        self.output = setup.output
        self.function = function
        self.runtime = setup.runtime
        self.lower = lo
        self.upper = hi
        self.leftLate = leftLateData
        self.rightLate = rightLateData
        self.leftBuffer = try setup.runtime.getTimeSortedListState(TimeSortedListStateDescriptor<L>("join-left"))
        self.rightBuffer = try setup.runtime.getTimeSortedListState(TimeSortedListStateDescriptor<R>("join-right"))
        self.keyed = setup.keyed
        self.collector = Collector(setup.output)
        self.lateDropped = setup.runtime.metrics.counter("numLateRecordsDropped")
        try setup.keyed.addEventTimeTimers(
            name: "join-cleanup", advance: { [unowned self] wm in self.advance(to: wm) },
            pending: { [unowned self] in self.leftCleanup.keys + self.rightCleanup.keys })
        // After a restore the buffers are back: their cleanup times follow from their earliest rows.
        leftBuffer.forEachKeySlot { slot, earliest in
            leftCleanup.schedule(slot: slot, time: Self.cleanupTime(earliest, relativeUpper: self.upper))
        }
        rightBuffer.forEachKeySlot { slot, earliest in
            rightCleanup.schedule(slot: slot, time: Self.cleanupTime(earliest, relativeUpper: -self.lower))
        }
    }

    public func open() throws { try function.open(runtime) }

    @inlinable
    public func processElement1(_ value: L, timestamp: Int64) throws {
        try process(value, timestamp, ours: leftBuffer, theirs: rightBuffer, relativeLower: lower, relativeUpper: upper,
                    side: .left, late: leftLate) { l, r, lts, rts in (l, r, lts, rts) }
    }

    @inlinable
    public func processElement2(_ value: R, timestamp: Int64) throws {
        try process(value, timestamp, ours: rightBuffer, theirs: leftBuffer, relativeLower: -upper, relativeUpper: -lower,
                    side: .right, late: rightLate) { r, l, rts, lts in (l, r, lts, rts) }
    }

    /// When a row at `ts` of a side whose matches lie up to `relativeUpper` after it is cleaned up:
    /// once no row of the other side that is not late can match it (Flink's timer time, saturating).
    @inlinable
    static func cleanupTime(_ ts: Int64, relativeUpper: Int64) -> Int64 {
        guard relativeUpper > 0 else { return ts }
        let (t, overflow) = ts.addingReportingOverflow(relativeUpper)
        return overflow ? Int64.max : t
    }

    /// The one code path for both sides: buffer our row, join it with the other side's rows in
    /// `[ts + relativeLower, ts + relativeUpper]`, schedule its cleanup.
    @inlinable
    func process<Our: Codable, Their: Codable>(
        _ value: Our, _ ts: Int64, ours: TimeSortedListState<Our>, theirs: TimeSortedListState<Their>,
        relativeLower: Int64, relativeUpper: Int64, side: Side, late: OutputTag<Our>?,
        pair: (Our, Their, Int64, Int64) -> (L, R, Int64, Int64)
    ) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        if ts < currentWatermark {
            if let late { try output.collect(late, value, timestamp: ts) } else { lateDropped.inc() }
            return
        }
        if ours.add(value, timestamp: ts) {
            let slot = keyed.backend.currentKeySlot
            let time = Self.cleanupTime(ts, relativeUpper: relativeUpper)
            switch side {
            case .left: leftCleanup.schedule(slot: slot, time: time)
            case .right: rightCleanup.schedule(slot: slot, time: time)
            }
        }
        let collector = self.collector, function = self.function
        try theirs.forEach(from: ts &+ relativeLower, through: ts &+ relativeUpper) { theirValue, theirTs in
            let (l, r, lts, rts) = pair(value, theirValue, ts, theirTs)
            collector.timestamp = max(lts, rts)
            try function.processElement(l, r, JoinContext(leftTimestamp: lts, rightTimestamp: rts), collector)
        }
    }

    /// Drops, for every key whose earliest cleanup time the watermark reached, the rows whose
    /// cleanup time it reached.
    @inlinable
    func advance(to wm: Int64) {
        currentWatermark = wm
        Self.clean(&leftCleanup, leftBuffer, relativeUpper: upper, watermark: wm)
        Self.clean(&rightCleanup, rightBuffer, relativeUpper: -lower, watermark: wm)
    }

    @inlinable
    static func clean<T>(_ queue: inout CleanupQueue, _ buffer: TimeSortedListState<T>, relativeUpper: Int64, watermark wm: Int64) {
        // Rows at `ts <= bound` have `cleanupTime(ts) <= wm`.
        let bound: Int64
        if wm == Int64.max || relativeUpper <= 0 {
            bound = wm
        } else {
            let (b, overflow) = wm.subtractingReportingOverflow(relativeUpper)
            bound = overflow ? Int64.min : b
        }
        while let time = queue.heap.nextTime, time <= wm {
            let (_, slot) = queue.heap.pop()!
            guard queue.scheduled[slot] == time else { continue }   // stale: an earlier row came later
            if let earliest = buffer.removeRows(slot: slot, through: bound) {
                let next = cleanupTime(earliest, relativeUpper: relativeUpper)
                queue.scheduled[slot] = next
                queue.heap.push(slot: slot, time: next)
            } else {
                queue.scheduled[slot] = Int64.min
                queue.keys -= 1
            }
        }
    }
}

extension KeyedStream where T: Codable & SendableMetatype {
    /// Starts an interval join with another keyed stream (Flink's `KeyedStream.intervalJoin`).
    @inlinable
    public func intervalJoin<U: Codable & SendableMetatype>(_ other: KeyedStream<U, K>) -> IntervalJoin<T, U, K> {
        IntervalJoin(left: self, right: other)
    }
}

/// An interval join being configured: `between(lower, upper)`, optional exclusive bounds and late
/// outputs, then `process`.
public struct IntervalJoin<L: Codable & SendableMetatype, R: Codable & SendableMetatype, K: StreamKey> {
    @usableFromInline let left: KeyedStream<L, K>
    @usableFromInline let right: KeyedStream<R, K>
    @usableFromInline var lower: Duration = .zero
    @usableFromInline var upper: Duration = .zero
    @usableFromInline var lowerExclusive = false
    @usableFromInline var upperExclusive = false
    @usableFromInline var leftLate: OutputTag<L>?
    @usableFromInline var rightLate: OutputTag<R>?

    @usableFromInline
    init(left: KeyedStream<L, K>, right: KeyedStream<R, K>) {
        self.left = left
        self.right = right
    }

    /// `right.ts ∈ [left.ts + lower, left.ts + upper]`.
    public func between(_ lower: Duration, _ upper: Duration) -> IntervalJoin {
        var c = self; c.lower = lower; c.upper = upper; return c
    }
    public func lowerBoundExclusive() -> IntervalJoin { var c = self; c.lowerExclusive = true; return c }
    public func upperBoundExclusive() -> IntervalJoin { var c = self; c.upperExclusive = true; return c }
    public func sideOutputLeftLateData(_ tag: OutputTag<L>) -> IntervalJoin { var c = self; c.leftLate = tag; return c }
    public func sideOutputRightLateData(_ tag: OutputTag<R>) -> IntervalJoin { var c = self; c.rightLate = tag; return c }

    /// Runs the join; the expression is evaluated once per parallel subtask.
    @inlinable
    public func process<F: ProcessJoinFunction>(name: String = "IntervalJoin", _ function: @autoclosure @escaping @Sendable () -> F) -> DataStream<F.Output>
    where F.Left == L, F.Right == R {
        let (lo, hi, le, ue, ll, rl) = (lower, upper, lowerExclusive, upperExclusive, leftLate, rightLate)
        return left.connect(right).transform(name) { setup in
            try IntervalJoinOperator<K, L, R, F>(function(), lower: lo, upper: hi, lowerExclusive: le, upperExclusive: ue,
                                                  leftLateData: ll, rightLateData: rl, setup: setup)
        }
    }
}
