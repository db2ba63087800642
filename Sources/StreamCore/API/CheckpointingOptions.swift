/// The checkpoint and state flags every job takes, parsed and applied in one place:
///
/// ```
/// --checkpoint-dir DIR          completed checkpoints (chk-N/, shared/); none: no checkpoints
/// --checkpoint-interval 30s     time between checkpoints (ms, s, m; default 30s)
/// --retained-checkpoints 3      how many checkpoints retention keeps
/// --from-checkpoint NAME        restore chk-N, N or a checkpoint directory; default: the newest
///                               intact checkpoint in --checkpoint-dir, if any
/// --state-backend heap|rocksdb  where keyed state lives (default heap)
/// --state-dir DIR               RocksDB's local working files (default <checkpoint-dir>-local);
///                               owned by the job: emptied at start (a killed run's files are garbage)
/// ```
public struct CheckpointingOptions: Sendable, Equatable {
    public var checkpointDirectory: String?
    public var interval: Duration = .seconds(30)
    public var retainedCheckpoints = 3
    public var fromCheckpoint: String?
    public var stateBackend = "heap"
    public var stateDirectory: String?

    public init() {}

    /// The flags this type understands, for usage lines.
    public static let usage = "[--checkpoint-dir DIR] [--checkpoint-interval 30s] [--retained-checkpoints 3] [--from-checkpoint chk-N|N|DIR] [--state-backend heap|rocksdb] [--state-dir DIR]"

    /// Takes the flag at `flag` (its value from `next`) if it is one of these; false otherwise.
    /// Throws with what to fix for a bad value.
    public mutating func parse(_ flag: String, next: () -> String?) throws -> Bool {
        func value() throws -> String {
            guard let v = next(), !v.isEmpty else { throw JobConfigurationError("\(flag) needs a value") }
            return v
        }
        switch flag {
        case "--checkpoint-dir": checkpointDirectory = try value()
        case "--checkpoint-interval": interval = try Self.parseDuration(try value(), flag: flag)
        case "--retained-checkpoints":
            let v = try value()
            guard let n = Int(v), n >= 1 else { throw JobConfigurationError("--retained-checkpoints must be a whole number ≥ 1, not '\(v)'") }
            retainedCheckpoints = n
        case "--from-checkpoint": fromCheckpoint = try value()
        case "--state-backend":
            let v = try value()
            do { stateBackend = try StateBackendKind.canonicalName(v) } catch {
                throw JobConfigurationError("--state-backend must be 'heap' or 'rocksdb', not '\(v)'")
            }
        case "--state-dir": stateDirectory = try value()
        default: return false
        }
        return true
    }

    /// `250ms`, `30s`, `5m`, or a plain number of milliseconds; positive.
    static func parseDuration(_ text: String, flag: String) throws -> Duration {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Int64(text.dropLast(suffix.count)), n > 0 { return .milliseconds(n * factor) }
        }
        if let n = Int64(text), n > 0 { return .milliseconds(n) }
        throw JobConfigurationError("\(flag) takes a positive duration such as 500ms, 30s or 2m, not '\(text)'")
    }

    /// Sets up `env`: file checkpoints, the checkpoint to restore, the state backend. Returns the
    /// warnings to print (checkpoints skipped as corrupt or partial) and the restored id, if any.
    @discardableResult
    public func apply(to env: StreamExecutionEnvironment) throws -> (restored: CheckpointId?, warnings: [String]) {
        let rocksDir = stateDirectory ?? checkpointDirectory.map { Self.trimmed($0) + "-local" }
        if stateBackend == "rocksdb" {
            guard let rocksDir else {
                throw JobConfigurationError("--state-backend rocksdb needs --state-dir (or --checkpoint-dir, next to which it keeps its files)")
            }
            // The directory belongs to this job: what a killed run left there (its databases and
            // local checkpoints) is garbage; state comes back from --checkpoint-dir.
            try CheckpointFiles.removeTree(rocksDir)
            env.stateBackend = try StateBackendKind.parse(stateBackend, directory: rocksDir)
        } else {
            env.stateBackend = .heap
        }
        guard let checkpointDirectory else {
            if fromCheckpoint != nil { throw JobConfigurationError("--from-checkpoint needs --checkpoint-dir") }
            return (nil, [])
        }
        let store = try FileCheckpointStore(directory: checkpointDirectory, retainedCheckpoints: retainedCheckpoints)
        env.enableCheckpointing(interval, store: store)
        if let fromCheckpoint {
            let cp = try store.load(named: fromCheckpoint)
            env.restoreFrom = cp
            return (cp.id, [])
        }
        let (latest, warnings) = store.latest()
        env.restoreFrom = latest
        return (latest?.id, warnings)
    }

    static func trimmed(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }
}
