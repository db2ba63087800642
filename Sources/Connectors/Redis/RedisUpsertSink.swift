import StreamCore

/// Writes rows of one feature view to Redis in Feast's online-store layout, newest event time wins:
/// the one-view form of `FeastOnlineSink`, which does the writing (same protocol, same writer).
///
/// Each row is applied atomically (`FeastWriteProtocol`: an optimistic `WATCH`/`MULTI`/`EXEC`
/// transaction, or a server-side script) that compares its event time with the view's stored
/// `_ts:<view>` and writes the row (all its features, the new `_ts`, and `EXPIRE` when a key TTL is
/// set) only if it is strictly newer, as Feast does. So a row applied twice, or
/// an older row arriving late, changes nothing: replaying the input after a crash is a no-op, and
/// rows go out at once instead of waiting for a checkpoint (exactly-once effect through
/// idempotent, versioned upserts). At a checkpoint barrier the writer waits for every reply.
public struct RedisUpsertSink<T>: Sink {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var connectTimeout: Duration
        public var commandTimeout: Duration
        /// Feast's `key_ttl_seconds`: every write also sets `EXPIRE key ttl`.
        public var keyTTLSeconds: Int?
        /// Rows (of distinct keys) queued before they are sent together (1: every row at once).
        public var rowsPerWrite: Int
        /// Rows sent whose replies have not been read yet, at most (rounded to whole batches).
        public var maxInFlight: Int
        /// Reconnect-and-resend attempts after a lost connection, per failure.
        public var reconnectAttempts: Int
        /// How rows are applied atomically (`FeastWriteProtocol`).
        public var writeProtocol: FeastWriteProtocol

        public init(host: String = "127.0.0.1", port: Int = 6379, connectTimeout: Duration = .seconds(2),
                    commandTimeout: Duration = .seconds(10), keyTTLSeconds: Int? = nil, rowsPerWrite: Int = 1,
                    maxInFlight: Int = 1024, reconnectAttempts: Int = 3, writeProtocol: FeastWriteProtocol = .optimistic()) {
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
            self.writeProtocol = writeProtocol
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

    /// The same sink as a `FeastOnlineSink` of one view.
    public var online: FeastOnlineSink<T> {
        let o = options, view = featureView, toRow = self.toRow
        return FeastOnlineSink(
            project: project,
            options: .init(host: o.host, port: o.port, connectTimeout: o.connectTimeout, commandTimeout: o.commandTimeout,
                           keyTTLSeconds: o.keyTTLSeconds, maxBatch: o.rowsPerWrite,
                           maxInFlightBatches: max(1, o.maxInFlight / o.rowsPerWrite), reconnectAttempts: o.reconnectAttempts,
                           writeProtocol: o.writeProtocol)
        ) { value in
            let row = try toRow(value)
            return FeastEntityUpdate(entity: row.entity,
                                     rows: [FeastViewRow(view: view, eventTime: row.eventTime, features: row.features)])
        }
    }

    /// Connects to Redis: a job with an unreachable store fails at start with a clear message.
    public func createWriter(_ context: SinkInitContext) throws -> FeastOnlineWriter<T> {
        try online.createWriter(context)
    }
}

/// The writer of a `RedisUpsertSink`.
public typealias RedisUpsertWriter<T> = FeastOnlineWriter<T>
