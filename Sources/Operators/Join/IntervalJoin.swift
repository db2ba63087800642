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
    @usableFromInline let leftBuffer: MapState<Int64, [BufferEntry<L>]>
    @usableFromInline let rightBuffer: MapState<Int64, [BufferEntry<R>]>
    @usableFromInline let collector: Collector<F.Output>
    @usableFromInline let lateDropped: Counter
    @exclusivity(unchecked) @usableFromInline var timers: InternalTimerService<K, Side>!

    public enum Side: Hashable, Sendable, Codable { case left, right }

    public struct BufferEntry<T: Codable>: Codable {
        public let value: T
        @inlinable public init(value: T) { self.value = value }
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
        self.leftBuffer = try setup.runtime.getMapState(MapStateDescriptor<Int64, [BufferEntry<L>]>("join-left"))
        self.rightBuffer = try setup.runtime.getMapState(MapStateDescriptor<Int64, [BufferEntry<R>]>("join-right"))
        self.collector = Collector(setup.output)
        self.lateDropped = setup.runtime.metrics.counter("numLateRecordsDropped")
        self.timers = setup.keyed.timerService(
            name: "join-cleanup", namespace: Side.self,
            onEventTime: { [unowned self] t in self.cleanup(t.namespace, t.timestamp) }, onProcessingTime: { _ in })
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

    /// The one code path for both sides: buffer our row, join it with the other side's rows in
    /// `[ts + relativeLower, ts + relativeUpper]`, schedule its cleanup.
    @inlinable
    func process<Our: Codable, Their: Codable>(
        _ value: Our, _ ts: Int64, ours: MapState<Int64, [BufferEntry<Our>]>, theirs: MapState<Int64, [BufferEntry<Their>]>,
        relativeLower: Int64, relativeUpper: Int64, side: Side, late: OutputTag<Our>?,
        pair: (Our, Their, Int64, Int64) -> (L, R, Int64, Int64)
    ) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        if ts < timers.currentWatermark {
            if let late { try output.collect(late, value, timestamp: ts) } else { lateDropped.inc() }
            return
        }
        ours.modify(ts, initial: []) { $0.append(BufferEntry(value: value)) }
        let from = ts &+ relativeLower, to = ts &+ relativeUpper
        try theirs.forEach { theirTs, entries in
            guard theirTs >= from, theirTs <= to else { return }
            for entry in entries {
                let (l, r, lts, rts) = pair(value, entry.value, ts, theirTs)
                collector.timestamp = max(lts, rts)
                try function.processElement(l, r, JoinContext(leftTimestamp: lts, rightTimestamp: rts), collector)
            }
        }
        let cleanupTime = relativeUpper > 0 ? ts &+ relativeUpper : ts
        timers.registerEventTimeTimer(namespace: side, time: cleanupTime)
    }

    @inlinable
    func cleanup(_ side: Side, _ timerTs: Int64) {
        switch side {
        case .left: leftBuffer.remove(upper <= 0 ? timerTs : timerTs &- upper)
        case .right: rightBuffer.remove(lower <= 0 ? timerTs &+ lower : timerTs)
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
