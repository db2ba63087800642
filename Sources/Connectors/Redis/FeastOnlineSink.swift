import CHiredis
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

/// Where `FeastOnlineSink` writes and how (`FeastOnlineSink.Options`).
public struct FeastOnlineOptions: Sendable {
    public var host: String
    public var port: Int
    public var connectTimeout: Duration
    public var commandTimeout: Duration
    /// Feast's `key_ttl_seconds`: every write also sets `EXPIRE key ttl`.
    public var keyTTLSeconds: Int?
    /// Entities (keys) per batch, at most. Redis 7.0's `WATCH` compares each key with every key
    /// the client already watches, so a batch's check costs Redis O(n²): 128 keys keep that
    /// below a microsecond per key.
    public var maxBatch: Int
    /// Script protocol: batches sent whose replies are unread, at most.
    public var maxInFlightBatches: Int
    /// Reconnect-and-resend attempts after a lost connection, per failure.
    public var reconnectAttempts: Int
    /// How a batch is applied atomically (`FeastWriteProtocol`).
    public var writeProtocol: FeastWriteProtocol

    public init(host: String = "127.0.0.1", port: Int = 6379, connectTimeout: Duration = .seconds(2),
                commandTimeout: Duration = .seconds(10), keyTTLSeconds: Int? = nil, maxBatch: Int = 128,
                maxInFlightBatches: Int = 8, reconnectAttempts: Int = 5,
                writeProtocol: FeastWriteProtocol = .optimistic()) {
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
        self.writeProtocol = writeProtocol
    }
}

/// Called for every batch Redis acknowledged with (now − ingest time) and (now − read time) in
/// milliseconds of its records that carry them.
public typealias OnlineLatencyObserver = @Sendable (_ fromIngest: [Int64], _ fromRead: [Int64]) -> Void

/// Writes feature rows to Redis in Feast's layout, newest event time wins per view: batched, with
/// several views per entity (`RedisUpsertSink` is its one-view convenience).
///
/// Records are grouped into batches (at most `maxBatch` entities, coalesced per key) and each batch
/// is applied atomically, writing each view's row only if its event time is strictly newer than the
/// stored `_ts:<view>` (Feast's rule), all of a view's features together. Repeats and older rows
/// change nothing, so replay after a crash is a no-op (exactly-once effect without waiting for
/// checkpoints). How a batch is applied is `Options.writeProtocol`: by default an optimistic
/// transaction with Redis's own commands (`WATCH` the keys, `HMGET` their `_ts` fields, compare
/// here, then `MULTI`, one `HSET` per key with newer rows, `EXEC`; a batch whose keys another client
/// changed in between is checked again), or one call of a server-side script
/// (`FeastOnlineSink.script`), which costs Redis about three times the CPU. A batch goes out when
/// it is full, when the writer's thread runs out of input (then every reply is awaited: the rows
/// are in Redis), and at least every buffer timeout of the runtime while the thread is busy (then
/// without waiting: the next batch or timeout commits it), so rows reach Redis within
/// milliseconds; at a checkpoint barrier every reply is awaited.
public struct FeastOnlineSink<T>: Sink {
    public typealias Options = FeastOnlineOptions

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

/// How `FeastOnlineSink` applies a batch, each atomically and newest-wins per view.
public enum FeastWriteProtocol: Sendable, Equatable {
    /// `WATCH` the batch's keys and `HMGET` their `_ts` fields; compare in the writer; `MULTI`,
    /// `HSET` (and `EXPIRE`) of each key with newer rows, `EXEC`. If another client changed a
    /// watched key in between, `EXEC` applies nothing and the batch is checked again; after
    /// `attempts` such rounds it goes through the script, which cannot be interrupted. Redis runs
    /// only its native commands: about a third of the script's CPU. Needs one round trip per batch
    /// before its writes go out.
    case optimistic(attempts: Int = 3)
    /// One `EVALSHA` of `FeastOnlineSink.script` per batch (loaded again after `NOSCRIPT`).
    case script
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

/// The writer of one subtask: turns records into entity updates for its `FeastBatchWriter`.
public final class FeastOnlineWriter<T>: CheckpointedSinkWriter {
    public typealias Input = T

    let toUpdate: @Sendable (T) throws -> FeastEntityUpdate?
    let batches: FeastBatchWriter

    public var rowsWritten: Int64 { batches.rowsWritten }
    public var rowsNotNewer: Int64 { batches.rowsNotNewer }
    public var transactionsInterrupted: Int64 { batches.transactionsInterrupted }
    var beforeCommit: (() throws -> Void)? {
        get { batches.beforeCommit }
        set { batches.beforeCommit = newValue }
    }

    init(sink: FeastOnlineSink<T>) throws {
        toUpdate = sink.toUpdate
        batches = try FeastBatchWriter(project: sink.project, options: sink.options, latency: sink.latency)
    }

    public func initializeState(_ restored: [[UInt8]]) throws {}

    public func write(_ value: T, context: SinkWriterContext) throws {
        guard let update = try toUpdate(value) else { return }
        try batches.write(update)
    }

    public func snapshotState(checkpointId: CheckpointId) throws -> [UInt8] {
        try batches.applyAll()
        return []
    }

    public func notifyCheckpointComplete(_ id: CheckpointId) throws {}

    /// Out of input for now: send the batch and take the replies (the rows are in Redis).
    public func flushIdle() throws { try batches.applyAll() }

    /// Busy, but a buffer timeout passed: the batch being filled goes out (its check; the check
    /// before it is committed), without waiting for its replies.
    public func flushBusy() throws { try batches.sendBuffered() }

    public func flush(endOfInput: Bool) throws { try batches.applyAll() }

    public func close() throws { try batches.applyAll() }
}

/// Entity updates into Redis for `FeastOnlineSink`: one connection; batches coalesced per key and
/// pipelined. Not generic, so that all of it is compiled for the one type it handles.
///
/// Optimistic protocol (the default): a full batch's check (`WATCH` + one `HMGET` per key) is sent
/// at once; its replies are read when the next batch is full (or at an idle flush or a barrier),
/// and its commit (`MULTI` … `EXEC`) goes out right before the next check. So Redis works on one
/// batch while the writer fills the next, and the connection carries at most one commit and one
/// check unanswered (`EXEC` ends every `WATCH`, so a second check may not start earlier).
public final class FeastBatchWriter {
    /// A batch: per entity key (in first-seen order) the newest row of each view. The rows are
    /// kept as they came and encoded only into the commit, and only those newer than what is
    /// stored (a replay encodes nothing). One flat array holds them: a key's rows are chained
    /// from `firstRow[key]` by `PendingRow.next`, in first-seen order.
    struct Batch {
        var keys: [[UInt8]] = []
        var firstRow: [Int32] = []
        var rows: [PendingRow] = []
        /// Rows it was made of (before coalescing), for the counts.
        var rowsIn = 0
        var ingest: [Int64] = []
        var read: [Int64] = []
        /// When it was first sent (monotonic), for the sink latency.
        var sentNanos: UInt64 = 0
        /// Its commit: the commands queued between `MULTI` and `EXEC`, and the rows they write
        /// (those newer than what was stored); when none was newer, only `UNWATCH`.
        var queued = 0
        var newer = 0
        var unwatchOnly: Bool { newer == 0 }

        /// Calls `body` with the index in `rows` of each row of key `k`, in order.
        @inline(__always)
        func forEachRow(ofKey k: Int, _ body: (Int) throws -> Void) rethrows {
            var i = firstRow[k]
            while i >= 0 {
                try body(Int(i))
                i = rows[Int(i)].next
            }
        }

        func rowCount(ofKey k: Int) -> Int {
            var n = 0
            forEachRow(ofKey: k) { _ in n += 1 }
            return n
        }
    }

    /// A view row of a batch: its view (index into `viewFields`), the next row of the same key
    /// (-1: none), and the row as the update brought it.
    struct PendingRow {
        var view: Int32
        var next: Int32
        var row: FeastViewRow

        /// Its arguments in an `HSET`: `_ts:<view>`, the Timestamp, a field and a value per feature.
        var arguments: Int { 2 + 2 * row.features.count }
    }

    /// `tributary_sink_*{sink="redis"}` through swift-metrics: a batch's round trip (sent →
    /// acknowledged), entity updates written and not newer, and the errors the writer recovered
    /// from (a lost connection, a flushed script, a transaction another client interrupted) or
    /// failed with.
    struct Metrics {
        let latency = CoreMetrics.Timer(label: "tributary_sink_latency_seconds", dimensions: [("sink", "redis")])
        let written = CoreMetrics.Counter(label: "tributary_sink_records_total", dimensions: [("sink", "redis")])
        let errors = CoreMetrics.Counter(label: "tributary_sink_errors_total", dimensions: [("sink", "redis")])
    }
    let metrics = Metrics()

    let project: String
    let options: FeastOnlineOptions
    let latency: OnlineLatencyObserver?
    let connection: RedisConnection
    private let ttlArgument: [UInt8]
    /// Each view's hash fields, ready to append (few views: found by a linear search).
    private var viewFields: [ViewFields] = []
    /// The batch being filled, and where each of its keys is.
    private var batch = Batch()
    private var slots: [EntityKey: Int] = [:]
    /// Script protocol: batches sent (with their commands), replies unread, oldest first.
    private var inFlight: [(batch: Batch, command: [UInt8])] = []
    /// Optimistic protocol: the batch whose commit was sent, reply unread; the batch whose check
    /// was sent after it, replies unread; batches another client interrupted, to apply again.
    private var committing: Batch?
    private var checking: Batch?
    private var interrupted: [Batch] = []
    private var scriptLoaded = false

    private(set) var rowsWritten: Int64 = 0
    private(set) var rowsNotNewer: Int64 = 0
    /// Optimistic commits that another client's write to a watched key made Redis refuse.
    private(set) var transactionsInterrupted: Int64 = 0
    /// Tests: runs after a check's replies are read, before its commit is sent (another client's
    /// write here interrupts the commit).
    var beforeCommit: (() throws -> Void)?

    /// Connects (an unreachable Redis fails here with a clear message).
    init(project: String, options: FeastOnlineOptions, latency: OnlineLatencyObserver?) throws {
        self.project = project
        self.options = options
        self.latency = latency
        connection = try RedisConnection(host: options.host, port: options.port, connectTimeout: options.connectTimeout,
                                         commandTimeout: options.commandTimeout)
        ttlArgument = Array(String(options.keyTTLSeconds ?? 0).utf8)
        if options.writeProtocol == .script { try loadScript() }
    }

    /// Adds an update to the batch (sent when it holds `maxBatch` keys).
    func write(_ update: FeastEntityUpdate) throws {
        guard !update.rows.isEmpty else { return }
        let key = EntityKey(bytes: FeastLayout.hashKey(update.entity, project: project))
        batch.rowsIn += update.rows.count
        if let t = update.ingestMillis { batch.ingest.append(t) }
        if let t = update.readMillis { batch.read.append(t) }
        let slot: Int
        if let known = slots[key] {
            slot = known
        } else {
            slot = batch.keys.count
            slots[key] = slot
            batch.keys.append(key.bytes)
            batch.firstRow.append(-1)
        }
        // Per view the newest row stays (within one update as across updates).
        for row in update.rows {
            let view = Int32(fieldsIndex(row.view))
            var i = batch.firstRow[slot], last: Int32 = -1
            while i >= 0, batch.rows[Int(i)].view != view {
                last = i
                i = batch.rows[Int(i)].next
            }
            if i >= 0 {
                if batch.rows[Int(i)].row.eventTime < row.eventTime { batch.rows[Int(i)].row = row }
            } else {
                let added = Int32(batch.rows.count)
                batch.rows.append(PendingRow(view: view, next: -1, row: row))
                if last >= 0 { batch.rows[Int(last)].next = added } else { batch.firstRow[slot] = added }
            }
        }
        if batch.keys.count >= options.maxBatch { try send() }
    }

    /// Sends the batch being filled on its way, waiting only where the protocol must (the check
    /// before it is committed first; its replies have usually arrived by then). With nothing to
    /// send, a check in flight is committed, so buffered rows land within two calls.
    func sendBuffered() throws {
        if batch.keys.isEmpty, checking != nil, case .optimistic = options.writeProtocol {
            try withRecovery { try commitChecked() }
        } else {
            try send()
        }
    }

    /// Sends the batch being filled and waits until Redis applied everything sent.
    func applyAll() throws {
        try send()
        try awaitAll()
    }

    // MARK: Sending

    /// Sends the batch being filled (if any) on its way.
    private func send() throws {
        guard !batch.keys.isEmpty else { return }
        switch options.writeProtocol {
        case .script:
            let next = takeBatch()
            let command = scriptCommand(next)
            inFlight.append((next, command))
            try withRecovery {
                try connection.appendFormatted(command)
                try connection.flushOutput()
                if inFlight.count > options.maxInFlightBatches { try awaitScriptReplies(keeping: options.maxInFlightBatches / 2) }
            }
        case .optimistic:
            // One check at a time: the previous one is committed first.
            try withRecovery {
                if checking != nil { try commitChecked() }
                if !interrupted.isEmpty { try drain() }
            }
            let next = takeBatch()
            checking = next
            try withRecovery {
                try connection.appendFormatted(checkCommands(next), commands: 1 + next.keys.count)
                try connection.flushOutput()
            }
        }
    }

    private func takeBatch() -> Batch {
        var next = batch
        batch = Batch()
        slots.removeAll(keepingCapacity: true)
        next.sentNanos = monotonicNanos()
        return next
    }

    /// Until every batch sent is applied.
    private func awaitAll() throws {
        try withRecovery {
            switch options.writeProtocol {
            case .script: try awaitScriptReplies(keeping: 0)
            case .optimistic: try drain()
            }
        }
    }

    /// Runs `body`; a lost connection is reconnected (attempts with growing pauses) and every
    /// batch not yet acknowledged is applied again — safe, newest-wins makes it idempotent.
    private func withRecovery(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as RedisError where error.isConnectionError {
            metrics.errors.increment()
            var last = error
            for attempt in 0..<options.reconnectAttempts {
                if attempt > 0 { usleep(UInt32(min(1_000_000, 100_000 << attempt))) }
                do {
                    try connection.reconnect()
                    scriptLoaded = false
                    try applyUnacknowledgedAgain()
                    return
                } catch let e as RedisError where e.isConnectionError {
                    last = e
                }
            }
            throw last
        }
    }

    private func applyUnacknowledgedAgain() throws {
        switch options.writeProtocol {
        case .script:
            try awaitScriptReplies(keeping: 0)  // loads the script and resends first
        case .optimistic:
            interrupted = [committing, checking].compactMap { $0 } + inFlight.map(\.batch) + interrupted
            committing = nil
            checking = nil
            inFlight = []
            try drain()
        }
    }

    /// A batch Redis applied: `written` of its rows were newer than what was stored.
    private func acknowledged(_ b: Batch, written: Int64) {
        rowsWritten += written
        rowsNotNewer += Int64(b.rowsIn) - written
        metrics.latency.recordNanoseconds(Int64(clamping: monotonicNanos() &- b.sentNanos))
        metrics.written.increment(by: Int64(b.rowsIn))
        if let observe = latency, !b.ingest.isEmpty || !b.read.isEmpty {
            let now = Int64(wallClockMillis())
            observe(b.ingest.map { now - $0 }, b.read.map { now - $0 })
        }
    }

    /// A view's hash fields as RESP arguments, computed once: `_ts:<view>` and the murmur3 field
    /// of each feature, in the order its rows list them.
    final class ViewFields {
        let view: String
        let timestamp: [UInt8]
        var names: [String] = []
        var fields: [[UInt8]] = []

        init(view: String) {
            self.view = view
            timestamp = RESPCommand.encoded(FeastLayout.timestampField(view: view))
        }

        /// The field of feature `name`, listed at `position` by the row (usually where it was before).
        func field(_ name: String, at position: Int) -> [UInt8] {
            if position < names.count, names[position] == name { return fields[position] }
            if let i = names.firstIndex(of: name) { return fields[i] }
            names.append(name)
            fields.append(RESPCommand.encoded(FeastLayout.featureField(view: view, feature: name)))
            return fields[fields.count - 1]
        }
    }

    private func fieldsIndex(_ view: String) -> Int {
        if let i = viewFields.firstIndex(where: { $0.view == view }) { return i }
        viewFields.append(ViewFields(view: view))
        return viewFields.count - 1
    }

    /// Appends a row's `HSET` arguments: `_ts:<view>`, its Timestamp, then its features.
    private func appendRow(_ p: PendingRow, to c: inout RESPCommand) {
        c.append(encoded: viewFields[Int(p.view)].timestamp)
        let ts = p.row.eventTime
        c.argument(count: ts.serializedCount) { ts.serialize(into: &$0) }
        appendFeatures(p, to: &c)
    }

    /// Appends each feature's field (murmur3, computed once per view) and `Value` bytes.
    private func appendFeatures(_ p: PendingRow, to c: inout RESPCommand) {
        let fields = viewFields[Int(p.view)]
        let features = p.row.features
        for i in features.indices {
            c.append(encoded: fields.field(features[i].name, at: i))
            let value = features[i].value
            c.argument(count: value.serializedCount) { value.serialize(into: &$0) }
        }
    }

    // MARK: The optimistic protocol

    /// `WATCH` of the batch's keys, then per key `HMGET` of its views' `_ts` fields.
    private func checkCommands(_ b: Batch) -> [UInt8] {
        var c = RESPCommand(arguments: 1 + b.keys.count, capacity: 128 * b.keys.count + 16)
        c.argument("WATCH")
        for k in b.keys { c.argument(k) }
        for k in b.keys.indices {
            c.append(arguments: 2 + b.rowCount(ofKey: k))
            c.argument("HMGET")
            c.argument(b.keys[k])
            b.forEachRow(ofKey: k) { c.append(encoded: viewFields[Int(b.rows[$0].view)].timestamp) }
        }
        return c.bytes
    }

    /// Reads the replies of the check in flight (after the commit before it) and sends its commit:
    /// `MULTI`, `HSET` (+ `EXPIRE`) of each key with a newer row, `EXEC` — or, if no row is newer
    /// (a replay), only `UNWATCH`. Either is sent without waiting for its replies.
    private func commitChecked() throws {
        if let b = try awaitCommit() { interrupted.append(b) }
        guard var b = checking else { return }
        let stored = try readCheck(b)
        try beforeCommit?()
        checking = nil
        if let (command, queued, newer) = try commitCommands(b, stored: stored) {
            b.queued = queued
            b.newer = newer
            try connection.appendFormatted(command, commands: queued + 2)
        } else {
            b.queued = 0
            b.newer = 0
            try connection.appendFormatted(Self.unwatch)
        }
        committing = b
        try connection.flushOutput()
    }

    private static let unwatch: [UInt8] = {
        var c = RESPCommand(arguments: 1, capacity: 20)
        c.argument("UNWATCH")
        return c.bytes
    }()

    /// The stored `_ts` of each key's views, in the batch's row order (one flat array; the replies
    /// are read in place, nothing copied per field).
    private func readCheck(_ b: Batch) throws -> [StoredTimestamp] {
        let watched = try connection.readReply()
        if let message = watched.errorMessage { throw RedisError.reply("WATCH", message) }
        var stored: [StoredTimestamp] = []
        stored.reserveCapacity(b.rows.count)
        for k in b.keys.indices {
            let fields = b.rowCount(ofKey: k)
            let error: String? = try connection.withReply { reply in
                let r = reply.pointee
                guard r.type == REDIS_REPLY_ARRAY, r.elements == fields else {
                    // Anything else (an error, a wrong count) is rare: converted as any reply is.
                    switch RedisConnection.convert(reply) {
                    case .error(let message): return message
                    case let other: return "unexpected reply \(other) for \(fields) fields"
                    }
                }
                for e in 0..<r.elements {
                    let element = r.element[e]!.pointee
                    guard element.type == REDIS_REPLY_STRING, let s = element.str else { stored.append(.absent); continue }
                    let bytes = UnsafeRawBufferPointer(start: s, count: element.len)
                    stored.append(ProtobufTimestamp(bytes).map { .stored($0) } ?? .invalid)
                }
                return nil
            }
            if let error { throw RedisError.reply("HMGET", error) }
        }
        return stored
    }

    /// The commit of a checked batch (`MULTI` … `EXEC`), the commands queued in it and the rows it
    /// writes; nil when no row is newer than what is stored.
    private func commitCommands(_ b: Batch, stored: [StoredTimestamp]) throws -> ([UInt8], queued: Int, newer: Int)? {
        // Which rows are newer than what is stored (`stored` is in the check's order: by key, then
        // the key's rows in order).
        var isNewer = [Bool](repeating: false, count: b.rows.count)
        var n = 0
        for k in b.keys.indices {
            try b.forEachRow(ofKey: k) { r in
                switch stored[n] {
                case .absent: isNewer[r] = true
                case .invalid: throw RedisError.reply("Feast upsert", "field _ts:\(viewFields[Int(b.rows[r].view)].view) does not hold a protobuf Timestamp")
                case .stored(let current): isNewer[r] = current.isOlder(than: b.rows[r].row.eventTime)
                }
                n += 1
            }
        }
        var c = RESPCommand(arguments: 1, capacity: 64 * 40 * b.keys.count)
        c.argument("MULTI")
        var queued = 0, newer = 0
        for k in b.keys.indices {
            var arguments = 2, rows = 0
            b.forEachRow(ofKey: k) { r in
                if isNewer[r] { arguments += b.rows[r].arguments; rows += 1 }
            }
            guard rows > 0 else { continue }
            newer += rows
            c.append(arguments: arguments)
            c.argument("HSET")
            c.argument(b.keys[k])
            b.forEachRow(ofKey: k) { r in
                if isNewer[r] { appendRow(b.rows[r], to: &c) }
            }
            queued += 1
            if options.keyTTLSeconds != nil {
                c.append(arguments: 3)
                c.argument("EXPIRE")
                c.argument(b.keys[k])
                c.argument(ttlArgument)
                queued += 1
            }
        }
        guard newer > 0 else { return nil }
        c.append(arguments: 1)
        c.argument("EXEC")
        return (c.bytes, queued, newer)
    }

    /// Reads the replies of the commit in flight, if any: `+OK`, `+QUEUED` per command, then
    /// `EXEC`'s results. Returns the batch when `EXEC` applied nothing because another client
    /// changed a watched key.
    private func awaitCommit() throws -> Batch? {
        guard let b = committing else { return nil }
        if b.unwatchOnly {
            let error = try connection.withReply(Self.errorMessage)
            committing = nil
            if let error {
                metrics.errors.increment()
                throw RedisError.reply("UNWATCH", error)
            }
            acknowledged(b, written: 0)
            return nil
        }
        var refused: String?
        for _ in 0...b.queued {  // +OK for MULTI and +QUEUED for each queued command: only errors are converted
            if let message = try connection.withReply(Self.errorMessage), refused == nil { refused = message }
        }
        let exec: ExecResult = try connection.withReply { reply in
            let r = reply.pointee
            switch r.type {
            case REDIS_REPLY_ARRAY:
                for e in 0..<r.elements {
                    if let message = Self.errorMessage(r.element[e]!) { return .failed(message) }
                }
                return .applied
            case REDIS_REPLY_NIL: return .interrupted
            case REDIS_REPLY_ERROR: return .failed(Self.errorMessage(reply) ?? "")
            default: return .unexpected("\(RedisConnection.convert(reply))")
            }
        }
        committing = nil
        switch exec {
        case .applied:
            if let refused {
                metrics.errors.increment()
                throw RedisError.reply("Feast upsert", refused)
            }
            acknowledged(b, written: Int64(b.newer))
            return nil
        case .interrupted:
            transactionsInterrupted += 1
            metrics.errors.increment()
            return b
        case .failed(let message):
            metrics.errors.increment()
            throw RedisError.reply("Feast upsert", refused ?? message)
        case .unexpected(let text):
            throw RedisError.reply("EXEC", "unexpected reply \(text)")
        }
    }

    /// What `EXEC` answered: every queued command ran (an error among their results is `failed`),
    /// nothing ran because a watched key changed, or something else.
    private enum ExecResult {
        case applied, interrupted, failed(String), unexpected(String)
    }

    /// The message of an error reply; nil for any other reply (nothing is copied for those).
    private static func errorMessage(_ reply: UnsafeMutablePointer<redisReply>) -> String? {
        let r = reply.pointee
        guard r.type == REDIS_REPLY_ERROR else { return nil }
        guard let s = r.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: s, count: r.len), as: UTF8.self)
    }

    /// Applies everything sent: the check in flight is committed, the commit awaited, and batches
    /// another client interrupted are checked and committed again, one at a time — after the
    /// protocol's attempts, through the script, which nothing can interrupt.
    private func drain() throws {
        guard case .optimistic(let attempts) = options.writeProtocol else { return }
        if checking != nil { try commitChecked() }
        if let b = try awaitCommit() { interrupted.append(b) }
        while !interrupted.isEmpty {
            var b = interrupted.removeFirst()
            var tried = 1
            while true {
                if tried >= attempts {
                    try applyWithScript(b)
                    break
                }
                checking = b
                try connection.appendFormatted(checkCommands(b), commands: 1 + b.keys.count)
                try connection.flushOutput()
                try commitChecked()
                guard let again = try awaitCommit() else { break }
                b = again
                tried += 1
            }
        }
    }

    // MARK: The script protocol

    private func loadScript() throws {
        try connection.load(batchScript)
        scriptLoaded = true
    }

    private func applyWithScript(_ b: Batch) throws {
        if !scriptLoaded { try loadScript() }
        let command = scriptCommand(b)
        inFlight.append((b, command))
        try connection.appendFormatted(command)
        try connection.flushOutput()
        try awaitScriptReplies(keeping: 0)
    }

    /// The batch as one `EVALSHA` (arguments as `FeastOnlineSink.script` reads them).
    private func scriptCommand(_ b: Batch) -> [UInt8] {
        let script = batchScript
        var argc = 3 + b.keys.count + 1 + b.keys.count
        for row in b.rows { argc += 5 + 2 * row.row.features.count }
        var c = RESPCommand(arguments: argc, capacity: 64 * argc)
        c.argument("EVALSHA")
        c.argument(script.sha1)
        c.argument(Int64(b.keys.count))
        for k in b.keys { c.argument(k) }
        c.argument(ttlArgument)
        for k in b.keys.indices {
            c.argument(Int64(b.rowCount(ofKey: k)))
            b.forEachRow(ofKey: k) { r in
                let row = b.rows[r]
                let ts = row.row.eventTime
                c.append(encoded: viewFields[Int(row.view)].timestamp)
                c.argument(ts.serialized())
                c.argument(ts.seconds)
                c.argument(Int64(ts.nanos))
                c.argument(Int64(row.row.features.count))
                appendFeatures(row, to: &c)
            }
        }
        return c.bytes
    }

    /// Reads script replies until at most `keeping` batches are in flight. NOSCRIPT (the server
    /// lost the script) or a new connection loads it and sends those batches again — safe, the
    /// script is idempotent.
    private func awaitScriptReplies(keeping: Int) throws {
        var rounds = 0
        while inFlight.count > keeping {
            if !scriptLoaded {
                rounds += 1
                if rounds > options.reconnectAttempts + 2 {
                    throw RedisError.reply("Feast upsert script", "batches still unacknowledged after \(rounds - 1) resends; giving up")
                }
                try loadScript()
                for (_, command) in inFlight { try connection.appendFormatted(command) }
                try connection.flushOutput()
            }
            switch try connection.readReply() {
            case .integer(let n):
                acknowledged(inFlight.removeFirst().batch, written: n)
            case .error(let message) where RedisConnection.isNoScript(message):
                metrics.errors.increment()
                // Everything after it was answered NOSCRIPT too: load and resend them all.
                for _ in 1..<inFlight.count { _ = try connection.readReply() }
                scriptLoaded = false
            case .error(let message):
                metrics.errors.increment()
                throw RedisError.reply("Feast upsert script", message)
            case let other:
                metrics.errors.increment()
                throw RedisError.reply("Feast upsert script", "unexpected reply \(other)")
            }
        }
    }
}

/// A serialized entity key (with the project), hashed as one block of bytes rather than byte by
/// byte as `[UInt8]` is.
struct EntityKey: Hashable {
    let bytes: [UInt8]

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// What a check found stored for one row's view: no `_ts`, a Timestamp, or bytes that are not one.
enum StoredTimestamp {
    case absent
    case stored(ProtobufTimestamp)
    case invalid
}

/// A stored `google.protobuf.Timestamp` (`_ts:<view>`), decoded: field 1 seconds and field 2
/// nanos, both varints; anything else is not a Timestamp.
struct ProtobufTimestamp {
    var seconds: Int64 = 0
    var nanos: Int64 = 0

    init?(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        while i < bytes.count {
            let tag = bytes[i]
            i += 1
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < bytes.count, shift < 64 else { return nil }
                let b = bytes[i]
                i += 1
                v |= UInt64(b & 0x7f) << shift
                shift += 7
                if b < 0x80 { break }
            }
            switch tag {
            case 0x08: seconds = Int64(bitPattern: v)
            case 0x10: nanos = Int64(bitPattern: v)
            default: return nil
            }
        }
    }

    /// Whether `t` is strictly newer (Feast writes only then).
    func isOlder(than t: FeastTimestamp) -> Bool {
        (seconds, nanos) < (t.seconds, Int64(t.nanos))
    }
}

/// Wall-clock epoch milliseconds (for latency against Kafka record timestamps, which are wall clock).
@inline(__always)
public func wallClockMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
