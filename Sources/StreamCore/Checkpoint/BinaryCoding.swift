/// The compact binary format of `BinaryEncoder` / `BinaryDecoder` (see docs/checkpoints.md).
///
/// Not self-describing: a value is read back with the type it was written with. Integers and floats
/// are fixed-width little-endian, strings are a LEB128 length and UTF-8 bytes, and containers are
/// framed so that any of them can be skipped without knowing its type:
///
/// - keyed container:   `u32 byteLength, u32 count, count × (varint keyLength, key UTF-8, u32 valueLength, value)`
///   (`valueLength == 0xFFFF_FFFF` marks `nil`); keys are `CodingKey.stringValue`.
/// - unkeyed container: `u32 byteLength, u32 count, count × value`
/// - `Optional` outside a keyed container: one tag byte, 0 (`nil`) or 1 followed by the wrapped value.
///
/// `byteLength` counts the bytes after the length field itself.
enum BinaryFormat {
    /// The value length of a keyed entry that holds `nil`.
    static let nilLength: UInt32 = 0xFFFF_FFFF
    /// Byte length and count.
    static let containerHeaderSize = 8
    /// Containers and values larger than this cannot be framed (u32 lengths).
    static let maxLength = Int(UInt32.max - 1)
}

/// Whether `type` is some `Optional<Wrapped>`: a pre-filter that spares the (slower) conformance
/// cast for every other type. Swift's type metadata starts with its kind, and `Optional`'s is
/// 0x202 (`MetadataKind::Optional`, part of the stable ABI); the round-trip tests would catch a
/// platform where that does not hold.
@inline(__always)
func _isOptionalType(_ type: Any.Type) -> Bool {
    unsafeBitCast(type, to: UnsafePointer<UInt>.self).pointee == 0x202
}

/// Lets the coders see through `Optional` without knowing its wrapped type statically.
protocol _BinaryOptionalEncodable {
    var _binaryIsNil: Bool { get }
    func _binaryEncodeWrapped(into encoder: _BinaryEncoderImpl) throws
}

extension Optional: _BinaryOptionalEncodable where Wrapped: Encodable {
    var _binaryIsNil: Bool { self == nil }
    func _binaryEncodeWrapped(into encoder: _BinaryEncoderImpl) throws {
        try encoder.encodeValue(self!)
    }
}

protocol _BinaryOptionalDecodable {
    static var _binaryNil: Self { get }
    static func _binaryDecodeWrapped(from decoder: _BinaryDecoderImpl) throws -> Self
}

extension Optional: _BinaryOptionalDecodable where Wrapped: Decodable {
    static var _binaryNil: Self { nil }
    static func _binaryDecodeWrapped(from decoder: _BinaryDecoderImpl) throws -> Self {
        .some(try decoder.decodeValue(Wrapped.self))
    }
}

/// A coding key rebuilt from its stored string (for `allKeys` and error paths).
struct _BinaryAnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; intValue = Int(stringValue) }
    init(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
    init(index: Int) { stringValue = "Index \(index)"; intValue = index }
}

extension DecodingError {
    /// The same error with `key` put in front of its coding path (errors bubble up and collect
    /// their path on the way, so the success path keeps no path at all).
    func prefixed(with key: any CodingKey) -> DecodingError {
        switch self {
        case .dataCorrupted(let c):
            return .dataCorrupted(c.prefixed(key))
        case .keyNotFound(let k, let c):
            return .keyNotFound(k, c.prefixed(key))
        case .typeMismatch(let t, let c):
            return .typeMismatch(t, c.prefixed(key))
        case .valueNotFound(let t, let c):
            return .valueNotFound(t, c.prefixed(key))
        @unknown default:
            return self
        }
    }
}

extension DecodingError.Context {
    fileprivate func prefixed(_ key: any CodingKey) -> DecodingError.Context {
        DecodingError.Context(codingPath: [key] + codingPath, debugDescription: debugDescription,
                              underlyingError: underlyingError)
    }
}

extension EncodingError {
    func prefixed(with key: any CodingKey) -> EncodingError {
        switch self {
        case .invalidValue(let v, let c):
            return .invalidValue(v, EncodingError.Context(codingPath: [key] + c.codingPath,
                                                          debugDescription: c.debugDescription,
                                                          underlyingError: c.underlyingError))
        @unknown default:
            return self
        }
    }
}
