/// Keyed state of one subtask as a sequence of key-group sections with an index (Flink's
/// `KeyGroupRangeOffsets`), so that after a change of parallelism a subtask reads only the
/// sections of the key groups it now owns from each old subtask's file, without decoding the rest.
///
/// Layout (little-endian), before the storage compresses the whole file:
/// ```
/// "TKGS" u32 version=1
/// section payloads, back to back
/// index: count × (u32 keyGroup, u64 offset, u64 length)
/// footer: u64 indexOffset, u32 count, "TKGS"
/// ```
/// Sections are in ascending key-group order, each key group at most once; a key group without
/// state has no section.
public struct KeyGroupSnapshotWriter {
    static let magic: [UInt8] = Array("TKGS".utf8)
    static let version: UInt32 = 1

    var bytes: [UInt8]
    var index: [(keyGroup: Int, offset: Int, length: Int)] = []
    var sectionStart = -1
    let encoder = BinaryEncoder()

    public init() {
        bytes = Self.magic
        withUnsafeBytes(of: Self.version.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Starts the section of `keyGroup` (ends the previous one). Key groups must ascend.
    public mutating func beginKeyGroup(_ keyGroup: Int) throws {
        guard keyGroup >= 0, keyGroup <= Int(UInt32.max) else { throw CheckpointStorageError("key group \(keyGroup) out of range") }
        if let last = index.last?.keyGroup, keyGroup <= last {
            throw CheckpointStorageError("key group sections must ascend: \(keyGroup) after \(last)")
        }
        endSection()
        index.append((keyGroup, bytes.count, 0))
        sectionStart = bytes.count
    }

    /// Appends raw bytes to the current section.
    public mutating func append(_ payload: [UInt8]) {
        precondition(sectionStart >= 0, "beginKeyGroup before appending")
        bytes.append(contentsOf: payload)
    }

    /// Appends one record to the current section, encoded with `BinaryEncoder` (read back in order
    /// with `KeyGroupSnapshotReader.records`).
    public mutating func appendRecord<T: Encodable>(_ record: T) throws {
        precondition(sectionStart >= 0, "beginKeyGroup before appending")
        try encoder.encode(record, appendingTo: &bytes)
    }

    mutating func endSection() {
        if sectionStart >= 0 { index[index.count - 1].length = bytes.count - sectionStart }
        sectionStart = -1
    }

    /// The snapshot's bytes (hand them to `CheckpointWriter.writeFile`).
    public mutating func finish() -> [UInt8] {
        endSection()
        let indexOffset = bytes.count
        for e in index {
            withUnsafeBytes(of: UInt32(e.keyGroup).littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt64(e.offset).littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt64(e.length).littleEndian) { bytes.append(contentsOf: $0) }
        }
        withUnsafeBytes(of: UInt64(indexOffset).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(index.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Self.magic)
        return bytes
    }
}

/// Reads a `KeyGroupSnapshotWriter` snapshot: the index is validated up front, sections are read
/// on demand.
public struct KeyGroupSnapshotReader: Sendable {
    public let bytes: [UInt8]
    /// Key group → (offset, length) of its section, ascending.
    public let sections: [(keyGroup: Int, offset: Int, length: Int)]

    static let headerSize = 8
    static let footerSize = 16
    static let indexEntrySize = 20

    public init(_ bytes: [UInt8]) throws {
        func bad(_ why: String) -> CheckpointStorageError { CheckpointStorageError("not a valid key-group snapshot: \(why)") }
        func u32(_ at: Int) -> UInt32 { bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) } }
        func u64(_ at: Int) -> UInt64 { bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) } }
        let n = bytes.count
        guard n >= Self.headerSize + Self.footerSize, Array(bytes[0..<4]) == KeyGroupSnapshotWriter.magic,
              Array(bytes[(n - 4)...]) == KeyGroupSnapshotWriter.magic else { throw bad("magic missing (truncated?)") }
        guard u32(4) == KeyGroupSnapshotWriter.version else { throw bad("version \(u32(4)) unknown") }
        let indexOffset = u64(n - Self.footerSize), count = UInt64(u32(n - 8))
        let indexEnd = UInt64(n - Self.footerSize)
        guard indexOffset >= UInt64(Self.headerSize), indexOffset <= indexEnd,
              (indexEnd - indexOffset) == count * UInt64(Self.indexEntrySize) else { throw bad("index out of bounds") }
        var sections: [(keyGroup: Int, offset: Int, length: Int)] = []
        sections.reserveCapacity(Int(count))
        var expectedOffset = UInt64(Self.headerSize)
        for i in 0..<Int(count) {
            let at = Int(indexOffset) + i * Self.indexEntrySize
            let kg = Int(u32(at)), offset = u64(at + 4), length = u64(at + 12)
            guard offset == expectedOffset, length <= indexOffset - offset else { throw bad("section \(i) out of place") }
            if let last = sections.last, kg <= last.keyGroup { throw bad("key groups not ascending") }
            sections.append((kg, Int(offset), Int(length)))
            expectedOffset = offset + length
        }
        guard expectedOffset == indexOffset else { throw bad("bytes between the sections and the index") }
        self.bytes = bytes
        self.sections = sections
    }

    public var keyGroups: [Int] { sections.map(\.keyGroup) }

    /// The payload of `keyGroup`'s section, or nil if the snapshot holds no state for it.
    public func payload(ofKeyGroup keyGroup: Int) -> ArraySlice<UInt8>? {
        sections(in: keyGroup...keyGroup).first?.payload
    }

    /// The sections whose key group lies in `range`, ascending (found by binary search).
    public func sections(in range: ClosedRange<Int>) -> [(keyGroup: Int, payload: ArraySlice<UInt8>)] {
        var lo = 0, hi = sections.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sections[mid].keyGroup < range.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        var out: [(keyGroup: Int, payload: ArraySlice<UInt8>)] = []
        var i = lo
        while i < sections.count, sections[i].keyGroup <= range.upperBound {
            let s = sections[i]
            out.append((s.keyGroup, bytes[s.offset..<s.offset + s.length]))
            i += 1
        }
        return out
    }

    /// Decodes the records (`appendRecord`) of the key groups in `range`, calling `body` with each
    /// record and its key group; the other sections are not touched.
    public func forEachRecord<T: Decodable>(_ type: T.Type, in range: ClosedRange<Int>,
                                            _ body: (_ keyGroup: Int, _ record: T) throws -> Void) throws {
        let decoder = BinaryDecoder()
        for (keyGroup, payload) in sections(in: range) {
            try payload.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    try body(keyGroup, try decoder.decode(type, from: raw, at: &offset))
                }
            }
        }
    }
}
