import StreamCore

/// Sliding event-time windows without redundant work (as Flink SQL's sliced window aggregation):
/// a record updates the one slice `[s, s + slide)` it falls in, and a window is the merge of its
/// `size / slide` slices when it fires. The results, their timestamps, lateness re-firing, purging
/// and late side output are exactly those of `WindowOperator`; only the accumulator must be
/// mergeable (associative), which `AggregateFunction.merge` and `reduce` are.
///
/// Slices live in one `NamespacedValueState` keyed by (key slot, slice start); a window's fire timer is the
/// key's slot in the list of the window's `end - 1`, a slice's cleanup timer likewise (see
/// `SlotTimerBuckets`), so a record that opens no slice touches one table entry and nothing else.
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
    @usableFromInline let slices: NamespacedValueState<ACC>
    /// Fire timers at `end - 1`; cleanup timers of slices at `start + size - 1 + L`.
    @exclusivity(unchecked) @usableFromInline var fireTimers = SlotTimerBuckets()
    @exclusivity(unchecked) @usableFromInline var cleanupTimers = SlotTimerBuckets()
    @exclusivity(unchecked) @usableFromInline var currentWatermark = Int64.min
    /// Per key slot, a bound on the starts of its slices (the latest created since it had none).
    @exclusivity(unchecked) @usableFromInline var latestSlice: [Int64] = []
    /// The last slice computed: records mostly fall in the same one (no division).
    @exclusivity(unchecked) @usableFromInline var cachedStart: Int64 = 1
    @exclusivity(unchecked) @usableFromInline var cachedEnd: Int64 = 0
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
        self.slices = try setup.runtime.getNamespacedState(NamespacedStateDescriptor<ACC>("window-slices"))
        self.context = WindowContext(processingTime: setup.keyed.processingTime, output: setup.output)
        self.collector = Collector(setup.output)
        self.lateDropped = setup.runtime.metrics.counter("numLateRecordsDropped")
        try setup.keyed.addEventTimeTimers(
            name: "slice-timers", advance: { [unowned self] wm in try self.advance(to: wm) },
            pending: { [unowned self] in self.fireTimers.count + self.cleanupTimers.count },
            snapshot: { [unowned self] in self.timersSnapshot() },
            restore: { [unowned self] slot, time, tag in
                if tag == 0 { self.fireTimers.add(slot: slot, time: time) } else { self.cleanupTimers.add(slot: slot, time: time) }
            })
        // After a restore: the bound on each key's slice starts, from the restored slices.
        slices.forEachEntry { slot, start, _ in
            if slot >= latestSlice.count { latestSlice.append(contentsOf: repeatElement(Int64.min, count: slot + 1 - latestSlice.count)) }
            latestSlice[slot] = max(latestSlice[slot], start)
        }
    }

    /// Fire timers (tag 0) and slice cleanup timers (tag 1), for a checkpoint.
    @usableFromInline
    func timersSnapshot() -> [(slot: Int, time: Int64, tag: Int32)] {
        var out: [(slot: Int, time: Int64, tag: Int32)] = []
        fireTimers.forEach { out.append(($0, $1, 0)) }
        cleanupTimers.forEach { out.append(($0, $1, 1)) }
        return out
    }

    public func open() throws { try logic.open(runtime) }
    public func close() { logic.close() }

    @inlinable
    func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (t, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int64.max : t
    }

    @inlinable
    func sliceStart(_ ts: Int64) -> Int64 {
        if ts >= cachedStart, ts < cachedEnd { return cachedStart }
        let start = TimeWindow.windowStart(timestamp: ts, offset: offset, size: slide)
        cachedStart = start
        cachedEnd = start &+ slide
        return start
    }

    @inlinable
    public func processElement(_ value: IN, timestamp ts: Int64) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        let sliceStart = sliceStart(ts)
        let wm = currentWatermark
        // The latest window holding the record ends last: if it is late, all of them are.
        let latestEnd = sliceStart &+ size
        if saturatingAdd(latestEnd &- 1, allowedLateness) <= wm {
            if ts &+ allowedLateness <= wm {
                if let lateTag { try output.collect(lateTag, value, timestamp: ts) } else { lateDropped.inc() }
            }
            return
        }
        if slices.fold(sliceStart, { logic.add($0, value) }) { onNewSlice(sliceStart, watermark: wm) }
        // Windows that already fired but are not late fire again at once, latest first (Flink's
        // order). The earliest-ending window holding the slice ends at `sliceStart + slide`.
        guard sliceStart &+ slide &- 1 <= wm else { return }
        let slot = keyed.backend.currentKeySlot
        var start = sliceStart
        while start > ts &- size {
            let maxTs = start &+ size &- 1
            if maxTs <= wm, saturatingAdd(maxTs, allowedLateness) > wm { try fire(slot: slot, windowEnd: start &+ size) }
            start &-= slide
        }
    }

    /// Timers for a new slice: a fire timer for every window holding it that has none yet (no other
    /// slice of the key in it) and has not fired; a cleanup timer when the last window holding it is
    /// past its lateness.
    @inlinable
    func onNewSlice(_ s: Int64, watermark wm: Int64) {
        let slot = keyed.backend.currentKeySlot
        if slot >= latestSlice.count { latestSlice.append(contentsOf: repeatElement(0, count: slot + 1 - latestSlice.count)) }
        // Windows ending in (s, s + size] hold the slice. Those ending at or before `p + size` also
        // hold the nearest earlier slice p, those ending after q the nearest later slice q: they
        // have their timers.
        var firstNew = s &+ slide
        var lastNew = s &+ size
        if slices.entryCount(slot: slot) > 1 {
            var p = s &- slide
            while p > s &- size {
                if slices.get(slot: slot, p) != nil { firstNew = p &+ size &+ slide; break }
                p &-= slide
            }
            if s < latestSlice[slot] {
                var q = s &+ slide
                while q < s &+ size {
                    if slices.get(slot: slot, q) != nil { lastNew = q; break }
                    q &+= slide
                }
            } else {
                latestSlice[slot] = s
            }
        } else {
            latestSlice[slot] = s
        }
        var end = firstNew
        while end <= lastNew {
            if end &- 1 > wm { fireTimers.add(slot: slot, time: end &- 1) }
            end &+= slide
        }
        let cleanup = saturatingAdd(s &+ size &- 1, allowedLateness)
        if cleanup != Int64.max { cleanupTimers.add(slot: slot, time: cleanup) }
    }

    /// Merges the slices of the window ending at `end` and emits the result, if any slice has data.
    @inlinable
    func fire(slot: Int, windowEnd end: Int64) throws {
        var acc: ACC?
        var s = end &- size
        while s < end {
            if let a = slices.get(slot: slot, s) { acc = acc.map { logic.merge($0, a) } ?? a }
            s &+= slide
        }
        guard let acc else { return }
        context.prepare(window: TimeWindow(start: end &- size, end: end), watermark: currentWatermark)
        collector.timestamp = end &- 1
        try logic.emit(keyed.backend.currentKey!, context, acc, collector)
    }

    /// Fires the windows whose end the watermark passed, then drops the slices past their lateness
    /// (a slice's cleanup time is never before the fire times of the windows holding it).
    @inlinable
    func advance(to wm: Int64) throws {
        currentWatermark = wm
        let backend = keyed.backend
        while let time = fireTimers.nextTime, time <= wm {
            let (_, slots) = fireTimers.popFirst()
            for s in slots {
                backend.setCurrentKey(slot: Int(s))
                try fire(slot: Int(s), windowEnd: time &+ 1)
            }
            fireTimers.recycle(slots)
        }
        while let time = cleanupTimers.nextTime, time <= wm {
            let (_, slots) = cleanupTimers.popFirst()
            let start = time &- allowedLateness &- size &+ 1
            for s in slots { slices.remove(slot: Int(s), start) }
            cleanupTimers.recycle(slots)
        }
    }
}
