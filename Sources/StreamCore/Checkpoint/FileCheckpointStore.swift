import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Completed checkpoints on disk under `--checkpoint-dir` (`CheckpointStorage`: `chk-N/` written
/// atomically with a checksummed manifest, the last K kept): one file per operator subtask holding
/// its `OperatorSubtaskState`, binary-encoded and zstd-compressed. RocksDB state files go to
/// `shared/` once (by a name unique to their database) and are referenced by every checkpoint that
/// contains them (Flink's incremental checkpoints); files no retained checkpoint references are
/// removed after each checkpoint.
public final class FileCheckpointStore: CompletedCheckpointStore, @unchecked Sendable {
    public let storage: CheckpointStorage

    public init(directory: String, retainedCheckpoints: Int = 3) throws {
        storage = try CheckpointStorage(directory: directory, retainedCheckpoints: retainedCheckpoints)
    }

    /// The first id a run may use: after every id on disk (also those a crashed run left half
    /// written) and after the checkpoint it restores.
    public func firstCheckpointId(restoring restored: CheckpointId?) throws -> CheckpointId {
        max(try storage.nextCheckpointId(), (restored ?? 0) + 1)
    }

    public func store(_ checkpoint: CompletedCheckpoint) throws {
        let writer = try storage.beginCheckpoint(checkpoint.id)
        do {
            var used = Set<String>()
            var operators = checkpoint.operators
            var shared = Set<String>()
            for i in operators.indices {
                guard var handle = operators[i].rocksDB else { continue }
                for j in handle.files.indices {
                    try share(handle.files[j])
                    shared.insert(handle.files[j].sharedName)
                    handle.files[j].path = ""
                }
                operators[i].rocksDB = handle
            }
            if !shared.isEmpty { try CheckpointFiles.syncDirectory(sharedDirectory) }
            for op in operators {
                var name = Self.fileName(op.operatorId, op.subtask)
                while !used.insert(name).inserted { name += "_" }
                let groups = op.keyedState.map(\.keyGroup)
                let range = groups.min().flatMap { lo in groups.max().map { lo...$0 } }
                try writer.writeFile(name, try BinaryEncoder().encode(op),
                                     owner: StateFileOwner(operatorUid: op.operatorId, subtask: op.subtask, keyGroups: range))
            }
            let parallelism = checkpoint.operators.map(\.parallelism).max() ?? 1
            _ = try writer.complete(CheckpointInfo(
                jobName: checkpoint.jobName, timestampMillis: checkpoint.timestampMillis, parallelism: parallelism,
                maxParallelism: checkpoint.maxParallelism, kind: checkpoint.isSavepoint ? .savepoint : .checkpoint))
            sharedReferences.withLock { $0[checkpoint.id] = shared }
            if !shared.isEmpty || CheckpointFiles.exists(sharedDirectory) { collectSharedGarbage() }
        } catch {
            writer.abort()
            throw error
        }
    }

    /// `shared/`: RocksDB SST files, referenced by checkpoints.
    public var sharedDirectory: String { storage.directory + "/shared" }

    /// Makes `file` present in `shared/` (hard link, or copy across file systems), unless it is.
    private func share(_ file: RocksDBSharedFile) throws {
        let dest = sharedDirectory + "/" + file.sharedName
        if CheckpointFiles.fileSize(dest) == file.size { return }
        try CheckpointFiles.makeDirectories(sharedDirectory)
        let temp = dest + ".tmp-" + CheckpointFiles.randomSuffix()
        try CheckpointFiles.linkOrCopy(from: file.path, to: temp)
        try CheckpointFiles.renameItem(temp, dest)
    }

    /// The `shared/` files each checkpoint references: recorded when this store writes one, read
    /// once from disk for checkpoints of earlier runs.
    private let sharedReferences = Mutex<[CheckpointId: Set<String>]>([:])

    /// Removes the files of `shared/` that no retained checkpoint references.
    private func collectSharedGarbage() {
        let ids = Set((try? storage.checkpointIds()) ?? [])
        let referenced = sharedReferences.withLock { known -> Set<String> in
            known = known.filter { ids.contains($0.key) }
            for id in ids where known[id] == nil {
                // An unreadable checkpoint keeps nothing alive; it cannot be restored anyway.
                let cp = (try? storage.open(named: "chk-\(id)")).flatMap { try? Self.decode($0) }
                known[id] = Set(cp?.operators.flatMap { $0.rocksDB?.files.map(\.sharedName) ?? [] } ?? [])
            }
            return known.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        }
        for name in (try? CheckpointFiles.list(sharedDirectory)) ?? [] where !referenced.contains(name) {
            unlink(sharedDirectory + "/" + name)
        }
    }

    /// The newest checkpoint that is complete and intact, and a warning for each newer one that was
    /// skipped (corrupt or partial).
    public func latest() -> (checkpoint: CompletedCheckpoint?, warnings: [String]) {
        var selection = storage.latestValid()
        while let stored = selection.checkpoint {
            do {
                return (try Self.load(stored), selection.warnings)
            } catch {
                // Intact on disk but not decodable (e.g. written by an incompatible version): say so
                // and try the one before.
                selection.warnings.append("WARNING: skipping checkpoint chk-\(stored.id): its state cannot be read: \(error); falling back to an earlier checkpoint")
                let older = (try? storage.checkpointIds())?.filter { $0 < stored.id }.sorted(by: >) ?? []
                selection.checkpoint = older.lazy.compactMap { try? self.storage.open(named: "chk-\($0)") }.first
            }
        }
        return (nil, selection.warnings)
    }

    /// `--from-checkpoint`: `chk-N`, `N`, or a path to a checkpoint directory.
    public func load(named name: String) throws -> CompletedCheckpoint {
        try Self.load(try storage.open(named: name))
    }

    /// Loads a verified checkpoint: its RocksDB files are checked too (size and checksum) and
    /// located in the `shared/` directory next to it.
    public static func load(_ stored: StoredCheckpoint) throws -> CompletedCheckpoint {
        var cp = try decode(stored)
        let shared = parentDirectory(of: stored.path) + "/shared"
        for i in cp.operators.indices {
            guard var handle = cp.operators[i].rocksDB else { continue }
            for j in handle.files.indices {
                let path = shared + "/" + handle.files[j].sharedName
                guard let bytes = try? CheckpointFiles.readAll(path) else {
                    throw CheckpointStorageError("checkpoint chk-\(stored.id) needs RocksDB file \(path), which is missing")
                }
                guard bytes.count == handle.files[j].size, XXHash64.hash(bytes) == handle.files[j].checksum else {
                    throw CheckpointStorageError("checkpoint chk-\(stored.id): RocksDB file \(path) is corrupt (size or checksum differs)")
                }
                handle.files[j].path = path
            }
            cp.operators[i].rocksDB = handle
        }
        return cp
    }

    static func parentDirectory(of path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        return slash == p.startIndex ? "/" : String(p[..<slash])
    }

    static func decode(_ stored: StoredCheckpoint) throws -> CompletedCheckpoint {
        let decoder = BinaryDecoder()
        let operators = try stored.manifest.files.map { try decoder.decode(OperatorSubtaskState.self, from: try stored.readFile($0.name)) }
        let info = stored.info
        return CompletedCheckpoint(id: stored.id, jobName: info.jobName, maxParallelism: info.maxParallelism,
                                   timestampMillis: info.timestampMillis, isSavepoint: info.kind == .savepoint,
                                   operators: operators)
    }

    static func fileName(_ operatorId: String, _ subtask: Int) -> String {
        let safe = operatorId.map { c -> Character in
            c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".") ? c : "_"
        }
        return "op-" + String(safe) + "-" + String(subtask)
    }
}
