import CoreMetrics
import Contracts
import StreamCore
#if canImport(Glibc)
import Glibc
#endif

/// Decodes Confluent-framed Avro (`ConfluentAvroCodec`: writer schema by id, resolved to the
/// reader's) into the job's type: through an `AvroValue` and a mapping, or straight from the binary
/// by an `AvroRecordBuilder`. Failures become DLQ reasons: the codec's (`TRUNCATED`, `BAD_MAGIC`,
/// `UNKNOWN_SCHEMA`, `UNDECODABLE`), a missing value `UNDECODABLE`, a mapping or builder that throws
/// `INVALID`. With a Schema Registry (`remote`), writer ids missing from the local registry are
/// fetched from it; while it cannot be reached the source waits and asks again (the record is not
/// the problem, so it does not go to the DLQ).
public final class ConfluentAvroDeserializer<T>: KafkaRecordDeserializer {
    let codec: ConfluentAvroCodec
    /// Decodes a message's value: `AvroDecodeError` when it does not decode, else the mapping's.
    let body: (ConfluentAvroCodec, UnsafeRawBufferPointer) throws -> T

    public init(registry: ContractRegistry, readerSchema: AvroSchema, remote: SchemaRegistryClient? = nil,
                map: @escaping (AvroValue) throws -> T) throws {
        codec = try ConfluentAvroCodec(registry: registry, reader: readerSchema, remote: remote)
        body = { codec, value in try map(try codec.decode(value)) }
    }

    /// Builds each record with `builder` straight from the binary (no `AvroValue` in between).
    public init<B: AvroRecordBuilder>(registry: ContractRegistry, readerSchema: AvroSchema, remote: SchemaRegistryClient? = nil,
                                      builder: B.Type) throws where B.Record == T {
        codec = try ConfluentAvroCodec(registry: registry, reader: readerSchema, remote: remote)
        body = { codec, value in try codec.decode(value, as: B.self) }
    }

    public func deserialize(_ m: KafkaMessage) throws(DeserializationError) -> T {
        guard let value = m.value else {
            throw DeserializationError(reason: "UNDECODABLE", message: "record without a value (tombstone)")
        }
        var waited = 0
        while true {
            do { return try body(codec, value) } catch let error as AvroDecodeError {
                guard case .registryUnavailable = error else {
                    throw DeserializationError(reason: error.reason, message: error.description)
                }
                if waited % 10 == 0 { writeStderr("Kafka source: \(error.description); waiting for the registry") }
                waited += 1
                usleep(1_000_000)
            } catch {
                throw DeserializationError(reason: "INVALID", message: "\(error)")
            }
        }
    }
}

extension ConfluentAvroDeserializer where T == AvroValue {
    public convenience init(registry: ContractRegistry, readerSchema: AvroSchema, remote: SchemaRegistryClient? = nil) throws {
        try self.init(registry: registry, readerSchema: readerSchema, remote: remote) { $0 }
    }
}

/// Encodes elements as Confluent-framed Avro with the schema `schemaId`.
public final class ConfluentAvroSerializer<T>: KafkaRecordSerializer {
    let codec: ConfluentAvroCodec
    let schemaId: Int32
    let record: (T) throws -> (key: [UInt8]?, value: AvroValue)

    public init(registry: ContractRegistry, schemaId: Int32, record: @escaping (T) throws -> (key: [UInt8]?, value: AvroValue)) throws {
        guard let schema = registry.byId[schemaId] else { throw KafkaError("schema id \(schemaId) is not in the registry") }
        codec = try ConfluentAvroCodec(registry: registry, reader: schema)
        self.schemaId = schemaId
        self.record = record
    }

    public func serialize(_ value: T) throws -> KafkaProducerRecord {
        let (key, datum) = try record(value)
        return KafkaProducerRecord(key: key, value: try codec.encode(datum, schemaId: schemaId))
    }
}

/// A DLQ entry (`schemas/dlq_envelope.v1.avsc`): the rejected record as it came in, why, and which
/// job sent it. Keyed like the original record.
public struct DeadLetterEnvelope: Sendable, Equatable {
    public var record: RejectedRecord
    /// When the job rejected it, epoch ms.
    public var time: Int64
    public var job: String

    public init(record: RejectedRecord, time: Int64, job: String) {
        self.record = record
        self.time = time
        self.job = job
    }

    /// The reason codes of the envelope's enum; anything else is sent as `OTHER` (the text keeps it).
    public static let reasons: Set<String> = ["UNDECODABLE", "UNKNOWN_SCHEMA", "BAD_MAGIC", "TRUNCATED", "INVALID", "TOO_LATE", "OTHER"]

    public var avro: AvroValue {
        let r = record
        let reason = Self.reasons.contains(r.reason) ? r.reason : "OTHER"
        let error = reason == r.reason ? r.error : "\(r.reason): \(r.error)"
        return .record([
            .init("reason", .enumSymbol(reason)),
            .init("key", r.key.map { .bytes($0) } ?? .null),
            .init("value", r.value.map { .bytes($0) } ?? .null),
            .init("source_topic", .string(r.origin.topic)),
            .init("source_partition", .int(r.origin.partition)),
            .init("source_offset", .long(r.origin.offset)),
            .init("error", .string(error)),
            .init("time", .long(time)),
            .init("job", .string(job)),
        ])
    }

    public init(avro v: AvroValue) throws {
        func bytes(_ name: String) -> [UInt8]? { if case .bytes(let b)? = v[name] { return b }; return nil }
        guard case .enumSymbol(let reason)? = v["reason"], let topic = v["source_topic"]?.stringValue,
              let partition = v["source_partition"]?.longValue, let offset = v["source_offset"]?.longValue,
              let error = v["error"]?.stringValue, let time = v["time"]?.longValue, let job = v["job"]?.stringValue else {
            throw KafkaError("not a DLQ envelope: \(v)")
        }
        record = RejectedRecord(reason: reason, error: error, key: bytes("key"), value: bytes("value"),
                                origin: RecordOrigin(topic: topic, partition: Int32(partition), offset: offset))
        self.time = time
        self.job = job
    }
}

/// Writes rejected records as DLQ envelopes (schema `dlq-value`'s latest id) to `"<source topic>.dlq"`
/// unless `topic` is given, keyed by the original key.
public final class DeadLetterSerializer: KafkaRecordSerializer {
    let codec: ConfluentAvroCodec
    let schemaId: Int32
    let job: String
    let topic: String?

    public init(registry: ContractRegistry, job: String, topic: String? = nil) throws {
        guard let id = registry.latestId("dlq-value"), let schema = registry.byId[id] else {
            throw KafkaError("the registry has no subject dlq-value (schemas/registry.json)")
        }
        codec = try ConfluentAvroCodec(registry: registry, reader: schema)
        schemaId = id
        self.job = job
        self.topic = topic
    }

    /// `tributary_dlq_records_total{topic, reason}` (swift-metrics), one counter per pair.
    private var counters: [String: CoreMetrics.Counter] = [:]

    public func serialize(_ r: RejectedRecord) throws -> KafkaProducerRecord {
        let key = r.origin.topic + "\u{0}" + r.reason
        if let c = counters[key] { c.increment() } else {
            let c = CoreMetrics.Counter(label: "tributary_dlq_records_total", dimensions: [("topic", r.origin.topic), ("reason", r.reason)])
            counters[key] = c
            c.increment()
        }
        let envelope = DeadLetterEnvelope(record: r, time: currentTimeMillis(), job: job)
        return KafkaProducerRecord(topic: topic ?? "\(r.origin.topic).dlq", key: r.key,
                                   value: try codec.encode(envelope.avro, schemaId: schemaId))
    }

    /// Decodes an envelope written by `serialize`.
    public func decode(_ bytes: [UInt8]) throws -> DeadLetterEnvelope {
        try DeadLetterEnvelope(avro: try codec.decode(bytes))
    }
}

func currentTimeMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// An element with the Kafka record it came from, for operators downstream that may still have to
/// dead-letter it (failed validation, too late for every window): `rejected(reason:error:)` makes
/// the DLQ entry with the original key and bytes.
public struct Sourced<T> {
    public var value: T
    public var origin: RecordOrigin
    public var key: [UInt8]?
    public var bytes: [UInt8]?
    public var timestamp: Int64

    public init(value: T, origin: RecordOrigin, key: [UInt8]?, bytes: [UInt8]?, timestamp: Int64) {
        self.value = value
        self.origin = origin
        self.key = key
        self.bytes = bytes
        self.timestamp = timestamp
    }

    public func rejected(reason: String, error: String) -> RejectedRecord {
        RejectedRecord(reason: reason, error: error, key: key, value: bytes, origin: origin, timestamp: timestamp)
    }
}

extension Sourced: Sendable where T: Sendable {}
extension Sourced: Equatable where T: Equatable {}
extension Sourced: Hashable where T: Hashable {}
extension Sourced: Codable where T: Codable {}

/// Wraps a deserializer so that each element keeps its record's origin and bytes (`Sourced`).
public final class KeepingOrigin<T>: KafkaRecordDeserializer {
    let inner: any KafkaRecordDeserializer<T>
    let keepBytes: Bool
    /// `keepBytes`: copy each record's key and value (for a dead letter after the source); without,
    /// `Sourced.key` and `bytes` are nil.
    public init(_ inner: any KafkaRecordDeserializer<T>, keepBytes: Bool = true) {
        self.inner = inner
        self.keepBytes = keepBytes
    }
    public func deserialize(_ m: KafkaMessage) throws(DeserializationError) -> Sourced<T> {
        Sourced(value: try inner.deserialize(m), origin: m.origin, key: keepBytes ? m.keyBytes : nil,
                bytes: keepBytes ? m.valueBytes : nil, timestamp: m.timestamp)
    }
}

/// Calls `decoded` after each record `inner` decoded (a count of what came in).
public final class Counted<T>: KafkaRecordDeserializer {
    let inner: any KafkaRecordDeserializer<T>
    let decoded: @Sendable () -> Void
    public init(_ inner: any KafkaRecordDeserializer<T>, _ decoded: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.decoded = decoded
    }
    public func deserialize(_ m: KafkaMessage) throws(DeserializationError) -> T {
        let value = try inner.deserialize(m)
        decoded()
        return value
    }
}
