import CHiredis

#if canImport(Glibc)
import Glibc
#endif

/// A reply from Redis (RESP2). Error replies are values here: in a pipeline each command has its own.
public enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case null
    case error(String)
    case array([RedisReply])

    /// The text of a string or status reply.
    public var text: String? {
        switch self {
        case .string(let b): String(decoding: b, as: UTF8.self)
        case .status(let s): s
        default: nil
        }
    }

    public var errorMessage: String? {
        if case .error(let m) = self { return m }
        return nil
    }
}

/// A Redis failure with a message that says what happened and what to check.
public struct RedisError: Error, CustomStringConvertible {
    enum Kind { case connect, io, reply }
    let kind: Kind
    public let description: String

    /// The connection is broken (or never came up): reconnecting may help.
    public var isConnectionError: Bool { kind != .reply }

    static func connect(_ host: String, _ port: Int, _ reason: String) -> RedisError {
        RedisError(kind: .connect, description: "Redis: cannot connect to \(host):\(port): \(reason). "
            + "Is redis-server running there (scripts/redis-test-server.sh start for tests)?")
    }
    static func io(_ host: String, _ port: Int, _ reason: String) -> RedisError {
        RedisError(kind: .io, description: "Redis \(host):\(port): connection lost: \(reason)")
    }
    static func reply(_ command: String, _ message: String) -> RedisError {
        RedisError(kind: .reply, description: "Redis \(command): \(message)")
    }
}

/// A Lua script run by its SHA-1 (EVALSHA), loaded into the server when it does not know it.
public struct RedisScript: Sendable {
    public let source: String
    /// Lowercase hex SHA-1 of `source`, as Redis names scripts.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = SHA1.hex(Array(source.utf8))
    }
}

/// hiredis writes with write(2), so a server that closed the connection would kill the process
/// with SIGPIPE instead of failing the write with EPIPE. Like most network libraries, ignore
/// SIGPIPE process-wide, unless the program installed its own handler.
private let ignoreSIGPIPE: Void = {
    var current = sigaction()
    if sigaction(SIGPIPE, nil, &current) == 0, current.__sigaction_handler.sa_handler == nil {
        signal(SIGPIPE, SIG_IGN)
    }
}()

/// A blocking connection to one Redis server through hiredis, confined to one thread (a
/// `redisContext` is not thread-safe). Arguments are binary-safe byte buffers.
///
/// Pipelining: `append` queues commands in the output buffer, `flushOutput` sends them, and
/// `readReply` returns the replies in order. The first connection sets SIGPIPE to ignored, unless
/// the program handles it already.
public final class RedisConnection {
    public let host: String
    public let port: Int
    public let commandTimeout: Duration
    private var context: UnsafeMutablePointer<redisContext>
    /// Commands appended whose replies have not been read.
    public private(set) var awaitingReplies = 0

    /// Connects within `connectTimeout`; each later read or write waits at most `commandTimeout`.
    public init(host: String = "127.0.0.1", port: Int = 6379,
                connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(10)) throws {
        self.host = host
        self.port = port
        self.commandTimeout = commandTimeout
        _ = ignoreSIGPIPE
        guard let c = redisConnectWithTimeout(host, Int32(port), Self.timeval(connectTimeout)) else {
            throw RedisError.connect(host, port, "out of memory")
        }
        if c.pointee.err != 0 {
            let reason = Self.errorText(c)
            redisFree(c)
            throw RedisError.connect(host, port, reason)
        }
        context = c  // from here on, deinit frees it (also when init throws)
        try applyTimeout()
    }

    deinit { redisFree(context) }

    /// Drops the connection and connects again (same host, port and timeouts); replies of
    /// commands sent before are lost.
    public func reconnect() throws {
        awaitingReplies = 0
        if redisReconnect(context) != 0 { throw RedisError.connect(host, port, Self.errorText(context)) }
        try applyTimeout()
    }

    /// Queues a command in the output buffer (nothing is sent yet).
    public func append(_ arguments: [[UInt8]]) throws {
        try checkUsable()
        var lengths = arguments.map(\.count)
        var flat: [UInt8] = []
        flat.reserveCapacity(lengths.reduce(1, +))
        for a in arguments { flat.append(contentsOf: a) }
        flat.append(0)  // never an empty buffer, so there is always a base address
        let rc = flat.withUnsafeBufferPointer { buffer -> Int32 in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var argv: [UnsafePointer<CChar>?] = []
            argv.reserveCapacity(lengths.count)
            var offset = 0
            for n in lengths {
                argv.append(base + offset)
                offset += n
            }
            return redisAppendCommandArgv(context, Int32(arguments.count), &argv, &lengths)
        }
        if rc != 0 { throw RedisError.io(host, port, Self.errorText(context)) }
        awaitingReplies += 1
    }

    /// Queues a command already in RESP (`RESPCommand`), as is; `commands`: how many commands
    /// (replies) the bytes hold.
    public func appendFormatted(_ resp: [UInt8], commands: Int = 1) throws {
        try checkUsable()
        let rc = resp.withUnsafeBufferPointer { b in
            redisAppendFormattedCommand(context, UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: CChar.self), b.count)
        }
        if rc != 0 { throw RedisError.io(host, port, Self.errorText(context)) }
        awaitingReplies += commands
    }

    /// Sends everything in the output buffer.
    public func flushOutput() throws {
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != 0 { throw RedisError.io(host, port, Self.errorText(context)) }
        }
    }

    /// The next reply, in command order (sends pending output first).
    public func readReply() throws -> RedisReply {
        try withReply(Self.convert)
    }

    /// Reads one reply and hands it to `body` as hiredis holds it (no copy; valid during the call
    /// only): for replies read in bulk whose parts are looked at once.
    func withReply<R>(_ body: (UnsafeMutablePointer<redisReply>) throws -> R) throws -> R {
        precondition(awaitingReplies > 0, "a reply read without a command awaiting it")
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != 0 || raw == nil {
            throw RedisError.io(host, port, Self.errorText(context))
        }
        awaitingReplies -= 1
        defer { freeReplyObject(raw) }
        return try body(raw!.assumingMemoryBound(to: redisReply.self))
    }

    /// Sends several commands at once and returns their replies, in order.
    public func pipeline(_ commands: [[[UInt8]]]) throws -> [RedisReply] {
        for c in commands { try append(c) }
        try flushOutput()
        return try commands.map { _ in try readReply() }
    }

    /// Runs one command; an error reply is thrown.
    @discardableResult
    public func command(_ arguments: [[UInt8]]) throws -> RedisReply {
        try append(arguments)
        let reply = try readReply()
        if let message = reply.errorMessage {
            throw RedisError.reply(String(decoding: arguments.first ?? [], as: UTF8.self), message)
        }
        return reply
    }

    @discardableResult
    public func command(_ arguments: String...) throws -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    /// SCRIPT LOAD; checks that the server names the script as we do.
    public func load(_ script: RedisScript) throws {
        let reply = try command([Array("SCRIPT".utf8), Array("LOAD".utf8), Array(script.source.utf8)])
        guard reply.text == script.sha1 else {
            throw RedisError.reply("SCRIPT LOAD", "server returned \(reply) for a script whose SHA-1 is \(script.sha1)")
        }
    }

    /// The EVALSHA command for a script call, for pipelining with `append`.
    public static func evalsha(_ script: RedisScript, keys: [[UInt8]], arguments: [[UInt8]]) -> [[UInt8]] {
        [Array("EVALSHA".utf8), Array(script.sha1.utf8), Array(String(keys.count).utf8)] + keys + arguments
    }

    /// Runs a script by EVALSHA, loading it first when the server answers NOSCRIPT.
    @discardableResult
    public func eval(_ script: RedisScript, keys: [[UInt8]], arguments: [[UInt8]]) throws -> RedisReply {
        let command = Self.evalsha(script, keys: keys, arguments: arguments)
        try append(command)
        var reply = try readReply()
        if let message = reply.errorMessage, Self.isNoScript(message) {
            try load(script)
            try append(command)
            reply = try readReply()
        }
        if let message = reply.errorMessage { throw RedisError.reply("EVALSHA", message) }
        return reply
    }

    public static func isNoScript(_ message: String) -> Bool { message.hasPrefix("NOSCRIPT") }

    private func checkUsable() throws {
        if context.pointee.err != 0 { throw RedisError.io(host, port, Self.errorText(context) + " (reconnect first)") }
    }

    private func applyTimeout() throws {
        if redisSetTimeout(context, Self.timeval(commandTimeout)) != 0 {
            throw RedisError.connect(host, port, "cannot set the socket timeout: " + Self.errorText(context))
        }
    }

    private static func timeval(_ d: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = d.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    private static func errorText(_ c: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: c.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if !text.isEmpty { return text }
        return c.pointee.err == REDIS_ERR_EOF ? "server closed the connection" : "error \(c.pointee.err)"
    }

    static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let reply = r.pointee
        func bytes() -> [UInt8] {
            guard let s = reply.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: s, count: reply.len))
        }
        switch reply.type {
        case REDIS_REPLY_STRING: return .string(bytes())
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(reply.integer))
        case REDIS_REPLY_ARRAY: return .array((0..<reply.elements).map { convert(reply.element[$0]!) })
        default: return .null
        }
    }
}

/// SHA-1 (FIPS 180-1), only to name Lua scripts as Redis does.
enum SHA1 {
    static func hex(_ message: [UInt8]) -> String {
        digest(message).map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }

    static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        let bits = UInt64(message.count) &* 8
        for i in (0..<8).reversed() { data.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + 4 * i
                w[i] = UInt32(data[j]) << 24 | UInt32(data[j + 1]) << 16 | UInt32(data[j + 2]) << 8 | UInt32(data[j + 3])
            }
            for i in 16..<80 { w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1) }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32) = switch i {
                case 0..<20: ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (b ^ c ^ d, 0xCA62_C1D6)
                }
                let t = rotl(a, 5) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, rotl(b, 30), a, t)
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e
        }
        return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }
    }

    private static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { (x << n) | (x >> (32 - n)) }
}

/// A command written straight into Redis's wire format (RESP: `*argc`, then `$len` + bytes per
/// argument), for large pipelined commands without intermediate copies.
public struct RESPCommand {
    public private(set) var bytes: [UInt8] = []

    public init(arguments count: Int, capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
        append(arguments: count)
    }

    /// Starts the next command in the same buffer (for pipelines: one write, several replies).
    public mutating func append(arguments count: Int) {
        bytes.append(UInt8(ascii: "*"))
        decimal(count)
    }

    private mutating func decimal(_ n: Int) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = n, i = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[i] = UInt8(ascii: "0") + UInt8(v % 10); v /= 10; i += 1 } while v > 0
            while i > 0 { i -= 1; bytes.append(d[i]) }
        }
        bytes.append(13); bytes.append(10)
    }

    public mutating func argument<C: Collection>(_ b: C) where C.Element == UInt8 {
        bytes.append(UInt8(ascii: "$"))
        decimal(b.count)
        bytes.append(contentsOf: b)
        bytes.append(13); bytes.append(10)
    }

    public mutating func argument(_ s: String) { argument(s.utf8) }

    /// An argument of `count` bytes that `write` appends in place (no intermediate buffer).
    mutating func argument(count: Int, _ write: (inout [UInt8]) -> Void) {
        bytes.append(UInt8(ascii: "$"))
        decimal(count)
        let start = bytes.count
        write(&bytes)
        precondition(bytes.count - start == count, "RESP argument: \(bytes.count - start) bytes written, \(count) announced")
        bytes.append(13); bytes.append(10)
    }

    /// An argument already encoded by `encoded(_:)` (for arguments sent again and again).
    public mutating func append(encoded argument: [UInt8]) { bytes.append(contentsOf: argument) }

    /// `b` as a RESP argument (`$len`, the bytes), to append with `append(encoded:)`.
    public static func encoded(_ b: [UInt8]) -> [UInt8] {
        var c = RESPCommand()
        c.argument(b)
        return c.bytes
    }

    private init() {}
    public mutating func argument(_ n: Int64) { argument(Array(String(n).utf8)) }
}
