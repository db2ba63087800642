@testable import StreamCore
import StreamTesting
import XCTest

final class CheckpointManifestTests: XCTestCase {
    func testBase64MatchesFoundation() {
        var random = SeededRandom(seed: 11)
        for n in 0..<40 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &random) }
            let ours = Base64.encode(bytes)
            XCTAssertEqual(ours, Data(bytes).base64EncodedString())
            XCTAssertEqual(Base64.decode(ours), bytes)
        }
        XCTAssertNil(Base64.decode("abc"))
        XCTAssertNil(Base64.decode("ab=c"))
        XCTAssertNil(Base64.decode("ab!="))
    }

    func testJSONRoundTripAndEscapes() throws {
        let value = JSONValue.object([
            ("s", .string("quote \" backslash \\ newline \n tab \t bell \u{7} é 🌊")),
            ("n", .int(-9_223_372_036_854_775_808)),
            ("d", .double(1.5)),
            ("a", .array([.null, .bool(true), .bool(false), .array([]), .object([])])),
        ])
        let text = value.serialized()
        XCTAssertEqual(try JSONValue.parse(Array(text.utf8)), value)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(text.utf8)))
        XCTAssertEqual(try JSONValue.parse(Array(#"{"k": "\ud83c\udf0a\u00e9"}"#.utf8))["k"], .string("🌊é"))
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "\"unterminated", "tru", "[1] x", "\"\\x\""] {
            XCTAssertThrowsError(try JSONValue.parse(Array(bad.utf8)), bad)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try JSONValue.parse(Array(deep.utf8)))
    }

    func testManifestRoundTripAndTamperDetection() throws {
        let m = CheckpointManifest(
            checkpointId: 12,
            info: CheckpointInfo(jobName: "job \"x\"", timestampMillis: 5, parallelism: 3, maxParallelism: 256,
                                 kind: .savepoint, metadata: ["splits": [0, 1, 2, 255]]),
            files: [CheckpointFileEntry(name: "b", owner: StateFileOwner(operatorUid: "op", subtask: 1), rawSize: 10, storedSize: 7, checksum: .max),
                    CheckpointFileEntry(name: "a", owner: StateFileOwner(operatorUid: "op", subtask: 0, keyGroups: 0...127), rawSize: 0, storedSize: 9, checksum: 0)])
        let bytes = m.serialized()
        XCTAssertEqual(try CheckpointManifest.parse(bytes), m)
        XCTAssertEqual(m.files.map(\.name), ["a", "b"])
        for i in stride(from: 0, to: bytes.count, by: 7) {
            var t = bytes
            t[i] ^= 0x20
            XCTAssertThrowsError(try CheckpointManifest.parse(t), "byte \(i)")
        }
    }
}
