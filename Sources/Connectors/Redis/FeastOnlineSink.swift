import CoreMetrics
import StreamCore

#if canImport(Glibc)
import Glibc
#endif

/// One feature view's row of an entity: its event time and all of the view's features.
public struct FeastViewRow: Sendable {
    public var view: String
    public var eventTime: FeastTimestamp
    public var features: [(name: String, value: FeastValue)]

    public init(view: String, eventTime: FeastTimestamp, features: [(name: String, value: FeastValue)]) {
        self.view = view
        self.eventTime = eventTime
        self.features = features
    }
}

/// What one record changes in the online store: rows of one or more views of one entity, and
/// (optionally) when the event entered the system, for the event → online latency.
public struct FeastEntityUpdate: Sendable {
    public var entity: FeastEntityKey
    public var rows: [FeastViewRow]
    /// Epoch milliseconds the event was produced (the Kafka record's timestamp), if known.
    public var ingestMillis: Int64?
    /// When the job read the event from its source, if known (the job's own share of the latency).
    public var readMillis: Int64?

    public init(entity: FeastEntityKey, rows: [FeastViewRow], ingestMillis: Int64? = nil, readMillis: Int64? = nil) {
        self.entity = entity
        self.rows = rows
        self.ingestMillis = ingestMillis
        self.readMillis = readMillis
    }
}

/// Called for every batch Redis acknowledged with (now − ingest time) and (now − read time) in
/// milliseconds of its records that carry them.
public typealias OnlineLatencyObserver = @Sendable (_ fromIngest: [Int64], _ fromRead: [Int64]) -> Void

/// Writes feature rows to Redis in Feast's layout, newest event time wins per view: batched, with
/// several views per entity (`RedisUpsertSink` is its one-view convenience).
///
/// Records are grouped into batches (at most `maxBatch` entities) and each batch is applied by one
/// call of an atomic server-side script (`FeastOnlineSink.script`) that writes each view's row only
/// if its event time is strictly newer than the stored `_ts:<view>` (Feast's rule), all of a
/// view's features together. Repeats and older rows change nothing, so replay after a crash is a
/// no-op (exactly-once effect without waiting for checkpoints). A batch goes out when it is full,
/// when the writer's thread runs out of input, and at least every buffer timeout of the runtime, so
/// rows reach Redis within milliseconds; at a checkpoint barrier every reply is awaited.
public struct FeastOnlineSink<T>: Sink {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var connectTimeout: Duration
        public var commandTimeout: Duration
        /// Feast's `key_ttl_seconds`: every write also sets `EXPIRE key ttl`.
        public var keyTTLSeconds: Int?
        /// Entities per script call, at most.
        public var maxBatch: Int
        /// Batches sent whose replies are unread, at most.
        public var maxInFlightBatches: Int
        /// Reconnect-and-resend attempts after a lost connection, per failure.
        public var reconnectAttempts: Int

        public init(host: String = "127.0.0.1", port: Int = 6379, connectTimeout: Duration = .seconds(2),
                    commandTimeout: Duration = .seconds(10), keyTTLSeconds: Int? = nil, maxBatch: Int = 1024,
                    maxInFlightBatches: Int = 8, reconnectAttempts: Int = 5) {
            precondition(maxBatch >= 1 && maxInFlightBatches >= 1, "maxBatch and maxInFlightBatches must be at least 1")
            precondition(keyTTLSeconds.map { $0 > 0 } ?? true, "keyTTLSeconds must be positive")
            self.host = host
            self.port = port
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.keyTTLSeconds = keyTTLSeconds
            self.maxBatch = maxBatch
            self.maxInFlightBatches = maxInFlightBatches
            self.reconnectAttempts = reconnectAttempts
        }
    }

    public let project: String
    public let options: Options
    public let toUpdate: @Sendable (T) throws -> FeastEntityUpdate?
    public let latency: OnlineLatencyObserver?

    /// `toUpdate` turns a record into the rows it writes (nil: nothing to write).
    public init(project: String, options: Options = Options(), latency: OnlineLatencyObserver? = nil,
                toUpdate: @escaping @Sendable (T) throws -> FeastEntityUpdate?) {
        self.project = project
        self.options = options
        self.latency = latency
        self.toUpdate = toUpdate
    }

    /// Connects to Redis: an unreachable store fails the job at start with a clear message.
    public func createWriter(_ context: SinkInitContext) throws -> FeastOnlineWriter<T> {
        try FeastOnlineWriter(sink: self)
    }

    /// The batch script. ARGV[1] = key TTL in seconds (0: none); then for each key of KEYS, in
    /// order: the number of views, and for each view `_ts:<view>`, its Timestamp bytes, seconds,
    /// nanos, the number of features, then field, value, field, value, ...
    /// Returns the number of view rows written (the others were not newer than what is stored).
    public static var script: RedisScript { batchScript }
}

/// Lua that reads a stored `google.protobuf.Timestamp` (`timestamp(bytes)` → seconds, nanos),
/// exactly for |seconds| < 2^53, negative ones included; shared by the Feast upsert scripts.
private let feastTimestampLua = #"""
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

private let batchScript = RedisScript(
    "-- Tributary: Feast online-store batch upsert, newest event time wins per view (Feast's write rule).\n"
    + feastTimestampLua + "\n" + #"""
local ttl = tonumber(ARGV[1])
local a = 2
local written = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local views = tonumber(ARGV[a]); a = a + 1
  local tsFields = {}
  local starts = {}
  for v = 1, views do
    tsFields[v] = ARGV[a]
    starts[v] = a
    a = a + 5 + 2 * tonumber(ARGV[a + 4])
  end
  local stored = redis.call('HMGET', key, unpack(tsFields))
  local out = {}
  for v = 1, views do
    local b = starts[v]
    local newer = true
    if stored[v] then
      local seconds, nanos = timestamp(stored[v])
      if seconds == nil then
        return redis.error_reply('ERR Tributary upsert: field ' .. tsFields[v] .. ' does not hold a protobuf Timestamp')
      end
      local s, n = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
      if s < seconds or (s == seconds and n <= nanos) then newer = false end
    end
    if newer then
      out[#out + 1] = ARGV[b]
      out[#out + 1] = ARGV[b + 1]
      for i = b + 5, b + 4 + 2 * tonumber(ARGV[b + 4]) do out[#out + 1] = ARGV[i] end
      written = written + 1
    end
  end
  if #out > 0 then
    redis.call('HSET', key, unpack(out))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
end
return written
"""#)

/// The writer of one subtask: one connection, batches pipelined through the script.
public final class FeastOnlineWriter<T>: CheckpointedSinkWriter {
    public typealias Input = T

    struct Batch {
        /// The EVALSHA command in RESP.
        var command: [UInt8]
        var rows: Int
        var ingest: [Int64]
        var read: [Int64]
        /// When it was first sent (monotonic), for the sink latency.
        var sentNanos: UInt64 = 0
    }

    /// `tributary_sink_*{sink="redis"}` through swift-metrics: a batch's round trip (sent →
    /// acknowledged), entity updates written and not newer, and the errors the writer recovered
    /// from (a lost connection, a flushed script) or failed with.
    struct Metrics {
        let latency = CoreMetrics.Timer(label: "tributary_sink_latency_seconds", dimensions: [("sink", "redis")])
        let written = CoreMetrics.Counter(label: "tributary_sink_records_total", dimensions: [("sink", "redis")])
        let errors = CoreMetrics.Counter(label: "tributary_sink_errors_total", dimensions: [("sink", "redis")])
    }
    let metrics = Metrics()

    let sink: FeastOnlineSink<T>
    let connection: RedisConnection
    private let ttlArgument: [UInt8]
    /// "<view>" → `_ts:<view>`, "<view>:<feature>" → hash field, computed once.
    private var timestampFields: [String: [UInt8]] = [:]
    private var fields: [String: [String: [UInt8]]] = [:]
    private var projectBytes: [UInt8]
    /// The batch being filled: per entity key (in first-seen order) the newest row of each view;
    /// an older row of a view already in the batch is dropped here (Redis would not apply it, or
    /// would overwrite it a moment later).
    private var keys: [[UInt8]] = []
    private var slots: [[UInt8]: Int] = [:]
    private var pending: [[FeastViewRow]] = []
    private var ingest: [Int64] = []
    private var read: [Int64] = []
    private var rows = 0
    /// Batches sent whose replies are unread, oldest first.
    private var inFlight: [Batch] = []

    public private(set) var rowsWritten: Int64 = 0
    public private(set) var rowsNotNewer: Int64 = 0

    init(sink: FeastOnlineSink<T>) throws {
        self.sink = sink
        let o = sink.options
        connection = try RedisConnection(host: o.host, port: o.port, connectTimeout: o.connectTimeout,
                                         commandTimeout: o.commandTimeout)
        ttlArgument = Array(String(o.keyTTLSeconds ?? 0).utf8)
        projectBytes = Array(sink.project.utf8)
        try connection.load(FeastOnlineSink<T>.script)
        startBatch()
    }

    private func startBatch() {
        keys.removeAll(keepingCapacity: true)
        slots.removeAll(keepingCapacity: true)
        pending.removeAll(keepingCapacity: true)
        ingest = []
        read = []
        rows = 0
    }

    public func initializeState(_ restored: [[UInt8]]) throws {}

    public func write(_ value: T, context: SinkWriterContext) throws {
        guard let update = try sink.toUpdate(value), !update.rows.isEmpty else { return }
        let key = update.entity.serialized() + projectBytes
        rows += update.rows.count
        if let t = update.ingestMillis { ingest.append(t) }
        if let t = update.readMillis { read.append(t) }
        if let slot = slots[key] {
            for row in update.rows {
                if let i = pending[slot].firstIndex(where: { $0.view == row.view }) {
                    if pending[slot][i].eventTime < row.eventTime { pending[slot][i] = row }
                } else {
                    pending[slot].append(row)
                }
            }
            return
        }
        slots[key] = keys.count
        keys.append(key)
        pending.append(update.rows)
        if keys.count >= sink.options.maxBatch { try send() }
    }

    public func snapshotState(checkpointId: CheckpointId) throws -> [UInt8] {
        try send()
        try awaitReplies(keeping: 0)
        return []
    }

    public func notifyCheckpointComplete(_ id: CheckpointId) throws {}

    /// Out of input for now: send the batch and take the replies (the rows are in Redis).
    public func flushIdle() throws {
        if !keys.isEmpty { try send() }
        if !inFlight.isEmpty { try awaitReplies(keeping: 0) }
    }

    public func flush(endOfInput: Bool) throws {
        try send()
        try awaitReplies(keeping: 0)
    }

    public func close() throws {
        try send()
        try awaitReplies(keeping: 0)
    }

    private func timestampField(_ view: String) -> [UInt8] {
        if let f = timestampFields[view] { return f }
        let f = FeastLayout.timestampField(view: view)
        timestampFields[view] = f
        return f
    }

    private func field(_ view: String, _ name: String) -> [UInt8] {
        if let f = fields[view]?[name] { return f }
        let f = FeastLayout.featureField(view: view, feature: name)
        fields[view, default: [:]][name] = f
        return f
    }

    private func send() throws {
        guard !keys.isEmpty else { return }
        let script = FeastOnlineSink<T>.script
        var argc = 3 + keys.count + 1
        for views in pending {
            argc += 1
            for row in views { argc += 5 + 2 * row.features.count }
        }
        var c = RESPCommand(arguments: argc, capacity: 64 * argc)
        c.argument("EVALSHA")
        c.argument(script.sha1)
        c.argument(Int64(keys.count))
        for k in keys { c.argument(k) }
        c.argument(ttlArgument)
        var value: [UInt8] = []
        for views in pending {
            c.argument(Int64(views.count))
            for row in views {
                let ts = row.eventTime
                c.argument(timestampField(row.view))
                c.argument(ts.serialized())
                c.argument(ts.seconds)
                c.argument(Int64(ts.nanos))
                c.argument(Int64(row.features.count))
                for (name, v) in row.features {
                    c.argument(field(row.view, name))
                    value.removeAll(keepingCapacity: true)
                    v.serialize(into: &value)
                    c.argument(value)
                }
            }
        }
        let batch = Batch(command: c.bytes, rows: rows, ingest: ingest, read: read, sentNanos: monotonicNanos())
        startBatch()
        inFlight.append(batch)
        do {
            try connection.appendFormatted(batch.command)
            try connection.flushOutput()
        } catch let error as RedisError where error.isConnectionError {
            try recover(from: error)
        }
        if inFlight.count > sink.options.maxInFlightBatches { try awaitReplies(keeping: sink.options.maxInFlightBatches / 2) }
    }

    /// Reads replies until at most `keeping` batches are in flight. NOSCRIPT (the server lost the
    /// script) loads it and sends those batches again; a lost connection reconnects and sends every
    /// unacknowledged batch again — both safe, the script is idempotent.
    private func awaitReplies(keeping: Int) throws {
        var rounds = 0
        while inFlight.count > keeping {
            rounds += 1
            if rounds > sink.options.reconnectAttempts + 2 {
                throw RedisError.reply("Feast upsert script", "batches still unacknowledged after \(rounds - 1) resends; giving up")
            }
            do {
                while inFlight.count > keeping {
                    let reply = try connection.readReply()
                    let batch = inFlight[0]
                    switch reply {
                    case .integer(let n):
                        rowsWritten += n
                        rowsNotNewer += Int64(batch.rows) - n
                        inFlight.removeFirst()
                        metrics.latency.recordNanoseconds(Int64(clamping: monotonicNanos() &- batch.sentNanos))
                        metrics.written.increment(by: Int64(batch.rows))
                        if let observe = sink.latency, !batch.ingest.isEmpty || !batch.read.isEmpty {
                            let now = Int64(wallClockMillis())
                            observe(batch.ingest.map { now - $0 }, batch.read.map { now - $0 })
                        }
                    case .error(let message) where RedisConnection.isNoScript(message):
                        metrics.errors.increment()
                        // Everything after it was answered NOSCRIPT too: load and resend them all.
                        for _ in 1..<inFlight.count { _ = try connection.readReply() }
                        try connection.load(FeastOnlineSink<T>.script)
                        try resendInFlight()
                    case .error(let message):
                        metrics.errors.increment()
                        throw RedisError.reply("Feast upsert script", message)
                    case let other:
                        metrics.errors.increment()
                        throw RedisError.reply("Feast upsert script", "unexpected reply \(other)")
                    }
                }
            } catch let error as RedisError where error.isConnectionError {
                try recover(from: error)
            }
        }
    }

    /// Reconnects (attempts with growing pauses) and sends every batch in flight again.
    private func recover(from error: RedisError) throws {
        metrics.errors.increment()
        var last = error
        for attempt in 0..<sink.options.reconnectAttempts {
            if attempt > 0 { usleep(UInt32(min(1_000_000, 100_000 << attempt))) }
            do {
                try connection.reconnect()
                try connection.load(FeastOnlineSink<T>.script)
                try resendInFlight()
                return
            } catch let e as RedisError where e.isConnectionError {
                last = e
            }
        }
        throw last
    }

    private func resendInFlight() throws {
        for b in inFlight { try connection.appendFormatted(b.command) }
        try connection.flushOutput()
    }
}

/// Wall-clock epoch milliseconds (for latency against Kafka record timestamps, which are wall clock).
@inline(__always)
public func wallClockMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
