import StreamCore

#if canImport(Glibc)
import Glibc
#endif

/// Writes feature rows to Redis in Feast's online-store layout, newest event time wins.
///
/// Each row goes through one atomic Lua script (`RedisUpsertSink.script`) that compares the row's
/// event time with the view's stored `_ts:<view>` and writes the row (all its features, the new
/// `_ts`, and `EXPIRE` when a key TTL is set) only if it is strictly newer, as Feast does. So a
/// row applied twice, or an older row arriving late, changes nothing: replaying the input after a
/// crash is a no-op, and rows go out at once instead of waiting for a checkpoint (exactly-once
/// effect through idempotent, versioned upserts).
///
/// Rows are pipelined: each is sent when written and its reply read later, at most `maxInFlight`
/// rows behind. At a checkpoint barrier the writer waits for every reply, so everything before the
/// barrier is applied (at-least-once up to the barrier; the script makes repeats harmless).
public struct RedisUpsertSink<T>: Sink {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var connectTimeout: Duration
        public var commandTimeout: Duration
        /// Feast's `key_ttl_seconds`: every write also sets `EXPIRE key ttl`.
        public var keyTTLSeconds: Int?
        /// Rows queued before they are sent together (1: every row at once, the freshest).
        public var rowsPerWrite: Int
        /// Rows sent whose replies have not been read yet, at most.
        public var maxInFlight: Int
        /// Reconnect-and-resend attempts after a lost connection, per failure.
        public var reconnectAttempts: Int

        public init(host: String = "127.0.0.1", port: Int = 6379, connectTimeout: Duration = .seconds(2),
                    commandTimeout: Duration = .seconds(10), keyTTLSeconds: Int? = nil, rowsPerWrite: Int = 1,
                    maxInFlight: Int = 1024, reconnectAttempts: Int = 3) {
            precondition(rowsPerWrite >= 1 && maxInFlight >= rowsPerWrite, "need 1 <= rowsPerWrite <= maxInFlight")
            precondition(keyTTLSeconds.map { $0 > 0 } ?? true, "keyTTLSeconds must be positive")
            self.host = host
            self.port = port
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.keyTTLSeconds = keyTTLSeconds
            self.rowsPerWrite = rowsPerWrite
            self.maxInFlight = maxInFlight
            self.reconnectAttempts = reconnectAttempts
        }
    }

    public let project: String
    public let featureView: String
    public let options: Options
    public let toRow: @Sendable (T) throws -> FeastRow

    /// `toRow` turns a record into the row of `featureView` it updates.
    public init(project: String, featureView: String, options: Options = Options(),
                toRow: @escaping @Sendable (T) throws -> FeastRow) {
        self.project = project
        self.featureView = featureView
        self.options = options
        self.toRow = toRow
    }

    /// Connects to Redis: a job with an unreachable store fails at start with a clear message.
    public func createWriter(_ context: SinkInitContext) throws -> RedisUpsertWriter<T> {
        try RedisUpsertWriter(sink: self)
    }

    /// The write-if-newer script.
    /// KEYS[1] = hash key; ARGV[1] = `_ts:<view>`; ARGV[2] = the row's Timestamp bytes;
    /// ARGV[3], ARGV[4] = its seconds and nanos; ARGV[5] = key TTL in seconds (0: none);
    /// ARGV[6...] = feature field, value, field, value, ... Returns 1 if written, 0 if not newer.
    /// The stored Timestamp is decoded exactly for |seconds| < 2^53 (negative ones included).
    public static var script: RedisScript { upsertScript }
}

/// Lua that reads a stored `google.protobuf.Timestamp` (`timestamp(bytes)` → seconds, nanos),
/// exactly for |seconds| < 2^53, negative ones included; shared by the Feast upsert scripts.
let feastTimestampLua = #"""
local function varint(s, i)
  local lo, hi, mul, n = 0, 0, 1, 0
  while true do
    local b = string.byte(s, i)
    if b == nil or n == 10 then return nil, i end
    i = i + 1
    if n < 5 then lo = lo + (b % 128) * mul else hi = hi + (b % 128) * mul end
    n = n + 1
    if n == 5 then mul = 1 else mul = mul * 128 end
    if b < 128 then break end
  end
  -- bits 35..63 are in hi; bit 63 set means a negative int64
  if hi >= 268435456 then hi = hi - 536870912 end
  return lo + hi * 34359738368, i
end
local function timestamp(s)
  local seconds, nanos, i = 0, 0, 1
  while i <= #s do
    local tag = string.byte(s, i)
    local v
    v, i = varint(s, i + 1)
    if v == nil then return nil end
    if tag == 8 then seconds = v elseif tag == 16 then nanos = v else return nil end
  end
  return seconds, nanos
end
"""#

private let upsertScript = RedisScript(
    "-- Tributary: Feast online-store upsert, newest event time wins (Feast's write rule).\n"
    + feastTimestampLua + "\n" + #"""
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local seconds, nanos = timestamp(stored)
  if seconds == nil then
    return redis.error_reply('ERR Tributary upsert: field ' .. ARGV[1] .. ' does not hold a protobuf Timestamp')
  end
  local s, n = tonumber(ARGV[3]), tonumber(ARGV[4])
  if s < seconds or (s == seconds and n <= nanos) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 6))
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""#)

/// The writer of one subtask: one connection, rows pipelined through the upsert script.
public final class RedisUpsertWriter<T>: CheckpointedSinkWriter {
    public typealias Input = T

    let sink: RedisUpsertSink<T>
    let connection: RedisConnection
    private let timestampField: [UInt8]
    private let ttlArgument: [UInt8]
    /// Feature name → hash field (murmur3), computed once per name.
    private var fields: [String: [UInt8]] = [:]
    /// Commands sent (or queued) whose replies are unread, oldest first.
    private var inFlight: [[[UInt8]]] = []
    /// Commands queued in the output buffer, not yet sent.
    private var unsent = 0

    /// Rows the script wrote, and rows it skipped because the stored event time was as new or newer.
    public private(set) var rowsWritten: Int64 = 0
    public private(set) var rowsNotNewer: Int64 = 0

    init(sink: RedisUpsertSink<T>) throws {
        self.sink = sink
        let o = sink.options
        connection = try RedisConnection(host: o.host, port: o.port, connectTimeout: o.connectTimeout,
                                         commandTimeout: o.commandTimeout)
        timestampField = FeastLayout.timestampField(view: sink.featureView)
        ttlArgument = Array(String(o.keyTTLSeconds ?? 0).utf8)
        inFlight.reserveCapacity(o.maxInFlight)
        try connection.load(RedisUpsertSink<T>.script)
    }

    /// No state: what was written is in Redis, and repeats are no-ops.
    public func initializeState(_ restored: [[UInt8]]) throws {}

    public func write(_ value: T, context: SinkWriterContext) throws {
        let row = try sink.toRow(value)
        let command = RedisConnection.evalsha(
            RedisUpsertSink<T>.script, keys: [FeastLayout.hashKey(row.entity, project: sink.project)],
            arguments: arguments(for: row))
        inFlight.append(command)
        do {
            try connection.append(command)
            unsent += 1
        } catch let error as RedisError where error.isConnectionError {
            try recover(from: error)
        }
        if unsent >= sink.options.rowsPerWrite { try send() }
        if inFlight.count >= sink.options.maxInFlight { try awaitReplies() }
    }

    /// Flushes and waits until every row written so far is applied.
    public func snapshotState(checkpointId: CheckpointId) throws -> [UInt8] {
        try awaitReplies()
        return []
    }

    public func notifyCheckpointComplete(_ id: CheckpointId) throws {}

    public func writeWatermark(_ watermark: Int64) throws {
        if unsent > 0 { try send() }
    }

    public func flush(endOfInput: Bool) throws { try awaitReplies() }

    public func close() throws { try awaitReplies() }

    private func arguments(for row: FeastRow) -> [[UInt8]] {
        var args: [[UInt8]] = [
            timestampField, row.eventTime.serialized(),
            Array(String(row.eventTime.seconds).utf8), Array(String(row.eventTime.nanos).utf8), ttlArgument,
        ]
        args.reserveCapacity(5 + 2 * row.features.count)
        for (name, value) in row.features {
            args.append(field(name))
            args.append(value.serialized())
        }
        return args
    }

    private func field(_ name: String) -> [UInt8] {
        if let f = fields[name] { return f }
        let f = FeastLayout.featureField(view: sink.featureView, feature: name)
        fields[name] = f
        return f
    }

    private func send() throws {
        do {
            try connection.flushOutput()
            unsent = 0
        } catch let error as RedisError where error.isConnectionError {
            try recover(from: error)
        }
    }

    /// Reads the reply of every row in flight. NOSCRIPT (the server lost the script: restarted or
    /// SCRIPT FLUSH) loads it and sends those rows again; a lost connection reconnects and sends
    /// every unacknowledged row again. Both are safe because the script is idempotent.
    private func awaitReplies() throws {
        var rounds = 0
        while !inFlight.isEmpty {
            rounds += 1
            if rounds > sink.options.reconnectAttempts + 2 {
                throw RedisError.reply("upsert script", "rows still unacknowledged after \(rounds - 1) resends; giving up")
            }
            if unsent > 0 { try send() }
            var noScript: [[[UInt8]]] = []
            var acknowledged = 0
            do {
                for command in inFlight {
                    switch try connection.readReply() {
                    case .integer(1): rowsWritten += 1
                    case .integer(0): rowsNotNewer += 1
                    case .error(let message) where RedisConnection.isNoScript(message): noScript.append(command)
                    case .error(let message): throw RedisError.reply("upsert script", message)
                    case let other: throw RedisError.reply("upsert script", "unexpected reply \(other)")
                    }
                    acknowledged += 1
                }
            } catch let error as RedisError where error.isConnectionError {
                inFlight = noScript + inFlight[acknowledged...]
                try recover(from: error)
                continue
            }
            inFlight.removeAll(keepingCapacity: true)
            if !noScript.isEmpty {
                inFlight = noScript
                do {
                    try connection.load(RedisUpsertSink<T>.script)
                    try resendInFlight()
                } catch let error as RedisError where error.isConnectionError {
                    try recover(from: error)
                }
            }
        }
    }

    /// Reconnects (a few attempts, short pauses) and sends every row in flight again.
    private func recover(from error: RedisError) throws {
        var last = error
        for attempt in 0..<sink.options.reconnectAttempts {
            if attempt > 0 { usleep(UInt32(50_000 * attempt)) }
            do {
                try connection.reconnect()
                try connection.load(RedisUpsertSink<T>.script)
                try resendInFlight()
                return
            } catch let e as RedisError where e.isConnectionError {
                last = e
            }
        }
        throw last
    }

    private func resendInFlight() throws {
        for c in inFlight { try connection.append(c) }
        try connection.flushOutput()
        unsent = 0
    }
}
