import Contracts
import Foundation
import XCTest

/// The contracts in schemas/ through libavro in the Confluent wire format: round trips, a v1 reader
/// on v2 data (Avro's own resolution: the unknown field is skipped), and malformed messages
/// rejected with the DLQ reason they would carry.
final class ConfluentAvroTests: XCTestCase {
    static let schemas = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("schemas").path

    func registry() throws -> ContractRegistry { try ContractRegistry(file: Self.schemas + "/registry.json") }

    func transaction(merchant: String?) -> AvroValue { ContractFixtures.transaction(merchant: merchant) }

    func testRoundTripAndTheWireFormat() throws {
        let reg = try registry()
        XCTAssertEqual(reg.latestId("txn.events-value"), 2)
        let v2 = try ConfluentAvroCodec(registry: reg, reader: reg.byId[2]!)
        let bytes = try v2.encode(transaction(merchant: "m-1"), schemaId: 2)
        XCTAssertEqual(Array(bytes.prefix(5)), [0, 0, 0, 0, 2], "magic 0 and the big-endian schema id")
        XCTAssertEqual(try v2.decode(bytes), transaction(merchant: "m-1"))
        let none = try v2.encode(transaction(merchant: nil), schemaId: 2)
        XCTAssertEqual(try v2.decode(none)["merchant_id"], .null, "the default")
    }

    func testAV1ReaderReadsV2Data() throws {
        let reg = try registry()
        let writer = try ConfluentAvroCodec(registry: reg, reader: reg.byId[2]!)
        let v2bytes = try writer.encode(transaction(merchant: "m-1"), schemaId: 2)
        let v1bytes = try writer.encode(transaction(merchant: nil).droppingField("merchant_id"), schemaId: 1)
        let v1reader = try ConfluentAvroCodec(registry: reg, reader: reg.byId[1]!)
        XCTAssertEqual(try v1reader.decode(v2bytes), transaction(merchant: nil), "merchant_id, unknown to v1, is skipped")
        XCTAssertEqual(try v1reader.decode(v1bytes), transaction(merchant: nil))
        // A v2 reader reads v1 data: merchant_id, unknown to the writer, takes its default (null).
        let v2reader = try ConfluentAvroCodec(registry: reg, reader: reg.byId[2]!)
        XCTAssertEqual(try v2reader.decode(v1bytes)["merchant_id"], .null)
        XCTAssertEqual(try v2reader.decode(v2bytes), transaction(merchant: "m-1"))
    }

    /// Avro's schema resolution, rule by rule: promotions, aliases, defaults of every kind,
    /// writer-only fields of complex types skipped, enums with a default, unions on either side,
    /// and a field without default missing from the writer refused with its name.
    func testSchemaResolutionRules() throws {
        let writer = ContractFixtures.resolutionWriter, reader = ContractFixtures.resolutionReader
        let reg = try registryOf([1: writer, 2: reader])
        let w = try ConfluentAvroCodec(registry: reg, reader: reg.byId[1]!)
        func datum(_ color: String, _ u: AvroValue) -> AvroValue { ContractFixtures.resolutionDatum(color, u) }
        let r = try ConfluentAvroCodec(registry: reg, reader: reg.byId[2]!)
        let v = try r.decode(try w.encode(datum("GREEN", .int(3)), schemaId: 1))
        XCTAssertEqual(v, .record([
            .init("a", .long(-5)), .init("new_name", .string("hello")), .init("color", .enumSymbol("GREEN")),
            .init("u", .long(3)), .init("f", .double(1.5)), .init("n", .long(1 << 40)), .init("i2d", .double(-3)),
            .init("d_int", .int(7)), .init("d_str", .string("x")), .init("d_arr", .array([.int(1), .int(2)])),
            .init("d_rec", .record([.init("k", .boolean(true))])), .init("d_union", .null),
        ]))
        XCTAssertEqual(try r.decode(try w.encode(datum("BLUE", .string("s")), schemaId: 1))["color"], .enumSymbol("RED"), "enum default")
        XCTAssertEqual(try r.decode(try w.encode(datum("RED", .null), schemaId: 1))["u"], .null)

        // A reader field without default that the writer lacks: refused, naming the field.
        let strict = try registryOf([1: writer, 2: """
            {"type":"record","name":"R","namespace":"t","fields":[{"name":"must","type":"string"}]}
            """])
        let s = try ConfluentAvroCodec(registry: strict, reader: strict.byId[2]!)
        XCTAssertThrowsError(try s.decode(try w.encode(datum("RED", .null), schemaId: 1))) { error in
            XCTAssertTrue("\(error)".contains("must"), "\(error)")
            XCTAssertEqual((error as? AvroDecodeError)?.reason, "UNDECODABLE")
        }
    }

    /// A registry of the given schema texts under their ids (subject "s").
    func registryOf(_ schemas: [Int32: String]) throws -> ContractRegistry {
        try ContractFixtures.registry(schemas.sorted { $0.key < $1.key }.map { ("s", $0.key, $0.value) })
    }

    func testMalformedMessagesCarryTheirDLQReason() throws {
        let reg = try registry()
        let codec = try ConfluentAvroCodec(registry: reg, reader: reg.byId[1]!)
        let good = try codec.encode(transaction(merchant: nil).droppingField("merchant_id"), schemaId: 1)
        func reason(_ bytes: [UInt8]) -> String? {
            do { _ = try codec.decode(bytes); return nil } catch { return error.reason }
        }
        XCTAssertEqual(reason([0, 0, 0]), "TRUNCATED")
        XCTAssertEqual(reason([1] + good.dropFirst()), "BAD_MAGIC")
        XCTAssertEqual(reason([0, 0, 0, 0x30, 0x39] + good.dropFirst(5)), "UNKNOWN_SCHEMA")
        XCTAssertEqual(reason(Array(good.prefix(good.count - 3))), "UNDECODABLE", "cut short")
        XCTAssertEqual(reason(good + [1, 2, 3]), "UNDECODABLE", "trailing bytes")
        XCTAssertEqual(reason([0, 0, 0, 0, 1] + [UInt8](repeating: 0xff, count: 40)), "UNDECODABLE", "garbage")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {   // random bytes behind a valid header never crash, never pass as data silently
            let body = (0..<Int.random(in: 0..<60, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if let r = reason([0, 0, 0, 0, 1] + body) { XCTAssertEqual(r, "UNDECODABLE") }
        }
        XCTAssertEqual(try codec.decode(good)["card_id"], .string("card-7"), "the codec still works after bad input")
    }

    func testTheOtherContractsRoundTrip() throws {
        let reg = try registry()
        let click = AvroValue.record([.init("event_id", .string("e1")), .init("user_id", .string("u1")), .init("session_hint", .null),
                                      .init("page", .string("/home")), .init("action", .enumSymbol("ADD_TO_CART")),
                                      .init("device_id", .string("d1")), .init("timestamp", .long(5))])
        let c = try ConfluentAvroCodec(registry: reg, reader: reg.byId[3]!)
        XCTAssertEqual(try c.decode(try c.encode(click, schemaId: 3)), click)
        let dlq = AvroValue.record([.init("reason", .enumSymbol("BAD_MAGIC")), .init("key", .bytes([1, 2])), .init("value", .bytes([9, 9, 9])),
                                    .init("source_topic", .string("txn.events")), .init("source_partition", .int(3)),
                                    .init("source_offset", .long(42)), .init("error", .string("magic byte is 9")),
                                    .init("time", .long(7)), .init("job", .string("txn-features"))])
        let d = try ConfluentAvroCodec(registry: reg, reader: reg.byId[7]!)
        XCTAssertEqual(try d.decode(try d.encode(dlq, schemaId: 7)), dlq)
    }
}

extension AvroValue {
    func droppingField(_ name: String) -> AvroValue {
        guard case .record(let fields) = self else { return self }
        return .record(fields.filter { $0.name != name })
    }
}
