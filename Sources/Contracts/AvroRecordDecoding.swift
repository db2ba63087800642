/// Builds a value straight from a record's Avro binary, resolved to the reader's schema, without
/// an `AvroValue` tree in between (`ConfluentAvroCodec.decode(_:as:)`).
///
/// The decoder calls `set(field:from:)` once for every field of the reader's record: with the
/// writer's data in the writer's field order, then with its default for each reader field the
/// writer does not have. `index` is the field's position in the reader's schema. A field the builder
/// does not read is stepped over with the same checks as a read one, so a message is refused for
/// the same reasons as by `decode(_:)`. `build()` runs only when the whole message decoded.
public protocol AvroRecordBuilder {
    associatedtype Record
    init()
    mutating func set(field index: Int, from value: inout AvroFieldDecoder) throws
    func build() throws -> Record
}

extension AvroRecordBuilder {
    /// The record built from a datum already decoded (a record of the builder's schema).
    public static func record(from value: AvroValue) throws -> Record {
        guard case .record(let fields) = value else {
            throw AvroFieldMismatch(description: "expected a record, got \(value)")
        }
        return try AvroFieldDecoder.fill(Self(), fields: fields).build()
    }
}

/// The builder asked a field for a type its plan does not give (the builder and the reader's
/// schema disagree).
public struct AvroFieldMismatch: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// One field's datum, read at most once by one of its typed accessors, and only inside
/// `AvroRecordBuilder.set(field:from:)` (it points into the decoder's buffer).
public struct AvroFieldDecoder {
    enum Source {
        case binary(UnsafeMutablePointer<AvroBinaryReader>, ReadPlan)
        /// A reader default (the writer has no such field) or a value inside one.
        case value(AvroValue)
    }

    var source: Source
    var consumed = false

    init(_ source: Source) { self.source = source }

    private mutating func take(_ wanted: String) throws -> Source {
        guard !consumed else { throw AvroFieldMismatch(description: "a field read twice as \(wanted)") }
        consumed = true
        return source
    }

    private func mismatch(_ wanted: String, _ got: Any) -> AvroFieldMismatch {
        AvroFieldMismatch(description: "field read as \(wanted), but the reader's schema gives \(got)")
    }

    public mutating func string() throws -> String {
        switch try take("string") {
        case .binary(let r, let plan):
            let p = try r.pointee.branch(plan)
            guard case .string = p else { throw mismatch("string", p) }
            return try r.pointee.string()
        case .value(let v):
            guard case .string(let s) = v else { throw mismatch("string", v) }
            return s
        }
    }

    /// An Avro long, or an int widened.
    public mutating func long() throws -> Int64 {
        switch try take("long") {
        case .binary(let r, let plan):
            switch try r.pointee.branch(plan) {
            case .long: return try r.pointee.long()
            case .int, .intToLong: return Int64(try r.pointee.int())
            case let p: throw mismatch("long", p)
            }
        case .value(let v):
            guard let l = v.longValue else { throw mismatch("long", v) }
            return l
        }
    }

    public mutating func int() throws -> Int32 {
        switch try take("int") {
        case .binary(let r, let plan):
            let p = try r.pointee.branch(plan)
            guard case .int = p else { throw mismatch("int", p) }
            return try r.pointee.int()
        case .value(let v):
            guard case .int(let i) = v else { throw mismatch("int", v) }
            return i
        }
    }

    /// An Avro double, or a float, int or long widened.
    public mutating func double() throws -> Double {
        switch try take("double") {
        case .binary(let r, let plan):
            switch try r.pointee.branch(plan) {
            case .double: return try r.pointee.double()
            case .float, .floatToDouble: return Double(try r.pointee.float())
            case .intToDouble: return Double(try r.pointee.int())
            case .longToDouble: return Double(try r.pointee.long())
            case let p: throw mismatch("double", p)
            }
        case .value(let v):
            guard let d = v.doubleValue else { throw mismatch("double", v) }
            return d
        }
    }

    public mutating func enumSymbol() throws -> String {
        switch try take("enum") {
        case .binary(let r, let plan):
            let p = try r.pointee.branch(plan)
            guard case .enumeration = p, case .enumSymbol(let s) = try r.pointee.read(p) else { throw mismatch("enum", p) }
            return s
        case .value(let v):
            guard case .enumSymbol(let s) = v else { throw mismatch("enum", v) }
            return s
        }
    }

    /// The datum as an `AvroValue` (any type).
    public mutating func value() throws -> AvroValue {
        switch try take("value") {
        case .binary(let r, let plan): return try r.pointee.read(plan)
        case .value(let v): return v
        }
    }

    /// A nested record built by `B`; nil when the datum is null (a union's null branch).
    public mutating func record<B: AvroRecordBuilder>(_ builder: B.Type) throws -> B.Record? {
        switch try take("record") {
        case .binary(let r, let plan):
            switch try r.pointee.branch(plan) {
            case .null: return nil
            case .record(let steps, let template, let defaulted):
                return try Self.fill(B(), steps: steps, template: template, defaulted: defaulted, reader: r).build()
            case let p: throw mismatch("record", p)
            }
        case .value(let v):
            switch v {
            case .null: return nil
            case .record(let fields): return try Self.fill(B(), fields: fields).build()
            default: throw mismatch("record", v)
            }
        }
    }

    /// Feeds a record's fields from the binary to `builder`; unread fields are stepped over.
    static func fill<B: AvroRecordBuilder>(_ builder: B, steps: [RecordStep], template: [AvroValue.Field], defaulted: [Int],
                                           reader r: UnsafeMutablePointer<AvroBinaryReader>) throws -> B {
        var b = builder
        for step in steps {
            switch step {
            case .read(let i, let p):
                var field = AvroFieldDecoder(.binary(r, p))
                try b.set(field: i, from: &field)
                if !field.consumed { try r.pointee.skip(plan: p) }
            case .skip(let t): try r.pointee.skip(t)
            }
        }
        for i in defaulted {
            var field = AvroFieldDecoder(.value(template[i].value))
            try b.set(field: i, from: &field)
        }
        return b
    }

    /// Feeds a record's fields from a value (a default) to `builder`.
    static func fill<B: AvroRecordBuilder>(_ builder: B, fields: [AvroValue.Field]) throws -> B {
        var b = builder
        for (i, f) in fields.enumerated() {
            var field = AvroFieldDecoder(.value(f.value))
            try b.set(field: i, from: &field)
        }
        return b
    }
}
