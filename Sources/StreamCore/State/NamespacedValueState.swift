/// Describes a `NamespacedValueState`: its name, unique per operator. No TTL (as Flink's window state).
public struct NamespacedStateDescriptor<V: Codable>: Sendable {
    public let name: String
    public init(_ name: String, of type: V.Type = V.self) { self.name = name }
}

/// One value per (key, namespace), the namespace an `Int64` such as a window's end or a slice's
/// start (Flink's heap `StateTable` with namespaces, as window operators use it).
///
/// All entries of all keys live in one open-addressing table keyed by (key slot, namespace) with a
/// multiplicative hash: a lookup is a probe or two, with no per-key map to allocate when a key opens
/// its first window. Entries stay reachable by key slot (so by key and key group) for snapshots.
/// The `slot:` variants address a key by slot directly, for timers that fire per slot.
public final class NamespacedValueState<V: Codable>: StateColumn {
    public let name: String
    @usableFromInline let store: KeyedStateStore
    @exclusivity(unchecked) @usableFromInline var table: NamespaceTable<V>
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
        perSlot = .allocate(capacity: perSlotCapacity)
        perSlot.initialize(repeating: 0, count: perSlotCapacity)
    }

    deinit {
        table.release()
        perSlot.deallocate()
    }

    @usableFromInline var liveEntries: Int { live }
    @usableFromInline func removeExpired(now: Int64) {}

    /// Entries held, over all keys.
    public var count: Int { table.count }

    /// How many namespaces the key in `slot` holds.
    @inlinable
    public func entryCount(slot: Int) -> Int { slot < perSlotCapacity ? Int(perSlot[slot]) : 0 }

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
        return s >= 0 && table.find(slot: Int32(truncatingIfNeeded: s), namespace) >= 0
    }

    /// Replaces the current key's value in `namespace` with `update(old)` (old is nil when absent),
    /// in place; returns true when the entry is new.
    @inlinable
    @discardableResult
    public func fold(_ namespace: Int64, _ update: (V?) -> V) -> Bool {
        let s = store.currentSlot
        if s >= 0 {
            let i = table.find(slot: Int32(truncatingIfNeeded: s), namespace)
            if i >= 0 {
                let p = table.valuePointer(i)
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
        let i = table.find(slot: Int32(truncatingIfNeeded: slot), namespace)
        return i >= 0 ? table.valuePointer(i).pointee : nil
    }

    /// Removes and returns the value of the key in `slot` in `namespace`; the slot is released when
    /// it was the key's last entry.
    @inlinable
    @discardableResult
    public func remove(slot: Int, _ namespace: Int64) -> V? {
        let i = table.find(slot: Int32(truncatingIfNeeded: slot), namespace)
        guard i >= 0 else { return nil }
        let value = table.remove(at: i)
        version &+= 1
        perSlot[slot] &-= 1
        if perSlot[slot] == 0 {
            live -= 1
            store.release(slot)
        }
        return value
    }

    /// Every entry as (slot, namespace, value), in table order (for snapshots and tests).
    public func forEachEntry(_ body: (Int, Int64, V) throws -> Void) rethrows {
        for i in 0..<(table.mask + 1) where table.slotAt(i) >= 0 {
            try body(Int(table.slotAt(i)), table.namespaceAt(i), table.valuePointer(i).pointee)
        }
    }

    // MARK: checkpoints

    @usableFromInline struct Snapshot: Codable {
        var namespaces: [Int64]
        var values: [V]
    }

    /// The table grouped by slot, built once per snapshot (the backend asks slot by slot).
    @usableFromInline var snapshotCache: (version: UInt64, bySlot: [Int: Snapshot])?

    @usableFromInline func snapshotEntry(slot: Int) throws -> [UInt8]? {
        guard entryCount(slot: slot) > 0 else { return nil }
        if snapshotCache?.version != version {
            var bySlot: [Int: Snapshot] = [:]
            try forEachEntry { s, ns, v in
                bySlot[s, default: Snapshot(namespaces: [], values: [])].namespaces.append(ns)
                bySlot[s]!.values.append(v)
            }
            snapshotCache = (version, bySlot)
        }
        guard let snap = snapshotCache?.bySlot[slot] else { return nil }
        return try StateCodec.encode(snap)
    }

    @usableFromInline func restoreEntry(_ bytes: [UInt8]) throws {
        let snap = try StateCodec.decode(Snapshot.self, from: bytes)
        for (ns, v) in zip(snap.namespaces, snap.values) { put(ns, v) }
    }

    @inlinable
    func insertNew(slot s: Int, _ namespace: Int64, _ value: V) {
        table.insert(slot: Int32(truncatingIfNeeded: s), namespace, value)
        version &+= 1
        if s >= perSlotCapacity { growPerSlot(s) }
        if perSlot[s] == 0 {
            live += 1
            store.retain(s)
        }
        perSlot[s] &+= 1
    }

    @usableFromInline
    func growPerSlot(_ s: Int) {
        var c = perSlotCapacity * 2
        while c <= s { c *= 2 }
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: c)
        p.moveInitialize(from: perSlot, count: perSlotCapacity)
        (p + perSlotCapacity).initialize(repeating: 0, count: c - perSlotCapacity)
        perSlot.deallocate()
        perSlot = p
        perSlotCapacity = c
    }
}

/// Open addressing with linear probing and backward-shift deletion over (slot, namespace) keys.
/// A bucket is `[slot: Int32][namespace: Int64][value: V]` (the value initialized only where the
/// slot is not -1), so a lookup and the update that follows touch one cache line instead of one in
/// each of three arrays. Owned by one state object, which calls `release()`.
@usableFromInline
struct NamespaceTable<V> {
    @usableFromInline var buckets: UnsafeMutableRawPointer
    @usableFromInline var mask: Int
    @usableFromInline var shift: UInt64
    @usableFromInline var count = 0

    /// Bucket layout (constants once specialized): slot at 0, namespace at 8, value after.
    @inlinable static var bucketValueOffset: Int {
        let a = MemoryLayout<V>.alignment
        return (16 + a - 1) / a * a
    }
    @inlinable static var alignment: Int { Swift.max(8, MemoryLayout<V>.alignment) }
    @inlinable static var bucketStride: Int {
        (bucketValueOffset + MemoryLayout<V>.size + alignment - 1) / alignment * alignment
    }

    @inlinable
    init(capacity: Int = 64) {
        var c = 16, bits: UInt64 = 4
        while c < capacity { c <<= 1; bits += 1 }
        buckets = .allocate(byteCount: c * Self.bucketStride, alignment: Self.alignment)
        let stride = Self.bucketStride
        for i in 0..<c {
            buckets.storeBytes(of: -1, toByteOffset: i * stride, as: Int32.self)
            buckets.storeBytes(of: 0, toByteOffset: i * stride + 8, as: Int64.self)
        }
        mask = c - 1
        shift = 64 - bits
    }

    @usableFromInline
    func release() {
        for i in 0...mask where slotAt(i) >= 0 { valuePointer(i).deinitialize(count: 1) }
        buckets.deallocate()
    }

    /// The key slot in bucket `i`, -1 when empty.
    @inlinable
    func slotAt(_ i: Int) -> Int32 { buckets.load(fromByteOffset: i &* Self.bucketStride, as: Int32.self) }

    @inlinable
    func namespaceAt(_ i: Int) -> Int64 { buckets.load(fromByteOffset: i &* Self.bucketStride &+ 8, as: Int64.self) }

    @inlinable
    func setKey(_ i: Int, slot: Int32, _ namespace: Int64) {
        buckets.storeBytes(of: slot, toByteOffset: i &* Self.bucketStride, as: Int32.self)
        buckets.storeBytes(of: namespace, toByteOffset: i &* Self.bucketStride &+ 8, as: Int64.self)
    }

    @inlinable
    func valueRaw(_ i: Int) -> UnsafeMutableRawPointer { buckets + (i &* Self.bucketStride &+ Self.bucketValueOffset) }

    /// The value of an occupied bucket.
    @inlinable
    func valuePointer(_ i: Int) -> UnsafeMutablePointer<V> { valueRaw(i).assumingMemoryBound(to: V.self) }

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
        var i = bucket(slot, namespace)
        while true {
            let s = slotAt(i)
            if s == slot, namespaceAt(i) == namespace { return i }
            if s < 0 { return -1 }
            i = (i &+ 1) & mask
        }
    }

    /// Inserts a key known to be absent.
    @inlinable
    mutating func insert(slot: Int32, _ namespace: Int64, _ value: V) {
        if (count + 1) * 2 > mask + 1 { grow() }
        var i = bucket(slot, namespace)
        while slotAt(i) >= 0 { i = (i &+ 1) & mask }
        setKey(i, slot: slot, namespace)
        valueRaw(i).initializeMemory(as: V.self, repeating: value, count: 1)
        count += 1
    }

    @inlinable
    mutating func remove(at index: Int) -> V {
        let value = valuePointer(index).move()
        // Backward shift: move later entries of the probe run into the hole.
        var hole = index
        var j = (index &+ 1) & mask
        while slotAt(j) >= 0 {
            let home = bucket(slotAt(j), namespaceAt(j))
            let movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)
            if movable {
                setKey(hole, slot: slotAt(j), namespaceAt(j))
                valueRaw(hole).moveInitializeMemory(as: V.self, from: valuePointer(j), count: 1)
                hole = j
            }
            j = (j &+ 1) & mask
        }
        buckets.storeBytes(of: -1, toByteOffset: hole &* Self.bucketStride, as: Int32.self)
        count -= 1
        return value
    }

    @inlinable
    mutating func grow() {
        let old = self
        self = NamespaceTable(capacity: (mask + 1) * 2)
        for i in 0...old.mask where old.slotAt(i) >= 0 {
            var j = bucket(old.slotAt(i), old.namespaceAt(i))
            while slotAt(j) >= 0 { j = (j &+ 1) & mask }
            setKey(j, slot: old.slotAt(i), old.namespaceAt(i))
            valueRaw(j).moveInitializeMemory(as: V.self, from: old.valuePointer(i), count: 1)
            count += 1
        }
        old.buckets.deallocate()
    }
}
