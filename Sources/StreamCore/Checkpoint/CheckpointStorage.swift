import Synchronization

/// Completed checkpoints in a directory (`--checkpoint-dir`), as Flink lays them out: one
/// `chk-N/` per checkpoint, holding zstd-compressed state files and `_manifest.json`.
///
/// A checkpoint is written into `.chk-N.inprogress-<random>/` and becomes `chk-N/` by one atomic
/// rename once its manifest is durable, so a `chk-N/` is never partial unless the disk corrupted
/// it — which checksums detect. One coordinator (process) owns a directory: retention removes
/// in-progress directories that are not its own.
public final class CheckpointStorage: Sendable {
    public let directory: String
    /// How many of the newest checkpoints retention keeps (savepoints are never removed).
    public let retainedCheckpoints: Int
    public let compressionLevel: Int32
    /// Temporary directory names of this storage's writers still in progress.
    let activeWriters = Mutex<Set<String>>([])

    /// Opens (creating it if needed) the checkpoint directory.
    public init(directory: String, retainedCheckpoints: Int = 3, compressionLevel: Int32 = Zstd.defaultLevel) throws {
        precondition(retainedCheckpoints >= 1, "retain at least one checkpoint")
        var dir = directory
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        self.directory = dir
        self.retainedCheckpoints = retainedCheckpoints
        self.compressionLevel = compressionLevel
        try CheckpointFiles.makeDirectories(dir)
    }

    // MARK: names

    static func name(of id: CheckpointId) -> String { "chk-\(id)" }

    /// The id of a completed checkpoint's directory name (`chk-N`), or nil.
    static func id(ofCompleted name: String) -> CheckpointId? {
        guard name.hasPrefix("chk-") else { return nil }
        let digits = name.dropFirst(4)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let id = CheckpointId(digits), id > 0 else { return nil }
        return id
    }

    static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(".chk-") && (name.contains(".inprogress-") || name.contains(".deleting-"))
    }

    // MARK: writing

    /// Starts checkpoint `id`: its files go into a fresh temporary directory, invisible to
    /// readers until `complete`.
    public func beginCheckpoint(_ id: CheckpointId) throws -> CheckpointWriter {
        precondition(id > 0, "checkpoint ids start at 1")
        guard !CheckpointFiles.exists(path(of: id)) else {
            throw CheckpointStorageError("checkpoint \(id) already exists in '\(directory)'; continue from nextCheckpointId() (\((try? nextCheckpointId()) ?? id + 1))")
        }
        let tempName = ".\(Self.name(of: id)).inprogress-\(CheckpointFiles.randomSuffix())"
        try CheckpointFiles.makeDirectory(directory + "/" + tempName)
        activeWriters.withLock { _ = $0.insert(tempName) }
        return CheckpointWriter(storage: self, id: id, tempName: tempName)
    }

    func writerFinished(_ tempName: String) {
        activeWriters.withLock { _ = $0.remove(tempName) }
    }

    public func path(of id: CheckpointId) -> String { directory + "/" + Self.name(of: id) }

    // MARK: listing

    /// Ids of the completed checkpoint directories (`chk-N`), ascending, valid or not.
    public func checkpointIds() throws -> [CheckpointId] {
        try CheckpointFiles.list(directory).compactMap(Self.id(ofCompleted:)).sorted()
    }

    /// One more than the largest id in the directory (completed or in progress), so a restarted job
    /// never reuses an id.
    public func nextCheckpointId() throws -> CheckpointId {
        var maxId: CheckpointId = 0
        for name in try CheckpointFiles.list(directory) {
            if let id = Self.id(ofCompleted: name) { maxId = max(maxId, id); continue }
            if Self.isTemporary(name), let dot = name.dropFirst().firstIndex(of: "."),
               let id = Self.id(ofCompleted: String(name[name.index(after: name.startIndex)..<dot])) {
                maxId = max(maxId, id)
            }
        }
        return maxId + 1
    }

    // MARK: retention

    /// What retention did.
    public struct RetentionReport: Sendable, Equatable {
        /// Directory names removed.
        public var removed: [String] = []
        /// Failures to remove (the directory stays; retention tries again next time).
        public var warnings: [String] = []
    }

    /// Keeps the newest `retainedCheckpoints` checkpoints (savepoints do not count and are kept),
    /// removes older ones and every in-progress directory not written by this storage (left by a
    /// crashed run). An old checkpoint is first renamed away, so a crash mid-removal never leaves a
    /// partial `chk-N/`.
    @discardableResult
    public func applyRetention() -> RetentionReport {
        var report = RetentionReport()
        let names: [String]
        do { names = try CheckpointFiles.list(directory) } catch {
            report.warnings.append("retention: \(error)")
            return report
        }
        let active = activeWriters.withLock { $0 }
        for name in names where Self.isTemporary(name) && !active.contains(name) {
            remove(name, into: &report)
        }
        let checkpoints = names.compactMap { n in Self.id(ofCompleted: n).map { (id: $0, name: n) } }
            .filter { !isSavepoint($0.name) }
            .sorted { $0.id > $1.id }
        for old in checkpoints.dropFirst(retainedCheckpoints) {
            let doomed = ".\(old.name).deleting-\(CheckpointFiles.randomSuffix())"
            do {
                try CheckpointFiles.renameItem(directory + "/" + old.name, directory + "/" + doomed)
            } catch {
                report.warnings.append("retention: could not remove \(old.name): \(error)")
                continue
            }
            remove(doomed, into: &report, reportAs: old.name)
        }
        return report
    }

    private func remove(_ name: String, into report: inout RetentionReport, reportAs: String? = nil) {
        do {
            try CheckpointFiles.removeTree(directory + "/" + name)
            report.removed.append(reportAs ?? name)
        } catch {
            report.warnings.append("retention: could not remove \(name): \(error)")
        }
    }

    private func isSavepoint(_ name: String) -> Bool {
        let path = directory + "/" + name + "/" + CheckpointManifest.fileName
        guard let bytes = try? CheckpointFiles.readAll(path), let m = try? CheckpointManifest.parse(bytes) else { return false }
        return m.info.kind == .savepoint
    }

    // MARK: reading

    /// The outcome of looking for a checkpoint to restore from.
    public struct Selection: Sendable {
        /// The newest usable checkpoint, or nil if there is none.
        public var checkpoint: StoredCheckpoint?
        /// One line per checkpoint skipped and why; the caller prints them.
        public var warnings: [String]
    }

    /// The newest checkpoint whose manifest parses and whose files all exist with the recorded
    /// sizes and checksums. Newer ones that are corrupt or partial are skipped with a warning.
    /// - Parameter verifyContents: also read every file and check its checksum (not just sizes).
    public func latestValid(verifyContents: Bool = true) -> Selection {
        var warnings: [String] = []
        let ids: [CheckpointId]
        do { ids = try checkpointIds() } catch {
            return Selection(checkpoint: nil, warnings: ["cannot list checkpoint directory: \(error)"])
        }
        for id in ids.reversed() {
            switch StoredCheckpoint.load(path: path(of: id), expectedId: id, verifyContents: verifyContents) {
            case .success(let checkpoint):
                return Selection(checkpoint: checkpoint, warnings: warnings)
            case .failure(let problem):
                warnings.append("WARNING: skipping checkpoint \(Self.name(of: id)) in '\(directory)': \(problem.description); falling back to an earlier checkpoint")
            }
        }
        if !ids.isEmpty {
            warnings.append("WARNING: none of the \(ids.count) checkpoints in '\(directory)' is usable; starting without restored state")
        }
        return Selection(checkpoint: nil, warnings: warnings)
    }

    /// The checkpoint named on the command line (`--from-checkpoint`): `chk-N`, `N`, or a path to
    /// a checkpoint directory. Throws with the reason if it is missing or corrupt.
    public func open(named name: String) throws -> StoredCheckpoint {
        if name.contains("/") { return try Self.open(path: name) }
        let dirName = Self.id(ofCompleted: name) != nil ? name : "chk-" + name
        guard let id = Self.id(ofCompleted: dirName) else {
            throw CheckpointStorageError("'\(name)' is not a checkpoint name (chk-N, N or a path)")
        }
        guard CheckpointFiles.isDirectory(path(of: id)) else {
            let available = ((try? checkpointIds()) ?? []).map(Self.name(of:))
            throw CheckpointStorageError("no checkpoint '\(dirName)' in '\(directory)' (available: \(available.isEmpty ? "none" : available.joined(separator: ", ")))")
        }
        return try StoredCheckpoint.load(path: path(of: id), expectedId: id, verifyContents: true).get(named: dirName, at: path(of: id))
    }

    /// The checkpoint in directory `path` (anywhere), verified.
    public static func open(path: String) throws -> StoredCheckpoint {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard CheckpointFiles.isDirectory(p) else { throw CheckpointStorageError("no checkpoint directory at '\(p)'") }
        let base = p.split(separator: "/").last.map(String.init) ?? p
        return try StoredCheckpoint.load(path: p, expectedId: id(ofCompleted: base), verifyContents: true).get(named: base, at: p)
    }
}

/// Writes the files of one checkpoint; `complete` publishes it, `abort` discards it. `writeFile`
/// may be called from several threads at once (e.g. one per subtask).
public final class CheckpointWriter: Sendable {
    public let checkpointId: CheckpointId
    /// The temporary directory the files go to.
    public let temporaryPath: String
    let storage: CheckpointStorage
    let tempName: String

    struct State {
        enum Phase { case open, completed, aborted }
        var phase = Phase.open
        var reserved: Set<String> = []
        var files: [CheckpointFileEntry] = []
    }
    let state = Mutex(State())

    init(storage: CheckpointStorage, id: CheckpointId, tempName: String) {
        self.storage = storage
        self.checkpointId = id
        self.tempName = tempName
        self.temporaryPath = storage.directory + "/" + tempName
    }

    /// Compresses `bytes` with zstd and writes them durably (fsync) as file `name` of the
    /// checkpoint. Names are plain (no `/`, not hidden) and unique within the checkpoint.
    @discardableResult
    public func writeFile(_ name: String, _ bytes: [UInt8], owner: StateFileOwner) throws -> CheckpointFileEntry {
        guard CheckpointManifest.isValidFileName(name) else {
            throw CheckpointStorageError("'\(name)' is not a valid checkpoint file name (plain name, no '/', not hidden, not \(CheckpointManifest.fileName))")
        }
        try state.withLock { s in
            guard s.phase == .open else { throw CheckpointStorageError("checkpoint \(checkpointId) is already \(s.phase == .completed ? "completed" : "aborted")") }
            guard s.reserved.insert(name).inserted else { throw CheckpointStorageError("checkpoint \(checkpointId) already has a file '\(name)'") }
        }
        do {
            let stored = try Zstd.compress(bytes, level: storage.compressionLevel)
            try CheckpointFiles.writeDurably(temporaryPath + "/" + name, stored)
            let entry = CheckpointFileEntry(name: name, owner: owner, rawSize: bytes.count, storedSize: stored.count,
                                            checksum: XXHash64.hash(stored))
            state.withLock { $0.files.append(entry) }
            return entry
        } catch {
            state.withLock { _ = $0.reserved.remove(name) }
            throw error
        }
    }

    /// What `complete` did.
    public struct Completion: Sendable {
        public var checkpoint: StoredCheckpoint
        /// Retention run after the checkpoint was published.
        public var retention: CheckpointStorage.RetentionReport
    }

    /// Writes the manifest, fsyncs, renames the temporary directory to `chk-N` (atomic), fsyncs
    /// the checkpoint directory, then applies retention. After it returns the checkpoint is
    /// durable: sinks may commit. On a throw nothing was published (except if only the final
    /// directory fsync failed, which the message says); call `abort()`.
    public func complete(_ info: CheckpointInfo) throws -> Completion {
        let files = try state.withLock { s -> [CheckpointFileEntry] in
            guard s.phase == .open else { throw CheckpointStorageError("checkpoint \(checkpointId) is already \(s.phase == .completed ? "completed" : "aborted")") }
            guard s.files.count == s.reserved.count else { throw CheckpointStorageError("checkpoint \(checkpointId): a file is still being written") }
            return s.files
        }
        let manifest = CheckpointManifest(checkpointId: checkpointId, info: info, files: files)
        try CheckpointFiles.writeDurably(temporaryPath + "/" + CheckpointManifest.fileName, manifest.serialized())
        try CheckpointFiles.syncDirectory(temporaryPath)
        let finalPath = storage.path(of: checkpointId)
        guard !CheckpointFiles.exists(finalPath) else {
            throw CheckpointStorageError("cannot complete checkpoint \(checkpointId): '\(finalPath)' already exists")
        }
        try CheckpointFiles.renameItem(temporaryPath, finalPath)
        state.withLock { $0.phase = .completed }
        storage.writerFinished(tempName)
        do {
            try CheckpointFiles.syncDirectory(storage.directory)
        } catch {
            throw CheckpointStorageError("checkpoint \(checkpointId) was renamed into place but the directory fsync failed, so it may not survive a power loss: \(error)")
        }
        let checkpoint = StoredCheckpoint(id: checkpointId, path: finalPath, manifest: manifest)
        return Completion(checkpoint: checkpoint, retention: storage.applyRetention())
    }

    /// Discards the checkpoint: removes the temporary directory. Idempotent; no-op once completed.
    public func abort() {
        let wasOpen = state.withLock { s -> Bool in
            guard s.phase == .open else { return false }
            s.phase = .aborted
            return true
        }
        guard wasOpen else { return }
        try? CheckpointFiles.removeTree(temporaryPath)
        storage.writerFinished(tempName)
    }
}

/// A completed, verified checkpoint: its manifest and verified access to its files.
public struct StoredCheckpoint: Sendable {
    public let id: CheckpointId
    public let path: String
    public let manifest: CheckpointManifest

    public var info: CheckpointInfo { manifest.info }

    /// Reads file `name`: checks its size and checksum against the manifest, then decompresses.
    public func readFile(_ name: String) throws -> [UInt8] {
        guard let entry = manifest.file(named: name) else {
            throw CheckpointStorageError("checkpoint \(id) has no file '\(name)'")
        }
        return try Self.read(entry, in: path, decompress: true)
    }

    /// The files written by `operatorUid`, by subtask.
    public func files(ofOperator operatorUid: String) -> [CheckpointFileEntry] {
        manifest.files.filter { $0.owner.operatorUid == operatorUid }.sorted { $0.owner.subtask < $1.owner.subtask }
    }

    /// The keyed-state files of `operatorUid` holding any of `keyGroups`: what a subtask owning
    /// that range after a change of parallelism reads.
    public func files(ofOperator operatorUid: String, intersecting keyGroups: ClosedRange<Int>) -> [CheckpointFileEntry] {
        files(ofOperator: operatorUid).filter { $0.owner.keyGroups?.overlaps(keyGroups) ?? false }
    }

    static func read(_ entry: CheckpointFileEntry, in dir: String, decompress: Bool) throws -> [UInt8] {
        let filePath = dir + "/" + entry.name
        guard let size = CheckpointFiles.fileSize(filePath) else {
            throw CheckpointStorageError("file '\(entry.name)' is missing")
        }
        guard size == entry.storedSize else {
            throw CheckpointStorageError("file '\(entry.name)' has \(size) bytes, the manifest says \(entry.storedSize) (truncated or overwritten)")
        }
        let stored = try CheckpointFiles.readAll(filePath)
        let sum = XXHash64.hash(stored)
        guard stored.count == entry.storedSize, sum == entry.checksum else {
            throw CheckpointStorageError("file '\(entry.name)' is corrupt: checksum \(XXHash64.hex(sum)), the manifest says \(XXHash64.hex(entry.checksum))")
        }
        guard decompress else { return [] }
        do {
            return try Zstd.decompress(stored, expectedSize: entry.rawSize)
        } catch {
            throw CheckpointStorageError("file '\(entry.name)' does not decompress: \(error)")
        }
    }

    /// Loads and verifies the checkpoint in `path`.
    static func load(path: String, expectedId: CheckpointId?, verifyContents: Bool) -> Result<StoredCheckpoint, CheckpointStorageError> {
        let manifestPath = path + "/" + CheckpointManifest.fileName
        guard CheckpointFiles.fileSize(manifestPath) != nil else {
            return .failure(CheckpointStorageError("it has no \(CheckpointManifest.fileName) (partial or not a checkpoint)"))
        }
        let manifest: CheckpointManifest
        do {
            manifest = try CheckpointManifest.parse(try CheckpointFiles.readAll(manifestPath))
        } catch {
            return .failure(CheckpointStorageError("its manifest is unreadable: \(error)"))
        }
        if let expectedId, manifest.checkpointId != expectedId {
            return .failure(CheckpointStorageError("its manifest is for checkpoint \(manifest.checkpointId), not \(expectedId)"))
        }
        for entry in manifest.files {
            do {
                if verifyContents {
                    _ = try read(entry, in: path, decompress: false)
                } else {
                    let size = CheckpointFiles.fileSize(path + "/" + entry.name)
                    guard size == entry.storedSize else {
                        throw CheckpointStorageError(size == nil ? "file '\(entry.name)' is missing"
                                                     : "file '\(entry.name)' has \(size!) bytes, the manifest says \(entry.storedSize)")
                    }
                }
            } catch let e as CheckpointStorageError {
                return .failure(e)
            } catch {
                return .failure(CheckpointStorageError("\(error)"))
            }
        }
        return .success(StoredCheckpoint(id: manifest.checkpointId, path: path, manifest: manifest))
    }
}

extension Result where Success == StoredCheckpoint, Failure == CheckpointStorageError {
    /// `get()`, with the message saying which checkpoint is unusable.
    fileprivate func get(named name: String, at path: String) throws -> StoredCheckpoint {
        switch self {
        case .success(let c): return c
        case .failure(let e): throw CheckpointStorageError("checkpoint '\(name)' at '\(path)' cannot be restored: \(e.description)")
        }
    }
}
