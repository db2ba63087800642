/// Maps keys to dense slot numbers: open addressing with linear probing and backward-shift
/// deletion, hashed with the key's stable hash code run through a Murmur finaliser. Faster than a
/// `Dictionary` (no per-lookup SipHash) and allocation-free once grown.
///
/// A bucket holds the slot and the key side by side (`[slot: Int32][key: K]`, the key initialized
/// only where the slot is not -1), so a lookup touches one cache line, not one in a key array and
/// one in a slot array: with 10 k keys the table does not fit in L1 and every record looks a key up.
/// Owned by one backend, which calls `release()` when it goes.
@usableFromInline
struct KeySlotTable<K: StreamKey> {
    @usableFromInline var buckets: UnsafeMutableRawPointer
    @usableFromInline var mask: Int
    @usableFromInline var count = 0

    /// Where the key lives in a bucket, and the bucket size (constants once specialized).
    @inlinable static var bucketKeyOffset: Int {
        let a = MemoryLayout<K>.alignment
        return (MemoryLayout<Int32>.size + a - 1) / a * a
    }
    @inlinable static var bucketStride: Int {
        let align = Swift.max(MemoryLayout<K>.alignment, MemoryLayout<Int32>.alignment)
        return (bucketKeyOffset + MemoryLayout<K>.size + align - 1) / align * align
    }
    @inlinable static var alignment: Int { Swift.max(MemoryLayout<K>.alignment, MemoryLayout<Int32>.alignment) }

    @inlinable
    init(capacity: Int = 64) {
        var c = 16
        while c < capacity * 2 { c <<= 1 }
        buckets = .allocate(byteCount: c * Self.bucketStride, alignment: Self.alignment)
        mask = c - 1
        let stride = Self.bucketStride
        for i in 0..<c { buckets.storeBytes(of: -1, toByteOffset: i * stride, as: Int32.self) }
    }

    /// Deinitializes the keys and frees the buckets; the table is unusable after.
    @usableFromInline
    func release() {
        if !_isPOD(K.self) {
            let stride = Self.bucketStride, offset = Self.bucketKeyOffset
            for i in 0...mask where buckets.load(fromByteOffset: i * stride, as: Int32.self) >= 0 {
                (buckets + i * stride + offset).assumingMemoryBound(to: K.self).deinitialize(count: 1)
            }
        }
        buckets.deallocate()
    }

    @inlinable
    func slotAt(_ i: Int) -> Int32 { buckets.load(fromByteOffset: i &* Self.bucketStride, as: Int32.self) }

    @inlinable
    func setSlot(_ i: Int, _ slot: Int32) { buckets.storeBytes(of: slot, toByteOffset: i &* Self.bucketStride, as: Int32.self) }

    @inlinable
    func keyRaw(_ i: Int) -> UnsafeMutableRawPointer { buckets + (i &* Self.bucketStride &+ Self.bucketKeyOffset) }

    /// The key of an occupied bucket.
    @inlinable
    func keyPointer(_ i: Int) -> UnsafeMutablePointer<K> { keyRaw(i).assumingMemoryBound(to: K.self) }

    @inlinable
    static func bucket(_ key: K, mask: Int) -> Int {
        var h = UInt32(bitPattern: key.stableHashCode)
        h ^= h >> 16
        h = h &* 0x85eb_ca6b
        h ^= h >> 13
        h = h &* 0xc2b2_ae35
        h ^= h >> 16
        return Int(h) & mask
    }

    /// The slot of `key`, or -1. Inlined: it runs for every record of a keyed operator.
    @inlinable @inline(__always)
    func find(_ key: K) -> Int {
        var i = Self.bucket(key, mask: mask)
        while true {
            let s = slotAt(i)
            if s < 0 { return -1 }
            if keyPointer(i).pointee == key { return Int(s) }
            i = (i &+ 1) & mask
        }
    }

    @inlinable
    mutating func insert(_ key: K, slot: Int) {
        if (count + 1) * 4 > (mask + 1) * 3 { grow() }
        var i = Self.bucket(key, mask: mask)
        while slotAt(i) >= 0 {
            if keyPointer(i).pointee == key { setSlot(i, Int32(slot)); return }
            i = (i &+ 1) & mask
        }
        keyRaw(i).initializeMemory(as: K.self, repeating: key, count: 1)
        setSlot(i, Int32(slot))
        count += 1
    }

    @inlinable
    mutating func remove(_ key: K) {
        var i = Self.bucket(key, mask: mask)
        while true {
            if slotAt(i) < 0 { return }
            if keyPointer(i).pointee == key { break }
            i = (i &+ 1) & mask
        }
        keyPointer(i).deinitialize(count: 1)
        // Backward shift: move later entries of the probe run into the hole.
        var hole = i
        var j = (i &+ 1) & mask
        while slotAt(j) >= 0 {
            let home = Self.bucket(keyPointer(j).pointee, mask: mask)
            // Move if the entry's home is not cyclically within (hole, j].
            let movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)
            if movable {
                keyRaw(hole).moveInitializeMemory(as: K.self, from: keyPointer(j), count: 1)
                setSlot(hole, slotAt(j))
                hole = j
            }
            j = (j &+ 1) & mask
        }
        setSlot(hole, -1)
        count -= 1
    }

    @inlinable
    mutating func grow() {
        let old = self
        self = KeySlotTable(capacity: (mask + 1))   // twice the buckets (capacity is in keys)
        for i in 0...old.mask where old.slotAt(i) >= 0 {
            var j = Self.bucket(old.keyPointer(i).pointee, mask: mask)
            while slotAt(j) >= 0 { j = (j &+ 1) & mask }
            keyRaw(j).moveInitializeMemory(as: K.self, from: old.keyPointer(i), count: 1)
            setSlot(j, old.slotAt(i))
            count += 1
        }
        old.buckets.deallocate()
    }
}
