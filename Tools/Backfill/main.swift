// backfill: rebuilds the Redis online store from the offline feature log, newest event time wins
// (a fresher value in Redis is never overwritten); --from/--to fence the event times written.
//
//   backfill [--offline-dir DIR] [--redis HOST:PORT] [--project NAME] [--views v1,v2] [--from T] [--to T] [--key-ttl S]
import FeatureJobs
import Foundation
import Kafka

func fail(_ message: String) -> Never {
    writeStderr("backfill: \(message)")
    exit(2)
}

let env = ProcessInfo.processInfo.environment
var b = OfflineBackfill(offlineDir: env["TRIBUTARY_OFFLINE_DIR"] ?? "data/offline")
b.redisHost = env["REDIS_HOST"] ?? b.redisHost
b.redisPort = env["REDIS_PORT"].flatMap(Int.init) ?? b.redisPort
b.project = env["FEAST_PROJECT"] ?? b.project
var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let flag = args.removeFirst()
    if flag == "--help" || flag == "-h" {
        print("usage: backfill [--offline-dir DIR] [--redis HOST:PORT] [--project NAME] [--views v1,v2] [--from T] [--to T] [--key-ttl S]")
        exit(0)
    }
    guard !args.isEmpty else { fail("\(flag) needs a value") }
    let v = args.removeFirst()
    do {
        switch flag {
        case "--offline-dir": b.offlineDir = v
        case "--redis":
            let parts = v.split(separator: ":")
            guard parts.count == 2, let p = Int(parts[1]) else { fail("--redis takes HOST:PORT, not '\(v)'") }
            b.redisHost = String(parts[0]); b.redisPort = p
        case "--project": b.project = v
        case "--views":
            b.views = try v.split(separator: ",").map { name in
                guard let view = FeatureView(rawValue: String(name)), view.isOnline else {
                    throw ContractViolation("unknown online view '\(name)'; online views: \(FeatureView.allCases.filter(\.isOnline).map(\.rawValue).joined(separator: ", "))")
                }
                return view
            }
        case "--from": b.fromTime = try JobSettings.parse(job: "backfill", arguments: ["--from", v], environment: [:]).fromTime
        case "--to": b.toTime = try JobSettings.parse(job: "backfill", arguments: ["--to", v], environment: [:]).toTime
        case "--key-ttl":
            guard let s = Int(v), s > 0 else { fail("--key-ttl takes seconds > 0") }
            b.keyTTLSeconds = s
        default: fail("unknown flag \(flag); backfill --help lists the flags")
        }
    } catch { fail("\(error)") }
}
let started = Date()
do {
    let r = try b.run { writeStderr("backfill: \($0) rows read") }
    let seconds = Date().timeIntervalSince(started)
    print("backfill: \(r.filesRead) files, \(r.rowsRead) rows read (\(r.rowsFenced) outside --from/--to), \(r.rowsWritten) written, \(r.rowsNotNewer) not newer than Redis; \(String(format: "%.2f", seconds)) s")
} catch {
    fail("\(error)")
}
