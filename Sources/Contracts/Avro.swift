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

typealias Iface = UnsafeMutablePointer<avro_value_iface_t>

/// Decodes and encodes messages in the Confluent wire format (magic byte 0, 4-byte big-endian
/// schema id, Avro binary body): the writer's schema comes from the id, and is resolved to the
/// reader's schema by Avro's own rules (libavro's resolved reader): fields the reader does not
/// know are skipped, fields it adds take their defaults. A writer id missing from `registry` is
/// looked up in `remote` (a Schema Registry), when given. Not thread-safe (one per task).
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
    private var writers: [Int32: (Iface, avro_value_t)] = [:]

    public init(registry: ContractRegistry, reader: AvroSchema, remote: (any SchemaLookup)? = nil) throws {
        self.registry = registry
        self.reader = reader
        self.remote = remote
        readerType = try AvroSchemaParser.parse(reader.json)
    }

    deinit {
        for var w in writers.values {
            avro_value_decref(&w.1)
            cavro_value_iface_decref(w.0)
        }
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
        guard message.count >= 5 else { throw .truncated(length: message.count) }
        guard message[0] == 0 else { throw .badMagic(message[0]) }
        let id = Int32(bitPattern: UInt32(message[1]) << 24 | UInt32(message[2]) << 16 | UInt32(message[3]) << 8 | UInt32(message[4]))
        let plan = try resolvedPlan(id)
        var r = AvroBinaryReader(UnsafeRawBufferPointer(rebasing: message[5...]))
        let value: AvroValue
        do { value = try r.read(plan) } catch is AvroBinaryReader.Truncated {
            throw .undecodable(writerId: id, reason: "the body ends inside the datum")
        } catch {
            throw .undecodable(writerId: id, reason: "\(error)")
        }
        guard r.atEnd else { throw .undecodable(writerId: id, reason: "bytes left after the datum") }
        return value
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
        if writers[id] == nil {
            guard let schema = registry.byId[id] else { throw AvroError(message: "schema id \(id) is not in the registry") }
            guard let iface = avro_generic_class_from_schema(schema.raw) else { throw AvroError("writer schema \(id)") }
            var v = avro_value_t()
            guard avro_generic_value_new(iface, &v) == 0 else { throw AvroError("writer value \(id)") }
            writers[id] = (iface, v)
        }
        var (_, datum) = writers[id]!
        cavro_value_reset(&datum)
        try Self.write(value, into: &datum)
        var size = 0
        guard avro_value_sizeof(&datum, &size) == 0 else { throw AvroError("size of the datum") }
        var out = [UInt8](repeating: 0, count: 5 + size)
        let u = UInt32(bitPattern: id)
        out[1] = UInt8(u >> 24); out[2] = UInt8((u >> 16) & 0xff); out[3] = UInt8((u >> 8) & 0xff); out[4] = UInt8(u & 0xff)
        let rc: Int32 = out.withUnsafeMutableBufferPointer { buf in
            let body = UnsafeRawPointer(buf.baseAddress! + 5).assumingMemoryBound(to: CChar.self)
            guard let w = avro_writer_memory(body, Int64(size)) else { return -1 }
            defer { avro_writer_free(w) }
            return avro_value_write(w, &datum)
        }
        guard rc == 0 else { throw AvroError("write") }
        return out
    }

    // MARK: avro_value_t ↔ AvroValue

    static func check(_ rc: Int32, _ what: @autoclosure () -> String) throws {
        if rc != 0 { throw AvroError(what()) }
    }

    static func read(_ v: inout avro_value_t) throws -> AvroValue {
        switch cavro_value_get_type(&v) {
        case AVRO_NULL: return .null
        case AVRO_BOOLEAN:
            var b: Int32 = 0
            try check(cavro_value_get_boolean(&v, &b), "boolean")
            return .boolean(b != 0)
        case AVRO_INT32:
            var i: Int32 = 0
            try check(cavro_value_get_int(&v, &i), "int")
            return .int(i)
        case AVRO_INT64:
            var i: Int64 = 0
            try check(cavro_value_get_long(&v, &i), "long")
            return .long(i)
        case AVRO_FLOAT:
            var f: Float = 0
            try check(cavro_value_get_float(&v, &f), "float")
            return .float(f)
        case AVRO_DOUBLE:
            var d: Double = 0
            try check(cavro_value_get_double(&v, &d), "double")
            return .double(d)
        case AVRO_STRING:
            var s: UnsafePointer<CChar>?
            var size = 0
            try check(cavro_value_get_string(&v, &s, &size), "string")
            guard let s else { return .string("") }
            return .string(String(decoding: UnsafeRawBufferPointer(start: s, count: max(0, size - 1)), as: UTF8.self))
        case AVRO_BYTES, AVRO_FIXED:
            var p: UnsafeRawPointer?
            var size = 0
            try check(cavro_value_get_bytes(&v, &p, &size), "bytes")
            return .bytes(p.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? [])
        case AVRO_ENUM:
            var i: Int32 = 0
            try check(cavro_value_get_enum(&v, &i), "enum")
            guard let name = avro_schema_enum_get(cavro_value_get_schema(&v), i) else { throw AvroError(message: "enum index \(i) out of range") }
            return .enumSymbol(String(cString: name))
        case AVRO_UNION:
            var branch = avro_value_t()
            try check(cavro_value_get_current_branch(&v, &branch), "union branch")
            return try read(&branch)
        case AVRO_RECORD:
            var n = 0
            try check(cavro_value_get_size(&v, &n), "record size")
            var fields: [AvroValue.Field] = []
            fields.reserveCapacity(n)
            for i in 0..<n {
                var child = avro_value_t()
                var name: UnsafePointer<CChar>?
                try check(cavro_value_get_by_index(&v, i, &child, &name), "record field")
                fields.append(.init(name.map { String(cString: $0) } ?? "", try read(&child)))
            }
            return .record(fields)
        case AVRO_ARRAY:
            var n = 0
            try check(cavro_value_get_size(&v, &n), "array size")
            return .array(try (0..<n).map { i in
                var child = avro_value_t()
                try check(cavro_value_get_by_index(&v, i, &child, nil), "array element")
                return try read(&child)
            })
        case AVRO_MAP:
            var n = 0
            try check(cavro_value_get_size(&v, &n), "map size")
            var out: [String: AvroValue] = [:]
            for i in 0..<n {
                var child = avro_value_t()
                var key: UnsafePointer<CChar>?
                try check(cavro_value_get_by_index(&v, i, &child, &key), "map entry")
                out[key.map { String(cString: $0) } ?? ""] = try read(&child)
            }
            return .map(out)
        default:
            throw AvroError(message: "unsupported Avro type \(cavro_value_get_type(&v))")
        }
    }

    static func write(_ value: AvroValue, into v: inout avro_value_t) throws {
        let type = cavro_value_get_type(&v)
        if type == AVRO_UNION {
            // The first branch of the value's own type, else the first non-null one that takes it
            // (an int into a long branch, ...).
            let schema = cavro_value_get_schema(&v)
            let branches = (0..<avro_schema_union_size(schema)).map { avro_schema_union_branch(schema, Int32($0)).pointee.type }
            let own: [avro_type_t]
            switch value {
            case .null: own = [AVRO_NULL]
            case .boolean: own = [AVRO_BOOLEAN]
            case .int: own = [AVRO_INT32]
            case .long: own = [AVRO_INT64]
            case .float: own = [AVRO_FLOAT]
            case .double: own = [AVRO_DOUBLE]
            case .bytes: own = [AVRO_BYTES, AVRO_FIXED]
            case .string: own = [AVRO_STRING]
            case .record: own = [AVRO_RECORD]
            case .enumSymbol: own = [AVRO_ENUM]
            case .array: own = [AVRO_ARRAY]
            case .map: own = [AVRO_MAP]
            }
            let candidates = branches.indices.filter { own.contains(branches[$0]) }
                + (value == .null ? [] : branches.indices.filter { !own.contains(branches[$0]) && branches[$0] != AVRO_NULL })
            for i in candidates {
                var branch = avro_value_t()
                try check(cavro_value_set_branch(&v, Int32(i), &branch), "union branch")
                do { return try write(value, into: &branch) } catch { continue }
            }
            throw AvroError(message: "no union branch takes \(value)")
        }
        switch (value, type) {
        case (.null, AVRO_NULL): try check(cavro_value_set_null(&v), "null")
        case (.boolean(let b), AVRO_BOOLEAN): try check(cavro_value_set_boolean(&v, b ? 1 : 0), "boolean")
        case (.int(let i), AVRO_INT32): try check(cavro_value_set_int(&v, i), "int")
        case (.long(let i), AVRO_INT64): try check(cavro_value_set_long(&v, i), "long")
        case (.int(let i), AVRO_INT64): try check(cavro_value_set_long(&v, Int64(i)), "long")
        case (.float(let f), AVRO_FLOAT): try check(cavro_value_set_float(&v, f), "float")
        case (.double(let d), AVRO_DOUBLE): try check(cavro_value_set_double(&v, d), "double")
        case (.string(let s), AVRO_STRING): try check(cavro_value_set_string(&v, s), "string")
        case (.bytes(var b), AVRO_BYTES): try check(b.withUnsafeMutableBytes { cavro_value_set_bytes(&v, $0.baseAddress, $0.count) }, "bytes")
        case (.enumSymbol(let s), AVRO_ENUM):
            let i = avro_schema_enum_get_by_name(cavro_value_get_schema(&v), s)
            guard i >= 0 else { throw AvroError(message: "enum has no symbol \(s)") }
            try check(cavro_value_set_enum(&v, i), "enum")
        case (.record(let fields), AVRO_RECORD):
            for f in fields {
                var child = avro_value_t()
                guard cavro_value_get_by_name(&v, f.name, &child, nil) == 0 else { throw AvroError(message: "record has no field \(f.name)") }
                try write(f.value, into: &child)
            }
            // Fields not given: null when the field's type allows it, otherwise an error naming it.
            let schema = cavro_value_get_schema(&v)
            let given = Set(fields.map(\.name))
            for i in 0..<avro_schema_record_size(schema) {
                guard let cname = avro_schema_record_field_name(schema, Int32(i)) else { continue }
                let name = String(cString: cname)
                if given.contains(name) { continue }
                var child = avro_value_t()
                try check(cavro_value_get_by_name(&v, name, &child, nil), "field \(name)")
                do { try write(.null, into: &child) } catch {
                    throw AvroError(message: "record \(String(cString: avro_schema_name(schema))) needs field \(name)")
                }
            }
        case (.array(let items), AVRO_ARRAY):
            for item in items {
                var child = avro_value_t()
                try check(cavro_value_append(&v, &child, nil), "array append")
                try write(item, into: &child)
            }
        case (.map(let entries), AVRO_MAP):
            for (k, item) in entries {
                var child = avro_value_t()
                try check(cavro_value_add(&v, k, &child, nil, nil), "map add")
                try write(item, into: &child)
            }
        default:
            throw AvroError(message: "cannot write \(value) as Avro type \(type)")
        }
    }
}
