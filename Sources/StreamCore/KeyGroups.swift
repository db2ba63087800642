/// A key for `keyBy`. Beyond `Hashable` (used only inside one process), a key has a hash code that is
/// stable across processes and machines: the one Java's `hashCode()` gives for the same value, so a
/// key lands in the same key group as it would in Flink.
///
/// Never derive it from Swift's `Hasher` or `hashValue`, which are seeded per process.
public protocol StreamKey: Hashable, Sendable, Codable {
    /// Java's `hashCode()` for the equivalent Java value.
    var stableHashCode: Int32 { get }
}

extension String: StreamKey {
    /// `java.lang.String.hashCode()`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code units.
    @inlinable
    public var stableHashCode: Int32 {
        // ASCII (the usual key): UTF-16 code units are the UTF-8 bytes, read without decoding.
        if let h = self.utf8.withContiguousStorageIfAvailable({ bytes -> Int32? in
            var h: Int32 = 0
            for b in bytes {
                if b >= 0x80 { return nil }
                h = h &* 31 &+ Int32(b)
            }
            return h
        }), let h { return h }
        var h: Int32 = 0
        for unit in self.utf16 { h = h &* 31 &+ Int32(unit) }
        return h
    }
}

extension Int64: StreamKey {
    /// `java.lang.Long.hashCode()`.
    @inlinable public var stableHashCode: Int32 { Int32(truncatingIfNeeded: self ^ Int64(bitPattern: UInt64(bitPattern: self) >> 32)) }
}

extension Int: StreamKey {
    /// Hashed as a Java `long`.
    @inlinable public var stableHashCode: Int32 { Int64(self).stableHashCode }
}

extension Int32: StreamKey {
    /// `java.lang.Integer.hashCode()`.
    @inlinable public var stableHashCode: Int32 { self }
}

extension UInt64: StreamKey {
    @inlinable public var stableHashCode: Int32 { Int64(bitPattern: self).stableHashCode }
}

extension UInt32: StreamKey {
    @inlinable public var stableHashCode: Int32 { Int32(bitPattern: self) }
}

extension Bool: StreamKey {
    /// `java.lang.Boolean.hashCode()`.
    @inlinable public var stableHashCode: Int32 { self ? 1231 : 1237 }
}

extension Double: StreamKey {
    /// `java.lang.Double.hashCode()` (NaN canonicalised as `doubleToLongBits` does).
    @inlinable public var stableHashCode: Int32 {
        let bits: UInt64 = isNaN ? 0x7ff8_0000_0000_0000 : bitPattern
        return Int32(truncatingIfNeeded: bits ^ (bits >> 32))
    }
}

/// Combines field hash codes as `java.util.Objects.hash(a, b, …)` does, for composite keys.
@inlinable
public func stableHashCombine(_ codes: Int32...) -> Int32 {
    var h: Int32 = 1
    for c in codes { h = h &* 31 &+ c }
    return h
}

/// Flink's mapping of keys to key groups and of key groups to parallel subtasks
/// (`KeyGroupRangeAssignment`), bit for bit.
public enum KeyGroupRangeAssignment {
    public static let defaultMaxParallelism = 128
    public static let upperBoundMaxParallelism = 1 << 15

    /// `MathUtils.murmurHash(int)`: a non-negative Murmur3 finalisation of one Int32.
    @inlinable @inline(__always)
    public static func murmurHash(_ code: Int32) -> Int32 {
        var c = UInt32(bitPattern: code)
        c = c &* 0xcc9e_2d51
        c = (c << 15) | (c >> 17)
        c = c &* 0x1b87_3593
        c = (c << 13) | (c >> 19)
        c = c &* 5 &+ 0xe654_6b64
        c ^= 4
        c ^= c >> 16
        c = c &* 0x85eb_ca6b
        c ^= c >> 13
        c = c &* 0xc2b2_ae35
        c ^= c >> 16
        let signed = Int32(bitPattern: c)
        if signed >= 0 { return signed }
        return signed == Int32.min ? 0 : -signed
    }

    /// The key group of a key: `murmurHash(key.hashCode()) % maxParallelism`.
    @inlinable
    public static func keyGroup<K: StreamKey>(of key: K, maxParallelism: Int) -> Int {
        Int(murmurHash(key.stableHashCode)) % maxParallelism
    }

    /// The subtask that owns a key group: `keyGroup * parallelism / maxParallelism`.
    @inlinable
    public static func operatorIndex(forKeyGroup keyGroup: Int, maxParallelism: Int, parallelism: Int) -> Int {
        keyGroup * parallelism / maxParallelism
    }

    /// The subtask a key is routed to.
    @inlinable
    public static func operatorIndex<K: StreamKey>(for key: K, maxParallelism: Int, parallelism: Int) -> Int {
        operatorIndex(forKeyGroup: keyGroup(of: key, maxParallelism: maxParallelism),
                      maxParallelism: maxParallelism, parallelism: parallelism)
    }

    /// The contiguous range of key groups owned by one subtask (used when state is restored at
    /// another parallelism).
    public static func keyGroupRange(maxParallelism: Int, parallelism: Int, operatorIndex: Int) -> ClosedRange<Int>? {
        let start = (operatorIndex * maxParallelism + parallelism - 1) / parallelism
        let end = ((operatorIndex + 1) * maxParallelism - 1) / parallelism
        return start <= end ? start...end : nil
    }
}
