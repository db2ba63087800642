/// Whether a completed snapshot was taken for recovery or on request.
public enum CheckpointKind: String, Sendable, Equatable {
    /// Taken periodically; subject to retention.
    case checkpoint
    /// Taken on request; never removed by retention.
    case savepoint
}

/// Who wrote a state file: an operator's subtask and, for keyed state, its key groups.
public struct StateFileOwner: Sendable, Equatable {
    /// The operator's stable uid (the same across runs of the job).
    public var operatorUid: String
    public var subtask: Int
    /// The key groups whose state the file holds; nil for operator (non-keyed) state.
    public var keyGroups: ClosedRange<Int>?

    public init(operatorUid: String, subtask: Int, keyGroups: ClosedRange<Int>? = nil) {
        self.operatorUid = operatorUid
        self.subtask = subtask
        self.keyGroups = keyGroups
    }
}

/// One file of a checkpoint, as its manifest records it.
public struct CheckpointFileEntry: Sendable, Equatable {
    /// File name inside the checkpoint directory.
    public var name: String
    public var owner: StateFileOwner
    /// Size of the content before compression.
    public var rawSize: Int
    /// Size of the file as stored (zstd-compressed).
    public var storedSize: Int
    /// XXH64 (seed 0) of the stored bytes.
    public var checksum: UInt64

    public init(name: String, owner: StateFileOwner, rawSize: Int, storedSize: Int, checksum: UInt64) {
        self.name = name
        self.owner = owner
        self.rawSize = rawSize
        self.storedSize = storedSize
        self.checksum = checksum
    }
}

/// What the coordinator states about a checkpoint when it completes it.
public struct CheckpointInfo: Sendable, Equatable {
    public var jobName: String
    /// When the checkpoint was triggered, in epoch milliseconds (from the injected clock).
    public var timestampMillis: Int64
    public var parallelism: Int
    public var maxParallelism: Int
    public var kind: CheckpointKind
    /// Free-form entries, e.g. source split positions, encoded by the caller (stored as base64).
    public var metadata: [String: [UInt8]]

    public init(jobName: String, timestampMillis: Int64, parallelism: Int,
                maxParallelism: Int = KeyGroupRangeAssignment.defaultMaxParallelism,
                kind: CheckpointKind = .checkpoint, metadata: [String: [UInt8]] = [:]) {
        self.jobName = jobName
        self.timestampMillis = timestampMillis
        self.parallelism = parallelism
        self.maxParallelism = maxParallelism
        self.kind = kind
        self.metadata = metadata
    }
}

/// The manifest of a completed checkpoint (`chk-N/_manifest.json`): what was snapshotted and how
/// to verify it.
public struct CheckpointManifest: Sendable, Equatable {
    public static let formatVersion: Int64 = 1
    public static let fileName = "_manifest.json"

    public var checkpointId: CheckpointId
    public var info: CheckpointInfo
    /// Sorted by name.
    public var files: [CheckpointFileEntry]

    public init(checkpointId: CheckpointId, info: CheckpointInfo, files: [CheckpointFileEntry]) {
        self.checkpointId = checkpointId
        self.info = info
        self.files = files.sorted { $0.name < $1.name }
    }

    public func file(named name: String) -> CheckpointFileEntry? { files.first { $0.name == name } }

    // MARK: on disk

    /// The file starts with this, then 16 hex digits of the XXH64 of everything after `checksumEnd`.
    static let prefix = Array("{\"manifestChecksum\": \"".utf8)
    static let checksumEnd = prefix.count + 16 + 3   // the digits, then `",\n`

    /// The manifest file's bytes: JSON whose first field is the checksum of the rest.
    public func serialized() -> [UInt8] {
        let body = Array(("\"manifest\": " + json().serialized(indent: 0) + "\n}\n").utf8)
        let sum = XXHash64.hash(body)
        return Self.prefix + Array(XXHash64.hex(sum).utf8) + Array("\",\n".utf8) + body
    }

    /// Parses and verifies a manifest file.
    public static func parse(_ bytes: [UInt8]) throws -> CheckpointManifest {
        guard bytes.count > checksumEnd, Array(bytes[0..<prefix.count]) == prefix,
              bytes[prefix.count..<prefix.count + 16].allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
              let stored = UInt64(String(decoding: bytes[prefix.count..<prefix.count + 16], as: UTF8.self), radix: 16)
        else { throw CheckpointStorageError("the manifest does not start with its checksum (truncated or not a manifest)") }
        let actual = XXHash64.hash(bytes[checksumEnd...])
        guard stored == actual else {
            throw CheckpointStorageError("manifest checksum mismatch (stored \(XXHash64.hex(stored)), content hashes to \(XXHash64.hex(actual)))")
        }
        let document: JSONValue
        do { document = try JSONValue.parse(bytes) } catch { throw CheckpointStorageError("manifest: \(error)") }
        guard let m = document["manifest"] else { throw CheckpointStorageError("manifest: no 'manifest' field") }
        return try CheckpointManifest(json: m)
    }

    func json() -> JSONValue {
        .object([
            ("formatVersion", .int(Self.formatVersion)),
            ("jobName", .string(info.jobName)),
            ("checkpointId", .int(checkpointId)),
            ("kind", .string(info.kind.rawValue)),
            ("timestampMillis", .int(info.timestampMillis)),
            ("parallelism", .int(Int64(info.parallelism))),
            ("maxParallelism", .int(Int64(info.maxParallelism))),
            ("compression", .string("zstd")),
            ("checksumAlgorithm", .string("xxh64")),
            ("files", .array(files.map { f in
                .object([
                    ("name", .string(f.name)),
                    ("operatorUid", .string(f.owner.operatorUid)),
                    ("subtask", .int(Int64(f.owner.subtask))),
                    ("keyGroups", f.owner.keyGroups.map { .array([.int(Int64($0.lowerBound)), .int(Int64($0.upperBound))]) } ?? .null),
                    ("rawSize", .int(Int64(f.rawSize))),
                    ("storedSize", .int(Int64(f.storedSize))),
                    ("checksum", .string(XXHash64.hex(f.checksum))),
                ])
            })),
            ("metadata", .object(info.metadata.sorted { $0.key < $1.key }.map { ($0.key, .string(Base64.encode($0.value))) })),
        ])
    }

    init(json m: JSONValue) throws {
        func field<T>(_ name: String, _ get: (JSONValue) -> T?, in v: JSONValue = m) throws -> T {
            guard let raw = v[name], let value = get(raw) else { throw CheckpointStorageError("manifest: field '\(name)' missing or of the wrong type") }
            return value
        }
        let version = try field("formatVersion", \.intValue)
        guard version == Self.formatVersion else {
            throw CheckpointStorageError("manifest format version \(version) is not supported (this build reads \(Self.formatVersion))")
        }
        guard let kind = CheckpointKind(rawValue: try field("kind", \.stringValue)) else {
            throw CheckpointStorageError("manifest: unknown kind")
        }
        var metadata: [String: [UInt8]] = [:]
        for (k, v) in try field("metadata", \.objectValue) {
            guard let s = v.stringValue, let bytes = Base64.decode(s) else { throw CheckpointStorageError("manifest: metadata '\(k)' is not base64") }
            metadata[k] = bytes
        }
        info = CheckpointInfo(jobName: try field("jobName", \.stringValue),
                              timestampMillis: try field("timestampMillis", \.intValue),
                              parallelism: Int(try field("parallelism", \.intValue)),
                              maxParallelism: Int(try field("maxParallelism", \.intValue)),
                              kind: kind, metadata: metadata)
        checkpointId = try field("checkpointId", \.intValue)
        files = try field("files", \.arrayValue).map { f in
            var keyGroups: ClosedRange<Int>?
            if let kg = f["keyGroups"], kg != .null {
                guard let pair = kg.arrayValue, pair.count == 2, let lo = pair[0].intValue, let hi = pair[1].intValue, lo <= hi else {
                    throw CheckpointStorageError("manifest: keyGroups must be [first, last]")
                }
                keyGroups = Int(lo)...Int(hi)
            }
            guard let sum = UInt64(try field("checksum", \.stringValue, in: f), radix: 16) else {
                throw CheckpointStorageError("manifest: a checksum is not hex")
            }
            let name = try field("name", \.stringValue, in: f)
            guard CheckpointManifest.isValidFileName(name) else { throw CheckpointStorageError("manifest: bad file name '\(name)'") }
            return CheckpointFileEntry(
                name: name,
                owner: StateFileOwner(operatorUid: try field("operatorUid", \.stringValue, in: f),
                                      subtask: Int(try field("subtask", \.intValue, in: f)), keyGroups: keyGroups),
                rawSize: Int(try field("rawSize", \.intValue, in: f)),
                storedSize: Int(try field("storedSize", \.intValue, in: f)),
                checksum: sum)
        }
    }

    /// Plain names only: no path separators, no hidden files, not the manifest's own name.
    static func isValidFileName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 200 && !name.hasPrefix(".") && !name.contains("/")
            && !name.contains("\0") && name != fileName
    }
}
