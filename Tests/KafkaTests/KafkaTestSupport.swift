import Contracts
import CRdKafka
import Foundation
import Kafka
import StreamCore
import Synchronization
import XCTest

/// The broker the Kafka tests use: `KAFKA_BOOTSTRAP` when set (a real Kafka), else the local
/// broker (Tansu) started by scripts/local-broker.sh.
enum TestBroker {
    static let external: String? = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP"].flatMap { $0.isEmpty ? nil : $0 }

    static func bootstrap() throws -> String {
        if let external { return external }
        return try XCTUnwrap(LocalBrokerTests.bootstrap, "scripts/local-broker.sh start failed")
    }

    static func config() throws -> KafkaConfig { KafkaConfig(bootstrapServers: try bootstrap()) }

    /// Whether the broker hides aborted transactional records from read_committed consumers
    /// (Tansu does not: ../shared/local-broker.md).
    static var hidesAbortedRecords: Bool { external != nil }

    /// Fresh topics for one test: name → partitions; returns the names with a unique prefix.
    static func topics(_ wanted: [String: Int], test: String = #function) throws -> [String: String] {
        let run = UUID().uuidString.prefix(8).lowercased()
        let base = test.replacingOccurrences(of: "()", with: "").replacingOccurrences(of: "test", with: "")
        var names: [String: String] = [:]
        var create: [String: Int] = [:]
        for (name, partitions) in wanted {
            let full = "\(base)-\(run)-\(name)"
            names[name] = full
            create[full] = partitions
        }
        try KafkaAdmin.createTopics(try config(), create)
        return names
    }

    static let schemas = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("schemas").path
    static func registry() throws -> ContractRegistry { try ContractRegistry(file: schemas + "/registry.json") }
}

/// A transaction in the contract's shape, small enough for tests.
struct Txn: Sendable, Hashable, Codable {
    var id: Int64
    var card: String
    var amount: Int64
    var timestamp: Int64
    var merchant: String?

    var avro: AvroValue {
        var fields: [AvroValue.Field] = [
            .init("txn_id", .string("t\(id)")), .init("card_id", .string(card)), .init("user_id", .string("u-\(card)")),
            .init("amount_minor", .long(amount)), .init("currency", .string("EUR")), .init("mcc", .int(5411)),
            .init("device_id", .string("d-\(card)")), .init("ip", .string("10.0.0.1")),
            .init("geo", .record([.init("lat", .double(52.5)), .init("lon", .double(13.4)), .init("country", .string("DE"))])),
            .init("timestamp", .long(timestamp)),
        ]
        if let merchant { fields.append(.init("merchant_id", .string(merchant))) }
        return .record(fields)
    }

    init(id: Int64, card: String, amount: Int64, timestamp: Int64, merchant: String? = nil) {
        self.id = id; self.card = card; self.amount = amount; self.timestamp = timestamp; self.merchant = merchant
    }

    init(avro v: AvroValue) throws {
        guard let tid = v["txn_id"]?.stringValue, let id = Int64(tid.dropFirst()), let card = v["card_id"]?.stringValue,
              let amount = v["amount_minor"]?.longValue, let ts = v["timestamp"]?.longValue else {
            throw KafkaError("not a transaction: \(v)")
        }
        self.init(id: id, card: card, amount: amount, timestamp: ts, merchant: v["merchant_id"]?.stringValue)
    }

    static func make(_ i: Int64, cards: Int64 = 97) -> Txn {
        Txn(id: i, card: "card-\(i % cards)", amount: 100 + i % 1000, timestamp: 1_700_000_000_000 + i * 10)
    }
}

/// Serializes transactions with schema `id` (1 = v1, 2 = v2), keyed by card.
func txnSerializer(schemaId: Int32 = 1) -> @Sendable () throws -> any KafkaRecordSerializer<Txn> {
    { try ConfluentAvroSerializer<Txn>(registry: TestBroker.registry(), schemaId: schemaId) { t in (Array(t.card.utf8), t.avro) } }
}

/// Reads transactions with the v1 contract.
func txnDeserializer() -> @Sendable () throws -> any KafkaRecordDeserializer<Txn> {
    { let reg = try TestBroker.registry(); return try ConfluentAvroDeserializer<Txn>(registry: reg, readerSchema: reg.byId[1]!) { try Txn(avro: $0) } }
}

/// Everything in `topic` (all partitions, from the beginning to the latest offsets when called),
/// through a bounded Kafka source job.
func readAll<T: Sendable>(_ topic: String, groupId: String = "reader-\(UUID().uuidString.prefix(8))",
                          properties: [String: String] = [:],
                          deserializer: @escaping @Sendable () throws -> any KafkaRecordDeserializer<T>) throws -> [T] {
    let env = StreamExecutionEnvironment(parallelism: 1)
    var config = try TestBroker.config()
    config.properties.merge(properties) { $1 }
    let source = KafkaSource<T>(config: config, topics: [topic], groupId: groupId, bounded: true,
                                deserializer: deserializer)
    return try env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "read \(topic)").executeAndCollect()
}

/// Writes `values` to `topic` with a job (at least once, flushed at the end).
func produce<T: Sendable>(_ values: [T], to topic: String, parallelism: Int = 1,
                          serializer: @escaping @Sendable () throws -> any KafkaRecordSerializer<T>) throws {
    let env = StreamExecutionEnvironment(parallelism: parallelism)
    env.fromData(values).rebalance()
        .sinkTo(KafkaSink(config: try TestBroker.config(), topic: topic, guarantee: .atLeastOnce, serializer: serializer), name: "produce")
    try env.execute("produce to \(topic)")
}

/// Raw bytes as they are.
final class RawSerializer: KafkaRecordSerializer {
    func serialize(_ value: KafkaProducerRecord) -> KafkaProducerRecord { value }
}
