import Connectors
import StreamCore
import Foundation
import StreamTesting
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Exactly-once that survives kill -9 (issue 4): `crash-test-job` runs as a separate process over a
/// replayable source, with the two-phase-commit file sink and the idempotent Redis sink; it is killed
/// with SIGKILL at random instants — at a random time, while a checkpoint is being written, and
/// right after one became durable while the sinks commit — and restarted from its checkpoint
/// directory until it finishes. Its committed files and Redis contents must then be identical to a
/// run that never failed. `CRASH_KILLS` sets the number of kills (default 10; `make crash-soak`
/// runs 100), `CRASH_SEED` the random seed (printed, to replay a failure).
final class CrashTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The products directory holding this test bundle and `crash-test-job`.
    static var jobBinary: String {
        var dir = Bundle(for: CrashTests.self).bundleURL
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("crash-test-job").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("crash-test-job").path
    }

    /// Runs `argv`, returns (exit status, stdout).
    static func run(_ argv: [String], env: [String: String] = [:]) -> (Int32, String) {
        let p = Spawned(argv)
        var out = ""
        while let line = p.readLine(timeoutMillis: 60_000) { out += line + "\n" }
        return (p.wait(), out)
    }

    /// A child process with its stdout on a pipe, read line by line.
    final class Spawned {
        let pid: pid_t
        let fd: Int32
        var buffer: [UInt8] = []
        var eof = false

        init(_ argv: [String]) {
            var fds: [Int32] = [0, 0]
            pipe(&fds)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
            posix_spawn_file_actions_addclose(&actions, fds[0])
            var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
            var child: pid_t = 0
            let rc = posix_spawn(&child, argv[0], &actions, nil, &cargs, environ)
            precondition(rc == 0, "cannot start \(argv[0]): \(String(cString: strerror(rc)))")
            cargs.forEach { free($0) }
            posix_spawn_file_actions_destroy(&actions)
            close(fds[1])
            pid = child
            fd = fds[0]
        }

        /// The next line, or nil at end of output or when nothing arrives within the timeout.
        func readLine(timeoutMillis: Int32) -> String? {
            while true {
                if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    return line
                }
                if eof { return nil }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, timeoutMillis) > 0 else { return nil }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { eof = true } else { buffer += chunk[..<n] }
            }
        }

        func kill9() { kill(pid, SIGKILL) }

        /// Exit status; 128 + signal when killed.
        func wait() -> Int32 {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            close(fd)
            return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
    }

    static func redisPort() throws -> Int {
        let (code, out) = run(["/bin/bash", root + "/scripts/redis-test-server.sh", "start"])
        if code == 3 { throw XCTSkip("redis-server is not installed (scripts/setup.sh installs it)") }
        guard code == 0, let port = Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CheckpointError("scripts/redis-test-server.sh start failed (\(code)): \(out)")
        }
        return port
    }

    /// Every visible (committed) line of the sink's files, as a multiset.
    static func committedLines(_ dir: String) throws -> [String: Int] {
        var lines: [String: Int] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where !name.hasPrefix(".") {
            let text = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            for l in text.split(separator: "\n") { lines[String(l), default: 0] += 1 }
        }
        return lines
    }

    /// The Feast hash of every key of the job, field → value bytes.
    static func redisRows(port: Int, project: String, records: Int64) throws -> [Int64: [String: [UInt8]]] {
        let redis = try RedisConnection(port: port)
        var rows: [Int64: [String: [UInt8]]] = [:]
        for split in Int64(0)..<4 {
            for j in Int64(0)..<50 {
                let key = split * 1_000 + j
                let hash = FeastLayout.hashKey(FeastEntityKey(["key": .int64(key)]), project: project)
                guard case .array(let items) = try redis.command([Array("HGETALL".utf8), hash]) else { continue }
                var fields: [String: [UInt8]] = [:]
                var it = items.makeIterator()
                while case .string(let f)? = it.next(), case .string(let v)? = it.next() {
                    fields[f.map { String(format: "%02x", $0) }.joined()] = v
                }
                if !fields.isEmpty { rows[key] = fields }
            }
        }
        return rows
    }

    func testKillNineAtRandomInstantsLosesAndDuplicatesNothing() throws {
        try killNine(stateBackend: "heap")
    }

    /// The same with keyed state in RocksDB: its checkpoints (hard-linked SST files in `shared/`)
    /// restore after every kill.
    func testKillNineWithRocksDBStateLosesAndDuplicatesNothing() throws {
        try killNine(stateBackend: "rocksdb")
    }

    func killNine(stateBackend: String) throws {
        let kills = Int(ProcessInfo.processInfo.environment["CRASH_KILLS"] ?? "") ?? 10
        let seed = UInt64(ProcessInfo.processInfo.environment["CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("crash test (\(stateBackend)): \(kills) kills, CRASH_SEED=\(seed)")
        var rng = SplitMix(seed: seed)
        let port = try Self.redisPort()
        // Enough input that the job is still running at the last kill (each run makes some progress).
        let records = Int64(200_000 * max(1, kills / 10))
        let base = NSTemporaryDirectory() + "tributary-crash-\(getpid())-\(seed)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        func args(_ name: String) -> [String] {
            [Self.jobBinary, "--checkpoint-dir", base + "/\(name)/chk", "--output-dir", base + "/\(name)/out",
             "--redis-port", "\(port)", "--project", "\(name)-\(seed)", "--records", "\(records)", "--interval-ms", "40",
             "--state-backend", stateBackend]
        }

        // The run that never fails.
        let (refCode, refOut) = Self.run(args("reference"))
        XCTAssertEqual(refCode, 0, refOut)
        XCTAssertTrue(refOut.contains("done"))
        let reference = try Self.committedLines(base + "/reference/out")
        XCTAssertEqual(reference.values.reduce(0, +), Int(records))

        // Killed `kills` times, restarted each time.
        var killed = 0, attempts = 0, sawRestore = false
        var modes: [String: Int] = [:]
        while true {
            attempts += 1
            XCTAssertLessThan(attempts, kills + 30, "the job does not finish")
            if attempts >= kills + 30 { return }
            let p = Spawned(args("crash"))
            let mode = killed < kills ? ["time", "storing", "stored"][Int(rng.next() % 3)] : "none"
            let deadline = monotonicMillis() + 50 + Int64(rng.next() % 400)
            var sentKill = false
            var output = ""
            while true {
                let wait = mode == "time" ? Int32(max(1, deadline - monotonicMillis())) : 60_000
                guard let line = p.readLine(timeoutMillis: wait) else {
                    if !p.eof, mode == "time" { p.kill9(); sentKill = true }   // the chosen instant came
                    if !p.eof, mode != "time" { p.kill9() }                     // hung: the status says so
                    break
                }
                output += line + "\n"
                if line.hasPrefix("restored") { sawRestore = true }
                if (mode == "storing" && line.hasPrefix("storing")) || (mode == "stored" && line.hasPrefix("stored")) {
                    if mode == "stored" { usleep(UInt32(rng.next() % 3_000)) }   // while the sinks commit
                    p.kill9()
                    sentKill = true
                    break
                }
            }
            let status = p.wait()
            if sentKill && status == 128 + SIGKILL {
                killed += 1
                modes[mode, default: 0] += 1
                continue
            }
            if status == 0 && output.contains("done") { break }
            if sentKill { continue }   // it finished just before the kill
            XCTFail("crash-test-job exited \(status) without being killed:\n\(output)")
            return
        }
        print("crash test: \(killed) kills (\(modes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), \(attempts) runs")
        XCTAssertEqual(killed, kills)
        XCTAssertTrue(sawRestore, "no run restored from a checkpoint")

        let crashed = try Self.committedLines(base + "/crash/out")
        let missing = reference.filter { crashed[$0.key] != $0.value }
        let extra = crashed.filter { reference[$0.key] != $0.value }
        XCTAssertTrue(missing.isEmpty && extra.isEmpty,
                      "committed output differs: \(missing.count) lines missing or short, \(extra.count) extra or duplicated; e.g. \(Array(missing.prefix(3))) \(Array(extra.prefix(3)))")
        let refRows = try Self.redisRows(port: port, project: "reference-\(seed)", records: records)
        let crashRows = try Self.redisRows(port: port, project: "crash-\(seed)", records: records)
        XCTAssertEqual(refRows.count, 200)
        XCTAssertEqual(crashRows, refRows, "Redis contents differ")
    }
}

extension CrashTests {
    /// SIGTERM: the job takes a savepoint and exits 0; restarted, it resumes from the savepoint and
    /// ends with exactly the output of a run that was never stopped.
    func testSigtermTakesASavepointAndTheJobResumesFromIt() throws {
        let port = try Self.redisPort()
        let records: Int64 = 100_000
        let base = NSTemporaryDirectory() + "tributary-sigterm-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        func args(_ name: String) -> [String] {
            [Self.jobBinary, "--checkpoint-dir", base + "/\(name)/chk", "--output-dir", base + "/\(name)/out",
             "--redis-port", "\(port)", "--project", "\(name)-\(base.hashValue)", "--records", "\(records)",
             "--interval-ms", "1000000"]   // no periodic checkpoints: only the savepoint and the final one
        }
        let (refCode, refOut) = Self.run(args("reference"))
        XCTAssertEqual(refCode, 0, refOut)
        let reference = try Self.committedLines(base + "/reference/out")

        let p = Spawned(args("stopped"))
        XCTAssertEqual(p.readLine(timeoutMillis: 30_000), "fresh")
        usleep(300_000)
        kill(p.pid, SIGTERM)
        var lines: [String] = []
        while let l = p.readLine(timeoutMillis: 30_000) { lines.append(l) }
        XCTAssertEqual(p.wait(), 0, "\(lines)")
        let savepoint = try XCTUnwrap(lines.first { $0.hasPrefix("savepoint ") }, "\(lines)")
        let id = savepoint.split(separator: " ")[1]
        let partial = try Self.committedLines(base + "/stopped/out").values.reduce(0, +)
        XCTAssertGreaterThan(partial, 0, "the savepoint committed what was written before it")
        XCTAssertLessThan(partial, Int(records), "stopped before the end")

        let (code, out) = Self.run(args("stopped"))
        XCTAssertEqual(code, 0, out)
        XCTAssertTrue(out.hasPrefix("restored \(id)"), out)
        XCTAssertEqual(try Self.committedLines(base + "/stopped/out"), reference)
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func monotonicMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
}
