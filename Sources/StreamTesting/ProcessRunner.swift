#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Runs programs and scripts from tests, and finds free loopback ports for the servers they start.
///
/// posix_spawn and waitpid, output to files: Foundation's `Process` waits on a descriptor that a
/// server the script leaves running inherits, so it would never see the script exit.
public enum TestProcesses {
    /// Runs `argv` (with `env` added to this process's environment); returns the exit status
    /// (128 + signal when killed), its stdout and its stderr, trimmed. `mergeStderr` sends stderr to
    /// the stdout text instead.
    public static func run(_ argv: [String], env extra: [String: String] = [:], mergeStderr: Bool = false)
        -> (status: Int32, stdout: String, stderr: String) {
        let outPath = NSTemporaryDirectory() + "test-process-\(UUID().uuidString)"
        let errPath = outPath + ".err"
        defer { unlink(outPath); unlink(errPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if mergeStderr {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        let environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        var cenv: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cenv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, &cargs, &cenv) == 0 else { return (-1, "", "cannot run \(argv[0])") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        func read(_ path: String) -> String {
            String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let exited = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exited, read(outPath), mergeStderr ? "" : read(errPath))
    }

    /// A TCP socket bound to a free loopback port (not listening yet), and the port. Close it.
    public static func loopbackSocket() -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// `n` different loopback ports nothing listens on (bound together, read, closed).
    public static func freePorts(_ n: Int) -> [Int] {
        let sockets = (0..<n).map { _ in loopbackSocket() }
        sockets.forEach { close($0.fd) }
        return sockets.map(\.port)
    }
}
