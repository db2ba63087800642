import Contracts
import Foundation
import XCTest

/// `ConfluentAvroCodec.decode(_:as:)`: records built straight from the binary give what the
/// `AvroValue` path gives, through every resolution rule, and refuse exactly the messages it refuses.
final class AvroRecordBuilderTests: XCTestCase {
    /// Collects every field by position, each through the accessor `read` picks.
    struct Collect: AvroRecordBuilder {
        nonisolated(unsafe) static var read: (Int, inout AvroFieldDecoder) throws -> AvroValue = { _, f in try f.value() }
        var fields: [Int: AvroValue] = [:]
        init() {}
        mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {
            XCTAssertNil(fields[index], "field \(index) set twice")
            fields[index] = try Self.read(index, &f)
        }
        func build() -> [Int: AvroValue] { fields }
    }

    /// Reads no field at all: every one is stepped over.
    struct Nothing: AvroRecordBuilder {
        init() {}
        mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {}
        func build() -> Int { 0 }
    }

    struct DRec: AvroRecordBuilder {
        var k: AvroValue = .null
        init() {}
        mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws { k = try f.value() }
        func build() -> AvroValue { .record([.init("k", k)]) }
    }

    func codecs() throws -> (writer: ConfluentAvroCodec, reader: ConfluentAvroCodec) {
        let reg = try ContractFixtures.registry([("s", 1, ContractFixtures.resolutionWriter), ("s", 2, ContractFixtures.resolutionReader)])
        return (try ConfluentAvroCodec(registry: reg, reader: reg.byId[1]!), try ConfluentAvroCodec(registry: reg, reader: reg.byId[2]!))
    }

    func datum(_ color: String, _ u: AvroValue, _ s: String = "hello") -> AvroValue {
        ContractFixtures.resolutionDatum(color, u, s)
    }

    /// Typed accessors (promotions, aliases, enum defaults, unions, defaults of every kind, a
    /// nested record) give the values the `AvroValue` path gives.
    func testTypedAccessorsGiveWhatTheValuePathGives() throws {
        let (w, r) = try codecs()
        Collect.read = { i, f in
            switch i {
            case 0: return .long(try f.long())
            case 1, 8: return .string(try f.string())
            case 2: return .enumSymbol(try f.enumSymbol())
            case 4, 6: return .double(try f.double())
            case 5: return .long(try f.long())
            case 7: return .int(try f.int())
            case 10: return try f.record(DRec.self) ?? .null
            default: return try f.value()
            }
        }
        defer { Collect.read = { _, f in try f.value() } }
        for d in [datum("GREEN", .int(3)), datum("BLUE", .string("s"), "ünïcödé"), datum("RED", .null)] {
            let bytes = try w.encode(d, schemaId: 1)
            guard case .record(let expected) = try r.decode(bytes) else { return XCTFail("not a record") }
            let built = try bytes.withUnsafeBytes { try r.decode($0, as: Collect.self) }
            XCTAssertEqual(built.count, expected.count, "every reader field, once")
            for (i, f) in expected.enumerated() { XCTAssertEqual(built[i], f.value, "field \(f.name)") }
            // From a decoded datum, the same.
            XCTAssertEqual(try Collect.record(from: .record(expected)), built)
        }
    }

    /// A message is refused by the builder path exactly when, and for the reason, the value path
    /// refuses it, whichever fields the builder reads: cut short, trailing bytes, random bytes,
    /// and single-byte changes of a good message (bad UTF-8, union and enum indices out of range).
    func testTheSameMessagesAreRefusedForTheSameReasons() throws {
        let (w, r) = try codecs()
        let good = try w.encode(datum("GREEN", .string("s")), schemaId: 1)
        func reasons(_ bytes: [UInt8]) -> [String?] {
            func reason(_ body: () throws -> Any) -> String? {
                do { _ = try body(); return nil } catch let e as AvroDecodeError { return e.reason } catch { return "OTHER \(error)" }
            }
            return bytes.withUnsafeBytes { raw in
                [reason { try r.decode(raw) }, reason { try r.decode(raw, as: Nothing.self) }, reason { try r.decode(raw, as: Collect.self) }]
            }
        }
        func check(_ bytes: [UInt8], _ why: String, file: StaticString = #filePath, line: UInt = #line) {
            let got = reasons(bytes)
            XCTAssertEqual(Set(got.map { $0 ?? "ok" }).count, 1, "\(why): value path, nothing read, all read: \(got)", file: file, line: line)
        }
        XCTAssertEqual(reasons(good), [nil, nil, nil])
        check([0, 0, 0], "no header")
        check(Array(good.prefix(good.count - 3)), "cut short")
        check(good + [1], "trailing byte")
        var rng = SystemRandomNumberGenerator()
        var refused = 0
        for i in 5..<good.count {
            for b: UInt8 in [0x00, 0x01, 0x7f, 0x80, 0xc3, 0xff] {
                var m = good
                m[i] = b
                check(m, "byte \(i) set to \(b)")
                if reasons(m)[0] != nil { refused += 1 }
            }
        }
        XCTAssertGreaterThan(refused, 20, "the changes do reach the checks")
        for _ in 0..<2_000 {
            let body = (0..<Int.random(in: 0..<60, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            check([0, 0, 0, 0, 1] + body, "random body")
        }
    }

    struct Mismatched: AvroRecordBuilder {
        init() {}
        mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws { if index == 0 { _ = try f.string() } }
        func build() -> Int { 0 }
    }

    struct Refusing: AvroRecordBuilder {
        struct Rule: Error {}
        init() {}
        mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {}
        func build() throws -> Int { throw Rule() }
    }

    /// A builder that asks for the wrong type gets `AvroFieldMismatch`; a builder's own error is
    /// passed on as it is (the deserializer makes both `INVALID`), not as a decode error.
    func testBuilderErrorsAreNotDecodeErrors() throws {
        let (w, r) = try codecs()
        let good = try w.encode(datum("GREEN", .int(1)), schemaId: 1)
        try good.withUnsafeBytes { raw in
            XCTAssertThrowsError(try r.decode(raw, as: Mismatched.self)) { XCTAssertTrue($0 is AvroFieldMismatch, "\($0)") }
            XCTAssertThrowsError(try r.decode(raw, as: Refusing.self)) { XCTAssertTrue($0 is Refusing.Rule, "\($0)") }
            // A message that does not decode is a decode error before any rule of the builder's.
            XCTAssertThrowsError(try r.decode(UnsafeRawBufferPointer(rebasing: raw.dropLast()), as: Refusing.self)) {
                XCTAssertEqual(($0 as? AvroDecodeError)?.reason, "UNDECODABLE")
            }
        }
    }
}
