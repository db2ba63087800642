import StreamCore
import StreamTesting
import XCTest

final class CheckpointCompressionTests: XCTestCase {
    /// Vectors from the reference implementation (libxxhash 0.8.1's `XXH64`, Debian 12).
    func testXXH64Vectors() {
        func h(_ s: String, _ seed: UInt64 = 0) -> UInt64 { XXHash64.hash(Array(s.utf8), seed: seed) }
        XCTAssertEqual(h(""), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(h("a"), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(h("abc"), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(h("xxhash"), 0x32DD_3895_2C4B_C720)
        XCTAssertEqual(h("The quick brown fox jumps over the lazy dog"), 0x0B24_2D36_1FDA_71BC)
        XCTAssertEqual(h("", 1), 0xD5AF_BA13_36A3_BE4B)
        XCTAssertEqual(h("abc", 0x9E37_79B1_85EB_CA87), 0xA7CB_2AAC_405E_36C7)
        XCTAssertEqual(XXHash64.hash((0..<256).map { UInt8($0) }), 0x1FAC_BE84_06CD_904B)
        XCTAssertEqual(XXHash64.hash((0..<1000).map { UInt8($0 * 7 % 251) }, seed: 42), 0x72A2_DDA9_4EEC_1E7E)
        XCTAssertEqual(XXHash64.hex(0xab), "00000000000000ab")
    }

    /// zstd's frame checksum is the low 32 bits of XXH64(content, seed 0): compare at every length
    /// around the 4/8/32-byte steps of the algorithm.
    func testXXH64AgreesWithZstdFrameChecksums() throws {
        var random = SeededRandom(seed: 7)
        for n in Array(0..<80) + [255, 256, 1000, 4099, 65_537] {
            let data = (0..<n).map { _ in UInt8.random(in: 0...255, using: &random) }
            let frame = try Zstd.compress(data)
            let stored = frame.suffix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            XCTAssertEqual(stored, UInt32(truncatingIfNeeded: XXHash64.hash(data)), "length \(n)")
        }
    }

    func testZstdRoundTrip() throws {
        var random = SeededRandom(seed: 3)
        let cases: [[UInt8]] = [
            [],
            [42],
            Array(String(repeating: "event;", count: 10_000).utf8),
            (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &random) },
        ]
        for data in cases {
            for level: Int32 in [1, Zstd.defaultLevel, 19] where data.count < 100_000 || level != 19 {
                let packed = try Zstd.compress(data, level: level)
                XCTAssertEqual(try Zstd.decompress(packed), data)
                XCTAssertEqual(try Zstd.decompress(packed, expectedSize: data.count), data)
            }
        }
        XCTAssertLessThan(try Zstd.compress(cases[2]).count, cases[2].count / 50)
    }

    func testZstdRejectsGarbageTruncationAndWrongSize() throws {
        let data = Array(String(repeating: "keyed state ", count: 1000).utf8)
        let packed = try Zstd.compress(data)
        XCTAssertThrowsError(try Zstd.decompress([1, 2, 3, 4, 5, 6, 7, 8]))
        XCTAssertThrowsError(try Zstd.decompress([]))
        XCTAssertThrowsError(try Zstd.decompress(Array(packed.dropLast(3))))
        XCTAssertThrowsError(try Zstd.decompress(Array(packed.prefix(packed.count / 2))))
        XCTAssertThrowsError(try Zstd.decompress(packed, expectedSize: data.count + 1))
        XCTAssertThrowsError(try Zstd.decompress(packed, maxSize: 100))
        var flipped = packed
        flipped[flipped.count / 2] ^= 0x40
        XCTAssertThrowsError(try Zstd.decompress(flipped))   // zstd's content checksum catches it
    }

    /// Frames without a content size (as the `zstd` tool writes when streaming) and several
    /// frames back to back are decompressed by streaming.
    func testZstdStreamsFramesWithoutContentSize() throws {
        let a = Array("first frame ".utf8), b = Array(String(repeating: "second ", count: 50_000).utf8)
        let two = try Zstd.compress(a) + Zstd.compress(b)
        XCTAssertEqual(try Zstd.decompress(two), a + b)
        // A frame whose header carries no content size: the zstd CLI writes one when reading a pipe.
        let tool = "/usr/bin/zstd"
        guard access(tool, X_OK) == 0 else { throw XCTSkip("no zstd command") }
        let dir = try TemporaryDirectory()
        let out = dir.path + "/piped.zst"
        XCTAssertEqual(system("head -c 300000 /dev/zero | \(tool) -q -c > \(out)"), 0)
        let packed = try readAll(out)
        XCTAssertEqual(try Zstd.decompress(packed), [UInt8](repeating: 0, count: 300_000))
    }
}

func readAll(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { throw XCTSkip("cannot open \(path)") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}
