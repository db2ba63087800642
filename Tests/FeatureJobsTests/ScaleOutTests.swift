import Connectors
import FeatureJobs
import Foundation
import Generators
@testable import Kafka
import StreamCore
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Scale-out over processes (docs/scaling.md): txn-features as two processes splitting the
/// partitions, the device join's re-keys through repartition topics, one process killed and
/// restarted — the same Redis contents and offline log as one process.
final class ScaleOutTests: XCTestCase {
    override class func tearDown() { JobTestStack.stop() }

    func testTwoProcessesWithAKillGiveTheSingleProcessResult() throws {
        let started = Date()
        // One process.
        let (t, single, offlineA) = try JobTestStack.referenceTxnRun(txnPartitions: 12, devicePartitions: 6, seed: 8, count: 30_000, name: "scale")
        XCTAssertGreaterThan(single.count, 250)
        let singleSeconds = Date().timeIntervalSince(started)

        // Two processes, one group (the repartition topics are named after it); process 1 is
        // killed once it has completed a checkpoint and restarted from it.
        try JobTestStack.flushRedis()
        let (bootstrap, port) = try JobTestStack.ready()
        let group = "scale-\(UUID().uuidString.prefix(8))"
        // One offline directory for both (part files carry a per-writer run id), one checkpoint
        // directory each.
        let offlineB = JobTestStack.tempDir("scale-two-offline")
        let checkpoints = [JobTestStack.tempDir("scale-p0-chk"), JobTestStack.tempDir("scale-p1-chk")]
        func args(_ i: Int) -> [String] {
            [JobTestStack.binaries + "/txn-features", "--process-index", "\(i)", "--process-count", "2",
             "--bootstrap", bootstrap, "--redis", "127.0.0.1:\(port)", "--bounded",
             "--checkpoint-dir", checkpoints[i], "--checkpoint-interval", "300ms", "--offline-dir", offlineB,
             "--registry", JobTestStack.root + "/schemas/registry.json", "--group-id", group,
             "--features-topic", "none", "--progress-seconds", "0", "--txn-topic", t["txn"]!, "--device-topic", t["devices"]!]
        }
        let p0 = try SpawnedProcess(args(0))
        let p1 = try SpawnedProcess(args(1))
        let deadline = Date().addingTimeInterval(240)
        var killed = false
        while Date() < deadline, p1.poll() == nil {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints[1])) ?? []
            // At the first completed checkpoint: it is still reading its transactions (the
            // restarted run reads the rest; its summary is printed below).
            if entries.contains(where: { $0.hasPrefix("chk-") }) {
                kill(p1.pid, SIGKILL)
                killed = true
                break
            }
            usleep(5_000)
        }
        let firstStatus = Self.wait(p1, until: deadline)
        XCTAssertTrue(killed, "process 1 ended (status \(firstStatus)) before a checkpoint completed: nothing was killed\n\(p1.output())")
        let restarted = try SpawnedProcess(args(1))
        let status0 = Self.wait(p0, until: deadline), status1 = Self.wait(restarted, until: deadline)
        XCTAssertEqual(status0, 0, "process 0:\n\(p0.output())")
        XCTAssertEqual(status1, 0, "process 1 (restarted):\n\(restarted.output())")
        XCTAssertTrue(restarted.output().contains("restored from"), restarted.output())
        guard status0 == 0, status1 == 0 else { return }
        let scaled = try JobTestStack.redisSnapshot()
        // The re-keys went through Kafka, partitioned like the topics they mirror.
        let repartition = try KafkaAdmin.partitionCounts(KafkaConfig(bootstrapServers: bootstrap),
                                                         ["\(group)-device-probes-repartition", "\(group)-device-rows-repartition"])
        XCTAssertEqual(repartition, ["\(group)-device-probes-repartition": 6, "\(group)-device-rows-repartition": 12])

        // Redis: every key and field the same.
        let differing = Set(single.keys).union(scaled.keys).filter { single[$0] != scaled[$0] }.sorted()
        if !differing.isEmpty {
            let detail = differing.prefix(3).map { k -> String in
                let a = single[k] ?? [:], b = scaled[k] ?? [:]
                let fields = Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted().prefix(4)
                return "key \(k): " + fields.map { "field \($0): one process \(a[$0] ?? "-"), two \(b[$0] ?? "-")" }.joined(separator: "; ")
            }
            XCTFail("Redis differs for \(differing.count) of \(single.count) keys (one process) / \(scaled.count) (two): \(detail.joined(separator: "\n"))")
        }

        // The offline log: the two processes' rows together are exactly the single process's.
        for view in [FeatureView.txnStats5m, .txnProfile, .txnWindow5m, .txnWindow30m] {
            let a = try TxnFeaturesJobTests.offline(view, offlineA)
            let b = try TxnFeaturesJobTests.offline(view, offlineB)
            XCTAssertFalse(a.isEmpty, "\(view.rawValue) is empty")
            assertSameRows(b, a, "\(view.rawValue): two processes vs one")
        }
        // txn_device logs the rows newer than every earlier one of the card *as they arrive* (what
        // Redis applies), and joined rows reach a card in another order from two processes than
        // from one: the rows in between may differ (docs/scaling.md). Each card's newest row is
        // the same (Redis, above, too), and no row is logged twice.
        let deviceA = try TxnFeaturesJobTests.offline(.txnDevice, offlineA)
        let deviceB = try TxnFeaturesJobTests.offline(.txnDevice, offlineB)
        XCTAssertEqual(Set(deviceB).count, deviceB.count, "a txn_device row was logged twice")
        func newest(_ rows: [String]) -> [String: String] {
            rows.reduce(into: [:]) { acc, r in
                let f = r.split(separator: "|")
                if let old = acc[String(f[0])], Int64(old.split(separator: "|")[1])! >= Int64(f[1])! { return }
                acc[String(f[0])] = r
            }
        }
        let newestA = newest(deviceA), newestB = newest(deviceB)
        XCTAssertGreaterThan(newestA.count, 100)
        let cardsDiffering = Set(newestA.keys).union(newestB.keys).filter { newestA[$0] != newestB[$0] }.sorted()
        XCTAssertTrue(cardsDiffering.isEmpty, "txn_device: the newest row differs for \(cardsDiffering.count) cards, e.g. \(cardsDiffering.prefix(3).map { "\($0): one process \(newestA[$0] ?? "-"), two \(newestB[$0] ?? "-")" })")
        // Process 0 did its share (process 1's restarted run reads what the killed one had not).
        let line = p0.output().split(separator: "\n").first { $0.contains("events in") } ?? ""
        XCTAssertGreaterThan(line.split(separator: " ").compactMap { Int($0) }.first ?? 0, 1_000, "process 0: \(line)")
        for (name, p) in [("process 0", p0), ("process 1 (restarted)", restarted)] {
            print("ScaleOutTests: \(name): " + p.output().split(separator: "\n").filter { $0.contains("events in") || $0.contains("checkpoints ") }.joined(separator: " /"))
        }
        print("ScaleOutTests: 30000 transactions, one process \(String(format: "%.1f", singleSeconds)) s, test \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }

    /// The exit status, or the process killed (and a failure) when `deadline` passes.
    static func wait(_ p: SpawnedProcess, until deadline: Date) -> Int32 {
        while Date() < deadline {
            if let s = p.poll() { return s }
            usleep(10_000)
        }
        kill(p.pid, SIGKILL)
        let s = p.wait()
        XCTFail("a txn-features process did not end in time; its output:\n\(p.output().suffix(4_000))")
        return s
    }
}

/// The pieces of scale-out without a broker: the flags, the partitioner, the markers.
final class ScaleOutPartsTests: XCTestCase {
    func parse(_ args: [String], env: [String: String] = [:]) throws -> JobSettings {
        try JobSettings.parse(job: "txn-features", arguments: args, environment: env)
    }

    func testProcessFlagsAndTheirChecks() throws {
        let s = try parse(["--process-index", "1", "--process-count", "3", "--checkpoint-dir", "/tmp/x"])
        XCTAssertEqual(s.processIndex, 1)
        XCTAssertEqual(s.processCount, 3)
        let e = try parse(["--checkpoint-dir", "/tmp/x"], env: ["TRIBUTARY_PROCESS_INDEX": "2", "TRIBUTARY_PROCESS_COUNT": "4"])
        XCTAssertEqual([e.processIndex, e.processCount], [2, 4])
        XCTAssertThrowsError(try parse(["--process-index", "2", "--process-count", "2", "--checkpoint-dir", "/tmp/x"])) {
            XCTAssertTrue("\($0)".contains("numbered 0 to 1"), "\($0)")
        }
        XCTAssertThrowsError(try parse(["--process-index", "-1"]))
        XCTAssertThrowsError(try parse(["--process-count", "2"])) { XCTAssertTrue("\($0)".contains("--checkpoint-dir"), "\($0)") }
        XCTAssertThrowsError(try parse(["--repartition-isolation", "dirty"]))
        let pod = try parse(["--process-index", "hostname", "--process-count", "3", "--checkpoint-dir", "/tmp/x"], env: ["HOSTNAME": "txn-features-2"])
        XCTAssertEqual(pod.processIndex, 2)
        XCTAssertThrowsError(try parse(["--process-index", "hostname", "--process-count", "3", "--checkpoint-dir", "/tmp/x"], env: ["HOSTNAME": "laptop"]))
        XCTAssertEqual(try parse([]).processCount, 1)
    }

    func testStaticAssignmentSplitsEveryPartitionOnce() {
        let owners = (0..<12).map { p in (0..<5).filter { KafkaStaticAssignment(index: $0, count: 5).owns(partition: Int32(p)) } }
        XCTAssertTrue(owners.allSatisfy { $0.count == 1 })
    }

    func testMarkersRoundTripAndCombine() {
        let m = KafkaWatermarkMarker(channel: 3, channels: 4, watermark: -12_345_678_901, idle: false)
        let bytes = RepartitionWire.marker(m)
        XCTAssertEqual(bytes.withUnsafeBytes { RepartitionWire.marker(in: $0) }, m)
        let idle = KafkaWatermarkMarker(channel: 1, channels: 4, watermark: Int64.max, idle: true)
        XCTAssertEqual(RepartitionWire.marker(idle).withUnsafeBytes { RepartitionWire.marker(in: $0) }, idle)
        XCTAssertNil([UInt8(0), 1, 2].withUnsafeBytes { RepartitionWire.marker(in: $0) })
    }

    /// A partition's watermark is the minimum over its writers, idle ones left out; it ends when
    /// every writer has sent +∞; the state goes with the split into checkpoints.
    func testPartitionWatermarkIsTheMinimumOverWriters() throws {
        var split = KafkaPartitionSplit(topic: "t", partition: 0, nextOffset: 0, bounded: true)
        XCTAssertEqual(split.apply(KafkaWatermarkMarker(channel: 0, channels: 3, watermark: 100)), Int64.min)
        XCTAssertEqual(split.apply(KafkaWatermarkMarker(channel: 1, channels: 3, watermark: 50)), Int64.min)
        XCTAssertEqual(split.apply(KafkaWatermarkMarker(channel: 2, channels: 3, watermark: 70)), 50)
        XCTAssertEqual(split.apply(KafkaWatermarkMarker(channel: 1, channels: 3, watermark: 40)), 50, "never backwards")
        XCTAssertEqual(split.apply(KafkaWatermarkMarker(channel: 1, channels: 3, watermark: 50, idle: true)), 70)
        XCTAssertEqual(split.apply(KafkaWatermarkMarker(channel: 1, channels: 3, watermark: 80)), 70)
        let restored = try JSONDecoder().decode(KafkaPartitionSplit.self, from: JSONEncoder().encode(split))
        XCTAssertEqual(restored, split)
        XCTAssertFalse(split.allChannelsEnded)
        for c in 0..<3 { _ = split.apply(KafkaWatermarkMarker(channel: Int32(c), channels: 3, watermark: Int64.max)) }
        XCTAssertTrue(split.allChannelsEnded)
    }
}
