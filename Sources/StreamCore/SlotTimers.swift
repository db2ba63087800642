/// Event-time timers as per-time lists of key slots, for operators whose timers of many keys share
/// few distinct times — aligned windows: every key's 5-minute window ends at the same time, so a
/// timer is an append to that time's list instead of a heap entry and a hash-set entry per key.
/// Lists pop in time order, slots in registration order (the order a timer heap gives equal times).
/// The owner registers each (slot, time) at most once and fires them from a watermark hook
/// (`KeyedContext.addEventTimeTimers`). Slots name keys, so timers stay reachable by key group.
public struct SlotTimerBuckets {
    /// Distinct times, ascending, and their slots.
    @usableFromInline var times: [Int64] = []
    @usableFromInline var lists: [[Int32]] = []
    @usableFromInline var spare: [[Int32]] = []
    @usableFromInline var lastIndex = 0
    @usableFromInline var pending = 0
    /// Timers pending.
    @inlinable public var count: Int { pending }

    public init() {}

    @inlinable
    public mutating func add(slot: Int, time: Int64) {
        pending += 1
        if lastIndex < times.count, times[lastIndex] == time {
            lists[lastIndex].append(Int32(truncatingIfNeeded: slot))
        } else {
            addToNewTime(slot, time)
        }
    }

    @usableFromInline
    mutating func addToNewTime(_ slot: Int, _ time: Int64) {
        var lo = 0, hi = times.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if times[mid] < time { lo = mid + 1 } else { hi = mid }
        }
        if lo == times.count || times[lo] != time {
            times.insert(time, at: lo)
            lists.insert(spare.popLast() ?? [], at: lo)
        }
        lists[lo].append(Int32(truncatingIfNeeded: slot))
        lastIndex = lo
    }

    /// The earliest time with timers.
    @inlinable public var nextTime: Int64? { times.first }

    /// Removes the earliest time's timers and returns them; give the list back with `recycle`.
    public mutating func popFirst() -> (time: Int64, slots: [Int32]) {
        let time = times.removeFirst()
        let slots = lists.removeFirst()
        pending -= slots.count
        lastIndex = 0
        return (time, slots)
    }

    /// Every pending timer as (slot, time), in firing order (for checkpoints).
    public func forEach(_ body: (Int, Int64) throws -> Void) rethrows {
        for (time, slots) in zip(times, lists) {
            for s in slots { try body(Int(s), time) }
        }
    }

    /// Returns a popped list for reuse (no allocation per window end in the steady state).
    public mutating func recycle(_ list: [Int32]) {
        var list = list
        list.removeAll(keepingCapacity: true)
        if spare.count < 8 { spare.append(list) }
    }
}

/// Event-time timers as a min-heap of (time, slot), equal times in registration order (as Flink's
/// timer queue): plain entries, no hash set. For operators that know which timers are new (a
/// rolling aggregate's first row at a time) or keep one pending time per key (the interval join's
/// buffers, whose superseded entries the owner recognises and skips). No deduplication.
public struct SlotTimerHeap {
    @usableFromInline
    struct Entry: Comparable {
        @usableFromInline let time: Int64
        @usableFromInline let seq: UInt64
        @usableFromInline let slot: Int32
        @inlinable init(time: Int64, seq: UInt64, slot: Int32) { self.time = time; self.seq = seq; self.slot = slot }
        @inlinable static func < (a: Entry, b: Entry) -> Bool { a.time < b.time || (a.time == b.time && a.seq < b.seq) }
        @inlinable static func == (a: Entry, b: Entry) -> Bool { a.seq == b.seq }
    }

    @usableFromInline var heap = BinaryHeap<Entry>()
    @usableFromInline var seq: UInt64 = 0

    public init() {}

    /// Entries held.
    @inlinable public var count: Int { heap.count }

    @inlinable
    public mutating func push(slot: Int, time: Int64) {
        push(slot: slot, time: time, seq: newSeq())
    }

    /// A registration number, for owners that register a timer now and push it later (or push it
    /// again later with its original place among equal times).
    @inlinable
    public mutating func newSeq() -> UInt64 {
        seq &+= 1
        return seq
    }

    @inlinable
    public mutating func push(slot: Int, time: Int64, seq: UInt64) {
        heap.push(Entry(time: time, seq: seq, slot: Int32(truncatingIfNeeded: slot)))
    }

    /// Every entry as (time, registration, slot), in no particular order (for checkpoints).
    public func forEach(_ body: (Int64, UInt64, Int) throws -> Void) rethrows {
        for e in heap.storage { try body(e.time, e.seq, Int(e.slot)) }
    }

    @inlinable
    public mutating func popEntry() -> (time: Int64, seq: UInt64, slot: Int)? {
        guard let e = heap.pop() else { return nil }
        return (e.time, e.seq, Int(e.slot))
    }

    /// The earliest time.
    @inlinable public var nextTime: Int64? { heap.peek?.time }

    @inlinable
    public mutating func pop() -> (time: Int64, slot: Int)? {
        guard let e = heap.pop() else { return nil }
        return (e.time, Int(e.slot))
    }
}
