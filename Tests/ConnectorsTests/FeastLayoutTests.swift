@testable import Connectors
import XCTest

func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }

/// The encodings against the test vectors of shared/feast-redis-layout.md (checked there byte for
/// byte against Feast 0.67).
final class FeastLayoutTests: XCTestCase {
    let card = FeastEntityKey(["card_id": .string("c1")])

    func testHashKeyVector() {
        XCTAssertEqual(hex(FeastLayout.hashKey(card, project: "fraud")),
                       "01000000" + "02000000" + "07000000" + "636172645f6964" + "02000000" + "02000000" + "6331"
                           + "6672617564")
    }

    func testFeatureFieldVectors() {
        XCTAssertEqual(FeastLayout.murmur3_x86_32(Array("txn_stats_5m:count_5m".utf8), seed: 0), 0x97ab_2b86)
        XCTAssertEqual(hex(FeastLayout.featureField(view: "txn_stats_5m", feature: "count_5m")), "862bab97")
        XCTAssertEqual(hex(FeastLayout.featureField(view: "txn_stats_5m", feature: "sum_5m")), "da985676")
        XCTAssertEqual(hex(FeastLayout.featureField(view: "txn_stats_5m", feature: "avg_5m")), "7310c78a")
        XCTAssertEqual(hex(FeastLayout.featureField(view: "txn_stats_5m", feature: "geo_mismatch_ratio_5m")), "5150c479")
        XCTAssertEqual(hex(FeastLayout.timestampField(view: "txn_stats_5m")), "5f74733a74786e5f73746174735f356d")
    }

    func testMurmur3ReferenceValues() {
        // Reference values of MurmurHash3_x86_32 (every tail length).
        XCTAssertEqual(FeastLayout.murmur3_x86_32([], seed: 0), 0)
        XCTAssertEqual(FeastLayout.murmur3_x86_32([], seed: 1), 0x514e_28b7)
        XCTAssertEqual(FeastLayout.murmur3_x86_32(Array("hello".utf8), seed: 0), 0x248b_fa47)
        XCTAssertEqual(FeastLayout.murmur3_x86_32(Array("The quick brown fox jumps over the lazy dog".utf8), seed: 0), 0x2e4f_f723)
        XCTAssertEqual(FeastLayout.murmur3_x86_32([0x21, 0x43, 0x65], seed: 0), 0x7e4a_8634)
        XCTAssertEqual(FeastLayout.murmur3_x86_32([0x21, 0x43], seed: 0), 0xa0f7_b07a)
        XCTAssertEqual(FeastLayout.murmur3_x86_32([0x21], seed: 0), 0x7266_1cf4)
    }

    func testValueVectors() {
        XCTAssertEqual(hex(FeastValue.int64(7).serialized()), "2007")
        XCTAssertEqual(hex(FeastValue.double(123.45).serialized()), "29cdccccccccdc5e40")
        XCTAssertEqual(hex(FeastValue.int64(-3).serialized()), "20fdffffffffffffffff01")
        XCTAssertEqual(hex(FeastValue.int64(0).serialized()), "2000", "zero values are still written")
        XCTAssertEqual(hex(FeastValue.int64(300).serialized()), "20ac02")
        XCTAssertEqual(hex(FeastValue.int32(-1).serialized()), "18ffffffffffffffffff01")
        XCTAssertEqual(hex(FeastValue.int32(5).serialized()), "1805")
        XCTAssertEqual(hex(FeastValue.float(1.5).serialized()), "350000c03f")
        XCTAssertEqual(hex(FeastValue.string("ab").serialized()), "12026162")
        XCTAssertEqual(hex(FeastValue.bool(true).serialized()), "3801")
        XCTAssertEqual(hex(FeastValue.bool(false).serialized()), "3800")
        XCTAssertEqual(hex(FeastValue.bytes([0, 255]).serialized()), "0a0200ff")
        XCTAssertEqual(hex(FeastValue.unixTimestamp(1).serialized()), "4001")
        XCTAssertEqual(FeastValue.null.serialized(), [])
    }

    func testTimestampVectors() {
        XCTAssertEqual(hex(FeastTimestamp(seconds: 1_795_564_800).serialized()), "0880ca98d806")
        XCTAssertEqual(hex(FeastTimestamp(seconds: 1_795_564_800, nanos: 500_000_000).serialized()), "0880ca98d8061080cab5ee01")
        XCTAssertEqual(FeastTimestamp(seconds: 0).serialized(), [])
        XCTAssertEqual(FeastTimestamp(milliseconds: 1_795_564_800_500), FeastTimestamp(seconds: 1_795_564_800, nanos: 500_000_000))
        XCTAssertEqual(FeastTimestamp(milliseconds: -1), FeastTimestamp(seconds: -1, nanos: 999_000_000))
    }

    func testEntityKeyWithSeveralJoinKeysSortsByName() {
        let key = FeastEntityKey(["user_id": .int64(5), "device_id": .string("d")])
        XCTAssertEqual(hex(key.serialized()),
                       "02000000"
                           + "02000000" + "09000000" + hex(Array("device_id".utf8))
                           + "02000000" + "07000000" + hex(Array("user_id".utf8))
                           + "02000000" + "01000000" + "64"
                           + "04000000" + "08000000" + "0500000000000000")
    }

    /// One join key given either way is the same key: equal, same hash, same bytes; and a key's
    /// join keys read back as given.
    func testOneJoinKeyEitherWayIsTheSameKey() {
        let a = FeastEntityKey("card_id", .string("c1")), b = FeastEntityKey(["card_id": .string("c1")])
        XCTAssertEqual(a, b)
        XCTAssertEqual(Set([a, b]).count, 1)
        XCTAssertEqual(a.serialized(), b.serialized())
        XCTAssertEqual(a.joinKeys, ["card_id": .string("c1")])
        XCTAssertNotEqual(a, FeastEntityKey("card_id", .string("c2")))
        var c = a
        c.joinKeys["device_id"] = .string("d")
        XCTAssertEqual(c, FeastEntityKey(["device_id": .string("d"), "card_id": .string("c1")]))
        c.joinKeys["device_id"] = nil
        XCTAssertEqual(c, a)
    }

    /// What the online sink announces as an argument's length is what serializing writes.
    func testSerializedCountsMatchTheBytes() {
        let numbers: [Int64] = [0, 1, 127, 128, 16_383, 16_384, Int64(Int32.max), -1, Int64.min, Int64.max, 1_795_564_800]
        var values: [FeastValue] = [.null, .double(1.5), .float(-2), .bool(true), .bool(false),
                                    .string(""), .string("é" + String(repeating: "x", count: 200)), .bytes([]), .bytes(Array(repeating: 7, count: 300))]
        for n in numbers {
            values += [.int64(n), .unixTimestamp(n), .int32(Int32(truncatingIfNeeded: n))]
        }
        for v in values { XCTAssertEqual(v.serializedCount, v.serialized().count, "\(v)") }
        for n in numbers where n >= 0 {
            for nanos: Int32 in [0, 1, 999_999_999] {
                let t = FeastTimestamp(seconds: n, nanos: nanos)
                XCTAssertEqual(t.serializedCount, t.serialized().count, "\(t)")
            }
        }
        XCTAssertEqual(FeastTimestamp(seconds: -5).serializedCount, FeastTimestamp(seconds: -5).serialized().count)
    }

    func testScriptIsNamedByItsSHA1() {
        XCTAssertEqual(SHA1.hex(Array("abc".utf8)), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(SHA1.hex([]), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(SHA1.hex(Array(String(repeating: "a", count: 1000).utf8)), "291e9a6c66994949b57ba5e650361e98fc36b1ba")
        XCTAssertEqual(RedisScript("return 1").sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }
}
