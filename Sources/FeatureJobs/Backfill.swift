import Connectors
import Contracts
import Foundation
import StreamCore

/// Rebuilds the online store from the offline feature log: every committed row of the online
/// views (optionally only those with event time in `[from, to)`: the time fences) goes through
/// the same write-if-newer script as the jobs, so a value fresher than a logged row is never
/// overwritten, and running it twice changes nothing.
public struct OfflineBackfill {
    public var offlineDir: String
    public var redisHost = "127.0.0.1"
    public var redisPort = 6379
    public var project = "tributary"
    public var views: [FeatureView] = FeatureView.allCases.filter(\.isOnline)
    public var fromTime: Int64?
    public var toTime: Int64?
    public var keyTTLSeconds: Int?

    public init(offlineDir: String) { self.offlineDir = offlineDir }

    /// With the jobs' environment variables (TRIBUTARY_OFFLINE_DIR, REDIS_HOST, REDIS_PORT,
    /// FEAST_PROJECT) and the local stack's defaults.
    public init(environment env: [String: String]) throws {
        let s = try JobSettings.parse(job: "backfill", arguments: [], environment: env)
        self.init(offlineDir: s.offlineDir)
        redisHost = s.redisHost
        redisPort = s.redisPort
        project = s.project
    }

    /// The flags of `backfill` (and `drill`), with the same spelling and checks as the jobs'.
    public static let usage = "[--offline-dir DIR] [--redis HOST:PORT] [--project NAME] [--views v1,v2] [--from T] [--to T] [--key-ttl S]"

    /// Takes `flag value` if it is one of `usage`; false otherwise; throws with what to fix.
    public mutating func apply(flag: String, value: String) throws -> Bool {
        var s = JobSettings(job: "backfill")
        switch flag {
        case "--offline-dir": offlineDir = value
        case "--redis":
            try s.apply(flag: flag, value: value)
            redisHost = s.redisHost
            redisPort = s.redisPort
        case "--project": project = value
        case "--views":
            views = try value.split(separator: ",").map { name in
                guard let view = FeatureView(rawValue: String(name)), view.isOnline else {
                    throw JobConfigurationError("unknown online view '\(name)'; online views: \(FeatureView.allCases.filter(\.isOnline).map(\.rawValue).joined(separator: ", "))")
                }
                return view
            }
        case "--from":
            try s.apply(flag: flag, value: value)
            fromTime = s.fromTime
        case "--to":
            try s.apply(flag: flag, value: value)
            toTime = s.toTime
        case "--key-ttl":
            try s.apply(flag: flag, value: value)
            keyTTLSeconds = s.keyTTLSeconds
        default: return false
        }
        return true
    }

    public struct Result: Sendable {
        public var filesRead = 0
        public var rowsRead: Int64 = 0
        public var rowsFenced: Int64 = 0
        public var rowsWritten: Int64 = 0
        public var rowsNotNewer: Int64 = 0
    }

    /// One logged row as the update the job wrote for it.
    public static func update(_ view: FeatureView, _ row: AvroValue) throws -> FeastEntityUpdate {
        guard case .record(let fields) = row, fields.count == 2 + view.features.count,
              let entity = fields[0].value.stringValue, let ts = fields[1].value.longValue else {
            throw ContractViolation("\(view.rawValue): a row that does not have the view's shape")
        }
        var features: [(name: String, value: FeastValue)] = []
        for (f, def) in zip(fields.dropFirst(2), view.features) {
            let value: FeastValue
            switch f.value {
            case .long(let l): value = .int64(l)
            case .double(let d): value = .double(d)
            case .string(let s): value = .string(s)
            case .null: value = .null
            default: throw ContractViolation("\(view.rawValue).\(def.name): unexpected value \(f.value)")
            }
            features.append((def.name, value))
        }
        return FeastEntityUpdate(entity: FeastEntityKey(view.entity, .string(entity)),
                                 rows: [FeastViewRow(view: view.rawValue, eventTime: FeastTimestamp(milliseconds: ts), features: features)])
    }

    /// Writes every logged row; `progress` is called with the rows read so far now and then.
    public func run(progress: (Int64) -> Void = { _ in }) throws -> Result {
        let sink = FeastOnlineSink<FeastEntityUpdate>(project: project, options: .init(host: redisHost, port: redisPort, keyTTLSeconds: keyTTLSeconds)) { $0 }
        let writer = try sink.createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        var result = Result()
        let context = SinkWriterContext(timestamp: nil, currentWatermark: Int64.min)
        for view in views {
            for file in try OfflineLog.files(view, directory: offlineDir) {
                result.filesRead += 1
                for row in try AvroContainer.read(path: file).rows {
                    result.rowsRead += 1
                    let ts = row["event_timestamp"]?.longValue ?? 0
                    if let f = fromTime, ts < f { result.rowsFenced += 1; continue }
                    if let t = toTime, ts >= t { result.rowsFenced += 1; continue }
                    try writer.write(try Self.update(view, row), context: context)
                    if result.rowsRead % 100_000 == 0 { progress(result.rowsRead) }
                }
            }
        }
        try writer.close()
        result.rowsWritten = writer.rowsWritten
        result.rowsNotNewer = writer.rowsNotNewer
        return result
    }
}

extension OfflineLog {
    /// The committed files of `view` (hidden, uncommitted ones skipped), in name order.
    public static func files(_ view: FeatureView, directory: String) throws -> [String] {
        let root = directory + "/" + view.rawValue
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var files: [String] = []
        while let p = walker.nextObject() as? String {
            if p.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            if p.hasSuffix(".avro") { files.append(root + "/" + p) }
        }
        return files.sorted()
    }
}

/// A copy of everything in a Redis database (hash keys only: the Feast layout), for the drill.
public enum RedisSnapshot {
    public static func take(host: String, port: Int) throws -> [[UInt8]: [[UInt8]: [UInt8]]] {
        let c = try RedisConnection(host: host, port: port)
        var out: [[UInt8]: [[UInt8]: [UInt8]]] = [:]
        var cursor = "0"
        repeat {
            guard case .array(let parts) = try c.command(["SCAN", cursor, "COUNT", "2000"].map { Array($0.utf8) }),
                  parts.count == 2, case .string(let next) = parts[0], case .array(let found) = parts[1] else {
                throw ContractViolation("Redis answered SCAN with something else than [cursor, keys]")
            }
            cursor = String(decoding: next, as: UTF8.self)
            var keys: [[UInt8]] = []
            for case .string(let k) in found { keys.append(k) }
            let replies = try c.pipeline(keys.map { [Array("HGETALL".utf8), $0] })
            for (k, reply) in zip(keys, replies) {
                guard case .array(let items) = reply else { continue }
                var fields: [[UInt8]: [UInt8]] = [:]
                var i = 0
                while i + 1 < items.count {
                    if case .string(let f) = items[i], case .string(let v) = items[i + 1] { fields[f] = v }
                    i += 2
                }
                out[k] = fields
            }
        } while cursor != "0"
        return out
    }
}
