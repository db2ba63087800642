import FeatureJobs
import Foundation
import StreamCore
import StreamTesting
import XCTest

/// Flags, environment variables and Flink-style config files; bad input fails with what to fix.
final class JobSettingsTests: XCTestCase {
    func parse(_ args: [String], env: [String: String] = [:]) throws -> JobSettings {
        try JobSettings.parse(job: "txn-features", arguments: args, environment: env)
    }

    func testDefaultsAreTheLocalStack() throws {
        let s = try parse([])
        XCTAssertEqual(s.bootstrap, "127.0.0.1:9092")
        XCTAssertEqual(s.redisHost, "127.0.0.1")
        XCTAssertEqual(s.redisPort, 6379)
        XCTAssertEqual(s.project, "tributary")
        XCTAssertEqual(s.checkpointing.interval, .seconds(30))
        XCTAssertEqual(s.featuresTopic, "features.txn")
        XCTAssertEqual(try JobSettings.parse(job: "click-features", arguments: [], environment: [:]).featuresTopic, "features.click")
        XCTAssertEqual(s.onlineBatch, 128)
        XCTAssertEqual(try parse(["--online-batch", "64"]).onlineBatch, 64)
    }

    /// Flags beat the environment, which beats the config file.
    func testPrecedenceFlagsEnvironmentConfigFile() throws {
        let dir = NSTemporaryDirectory() + "settings-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/config.yaml"
        try """
        # Flink's keys, nested and flat
        execution:
          checkpointing:
            interval: 1 min
        state.backend.type: rocksdb
        parallelism.default: 3
        state.checkpoints.dir: file:///var/chk
        bootstrap: from-file:9092
        redis: from-file:7000
        bounded: true
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let s = try parse(["--config", file, "--redis", "from-flag:6000"], env: ["KAFKA_BOOTSTRAP": "from-env:9092", "REDIS_HOST": "from-env"])
        XCTAssertEqual(s.checkpointing.interval, .seconds(60))
        XCTAssertEqual(s.checkpointing.stateBackend, "rocksdb")
        XCTAssertEqual(s.parallelism, 3)
        XCTAssertEqual(s.checkpointing.checkpointDirectory, "/var/chk")
        XCTAssertEqual(s.bootstrap, "from-env:9092")
        XCTAssertEqual(s.redisHost, "from-flag")
        XCTAssertEqual(s.redisPort, 6000)
        XCTAssertTrue(s.bounded)
        XCTAssertEqual(try parse(["--config", file, "--parallelism=4"]).parallelism, 4)
        XCTAssertEqual(try parse(["--from", "2026-01-01T00:00:00Z", "--to", "1767229200000"]).fromTime, 1_767_225_600_000)
    }

    func testBadInputSaysWhatToFix() throws {
        func message(_ args: [String], env: [String: String] = [:]) -> String {
            do { _ = try parse(args, env: env); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["--frobnicate", "1"]).contains("unknown flag --frobnicate"))
        XCTAssertTrue(message(["--parallelism", "zero"]).contains("--parallelism takes a whole number"))
        XCTAssertTrue(message(["--online-batch", "0"]).contains("--online-batch takes a whole number ≥ 1"))
        XCTAssertTrue(message(["--redis", "nohost"]).contains("HOST:PORT"))
        XCTAssertTrue(message(["--state-backend", "cassandra"]).contains("'heap' or 'rocksdb'"))
        XCTAssertTrue(message(["--from", "yesterday"]).contains("ISO 8601"))
        XCTAssertTrue(message([], env: ["REDIS_PORT": "70000"]).contains("REDIS_PORT must be a port"))
        XCTAssertTrue(message(["--config", "/nonexistent.yaml"]).contains("cannot read the config file"))
        let file = NSTemporaryDirectory() + "bad-\(UUID().uuidString).yaml"
        try "taskmanager.memory.process.size: 4g\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertTrue(message(["--config", file]).contains("unknown key 'taskmanager.memory.process.size'"))
    }

    /// An unreachable broker: retried with backoff, then exit 2 and a message naming what to start.
    func testUnreachableBrokerFailsWithWhatToStart() throws {
        let (fd, port) = TestProcesses.loopbackSocket()   // bound, not listening: connections are refused
        defer { close(fd) }
        let r = TestProcesses.run([JobTestStack.binaries + "/txn-features", "--bootstrap", "127.0.0.1:\(port)",
                                   "--connect-attempts", "2", "--registry", JobTestStack.root + "/schemas/registry.json"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot reach the Kafka broker at 127.0.0.1:\(port) after 2 attempts"), r.stderr)
        XCTAssertTrue(r.stderr.contains("make up"), r.stderr)
        let help = TestProcesses.run([JobTestStack.binaries + "/txn-features", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--checkpoint-dir"))
    }
}
