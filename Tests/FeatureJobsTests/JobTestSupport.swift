import Connectors
import Contracts
import FeatureJobs
import Foundation
import Generators
import Kafka
import StreamCore
import StreamTesting
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A broker and a redis-server of their own for the job tests (scripts/local-broker.sh and
/// scripts/redis-test-server.sh, state under .build/feature-jobs-*), stopped by PID at the end.
enum JobTestStack {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let brokerDir = root + "/.build/feature-jobs-broker"
    static let redisDir = root + "/.build/feature-jobs-redis"
    static let binaries = root + "/.build/debug"

    /// Started on first use, stopped by each test class's tearDown (and started again by the next).
    static let running = Mutex<(bootstrap: String, redisPort: Int)?>(nil)

    static func start() -> (bootstrap: String, redisPort: Int)? {
        var bootstrap = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP"].flatMap { $0.isEmpty ? nil : $0 }
        if bootstrap == nil {
            let r = TestProcesses.run(["/bin/bash", root + "/scripts/local-broker.sh", "start"], env: ["KAFKA_LOCAL_DIR": brokerDir])
            guard r.status == 0 else { return nil }
            bootstrap = r.stdout.split(separator: "\n").last.map(String.init)
        }
        let r = TestProcesses.run(["/bin/bash", root + "/scripts/redis-test-server.sh", "start"], env: ["REDIS_TEST_DIR": redisDir])
        guard r.status == 0, let b = bootstrap, let port = Int(r.stdout.split(separator: "\n").last.map(String.init) ?? "") else { return nil }
        return (b, port)
    }

    static func stop() {
        running.withLock { $0 = nil }
        _ = TestProcesses.run(["/bin/bash", root + "/scripts/local-broker.sh", "stop"], env: ["KAFKA_LOCAL_DIR": brokerDir])
        _ = TestProcesses.run(["/bin/bash", root + "/scripts/redis-test-server.sh", "stop"], env: ["REDIS_TEST_DIR": redisDir])
    }

    static func ready() throws -> (bootstrap: String, redisPort: Int) {
        let stack = running.withLock { current -> (bootstrap: String, redisPort: Int)? in
            if current == nil { current = start() }
            return current
        }
        return try XCTUnwrap(stack, "scripts/local-broker.sh or scripts/redis-test-server.sh failed to start")
    }

    /// Fresh topics for one test (and their DLQs): role → name.
    static func topics(_ roles: [String: Int], test: String = #function) throws -> [String: String] {
        let run = UUID().uuidString.prefix(8).lowercased()
        var names: [String: String] = [:]
        var create: [String: Int] = [:]
        for (role, partitions) in roles {
            let name = "\(test.replacingOccurrences(of: "()", with: ""))-\(run)-\(role)"
            names[role] = name
            create[name] = partitions
            create[name + ".dlq"] = 1
        }
        try KafkaAdmin.createTopics(KafkaConfig(bootstrapServers: try ready().bootstrap), create)
        return names
    }

    static func redis() throws -> RedisConnection {
        try RedisConnection(host: "127.0.0.1", port: try ready().redisPort)
    }

    /// Every hash in Redis: key → field → value (bytes as hex, so they compare and print).
    static func redisSnapshot() throws -> [String: [String: String]] {
        let c = try redis()
        var keys: [[UInt8]] = []
        var cursor = "0"
        repeat {
            guard case .array(let parts) = try c.command(["SCAN", cursor, "COUNT", "1000"].map { Array($0.utf8) }),
                  parts.count == 2, case .string(let next) = parts[0], case .array(let found) = parts[1] else {
                throw XCTSkip("unexpected SCAN reply")
            }
            cursor = String(decoding: next, as: UTF8.self)
            for case .string(let k) in found { keys.append(k) }
        } while cursor != "0"
        var out: [String: [String: String]] = [:]
        for k in keys {
            guard case .array(let items) = try c.command([Array("HGETALL".utf8), k]) else { continue }
            var fields: [String: String] = [:]
            var i = 0
            while i + 1 < items.count {
                if case .string(let f) = items[i], case .string(let v) = items[i + 1] { fields[hex(f)] = hex(v) }
                i += 2
            }
            out[hex(k)] = fields
        }
        return out
    }

    static func flushRedis() throws { _ = try redis().command("FLUSHALL") }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    /// Runs `generate` for `streams` into the given topics (unthrottled).
    static func generate(_ streams: String, count: Int, seed: Int, topics: [String: String], extra: [String] = []) throws {
        let (bootstrap, _) = try ready()
        var args = [binaries + "/generate", "--bootstrap", bootstrap, "--streams", streams, "--count", "\(count)",
                    "--rate", "0", "--seed", "\(seed)", "--registry", root + "/schemas/registry.json"]
        if let t = topics["txn"] { args += ["--txn-topic", t] }
        if let t = topics["devices"] { args += ["--devices-topic", t] }
        if let t = topics["clicks"] { args += ["--clicks-topic", t] }
        let r = TestProcesses.run(args + extra, mergeStderr: true)
        XCTAssertEqual(r.status, 0, r.stdout)
    }

    /// Settings for a job against the test stack.
    static func settings(_ job: String, topics: [String: String], checkpointDir: String, offlineDir: String,
                         extra: [String] = []) throws -> JobSettings {
        let (bootstrap, port) = try ready()
        var args = ["--bootstrap", bootstrap, "--redis", "127.0.0.1:\(port)", "--bounded", "--progress-seconds", "0",
                    "--checkpoint-dir", checkpointDir, "--offline-dir", offlineDir, "--checkpoint-interval", "500ms",
                    "--registry", root + "/schemas/registry.json", "--group-id", "test-\(UUID().uuidString.prefix(8))",
                    "--features-topic", "none", "--connect-attempts", "2"]
        if let t = topics["txn"] { args += ["--txn-topic", t] }
        if let t = topics["devices"] { args += ["--device-topic", t] }
        if let t = topics["clicks"] { args += ["--click-topic", t] }
        return try JobSettings.parse(job: job, arguments: args + extra, environment: [:])
    }

    /// Runs a job in this process until its bounded input ends.
    @discardableResult
    static func runInProcess(_ settings: JobSettings,
                             build: (StreamExecutionEnvironment, FeatureJobContext) throws -> Void) throws -> FeatureJobContext {
        let ctx = try FeatureJobContext(settings: settings)
        let env = StreamExecutionEnvironment(parallelism: settings.parallelism)
        env.autoWatermarkInterval = .milliseconds(50)
        try settings.checkpointing.apply(to: env)
        try build(env, ctx)
        _ = try env.execute(settings.job)
        return ctx
    }

    /// Every record of `topic` (read_uncommitted: the local broker's last stable offset can lag), decoded.
    static func readTopic(_ topic: String) throws -> [AvroValue] {
        let registry = try ContractRegistry(file: root + "/schemas/registry.json")
        var config = KafkaConfig(bootstrapServers: try ready().bootstrap)
        config.properties["isolation.level"] = "read_uncommitted"
        let env = StreamExecutionEnvironment(parallelism: 1)
        let source = KafkaSource<AvroValue>(config: config, topics: [topic], groupId: "reader-\(UUID().uuidString.prefix(8))", bounded: true) {
            let codec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[5]!)
            return AvroValueReader(codec: codec)
        }
        return try env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "read \(topic)").executeAndCollect()
    }

    /// Fresh topics (`txn`, `devices`) with `count` seeded transactions and device records (the
    /// golden test's generator settings), and txn-features run over them in this process without
    /// interruption: the reference a crash or a scale-out run must reproduce.
    static func referenceTxnRun(txnPartitions: Int, devicePartitions: Int, seed: UInt64, count: Int, name: String) throws
        -> (topics: [String: String], redis: [String: [String: String]], offlineDir: String) {
        _ = try ready()
        let t = try topics(["txn": txnPartitions, "devices": devicePartitions], test: name)
        let (_, flags) = TxnFeaturesJobTests.generatorConfig(seed: seed, count: count)
        try generate("txn,devices", count: count, seed: Int(seed), topics: t, extra: flags)
        try flushRedis()
        let offline = tempDir("\(name)-reference-offline")
        try runInProcess(try settings("txn-features", topics: t, checkpointDir: tempDir("\(name)-reference-chk"), offlineDir: offline),
                         build: buildTxnFeatures)
        return (t, try redisSnapshot(), offline)
    }

    static func tempDir(_ name: String) -> String {
        let d = NSTemporaryDirectory() + "feature-jobs-\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}

/// The transactions `generate` sends for `config`, decoded as the job reads them (nil: malformed).
func generatedTransactions(_ config: GeneratorConfig, count: Int) throws -> [Transaction?] {
    let registry = try ContractRegistry(file: JobTestStack.root + "/schemas/registry.json")
    let codec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[1]!)
    let g = TransactionGenerator(config)
    return try (0..<Int64(count)).map { i in
        var r = g.record(i)
        _ = try r.encode(with: codec, config: config, index: i, stream: 1)
        if r.malformed != nil { return nil }
        return try Transaction(avro: codec.decode(try codec.encode(r.value, schemaId: r.schemaId)))
    }
}

/// How many of the generated device records are well formed (the others go to the device DLQ).
func wellFormedDevices(_ config: GeneratorConfig, count: Int) throws -> Int {
    let registry = try ContractRegistry(file: JobTestStack.root + "/schemas/registry.json")
    let codec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[4]!)
    let g = DeviceGenerator(config)
    return try (0..<Int64(count)).reduce(0) { n, i in
        var r = g.record(i)
        _ = try r.encode(with: codec, config: config, index: i, stream: 3)
        return r.malformed == nil ? n + 1 : n
    }
}

/// The card features by brute force over the exact definitions (docs/features.md), per card in
/// arrival order: the rows a correct job emits, independent of CardHistory's incremental code.
func expectedCardRows(_ txns: [Transaction], lastN: Int = 20) -> [CardFeatureRow] {
    var seen: [String: [Transaction]] = [:]
    var newest: [String: Int64] = [:]
    var out: [CardFeatureRow] = []
    var geoFlags: [String: [Bool]] = [:]
    var devFlags: [String: [Bool]] = [:]
    for t in txns {
        let before = seen[t.cardId] ?? []
        let geo = before.last.map { $0.country != t.country } ?? false
        let dev = !before.isEmpty && !before.suffix(lastN).contains { $0.deviceId == t.deviceId }
        geoFlags[t.cardId, default: []].append(geo)
        devFlags[t.cardId, default: []].append(dev)
        seen[t.cardId, default: []].append(t)
        let ts = t.timestamp
        let previous = newest[t.cardId]
        guard previous.map({ ts > $0 }) ?? true else { continue }
        newest[t.cardId] = ts
        let all = seen[t.cardId]!
        let flags = geoFlags[t.cardId]!
        let in5 = all.indices.filter { all[$0].timestamp >= ts - 300_000 && all[$0].timestamp <= ts }
        let in30 = all.filter { $0.timestamp >= ts - 1_800_000 && $0.timestamp <= ts }
        let m = (ts / 60_000) * 60_000
        let day = all.filter { $0.timestamp >= m - 1_439 * 60_000 && $0.timestamp <= ts }
        let sum5 = in5.reduce(Int64(0)) { $0 + all[$1].amountMinor }
        let sumDay = day.reduce(Int64(0)) { $0 + $1.amountMinor }
        let lastGeo = flags.suffix(lastN), lastDev = devFlags[t.cardId]!.suffix(lastN)
        out.append(CardFeatureRow(
            cardId: t.cardId, txnId: t.txnId, eventTime: ts, ingestMillis: 0,
            count5m: Int64(in5.count), sum5m: sum5, avg5m: Double(sum5) / Double(in5.count),
            geoMismatchRatio5m: Double(in5.filter { flags[$0] }.count) / Double(in5.count),
            count30m: Int64(in30.count), count24h: Int64(day.count), sum24h: sumDay,
            avg24h: Double(sumDay) / Double(day.count),
            geoMismatchRatioLastN: Double(lastGeo.filter { $0 }.count) / Double(lastGeo.count),
            deviceMismatchRatioLastN: Double(lastDev.filter { $0 }.count) / Double(lastDev.count),
            secondsSinceLastTxn: previous.flatMap { ts - $0 <= 86_400_000 ? Double(ts - $0) / 1_000 : nil },
            amountMinor: t.amountMinor))
    }
    return out
}

/// Equal multisets of rows, or a failure naming a few differences (not thousands of rows).
func assertSameRows(_ actual: [String], _ expected: [String], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    var counts: [String: Int] = [:]
    for r in actual { counts[r, default: 0] += 1 }
    for r in expected { counts[r, default: 0] -= 1 }
    let extra = counts.filter { $0.value > 0 }.keys.sorted(), missing = counts.filter { $0.value < 0 }.keys.sorted()
    if !extra.isEmpty || !missing.isEmpty {
        XCTFail("\(what): \(actual.count) rows, \(expected.count) expected; \(extra.count) unexpected (e.g. \(extra.prefix(3))), \(missing.count) missing (e.g. \(missing.prefix(3)))", file: file, line: line)
    }
}

final class AvroValueReader: KafkaRecordDeserializer {
    let codec: ConfluentAvroCodec
    init(codec: ConfluentAvroCodec) { self.codec = codec }
    func deserialize(_ m: KafkaMessage) throws(DeserializationError) -> AvroValue {
        guard let v = m.value else { throw DeserializationError(reason: "UNDECODABLE", message: "no value") }
        do { return try codec.decode(v) } catch { throw DeserializationError(reason: error.reason, message: error.description) }
    }
}
