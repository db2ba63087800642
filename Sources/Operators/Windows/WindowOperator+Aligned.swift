import StreamCore

/// The aligned path of `WindowOperator`: event-time tumbling and sliding windows. Window `[s, e)` of
/// a key is the entry (key slot, `e`) of one `NamespacedValueState`; its fire timer at `e - 1` is the key's slot
/// in the list of that time (every key's windows end at the same few times), its cleanup timer at
/// `e - 1 + L` likewise. Firing walks the lists of the times the watermark passed, in time order,
/// slots in the order their windows were created — the order Flink's timer queue gives.
extension WindowOperator {
    /// `end - 1 + allowedLateness`, saturating.
    @inlinable
    func cleanupTime(end: Int64) -> Int64 {
        let (t, overflow) = (end &- 1).addingReportingOverflow(allowedLateness)
        return overflow ? Int64.max : t
    }

    /// The start of the latest window holding `ts` (the start of its slide-long step).
    @inlinable @inline(__always)
    func latestStart(_ ts: Int64) -> Int64 {
        if ts >= cachedStart, ts < cachedEnd { return cachedStart }
        let start = TimeWindow.windowStart(timestamp: ts, offset: offset, size: slide)
        cachedStart = start
        cachedEnd = start &+ slide
        return start
    }

    /// Inlined into the runtime's per-record closure (one call less per record).
    @inlinable @inline(__always)
    func processAligned(_ value: IN, timestamp ts: Int64) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        if size == slide { return try processTumbling(value, timestamp: ts) }
        let wm = currentWatermark
        var skipped = true
        // Every window holding the record, latest first (Flink's order).
        var start = latestStart(ts)
        while start > ts &- size {
            let end = start &+ size
            start &-= slide
            guard cleanupTime(end: end) > wm else { continue }   // late for this window only
            skipped = false
            if windows.fold(end, { logic.add($0, value) }) {
                try onNewWindow(end: end, watermark: wm)
            } else if end &- 1 <= wm {
                try fire(slot: keyed.backend.currentKeySlot, end: end)   // late but allowed: fire again at once
            }
        }
        if skipped, ts &+ allowedLateness <= wm { try dropLate(value, timestamp: ts) }
    }

    /// `processAligned` for tumbling windows: the same steps for the record's one window, without
    /// the loop over windows (fewer instructions and register spills per record).
    @inlinable @inline(__always)
    func processTumbling(_ value: IN, timestamp ts: Int64) throws {
        let wm = currentWatermark
        let end = latestStart(ts) &+ size
        guard cleanupTime(end: end) > wm else {   // late for its only window
            if ts &+ allowedLateness <= wm { try dropLate(value, timestamp: ts) }
            return
        }
        if windows.fold(end, { logic.add($0, value) }) {
            try onNewWindow(end: end, watermark: wm)
        } else if end &- 1 <= wm {
            try fire(slot: keyed.backend.currentKeySlot, end: end)   // late but allowed: fire again at once
        }
    }

    /// The default trigger's `onElement` for a new window, and its cleanup timer.
    @inlinable
    func onNewWindow(end: Int64, watermark wm: Int64) throws {
        let slot = keyed.backend.currentKeySlot
        if end &- 1 <= wm {
            try fire(slot: slot, end: end)   // the first record after the watermark passed the end
        } else {
            fireTimers.add(slot: slot, time: end &- 1)
        }
        // Without lateness the fire timer purges (one timer, as Flink deduplicates the two).
        if allowedLateness > 0 {
            let t = cleanupTime(end: end)
            if t != Int64.max { cleanupTimers.add(slot: slot, time: t) }
        }
    }

    @inlinable
    func fire(slot: Int, end: Int64) throws {
        guard let acc = windows.get(slot: slot, end) else { return }
        try emit(acc, end: end)
    }

    @inlinable
    func emit(_ acc: ACC, end: Int64) throws {
        context.prepare(window: TimeWindow(start: end &- size, end: end), watermark: currentWatermark)
        collector.timestamp = end &- 1
        try logic.emit(keyed.backend.currentKey!, context, acc, collector)
    }

    /// Fires the windows whose end the watermark passed, then drops the windows past their lateness.
    @inlinable
    func advanceAligned(to wm: Int64) throws {
        currentWatermark = wm
        let backend = keyed.backend
        while let time = fireTimers.nextTime, time <= wm {
            let (_, slots) = fireTimers.popFirst()
            let end = time &+ 1
            for s in slots {
                let slot = Int(s)
                backend.setCurrentKey(slot: slot)
                if allowedLateness == 0 {
                    if let acc = windows.remove(slot: slot, end) { try emit(acc, end: end) }
                } else {
                    try fire(slot: slot, end: end)
                }
            }
            fireTimers.recycle(slots)
        }
        while let time = cleanupTimers.nextTime, time <= wm {
            let (_, slots) = cleanupTimers.popFirst()
            let end = time &- allowedLateness &+ 1
            for s in slots { windows.remove(slot: Int(s), end) }
            cleanupTimers.recycle(slots)
        }
    }
}
