/// Encodes `Encodable` values into the compact binary format described in `BinaryFormat`
/// (docs/checkpoints.md): fixed-width little-endian numbers, length-prefixed strings, framed
/// containers. Read back with `BinaryDecoder` and the same type. No Foundation.
///
/// An encoder keeps its scratch buffer between calls, so encoding many small values (one per key
/// in a snapshot) allocates little: use one encoder per thread; it is not thread-safe.
///
/// Containers must be used in nesting order, as synthesized `Codable` code does: once a container
/// has been written after one of its nested containers, that nested container is closed and writing
/// to it again throws `EncodingError.invalidValue`. Asking one `Encoder` for two top-level
/// containers gives two values, not one merged container.
public final class BinaryEncoder {
    private let impl = _BinaryEncoderImpl()

    public init() {}

    /// The encoding of `value`.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try withImpl { impl in
            try impl.encodeTopLevel(value)
            return impl.copyBytes()
        }
    }

    /// Appends the encoding of `value` to `buffer` (several values can share one buffer and be
    /// read back in order with `BinaryDecoder.decode(_:from:at:)`).
    public func encode<T: Encodable>(_ value: T, appendingTo buffer: inout [UInt8]) throws {
        try withImpl { impl in
            try impl.encodeTopLevel(value)
            impl.appendBytes(to: &buffer)
        }
    }

    /// The shared scratch encoder, or a fresh one if a value's `encode(to:)` re-enters.
    private func withImpl<R>(_ body: (_BinaryEncoderImpl) throws -> R) rethrows -> R {
        if impl.inUse { return try body(_BinaryEncoderImpl()) }
        impl.inUse = true
        defer { impl.inUse = false }
        return try body(impl)
    }
}

final class _BinaryEncoderImpl: Encoder {
    /// An open container (or a keyed entry whose value is still being written by a nested encoder).
    struct Frame {
        /// Position of the container's byte-length field; -1 for a bare entry.
        var start: Int
        var count: UInt32
        /// Position of the enclosing keyed entry's value-length field, or -1.
        var lengthSlot: Int
        var id: UInt32
    }

    /// The output so far: `size` bytes at `buffer`.
    @exclusivity(unchecked) var buffer: UnsafeMutableRawPointer
    @exclusivity(unchecked) var capacity: Int
    @exclusivity(unchecked) var size = 0
    @exclusivity(unchecked) var frames: [Frame] = []
    @exclusivity(unchecked) var nextFrameId: UInt32 = 0
    var inUse = false
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init() {
        capacity = 256
        buffer = .allocate(byteCount: capacity, alignment: 16)
        frames.reserveCapacity(8)
    }

    deinit { buffer.deallocate() }

    func copyBytes() -> [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: buffer, count: size))
    }

    func appendBytes(to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: size))
    }

    func encodeTopLevel<T: Encodable>(_ value: T) throws {
        size = 0
        frames.removeAll(keepingCapacity: true)
        try encodeValue(value)
        try closeFrames(above: -1)
        // Do not keep a huge scratch buffer alive after one big value.
        if capacity > 1 << 20 && size < capacity / 4 { shrink() }
    }

    // MARK: writing

    @inline(__always) func reserve(_ n: Int) {
        if size + n > capacity { grow(size + n) }
    }

    func grow(_ needed: Int) {
        var c = capacity * 2
        while c < needed { c *= 2 }
        let b = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 16)
        b.copyMemory(from: buffer, byteCount: size)
        buffer.deallocate()
        buffer = b
        capacity = c
    }

    func shrink() {
        buffer.deallocate()
        capacity = 256
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    @inline(__always) func append(_ b: UInt8) {
        reserve(1)
        buffer.storeBytes(of: b, toByteOffset: size, as: UInt8.self)
        size += 1
    }

    @inline(__always) func appendFixed<I: FixedWidthInteger>(_ v: I) {
        reserve(MemoryLayout<I>.size)
        buffer.storeBytes(of: v.littleEndian, toByteOffset: size, as: I.self)
        size += MemoryLayout<I>.size
    }

    @inline(__always) func appendVarint(_ v: UInt64) {
        reserve(10)
        var v = v
        while v >= 0x80 {
            buffer.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: size, as: UInt8.self)
            size += 1
            v >>= 7
        }
        buffer.storeBytes(of: UInt8(v), toByteOffset: size, as: UInt8.self)
        size += 1
    }

    func appendBlob(_ bytes: [UInt8]) {
        appendVarint(UInt64(bytes.count))
        reserve(bytes.count)
        bytes.withUnsafeBytes { b in if let a = b.baseAddress { (buffer + size).copyMemory(from: a, byteCount: b.count) } }
        size += bytes.count
    }

    @inline(__always) func appendString(_ s: String) {
        var s = s
        s.withUTF8 { u in
            appendVarint(UInt64(u.count))
            reserve(u.count)
            if let b = u.baseAddress { (buffer + size).copyMemory(from: b, byteCount: u.count) }
            size += u.count
        }
    }

    @inline(__always) func patchU32(_ v: UInt32, at pos: Int) {
        buffer.storeBytes(of: v.littleEndian, toByteOffset: pos, as: UInt32.self)
    }

    /// Writes the value length of the keyed entry whose length field is at `slot`.
    func patchLength(at slot: Int) throws {
        let length = size - slot - 4
        guard length <= BinaryFormat.maxLength else { throw Self.tooLarge(length) }
        patchU32(UInt32(length), at: slot)
    }

    static func tooLarge(_ n: Int) -> EncodingError {
        EncodingError.invalidValue(n, .init(codingPath: [], debugDescription:
            "a value or container of \(n) bytes is larger than the format's 4 GiB frame limit; split the state"))
    }

    // MARK: frames

    func pushContainer(lengthSlot: Int) -> (depth: Int, id: UInt32) {
        nextFrameId &+= 1
        let start = size
        appendFixed(UInt64(0))   // byte length and count, patched when the container closes
        frames.append(Frame(start: start, count: 0, lengthSlot: lengthSlot, id: nextFrameId))
        return (frames.count - 1, nextFrameId)
    }

    func pushEntry(lengthSlot: Int) {
        nextFrameId &+= 1
        frames.append(Frame(start: -1, count: 0, lengthSlot: lengthSlot, id: nextFrameId))
    }

    /// Closes every frame deeper than `depth` (patching lengths and counts).
    @inline(__always) func closeFrames(above depth: Int) throws {
        while frames.count > depth + 1 { try close(frames.removeLast()) }
    }

    func close(_ f: Frame) throws {
        if f.start >= 0 {
            let length = size - f.start - 4
            guard length <= BinaryFormat.maxLength else { throw Self.tooLarge(length) }
            patchU32(UInt32(length), at: f.start)
            patchU32(f.count, at: f.start + 4)
        }
        if f.lengthSlot >= 0 { try patchLength(at: f.lengthSlot) }
    }

    /// Makes the container at `depth` with `id` the one being written: closes its nested
    /// containers, and throws if it was closed itself.
    @inline(__always) func activate(depth: Int, id: UInt32) throws {
        guard depth < frames.count, frames[depth].id == id else { throw Self.closedContainer() }
        if frames.count > depth + 1 { try closeFrames(above: depth) }
    }

    static func closedContainer() -> EncodingError {
        EncodingError.invalidValue((), .init(codingPath: [], debugDescription:
            "a container was written after its parent moved on; BinaryEncoder needs containers used in nesting order"))
    }

    // MARK: values

    /// Encodes `value` at the current position (Optionals as a tag byte and the wrapped value).
    @inline(__always)
    func encodeValue<T: Encodable>(_ value: T) throws {
        if T.self == Int64.self { appendFixed(unsafeBitCast(value, to: Int64.self)); return }
        if T.self == Int.self { appendFixed(Int64(unsafeBitCast(value, to: Int.self))); return }
        if T.self == UInt64.self { appendFixed(unsafeBitCast(value, to: UInt64.self)); return }
        if T.self == Int32.self { appendFixed(unsafeBitCast(value, to: Int32.self)); return }
        if T.self == Double.self { appendFixed(unsafeBitCast(value, to: Double.self).bitPattern); return }
        if T.self == Bool.self { append(unsafeBitCast(value, to: Bool.self) ? 1 : 0); return }
        if T.self == UInt8.self { append(unsafeBitCast(value, to: UInt8.self)); return }
        if T.self == String.self { appendString(value as! String); return }
        // Byte blobs (encoded state inside a checkpoint) as length + bytes, not byte by byte.
        if T.self == [UInt8].self { appendBlob(value as! [UInt8]); return }
        if _isOptionalType(T.self), let optional = value as? any _BinaryOptionalEncodable {
            if optional._binaryIsNil {
                append(0)
            } else {
                append(1)
                try optional._binaryEncodeWrapped(into: self)
            }
            return
        }
        try value.encode(to: self)
    }

    // MARK: Encoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let (depth, id) = pushContainer(lengthSlot: -1)
        return KeyedEncodingContainer(_BinaryKeyedEncodingContainer<Key>(impl: self, depth: depth, id: id))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let (depth, id) = pushContainer(lengthSlot: -1)
        return _BinaryUnkeyedEncodingContainer(impl: self, depth: depth, id: id)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        _BinarySingleValueEncodingContainer(impl: self, depth: frames.count)
    }
}

struct _BinaryKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let impl: _BinaryEncoderImpl
    let depth: Int
    let id: UInt32
    var codingPath: [any CodingKey] { [] }

    /// Starts the entry for `key`: the key, then (left to the caller) the value length and value.
    @inline(__always) func begin(_ key: String) throws {
        try impl.activate(depth: depth, id: id)
        impl.frames[depth].count += 1
        impl.appendString(key)
    }

    @inline(__always) func fixed<I: FixedWidthInteger>(_ v: I, _ key: Key) throws {
        try begin(key.stringValue)
        impl.appendFixed(UInt32(MemoryLayout<I>.size))
        impl.appendFixed(v)
    }

    mutating func encodeNil(forKey key: Key) throws {
        try begin(key.stringValue)
        impl.appendFixed(BinaryFormat.nilLength)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try fixed(UInt8(value ? 1 : 0), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try fixed(value.bitPattern, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try fixed(value.bitPattern, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try fixed(Int64(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try fixed(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try fixed(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try fixed(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try fixed(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try fixed(UInt64(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try fixed(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try fixed(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try fixed(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try fixed(value, key) }

    mutating func encode(_ value: String, forKey key: Key) throws {
        try begin(key.stringValue)
        let slot = impl.size
        impl.appendFixed(UInt32(0))
        impl.appendString(value)
        try impl.patchLength(at: slot)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key.stringValue)
        let slot = impl.size
        impl.appendFixed(UInt32(0))
        do {
            if _isOptionalType(T.self), let optional = value as? any _BinaryOptionalEncodable {
                // In a keyed entry nil is the length marker; a present value is stored unwrapped.
                if optional._binaryIsNil {
                    impl.patchU32(BinaryFormat.nilLength, at: slot)
                    return
                }
                try optional._binaryEncodeWrapped(into: impl)
            } else {
                try impl.encodeValue(value)
            }
            try impl.closeFrames(above: depth)
        } catch let e as EncodingError {
            throw e.prefixed(with: key)
        }
        try impl.patchLength(at: slot)
    }

    /// Same as `encode(T?, forKey:)`, so a present `.some(nil)` of a nested Optional survives.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        guard value != nil else { return }
        try encode(value, forKey: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey> {
        let (d, i) = nested(key.stringValue)
        return KeyedEncodingContainer(_BinaryKeyedEncodingContainer<NestedKey>(impl: impl, depth: d, id: i))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let (d, i) = nested(key.stringValue)
        return _BinaryUnkeyedEncodingContainer(impl: impl, depth: d, id: i)
    }

    /// Opens an entry holding a nested container (its length is written when that container closes).
    private func nested(_ key: String) -> (Int, UInt32) {
        // These hooks cannot throw; a misuse surfaces at the next write instead.
        guard (try? begin(key)) != nil else { return (Int.max, 0) }
        let slot = impl.size
        impl.appendFixed(UInt32(0))
        return impl.pushContainer(lengthSlot: slot)
    }

    mutating func superEncoder() -> any Encoder { superEncoder(key: "super") }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(key: key.stringValue) }

    private func superEncoder(key: String) -> any Encoder {
        guard (try? begin(key)) != nil else { return impl }
        let slot = impl.size
        impl.appendFixed(UInt32(0))
        impl.pushEntry(lengthSlot: slot)
        return impl
    }
}

struct _BinaryUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let impl: _BinaryEncoderImpl
    let depth: Int
    let id: UInt32
    var codingPath: [any CodingKey] { [] }
    var count: Int { depth < impl.frames.count && impl.frames[depth].id == id ? Int(impl.frames[depth].count) : 0 }

    @inline(__always) func begin() throws {
        try impl.activate(depth: depth, id: id)
        impl.frames[depth].count += 1
    }

    mutating func encodeNil() throws { try begin(); impl.append(0) }
    mutating func encode(_ value: Bool) throws { try begin(); impl.append(value ? 1 : 0) }
    mutating func encode(_ value: String) throws { try begin(); impl.appendString(value) }
    mutating func encode(_ value: Double) throws { try begin(); impl.appendFixed(value.bitPattern) }
    mutating func encode(_ value: Float) throws { try begin(); impl.appendFixed(value.bitPattern) }
    mutating func encode(_ value: Int) throws { try begin(); impl.appendFixed(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: Int16) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: Int32) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: Int64) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt) throws { try begin(); impl.appendFixed(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt16) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt32) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt64) throws { try begin(); impl.appendFixed(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let index = count
        try begin()
        do {
            try impl.encodeValue(value)
        } catch let e as EncodingError {
            throw e.prefixed(with: _BinaryAnyKey(index: index))
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        guard (try? begin()) != nil else {
            return KeyedEncodingContainer(_BinaryKeyedEncodingContainer<NestedKey>(impl: impl, depth: Int.max, id: 0))
        }
        let (d, i) = impl.pushContainer(lengthSlot: -1)
        return KeyedEncodingContainer(_BinaryKeyedEncodingContainer<NestedKey>(impl: impl, depth: d, id: i))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        guard (try? begin()) != nil else { return _BinaryUnkeyedEncodingContainer(impl: impl, depth: Int.max, id: 0) }
        let (d, i) = impl.pushContainer(lengthSlot: -1)
        return _BinaryUnkeyedEncodingContainer(impl: impl, depth: d, id: i)
    }

    mutating func superEncoder() -> any Encoder {
        _ = try? begin()
        return impl
    }
}

struct _BinarySingleValueEncodingContainer: SingleValueEncodingContainer {
    let impl: _BinaryEncoderImpl
    /// How many frames were open when the container was made; deeper ones are closed on write.
    let depth: Int
    var codingPath: [any CodingKey] { [] }

    @inline(__always) func begin() throws {
        guard impl.frames.count >= depth else { throw _BinaryEncoderImpl.closedContainer() }
        try impl.closeFrames(above: depth - 1)
    }

    mutating func encodeNil() throws { try begin(); impl.append(0) }
    mutating func encode(_ value: Bool) throws { try begin(); impl.append(value ? 1 : 0) }
    mutating func encode(_ value: String) throws { try begin(); impl.appendString(value) }
    mutating func encode(_ value: Double) throws { try begin(); impl.appendFixed(value.bitPattern) }
    mutating func encode(_ value: Float) throws { try begin(); impl.appendFixed(value.bitPattern) }
    mutating func encode(_ value: Int) throws { try begin(); impl.appendFixed(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: Int16) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: Int32) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: Int64) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt) throws { try begin(); impl.appendFixed(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt16) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt32) throws { try begin(); impl.appendFixed(value) }
    mutating func encode(_ value: UInt64) throws { try begin(); impl.appendFixed(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { try begin(); try impl.encodeValue(value) }
}
