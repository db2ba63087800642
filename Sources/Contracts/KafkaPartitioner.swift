/// Kafka's default partitioner for keyed records (the Java client's and Kafka Streams'):
/// murmur2 of the key bytes, made positive, modulo the partition count. The generator and the
/// repartition topics use it, so partition `p` of a repartition topic holds the keys of partition
/// `p` of the topic it mirrors, as Kafka's own producers would place them.
public enum KafkaPartitioner {
    public static func partition(_ key: [UInt8], partitions: Int) -> Int32 {
        precondition(partitions > 0)
        return Int32(Int(UInt32(bitPattern: murmur2(key)) & 0x7fff_ffff) % partitions)
    }

    /// Kafka's `Utils.murmur2` (seed 0x9747b28c), as a signed 32-bit value like Java's.
    public static func murmur2(_ key: [UInt8]) -> Int32 {
        let m: UInt32 = 0x5bd1_e995
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: key.count)
        let blocks = key.count / 4
        for b in 0..<blocks {
            var k = UInt32(key[4 * b]) | UInt32(key[4 * b + 1]) << 8 | UInt32(key[4 * b + 2]) << 16 | UInt32(key[4 * b + 3]) << 24
            k = k &* m
            k ^= k >> 24
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = blocks * 4
        let rest = key.count & 3
        if rest == 3 { h ^= UInt32(key[tail + 2]) << 16 }
        if rest >= 2 { h ^= UInt32(key[tail + 1]) << 8 }
        if rest >= 1 { h ^= UInt32(key[tail]); h = h &* m }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }
}
