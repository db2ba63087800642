// drill: the online store's disaster drill. Snapshots Redis, wipes it, rebuilds it from the
// offline log (backfill) and — with --replay — from the topics (a command that restarts the jobs
// from their latest checkpoints, bounded), checks the result equals the snapshot and prints the
// time to recovery. Exit 0 when identical, 1 when not, 2 for bad flags or an unreachable Redis.
//
//   drill [--offline-dir DIR] [--redis HOST:PORT] [--project NAME] [--views …] [--from T] [--to T] [--replay "COMMAND"]
import Connectors
import FeatureJobs
import Foundation
import Kafka

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    writeStderr("drill: \(message)")
    exit(2)
}

var replay: String?
var backfill: OfflineBackfill
do {
    backfill = try OfflineBackfill(environment: ProcessInfo.processInfo.environment)
    var args = Array(CommandLine.arguments.dropFirst())
    while !args.isEmpty {
        let flag = args.removeFirst()
        if flag == "--help" || flag == "-h" {
            print("usage: drill \(OfflineBackfill.usage) [--replay \"COMMAND\"]")
            exit(0)
        }
        guard !args.isEmpty else { fail("\(flag) needs a value") }
        let v = args.removeFirst()
        if flag == "--replay" { replay = v } else if try !backfill.apply(flag: flag, value: v) {
            fail("unknown flag \(flag); drill --help lists the flags")
        }
    }
} catch {
    fail("\(error)")
}

do {
    let before = try RedisSnapshot.take(host: backfill.redisHost, port: backfill.redisPort)
    let fields = before.values.reduce(0) { $0 + $1.count }
    print("drill: snapshot of \(before.count) keys (\(fields) fields) at \(backfill.redisHost):\(backfill.redisPort)")
    let c = try RedisConnection(host: backfill.redisHost, port: backfill.redisPort)
    _ = try c.command("FLUSHDB")
    print("drill: Redis wiped")
    let started = Date()
    let r = try backfill.run { writeStderr("drill: backfill: \($0) rows read") }
    print("drill: backfill from \(backfill.offlineDir): \(r.rowsRead) rows, \(r.rowsWritten) written in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
    if let replay {
        print("drill: replaying the topics: \(replay)")
        let status = system(replay)
        if status != 0 { fail("the replay command exited with status \(status)") }
    }
    let recovery = Date().timeIntervalSince(started)
    let after = try RedisSnapshot.take(host: backfill.redisHost, port: backfill.redisPort)
    let differing = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }
    if differing.isEmpty {
        print("drill: OK — Redis rebuilt identical to the snapshot (\(after.count) keys); time to recovery \(String(format: "%.2f", recovery)) s")
        exit(0)
    }
    print("drill: FAILED — \(differing.count) of \(before.count) keys differ from the snapshot (\(differing.filter { after[$0] == nil }.count) missing); time \(String(format: "%.2f", recovery)) s")
    exit(1)
} catch {
    fail("\(error)")
}
