import Connectors
import Contracts
import FeatureJobs
import Foundation
import Generators
import Kafka
import StreamCore
import StreamTesting
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// txn-features end to end against the job tests' own broker and redis-server.
final class TxnFeaturesJobTests: XCTestCase {
    override class func tearDown() { JobTestStack.stop() }

    /// The generator flags of these tests: few cards (so cards repeat), no late records (so window
    /// and join results do not depend on how partitions interleave), some malformed ones.
    static func generatorConfig(seed: UInt64, count: Int) -> (GeneratorConfig, [String]) {
        var c = GeneratorConfig()
        c.seed = seed
        c.cards = 300
        c.lateShare = 0
        c.tooLateShare = 0
        c.malformedShare = 0.01
        return (c, ["--cards", "300", "--late-share", "0", "--too-late-share", "0", "--malformed-share", "0.01"])
    }

    static func describe(_ r: CardFeatureRow) -> [String] {
        ["\(r.cardId)|\(r.eventTime)|\(r.count5m)|\(r.sum5m)|\(r.avg5m)|\(r.geoMismatchRatio5m)",
         "\(r.cardId)|\(r.eventTime)|\(r.count30m)|\(r.count24h)|\(r.sum24h)|\(r.avg24h)|\(r.geoMismatchRatioLastN)|\(r.deviceMismatchRatioLastN)|\(r.secondsSinceLastTxn.map { "\($0)" } ?? "null")|\(r.amountMinor)"]
    }

    /// An offline row as the same `a|b|c` text.
    static func describe(_ v: AvroValue) -> String {
        guard case .record(let fields) = v else { return "?" }
        return fields.map { f -> String in
            switch f.value {
            case .string(let s): s
            case .long(let l): "\(l)"
            case .double(let d): "\(d)"
            case .null: "null"
            default: "\(f.value)"
            }
        }.joined(separator: "|")
    }

    static func offline(_ view: FeatureView, _ dir: String) throws -> [String] {
        try OfflineLog.read(view, directory: dir).map(describe).sorted()
    }

    /// Generator seed → the rows a correct job produces: every emitted row in the offline log,
    /// each card's newest row in Redis (Feast's bytes), every malformed record in the DLQ.
    func testGoldenRunMatchesTheFeatureDefinitions() throws {
        _ = try JobTestStack.ready()
        let count = 4_000
        let t = try JobTestStack.topics(["txn": 4, "devices": 2, "features": 4])
        let (config, flags) = Self.generatorConfig(seed: 11, count: count)
        try JobTestStack.generate("txn,devices", count: count, seed: 11, topics: t, extra: flags)
        let generated = try generatedTransactions(config, count: count)
        let valid = generated.compactMap { $0 }
        let expected = expectedCardRows(valid)

        try JobTestStack.flushRedis()
        let offlineDir = JobTestStack.tempDir("golden-offline")
        let settings = try JobTestStack.settings("txn-features", topics: t, checkpointDir: JobTestStack.tempDir("golden-chk"),
                                                 offlineDir: offlineDir, extra: ["--features-topic", t["features"]!])
        let ctx = try JobTestStack.runInProcess(settings, build: buildTxnFeatures)

        // Records in = processed + DLQ (malformed transactions; device records have their own DLQ).
        let malformedTxns = generated.count - valid.count
        XCTAssertGreaterThan(malformedTxns, 0)
        XCTAssertEqual(ctx.stats.recordsIn.load(ordering: .relaxed), Int64(valid.count))
        // Device records are read too, counted apart (the summary's "side records in").
        XCTAssertEqual(ctx.stats.sideRecordsIn.load(ordering: .relaxed), Int64(try wellFormedDevices(config, count: count)))
        XCTAssertTrue(ctx.summary(checkpoints: "-", seconds: 1).contains("side records in      \(ctx.stats.sideRecordsIn.load(ordering: .relaxed)) (device records"))
        XCTAssertEqual(ctx.stats.deadLetterReasons.values.reduce(0, +), ctx.stats.deadLetters.load(ordering: .relaxed))

        // Offline log: exactly the expected rows of both online views.
        let stats5 = try Self.offline(.txnStats5m, offlineDir)
        let profile = try Self.offline(.txnProfile, offlineDir)
        assertSameRows(stats5, expected.map { Self.describe($0)[0] }, "txn_stats_5m")
        assertSameRows(profile, expected.map { Self.describe($0)[1] }, "txn_profile")
        XCTAssertGreaterThan(expected.count, 500)

        // Redis: each card's newest row, as Feast stores it.
        let redis = try JobTestStack.redis()
        var newest: [String: CardFeatureRow] = [:]
        for r in expected { newest[r.cardId] = r }
        for (card, row) in newest {
            let key = FeastLayout.hashKey(FeastEntityKey(["card_id": .string(card)]), project: "tributary")
            for view in row.onlineUpdate.rows {
                let ts = try redis.command([Array("HGET".utf8), key, FeastLayout.timestampField(view: view.view)])
                XCTAssertEqual(ts, .string(view.eventTime.serialized()), "\(card) \(view.view) _ts")
                for (name, value) in view.features {
                    let stored = try redis.command([Array("HGET".utf8), key, FeastLayout.featureField(view: view.view, feature: name)])
                    XCTAssertEqual(stored, .string(value.serialized()), "\(card) \(view.view):\(name)")
                }
            }
        }

        // The features topic (exactly once, one transaction per checkpoint): the same rows.
        let topicRows = try JobTestStack.readTopic(t["features"]!).map { v -> String in
            "\(v["card_id"]!.stringValue!)|\(v["event_timestamp"]!.longValue!)|\(v["count_5m"]!.longValue!)|\(v["sum_5m"]!.longValue!)"
        }
        assertSameRows(topicRows, expected.map { "\($0.cardId)|\($0.eventTime)|\($0.count5m)|\($0.sum5m)" }, "features topic")

        // Windows: every valid transaction is counted once in the tumbling windows.
        let tumbling = try OfflineLog.read(.txnWindow5m, directory: offlineDir)
        let counted = tumbling.reduce(Int64(0)) { $0 + ($1["count"]?.longValue ?? 0) }
        XCTAssertEqual(counted, Int64(valid.count))

        // Device join: each card's newest joined transaction's device is in Redis.
        let devices = try offlineDeviceRows(offlineDir)
        XCTAssertGreaterThan(devices.count, 100, "transactions were enriched by the device join")
        for (card, row) in devices.reduce(into: [String: AvroValue]()) { acc, v in
            let c = v["card_id"]!.stringValue!
            if (acc[c]?["event_timestamp"]?.longValue ?? .min) < v["event_timestamp"]!.longValue! { acc[c] = v }
        } {
            let key = FeastLayout.hashKey(FeastEntityKey(["card_id": .string(card)]), project: "tributary")
            let os = try redis.command([Array("HGET".utf8), key, FeastLayout.featureField(view: "txn_device", feature: "device_os")])
            XCTAssertEqual(os, .string(FeastValue.string(row["device_os"]!.stringValue!).serialized()))
        }
    }

    func offlineDeviceRows(_ dir: String) throws -> [AvroValue] { try OfflineLog.read(.txnDevice, directory: dir) }

    /// The same input at parallelism 3 (one more subtask than this machine's cores, as
    /// `make bench-features` runs it) gives the same Redis contents and offline log as the default 2.
    func testParallelismThreeGivesTheSameRedisAndOfflineLog() throws {
        let (t, redisA, offlineA) = try JobTestStack.referenceTxnRun(txnPartitions: 4, devicePartitions: 2, seed: 9, count: 30_000, name: "p3")
        try JobTestStack.flushRedis()
        let offlineB = JobTestStack.tempDir("p3-offline")
        let settings = try JobTestStack.settings("txn-features", topics: t, checkpointDir: JobTestStack.tempDir("p3-chk"), offlineDir: offlineB,
                                                 extra: ["--parallelism", "3"])
        XCTAssertEqual(settings.parallelism, 3)
        try JobTestStack.runInProcess(settings, build: buildTxnFeatures)
        let redisB = try JobTestStack.redisSnapshot()
        XCTAssertGreaterThan(redisA.count, 100)
        try assertSameOutput(redisB, offlineB, as: redisA, offlineA, "at parallelism 3 vs 2")
    }

    /// Run B left exactly run A's Redis contents and offline rows (the views every run writes alike).
    func assertSameOutput(_ redisB: [String: [String: String]], _ offlineB: String, as redisA: [String: [String: String]],
                          _ offlineA: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(redisA.count, redisB.count, file: file, line: line)
        XCTAssertTrue(redisA == redisB, "Redis differs \(what) for \(redisA.keys.filter { redisA[$0] != redisB[$0] }.count) keys",
                      file: file, line: line)
        for view in [FeatureView.txnStats5m, .txnProfile, .txnWindow5m, .txnWindow30m] {
            let a = try Self.offline(view, offlineA), b = try Self.offline(view, offlineB)
            XCTAssertFalse(a.isEmpty, file: file, line: line)
            assertSameRows(b, a, "\(view.rawValue) \(what)", file: file, line: line)
        }
    }

    /// kill -9 in the middle, restart from the latest checkpoint: the same Redis contents and the
    /// same offline log as a run that was never interrupted.
    func testCrashAndRestoreGivesTheSameRedisAndOfflineLog() throws {
        // Uninterrupted.
        let (t, redisA, offlineA) = try JobTestStack.referenceTxnRun(txnPartitions: 4, devicePartitions: 2, seed: 5, count: 60_000, name: "crash")

        // Killed once a checkpoint is complete, then restarted until it ends.
        try JobTestStack.flushRedis()
        let offlineB = JobTestStack.tempDir("b-offline"), chkB = JobTestStack.tempDir("b-chk")
        let (bootstrap, port) = try JobTestStack.ready()
        let args = [JobTestStack.binaries + "/txn-features", "--bootstrap", bootstrap, "--redis", "127.0.0.1:\(port)", "--bounded",
                    "--checkpoint-dir", chkB, "--checkpoint-interval", "200ms", "--offline-dir", offlineB,
                    "--registry", JobTestStack.root + "/schemas/registry.json", "--group-id", "crash-\(UUID().uuidString.prefix(8))",
                    "--features-topic", "none", "--progress-seconds", "0", "--txn-topic", t["txn"]!, "--device-topic", t["devices"]!]
        let first = try SpawnedProcess(args)
        var killed = false
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, first.poll() == nil {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: chkB)) ?? []
            if entries.contains(where: { $0.hasPrefix("chk-") }) {
                kill(first.pid, SIGKILL)
                killed = true
                break
            }
            usleep(5_000)
        }
        let firstStatus = first.wait()
        XCTAssertTrue(killed, "the first run ended (status \(firstStatus)) before a checkpoint completed: nothing was tested")
        XCTAssertEqual(firstStatus, 128 + SIGKILL)
        let second = try SpawnedProcess(args)
        XCTAssertEqual(second.wait(), 0, second.output())
        XCTAssertTrue(second.output().contains("restored from"), second.output())
        try assertSameOutput(try JobTestStack.redisSnapshot(), offlineB, as: redisA, offlineA, "after the crash vs uninterrupted")
    }
}

/// A child process (posix_spawn) whose output goes to a file; poll, wait, kill.
final class SpawnedProcess {
    let pid: pid_t
    let outPath: String
    private var status: Int32?

    init(_ argv: [String]) throws {
        outPath = NSTemporaryDirectory() + "spawned-\(UUID().uuidString)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var p: pid_t = 0
        let rc = posix_spawn(&p, argv[0], &actions, nil, &cargs, environ)
        guard rc == 0 else { throw XCTSkip("cannot run \(argv[0]): \(String(cString: strerror(rc)))") }
        pid = p
    }

    /// The exit status if it has ended (128 + signal when killed).
    func poll() -> Int32? {
        if let status { return status }
        var s: Int32 = 0
        guard waitpid(pid, &s, WNOHANG) == pid else { return nil }
        status = s & 0x7f == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f)
        return status
    }

    func wait() -> Int32 {
        while poll() == nil { usleep(10_000) }
        return status!
    }

    func output() -> String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }

    deinit {
        if poll() == nil { kill(pid, SIGKILL); _ = wait() }
        unlink(outPath)
    }
}
