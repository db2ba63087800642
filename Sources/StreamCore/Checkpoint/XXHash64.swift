/// XXH64 (Yann Collet's xxHash, 64-bit variant), written from the specification
/// (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md). Checkpoint files and
/// manifests are checksummed with it; it is the hash zstd itself uses for its frame checksums (whose
/// low 32 bits the tests compare against).
public enum XXHash64 {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    /// The XXH64 of `bytes` with `seed`.
    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    /// The XXH64 of `bytes` with `seed`.
    public static func hash(_ bytes: ArraySlice<UInt8>, seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    @inline(__always) static func round(_ acc: UInt64, _ lane: UInt64) -> UInt64 {
        var a = acc &+ lane &* p2
        a = (a << 31) | (a >> 33)
        return a &* p1
    }

    @inline(__always) static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    /// The XXH64 of `bytes` with `seed`.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let n = bytes.count
        guard let base = bytes.baseAddress else { return finish(seed &+ p5, base: nil, from: 0, to: 0) }
        @inline(__always) func u64(_ i: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) }
        var acc: UInt64
        var i = 0
        if n >= 32 {
            var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
            while i + 32 <= n {
                v1 = round(v1, u64(i))
                v2 = round(v2, u64(i + 8))
                v3 = round(v3, u64(i + 16))
                v4 = round(v4, u64(i + 24))
                i += 32
            }
            acc = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            acc = merge(acc, v1)
            acc = merge(acc, v2)
            acc = merge(acc, v3)
            acc = merge(acc, v4)
        } else {
            acc = seed &+ p5
        }
        acc = acc &+ UInt64(n)
        return finish(acc, base: base, from: i, to: n)
    }

    /// Consumes the last `to - from` (< 32) bytes and avalanches.
    static func finish(_ accIn: UInt64, base: UnsafeRawPointer?, from: Int, to n: Int) -> UInt64 {
        var acc = accIn
        var i = from
        if let base {
            while i + 8 <= n {
                acc ^= round(0, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                acc = rotl(acc, 27) &* p1 &+ p4
                i += 8
            }
            if i + 4 <= n {
                acc ^= UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* p1
                acc = rotl(acc, 23) &* p2 &+ p3
                i += 4
            }
            while i < n {
                acc ^= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) &* p5
                acc = rotl(acc, 11) &* p1
                i += 1
            }
        }
        acc ^= acc >> 33
        acc = acc &* p2
        acc ^= acc >> 29
        acc = acc &* p3
        acc ^= acc >> 32
        return acc
    }

    /// `hash` as 16 lower-case hex digits (how manifests store it).
    public static func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
