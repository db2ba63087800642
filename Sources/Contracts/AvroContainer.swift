import Foundation

/// Avro object container files (the Avro specification's "Object Container Files"): a header
/// (`Obj\u{1}`, metadata map with `avro.schema` and `avro.codec`, a 16-byte sync marker), then
/// blocks of `count`, `size`, `size` bytes of rows and the sync marker. Written with codec `null`,
/// so any Avro reader (fastavro, Spark, DuckDB) reads them.
public enum AvroContainer {
    /// The file header for rows of `schemaJSON`, with sync marker `sync`.
    public static func header(schemaJSON: String, sync: [UInt8]) -> [UInt8] {
        precondition(sync.count == 16, "the sync marker has 16 bytes")
        var w = AvroRowWriter()
        w.bytes += Array("Obj".utf8) + [1]
        w.long(2)  // a map block of two entries
        w.string("avro.schema")
        w.bytes(Array(schemaJSON.utf8))
        w.string("avro.codec")
        w.bytes(Array("null".utf8))
        w.long(0)  // end of the map
        w.bytes += sync
        return w.bytes
    }

    /// A block's prefix: its row count and byte size.
    public static func blockPrefix(records: Int, size: Int) -> [UInt8] {
        var w = AvroRowWriter()
        w.long(Int64(records))
        w.long(Int64(size))
        return w.bytes
    }

    /// A sync marker derived from `seed` (files of one writer may share one; it only has to be
    /// unlikely to occur in the data).
    public static func syncMarker(seed: String) -> [UInt8] {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var out: [UInt8] = []
        for round in 0..<2 {
            for b in Array(seed.utf8) + [UInt8(round)] { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            out += withUnsafeBytes(of: h.littleEndian) { Array($0) }
        }
        return out
    }

    /// Reads a container file: its schema (JSON) and every datum, decoded with that schema.
    public static func read(path: String) throws -> (schemaJSON: String, rows: [AvroValue]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AvroError(message: "cannot read Avro container file \(path)")
        }
        return try read(Array(data), name: path)
    }

    public static func read(_ bytes: [UInt8], name: String = "data") throws -> (schemaJSON: String, rows: [AvroValue]) {
        try bytes.withUnsafeBytes { raw in
            var r = AvroBinaryReader(raw)
            do {
                guard try Array(r.fixedBytes(4)) == Array("Obj".utf8) + [1] else {
                    throw AvroError(message: "\(name) is not an Avro container file (bad magic)")
                }
                var meta: [String: [UInt8]] = [:]
                while true {
                    var n = try r.long()
                    if n == 0 { break }
                    if n < 0 { n = -n; _ = try r.long() }
                    for _ in 0..<n {
                        let k = String(decoding: try r.fixedBytes(Int(try r.long())), as: UTF8.self)
                        meta[k] = Array(try r.fixedBytes(Int(try r.long())))
                    }
                }
                guard let schemaBytes = meta["avro.schema"] else { throw AvroError(message: "\(name): no avro.schema in the header") }
                let codec = meta["avro.codec"].map { String(decoding: $0, as: UTF8.self) } ?? "null"
                guard codec == "null" else { throw AvroError(message: "\(name): codec \(codec) is not supported here") }
                let sync = Array(try r.fixedBytes(16))
                let json = String(decoding: schemaBytes, as: UTF8.self)
                let type = try AvroSchemaParser.parse(json)
                let plan = try AvroResolution.plan(writer: type, reader: type)
                var rows: [AvroValue] = []
                while !r.atEnd {
                    let count = try r.long()
                    _ = try r.long()
                    for _ in 0..<count { rows.append(try r.read(plan)) }
                    guard Array(try r.fixedBytes(16)) == sync else { throw AvroError(message: "\(name): sync marker mismatch") }
                }
                return (json, rows)
            } catch is AvroBinaryReader.Truncated {
                throw AvroError(message: "\(name): the file ends inside a block")
            }
        }
    }
}

/// Appends Avro binary encodings of primitive values: for rows written field by field, without
/// building an `AvroValue` tree.
public struct AvroRowWriter {
    public var bytes: [UInt8] = []

    public init() {}

    @inlinable public mutating func long(_ v: Int64) {
        var u = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        while u >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: u) | 0x80)
            u >>= 7
        }
        bytes.append(UInt8(u))
    }

    @inlinable public mutating func double(_ v: Double) {
        let b = v.bitPattern.littleEndian
        withUnsafeBytes(of: b) { bytes.append(contentsOf: $0) }
    }

    @inlinable public mutating func bytes(_ b: [UInt8]) {
        long(Int64(b.count))
        bytes.append(contentsOf: b)
    }

    @inlinable public mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { u in
            long(Int64(u.count))
            bytes.append(contentsOf: u)
        }
    }

    /// A `["null", "double"]` union.
    @inlinable public mutating func optionalDouble(_ v: Double?) {
        if let v { long(1); double(v) } else { long(0) }
    }
}
