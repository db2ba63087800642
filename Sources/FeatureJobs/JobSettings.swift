import Connectors
import Foundation
import StreamCore

/// Everything a feature job is told, from (strongest first) flags, environment variables, a
/// config file (`--config FILE`: Flink's `config.yaml` keys where they apply, flat or nested), and
/// defaults for the native local stack. A bad flag, value or key fails at once with what to fix.
public struct JobSettings: Sendable, Equatable {
    public var job: String
    public var bootstrap = "127.0.0.1:9092"
    public var redisHost = "127.0.0.1"
    public var redisPort = 6379
    public var project = "tributary"
    public var offlineDir = "data/offline"
    public var registry = "schemas/registry.json"
    public var schemaRegistryURL: String?
    public var groupId: String
    /// Where a fresh start (no checkpoint restored) begins reading: the group's committed offsets
    /// (earliest where it has none), the beginning, or the end.
    public var startingOffsets = "committed"
    public var parallelism = 2
    public var checkpointing = CheckpointingOptions()
    /// Serve Prometheus metrics on /metrics at this port (0: any free port, printed at start).
    public var metricsPort: Int?
    public var metricsHost = "0.0.0.0"
    /// Stop at the end of what the topics hold (replay, backfill, tests) instead of running on.
    public var bounded = false
    /// Only events with event time in [from, to) are processed (replay of a time range); others are skipped and counted.
    public var fromTime: Int64?
    public var toTime: Int64?
    public var outOfOrderness: Duration = .seconds(5)
    public var idleness: Duration = .seconds(30)
    public var autoWatermarkInterval: Duration = .milliseconds(200)
    /// How long a partly filled batch may wait before it is sent downstream (Flink's execution.buffer-timeout).
    public var bufferTimeout: Duration = .milliseconds(10)
    public var keyTTLSeconds: Int?
    /// Entities (Redis keys) per online-store batch (`FeastOnlineOptions.maxBatch`).
    public var onlineBatch = FeastOnlineOptions().maxBatch
    /// The features topic (exactly-once); nil: not written.
    public var featuresTopic: String?
    public var lastN = 20
    /// Input topics (their DLQs are `<topic>.dlq`).
    public var txnTopic = "txn.events"
    public var deviceTopic = "device.enrich"
    public var clickTopic = "click.events"
    /// Retries (with backoff) while the broker or Redis cannot be reached at start.
    public var connectAttempts = 5
    public var writeOnline = true
    public var writeOffline = true
    /// Print a progress line every this many seconds (0: none).
    public var progressSeconds = 5
    /// Scale-out over processes (docs/scaling.md): this process is `processIndex` of
    /// `processCount` and reads the input partitions `p % processCount == processIndex`.
    public var processIndex = 0
    public var processCount = 1
    /// How repartition topics are read: read_committed (exactly once) or read_uncommitted.
    public var repartitionIsolation = "read_committed"

    public init(job: String) {
        self.job = job
        self.groupId = job
        self.featuresTopic = job == "txn-features" ? "features.txn" : "features.click"
    }

    /// Flags, with their meaning (for --help and errors).
    public static let flagHelp: [(String, String)] = [
        ("--config FILE", "a config file: Flink's keys (execution.checkpointing.interval, state.backend.type, parallelism.default, state.checkpoints.dir, …) and these flags' names without '--'"),
        ("--bootstrap HOST:PORT", "Kafka bootstrap servers (env KAFKA_BOOTSTRAP; default 127.0.0.1:9092)"),
        ("--redis HOST:PORT", "the Redis online store (env REDIS_HOST, REDIS_PORT; default 127.0.0.1:6379)"),
        ("--project NAME", "the Feast project (env FEAST_PROJECT; default tributary)"),
        ("--offline-dir DIR", "the offline feature log (env TRIBUTARY_OFFLINE_DIR; default data/offline)"),
        ("--registry FILE", "the schema registry file (default schemas/registry.json)"),
        ("--schema-registry URL", "a Confluent Schema Registry for unknown writer ids (env SCHEMA_REGISTRY_URL)"),
        ("--group-id ID", "the consumer group offsets are committed to (default: the job's name)"),
        ("--starting-offsets committed|earliest|latest", "where a start without a checkpoint reads from (default: the group's committed offsets, else the beginning)"),
        ("--parallelism N", "subtasks per operator (threads; default 2)"),
        ("--checkpoint-dir DIR", "completed checkpoints (env TRIBUTARY_CHECKPOINT_DIR; none: no checkpoints)"),
        ("--checkpoint-interval 30s", "time between checkpoints (default 30s, the brief's)"),
        ("--retained-checkpoints N", "checkpoints kept (default 3)"),
        ("--from-checkpoint chk-N|N|DIR", "restore this checkpoint (default: the newest intact one in --checkpoint-dir)"),
        ("--state-backend heap|rocksdb", "where keyed state lives (default heap)"),
        ("--state-dir DIR", "RocksDB's working files (default <checkpoint-dir>-local)"),
        ("--metrics-port PORT", "serve Prometheus metrics on http://HOST:PORT/metrics (env METRICS_PORT; 0 = any free port; off by default)"),
        ("--metrics-host ADDR", "the IPv4 address /metrics listens on (env METRICS_HOST; default 0.0.0.0)"),
        ("--bounded", "stop at the end of what the topics hold (replay, backfill)"),
        ("--from TIME --to TIME", "only events with event time in [from, to) (epoch ms or ISO 8601 UTC)"),
        ("--out-of-orderness 5s", "the watermark's bound"),
        ("--idleness 30s", "a partition without records this long is left out of the watermark"),
        ("--buffer-timeout 10ms", "longest wait of a partly filled batch between operators (Flink's execution.buffer-timeout)"),
        ("--key-ttl SECONDS", "Feast's key_ttl_seconds: EXPIRE on every written key"),
        ("--online-batch N", "Redis keys per online-store batch, each one WATCH/MULTI/EXEC transaction (default \(FeastOnlineOptions().maxBatch))"),
        ("--features-topic NAME|none", "the exactly-once features topic (default features.txn / features.click)"),
        ("--txn-topic NAME", "transactions in (default txn.events; dead letters to NAME.dlq)"),
        ("--device-topic NAME", "device records in (default device.enrich)"),
        ("--click-topic NAME", "clicks in (default click.events)"),
        ("--last-n N", "transactions in the mismatch ratios (txn-features; default 20)"),
        ("--no-online / --no-offline", "do not write Redis / the offline log"),
        ("--connect-attempts N", "tries (with backoff) to reach the broker and Redis at start (default 5)"),
        ("--progress-seconds N", "a progress line every N seconds on stderr (0: none; default 5)"),
        ("--process-count N", "scale-out: N processes run this job, each with its own --checkpoint-dir and --offline-dir; re-keyed streams go through repartition topics <group-id>-*-repartition (env TRIBUTARY_PROCESS_COUNT; default 1; docs/scaling.md)"),
        ("--process-index I", "scale-out: this process (0 … N-1) reads the input partitions p with p % N == I; 'hostname': the number at the end of the hostname (a StatefulSet pod's ordinal) (env TRIBUTARY_PROCESS_INDEX; default 0)"),
        ("--repartition-isolation read_committed|read_uncommitted", "how repartition topics are read (default read_committed: exactly once)"),
    ]

    public static func usage(_ job: String) -> String {
        "usage: \(job) [flags]\n" + flagHelp.map { "  \($0.0.padding(toLength: 32, withPad: " ", startingAt: 0)) \($0.1)" }.joined(separator: "\n")
    }

    /// Settings from `arguments` (without the program name) and `environment`.
    public static func parse(job: String, arguments: [String], environment: [String: String]) throws -> JobSettings {
        var s = JobSettings(job: job)
        // 1. the config file, 2. the environment, 3. flags: later ones win.
        var flags: [(String, String?)] = []
        var i = 0
        var configFile: String?
        while i < arguments.count {
            let a = arguments[i]
            guard a.hasPrefix("--") else { throw JobConfigurationError("unexpected argument '\(a)'; flags start with '--' (\(job) --help lists them)") }
            var name = a, value: String?
            if let eq = a.firstIndex(of: "=") {
                name = String(a[..<eq]); value = String(a[a.index(after: eq)...])
            } else if !Self.switches.contains(a), i + 1 < arguments.count {
                i += 1
                value = arguments[i]
            }
            if name == "--config" {
                guard let value else { throw JobConfigurationError("--config needs a file") }
                configFile = value
            } else {
                flags.append((name, value))
            }
            i += 1
        }
        if let configFile {
            for (key, value) in try Self.readConfig(configFile) { try s.apply(configKey: key, value: value, file: configFile) }
        }
        if let v = environment["KAFKA_BOOTSTRAP"], !v.isEmpty { s.bootstrap = v }
        if let v = environment["REDIS_HOST"], !v.isEmpty { s.redisHost = v }
        if let v = environment["REDIS_PORT"], !v.isEmpty { s.redisPort = try Self.port(v, "REDIS_PORT") }
        if let v = environment["FEAST_PROJECT"], !v.isEmpty { s.project = v }
        if let v = environment["TRIBUTARY_OFFLINE_DIR"], !v.isEmpty { s.offlineDir = v }
        if let v = environment["TRIBUTARY_CHECKPOINT_DIR"], !v.isEmpty { s.checkpointing.checkpointDirectory = v }
        if let v = environment["METRICS_PORT"], !v.isEmpty { s.metricsPort = try Self.port(v, "METRICS_PORT", allowZero: true) }
        if let v = environment["METRICS_HOST"], !v.isEmpty { s.metricsHost = v }
        if let v = environment["SCHEMA_REGISTRY_URL"], !v.isEmpty { s.schemaRegistryURL = v }
        if let v = environment["TRIBUTARY_PROCESS_INDEX"], !v.isEmpty { try s.apply(flag: "--process-index", value: v) }
        if let v = environment["TRIBUTARY_PROCESS_COUNT"], !v.isEmpty { try s.apply(flag: "--process-count", value: v) }
        for (name, value) in flags { try s.apply(flag: name, value: value) }
        if s.checkpointing.checkpointDirectory == "none" { s.checkpointing.checkpointDirectory = nil }
        if let f = s.fromTime, let t = s.toTime, f >= t { throw JobConfigurationError("--from must be before --to") }
        if s.processIndex == -1 {
            // A StatefulSet's pod is <name>-<ordinal>, its hostname too.
            let host = environment["HOSTNAME"].flatMap { $0.isEmpty ? nil : $0 } ?? ProcessInfo.processInfo.hostName
            guard let n = host.split(separator: "-").last.flatMap({ Int($0) }), n >= 0 else {
                throw JobConfigurationError("--process-index hostname: the hostname '\(host)' does not end in -<number> (a StatefulSet pod's does); pass the index instead")
            }
            s.processIndex = n
        }
        guard s.processIndex < s.processCount else {
            throw JobConfigurationError("--process-index \(s.processIndex) is not below --process-count \(s.processCount): the processes of a job are numbered 0 to \(s.processCount - 1)")
        }
        if s.processCount > 1, s.checkpointing.checkpointDirectory == nil {
            throw JobConfigurationError("--process-count \(s.processCount) needs --checkpoint-dir (one per process): repartition topics are written exactly once, one transaction per checkpoint")
        }
        return s
    }

    static let switches: Set<String> = ["--bounded", "--no-online", "--no-offline", "--help", "-h"]

    mutating func apply(flag: String, value: String?) throws {
        func v() throws -> String {
            guard let value, !value.isEmpty else { throw JobConfigurationError("\(flag) needs a value") }
            return value
        }
        switch flag {
        case "--bootstrap": bootstrap = try v()
        case "--redis":
            let text = try v()
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw JobConfigurationError("--redis takes HOST:PORT, not '\(text)'") }
            redisHost = parts[0]
            redisPort = try Self.port(parts[1], "--redis")
        case "--project": project = try v()
        case "--offline-dir": offlineDir = try v()
        case "--registry": registry = try v()
        case "--schema-registry": schemaRegistryURL = try v()
        case "--group-id": groupId = try v()
        case "--starting-offsets":
            let o = try v()
            guard ["committed", "earliest", "latest"].contains(o) else {
                throw JobConfigurationError("--starting-offsets takes committed, earliest or latest, not '\(o)'")
            }
            startingOffsets = o
        case "--parallelism": parallelism = try Self.positive(try v(), flag)
        case "--metrics-port": metricsPort = try Self.port(try v(), flag, allowZero: true)
        case "--metrics-host": metricsHost = try v()
        case "--bounded": bounded = true
        case "--no-online": writeOnline = false
        case "--no-offline": writeOffline = false
        case "--from": fromTime = try Self.time(try v(), flag)
        case "--to": toTime = try Self.time(try v(), flag)
        case "--out-of-orderness": outOfOrderness = try Self.duration(try v(), flag, allowZero: true)
        case "--idleness": idleness = try Self.duration(try v(), flag, allowZero: false)
        case "--auto-watermark-interval": autoWatermarkInterval = try Self.duration(try v(), flag, allowZero: true)
        case "--buffer-timeout": bufferTimeout = try Self.duration(try v(), flag, allowZero: true)
        case "--key-ttl": keyTTLSeconds = try Self.positive(try v(), flag)
        case "--online-batch": onlineBatch = try Self.positive(try v(), flag)
        case "--features-topic":
            let t = try v()
            featuresTopic = t == "none" ? nil : t
        case "--txn-topic": txnTopic = try v()
        case "--device-topic": deviceTopic = try v()
        case "--click-topic": clickTopic = try v()
        case "--last-n": lastN = try Self.positive(try v(), flag)
        case "--connect-attempts": connectAttempts = try Self.positive(try v(), flag)
        case "--process-index":
            let t = try v()
            if t == "hostname" { processIndex = -1; return }   // resolved in `parse`
            guard let n = Int(t), n >= 0 else { throw JobConfigurationError("--process-index takes a whole number ≥ 0 or 'hostname', not '\(t)'") }
            processIndex = n
        case "--process-count": processCount = try Self.positive(try v(), flag)
        case "--repartition-isolation":
            let t = try v()
            guard ["read_committed", "read_uncommitted"].contains(t) else {
                throw JobConfigurationError("--repartition-isolation takes read_committed or read_uncommitted, not '\(t)'")
            }
            repartitionIsolation = t
        case "--progress-seconds":
            let t = try v()
            guard let n = Int(t), n >= 0 else { throw JobConfigurationError("--progress-seconds takes a whole number ≥ 0, not '\(t)'") }
            progressSeconds = n
        default:
            var it = [value].compactMap { $0 }.makeIterator()
            if try checkpointing.parse(flag, next: { it.next() }) { return }
            throw JobConfigurationError("unknown flag \(flag); \(job) --help lists the flags")
        }
    }

    /// Flink's configuration keys that mean something here, and the flag each sets.
    public static let flinkKeys: [String: String] = [
        "execution.checkpointing.interval": "--checkpoint-interval",
        "execution.checkpointing.dir": "--checkpoint-dir",
        "state.checkpoints.dir": "--checkpoint-dir",
        "execution.checkpointing.num-retained": "--retained-checkpoints",
        "state.checkpoints.num-retained": "--retained-checkpoints",
        "execution.state-recovery.path": "--from-checkpoint",
        "state.backend.type": "--state-backend",
        "state.backend": "--state-backend",
        "parallelism.default": "--parallelism",
        "pipeline.auto-watermark-interval": "--auto-watermark-interval",
        "execution.buffer-timeout": "--buffer-timeout",
        "metrics.reporter.prom.port": "--metrics-port",
        "metrics.reporter.prom.host": "--metrics-host",
    ]

    mutating func apply(configKey key: String, value raw: String, file: String) throws {
        var value = raw
        if let flag = Self.flinkKeys[key] {
            // Flink's spellings: hashmap is the heap backend; file:// URIs; durations like "10 s" or "1 min".
            if flag == "--state-backend", value == "hashmap" { value = "heap" }
            if flag == "--checkpoint-dir" || flag == "--from-checkpoint", value.hasPrefix("file://") { value = String(value.dropFirst(7)) }
            if ["--checkpoint-interval", "--auto-watermark-interval", "--buffer-timeout"].contains(flag) { value = Self.flinkDuration(value) }
            do { try apply(flag: flag, value: value) } catch let e as JobConfigurationError {
                throw JobConfigurationError("\(file): \(key): \(e.description)")
            }
            return
        }
        let flag = "--" + key
        if Self.switches.contains(flag) {
            if ["true", "yes", "on"].contains(value.lowercased()) { try apply(flag: flag, value: nil) }
            return
        }
        guard Self.flagHelp.contains(where: { $0.0.hasPrefix(flag + " ") || $0.0 == flag })
                || CheckpointingOptions.usage.contains("[" + flag + " ") else {
            throw JobConfigurationError("\(file): unknown key '\(key)' (Flink keys understood: \(Self.flinkKeys.keys.sorted().joined(separator: ", ")); or a flag's name without '--')")
        }
        do { try apply(flag: flag, value: value) } catch let e as JobConfigurationError {
            throw JobConfigurationError("\(file): \(key): \(e.description)")
        }
    }

    /// Flink durations ("10 s", "10s", "1 min", "500 ms", "10000") to ours.
    static func flinkDuration(_ text: String) -> String {
        let t = text.replacingOccurrences(of: " ", with: "").lowercased()
        for (suffix, unit) in [("min", "m"), ("minutes", "m"), ("seconds", "s"), ("sec", "s"), ("milliseconds", "ms")] where t.hasSuffix(suffix) {
            return String(t.dropLast(suffix.count)) + unit
        }
        return t
    }

    /// `key: value` lines (YAML, flat or nested by indentation); `#` comments.
    static func readConfig(_ path: String) throws -> [(String, String)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw JobConfigurationError("cannot read the config file '\(path)'")
        }
        var out: [(String, String)] = []
        var stack: [(indent: Int, key: String)] = []
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            guard !line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) else { continue }
            let indent = line.prefix { $0 == " " }.count
            guard let colon = line.firstIndex(of: ":") else {
                throw JobConfigurationError("\(path):\(n + 1): expected 'key: value', got '\(rawLine)'")
            }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, (value.hasPrefix("\"") && value.hasSuffix("\"")) || (value.hasPrefix("'") && value.hasSuffix("'")) {
                value = String(value.dropFirst().dropLast())
            }
            while let last = stack.last, last.indent >= indent { stack.removeLast() }
            let full = (stack.map(\.key) + [key]).joined(separator: ".")
            if value.isEmpty { stack.append((indent, key)) } else { out.append((full, value)) }
        }
        return out
    }

    static func port(_ text: String, _ what: String, allowZero: Bool = false) throws -> Int {
        guard let p = Int(text), ((allowZero ? 0 : 1)...65535).contains(p) else {
            throw JobConfigurationError("\(what) must be a port number (\(allowZero ? 0 : 1)–65535), not '\(text)'")
        }
        return p
    }

    static func positive(_ text: String, _ flag: String) throws -> Int {
        guard let n = Int(text), n >= 1 else { throw JobConfigurationError("\(flag) takes a whole number ≥ 1, not '\(text)'") }
        return n
    }

    static func duration(_ text: String, _ flag: String, allowZero: Bool) throws -> Duration {
        if allowZero, text == "0" || text == "0ms" || text == "0s" { return .zero }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Int64(text.dropLast(suffix.count)), n > 0 { return .milliseconds(n * factor) }
        }
        if let n = Int64(text), n > 0 { return .milliseconds(n) }
        throw JobConfigurationError("\(flag) takes a duration such as 500ms, 5s, 2m or 1h, not '\(text)'")
    }

    /// Epoch milliseconds, or ISO 8601 in UTC (`2026-01-01T00:00:00Z`).
    static func time(_ text: String, _ flag: String) throws -> Int64 {
        if let ms = Int64(text) { return ms }
        let f = ISO8601DateFormatter()
        if let d = f.date(from: text) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        throw JobConfigurationError("\(flag) takes epoch milliseconds or an ISO 8601 UTC time like 2026-01-01T00:00:00Z, not '\(text)'")
    }
}
