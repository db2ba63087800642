// bench-codec: the checkpoint codec, zstd and XXH64 on 1 M small structs.
//   swift run -c release bench-codec [--count N]
import StreamCore

struct Acc: Codable, Equatable {
    var count: Int64
    var sum: Int64
}

let n: Int = {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--count"), i + 1 < args.count, let v = Int(args[i + 1]) { return v }
    return 1_000_000
}()

let values = (0..<n).map { Acc(count: Int64($0), sum: Int64($0) &* 7) }
let clock = ContinuousClock()

func seconds(_ d: Duration) -> Double {
    let (s, a) = d.components
    return Double(s) + Double(a) / 1e18
}

func report(_ name: String, _ d: Duration, bytes: Int? = nil) {
    let s = seconds(d)
    let padded = name + String(repeating: " ", count: max(0, 40 - name.count))
    var line = "\(padded) \(format3(s * 1000)) ms  \(format3(s * 1e9 / Double(n))) ns/struct"
    if let bytes { line += "  \(format3(Double(bytes) / s / 1e6)) MB/s" }
    print(line)
}

func format3(_ x: Double) -> String {
    let r = (x * 10).rounded() / 10
    return String(r)
}

do {
    let encoder = BinaryEncoder()
    let decoder = BinaryDecoder()

    // One value per call, as per-key state is written.
    var encodedEach: [[UInt8]] = []
    encodedEach.reserveCapacity(n)
    let t0 = clock.now
    for v in values { encodedEach.append(try encoder.encode(v)) }
    let t1 = clock.now
    var checksum: Int64 = 0
    for b in encodedEach { checksum &+= try decoder.decode(Acc.self, from: b).sum }
    let t2 = clock.now
    precondition(checksum == values.reduce(0) { $0 &+ $1.sum })
    report("encode, one struct per call", t1 - t0)
    report("decode, one struct per call", t2 - t1)
    report("encode+decode, one struct per call", t2 - t0)

    // All values in one buffer (appendingTo), read back in sequence.
    var buffer: [UInt8] = []
    buffer.reserveCapacity(n * 48)
    let t3 = clock.now
    for v in values { try encoder.encode(v, appendingTo: &buffer) }
    let t4 = clock.now
    var back: [Acc] = []
    back.reserveCapacity(n)
    try buffer.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count { back.append(try decoder.decode(Acc.self, from: raw, at: &offset)) }
    }
    let t5 = clock.now
    precondition(back == values)
    report("encode, appended to one buffer", t4 - t3)
    report("decode, in sequence from one buffer", t5 - t4)
    report("encode+decode, one buffer", t5 - t3, bytes: buffer.count)

    // One [Acc] value.
    let t6 = clock.now
    let whole = try encoder.encode(values)
    let wholeBack = try decoder.decode([Acc].self, from: whole)
    let t8 = clock.now
    precondition(wholeBack == values)
    report("encode+decode, one [Acc] of \(n)", t8 - t6, bytes: whole.count)

    let t9 = clock.now
    let packed = try Zstd.compress(buffer)
    let t10 = clock.now
    let unpacked = try Zstd.decompress(packed, expectedSize: buffer.count)
    let t11 = clock.now
    precondition(unpacked == buffer)
    report("zstd level 3 compress", t10 - t9, bytes: buffer.count)
    report("zstd decompress", t11 - t10, bytes: buffer.count)
    let t12 = clock.now
    let h = XXHash64.hash(buffer)
    let t13 = clock.now
    report("xxh64", t13 - t12, bytes: buffer.count)
    print("encoded \(n) structs: \(buffer.count) bytes (\(buffer.count / n) per struct), zstd \(packed.count) bytes, xxh64 \(XXHash64.hex(h))")
} catch {
    print("bench-codec failed: \(error)")
}
