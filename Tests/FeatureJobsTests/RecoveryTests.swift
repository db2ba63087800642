import Connectors
import Contracts
import FeatureJobs
import Foundation
import Kafka
import StreamCore
import StreamTesting
import XCTest

/// The drill, backfill's time fences, and click-features end to end.
final class RecoveryTests: XCTestCase {
    override class func tearDown() { JobTestStack.stop() }

    /// `drill` wipes Redis and rebuilds it from the offline log: identical to before, because the
    /// log holds exactly the rows that were served online.
    func testDrillRestoresAnIdenticalRedis() throws {
        let (_, port) = try JobTestStack.ready()
        let t = try JobTestStack.topics(["txn": 4, "devices": 2, "clicks": 4])
        let (_, flags) = TxnFeaturesJobTests.generatorConfig(seed: 21, count: 5_000)
        try JobTestStack.generate("txn,devices,clicks", count: 5_000, seed: 21, topics: t, extra: flags)
        try JobTestStack.flushRedis()
        let offline = JobTestStack.tempDir("drill-offline")
        try JobTestStack.runInProcess(try JobTestStack.settings("txn-features", topics: t, checkpointDir: JobTestStack.tempDir("drill-chk"),
                                                                offlineDir: offline), build: buildTxnFeatures)
        try JobTestStack.runInProcess(try JobTestStack.settings("click-features", topics: t, checkpointDir: JobTestStack.tempDir("drill-chk2"),
                                                                offlineDir: offline), build: buildClickFeatures)
        let before = try JobTestStack.redisSnapshot()
        XCTAssertGreaterThan(before.count, 300)

        let r = TestProcesses.run([JobTestStack.binaries + "/drill", "--offline-dir", offline, "--redis", "127.0.0.1:\(port)"], mergeStderr: true)
        XCTAssertEqual(r.status, 0, r.stdout)
        XCTAssertTrue(r.stdout.contains("identical"), r.stdout)
        XCTAssertTrue(r.stdout.contains("time to recovery"), r.stdout)
        XCTAssertTrue(try JobTestStack.redisSnapshot() == before)

        // A row fresher than the log is never overwritten by a backfill; --to fences event times.
        let key = FeastLayout.hashKey(FeastEntityKey(["card_id": .string("card-1")]), project: "tributary")
        let redis = try JobTestStack.redis()
        let future = FeastTimestamp(milliseconds: 4_000_000_000_000)
        _ = try redis.command([Array("HSET".utf8), key, FeastLayout.timestampField(view: "txn_profile"), future.serialized(),
                               FeastLayout.featureField(view: "txn_profile", feature: "count_24h"), FeastValue.int64(-1).serialized()])
        try JobTestStack.flushRedis()
        _ = try redis.command([Array("HSET".utf8), key, FeastLayout.timestampField(view: "txn_profile"), future.serialized(),
                               FeastLayout.featureField(view: "txn_profile", feature: "count_24h"), FeastValue.int64(-1).serialized()])
        var b = OfflineBackfill(offlineDir: offline)
        b.redisPort = port
        let result = try b.run()
        XCTAssertGreaterThan(result.rowsNotNewer, 0)
        let kept = try redis.command([Array("HGET".utf8), key, FeastLayout.featureField(view: "txn_profile", feature: "count_24h")])
        XCTAssertEqual(kept, .string(FeastValue.int64(-1).serialized()), "the fresher value stayed")

        try JobTestStack.flushRedis()
        b.toTime = 0
        let fenced = try b.run()
        XCTAssertEqual(fenced.rowsWritten, 0)
        XCTAssertEqual(fenced.rowsFenced, fenced.rowsRead)
    }

    /// Replay of a time range: the same job over the retained topics with `--from`/`--to` processes
    /// only those event times (the rest is skipped and counted), through the same code path.
    func testReplayOfATimeRange() throws {
        _ = try JobTestStack.ready()
        let t = try JobTestStack.topics(["txn": 4, "devices": 2])
        let (config, flags) = TxnFeaturesJobTests.generatorConfig(seed: 31, count: 4_000)
        try JobTestStack.generate("txn,devices", count: 4_000, seed: 31, topics: t, extra: flags)
        let valid = try generatedTransactions(config, count: 4_000).compactMap { $0 }
        let from = config.startMillis + 200, to = config.startMillis + 500
        try JobTestStack.flushRedis()
        let offline = JobTestStack.tempDir("range-offline")
        let ctx = try JobTestStack.runInProcess(try JobTestStack.settings(
            "txn-features", topics: t, checkpointDir: JobTestStack.tempDir("range-chk"), offlineDir: offline,
            extra: ["--from", "\(from)", "--to", "\(to)", "--no-online"]), build: buildTxnFeatures)
        let inRange = valid.filter { $0.timestamp >= from && $0.timestamp < to }
        XCTAssertGreaterThan(inRange.count, 100)
        XCTAssertEqual(ctx.stats.outOfRange.load(ordering: .relaxed), Int64(valid.count - inRange.count))
        let expected = expectedCardRows(inRange)
        assertSameRows(try TxnFeaturesJobTests.offline(.txnStats5m, offline), expected.map { TxnFeaturesJobTests.describe($0)[0] }, "txn_stats_5m in range")
        XCTAssertTrue(try JobTestStack.redisSnapshot().isEmpty, "--no-online leaves Redis alone")
    }

    /// click-features: every click in a session row or the DLQ, the newest session-so-far row of
    /// each user in Redis.
    func testClickFeaturesEndToEnd() throws {
        _ = try JobTestStack.ready()
        let t = try JobTestStack.topics(["clicks": 4])
        try JobTestStack.generate("clicks", count: 6_000, seed: 3, topics: t,
                                  extra: ["--users", "200", "--late-share", "0", "--too-late-share", "0", "--malformed-share", "0.01"])
        try JobTestStack.flushRedis()
        let offline = JobTestStack.tempDir("clicks-offline")
        let ctx = try JobTestStack.runInProcess(try JobTestStack.settings("click-features", topics: t, checkpointDir: JobTestStack.tempDir("clicks-chk"),
                                                                          offlineDir: offline), build: buildClickFeatures)
        let valid = ctx.stats.recordsIn.load(ordering: .relaxed)
        XCTAssertEqual(valid + ctx.stats.deadLetters.load(ordering: .relaxed), 6_000, "records in = processed + DLQ")
        let sessions = try OfflineLog.read(.userLastSession, directory: offline)
        XCTAssertEqual(sessions.reduce(Int64(0)) { $0 + ($1["last_session_pages"]?.longValue ?? 0) }, valid, "every click is in one closed session")
        let live = try OfflineLog.read(.userSessionLive, directory: offline)
        XCTAssertGreaterThan(live.count, 1_000)
        var newest: [String: AvroValue] = [:]
        for row in live {
            let u = row["user_id"]!.stringValue!
            if (newest[u]?["event_timestamp"]?.longValue ?? .min) < row["event_timestamp"]!.longValue! { newest[u] = row }
        }
        let redis = try JobTestStack.redis()
        for (user, row) in newest {
            let key = FeastLayout.hashKey(FeastEntityKey(["user_id": .string(user)]), project: "tributary")
            let clicks = try redis.command([Array("HGET".utf8), key, FeastLayout.featureField(view: "user_session_live", feature: "session_clicks")])
            XCTAssertEqual(clicks, .string(FeastValue.int64(row["session_clicks"]!.longValue!).serialized()), user)
        }
    }
}
