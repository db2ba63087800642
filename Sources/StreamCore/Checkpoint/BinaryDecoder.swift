#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decodes what `BinaryEncoder` wrote, given the same type. Truncated or garbled input gives a
/// `DecodingError` (never a crash): every read is bounds-checked against the enclosing frame.
///
/// Keeps its scratch state between calls: use one decoder per thread; it is not thread-safe.
public final class BinaryDecoder {
    private let impl = _BinaryDecoderImpl(UnsafeRawBufferPointer(start: nil, count: 0))

    public init() {}

    /// Decodes a `T` that fills `bytes` exactly.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a `T` that fills `bytes` exactly.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: ArraySlice<UInt8>) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a `T` that fills `bytes` exactly.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        var offset = 0
        let value = try decode(type, from: bytes, at: &offset)
        guard offset == bytes.count else {
            throw _BinaryDecoderImpl.corrupted("\(bytes.count - offset) trailing bytes after a \(T.self)")
        }
        return value
    }

    /// Decodes a `T` starting at `offset` and moves `offset` past it (for buffers holding several
    /// values one after another).
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer, at offset: inout Int) throws -> T {
        guard offset >= 0, offset <= bytes.count else { throw _BinaryDecoderImpl.corrupted("offset \(offset) outside the input") }
        let impl: _BinaryDecoderImpl
        if self.impl.inUse {
            impl = _BinaryDecoderImpl(bytes)   // a type's init(from:) re-entered this decoder
        } else {
            impl = self.impl
            impl.reset(bytes)
        }
        impl.inUse = true
        defer { impl.inUse = false }
        impl.cursor = offset
        let value = try impl.decodeValue(type)
        offset = impl.cursor
        return value
    }
}

final class _BinaryDecoderImpl: Decoder {
    /// Where a keyed container at some nesting depth last found a key: lookups resume there, so
    /// decoding fields in the order they were written is linear.
    struct Hint {
        var start: Int
        var position: Int
        var index: Int
    }

    @exclusivity(unchecked) var base: UnsafeRawPointer
    @exclusivity(unchecked) var size: Int
    var inUse = false
    /// Where the next value starts, and the end of the frame it must stay within.
    @exclusivity(unchecked) var cursor = 0
    @exclusivity(unchecked) var limit: Int
    /// Nesting depth of the value being decoded (indexes `hints`).
    @exclusivity(unchecked) var depth = 0
    @exclusivity(unchecked) var hints: [Hint] = []
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ buffer: UnsafeRawBufferPointer) {
        // A dangling-but-never-read base for an empty buffer keeps reads branch-free.
        base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 16)!
        size = buffer.count
        limit = buffer.count
    }

    func reset(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 16)!
        size = buffer.count
        limit = buffer.count
        cursor = 0
        depth = 0
        for i in hints.indices { hints[i].start = -1 }
    }

    // MARK: errors

    static func corrupted(_ message: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: [], debugDescription: "BinaryDecoder: " + message))
    }

    static func truncated(_ need: Int, at pos: Int, limit: Int) -> DecodingError {
        corrupted("truncated or garbled input: needs \(need) bytes at offset \(pos), the enclosing frame ends at \(limit)")
    }

    // MARK: reading (bounds-checked against `limit`)

    @inline(__always) func check(_ n: Int, at pos: Int, limit: Int) throws {
        guard n >= 0, pos >= 0, pos <= limit, limit - pos >= n else { throw Self.truncated(n, at: pos, limit: limit) }
    }

    @inline(__always) func load<I: FixedWidthInteger>(_ type: I.Type, at pos: Int, limit: Int) throws -> I {
        try check(MemoryLayout<I>.size, at: pos, limit: limit)
        return I(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: I.self))
    }

    /// A LEB128 length; returns the value and the position after it.
    @inline(__always) func varint(at pos: Int, limit: Int) throws -> (Int, Int) {
        var p = pos
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            try check(1, at: p, limit: limit)
            let b = base.load(fromByteOffset: p, as: UInt8.self)
            p += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { break }
            shift += 7
            guard shift < 35 else { throw Self.corrupted("length varint longer than 5 bytes at offset \(pos)") }
        }
        guard result <= UInt64(BinaryFormat.maxLength) else { throw Self.corrupted("length \(result) at offset \(pos) too large") }
        return (Int(result), p)
    }

    func string(at pos: Int, limit: Int) throws -> (String, Int) {
        let (n, p) = try varint(at: pos, limit: limit)
        try check(n, at: p, limit: limit)
        let utf8 = UnsafeBufferPointer(start: (base + p).assumingMemoryBound(to: UInt8.self), count: n)
        guard let s = String(validating: utf8, as: UTF8.self) else {
            throw Self.corrupted("invalid UTF-8 in a string at offset \(p)")
        }
        return (s, p + n)
    }

    func bool(at pos: Int, limit: Int) throws -> Bool {
        let b = try load(UInt8.self, at: pos, limit: limit)
        guard b <= 1 else { throw Self.corrupted("byte \(b) at offset \(pos) is not a Bool") }
        return b == 1
    }

    // Reads at `cursor` and advances it.
    @inline(__always) func next<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let v = try load(type, at: cursor, limit: limit)
        cursor += MemoryLayout<I>.size
        return v
    }

    func nextString() throws -> String {
        let (s, p) = try string(at: cursor, limit: limit)
        cursor = p
        return s
    }

    /// A byte blob: varint length, then the bytes.
    func nextBlob() throws -> [UInt8] {
        let (n, p) = try varint(at: cursor, limit: limit)
        try check(n, at: p, limit: limit)
        cursor = p + n
        return [UInt8](UnsafeRawBufferPointer(start: base + p, count: n))
    }

    func nextBool() throws -> Bool {
        let b = try bool(at: cursor, limit: limit)
        cursor += 1
        return b
    }

    /// Reads a container header at `cursor`: returns where its body starts, where it ends, and
    /// its element count, and moves `cursor` past the whole container.
    func openContainer() throws -> (body: Int, end: Int, count: Int) {
        let pos = cursor
        let length = Int(try load(UInt32.self, at: pos, limit: limit))
        try check(length, at: pos + 4, limit: limit)
        guard length >= 4 else { throw Self.corrupted("container at offset \(pos) shorter than its header") }
        let count = Int(try load(UInt32.self, at: pos + 4, limit: limit))
        let body = pos + BinaryFormat.containerHeaderSize
        let end = pos + 4 + length
        // Every element takes at least one byte, so a garbled count cannot make a reader spin.
        guard count <= end - body else {
            throw Self.corrupted("container at offset \(pos) claims \(count) elements in \(end - body) bytes")
        }
        cursor = end
        return (body, end, count)
    }

    // MARK: values

    /// Decodes a `T` at `cursor` (Optionals as a tag byte and the wrapped value).
    @inline(__always)
    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == Int64.self { return unsafeBitCast(try next(Int64.self), to: T.self) }
        if T.self == Int.self { return unsafeBitCast(Int(try next(Int64.self)), to: T.self) }
        if T.self == UInt64.self { return unsafeBitCast(try next(UInt64.self), to: T.self) }
        if T.self == Int32.self { return unsafeBitCast(try next(Int32.self), to: T.self) }
        if T.self == Double.self { return unsafeBitCast(Double(bitPattern: try next(UInt64.self)), to: T.self) }
        if T.self == Bool.self { return unsafeBitCast(try nextBool(), to: T.self) }
        if T.self == UInt8.self { return unsafeBitCast(try next(UInt8.self), to: T.self) }
        if T.self == String.self { return try nextString() as! T }
        if T.self == [UInt8].self { return try nextBlob() as! T }
        if _isOptionalType(T.self), let optional = T.self as? any _BinaryOptionalDecodable.Type {
            let pos = cursor
            switch try next(UInt8.self) {
            case 0: return optional._binaryNil as! T
            case 1: return try optional._binaryDecodeWrapped(from: self) as! T
            case let tag: throw Self.corrupted("byte \(tag) at offset \(pos) is not an Optional tag")
            }
        }
        let start = cursor
        let value = try T(from: self)
        if cursor == start { skipUnreadEmptyContainer() }
        return value
    }

    /// Synthesized `Codable` for a type without stored properties encodes an empty keyed container
    /// but decodes without asking for one: skip that container so the next value lines up.
    func skipUnreadEmptyContainer() {
        guard limit - cursor >= 8,
              base.loadUnaligned(fromByteOffset: cursor, as: UInt64.self) == UInt64(4).littleEndian else { return }
        cursor += 8
    }

    /// Decodes a `T` in `[start, end)` one level deeper, leaving the decoder's position as it was.
    @inline(__always)
    func decodeNested<T: Decodable>(_ type: T.Type, from start: Int, to end: Int, depth: Int) throws -> (T, Int) {
        let saved = (cursor, limit, self.depth)
        defer { (cursor, limit, self.depth) = saved }
        cursor = start
        limit = end
        self.depth = depth
        let value = try decodeValue(type)
        return (value, cursor)
    }

    // MARK: Decoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let (body, end, count) = try openContainer()
        if hints.count <= depth { hints.append(contentsOf: repeatElement(Hint(start: -1, position: 0, index: 0), count: depth + 1 - hints.count)) }
        hints[depth] = Hint(start: body, position: body, index: 0)
        return KeyedDecodingContainer(_BinaryKeyedDecodingContainer<Key>(impl: self, body: body, end: end, count: count, depth: depth))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (body, end, count) = try openContainer()
        return _BinaryUnkeyedDecodingContainer(impl: self, position: body, end: end, count: count, depth: depth)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        _BinarySingleValueDecodingContainer(impl: self)
    }
}

/// Where one keyed entry's value lies; `length` is -1 for nil.
struct _BinaryEntry {
    var value: Int
    var length: Int
}

struct _BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    typealias Entry = _BinaryEntry

    let impl: _BinaryDecoderImpl
    let body: Int
    let end: Int
    let count: Int
    let depth: Int
    var codingPath: [any CodingKey] { [] }

    /// Reads the entry at `pos`: key bytes, value position and length, and the next entry's position.
    @inline(__always)
    func entry(at pos: Int) throws -> (keyStart: Int, keyLength: Int, entry: Entry, next: Int) {
        let (keyLength, keyStart) = try impl.varint(at: pos, limit: end)
        try impl.check(keyLength, at: keyStart, limit: end)
        let lengthPos = keyStart + keyLength
        let raw = try impl.load(UInt32.self, at: lengthPos, limit: end)
        if raw == BinaryFormat.nilLength {
            return (keyStart, keyLength, Entry(value: lengthPos + 4, length: -1), lengthPos + 4)
        }
        let length = Int(raw)
        try impl.check(length, at: lengthPos + 4, limit: end)
        return (keyStart, keyLength, Entry(value: lengthPos + 4, length: length), lengthPos + 4 + length)
    }

    /// The entry for `key`, looked up from where the last lookup left off.
    func find(_ key: Key) throws -> Entry? { try find(name: key.stringValue) }

    func find(name: String) throws -> Entry? {
        guard count > 0 else { return nil }
        var name = name
        return try name.withUTF8 { want -> Entry? in
            var hint = impl.hints[depth]
            if hint.start != body || hint.index >= count { hint = .init(start: body, position: body, index: 0) }
            var pos = hint.position, index = hint.index
            for _ in 0..<count {
                let e = try entry(at: pos)
                if e.keyLength == want.count,
                   want.count == 0 || memcmp(want.baseAddress!, impl.base + e.keyStart, want.count) == 0 {
                    impl.hints[depth] = .init(start: body, position: e.next, index: index + 1)
                    return e.entry
                }
                index += 1
                pos = e.next
                if index == count { index = 0; pos = body }
            }
            return nil
        }
    }

    func require(_ key: Key) throws -> Entry {
        guard let e = try find(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: [], debugDescription: "BinaryDecoder: no entry for key '\(key.stringValue)'"))
        }
        return e
    }

    func presentEntry<T>(_ key: Key, _ type: T.Type) throws -> Entry {
        let e = try require(key)
        guard e.length >= 0 else {
            throw DecodingError.valueNotFound(type, .init(codingPath: [key], debugDescription: "BinaryDecoder: '\(key.stringValue)' is nil"))
        }
        return e
    }

    func present<T>(_ key: Key, _ type: T.Type, size: Int) throws -> Int {
        let e = try presentEntry(key, type)
        guard size < 0 || e.length == size else {
            throw DecodingError.typeMismatch(type, .init(codingPath: [key], debugDescription:
                "BinaryDecoder: '\(key.stringValue)' holds \(e.length) bytes, a \(type) takes \(size)"))
        }
        return e.value
    }

    @inline(__always) func fixed<I: FixedWidthInteger>(_ type: I.Type, _ key: Key) throws -> I {
        let pos = try present(key, type, size: MemoryLayout<I>.size)
        return try impl.load(type, at: pos, limit: end)
    }

    var allKeys: [Key] {
        var keys: [Key] = []
        var pos = body
        for _ in 0..<count {
            guard let e = try? entry(at: pos) else { break }
            let bytes = UnsafeBufferPointer(start: (impl.base + e.keyStart).assumingMemoryBound(to: UInt8.self), count: e.keyLength)
            if let s = String(validating: bytes, as: UTF8.self), let k = Key(stringValue: s) { keys.append(k) }
            pos = e.next
        }
        return keys
    }

    func contains(_ key: Key) -> Bool { (try? find(key)) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try require(key).length < 0 }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        try impl.bool(at: try present(key, type, size: 1), limit: end)
    }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        let e = try presentEntry(key, type)
        do {
            let (s, next) = try impl.string(at: e.value, limit: e.value + e.length)
            try impl.checkConsumed(next, e, T: type)
            return s
        } catch let error as DecodingError {
            throw error.prefixed(with: key)
        }
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { Double(bitPattern: try fixed(UInt64.self, key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(bitPattern: try fixed(UInt32.self, key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { Int(try fixed(Int64.self, key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try fixed(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try fixed(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try fixed(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try fixed(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { UInt(try fixed(UInt64.self, key)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try fixed(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try fixed(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try fixed(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try fixed(type, key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let e = try require(key)
        do {
            if _isOptionalType(T.self), let optional = T.self as? any _BinaryOptionalDecodable.Type {
                // In a keyed entry nil is the length marker; a present value is stored unwrapped.
                if e.length < 0 { return optional._binaryNil as! T }
                let (value, next) = try impl.withFrame(e.value, e.value + e.length, depth: depth + 1) {
                    (try optional._binaryDecodeWrapped(from: impl) as! T, impl.cursor)
                }
                try impl.checkConsumed(next, e, T: type)
                return value
            }
            guard e.length >= 0 else {
                throw DecodingError.valueNotFound(type, .init(codingPath: [], debugDescription: "BinaryDecoder: '\(key.stringValue)' is nil"))
            }
            let (value, next) = try impl.decodeNested(type, from: e.value, to: e.value + e.length, depth: depth + 1)
            try impl.checkConsumed(next, e, T: type)
            return value
        } catch let error as DecodingError {
            throw error.prefixed(with: key)
        }
    }

    /// Same as `decode(T?.self, forKey:)`, so a present `.some(nil)` of a nested Optional survives.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard try find(key) != nil else { return nil }
        return try decode(T?.self, forKey: key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let e = try presentEntry(key, KeyedDecodingContainer<NestedKey>.self)
        return try impl.withFrame(e.value, e.value + e.length, depth: depth + 1) { try impl.container(keyedBy: type) }
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let e = try presentEntry(key, (any UnkeyedDecodingContainer).self)
        return try impl.withFrame(e.value, e.value + e.length, depth: depth + 1) { try impl.unkeyedContainer() }
    }

    func superDecoder() throws -> any Decoder { try superDecoder(name: "super") }

    func superDecoder(forKey key: Key) throws -> any Decoder { try superDecoder(name: key.stringValue) }

    private func superDecoder(name: String) throws -> any Decoder {
        guard let e = try find(name: name), e.length >= 0 else {
            throw DecodingError.keyNotFound(_BinaryAnyKey(stringValue: name), .init(codingPath: [], debugDescription: "BinaryDecoder: no entry '\(name)'"))
        }
        // A fresh decoder over the entry alone, so the parent's position is untouched.
        let sub = _BinaryDecoderImpl(UnsafeRawBufferPointer(start: impl.base + e.value, count: e.length))
        return sub
    }
}

extension _BinaryDecoderImpl {
    /// A keyed entry must be read to its end: a shorter read means the type does not match.
    func checkConsumed<T>(_ next: Int, _ e: _BinaryEntry, T type: T.Type) throws {
        guard next == e.value + e.length else {
            throw DecodingError.typeMismatch(type, .init(codingPath: [], debugDescription:
                "BinaryDecoder: a \(type) read \(next - e.value) of the entry's \(e.length) bytes"))
        }
    }

    /// Runs `body` with the decoder positioned at `start`, bounded by `end`, at `depth`; restores
    /// the position afterwards.
    @inline(__always)
    func withFrame<R>(_ start: Int, _ end: Int, depth: Int, _ body: () throws -> R) throws -> R {
        let saved = (cursor, limit, self.depth)
        defer { (cursor, limit, self.depth) = saved }
        cursor = start
        limit = end
        self.depth = depth
        return try body()
    }
}

struct _BinaryUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let impl: _BinaryDecoderImpl
    var position: Int
    let end: Int
    let total: Int
    let depth: Int
    var currentIndex = 0
    var codingPath: [any CodingKey] { [] }
    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    init(impl: _BinaryDecoderImpl, position: Int, end: Int, count: Int, depth: Int) {
        self.impl = impl
        self.position = position
        self.end = end
        self.total = count
        self.depth = depth
    }

    @inline(__always) mutating func nextElement<T: Decodable>(_ type: T.Type) throws -> T {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: [_BinaryAnyKey(index: currentIndex)],
                                                          debugDescription: "BinaryDecoder: unkeyed container has only \(total) elements"))
        }
        do {
            let (value, next) = try impl.decodeNested(type, from: position, to: end, depth: depth + 1)
            position = next
            currentIndex += 1
            return value
        } catch let e as DecodingError {
            throw e.prefixed(with: _BinaryAnyKey(index: currentIndex))
        }
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        try impl.check(1, at: position, limit: end)
        guard impl.base.load(fromByteOffset: position, as: UInt8.self) == 0 else { return false }
        position += 1
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try nextElement(type) }
    mutating func decode(_ type: String.Type) throws -> String { try nextElement(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try nextElement(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { Float(bitPattern: try nextElement(UInt32.self)) }
    mutating func decode(_ type: Int.Type) throws -> Int { try nextElement(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { Int8(bitPattern: try nextElement(UInt8.self)) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { Int16(bitPattern: try nextElement(UInt16.self)) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try nextElement(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try nextElement(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { UInt(try nextElement(UInt64.self)) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try nextElement(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try nextElement(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try nextElement(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try nextElement(type) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try nextElement(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let impl = self.impl
        return try nested { try impl.container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let impl = self.impl
        return try nested { try impl.unkeyedContainer() }
    }

    private mutating func nested<R>(_ make: () throws -> R) throws -> R {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(R.self, .init(codingPath: [], debugDescription: "BinaryDecoder: unkeyed container is at its end"))
        }
        let impl = self.impl
        let (container, next) = try impl.withFrame(position, end, depth: depth + 1) { (try make(), impl.cursor) }
        position = next
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        // The element is decoded through the same decoder at its position.
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Decoder.self, .init(codingPath: [], debugDescription: "BinaryDecoder: unkeyed container is at its end"))
        }
        let sub = _BinaryDecoderImpl(UnsafeRawBufferPointer(start: impl.base + position, count: end - position))
        position = end
        currentIndex = total
        return sub
    }
}

struct _BinarySingleValueDecodingContainer: SingleValueDecodingContainer {
    let impl: _BinaryDecoderImpl
    var codingPath: [any CodingKey] { [] }

    func decodeNil() -> Bool {
        guard impl.cursor < impl.limit, impl.base.load(fromByteOffset: impl.cursor, as: UInt8.self) == 0 else { return false }
        impl.cursor += 1
        return true
    }

    func decode(_ type: Bool.Type) throws -> Bool { try impl.nextBool() }
    func decode(_ type: String.Type) throws -> String { try impl.nextString() }
    func decode(_ type: Double.Type) throws -> Double { Double(bitPattern: try impl.next(UInt64.self)) }
    func decode(_ type: Float.Type) throws -> Float { Float(bitPattern: try impl.next(UInt32.self)) }
    func decode(_ type: Int.Type) throws -> Int { Int(try impl.next(Int64.self)) }
    func decode(_ type: Int8.Type) throws -> Int8 { try impl.next(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try impl.next(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try impl.next(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try impl.next(type) }
    func decode(_ type: UInt.Type) throws -> UInt { UInt(try impl.next(UInt64.self)) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try impl.next(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try impl.next(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try impl.next(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try impl.next(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try impl.decodeValue(type) }
}
