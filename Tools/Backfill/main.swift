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

var args = Array(CommandLine.arguments.dropFirst())
if args.contains("--help") || args.contains("-h") {
    print("usage: backfill \(OfflineBackfill.usage)")
    exit(0)
}
let started = Date()
do {
    var b = try OfflineBackfill(environment: ProcessInfo.processInfo.environment)
    while !args.isEmpty {
        let flag = args.removeFirst()
        guard !args.isEmpty else { fail("\(flag) needs a value") }
        guard try b.apply(flag: flag, value: args.removeFirst()) else { fail("unknown flag \(flag); backfill --help lists the flags") }
    }
    let r = try b.run { writeStderr("backfill: \($0) rows read") }
    let seconds = Date().timeIntervalSince(started)
    print("backfill: \(r.filesRead) files, \(r.rowsRead) rows read (\(r.rowsFenced) outside --from/--to), \(r.rowsWritten) written, \(r.rowsNotNewer) not newer than Redis; \(String(format: "%.2f", seconds)) s")
} catch {
    fail("\(error)")
}
