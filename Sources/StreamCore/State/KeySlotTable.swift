/// Maps keys to dense slot numbers: open addressing with linear probing and backward-shift
/// deletion, hashed with the key's stable hash code run through a Murmur finaliser. Faster than a
/// `Dictionary` (no per-lookup SipHash) and allocation-free once grown.
@usableFromInline
struct KeySlotTable<K: StreamKey> {
    @usableFromInline var keys: [K?]
    @usableFromInline var slots: [Int32]
    @usableFromInline var mask: Int
    @usableFromInline var count = 0

    @usableFromInline
    init(capacity: Int = 64) {
        var c = 16
        while c < capacity * 2 { c <<= 1 }
        keys = Array(repeating: nil, count: c)
        slots = Array(repeating: -1, count: c)
        mask = c - 1
    }

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

    /// The slot of `key`, or -1.
    @inlinable
    func find(_ key: K) -> Int {
        var i = Self.bucket(key, mask: mask)
        while true {
            guard let k = keys[i] else { return -1 }
            if k == key { return Int(slots[i]) }
            i = (i + 1) & mask
        }
    }

    @inlinable
    mutating func insert(_ key: K, slot: Int) {
        if (count + 1) * 4 > (mask + 1) * 3 { grow() }
        var i = Self.bucket(key, mask: mask)
        while let k = keys[i] {
            if k == key { slots[i] = Int32(slot); return }
            i = (i + 1) & mask
        }
        keys[i] = key
        slots[i] = Int32(slot)
        count += 1
    }

    @inlinable
    mutating func remove(_ key: K) {
        var i = Self.bucket(key, mask: mask)
        while true {
            guard let k = keys[i] else { return }
            if k == key { break }
            i = (i + 1) & mask
        }
        // Backward-shift: move later entries of the probe run into the hole.
        var hole = i
        var j = (i + 1) & mask
        while let k = keys[j] {
            let home = Self.bucket(k, mask: mask)
            // Move if the entry's home is not cyclically within (hole, j].
            let movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)
            if movable {
                keys[hole] = keys[j]
                slots[hole] = slots[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        keys[hole] = nil
        slots[hole] = -1
        count -= 1
    }

    @inlinable
    mutating func grow() {
        let oldKeys = keys, oldSlots = slots
        let c = (mask + 1) * 2
        keys = Array(repeating: nil, count: c)
        slots = Array(repeating: -1, count: c)
        mask = c - 1
        count = 0
        for (k, s) in zip(oldKeys, oldSlots) where k != nil { insert(k!, slot: Int(s)) }
    }
}
