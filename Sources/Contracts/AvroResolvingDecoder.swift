import Foundation

/// An Avro schema as a Swift tree, parsed from its JSON (named types resolved by full name).
indirect enum AvroType {
    case null, boolean, int, long, float, double, bytes, string
    case record(name: String, fields: [AvroFieldType])
    case enumeration(name: String, symbols: [String], defaultSymbol: String?)
    case array(AvroType)
    case map(AvroType)
    case union([AvroType])
    case fixed(name: String, size: Int)

    /// The name schema resolution matches named types by (unqualified names match too).
    var name: String? {
        switch self {
        case .record(let n, _), .enumeration(let n, _, _), .fixed(let n, _): return n
        default: return nil
        }
    }

    var kind: String {
        switch self {
        case .null: return "null"
        case .boolean: return "boolean"
        case .int: return "int"
        case .long: return "long"
        case .float: return "float"
        case .double: return "double"
        case .bytes: return "bytes"
        case .string: return "string"
        case .record(let n, _): return "record \(n)"
        case .enumeration(let n, _, _): return "enum \(n)"
        case .array: return "array"
        case .map: return "map"
        case .union: return "union"
        case .fixed(let n, _): return "fixed \(n)"
        }
    }
}

struct AvroFieldType {
    var name: String
    var aliases: [String]
    var type: AvroType
    /// The field's default, as JSON (`NSNull` for null); nil when it has none.
    var defaultJSON: Any?
}

/// Parses schema JSON into `AvroType`.
struct AvroSchemaParser {
    private var named: [String: AvroType] = [:]

    static func parse(_ json: String) throws -> AvroType {
        guard let data = json.data(using: .utf8) else { throw AvroError(message: "schema is not UTF-8") }
        let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        var parser = AvroSchemaParser()
        return try parser.type(object, namespace: nil)
    }

    private static func fullName(_ name: String, _ namespace: String?) -> String {
        name.contains(".") || namespace == nil || namespace!.isEmpty ? name : "\(namespace!).\(name)"
    }

    private static func short(_ name: String) -> String { String(name.split(separator: ".").last ?? Substring(name)) }

    private mutating func type(_ j: Any, namespace: String?) throws -> AvroType {
        if let s = j as? String {
            switch s {
            case "null": return .null
            case "boolean": return .boolean
            case "int": return .int
            case "long": return .long
            case "float": return .float
            case "double": return .double
            case "bytes": return .bytes
            case "string": return .string
            default:
                if let t = named[Self.fullName(s, namespace)] ?? named[s] { return t }
                throw AvroError(message: "unknown type \(s)")
            }
        }
        if let branches = j as? [Any] { return .union(try branches.map { try type($0, namespace: namespace) }) }
        guard let o = j as? [String: Any], let t = o["type"] else { throw AvroError(message: "not a schema: \(j)") }
        guard let ts = t as? String else { return try type(t, namespace: namespace) }
        let ns = (o["namespace"] as? String) ?? namespace
        switch ts {
        case "record", "error":
            guard let name = o["name"] as? String, let fields = o["fields"] as? [[String: Any]] else {
                throw AvroError(message: "record without name or fields")
            }
            let full = Self.fullName(name, ns)
            let recordNamespace = full.contains(".") ? String(full[..<full.lastIndex(of: ".")!]) : ns
            // A recursive reference is not supported by this tree; the contracts have none.
            var out: [AvroFieldType] = []
            for f in fields {
                guard let fname = f["name"] as? String, let ftype = f["type"] else { throw AvroError(message: "field without name or type in \(full)") }
                out.append(AvroFieldType(name: fname, aliases: f["aliases"] as? [String] ?? [],
                                         type: try type(ftype, namespace: recordNamespace), defaultJSON: f["default"]))
            }
            let r = AvroType.record(name: Self.short(full), fields: out)
            named[full] = r
            return r
        case "enum":
            guard let name = o["name"] as? String, let symbols = o["symbols"] as? [String] else { throw AvroError(message: "enum without name or symbols") }
            let e = AvroType.enumeration(name: Self.short(name), symbols: symbols, defaultSymbol: o["default"] as? String)
            named[Self.fullName(name, ns)] = e
            return e
        case "fixed":
            guard let name = o["name"] as? String, let size = o["size"] as? Int else { throw AvroError(message: "fixed without name or size") }
            let f = AvroType.fixed(name: Self.short(name), size: size)
            named[Self.fullName(name, ns)] = f
            return f
        case "array":
            guard let items = o["items"] else { throw AvroError(message: "array without items") }
            return .array(try type(items, namespace: ns))
        case "map":
            guard let values = o["values"] else { throw AvroError(message: "map without values") }
            return .map(try type(values, namespace: ns))
        default:
            // A primitive with attributes (e.g. logicalType).
            return try type(ts, namespace: ns)
        }
    }
}

/// How to read data written with one schema as another (Avro's schema resolution), compiled once
/// per (writer, reader) pair.
indirect enum ReadPlan {
    case null, boolean, int, long, float, double, string, bytes
    case intToLong, intToFloat, intToDouble, longToFloat, longToDouble, floatToDouble
    case fixed(Int)
    /// Writer enum index → reader symbol (nil: not in the reader, and it has no default).
    case enumeration([String?])
    /// Steps in writer field order; `template` holds the reader's fields with defaults filled in;
    /// `defaulted` the indices of the reader's fields the writer does not have.
    case record(steps: [RecordStep], template: [AvroValue.Field], defaulted: [Int])
    case array(ReadPlan)
    case map(ReadPlan)
    /// Writer union: per writer branch, the plan (nil: no reader branch takes it).
    case writerUnion([ReadPlan?])
    /// The writer's datum skipped (a field the reader does not have).
    case skip(AvroType)
}

enum RecordStep {
    case read(into: Int, ReadPlan)
    case skip(AvroType)
}

enum AvroResolution {
    static func plan(writer: AvroType, reader: AvroType, path: String = "") throws -> ReadPlan {
        func fail(_ why: String) -> AvroError { AvroError(message: "\(path.isEmpty ? "" : "\(path): ")\(why)") }
        if case .union(let wb) = writer {
            return .writerUnion(wb.map { try? plan(writer: $0, reader: reader, path: path) })
        }
        if case .union(let rb) = reader {
            // The first reader branch that matches the writer's type exactly, else the first it promotes to.
            for exact in [true, false] {
                for b in rb where exact ? sameKind(writer, b) : true {
                    if let p = try? plan(writer: writer, reader: b, path: path) { return p }
                }
            }
            throw fail("writer type \(writer.kind) is not in the reader's union")
        }
        switch (writer, reader) {
        case (.null, .null): return .null
        case (.boolean, .boolean): return .boolean
        case (.int, .int): return .int
        case (.int, .long): return .intToLong
        case (.int, .float): return .intToFloat
        case (.int, .double): return .intToDouble
        case (.long, .long): return .long
        case (.long, .float): return .longToFloat
        case (.long, .double): return .longToDouble
        case (.float, .float): return .float
        case (.float, .double): return .floatToDouble
        case (.double, .double): return .double
        case (.string, .string), (.bytes, .string): return .string
        case (.bytes, .bytes), (.string, .bytes): return .bytes
        case (.fixed(let wn, let ws), .fixed(let rn, let rs)):
            guard wn == rn, ws == rs else { throw fail("fixed \(wn)[\(ws)] does not match \(rn)[\(rs)]") }
            return .fixed(ws)
        case (.enumeration(let wn, let ws, _), .enumeration(let rn, let rs, let rd)):
            guard wn == rn else { throw fail("enum \(wn) does not match \(rn)") }
            let known = Set(rs)
            return .enumeration(ws.map { known.contains($0) ? $0 : rd })
        case (.array(let w), .array(let r)): return .array(try plan(writer: w, reader: r, path: path + "[]"))
        case (.map(let w), .map(let r)): return .map(try plan(writer: w, reader: r, path: path + "{}"))
        case (.record(let wn, let wf), .record(let rn, let rf)):
            guard wn == rn else { throw fail("record \(wn) does not match \(rn)") }
            var template: [AvroValue.Field] = []
            var filled = Array(repeating: false, count: rf.count)
            for f in rf { template.append(AvroValue.Field(f.name, .null)) }
            var steps: [RecordStep] = []
            for w in wf {
                if let i = rf.firstIndex(where: { $0.name == w.name || $0.aliases.contains(w.name) }) {
                    steps.append(.read(into: i, try plan(writer: w.type, reader: rf[i].type, path: path + "." + w.name)))
                    filled[i] = true
                } else {
                    steps.append(.skip(w.type))
                }
            }
            var defaulted: [Int] = []
            for (i, f) in rf.enumerated() where !filled[i] {
                guard let d = f.defaultJSON else {
                    throw fail("field \(f.name) of \(rn) is not in the writer's schema and has no default")
                }
                template[i].value = try defaultValue(d, type: f.type, path: path + "." + f.name)
                defaulted.append(i)
            }
            return .record(steps: steps, template: template, defaulted: defaulted)
        default:
            throw fail("writer type \(writer.kind) cannot be read as \(reader.kind)")
        }
    }

    static func sameKind(_ a: AvroType, _ b: AvroType) -> Bool {
        switch (a, b) {
        case (.null, .null), (.boolean, .boolean), (.int, .int), (.long, .long), (.float, .float), (.double, .double),
             (.bytes, .bytes), (.string, .string), (.array, .array), (.map, .map): return true
        case (.record(let x, _), .record(let y, _)), (.enumeration(let x, _, _), .enumeration(let y, _, _)), (.fixed(let x, _), .fixed(let y, _)):
            return x == y
        default: return false
        }
    }

    /// A field default (JSON) as a value of the reader's type; a union's default is of its first branch.
    static func defaultValue(_ j: Any, type: AvroType, path: String) throws -> AvroValue {
        func bad() -> AvroError { AvroError(message: "\(path): default \(j) does not fit \(type.kind)") }
        switch type {
        case .null: guard j is NSNull else { throw bad() }; return .null
        case .boolean: guard let b = j as? Bool else { throw bad() }; return .boolean(b)
        case .int: guard let n = j as? NSNumber else { throw bad() }; return .int(n.int32Value)
        case .long: guard let n = j as? NSNumber else { throw bad() }; return .long(n.int64Value)
        case .float: guard let n = j as? NSNumber else { throw bad() }; return .float(n.floatValue)
        case .double: guard let n = j as? NSNumber else { throw bad() }; return .double(n.doubleValue)
        case .string: guard let s = j as? String else { throw bad() }; return .string(s)
        case .bytes, .fixed: guard let s = j as? String else { throw bad() }; return .bytes(s.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        case .enumeration: guard let s = j as? String else { throw bad() }; return .enumSymbol(s)
        case .array(let t): guard let a = j as? [Any] else { throw bad() }; return .array(try a.map { try defaultValue($0, type: t, path: path) })
        case .map(let t):
            guard let m = j as? [String: Any] else { throw bad() }
            return .map(try m.mapValues { try defaultValue($0, type: t, path: path) })
        case .union(let branches): return try defaultValue(j, type: branches[0], path: path)
        case .record(_, let fields):
            guard let o = j as? [String: Any] else { throw bad() }
            return .record(try fields.map { f in
                guard let v = o[f.name] ?? f.defaultJSON else { throw bad() }
                return AvroValue.Field(f.name, try defaultValue(v, type: f.type, path: path + "." + f.name))
            })
        }
    }
}

/// Reads Avro binary from a buffer by a `ReadPlan`. Any overrun is `Truncated`.
struct AvroBinaryReader {
    struct Truncated: Error {}
    struct Invalid: Error, CustomStringConvertible { let description: String }

    let base: UnsafeRawPointer
    let end: Int
    var at = 0

    init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        end = buffer.count
    }

    var atEnd: Bool { at == end }

    @inline(__always)
    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard at < end else { throw Truncated() }
            let b = base.load(fromByteOffset: at, as: UInt8.self)
            at += 1
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            guard shift < 64 else { throw Invalid(description: "varint longer than 10 bytes") }
        }
    }

    @inline(__always)
    mutating func long() throws -> Int64 {
        let u = try varint()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    @inline(__always)
    mutating func int() throws -> Int32 {
        let v = try long()
        guard let i = Int32(exactly: v) else { throw Invalid(description: "int out of range: \(v)") }
        return i
    }

    @inline(__always)
    mutating func fixedBytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= end - at else { throw Truncated() }
        defer { at += n }
        return UnsafeRawBufferPointer(start: base + at, count: n)
    }

    @inline(__always)
    mutating func lengthPrefixed() throws -> UnsafeRawBufferPointer {
        let n = try long()
        guard n >= 0 else { throw Invalid(description: "negative length \(n)") }
        return try fixedBytes(Int(n))
    }

    mutating func string() throws -> String {
        let b = try lengthPrefixed()
        // ASCII (the common case) needs no validation; anything else is validated strictly.
        var ascii = true
        for byte in b where byte >= 0x80 { ascii = false; break }
        if ascii { return String(decoding: b, as: UTF8.self) }
        guard let s = String(validating: b, as: UTF8.self) else { throw Invalid(description: "string is not UTF-8") }
        return s
    }

    mutating func float() throws -> Float {
        Float(bitPattern: try fixedBytes(4).loadUnaligned(as: UInt32.self).littleEndian)
    }

    mutating func double() throws -> Double {
        Double(bitPattern: try fixedBytes(8).loadUnaligned(as: UInt64.self).littleEndian)
    }

    mutating func read(_ plan: ReadPlan) throws -> AvroValue {
        switch plan {
        case .null: return .null
        case .boolean:
            let b = try fixedBytes(1)[0]
            guard b <= 1 else { throw Invalid(description: "boolean byte \(b)") }
            return .boolean(b == 1)
        case .int: return .int(try int())
        case .long: return .long(try long())
        case .float: return .float(try float())
        case .double: return .double(try double())
        case .intToLong: return .long(Int64(try int()))
        case .intToFloat: return .float(Float(try int()))
        case .intToDouble: return .double(Double(try int()))
        case .longToFloat: return .float(Float(try long()))
        case .longToDouble: return .double(Double(try long()))
        case .floatToDouble: return .double(Double(try float()))
        case .string: return .string(try string())
        case .bytes: return .bytes(Array(try lengthPrefixed()))
        case .fixed(let n): return .bytes(Array(try fixedBytes(n)))
        case .enumeration(let symbols):
            let i = try int()
            guard i >= 0, Int(i) < symbols.count else { throw Invalid(description: "enum index \(i) out of range") }
            guard let s = symbols[Int(i)] else { throw Invalid(description: "enum symbol #\(i) is not in the reader's enum") }
            return .enumSymbol(s)
        case .record(let steps, let template, _):
            var fields = template
            for step in steps {
                switch step {
                case .read(let i, let p): fields[i].value = try read(p)
                case .skip(let t): try skip(t)
                }
            }
            return .record(fields)
        case .array(let p):
            var items: [AvroValue] = []
            while let n = try nextBlock() { for _ in 0..<n { items.append(try read(p)) } }
            return .array(items)
        case .map(let p):
            var entries: [String: AvroValue] = [:]
            while let n = try nextBlock() {
                for _ in 0..<n {
                    guard case .string(let k) = try read(.string) else { continue }
                    entries[k] = try read(p)
                }
            }
            return .map(entries)
        case .writerUnion: return try read(try branch(plan))
        case .skip(let t):
            try skip(t)
            return .null
        }
    }

    /// Steps over a datum as `read(plan)` would read it, with the same checks (so a message is
    /// refused for the same reasons whichever fields its reader looks at), building nothing.
    mutating func skip(plan: ReadPlan) throws {
        switch plan {
        case .null: return
        case .boolean:
            let b = try fixedBytes(1)[0]
            guard b <= 1 else { throw Invalid(description: "boolean byte \(b)") }
        case .int, .intToLong, .intToFloat, .intToDouble: _ = try int()
        case .long, .longToFloat, .longToDouble: _ = try long()
        case .float, .floatToDouble: _ = try fixedBytes(4)
        case .double: _ = try fixedBytes(8)
        case .string:
            let b = try lengthPrefixed()
            for byte in b where byte >= 0x80 {
                guard String(validating: b, as: UTF8.self) != nil else { throw Invalid(description: "string is not UTF-8") }
                break
            }
        case .bytes: _ = try lengthPrefixed()
        case .fixed(let n): _ = try fixedBytes(n)
        case .enumeration(let symbols):
            let i = try int()
            guard i >= 0, Int(i) < symbols.count else { throw Invalid(description: "enum index \(i) out of range") }
            guard symbols[Int(i)] != nil else { throw Invalid(description: "enum symbol #\(i) is not in the reader's enum") }
        case .record(let steps, _, _):
            for step in steps {
                switch step {
                case .read(_, let p): try skip(plan: p)
                case .skip(let t): try skip(t)
                }
            }
        case .array(let p): while let n = try nextBlock() { for _ in 0..<n { try skip(plan: p) } }
        case .map(let p):
            while let n = try nextBlock() { for _ in 0..<n { try skip(plan: .string); try skip(plan: p) } }
        case .writerUnion: try skip(plan: try branch(plan))
        case .skip(let t): try skip(t)
        }
    }

    /// The plan of the datum `plan` reads: through a writer union, the plan of the branch the
    /// data names (its index is read); any other plan is itself.
    mutating func branch(_ plan: ReadPlan) throws -> ReadPlan {
        var plan = plan
        while case .writerUnion(let branches) = plan {
            let i = try long()
            guard i >= 0, Int(i) < branches.count else { throw Invalid(description: "union branch \(i) out of range") }
            guard let p = branches[Int(i)] else { throw Invalid(description: "union branch \(i) has no match in the reader's schema") }
            plan = p
        }
        return plan
    }

    /// Array and map blocks: a count (negative: followed by a byte size), items, until 0 (nil).
    mutating func nextBlock() throws -> Int64? {
        var n = try long()
        if n == 0 { return nil }
        if n < 0 { n = -n; _ = try long() }
        // Items of most types take at least a byte; a count far beyond the bytes left is garbage.
        guard n <= Int64(end - at) + 1_000_000 else { throw Truncated() }
        return n
    }

    mutating func skip(_ t: AvroType) throws {
        switch t {
        case .null: return
        case .boolean: _ = try fixedBytes(1)
        case .int, .long, .enumeration: _ = try varint()
        case .float: _ = try fixedBytes(4)
        case .double: _ = try fixedBytes(8)
        case .bytes, .string: _ = try lengthPrefixed()
        case .fixed(_, let n): _ = try fixedBytes(n)
        case .record(_, let fields): for f in fields { try skip(f.type) }
        case .array(let items): while let n = try nextBlock() { for _ in 0..<n { try skip(items) } }
        case .map(let values): while let n = try nextBlock() { for _ in 0..<n { _ = try lengthPrefixed(); try skip(values) } }
        case .union(let branches):
            let i = try long()
            guard i >= 0, Int(i) < branches.count else { throw Invalid(description: "union branch \(i) out of range") }
            try skip(branches[Int(i)])
        }
    }
}

/// Writes Avro binary for a value of a schema. Record fields are matched by name; a field the value
/// leaves out is written as null when its type allows, else refused naming it. A union takes the
/// first branch of the value's own type, else the first other branch that takes it (an int into a
/// long branch).
struct AvroBinaryWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func long(_ v: Int64) { varint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }

    mutating func blob<C: Collection>(_ b: C) where C.Element == UInt8 {
        long(Int64(b.count))
        bytes.append(contentsOf: b)
    }

    static func accepts(_ value: AvroValue, _ type: AvroType) -> Bool {
        switch (value, type) {
        case (.null, .null), (.boolean, .boolean), (.int, .int), (.int, .long), (.long, .long), (.float, .float),
             (.double, .double), (.string, .string), (.bytes, .bytes), (.bytes, .fixed), (.enumSymbol, .enumeration),
             (.record, .record), (.array, .array), (.map, .map): return true
        default: return false
        }
    }

    static func ownType(_ value: AvroValue, _ type: AvroType) -> Bool {
        switch (value, type) {
        case (.int, .long), (.bytes, .fixed): return false
        default: return accepts(value, type)
        }
    }

    /// `path` (where in the datum, for errors) is only built when an error is thrown.
    mutating func write(_ value: AvroValue, as type: AvroType, path: @autoclosure () -> String = "") throws {
        func fail(_ why: String) -> AvroError {
            let p = path()
            return AvroError(message: "\(p.isEmpty ? "" : "\(p): ")\(why)")
        }
        switch (value, type) {
        case (_, .union(let branches)):
            let order = branches.indices.filter { Self.ownType(value, branches[$0]) }
                + branches.indices.filter { !Self.ownType(value, branches[$0]) && Self.accepts(value, branches[$0]) }
            guard let i = order.first else { throw fail("no union branch takes \(value)") }
            long(Int64(i))
            try write(value, as: branches[i], path: path())
        case (.null, .null): return
        case (.boolean(let b), .boolean): bytes.append(b ? 1 : 0)
        case (.int(let i), .int): long(Int64(i))
        case (.int(let i), .long): long(Int64(i))
        case (.long(let i), .long): long(i)
        case (.float(let f), .float): withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        case (.double(let d), .double): withUnsafeBytes(of: d.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        case (.string(let s), .string): blob(s.utf8)
        case (.bytes(let b), .bytes): blob(b)
        case (.bytes(let b), .fixed(let name, let size)):
            guard b.count == size else { throw fail("fixed \(name) takes \(size) bytes, not \(b.count)") }
            bytes.append(contentsOf: b)
        case (.enumSymbol(let s), .enumeration(let name, let symbols, _)):
            guard let i = symbols.firstIndex(of: s) else { throw fail("enum \(name) has no symbol \(s)") }
            long(Int64(i))
        case (.record(let given), .record(let name, let fields)):
            // Values usually list the fields in the schema's order: the same position is tried first.
            var matched = 0
            for (i, f) in fields.enumerated() {
                let v: AvroValue?
                if i < given.count, given[i].name == f.name { v = given[i].value } else { v = given.first(where: { $0.name == f.name })?.value }
                if v != nil { matched += 1 }
                if let v {
                    try write(v, as: f.type, path: path() + "." + f.name)
                } else {
                    do { try write(.null, as: f.type, path: path() + "." + f.name) } catch {
                        throw fail("record \(name) needs field \(f.name)")
                    }
                }
            }
            if matched < given.count, let extra = given.first(where: { g in !fields.contains { $0.name == g.name } }) {
                throw fail("record \(name) has no field \(extra.name)")
            }
        case (.array(let items), .array(let t)):
            if !items.isEmpty {
                long(Int64(items.count))
                for item in items { try write(item, as: t, path: path() + "[]") }
            }
            long(0)
        case (.map(let entries), .map(let t)):
            if !entries.isEmpty {
                long(Int64(entries.count))
                for (k, item) in entries.sorted(by: { $0.key < $1.key }) {
                    blob(k.utf8)
                    try write(item, as: t, path: path() + "{\(k)}")
                }
            }
            long(0)
        default:
            throw fail("cannot write \(value) as \(type.kind)")
        }
    }
}
