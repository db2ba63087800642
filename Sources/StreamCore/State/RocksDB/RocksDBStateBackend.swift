import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where keyed state lives (Flink's state backends).
public enum StateBackendKind: Sendable, Equatable {
    /// In memory, snapshotted by copy (Flink's `HashMapStateBackend`).
    case heap
    /// In an embedded RocksDB per operator subtask (Flink's `EmbeddedRocksDBStateBackend`).
    case rocksDB(RocksDBStateOptions)

    /// Parses `--state-backend heap|rocksdb`; RocksDB keeps its files under `directory`.
    public static func parse(_ name: String, directory: String) throws -> StateBackendKind {
        try canonicalName(name) == "rocksdb" ? .rocksDB(RocksDBStateOptions(directory: directory)) : .heap
    }

    /// `heap` or `rocksdb` for a backend name (`hashmap` is Flink's name for the heap backend);
    /// throws with what to write for any other.
    public static func canonicalName(_ name: String) throws -> String {
        switch name.lowercased() {
        case "heap", "hashmap": return "heap"
        case "rocksdb": return "rocksdb"
        default: throw StateError("unknown state backend '\(name)': use 'heap' or 'rocksdb'")
        }
    }
}

/// Options of the RocksDB state backend.
public struct RocksDBStateOptions: Sendable, Equatable {
    /// Local working directory: each operator subtask keeps its database and its local
    /// checkpoints in a directory of its own below it.
    public var directory: String
    /// How many keys keep their values decoded in memory (a write-back cache in front of RocksDB).
    /// Beyond it the least recently used keys are written to RocksDB and dropped from memory;
    /// the next access reads them back. Keys themselves (and timers) stay in memory.
    public var maxResidentKeys: Int

    public init(directory: String, maxResidentKeys: Int = 1 << 20) {
        precondition(maxResidentKeys > 0, "maxResidentKeys must be positive")
        self.directory = directory
        self.maxResidentKeys = maxResidentKeys
    }
}

/// One subtask's RocksDB state in a checkpoint (Flink's `IncrementalRemoteKeyedStateHandle`): the
/// SST files of a RocksDB checkpoint, shared between checkpoints (a file is uploaded once and
/// referenced by every later checkpoint that still contains it), and the small metadata files
/// (manifest, options), kept inline.
public struct RocksDBStateHandle: Codable, Sendable, Equatable {
    public var keyGroupFirst: Int
    public var keyGroupLast: Int
    public var files: [RocksDBSharedFile]
    public var metadata: [RocksDBMetadataFile]

    public var keyGroups: ClosedRange<Int> { keyGroupFirst...keyGroupLast }
    /// Bytes of SST files this checkpoint uploaded (files no earlier checkpoint of this database
    /// had): what an incremental checkpoint costs.
    public var newBytes: Int
}

public struct RocksDBSharedFile: Codable, Sendable, Equatable {
    /// The file's name in the database (`000012.sst`).
    public var localName: String
    /// Its name in the checkpoint directory's `shared/` (unique per database instance).
    public var sharedName: String
    public var size: Int
    /// XXH64 of the contents.
    public var checksum: UInt64
    /// Where the bytes are now: the local checkpoint until a checkpoint store takes them over.
    public var path: String
}

public struct RocksDBMetadataFile: Codable, Sendable, Equatable {
    public var name: String
    public var bytes: [UInt8]
}

/// The RocksDB side of a keyed state backend: the database, and per key slot whether its values
/// are resident (decoded in the state columns) or only in RocksDB (cold), and whether they changed
/// since they were last written. Not generic; the typed backend (`KeyedStateBackend<K>`) encodes
/// keys and moves values between columns and the database.
///
/// Confined to the task thread, except the encoding of a checkpoint's file list.
public final class RocksDBKeyedState {
    @usableFromInline static let cold: UInt8 = 1
    @usableFromInline static let dirty: UInt8 = 2
    @usableFromInline static let referenced: UInt8 = 4
    @usableFromInline static let persisted: UInt8 = 8

    let options: RocksDBStateOptions
    /// This subtask's directory: `db/` and local checkpoints `chk-N/`.
    let directory: String
    let instanceId: String
    private(set) var db: RocksDB
    /// Per slot: the bits above; 0 for a free slot.
    @exclusivity(unchecked) @usableFromInline var flags: [UInt8] = []
    /// Slots whose values are in memory.
    @exclusivity(unchecked) @usableFromInline var resident = 0
    @usableFromInline let maxResident: Int
    var clockHand = 0
    /// Key prefixes of keys that lost all state after they were written to RocksDB: deleted with
    /// the next write, before anything else in it.
    var pendingDeletes: [[UInt8]] = []
    /// SST files already uploaded by an earlier checkpoint of this database, by local name.
    let uploaded = UploadedFiles()
    var localCheckpoints: [String] = []
    /// A RocksDB failure during a key access (which cannot throw): the task fails with it at the
    /// next record.
    @usableFromInline var failure: (any Error)?
    /// Statistics: keys read back from RocksDB, keys written out to make room.
    /// Encodes keys on the task thread (one scratch buffer).
    let keyEncoder = BinaryEncoder()
    public private(set) var loads = 0
    public private(set) var evictions = 0

    @usableFromInline
    init(options: RocksDBStateOptions, name: String) throws {
        self.options = options
        self.maxResident = options.maxResidentKeys
        instanceId = CheckpointFiles.randomSuffix()
        let safe = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" })
        directory = options.directory + "/" + safe + "-" + instanceId
        try CheckpointFiles.makeDirectories(directory)
        db = try RocksDB(path: directory + "/db")
    }

    deinit {
        try? CheckpointFiles.removeTree(directory)
    }

    /// Marks an access to `slot`; true when its values must be read back first.
    @inlinable @inline(__always)
    func touch(_ slot: Int) -> Bool {
        let f = flags[slot]
        if f & Self.cold != 0 { return true }
        flags[slot] = f | Self.dirty | Self.referenced
        return false
    }

    @usableFromInline
    func slotAllocated(_ slot: Int) {
        if slot >= flags.count { flags.append(contentsOf: repeatElement(0, count: slot + 1 - flags.count)) }
        flags[slot] = Self.dirty | Self.referenced
        resident += 1
    }

    /// A slot lost its last state; returns whether RocksDB may still hold values of its key.
    @usableFromInline
    func slotReleased(_ slot: Int) -> Bool {
        let wasPersisted = flags[slot] & Self.persisted != 0
        if flags[slot] & Self.cold == 0 { resident -= 1 }
        flags[slot] = 0
        return wasPersisted
    }

    /// A slot for a key RocksDB holds, its values not read yet.
    func coldSlot(_ slot: Int) {
        if slot >= flags.count { flags.append(contentsOf: repeatElement(0, count: slot + 1 - flags.count)) }
        flags[slot] = Self.cold | Self.persisted
    }

    func loaded(_ slot: Int) {
        flags[slot] = Self.dirty | Self.referenced | Self.persisted
        resident += 1
        loads += 1
    }

    func evicted(_ slot: Int) {
        flags[slot] = Self.cold | Self.persisted
        resident -= 1
        evictions += 1
    }

    /// Up to `count` resident slots not used recently (second chance), never `current`.
    func victims(_ count: Int, current: Int) -> [Int] {
        var out: [Int] = []
        var steps = 0
        let n = flags.count
        while out.count < count, steps < 2 * n {
            if clockHand >= n { clockHand = 0 }
            let s = clockHand
            clockHand += 1
            steps += 1
            let f = flags[s]
            guard f != 0, f & Self.cold == 0, s != current else { continue }
            if f & Self.referenced != 0 { flags[s] = f & ~Self.referenced } else { out.append(s) }
        }
        return out
    }

    /// Replaces the working database with the one in `path` (after a restore).
    func replaceDatabase(with path: String) throws {
        db = try RocksDB(path: path)
    }

    // MARK: checkpoints

    /// The writes of a checkpoint's barrier, applied off the task thread.
    final class PendingFlush: @unchecked Sendable {
        let id: CheckpointId
        let build: () throws -> WriteBatch
        var applied = false
        init(id: CheckpointId, build: @escaping () throws -> WriteBatch) { self.id = id; self.build = build }
    }

    /// The checkpoint whose writes are not in RocksDB yet, or whose RocksDB checkpoint is not taken
    /// yet: until then nothing else is written (keys are not written out to make room).
    let pendingFlush = Mutex<PendingFlush?>(nil)
    /// `pendingFlush != nil`, readable without waiting for a flush in progress.
    let flushInFlight = Atomic<Bool>(false)
    @usableFromInline var isFlushing: Bool { flushInFlight.load(ordering: .acquiring) }

    /// Registers the writes of checkpoint `id` (everything changed up to its barrier). A previous
    /// checkpoint's writes still pending (its checkpoint was given up) are applied first, here.
    func beginFlush(_ id: CheckpointId, _ build: @escaping () throws -> WriteBatch) throws {
        try pendingFlush.withLock { pending in
            if let old = pending, !old.applied { try db.write(try old.build()) }
            pending = PendingFlush(id: id, build: build)
        }
        flushInFlight.store(true, ordering: .releasing)
    }

    /// Applies checkpoint `id`'s writes and takes the RocksDB checkpoint (flush and hard links)
    /// — on the thread that stores the checkpoint; then describes its files (reads and hashes new
    /// SST files).
    func finishFlush(_ id: CheckpointId, keyGroups: ClosedRange<Int>) throws -> RocksDBStateHandle {
        let dir = directory + "/chk-\(id)"
        try pendingFlush.withLock { pending in
            guard let p = pending, p.id == id else {
                throw StateError("RocksDB checkpoint \(id) was superseded by a later one before it was stored")
            }
            if !p.applied {
                try db.write(try p.build())
                p.applied = true
            }
            if CheckpointFiles.exists(dir) { try CheckpointFiles.removeTree(dir) }
            try db.checkpoint(into: dir)
            pending = nil
            flushInFlight.store(false, ordering: .releasing)
            localCheckpoints.append(dir)
            // The three newest stay: a checkpoint store may still be copying from one.
            while localCheckpoints.count > 3 { try? CheckpointFiles.removeTree(localCheckpoints.removeFirst()) }
        }
        return try describe(dir, keyGroups: keyGroups)
    }

    private func describe(_ dir: String, keyGroups: ClosedRange<Int>) throws -> RocksDBStateHandle {
        let instanceId = self.instanceId
        let uploaded = self.uploaded
        do {
            var files: [RocksDBSharedFile] = []
            var metadata: [RocksDBMetadataFile] = []
            var newBytes = 0
            for name in try CheckpointFiles.list(dir).sorted() {
                let path = dir + "/" + name
                if name.hasSuffix(".sst") {
                    if var known = uploaded.withLock({ $0[name] }) {
                        known.path = path
                        files.append(known)
                    } else {
                        let bytes = try CheckpointFiles.readAll(path)
                        let file = RocksDBSharedFile(localName: name, sharedName: instanceId + "-" + name, size: bytes.count,
                                                     checksum: XXHash64.hash(bytes), path: path)
                        newBytes += bytes.count
                        uploaded.withLock { $0[name] = file }
                        files.append(file)
                    }
                } else {
                    metadata.append(RocksDBMetadataFile(name: name, bytes: try CheckpointFiles.readAll(path)))
                }
            }
            return RocksDBStateHandle(keyGroupFirst: keyGroups.lowerBound, keyGroupLast: keyGroups.upperBound,
                                      files: files, metadata: metadata, newBytes: newBytes)
        }
    }

    /// Recreates the database of `handle` in `path` (a fresh directory): SST files hard-linked
    /// (copied across file systems) after their size is checked, metadata written.
    static func materialize(_ handle: RocksDBStateHandle, at path: String) throws {
        try CheckpointFiles.makeDirectories(path)
        for f in handle.files {
            guard CheckpointFiles.fileSize(f.path) == f.size else {
                throw CheckpointStorageError("RocksDB state file \(f.path) is missing or has the wrong size (expected \(f.size) bytes): the checkpoint is incomplete")
            }
            try CheckpointFiles.linkOrCopy(from: f.path, to: path + "/" + f.localName)
        }
        for m in handle.metadata { try CheckpointFiles.writeDurably(path + "/" + m.name, m.bytes) }
    }
}

/// What the RocksDB backend of one subtask did.
public struct RocksDBStatistics: Sendable, Equatable {
    /// Keys whose values are in memory now.
    public var residentKeys: Int
    /// Keys read back from RocksDB, and written out to make room, so far.
    public var loads: Int
    public var evictions: Int
}

/// SST files a database's checkpoints uploaded already, by local name (read by the thread that
/// describes a checkpoint).
final class UploadedFiles: Sendable {
    private let files = Mutex<[String: RocksDBSharedFile]>([:])
    func withLock<R>(_ body: (inout [String: RocksDBSharedFile]) -> R) -> R { files.withLock { body(&$0) } }
}

/// Key layout in RocksDB: `[key group: u16 big-endian][key length: varint][key bytes][state name]`,
/// so one key group is one contiguous range (what a restore at another parallelism reads) and one
/// key's states are adjacent.
enum RocksDBKeys {
    static func prefix(keyGroup: Int, key: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [UInt8(truncatingIfNeeded: keyGroup >> 8), UInt8(truncatingIfNeeded: keyGroup)]
        out.reserveCapacity(key.count + 8)
        var n = UInt64(key.count)
        while n >= 0x80 { out.append(UInt8(truncatingIfNeeded: n) | 0x80); n >>= 7 }
        out.append(UInt8(n))
        out.append(contentsOf: key)
        return out
    }

    static func keyGroupStart(_ group: Int) -> [UInt8] {
        [UInt8(truncatingIfNeeded: group >> 8), UInt8(truncatingIfNeeded: group)]
    }

    /// Splits a stored key into (prefix length, key bytes range); nil when malformed.
    static func parse(_ k: UnsafeRawBufferPointer) -> (prefixLength: Int, keyGroup: Int, key: Range<Int>)? {
        guard k.count >= 3 else { return nil }
        let group = Int(k[0]) << 8 | Int(k[1])
        var i = 2, shift = 0
        var length = 0
        while i < k.count {
            let b = k[i]
            length |= Int(b & 0x7f) << shift
            i += 1
            if b & 0x80 == 0 { break }
            shift += 7
            if shift > 35 { return nil }
        }
        guard i + length <= k.count else { return nil }
        return (i + length, group, i..<(i + length))
    }
}
