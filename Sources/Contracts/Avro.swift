import CAvro
import Foundation

/// An Avro datum, schema-free: what a decoded message is before a job maps it to its own type.
public enum AvroValue: Equatable, Sendable {
    case null
    case boolean(Bool)
    case int(Int32)
    case long(Int64)
    case float(Float)
    case double(Double)
    case bytes([UInt8])
    case string(String)
    case record([Field])
    case enumSymbol(String)
    case array([AvroValue])
    case map([String: AvroValue])

    public struct Field: Equatable, Sendable {
        public var name: String
        public var value: AvroValue
        public init(_ name: String, _ value: AvroValue) { self.name = name; self.value = value }
    }

    /// A record's field by name.
    public subscript(field: String) -> AvroValue? {
        guard case .record(let fields) = self else { return nil }
        return fields.first { $0.name == field }?.value
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var longValue: Int64? {
        switch self {
        case .long(let v): return v
        case .int(let v): return Int64(v)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .double(let v): return v
        case .float(let v): return Double(v)
        default: return nil
        }
    }
}

/// Why a message could not be decoded: the DLQ reason codes (`schemas/dlq_envelope.v1.avsc`).
public enum AvroDecodeError: Error, Equatable, CustomStringConvertible {
    /// Shorter than the 5-byte Confluent header.
    case truncated(length: Int)
    /// The first byte is not the Confluent magic byte 0.
    case badMagic(UInt8)
    /// The schema id is not in the registry.
    case unknownSchema(id: Int32)
    /// The writer's schema cannot be resolved to the reader's (incompatible contracts).
    case incompatible(writerId: Int32, reason: String)
    /// The body does not decode with the writer's schema (cut short, garbage, trailing bytes).
    case undecodable(writerId: Int32, reason: String)
    /// The writer schema is not local and the Schema Registry could not be asked (down, timeout, 5xx).
    /// Not the message's fault: retry or fail the job rather than dead-letter it.
    case registryUnavailable(id: Int32, reason: String)

    /// The DLQ reason code.
    public var reason: String {
        switch self {
        case .truncated: return "TRUNCATED"
        case .badMagic: return "BAD_MAGIC"
        case .unknownSchema: return "UNKNOWN_SCHEMA"
        case .incompatible, .undecodable: return "UNDECODABLE"
        case .registryUnavailable: return "OTHER"
        }
    }

    public var description: String {
        switch self {
        case .truncated(let n): return "message of \(n) bytes is shorter than the 5-byte Confluent header"
        case .badMagic(let b): return "magic byte is \(b), not 0 (not the Confluent wire format)"
        case .unknownSchema(let id): return "schema id \(id) is not in the registry"
        case .incompatible(let id, let r): return "writer schema \(id) does not resolve to the reader's: \(r)"
        case .undecodable(let id, let r): return "body does not decode with writer schema \(id): \(r)"
        case .registryUnavailable(let id, let r): return "schema id \(id) is not local and the registry did not answer: \(r)"
        }
    }
}

public struct AvroError: Error, CustomStringConvertible {
    public let description: String
    init(_ what: String) { description = "Avro: \(what): \(String(cString: avro_strerror()))" }
    init(message: String) { description = "Avro: \(message)" }
}

/// A parsed Avro schema (libavro), reference-counted.
public final class AvroSchema: @unchecked Sendable {
    let raw: avro_schema_t
    /// The JSON it was parsed from.
    public let json: String

    public init(json: String) throws {
        var schema: avro_schema_t?
        guard avro_schema_from_json_length(json, json.utf8.count, &schema) == 0, let schema else {
            throw AvroError("schema does not parse")
        }
        raw = schema
        self.json = json
    }

    public convenience init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw AvroError(message: "cannot read \(path)") }
        try self.init(json: String(decoding: data, as: UTF8.self))
    }

    deinit { avro_schema_decref(raw) }
}

/// `schemas/registry.json`: subjects → versions → schema ids, and the schemas by id.
public struct ContractRegistry: Sendable {
    public struct Version: Sendable { public let version: Int; public let id: Int32; public let schema: AvroSchema }
    public let subjects: [String: [Version]]
    public let byId: [Int32: AvroSchema]

    public init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path),
              let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let subjects = json["subjects"] as? [String: [[String: Any]]] else {
            throw AvroError(message: "\(path) is not a registry file (an object with \"subjects\")")
        }
        let dir = (path as NSString).deletingLastPathComponent
        var out: [String: [Version]] = [:], byId: [Int32: AvroSchema] = [:]
        for (subject, versions) in subjects {
            for v in versions {
                guard let version = v["version"] as? Int, let id = v["id"] as? Int, let file = v["schema"] as? String else {
                    throw AvroError(message: "\(path): subject \(subject) has an entry without version, id or schema")
                }
                let schema = try AvroSchema(file: dir + "/" + file)
                guard byId[Int32(id)] == nil else { throw AvroError(message: "\(path): schema id \(id) used twice") }
                byId[Int32(id)] = schema
                out[subject, default: []].append(Version(version: version, id: Int32(id), schema: schema))
            }
        }
        self.subjects = out.mapValues { $0.sorted { $0.version < $1.version } }
        self.byId = byId
    }

    /// The id of `subject`'s latest version (what a producer writes with).
    public func latestId(_ subject: String) -> Int32? { subjects[subject]?.last?.id }

    /// Registers every version of every subject in a real Schema Registry, in the order of their
    /// ids (so a fresh registry hands out the same ids), and checks that the registry's ids and
    /// versions are this file's; registering again is a no-op. Returns this registry.
    public func syncing(with client: SchemaRegistryClient) throws -> ContractRegistry {
        let all = subjects.flatMap { s, versions in versions.map { (subject: s, version: $0) } }.sorted { $0.version.id < $1.version.id }
        for (subject, v) in all {
            func mismatch(_ what: String) -> SchemaRegistryError {
                SchemaRegistryError(registry: client.baseURL, message: "subject '\(subject)' version \(v.version): \(what), the contracts say id \(v.id)")
            }
            let id = try client.register(subject: subject, schemaJSON: v.schema.json)
            guard id == v.id else { throw mismatch("the registry gave id \(id)") }
            let there: Int32
            do { there = try client.version(v.version, subject: subject).id } catch let e as SchemaRegistryError where e.isSubjectNotFound {
                throw mismatch("the registry has no version \(v.version) (the schema is another version there)")
            }
            guard there == v.id else { throw mismatch("the registry's version \(v.version) has id \(there)") }
        }
        return self
    }
}

/// Decodes and encodes messages in the Confluent wire format (magic byte 0, 4-byte big-endian
/// schema id, Avro binary body): the writer's schema comes from the id, and is resolved to the
/// reader's schema by Avro's own rules (AvroResolvingDecoder.swift): fields the reader does not
/// know are skipped, fields it adds take their defaults. A writer id missing from `registry` is
/// looked up in `remote` (a Schema Registry), when given. Encoding and decoding are Swift;
/// libavro parses (and so validates) the schemas. Not thread-safe (one per task).
public final class ConfluentAvroCodec {
    public let registry: ContractRegistry
    public let reader: AvroSchema
    public let remote: (any SchemaLookup)?
    private var remoteSchemas: [Int32: AvroSchema] = [:]
    /// The reader's schema as a tree, for resolution.
    private let readerType: AvroType
    /// Per writer id: how to read its data as the reader's schema (Avro's schema resolution:
    /// fields matched by name or alias, writer-only fields skipped, reader-only fields take their
    /// defaults, numeric promotions, unions and enums mapped), or why it cannot be.
    private var resolved: [Int32: Result<ReadPlan, AvroDecodeError>] = [:]
    /// Writer schemas as trees, by id, for encoding.
    private var writers: [Int32: AvroType] = [:]

    public init(registry: ContractRegistry, reader: AvroSchema, remote: (any SchemaLookup)? = nil) throws {
        self.registry = registry
        self.reader = reader
        self.remote = remote
        readerType = try AvroSchemaParser.parse(reader.json)
    }

    /// The datum in `message`, as the reader's schema sees it.
    public func decode(_ message: [UInt8]) throws(AvroDecodeError) -> AvroValue {
        let result: Result<AvroValue, AvroDecodeError> = message.withUnsafeBytes { raw in
            do throws(AvroDecodeError) { return .success(try decode(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// The datum in `message` (not copied), as the reader's schema sees it. Decoded in Swift by the
    /// resolution plan of the writer's schema (libavro 1.11's resolving reader neither fills
    /// reader defaults nor is fast: it allocated for every string and field).
    public func decode(_ message: UnsafeRawBufferPointer) throws(AvroDecodeError) -> AvroValue {
        let (id, plan) = try header(message)
        var r = AvroBinaryReader(UnsafeRawBufferPointer(rebasing: message[5...]))
        let value: AvroValue
        do { value = try r.read(plan) } catch {
            throw Self.undecodable(id, error)
        }
        guard r.atEnd else { throw .undecodable(writerId: id, reason: "bytes left after the datum") }
        return value
    }

    /// The record in `message` (not copied) built by `B` straight from the binary, resolved to the
    /// reader's schema (a record). Throws `AvroDecodeError` when the message does not decode (as
    /// `decode(_:)` would), else what the builder throws (its record breaks a rule of the job's)
    /// or `AvroFieldMismatch` (the builder and the reader's schema disagree).
    public func decode<B: AvroRecordBuilder>(_ message: UnsafeRawBufferPointer, as builder: B.Type) throws -> B.Record {
        let (id, plan) = try header(message)
        guard case .record(let steps, let template, let defaulted) = plan else {
            throw AvroFieldMismatch(description: "the reader's schema is not a record")
        }
        var r = AvroBinaryReader(UnsafeRawBufferPointer(rebasing: message[5...]))
        let filled: B
        do {
            filled = try withUnsafeMutablePointer(to: &r) {
                try AvroFieldDecoder.fill(B(), steps: steps, template: template, defaulted: defaulted, reader: $0)
            }
        } catch where error is AvroBinaryReader.Truncated || error is AvroBinaryReader.Invalid {
            throw Self.undecodable(id, error)
        }
        guard r.atEnd else { throw AvroDecodeError.undecodable(writerId: id, reason: "bytes left after the datum") }
        return try filled.build()
    }

    private static func undecodable(_ id: Int32, _ error: any Error) -> AvroDecodeError {
        error is AvroBinaryReader.Truncated
            ? .undecodable(writerId: id, reason: "the body ends inside the datum")
            : .undecodable(writerId: id, reason: "\(error)")
    }

    /// The writer's schema id in the Confluent header of `message`, and how to read its body.
    private func header(_ message: UnsafeRawBufferPointer) throws(AvroDecodeError) -> (Int32, ReadPlan) {
        guard message.count >= 5 else { throw .truncated(length: message.count) }
        guard message[0] == 0 else { throw .badMagic(message[0]) }
        let id = Int32(bitPattern: UInt32(message[1]) << 24 | UInt32(message[2]) << 16 | UInt32(message[3]) << 8 | UInt32(message[4]))
        return (id, try resolvedPlan(id))
    }

    private func resolvedPlan(_ id: Int32) throws(AvroDecodeError) -> ReadPlan {
        if let r = resolved[id] { return try r.get() }
        let writer: AvroSchema
        if let local = registry.byId[id] { writer = local } else if let fetched = try remoteSchema(id) { writer = fetched } else {
            throw .unknownSchema(id: id)
        }
        let result: Result<ReadPlan, AvroDecodeError>
        do {
            result = .success(try AvroResolution.plan(writer: try AvroSchemaParser.parse(writer.json), reader: readerType))
        } catch {
            result = .failure(.incompatible(writerId: id, reason: "\(error)"))
        }
        resolved[id] = result
        return try result.get()
    }

    /// The writer schema `id` from `remote`: nil without one; not found there is cached as unknown,
    /// an unreachable registry is not (the next message asks again).
    private func remoteSchema(_ id: Int32) throws(AvroDecodeError) -> AvroSchema? {
        guard let remote else { return nil }
        if let schema = remoteSchemas[id] { return schema }
        do {
            let schema = try remote.schema(id: id)
            remoteSchemas[id] = schema
            return schema
        } catch let e as SchemaRegistryError where e.isUnreachable || (e.status ?? 0) >= 500 {
            throw .registryUnavailable(id: id, reason: e.description)
        } catch let e as SchemaRegistryError where e.isSchemaNotFound {
            resolved[id] = .failure(.unknownSchema(id: id))
            throw .unknownSchema(id: id)
        } catch {
            let failure = AvroDecodeError.incompatible(writerId: id, reason: "\(error)")
            resolved[id] = .failure(failure)
            throw failure
        }
    }

    /// `value` encoded with the schema of `schemaId`, in the Confluent wire format.
    public func encode(_ value: AvroValue, schemaId id: Int32) throws -> [UInt8] {
        let type: AvroType
        if let t = writers[id] { type = t } else {
            guard let schema = registry.byId[id] else { throw AvroError(message: "schema id \(id) is not in the registry") }
            type = try AvroSchemaParser.parse(schema.json)
            writers[id] = type
        }
        var w = AvroBinaryWriter()
        w.bytes.reserveCapacity(128)
        let u = UInt32(bitPattern: id)
        w.bytes.append(contentsOf: [0, UInt8(u >> 24), UInt8((u >> 16) & 0xff), UInt8((u >> 8) & 0xff), UInt8(u & 0xff)])
        try w.write(value, as: type)
        return w.bytes
    }
}
