import Connectors
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Runs scripts/redis-test-server.sh: a real redis-server on 127.0.0.1, a free port, under
/// .build/redis-test of this checkout.
enum RedisTestServer {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    enum Outcome { case port(Int), notInstalled(String), failed(String) }

    /// Runs the script with posix_spawn and waitpid. (Foundation's `Process.waitUntilExit` was
    /// seen to miss the exit of this script, whose redis-server daemonizes, and hang.)
    static func run(_ action: String) -> Outcome {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("redis-test-\(UUID().uuidString)").path
        defer { unlink(out + ".out"); unlink(out + ".err") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, out + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let args = ["/bin/bash", root + "/scripts/redis-test-server.sh", action]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/bash", &actions, nil, &argv, environ)
        if rc != 0 { return .failed("cannot run scripts/redis-test-server.sh: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let stdout = (try? String(contentsOfFile: out + ".out", encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? ""
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        switch code {
        case 0: return .port(Int(stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0)
        case 3: return .notInstalled(stderr)
        default: return .failed("scripts/redis-test-server.sh \(action) exited \(code): \(stderr)")
        }
    }
}

/// Test classes that need Redis: a redis-server for the class's tests (started before them, stopped
/// after); each test starts with an empty database and no scripts, `admin` connected to it.
class RedisServerTestCase: XCTestCase {
    nonisolated(unsafe) static var port: Int?
    nonisolated(unsafe) static var unavailable: String?

    override class func setUp() {
        switch RedisTestServer.run("start") {
        case .port(let p): port = p
        case .notInstalled(let why):
            unavailable = why
            print("\(self) skipped: \(why)")
        case .failed(let why): unavailable = "FAILED: " + why
        }
    }

    override class func tearDown() {
        if port != nil { _ = RedisTestServer.run("stop") }
        port = nil
    }

    var port = 0
    var admin: RedisConnection!

    override func setUpWithError() throws {
        if let why = Self.unavailable {
            if why.hasPrefix("FAILED: ") { XCTFail(why); throw XCTSkip(why) }
            throw XCTSkip("redis-server is not installed: \(why)")
        }
        port = Self.port!
        admin = try RedisConnection(port: port)
        try admin.command("FLUSHALL")
        try admin.command("SCRIPT", "FLUSH")
    }
}
