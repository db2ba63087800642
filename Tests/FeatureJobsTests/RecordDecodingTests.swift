import Contracts
@testable import FeatureJobs
import Generators
import XCTest

/// The jobs build their records straight from the Avro binary (`Transaction.Fields` …); that gives
/// what decoding to an `AvroValue` and mapping it gives, for every generated record, and sends the
/// same records to the DLQ with the same reasons.
final class RecordDecodingTests: XCTestCase {
    /// What a message becomes: the record, or the DLQ reason it would carry.
    enum Outcome<T: Equatable>: Equatable {
        case record(T)
        case refused(String)
    }

    static func outcome<T: Equatable>(_ body: () throws -> T) -> Outcome<T> {
        do { return .record(try body()) } catch let e as AvroDecodeError { return .refused(e.reason) } catch {
            return .refused(error is ContractViolation ? "INVALID" : "OTHER \(error)")
        }
    }

    func check<B: AvroRecordBuilder>(_ builder: B.Type, schemaId: Int32, stream: UInt64, count: Int,
                                     record: (Int64) -> GeneratedRecord, map: (AvroValue) throws -> B.Record) throws where B.Record: Equatable {
        let registry = try ContractRegistry(file: JobTestStack.root + "/schemas/registry.json")
        let codec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[schemaId]!)
        var config = GeneratorConfig()
        config.malformedShare = 0.05
        var refused: [String: Int] = [:]
        for i in 0..<Int64(count) {
            var r = record(i)
            let bytes = try r.encode(with: codec, config: config, index: i, stream: stream)
            let viaValue = Self.outcome { try map(try codec.decode(bytes)) }
            let direct = bytes.withUnsafeBytes { raw in Self.outcome { try codec.decode(raw, as: B.self) } }
            XCTAssertEqual(direct, viaValue, "record \(i) of stream \(stream)")
            if case .refused(let why) = direct { refused[why, default: 0] += 1 }
        }
        XCTAssertEqual(Set(refused.keys), ["TRUNCATED", "BAD_MAGIC", "UNKNOWN_SCHEMA", "UNDECODABLE"], "every kind of malformed record: \(refused)")
    }

    func testGeneratedRecordsBuildAsTheyMap() throws {
        let config = GeneratorConfig()
        let txns = TransactionGenerator(config), devices = DeviceGenerator(config), clicks = ClickGenerator(config)
        try check(Transaction.Fields.self, schemaId: 1, stream: 1, count: 4_000, record: { txns.record($0) }, map: Transaction.init(avro:))
        try check(Device.Fields.self, schemaId: 4, stream: 3, count: 4_000, record: { devices.record($0) }, map: Device.init(avro:))
        try check(Click.Fields.self, schemaId: 3, stream: 2, count: 4_000, record: { clicks.record($0) }, map: Click.init(avro:))
    }

    /// The contract's rules hold on the direct path too, and a device without geo has no country.
    func testContractRulesAndOptionalGeo() throws {
        let registry = try ContractRegistry(file: JobTestStack.root + "/schemas/registry.json")
        let txnCodec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[1]!)
        var good = TransactionGenerator(GeneratorConfig()).record(0).value
        guard case .record(var fields) = good, let amount = fields.firstIndex(where: { $0.name == "amount_minor" }) else { return XCTFail() }
        fields.removeAll { $0.name == "merchant_id" }
        good = .record(fields)
        fields[amount].value = .long(0)
        let bytes = try txnCodec.encode(.record(fields), schemaId: 1)
        XCTAssertEqual(bytes.withUnsafeBytes { raw in Self.outcome { try txnCodec.decode(raw, as: Transaction.Fields.self) } }, .refused("INVALID"))
        XCTAssertEqual(try txnCodec.encode(good, schemaId: 1).withUnsafeBytes { try txnCodec.decode($0, as: Transaction.Fields.self) },
                       try Transaction(avro: good))

        let devCodec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[4]!)
        let device = AvroValue.record([.init("device_id", .string("d-1")), .init("user_id", .string("u")), .init("os", .string("ios")),
                                       .init("fingerprint", .string("f")), .init("first_seen", .long(5)), .init("geo", .null),
                                       .init("timestamp", .long(9))])
        let d = try devCodec.encode(device, schemaId: 4).withUnsafeBytes { try devCodec.decode($0, as: Device.Fields.self) }
        XCTAssertEqual(d, Device(deviceId: "d-1", os: "ios", firstSeen: 5, country: nil, timestamp: 9))
    }
}
