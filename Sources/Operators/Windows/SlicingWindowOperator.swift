import StreamCore

/// A timer of the slicing operator: fire the window ending at `end`, or drop a slice.
public enum SliceTimer: Hashable, Sendable, Codable {
    case fire(windowEnd: Int64)
    case cleanup(sliceStart: Int64)
}

/// Sliding event-time windows without redundant work (as Flink SQL's sliced window aggregation):
/// a record updates the one slice `[s, s + slide)` it falls in, and a window is the merge of its
/// `size / slide` slices when it fires. The results, their timestamps, lateness re-firing, purging
/// and late side output are exactly those of `WindowOperator`; only the accumulator must be
/// mergeable (associative), which `AggregateFunction.merge` and `reduce` are.
public final class SlicingWindowOperator<K: StreamKey, IN, ACC: Codable, OUT>: OneInputStreamOperator {
    public let output: Output<OUT>
    @usableFromInline let size: Int64
    @usableFromInline let slide: Int64
    @usableFromInline let offset: Int64
    @usableFromInline let allowedLateness: Int64
    @usableFromInline let lateTag: OutputTag<IN>?
    @usableFromInline let logic: WindowLogic<K, IN, ACC, OUT>
    @usableFromInline let keyed: KeyedContext<K>
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let slices: MapState<Int64, ACC>
    @exclusivity(unchecked) @usableFromInline var timers: InternalTimerService<K, SliceTimer>!
    @usableFromInline let context: WindowContext
    @usableFromInline let collector: Collector<OUT>
    @usableFromInline let lateDropped: Counter

    @inlinable
    public init(size: Duration, slide: Duration, offset: Duration = .zero, allowedLateness: Duration = .zero,
                lateDataTag: OutputTag<IN>? = nil, logic: WindowLogic<K, IN, ACC, OUT>,
                setup: KeyedOperatorSetup<K, OUT>) throws {
        let size = Timestamps.milliseconds(size), slide = Timestamps.milliseconds(slide)
        guard size > 0, slide > 0, size % slide == 0 else {
            throw WindowError(description: "sliced windows need a positive slide that divides the size")
        }
        let lateness = Timestamps.milliseconds(allowedLateness)
        guard lateness >= 0 else { throw WindowError(description: "allowedLateness must not be negative") }
        self.output = setup.output
        self.size = size
        self.slide = slide
        self.offset = Timestamps.milliseconds(offset)
        self.allowedLateness = lateness
        self.lateTag = lateDataTag
        self.logic = logic
        self.keyed = setup.keyed
        self.runtime = setup.runtime
        self.slices = try setup.runtime.getMapState(MapStateDescriptor<Int64, ACC>("window-slices"))
        self.context = WindowContext(processingTime: setup.keyed.processingTime, output: setup.output)
        self.collector = Collector(setup.output)
        self.lateDropped = setup.runtime.metrics.counter("numLateRecordsDropped")
        self.timers = setup.keyed.timerService(
            name: "slice-timers", namespace: SliceTimer.self,
            onEventTime: { [unowned self] t in try self.onTimer(t.namespace, t.timestamp) },
            onProcessingTime: { _ in })
    }

    public func open() throws { try logic.open(runtime) }
    public func close() { logic.close() }

    @inlinable var watermark: Int64 { timers.currentWatermark }

    @inlinable
    func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (t, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int64.max : t
    }

    @inlinable
    public func processElement(_ value: IN, timestamp ts: Int64) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        let sliceStart = TimeWindow.windowStart(timestamp: ts, offset: offset, size: slide)
        let wm = watermark
        // The latest window holding the record ends last: if it is late, all of them are.
        let latestEnd = sliceStart &+ size
        if saturatingAdd(latestEnd &- 1, allowedLateness) <= wm {
            if ts &+ allowedLateness <= wm {
                if let lateTag { try output.collect(lateTag, value, timestamp: ts) } else { lateDropped.inc() }
            }
            return
        }
        let old = slices.get(sliceStart)
        slices.put(sliceStart, logic.add(old, value))
        if old == nil {
            // A new slice: every window ending after it needs its timer; the slice goes when the last
            // window holding it is past its lateness.
            var end = sliceStart &+ slide
            while end <= latestEnd {
                if end &- 1 > wm { timers.registerEventTimeTimer(namespace: .fire(windowEnd: end), time: end &- 1) }
                end &+= slide
            }
            let cleanup = saturatingAdd(latestEnd &- 1, allowedLateness)
            if cleanup != Int64.max {
                timers.registerEventTimeTimer(namespace: .cleanup(sliceStart: sliceStart), time: cleanup)
            }
        }
        // Windows that already fired but are not late fire again at once, latest first (Flink's order).
        var start = sliceStart
        while start > ts &- size {
            let maxTs = start &+ size &- 1
            if maxTs <= wm, saturatingAdd(maxTs, allowedLateness) > wm { try fire(windowEnd: start &+ size) }
            start &-= slide
        }
    }

    /// Merges the slices of the window ending at `end` and emits the result, if any slice has data.
    @usableFromInline
    func fire(windowEnd end: Int64) throws {
        var acc: ACC?
        var s = end &- size
        while s < end {
            if let a = slices.get(s) { acc = acc.map { logic.merge($0, a) } ?? a }
            s &+= slide
        }
        guard let acc else { return }
        context.window = TimeWindow(start: end &- size, end: end)
        context.currentWatermark = watermark
        collector.timestamp = end &- 1
        try logic.emit(keyed.currentKey!, context, acc, collector)
    }

    @usableFromInline
    func onTimer(_ timer: SliceTimer, _ time: Int64) throws {
        switch timer {
        case .fire(let end): try fire(windowEnd: end)
        case .cleanup(let start): slices.remove(start)
        }
    }
}
