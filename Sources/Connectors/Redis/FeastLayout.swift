/// Feast's Redis online-store layout (Feast 0.67, entity key serialization version 3), byte for
/// byte: a row written with these encodings is returned by Feast's `get_online_features`.
/// See docs/sinks.md for the layout.
public enum FeastLayout {
    /// The Redis key of an entity's hash: serialized entity key + project name, no separator.
    public static func hashKey(_ entity: FeastEntityKey, project: String) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(48 + project.utf8.count)  // a usual key in one allocation
        entity.serialize(into: &key)
        key.append(contentsOf: project.utf8)
        return key
    }

    /// A feature's hash field: murmur3_x86_32("<view>:<feature>", seed 0), little-endian.
    public static func featureField(view: String, feature: String) -> [UInt8] {
        littleEndian(murmur3_x86_32(Array("\(view):\(feature)".utf8), seed: 0))
    }

    /// The hash field holding a view's event time: the literal `_ts:<view>`.
    public static func timestampField(view: String) -> [UInt8] {
        Array("_ts:\(view)".utf8)
    }

    /// MurmurHash3 x86 32-bit, as Python's `mmh3.hash` that Feast uses (as an unsigned value).
    public static func murmur3_x86_32(_ data: [UInt8], seed: UInt32) -> UInt32 {
        let c1: UInt32 = 0xcc9e_2d51, c2: UInt32 = 0x1b87_3593
        var h = seed
        let blocks = data.count / 4
        for i in 0..<blocks {
            var k = UInt32(data[4 * i]) | UInt32(data[4 * i + 1]) << 8 | UInt32(data[4 * i + 2]) << 16
                | UInt32(data[4 * i + 3]) << 24
            k = (k &* c1).rotatedLeft(15) &* c2
            h ^= k
            h = h.rotatedLeft(13) &* 5 &+ 0xe654_6b64
        }
        var k: UInt32 = 0
        let tail = blocks * 4
        switch data.count & 3 {
        case 3: k ^= UInt32(data[tail + 2]) << 16; fallthrough
        case 2: k ^= UInt32(data[tail + 1]) << 8; fallthrough
        case 1:
            k ^= UInt32(data[tail])
            h ^= (k &* c1).rotatedLeft(15) &* c2
        default: break
        }
        h ^= UInt32(truncatingIfNeeded: data.count)
        h ^= h >> 16
        h = h &* 0x85eb_ca6b
        h ^= h >> 13
        h = h &* 0xc2b2_ae35
        h ^= h >> 16
        return h
    }

    static func littleEndian<I: FixedWidthInteger>(_ value: I) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// `value`'s little-endian bytes appended to `out`.
    static func append<I: FixedWidthInteger>(littleEndian value: I, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

extension UInt32 {
    fileprivate func rotatedLeft(_ n: UInt32) -> UInt32 { (self << n) | (self >> (32 - n)) }
}

/// The value of one join key of an entity.
public enum FeastEntityValue: Sendable, Hashable {
    case string(String)
    case int64(Int64)
    case int32(Int32)
    case bytes([UInt8])

    /// Feast's `ValueType` number, the length and the value's bytes, as `serialize_entity_key`
    /// writes them.
    func serialize(into out: inout [UInt8]) {
        func put<I: FixedWidthInteger>(_ v: I) { FeastLayout.append(littleEndian: v, to: &out) }
        switch self {
        case .bytes(let b): put(UInt32(1)); put(UInt32(b.count)); out.append(contentsOf: b)
        case .string(let s): put(UInt32(2)); put(UInt32(s.utf8.count)); out.append(contentsOf: s.utf8)
        case .int32(let i): put(UInt32(3)); put(UInt32(4)); put(i)
        case .int64(let i): put(UInt32(4)); put(UInt32(8)); put(i)
        }
    }
}

/// An entity key: join key names and their values (e.g. `card_id = "c1"`).
public struct FeastEntityKey: Sendable, Hashable {
    /// One join key (most entities) is kept without a dictionary: an online sink makes a key per
    /// record, and this way that allocates nothing.
    private enum Storage: Sendable, Hashable {
        case one(String, FeastEntityValue)
        case many([String: FeastEntityValue])  // two or more
    }
    private var storage: Storage

    public var joinKeys: [String: FeastEntityValue] {
        get {
            switch storage {
            case .one(let name, let value): [name: value]
            case .many(let keys): keys
            }
        }
        set { self = FeastEntityKey(newValue) }
    }

    public init(_ joinKeys: [String: FeastEntityValue]) {
        precondition(!joinKeys.isEmpty, "an entity key has at least one join key")
        if joinKeys.count == 1, let (name, value) = joinKeys.first {
            storage = .one(name, value)
        } else {
            storage = .many(joinKeys)
        }
    }

    /// An entity with one join key.
    public init(_ name: String, _ value: FeastEntityValue) {
        storage = .one(name, value)
    }

    /// Feast's `serialize_entity_key`, version 3: the count, the names (sorted), then the values.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        serialize(into: &out)
        return out
    }

    /// `serialized()` appended to `out` (one buffer, no intermediate arrays: the online sink keys
    /// every update with it).
    public func serialize(into out: inout [UInt8]) {
        func put(_ v: UInt32) { FeastLayout.append(littleEndian: v, to: &out) }
        func putName(_ name: String) {
            put(2)  // STRING
            put(UInt32(name.utf8.count))
            out.append(contentsOf: name.utf8)
        }
        switch storage {
        case .one(let name, let value):
            put(1)
            putName(name)
            value.serialize(into: &out)
        case .many(let joinKeys):
            let names = joinKeys.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            put(UInt32(names.count))
            for name in names { putName(name) }
            for name in names { joinKeys[name]!.serialize(into: &out) }
        }
    }
}

/// A feature value, serialized as Feast's `feast.types.Value` protobuf message.
public enum FeastValue: Sendable, Equatable {
    case bytes([UInt8])
    case string(String)
    case int32(Int32)
    case int64(Int64)
    case double(Double)
    case float(Float)
    case bool(Bool)
    case unixTimestamp(Int64)
    /// No value: an empty message, which Feast reads as None.
    case null

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        serialize(into: &out)
        return out
    }

    /// The number of bytes `serialize(into:)` appends.
    var serializedCount: Int {
        switch self {
        case .bytes(let b): 1 + Protobuf.varintCount(UInt64(b.count)) + b.count
        case .string(let s): 1 + Protobuf.varintCount(UInt64(s.utf8.count)) + s.utf8.count
        case .int32(let i): 1 + Protobuf.varintCount(UInt64(bitPattern: Int64(i)))
        case .int64(let i): 1 + Protobuf.varintCount(UInt64(bitPattern: i))
        case .double: 9
        case .float: 5
        case .bool: 2
        case .unixTimestamp(let t): 1 + Protobuf.varintCount(UInt64(bitPattern: t))
        case .null: 0
        }
    }

    /// Appends the protobuf bytes to `out`.
    public func serialize(into out: inout [UInt8]) {
        switch self {
        case .bytes(let b):
            out.append(0x0a); Protobuf.appendVarint(UInt64(b.count), to: &out); out += b
        case .string(let s):
            out.append(0x12); Protobuf.appendVarint(UInt64(s.utf8.count), to: &out); out.append(contentsOf: s.utf8)
        case .int32(let i):  // int32 negatives are sign-extended to 10 bytes, as protobuf does
            out.append(0x18); Protobuf.appendVarint(UInt64(bitPattern: Int64(i)), to: &out)
        case .int64(let i):
            out.append(0x20); Protobuf.appendVarint(UInt64(bitPattern: i), to: &out)
        case .double(let d):
            out.append(0x29); FeastLayout.append(littleEndian: d.bitPattern, to: &out)
        case .float(let f):
            out.append(0x35); FeastLayout.append(littleEndian: f.bitPattern, to: &out)
        case .bool(let b):
            out.append(0x38); out.append(b ? 1 : 0)
        case .unixTimestamp(let t):
            out.append(0x40); Protobuf.appendVarint(UInt64(bitPattern: t), to: &out)
        case .null:
            break
        }
    }
}

/// An event time as `google.protobuf.Timestamp`: seconds since the epoch and nanoseconds in
/// `0..<1_000_000_000`.
public struct FeastTimestamp: Sendable, Hashable, Comparable {
    public var seconds: Int64
    public var nanos: Int32

    public init(seconds: Int64, nanos: Int32 = 0) {
        precondition((0..<1_000_000_000).contains(nanos), "nanos must be in 0..<1_000_000_000")
        self.seconds = seconds
        self.nanos = nanos
    }

    /// From epoch milliseconds, the unit of Tributary's event times (floor division, so negative
    /// times keep non-negative nanos).
    public init(milliseconds: Int64) {
        let (q, r) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        self.init(seconds: r < 0 ? q - 1 : q, nanos: Int32(r < 0 ? r + 1000 : r) * 1_000_000)
    }

    public static func < (a: FeastTimestamp, b: FeastTimestamp) -> Bool {
        (a.seconds, a.nanos) < (b.seconds, b.nanos)
    }

    /// The protobuf bytes: `0x08` + seconds varint, `0x10` + nanos varint, zero parts omitted.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        serialize(into: &out)
        return out
    }

    /// The number of bytes `serialize(into:)` appends.
    var serializedCount: Int {
        (seconds != 0 ? 1 + Protobuf.varintCount(UInt64(bitPattern: seconds)) : 0)
            + (nanos != 0 ? 1 + Protobuf.varintCount(UInt64(nanos)) : 0)
    }

    /// Appends the protobuf bytes to `out`.
    public func serialize(into out: inout [UInt8]) {
        if seconds != 0 { out.append(0x08); Protobuf.appendVarint(UInt64(bitPattern: seconds), to: &out) }
        if nanos != 0 { out.append(0x10); Protobuf.appendVarint(UInt64(nanos), to: &out) }
    }
}

/// One row of a feature view: an entity, its event time and all of the view's features (Feast
/// keeps one timestamp per view, so a row always carries every feature of its view).
public struct FeastRow: Sendable {
    public var entity: FeastEntityKey
    public var eventTime: FeastTimestamp
    public var features: [(name: String, value: FeastValue)]

    public init(entity: FeastEntityKey, eventTime: FeastTimestamp, features: [(name: String, value: FeastValue)]) {
        self.entity = entity
        self.eventTime = eventTime
        self.features = features
    }
}

enum Protobuf {
    /// The bytes of `value` as a varint (1...10).
    static func varintCount(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
