import StreamCore

/// A session of one key on the session path: its window, accumulator and fire timer — at
/// `end - 1`, registered as `fireSeq` — whose heap entry (`heapSeq`) may be an earlier registration
/// of the session, moved up to the current one when it comes due (a session that grows with every
/// record re-registers its timer every record, as in Flink, but pushes nothing).
@usableFromInline
struct SessionEntry<ACC: Codable>: Codable {
    @usableFromInline var start: Int64
    @usableFromInline var end: Int64
    @usableFromInline var accumulator: ACC
    @usableFromInline var fireSeq: UInt64
    @usableFromInline var heapSeq: UInt64

    @inlinable
    init(start: Int64, end: Int64, accumulator: ACC, fireSeq: UInt64, heapSeq: UInt64) {
        self.start = start
        self.end = end
        self.accumulator = accumulator
        self.fireSeq = fireSeq
        self.heapSeq = heapSeq
    }
}

/// The session path of `WindowOperator`: event-time sessions without allowed lateness. A key's
/// sessions are one array, sorted, disjoint and not touching (every session that touches a new
/// record's `[ts, ts + gap)` merges into one), in a `ValueState`; its timers are entries of a heap
/// ordered by (time, registration), the order of Flink's timer queue. Without lateness a session
/// that is not late has not fired, so nothing fires on arrival; a session fires and is purged at
/// `end - 1`.
extension WindowOperator {
    @usableFromInline
    enum SessionOutcome { case late, added }

    @inlinable
    func processSession(_ value: IN, timestamp ts: Int64) throws {
        guard ts != Timestamps.none else { throw WindowError.noTimestamp }
        let wm = currentWatermark
        let cStart = ts, cEnd = ts &+ size
        let outcome = sessions.modifyIfPresent { list -> SessionOutcome in
            // The sessions the record's session reaches are a contiguous run; covering them reaches
            // no other (they do not touch their neighbours).
            var i = 0
            while i < list.count, list[i].end < cStart { i += 1 }
            var j = i
            var mStart = cStart, mEnd = cEnd
            while j < list.count, list[j].start <= cEnd {
                mStart = min(mStart, list[j].start)
                mEnd = max(mEnd, list[j].end)
                j += 1
            }
            if mEnd &- 1 <= wm { return .late }
            if j - i == 1, list[i].start == mStart, list[i].end == mEnd {
                list[i].accumulator = logic.add(list[i].accumulator, value)
                return .added
            }
            var acc: ACC?
            for k in i..<j { acc = acc.map { logic.merge($0, list[k].accumulator) } ?? list[k].accumulator }
            let seq = sessionTimers.newSeq()
            let heapSeq: UInt64
            if i < j {
                heapSeq = list[i].heapSeq   // its entry is due no later than the merged session
                sessionCount -= j - i - 1
            } else {
                heapSeq = seq
                sessionTimers.push(slot: keyed.backend.currentKeySlot, time: mEnd &- 1, seq: seq)
                sessionCount += 1
            }
            let merged = SessionEntry(start: mStart, end: mEnd, accumulator: logic.add(acc, value), fireSeq: seq, heapSeq: heapSeq)
            list.replaceSubrange(i..<j, with: CollectionOfOne(merged))
            return .added
        }
        switch outcome {
        case .added?:
            return
        case .late?:
            break
        case nil:
            // The key's first session.
            if cEnd &- 1 > wm {
                let seq = sessionTimers.newSeq()
                sessions.update([SessionEntry(start: cStart, end: cEnd, accumulator: logic.add(nil, value), fireSeq: seq, heapSeq: seq)])
                sessionTimers.push(slot: keyed.backend.currentKeySlot, time: cEnd &- 1, seq: seq)
                sessionCount += 1
                return
            }
        }
        if ts <= wm { try dropLate(value, timestamp: ts) }
    }

    /// Fires and purges the sessions whose end the watermark passed, in timer order; an entry whose
    /// session grew since goes back in at the session's current timer.
    @inlinable
    func advanceSessions(to wm: Int64) throws {
        currentWatermark = wm
        let backend = keyed.backend
        while let time = sessionTimers.nextTime, time <= wm {
            let (_, seq, slot) = sessionTimers.popEntry()!
            backend.setCurrentKey(slot: slot)
            var fired: SessionEntry<ACC>?
            var emptied = false
            _ = sessions.modifyIfPresent { list in
                guard let k = list.firstIndex(where: { $0.heapSeq == seq }) else { return }   // merged away
                if list[k].fireSeq == seq {
                    fired = list.remove(at: k)
                    emptied = list.isEmpty
                } else {
                    list[k].heapSeq = list[k].fireSeq
                    sessionTimers.push(slot: slot, time: list[k].end &- 1, seq: list[k].fireSeq)
                }
            }
            if emptied { sessions.clear() }
            if let fired {
                sessionCount -= 1
                try emitSession(fired)
            }
        }
    }

    /// After a restore: every session of a restored key has its fire timer pending (without
    /// lateness a session that fired is gone), so the timers are rebuilt from the sessions.
    @inlinable
    func rebuildSessionTimers() {
        let backend = keyed.backend
        for key in backend.keys {
            backend.setCurrentKey(key)
            let slot = backend.currentKeySlot
            _ = sessions.modifyIfPresent { list in
                for k in list.indices {
                    let seq = sessionTimers.newSeq()
                    list[k].fireSeq = seq
                    list[k].heapSeq = seq
                    sessionTimers.push(slot: slot, time: list[k].end &- 1, seq: seq)
                    sessionCount += 1
                }
            }
        }
    }

    @inlinable
    func emitSession(_ s: SessionEntry<ACC>) throws {
        context.prepare(window: TimeWindow(start: s.start, end: s.end), watermark: currentWatermark)
        collector.timestamp = s.end &- 1
        try logic.emit(keyed.backend.currentKey!, context, s.accumulator, collector)
    }
}
