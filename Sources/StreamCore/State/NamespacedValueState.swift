/// Describes a `NamespacedValueState`: its name, unique per operator. No TTL (as Flink's window state).
public struct NamespacedStateDescriptor<V: Codable>: Sendable {
    public let name: String
    public init(_ name: String, of type: V.Type = V.self) { self.name = name }
}

/// One value per (key, namespace), the namespace an `Int64` such as a window's end or a slice's
/// start (Flink's heap `StateTable` with namespaces, as window operators use it).
///
/// Each key's most recently created entry (its *front*: the window or slice its records go to)
/// sits in a column indexed by key slot; the others live in one open-addressing table keyed by
/// (key slot, namespace) with a multiplicative hash. No per-key map is allocated when a key opens
/// its first window. A record of a key that writes its newest window costs one access to a dense
/// column instead of a probe into a table that holds every open window of every key: between two
/// watermarks (200 ms of processing time) a fast job opens many windows per key, and a table of
/// all of them outgrows the caches. Entries stay reachable by key slot (so by key and key group)
/// for snapshots. The `slot:` variants address a key by slot directly, for timers that fire per slot.
public final class NamespacedValueState<V: Codable>: StateColumn {
    public let name: String
    @usableFromInline let store: KeyedStateStore
    /// Entries other than the keys' front entries.
    @exclusivity(unchecked) @usableFromInline var table: NamespaceTable<V>
    /// The front entry of each key slot (bucket `slot` holds `slot`, or -1 when the key has none);
    /// `perSlotCapacity` buckets.
    @exclusivity(unchecked) @usableFromInline var front: NamespaceBuckets<V>
    @exclusivity(unchecked) @usableFromInline var frontCount = 0
    /// Entries per key slot; a slot is retained in the store while it holds any.
    @exclusivity(unchecked) @usableFromInline var perSlot: UnsafeMutablePointer<Int32>
    @exclusivity(unchecked) @usableFromInline var perSlotCapacity: Int
    @exclusivity(unchecked) @usableFromInline var live = 0
    /// Bumped when entries come or go (a snapshot's grouping by slot stays valid until then).
    @exclusivity(unchecked) @usableFromInline var version: UInt64 = 0

    init(name: String, store: KeyedStateStore) {
        self.name = name
        self.store = store
        table = NamespaceTable()
        perSlotCapacity = 64
        front = NamespaceBuckets(count: perSlotCapacity)
        perSlot = .allocate(capacity: perSlotCapacity)
        perSlot.initialize(repeating: 0, count: perSlotCapacity)
    }

    deinit {
        table.release()
        front.release(count: perSlotCapacity)
        perSlot.deallocate()
    }

    @usableFromInline var liveEntries: Int { live }
    @usableFromInline func removeExpired(now: Int64) {}

    /// Entries held, over all keys.
    public var count: Int { table.count + frontCount }

    /// How many namespaces the key in `slot` holds.
    @inlinable
    public func entryCount(slot: Int) -> Int {
        store.prepareSlot(slot)
        return slot < perSlotCapacity ? Int(perSlot[slot]) : 0
    }

    /// The key's front value when it is the one in `namespace`.
    @inlinable @inline(__always)
    func frontValue(slot: Int, _ namespace: Int64) -> UnsafeMutablePointer<V>? {
        guard slot < perSlotCapacity, front.slotAt(slot) >= 0, front.namespaceAt(slot) == namespace else { return nil }
        return front.valuePointer(slot)
    }

    /// The key's value in `namespace` when it is in the table (not its front entry).
    @inlinable @inline(never)
    func tableValue(slot: Int, _ namespace: Int64) -> UnsafeMutablePointer<V>? {
        let i = table.find(slot: Int32(truncatingIfNeeded: slot), namespace)
        return i >= 0 ? table.valuePointer(i) : nil
    }

    /// The value of the key in `slot` in `namespace`, wherever it is.
    @inlinable
    func valuePointer(slot: Int, _ namespace: Int64) -> UnsafeMutablePointer<V>? {
        frontValue(slot: slot, namespace) ?? tableValue(slot: slot, namespace)
    }

    // MARK: the current key

    /// The current key's value in `namespace`, or nil.
    @inlinable
    public func get(_ namespace: Int64) -> V? {
        let s = store.currentSlot
        guard s >= 0 else { return nil }
        return get(slot: s, namespace)
    }

    @inlinable
    public func contains(_ namespace: Int64) -> Bool {
        let s = store.currentSlot
        return s >= 0 && valuePointer(slot: s, namespace) != nil
    }

    /// Replaces the current key's value in `namespace` with `update(old)` (old is nil when absent),
    /// in place; returns true when the entry is new.
    @inlinable
    @discardableResult
    public func fold(_ namespace: Int64, _ update: (V?) -> V) -> Bool {
        let s = store.currentSlot
        if s >= 0 {
            if let p = frontValue(slot: s, namespace) ?? tableValue(slot: s, namespace) {
                p.initialize(to: update(p.move()))
                return false
            }
        }
        let value = update(nil)
        insertNew(slot: store.slotForWrite(), namespace, value)
        return true
    }

    @inlinable
    public func put(_ namespace: Int64, _ value: V) {
        _ = fold(namespace) { _ in value }
    }

    /// Removes and returns the current key's value in `namespace`.
    @inlinable
    @discardableResult
    public func remove(_ namespace: Int64) -> V? {
        let s = store.currentSlot
        guard s >= 0 else { return nil }
        return remove(slot: s, namespace)
    }

    // MARK: by slot

    @inlinable
    public func get(slot: Int, _ namespace: Int64) -> V? {
        store.prepareSlot(slot)
        return valuePointer(slot: slot, namespace)?.pointee
    }

    /// Removes and returns the value of the key in `slot` in `namespace`; the slot is released when
    /// it was the key's last entry.
    @inlinable
    @discardableResult
    public func remove(slot: Int, _ namespace: Int64) -> V? {
        store.prepareSlot(slot)
        let value: V
        if let p = frontValue(slot: slot, namespace) {
            value = p.move()
            front.markEmpty(slot)
            frontCount -= 1
        } else {
            let i = table.find(slot: Int32(truncatingIfNeeded: slot), namespace)
            guard i >= 0 else { return nil }
            value = table.remove(at: i)
        }
        version &+= 1
        perSlot[slot] &-= 1
        if perSlot[slot] == 0 {
            live -= 1
            store.release(slot)
        }
        return value
    }

    /// Every entry as (slot, namespace, value), in no particular order (for snapshots and tests).
    public func forEachEntry(_ body: (Int, Int64, V) throws -> Void) rethrows {
        store.loadAllColdSlots()
        try forEachResidentEntry(body)
    }

    /// The entries in memory (with RocksDB, keys written out are not visited).
    func forEachResidentEntry(_ body: (Int, Int64, V) throws -> Void) rethrows {
        for i in 0..<(table.mask + 1) where table.slotAt(i) >= 0 {
            try body(Int(table.slotAt(i)), table.namespaceAt(i), table.valuePointer(i).pointee)
        }
        for s in 0..<perSlotCapacity where front.slotAt(s) >= 0 {
            try body(s, front.namespaceAt(s), front.valuePointer(s).pointee)
        }
    }

    // MARK: checkpoints

    @usableFromInline struct Snapshot: Codable {
        var namespaces: [Int64]
        var values: [V]
    }

    /// The table grouped by slot, built once per snapshot (the backend asks slot by slot).
    @usableFromInline var snapshotCache: (version: UInt64, bySlot: [Int: Snapshot])?

    @usableFromInline func dropSlots(_ slots: [Int]) {
        let dropping = Set(slots.filter { $0 < perSlotCapacity && perSlot[$0] > 0 })
        guard !dropping.isEmpty else { return }
        var inTable: [(Int32, Int64)] = []
        for i in 0..<(table.mask + 1) where table.slotAt(i) >= 0 && dropping.contains(Int(table.slotAt(i))) {
            inTable.append((table.slotAt(i), table.namespaceAt(i)))
        }
        for (s, ns) in inTable { _ = table.remove(at: table.find(slot: s, ns)) }
        for s in dropping {
            if front.slotAt(s) >= 0 {
                _ = front.valuePointer(s).move()
                front.markEmpty(s)
                frontCount -= 1
            }
            perSlot[s] = 0
            live -= 1
        }
        version &+= 1
    }

    /// Only the entries of `slots`: one pass over the table, without grouping the others.
    @usableFromInline func snapshotEntries(_ slots: [Int]) throws -> [[UInt8]?] {
        var index: [Int: Int] = [:]
        for (i, s) in slots.enumerated() where s < perSlotCapacity && perSlot[s] > 0 { index[s] = i }
        guard !index.isEmpty else { return slots.map { _ in nil } }
        var snaps = [Snapshot](repeating: Snapshot(namespaces: [], values: []), count: slots.count)
        if table.count > 0 {
            for b in 0..<(table.mask + 1) where table.slotAt(b) >= 0 {
                guard let i = index[Int(table.slotAt(b))] else { continue }
                snaps[i].namespaces.append(table.namespaceAt(b))
                snaps[i].values.append(table.valuePointer(b).pointee)
            }
        }
        for (s, i) in index where front.slotAt(s) >= 0 {
            snaps[i].namespaces.append(front.namespaceAt(s))
            snaps[i].values.append(front.valuePointer(s).pointee)
        }
        return try snaps.map { $0.values.isEmpty ? nil : try StateCodec.encode($0) }
    }

    /// A snapshot groups the table by slot once (values may have changed in place since the last
    /// one, which the version does not count: the grouping is rebuilt for every snapshot).
    /// Groups the values by slot now (copies), encodes them later off the task thread.
    @usableFromInline func captureAll(slotCount: Int) throws -> any ColumnSnapshot {
        snapshotCache = nil
        return DeferredEntrySnapshot(bySlot: groupedBySlot(below: slotCount)) { try StateCodec.encode($0) }
    }

    /// Every resident entry of the slots below `limit`, grouped by slot (table entries first).
    func groupedBySlot(below limit: Int = Int.max) -> [Int: Snapshot] {
        var bySlot: [Int: Snapshot] = [:]
        forEachResidentEntry { s, ns, v in
            guard s < limit else { return }
            bySlot[s, default: Snapshot(namespaces: [], values: [])].namespaces.append(ns)
            bySlot[s]!.values.append(v)
        }
        return bySlot
    }

    @usableFromInline func snapshotEntry(slot: Int) throws -> [UInt8]? {
        guard slot < perSlotCapacity, perSlot[slot] > 0 else { return nil }
        if snapshotCache?.version != version {
            snapshotCache = (version, groupedBySlot())
        }
        guard let snap = snapshotCache?.bySlot[slot] else { return nil }
        return try StateCodec.encode(snap)
    }

    @usableFromInline func restoreEntry(_ bytes: [UInt8]) throws {
        let snap = try StateCodec.decode(Snapshot.self, from: bytes)
        for (ns, v) in zip(snap.namespaces, snap.values) { put(ns, v) }
    }

    /// A new entry becomes its key's front entry; the previous front entry moves to the table.
    @inlinable
    func insertNew(slot s: Int, _ namespace: Int64, _ value: V) {
        version &+= 1
        if s >= perSlotCapacity { growPerSlot(s) }
        if front.slotAt(s) >= 0 {
            table.insert(slot: Int32(truncatingIfNeeded: s), front.namespaceAt(s), front.valuePointer(s).move())
        } else {
            frontCount += 1
        }
        front.setKey(s, slot: Int32(truncatingIfNeeded: s), namespace)
        front.valueRaw(s).initializeMemory(as: V.self, repeating: value, count: 1)
        if perSlot[s] == 0 {
            live += 1
            store.retain(s)
        }
        perSlot[s] &+= 1
    }

    @inlinable @inline(never)
    func growPerSlot(_ s: Int) {
        var c = perSlotCapacity * 2
        while c <= s { c *= 2 }
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: c)
        p.moveInitialize(from: perSlot, count: perSlotCapacity)
        (p + perSlotCapacity).initialize(repeating: 0, count: c - perSlotCapacity)
        perSlot.deallocate()
        perSlot = p
        let f = NamespaceBuckets<V>(count: c)
        for i in 0..<perSlotCapacity where front.slotAt(i) >= 0 {
            f.setKey(i, slot: front.slotAt(i), front.namespaceAt(i))
            f.valueRaw(i).moveInitializeMemory(as: V.self, from: front.valuePointer(i), count: 1)
        }
        front.deallocate()
        front = f
        perSlotCapacity = c
    }
}

/// Buckets of `[slot: Int32][namespace: Int64][value: V]` in one raw buffer, the value initialized
/// only where the slot is not -1: a bucket and its value share a cache line.
@usableFromInline
struct NamespaceBuckets<V> {
    @usableFromInline let raw: UnsafeMutableRawPointer

    /// Bucket layout (constants once specialized): slot at 0, namespace at 8, value after.
    @inlinable static var valueOffset: Int {
        let a = MemoryLayout<V>.alignment
        return (16 + a - 1) / a * a
    }
    @inlinable static var alignment: Int { Swift.max(8, MemoryLayout<V>.alignment) }
    @inlinable static var stride: Int {
        (valueOffset + MemoryLayout<V>.size + alignment - 1) / alignment * alignment
    }

    /// `count` empty buckets.
    @inlinable
    init(count: Int) {
        raw = .allocate(byteCount: count * Self.stride, alignment: Self.alignment)
        let stride = Self.stride
        for i in 0..<count {
            raw.storeBytes(of: -1, toByteOffset: i * stride, as: Int32.self)
            raw.storeBytes(of: 0, toByteOffset: i * stride + 8, as: Int64.self)
        }
    }

    /// Deinitializes the values of the first `count` buckets and frees the buffer. (Called from
    /// unspecialized code too: the layout is read from type metadata once, not per bucket.)
    @inlinable
    func release(count: Int) {
        if !_isPOD(V.self) {
            let stride = Self.stride, offset = Self.valueOffset
            for i in 0..<count where raw.load(fromByteOffset: i * stride, as: Int32.self) >= 0 {
                (raw + i * stride + offset).assumingMemoryBound(to: V.self).deinitialize(count: 1)
            }
        }
        raw.deallocate()
    }

    /// Frees the buffer (values already moved out).
    @inlinable
    func deallocate() { raw.deallocate() }

    /// The key slot in bucket `i`, -1 when empty.
    @inlinable
    func slotAt(_ i: Int) -> Int32 { raw.load(fromByteOffset: i &* Self.stride, as: Int32.self) }

    @inlinable
    func namespaceAt(_ i: Int) -> Int64 { raw.load(fromByteOffset: i &* Self.stride &+ 8, as: Int64.self) }

    @inlinable
    func setKey(_ i: Int, slot: Int32, _ namespace: Int64) {
        raw.storeBytes(of: slot, toByteOffset: i &* Self.stride, as: Int32.self)
        raw.storeBytes(of: namespace, toByteOffset: i &* Self.stride &+ 8, as: Int64.self)
    }

    /// Marks bucket `i` empty (its value already moved out).
    @inlinable
    func markEmpty(_ i: Int) { raw.storeBytes(of: -1, toByteOffset: i &* Self.stride, as: Int32.self) }

    @inlinable
    func valueRaw(_ i: Int) -> UnsafeMutableRawPointer { raw + (i &* Self.stride &+ Self.valueOffset) }

    /// The value of an occupied bucket.
    @inlinable
    func valuePointer(_ i: Int) -> UnsafeMutablePointer<V> { valueRaw(i).assumingMemoryBound(to: V.self) }
}

/// Open addressing with linear probing and backward-shift deletion over (slot, namespace) keys, in
/// `NamespaceBuckets`. Owned by one state object, which calls `release()`.
@usableFromInline
struct NamespaceTable<V> {
    @usableFromInline var buckets: NamespaceBuckets<V>
    @usableFromInline var mask: Int
    @usableFromInline var shift: UInt64
    @usableFromInline var count = 0

    @inlinable
    init(capacity: Int = 64) {
        var c = 16, bits: UInt64 = 4
        while c < capacity { c <<= 1; bits += 1 }
        buckets = NamespaceBuckets(count: c)
        mask = c - 1
        shift = 64 - bits
    }

    @inlinable
    func release() { buckets.release(count: mask + 1) }

    @inlinable func slotAt(_ i: Int) -> Int32 { buckets.slotAt(i) }
    @inlinable func namespaceAt(_ i: Int) -> Int64 { buckets.namespaceAt(i) }
    @inlinable func valuePointer(_ i: Int) -> UnsafeMutablePointer<V> { buckets.valuePointer(i) }

    /// Fibonacci hashing of the pair: window ends are multiples of the window size, so the high
    /// bits of the product are used, not the low ones.
    @inlinable
    func bucket(_ slot: Int32, _ namespace: Int64) -> Int {
        var h = UInt64(bitPattern: namespace) &+ UInt64(UInt32(bitPattern: slot)) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: h &>> shift)
    }

    @inlinable
    func find(slot: Int32, _ namespace: Int64) -> Int {
        guard count > 0 else { return -1 }
        var i = bucket(slot, namespace)
        while true {
            let s = buckets.slotAt(i)
            if s == slot, buckets.namespaceAt(i) == namespace { return i }
            if s < 0 { return -1 }
            i = (i &+ 1) & mask
        }
    }

    /// Inserts a key known to be absent.
    @inlinable
    mutating func insert(slot: Int32, _ namespace: Int64, _ value: V) {
        if (count + 1) * 2 > mask + 1 { grow() }
        var i = bucket(slot, namespace)
        while buckets.slotAt(i) >= 0 { i = (i &+ 1) & mask }
        buckets.setKey(i, slot: slot, namespace)
        buckets.valueRaw(i).initializeMemory(as: V.self, repeating: value, count: 1)
        count += 1
    }

    @inlinable
    mutating func remove(at index: Int) -> V {
        let value = buckets.valuePointer(index).move()
        // Backward shift: move later entries of the probe run into the hole.
        var hole = index
        var j = (index &+ 1) & mask
        while buckets.slotAt(j) >= 0 {
            let home = bucket(buckets.slotAt(j), buckets.namespaceAt(j))
            let movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)
            if movable {
                buckets.setKey(hole, slot: buckets.slotAt(j), buckets.namespaceAt(j))
                buckets.valueRaw(hole).moveInitializeMemory(as: V.self, from: buckets.valuePointer(j), count: 1)
                hole = j
            }
            j = (j &+ 1) & mask
        }
        buckets.markEmpty(hole)
        count -= 1
        return value
    }

    @inlinable
    mutating func grow() {
        let old = self
        self = NamespaceTable(capacity: (mask + 1) * 2)
        for i in 0...old.mask where old.slotAt(i) >= 0 {
            var j = bucket(old.slotAt(i), old.namespaceAt(i))
            while buckets.slotAt(j) >= 0 { j = (j &+ 1) & mask }
            buckets.setKey(j, slot: old.slotAt(i), old.namespaceAt(i))
            buckets.valueRaw(j).moveInitializeMemory(as: V.self, from: old.valuePointer(i), count: 1)
            count += 1
        }
        old.buckets.deallocate()
    }
}
