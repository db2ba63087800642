import StreamCore

/// The general path of `WindowOperator`: sessions and processing-time windows (and, for tests,
/// anything). A `MapState` of windows per key and a timer per (key, window), as Flink's operator.
extension WindowOperator {
    @usableFromInline var watermark: Int64 { timers.currentWatermark }

    /// `end - 1 + allowedLateness` (event time, saturating) or `end - 1` (processing time).
    @inlinable
    func cleanupTime(_ w: TimeWindow) -> Int64 {
        guard assigner.isEventTime else { return w.maxTimestamp }
        let (t, overflow) = w.maxTimestamp.addingReportingOverflow(allowedLateness)
        return overflow ? Int64.max : t
    }

    @inlinable
    func isWindowLate(_ w: TimeWindow) -> Bool { assigner.isEventTime && cleanupTime(w) <= watermark }

    @inlinable
    func processGeneral(_ value: IN, timestamp: Int64) throws {
        let time: Int64
        if assigner.isEventTime {
            guard timestamp != Timestamps.none else { throw WindowError.noTimestamp }
            time = timestamp
        } else {
            time = keyed.processingTime.currentProcessingTime()
        }
        scratch.removeAll(keepingCapacity: true)
        assigner.assignWindows(timestamp: time, into: &scratch)
        var skipped = true
        if assigner.isMerging {
            skipped = try addToSession(value, candidate: scratch[0])
        } else {
            for w in scratch where !isWindowLate(w) {
                skipped = false
                let old = contents.get(w)
                contents.put(w, logic.add(old, value))
                if old == nil {
                    // A new window: its trigger and cleanup timers (re-registering them for every
                    // record, as Flink does, is a deduplicated no-op).
                    try onElement(w)
                    registerCleanupTimer(w)
                } else if assigner.isEventTime, w.maxTimestamp <= watermark {
                    try fire(w)   // late but allowed: fire again at once
                }
            }
        }
        if skipped, assigner.isEventTime, timestamp &+ allowedLateness <= watermark {
            try dropLate(value, timestamp: timestamp)
        }
    }

    /// The default triggers' `onElement`: fire at once if the watermark already passed the window
    /// (a late-but-allowed record), else wait for `end - 1`.
    @inlinable
    func onElement(_ w: TimeWindow) throws {
        if assigner.isEventTime {
            if w.maxTimestamp <= watermark { try fire(w) } else { timers.registerEventTimeTimer(namespace: w, time: w.maxTimestamp) }
        } else {
            timers.registerProcessingTimeTimer(namespace: w, time: w.maxTimestamp)
        }
    }

    @inlinable
    func registerCleanupTimer(_ w: TimeWindow) {
        let t = cleanupTime(w)
        guard t != Int64.max else { return }
        if assigner.isEventTime {
            timers.registerEventTimeTimer(namespace: w, time: t)
        } else {
            timers.registerProcessingTimeTimer(namespace: w, time: t)
        }
    }

    @inlinable
    func fire(_ w: TimeWindow) throws {
        guard let acc = contents.get(w) else { return }
        context.prepare(window: w, watermark: watermark)
        collector.timestamp = w.maxTimestamp
        try logic.emit(keyed.currentKey!, context, acc, collector)
    }

    @inlinable
    func clear(_ w: TimeWindow) {
        contents.remove(w)
        if assigner.isEventTime {
            timers.deleteEventTimeTimer(namespace: w, time: w.maxTimestamp)
            timers.deleteEventTimeTimer(namespace: w, time: cleanupTime(w))
        } else {
            timers.deleteProcessingTimeTimer(namespace: w, time: w.maxTimestamp)
        }
    }

    @inlinable
    func onEventTime(_ w: TimeWindow, _ time: Int64) throws {
        guard assigner.isEventTime else { return }
        if time == w.maxTimestamp { try fire(w) }
        if time == cleanupTime(w) { clear(w) }
    }

    @inlinable
    func onProcessingTime(_ w: TimeWindow, _ time: Int64) throws {
        guard !assigner.isEventTime else { return }
        if time == w.maxTimestamp {
            try fire(w)
            clear(w)
        }
    }

    /// Adds a record to its session, merging every session it touches (transitively) into one.
    /// Returns true when the record was skipped because the merged session is already late.
    @inlinable
    func addToSession(_ value: IN, candidate: TimeWindow) throws -> Bool {
        // The key's sessions are disjoint and do not touch, so one pass in start order finds every
        // session the growing window reaches.
        sessionScratch.removeAll(keepingCapacity: true)
        contents.forEach { w, _ in sessionScratch.append(w) }
        var merged = candidate
        var absorbed = 0
        if !sessionScratch.isEmpty {
            sessionScratch.sort()
            var i = 0
            while i < sessionScratch.count {
                if sessionScratch[i].intersects(merged) {
                    merged = merged.cover(sessionScratch[i])
                    sessionScratch.swapAt(i, absorbed)
                    absorbed += 1
                }
                i += 1
            }
            // A session before the merged range may touch it only after it grew: one more sweep.
            var grew = true
            while grew {
                grew = false
                var j = absorbed
                while j < sessionScratch.count {
                    if sessionScratch[j].intersects(merged) {
                        merged = merged.cover(sessionScratch[j])
                        sessionScratch.swapAt(j, absorbed)
                        absorbed += 1
                        grew = true
                    }
                    j += 1
                }
            }
        }
        if isWindowLate(merged) { return true }
        if absorbed == 1, sessionScratch[0] == merged {
            // The record falls inside an existing session: just add it.
            contents.put(merged, logic.add(contents.get(merged), value))
            if assigner.isEventTime, merged.maxTimestamp <= watermark { try fire(merged) }
            return false
        }
        var acc: ACC?
        sessionScratch.removeSubrange(absorbed...)
        sessionScratch.sort()
        for w in sessionScratch {
            if let a = contents.get(w) { acc = acc.map { logic.merge($0, a) } ?? a }
        }
        // Store the merged session before dropping the parts, so the key's map is never emptied
        // (which would free and re-create it).
        contents.put(merged, logic.add(acc, value))
        for w in sessionScratch where w != merged { clear(w) }
        try onElement(merged)
        registerCleanupTimer(merged)
        return false
    }
}
