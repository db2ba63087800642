// bench-kafka — Kafka sink and source throughput on a broker (issue 5), single process:
//   1. sink → broker: pre-encoded Avro transactions through KafkaSink (at least once), until the
//      broker acknowledged all of them;
//   2. the same with Avro encoding in the job (AvroValue → Confluent wire format);
//   3. Kafka source → Avro decode (ConfluentAvroDeserializer, v1 reader) → discard;
//   4. Kafka source → discard (raw records copied, no decoding), for comparison;
//   5. the Avro decoder alone on one thread: to an AvroValue, and built straight from the binary.
//
//   swift run -c release bench-kafka --bootstrap HOST:PORT [--records 1000000] [--parallelism 2]
//   make bench-kafka     starts the local broker, runs this, stops it
import Contracts
import Foundation
import Kafka
import StreamCore

struct Options {
    var bootstrap: String?
    var records = 1_000_000
    var parallelism = 2
    var registryPath = "schemas/registry.json"
}
func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = args.next() {
        guard let v = args.next() else { writeStderr("\(flag) needs a value"); exit(2) }
        switch flag {
        case "--bootstrap": o.bootstrap = v
        case "--records": o.records = Int(v) ?? o.records
        case "--parallelism": o.parallelism = Int(v) ?? o.parallelism
        case "--registry": o.registryPath = v
        default: writeStderr("usage: bench-kafka --bootstrap HOST:PORT [--records N] [--parallelism P] [--registry FILE]"); exit(2)
        }
    }
    return o
}
let options = parseOptions()
guard let bootstrap = options.bootstrap else { writeStderr("bench-kafka: --bootstrap HOST:PORT is required (make bench-kafka starts a local broker)"); exit(2) }
let records = options.records, parallelism = options.parallelism, registryPath = options.registryPath
let config = KafkaConfig(bootstrapServers: bootstrap)
let registry = try ContractRegistry(file: registryPath)

func transaction(_ i: Int64) -> AvroValue {
    .record([
        .init("txn_id", .string("t\(i)")), .init("card_id", .string("card-\(i % 10_000)")), .init("user_id", .string("u-\(i % 10_000)")),
        .init("amount_minor", .long(100 + i % 100_000)), .init("currency", .string("EUR")), .init("mcc", .int(5411)),
        .init("device_id", .string("d-\(i % 20_000)")), .init("ip", .string("10.0.\(i % 256).\(i % 200)")),
        .init("geo", .record([.init("lat", .double(52.5)), .init("lon", .double(13.4)), .init("country", .string("DE"))])),
        .init("timestamp", .long(1_700_000_000_000 + i)),
    ])
}

// 4 096 distinct pre-encoded records, cycled.
let codec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[1]!)
let encoded: [KafkaProducerRecord] = try (0..<4_096).map { i in
    KafkaProducerRecord(key: Array("card-\(i % 10_000)".utf8), value: try codec.encode(transaction(Int64(i)), schemaId: 1))
}
let bytesPerRecord = encoded.map { ($0.value?.count ?? 0) + ($0.key?.count ?? 0) }.reduce(0, +) / encoded.count

final class Pass: KafkaRecordSerializer {
    func serialize(_ r: KafkaProducerRecord) -> KafkaProducerRecord { r }
}
final class Encode: KafkaRecordSerializer {
    let codec: ConfluentAvroCodec
    init(_ registry: ContractRegistry) throws { codec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[1]!) }
    func serialize(_ i: Int64) throws -> KafkaProducerRecord {
        KafkaProducerRecord(key: Array("card-\(i % 10_000)".utf8), value: try codec.encode(transaction(i), schemaId: 1))
    }
}

let run = UUID().uuidString.prefix(8)
let topic = "bench-\(run)", topic2 = "bench-enc-\(run)"
try KafkaAdmin.createTopics(config, [topic: 12, topic2: 12])
let n = Int64(records)

func timed(_ name: String, _ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let d = ContinuousClock.now - start
    let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    let rate = Double(records) / seconds
    print(String(format: "%-44@ %9.0f events/s  (%d records in %.2f s)", name as NSString, rate, records, seconds))
    return rate
}

print("bench-kafka: \(records) records of ~\(bytesPerRecord) bytes, parallelism \(parallelism), broker \(bootstrap)")
let sinkRate = try timed("sink → broker (pre-encoded, at least once)") {
    let env = StreamExecutionEnvironment(parallelism: parallelism)
    env.fromSource(DataGeneratorSource(count: n) { encoded[Int($0 % 4_096)] }, watermarkStrategy: .noWatermarks(), name: "records")
        .sinkTo(KafkaSink(config: config, topic: topic, guarantee: .atLeastOnce) { Pass() })
    try env.execute("bench sink")
}
let encodeRate = try timed("Avro encode → sink → broker") {
    let env = StreamExecutionEnvironment(parallelism: parallelism)
    env.fromSource(DataGeneratorSource(count: n) { $0 }, watermarkStrategy: .noWatermarks(), name: "ids")
        .sinkTo(KafkaSink(config: config, topic: topic2, guarantee: .atLeastOnce) { try Encode(registry) })
    try env.execute("bench encode sink")
}
let rawRate = try timed("source → discard (no decoding)") {
    let env = StreamExecutionEnvironment(parallelism: parallelism)
    let source = KafkaSource<KafkaRecord>(config: config, topics: [topic], groupId: "bench-raw-\(run)", bounded: true) { KafkaRecordCopier() }
    env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "kafka").sinkTo(DiscardingSink())
    _ = try env.execute("bench raw source")
}
nonisolated(unsafe) var decoded = 0
let sourceRate = try timed("source → Avro decode → discard") {
    let env = StreamExecutionEnvironment(parallelism: parallelism)
    let source = KafkaSource<AvroValue>(config: config, topics: [topic], groupId: "bench-\(run)", bounded: true) {
        try ConfluentAvroDeserializer(registry: registry, readerSchema: registry.byId[1]!)
    }
    env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "kafka").sinkTo(DiscardingSink())
    let result = try env.execute("bench source")
    decoded = Int(result.operator("kafka")!.numRecordsIn)
    print("  task threads' CPU: " + result.slotCPUNanos.map { String(format: "%.2f s", Double($0) / 1e9) }.joined(separator: ", ")
          + String(format: " of %.2f s", Double(result.netRuntimeMillis) / 1e3))
    if decoded != records { writeStderr("\(result)") }
}
guard decoded == records else { writeStderr("bench-kafka: the source read \(decoded) records, not \(records)"); exit(1) }
print(String(format: "targets: source→decode %.0f (≥ 500000: %@), sink %.0f (≥ 300000: %@)", sourceRate,
             sourceRate >= 500_000 ? "met" : "MISSED", sinkRate, sinkRate >= 300_000 ? "met" : "MISSED"))
_ = (encodeRate, rawRate)
/// What the feature job takes from a transaction, built straight from the binary.
struct CardTxn: AvroRecordBuilder {
    var card = "", device = "", country = "", amount: Int64 = 0, time: Int64 = 0
    struct Country: AvroRecordBuilder {
        var code = ""
        mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws { if index == 2 { code = try f.string() } }
        func build() -> String { code }
    }
    mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {
        switch index {
        case 1: card = try f.string()
        case 3: amount = try f.long()
        case 6: device = try f.string()
        case 8: country = try f.record(Country.self) ?? ""
        case 9: time = try f.long()
        default: break
        }
    }
    func build() -> CardTxn { self }
}
do {
    // The decoder alone, one thread, the 4 096 records over and over (no Kafka): to an AvroValue
    // and mapped as a job would map it, and built straight from the binary (AvroRecordBuilder).
    let c = try ConfluentAvroCodec(registry: registry, reader: registry.byId[1]!)
    func rate(_ body: () throws -> Int) rethrows -> Double {
        let start = ContinuousClock.now
        let n = try body()
        precondition(n == records)
        let d = ContinuousClock.now - start
        return Double(records) / (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }
    var (values, built) = (0.0, 0.0)
    for _ in 0..<3 {   // alternating, best of three each (a shared machine)
        values = max(values, try rate {
            var n = 0
            for i in 0..<records {
                let v = try c.decode(encoded[i % 4_096].value!)
                if case .string(let card)? = v["card_id"], case .long? = v["amount_minor"], v["geo"]?["country"] != nil, !card.isEmpty { n += 1 }
            }
            return n
        })
        built = max(built, try rate {
            var n = 0
            for i in 0..<records {
                let t = try encoded[i % 4_096].value!.withUnsafeBytes { try c.decode($0, as: CardTxn.self) }
                if !t.card.isEmpty, !t.country.isEmpty { n += 1 }
            }
            return n
        })
    }
    print(String(format: "%-44@ %9.0f events/s  (one thread, no Kafka)", "Avro decode alone → AvroValue" as NSString, values))
    print(String(format: "%-44@ %9.0f events/s  (one thread, no Kafka; %.2f× the AvroValue path)",
                 "Avro decode alone → AvroRecordBuilder" as NSString, built, built / values))
}
