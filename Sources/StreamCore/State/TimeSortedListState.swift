/// Describes a `TimeSortedListState`: its name, unique per operator. No TTL: rows leave by time.
public struct TimeSortedListStateDescriptor<T: Codable>: Sendable {
    public let name: String
    public init(_ name: String, of type: T.Type = T.self) { self.name = name }
}

/// A list of timestamped rows per key, kept in timestamp order (rows with equal timestamps in
/// arrival order): what an interval join buffers. Appending in time order is an append; a range of
/// timestamps is found by binary search and read contiguously; the oldest rows are dropped from the
/// front as the watermark passes them. Per key the rows are plain arrays, reachable by key slot for
/// snapshots.
public final class TimeSortedListState<T: Codable>: StateColumn {
    /// A key's rows; rows before `head` are dropped (compacted away in batches). A slot keeps its
    /// storage when its rows are all dropped, for whichever key uses the slot next (the left side of
    /// a join empties and refills all the time), so it holds rows when `head < count`.
    @usableFromInline
    struct Rows {
        @usableFromInline var timestamps: [Int64]
        @usableFromInline var values: [T]
        @usableFromInline var head: Int
        @usableFromInline init() {
            timestamps = []
            values = []
            timestamps.reserveCapacity(8)
            values.reserveCapacity(8)
            head = 0
        }
        @inlinable var isEmpty: Bool { head == timestamps.count }
    }

    public let name: String
    @usableFromInline let store: KeyedStateStore
    @exclusivity(unchecked) @usableFromInline var rows = SlotColumn<Rows>()
    @exclusivity(unchecked) @usableFromInline var live = 0
    @exclusivity(unchecked) @usableFromInline var rowCount = 0
    /// Rows held, over all keys.
    public var count: Int { rowCount }

    init(name: String, store: KeyedStateStore) {
        self.name = name
        self.store = store
    }

    deinit { rows.release() }

    @usableFromInline var liveEntries: Int { live }
    @usableFromInline func removeExpired(now: Int64) {}

    /// Adds a row for the current key; returns true when it is the key's earliest row now (the list
    /// was empty, or every other row is later).
    @inlinable
    @discardableResult
    public func add(_ value: T, timestamp: Int64) -> Bool {
        let s = store.slotForWrite()
        rows.ensure(s)
        if rows[s] == nil { rows[s] = Rows() }
        if rows[s]!.isEmpty {
            live += 1
            store.retain(s)
        }
        rowCount += 1
        return rows[s]!.insert(value, timestamp)
    }

    /// Calls `body` with the current key's rows whose timestamp is in `[from, through]`, in
    /// timestamp order. The rows are read in place: `body` must not add to or drop rows of this
    /// state (a join function cannot reach it).
    @inlinable
    public func forEach(from: Int64, through: Int64, _ body: (T, Int64) throws -> Void) rethrows {
        let s = store.currentSlot
        guard s >= 0, s < rows.capacity else { return }
        let p = rows.base + s
        guard p.pointee != nil else { return }
        let start = p.pointee!.lowerBound(from)
        try p.pointee!.timestamps.withUnsafeBufferPointer { timestamps in
            try p.pointee!.values.withUnsafeBufferPointer { values in
                var i = start
                while i < timestamps.count {
                    let ts = timestamps[i]
                    if ts > through { break }
                    try body(values[i], ts)
                    i &+= 1
                }
            }
        }
    }

    /// The current key's rows in timestamp order (for tests and snapshots).
    public func get() -> [(value: T, timestamp: Int64)] {
        let s = store.currentSlot
        guard s >= 0, let r = rows[s] else { return [] }
        return (r.head..<r.timestamps.count).map { (r.values[$0], r.timestamps[$0]) }
    }

    /// The earliest timestamp of the key in `slot`, nil when it has no rows.
    @inlinable
    public func earliestTimestamp(slot: Int) -> Int64? {
        store.prepareSlot(slot)
        guard let r = rows[slot], !r.isEmpty else { return nil }
        return r.timestamps[r.head]
    }

    /// Drops the rows of the key in `slot` with timestamp `<= bound`; returns the earliest timestamp
    /// left, or nil when none is (the slot is then released).
    @inlinable
    public func removeRows(slot: Int, through bound: Int64) -> Int64? {
        store.prepareSlot(slot)
        guard let r = rows[slot], !r.isEmpty else { return nil }
        let (dropped, earliest) = rows[slot]!.dropFront(through: bound)
        rowCount -= dropped
        if earliest == nil {
            live -= 1
            store.release(slot)
        }
        return earliest
    }
}

extension TimeSortedListState {
    @usableFromInline struct Snapshot: Codable {
        var timestamps: [Int64]
        var values: [T]
    }

    @usableFromInline func dropSlots(_ slots: [Int]) {
        for s in slots {
            guard let r = rows[s] else { continue }
            if !r.isEmpty {
                live -= 1
                rowCount -= r.timestamps.count - r.head
            }
            rows[s] = nil
        }
    }

    /// The rows copied now (their arrays share storage until written), encoded later off the task
    /// thread.
    @usableFromInline func captureAll(slotCount: Int) throws -> any ColumnSnapshot {
        var bySlot: [Int: Rows] = [:]
        for s in 0..<min(slotCount, rows.capacity) {
            if let r = rows[s], !r.isEmpty { bySlot[s] = r }
        }
        return DeferredEntrySnapshot(bySlot: bySlot) { r in
            try StateCodec.encode(Snapshot(timestamps: Array(r.timestamps[r.head...]), values: Array(r.values[r.head...])))
        }
    }

    @usableFromInline func snapshotEntry(slot: Int) throws -> [UInt8]? {
        guard let r = rows[slot], !r.isEmpty else { return nil }
        return try StateCodec.encode(Snapshot(timestamps: Array(r.timestamps[r.head...]), values: Array(r.values[r.head...])))
    }

    @usableFromInline func restoreEntry(_ bytes: [UInt8]) throws {
        let snap = try StateCodec.decode(Snapshot.self, from: bytes)
        for (t, v) in zip(snap.timestamps, snap.values) { add(v, timestamp: t) }
    }

    /// Calls `body` with every key slot that has rows and its earliest timestamp (to rebuild
    /// per-key cleanup times after a restore).
    public func forEachKeySlot(_ body: (Int, Int64) throws -> Void) rethrows {
        store.loadAllColdSlots()
        for s in rows.indices {
            if let r = rows[s], !r.isEmpty { try body(s, r.timestamps[r.head]) }
        }
    }
}

extension TimeSortedListState.Rows {
    /// The first live index whose timestamp is `>= t`.
    @inlinable
    func lowerBound(_ t: Int64) -> Int {
        var lo = head, hi = timestamps.count
        while lo < hi {
            let mid = (lo &+ hi) >> 1
            if timestamps[mid] < t { lo = mid &+ 1 } else { hi = mid }
        }
        return lo
    }

    /// Inserts after the rows with timestamp `<= t`; returns true when the row is the earliest.
    @inlinable
    mutating func insert(_ value: T, _ t: Int64) -> Bool {
        if head == timestamps.count || t >= timestamps[timestamps.count - 1] {
            timestamps.append(t)
            values.append(value)
            return timestamps.count - 1 == head
        }
        var i = timestamps.count - 1
        while i > head, timestamps[i - 1] > t { i -= 1 }
        timestamps.insert(t, at: i)
        values.insert(value, at: i)
        return i == head
    }

    /// Drops the rows with timestamp `<= bound` from the front; returns how many, and the earliest
    /// timestamp left.
    @inlinable
    mutating func dropFront(through bound: Int64) -> (Int, Int64?) {
        let start = head
        while head < timestamps.count, timestamps[head] <= bound { head &+= 1 }
        let dropped = head - start
        if head == timestamps.count {
            // Empty: release the values now, keep the storage.
            timestamps.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            head = 0
            return (dropped, nil)
        }
        if head >= 16, head * 2 >= timestamps.count {
            timestamps.removeFirst(head)
            values.removeFirst(head)
            head = 0
        }
        return (dropped, timestamps[head])
    }
}
