/// Completed checkpoints on disk under `--checkpoint-dir` (`CheckpointStorage`: `chk-N/` written
/// atomically with a checksummed manifest, the last K kept): one file per operator subtask holding
/// its `OperatorSubtaskState`, binary-encoded and zstd-compressed.
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
            for op in checkpoint.operators {
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
        } catch {
            writer.abort()
            throw error
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

    public static func load(_ stored: StoredCheckpoint) throws -> CompletedCheckpoint {
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
