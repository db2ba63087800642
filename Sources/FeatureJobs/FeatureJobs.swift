import Connectors
import Contracts
import Foundation
import Kafka
import Operators
import StreamCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Topic naming.
public enum Topics {
    public static func dlq(_ topic: String) -> String { topic + ".dlq" }
}

/// What the feature jobs share: the settings, the contracts, the connections, the sinks.
public struct FeatureJobContext: Sendable {
    public let settings: JobSettings
    public let registry: ContractRegistry
    public let stats: JobStats

    public init(settings: JobSettings, stats: JobStats = JobStats()) throws {
        self.settings = settings
        self.stats = stats
        do { registry = try ContractRegistry(file: settings.registry) } catch {
            throw JobConfigurationError("cannot load the schema registry file '\(settings.registry)': \(error) (run from the repository root, or pass --registry)")
        }
    }

    public var kafka: KafkaConfig { KafkaConfig(bootstrapServers: settings.bootstrap) }

    /// Waits (with backoff) until the broker answers for `topics` and Redis answers PING; then a
    /// message that says what to start.
    public func checkConnections(topics: [String]) throws {
        let s = settings
        try retrying("the Kafka broker at \(s.bootstrap)",
                     hint: "start the local stack with `make up` (or point KAFKA_BOOTSTRAP / --bootstrap at a broker that has the topics \(topics.joined(separator: ", ")))") {
            _ = try KafkaAdmin.partitionCounts(kafka, topics)
        }
        guard s.writeOnline else { return }
        try retrying("Redis at \(s.redisHost):\(s.redisPort)",
                     hint: "start the local stack with `make up` (or set REDIS_HOST/REDIS_PORT or --redis HOST:PORT; --no-online skips Redis)") {
            let c = try RedisConnection(host: s.redisHost, port: s.redisPort, connectTimeout: .seconds(2), commandTimeout: .seconds(2))
            _ = try c.command("PING")
        }
    }

    func retrying(_ what: String, hint: String, _ body: () throws -> Void) throws {
        var delay: UInt32 = 250_000
        for attempt in 1...settings.connectAttempts {
            do { return try body() } catch {
                if attempt == settings.connectAttempts {
                    throw JobConfigurationError("\(settings.job): cannot reach \(what) after \(attempt) attempts (\(error)); \(hint)")
                }
                writeStderr("\(settings.job): cannot reach \(what) yet (\(error)); retrying in \(delay / 1000) ms")
                usleep(delay)
                delay = min(delay * 2, 4_000_000)
            }
        }
    }

    /// A Kafka source of records built by `builder` straight from their Avro (read as the schema
    /// `schemaId`) that keep their origin — and, with `keepBytes`, their key and value bytes, for a
    /// dead letter later on — starting from the committed offsets of the job's group (checkpoints
    /// override them on restore). `decoded` is called for each record decoded.
    public func source<B: AvroRecordBuilder>(topic: String, schemaId: Int32, builder: B.Type, keepBytes: Bool = true,
                                             decoded: (@Sendable () -> Void)? = nil) -> KafkaSource<Sourced<B.Record>> {
        let registry = self.registry
        let url = settings.schemaRegistryURL
        var source = KafkaSource<Sourced<B.Record>>(config: kafka, topics: [topic], groupId: settings.groupId,
                                                    startingOffsets: startingOffsets, bounded: settings.bounded) {
            let remote = url.map { SchemaRegistryClient(baseURL: $0) }
            let records = try ConfluentAvroDeserializer<B.Record>(registry: registry, readerSchema: registry.byId[schemaId]!,
                                                                  remote: remote, builder: B.self)
            return KeepingOrigin(decoded.map { Counted(records, $0) } ?? records, keepBytes: keepBytes)
        }
        source.assignment = assignment
        return source
    }

    /// Where a start without a checkpoint reads (`--starting-offsets`).
    public var startingOffsets: KafkaStartingOffsets {
        switch settings.startingOffsets {
        case "earliest": .earliest
        case "latest": .latest
        default: .committed(fallback: .earliest)
        }
    }

    /// `topic` as the job reads it: built by `builder` (what cannot be goes to `<topic>.dlq`), with
    /// event-time watermarks; `counted` inputs also count each record as an event and keep only those
    /// inside `--from`/`--to`; the others' decoded records are counted apart (`sideRecordsIn`).
    /// `keepBytes`: see `source`.
    public func input<B: AvroRecordBuilder>(_ env: StreamExecutionEnvironment, topic: String, schemaId: Int32, name: String,
                                            builder: B.Type, counted: Bool = true, keepBytes: Bool = true,
                                            eventTime: @escaping @Sendable (B.Record) -> Int64) -> DataStream<Sourced<B.Record>> {
        let stats = self.stats
        var decoded: (@Sendable () -> Void)?
        if !counted { decoded = { stats.sideRecordsIn.add(1, ordering: .relaxed) } }
        let sourced = env.fromSource(source(topic: topic, schemaId: schemaId, builder: B.self, keepBytes: keepBytes, decoded: decoded),
                                     watermarkStrategy: watermarks { eventTime($0.value) }, name: name)
        deadLetters(sourced.getSideOutput(SourceOutputs.rejected), topic: topic, name: "\(name) DLQ")
        guard counted else { return sourced }
        return sourced.filter { r in
            stats.recordsIn.add(1, ordering: .relaxed)
            return self.inRange(eventTime(r.value))
        }
    }

    /// When the job read `record` (wall clock); one record in 64 also samples how long the broker
    /// took to hand it over.
    public func readTime<T>(_ record: Sourced<T>) -> Int64 {
        let now = wallClockMillis()
        if record.origin.offset & 63 == 0 { stats.observeSourceLatency(now - record.timestamp) }
        return now
    }

    /// Dead letters of `stream` go to `<topic>.dlq` (at least once: a replayed dead letter is the same envelope).
    public func deadLetters(_ rejected: DataStream<RejectedRecord>, topic: String, name: String) {
        let registry = self.registry, job = settings.job, stats = self.stats
        rejected.map { r -> RejectedRecord in
            stats.deadLetter(reason: r.reason)
            return r
        }.sinkTo(KafkaSink(config: kafka, topic: Topics.dlq(topic), guarantee: .atLeastOnce) {
            try DeadLetterSerializer(registry: registry, job: job)
        }, name: name)
    }

    /// The event-time filter of a replay (`--from`/`--to`): events outside are skipped and counted.
    public func inRange(_ eventTime: Int64) -> Bool {
        if let f = settings.fromTime, eventTime < f { stats.outOfRange.add(1, ordering: .relaxed); return false }
        if let t = settings.toTime, eventTime >= t { stats.outOfRange.add(1, ordering: .relaxed); return false }
        return true
    }

    public func watermarks<T>(_ time: @escaping @Sendable (Sourced<T>) -> Int64) -> WatermarkStrategy<Sourced<T>> {
        WatermarkStrategy<Sourced<T>>.forBoundedOutOfOrderness(settings.outOfOrderness)
            .withTimestampAssigner { s, _ in time(s) }
            .withIdleness(settings.idleness)
    }

    /// The online store sink (Feast layout, newest event time wins).
    public func online<T>(_ toUpdate: @escaping @Sendable (T) -> FeastEntityUpdate) -> FeastOnlineSink<T> {
        let stats = self.stats
        return FeastOnlineSink<T>(project: settings.project,
                                  options: .init(host: settings.redisHost, port: settings.redisPort, keyTTLSeconds: settings.keyTTLSeconds,
                                                maxBatch: settings.onlineBatch),
                                  latency: { stats.observeLatency($0, fromRead: $1) }) { value in
            stats.onlineRows.add(1, ordering: .relaxed)
            return toUpdate(value)
        }
    }

    /// The offline feature log.
    public func offline(_ rows: DataStream<OfflineRow>, name: String = "offline log") {
        let stats = self.stats
        rows.map { r -> OfflineRow in
            stats.offlineRows.add(1, ordering: .relaxed)
            return r
        }.sinkTo(OfflineLog.sink(directory: settings.offlineDir, checkpointed: settings.checkpointing.checkpointDirectory != nil), name: name)
    }

    /// The features topic, exactly once (one transaction per checkpoint).
    public func featuresTopic<T>(_ rows: DataStream<T>, subject: String, record: @escaping @Sendable (T) -> (key: String, value: AvroValue)) throws {
        guard let topic = settings.featuresTopic else { return }
        guard let id = registry.latestId(subject) else { throw JobConfigurationError("no schema for subject \(subject) in \(settings.registry)") }
        let registry = self.registry
        // Each process of a scaled-out job has transactional ids of its own (fencing is per id).
        let process = settings.processCount > 1 ? "-p\(settings.processIndex)" : ""
        let guarantee: KafkaDeliveryGuarantee = settings.checkpointing.checkpointDirectory == nil
            ? .atLeastOnce : .exactlyOnce(transactionalIdPrefix: "\(settings.job)-\(topic)\(process)")
        rows.sinkTo(KafkaSink(config: kafka, topic: topic, guarantee: guarantee) {
            try ConfluentAvroSerializer<T>(registry: registry, schemaId: id) { v in
                let r = record(v)
                return (Array(r.key.utf8), r.value)
            }
        }, name: "features topic")
    }

    /// A progress line on stderr every `progressSeconds` while the job runs; call the result to stop it.
    public func startProgress() -> @Sendable () -> Void {
        let every = settings.progressSeconds, stats = self.stats, job = settings.job
        guard every > 0 else { return {} }
        let stop = Atomic<Bool>(false)
        let thread = Thread {
            blockStopSignals()
            var last: Int64 = 0
            var ticks = 0
            while !stop.load(ordering: .acquiring) {
                usleep(100_000)
                ticks += 1
                guard ticks % (every * 10) == 0 else { continue }
                let n = stats.recordsIn.load(ordering: .relaxed)
                let p95 = stats.latencyQuantile(0.95).map { "\($0) ms" } ?? "-"
                writeStderr("\(job): \(n) events in (\((n - last) / Int64(every))/s), \(stats.onlineRows.load(ordering: .relaxed)) online updates, \(stats.offlineRows.load(ordering: .relaxed)) offline rows, \(stats.deadLetters.load(ordering: .relaxed)) to the DLQ, event→Redis p95 \(p95)")
                last = n
            }
        }
        thread.start()
        return { stop.store(true, ordering: .releasing) }
    }

    /// The end-of-run summary.
    public func summary(checkpoints: String, seconds: Double) -> String {
        let s = stats
        let n = s.recordsIn.load(ordering: .relaxed)
        let side = s.sideRecordsIn.load(ordering: .relaxed)
        let reasons = s.deadLetterReasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let q = { (p: Double) in s.latencyQuantile(p).map { "\($0) ms" } ?? "-" }
        let qs = { (p: Double) in s.latencyQuantile(p, .eventToRead).map { "\($0) ms" } ?? "-" }
        let qj = { (p: Double) in s.latencyQuantile(p, .readToRedis).map { "\($0) ms" } ?? "-" }
        return """
        \(settings.job) summary:
          events in            \(n) in \(String(format: "%.1f", seconds)) s (\(Int(Double(n) / max(seconds, 0.001)))/s)\(s.outOfRange.load(ordering: .relaxed) > 0 ? " (\(s.outOfRange.load(ordering: .relaxed)) outside --from/--to skipped)" : "")\(side > 0 ? "\n  side records in      \(side) (device records; all records in: \(Int(Double(n + side) / max(seconds, 0.001)))/s)" : "")
          online updates       \(s.onlineRows.load(ordering: .relaxed)) entity updates to Redis (newest event time wins per view)
          offline rows         \(s.offlineRows.load(ordering: .relaxed)) (\(settings.offlineDir))
          dead letters         \(s.deadLetters.load(ordering: .relaxed))\(reasons.isEmpty ? "" : " (\(reasons))")
          event→Redis latency  p50 \(q(0.5)), p95 \(q(0.95)), p99 \(q(0.99)) over \(s.latencyCount) rows
            of which broker      event → read from Kafka: p50 \(qs(0.5)), p95 \(qs(0.95)), p99 \(qs(0.99)) (1 in 64 sampled)
            of which this job    read → in Redis: p50 \(qj(0.5)), p95 \(qj(0.95)), p99 \(qj(0.99))
          checkpoints          \(checkpoints)
        """
    }
}

/// Builds txn-features on `env`: transactions (and device records) in; card features online, in
/// the offline log and on the features topic; window aggregates in the offline log; dead letters out.
public func buildTxnFeatures(_ env: StreamExecutionEnvironment, _ ctx: FeatureJobContext) throws {
    let s = ctx.settings
    // Read as transactions.v1 (id 1): v2 data resolves to it (merchant_id is not a feature yet).
    let txns = ctx.input(env, topic: s.txnTopic, schemaId: 1, name: "transactions", builder: Transaction.Fields.self) { $0.timestamp }

    // On-arrival card features → Redis, offline log, features topic.
    let lastN = s.lastN
    let features = txns.map { IngestedTransaction($0.value, ingestMillis: $0.timestamp, readMillis: ctx.readTime($0)) }
        .keyBy { $0.txn.cardId }
        .process(name: "card features", CardFeaturesFunction(lastN: lastN))
    var offline: [DataStream<OfflineRow>] = []
    if s.writeOffline { offline.append(features.flatMap { row, out in for r in row.offlineRows { try out.collect(r) } }) }
    try ctx.featuresTopic(features, subject: "features.txn-value") { r in (r.cardId, r.avro) }

    // Window aggregates per card (offline): tumbling 5 min, sliding 30 min every 5 min. Records too
    // late for all sliding windows (and so for the tumbling one) go to the DLQ as TOO_LATE.
    // Only what the windows need travels to them (card, amount) — and, for the DLQ, the original
    // key, bytes and position of each record.
    let tooLate = OutputTag<WindowedTransaction>("too-late")
    let byCard = txns.map { WindowedTransaction($0) }.keyBy { $0.cardId }
    let tumbling = byCard.window(TumblingEventTimeWindows.of(.minutes(5)))
        .aggregate(CountSum(), WindowRowFunction(view: .txnWindow5m), name: "window 5m")
    let sliding = byCard.window(SlidingEventTimeWindows.of(.minutes(30), .minutes(5)))
        .sideOutputLateData(tooLate)
        .aggregate(CountSum(), WindowRowFunction(view: .txnWindow30m), name: "window 30m/5m")
    let job = s.job
    ctx.deadLetters(sliding.getSideOutput(tooLate).map {
        RejectedRecord(reason: "TOO_LATE", error: "event time \($0.eventTime) is behind the watermark by more than every window of \(job) (30 min)",
                       key: $0.key, value: $0.bytes, origin: $0.origin, timestamp: $0.ingestMillis)
    }, topic: s.txnTopic, name: "too-late DLQ")
    if s.writeOffline { offline.append(tumbling.union(sliding).map { $0.offlineRow }) }

    // The device join: device records (deduplicated per device and hour) re-keyed with the
    // transactions by device_id, interval join, then the newest row per card. Scaled out over
    // processes, the two re-keys go through repartition topics: the probes to the process that
    // owns the device's partition of the device topic, the joined rows back to the card's.
    let partitions = s.processCount > 1 ? try KafkaAdmin.partitionCounts(ctx.kafka, [s.txnTopic, s.deviceTopic]) : [:]
    if let fewest = partitions.values.min(), fewest < s.processCount {
        throw JobConfigurationError("--process-count \(s.processCount) is more than the \(fewest) partitions of \(partitions.filter { $0.value == fewest }.keys.sorted().joined(separator: ", ")): a process would have nothing to read")
    }
    // Device records are not dead-lettered after the source: their bytes are not kept.
    let devices = ctx.input(env, topic: s.deviceTopic, schemaId: 4, name: "devices", builder: Device.Fields.self,
                            counted: false, keepBytes: false) { $0.timestamp }.map { $0.value }
        .keyBy { $0.deviceId }
        .process(name: "device changes", DeviceChangesFunction())
    var probes = txns.map { DeviceProbe(cardId: $0.value.cardId, deviceId: $0.value.deviceId, country: $0.value.country,
                                        timestamp: $0.value.timestamp) }
    if s.processCount > 1 {
        probes = try ctx.repartition(probes, env, name: "device-probes", partitions: partitions[s.deviceTopic]!,
                                     key: { $0.deviceId }, eventTime: { $0.timestamp })
    }
    var deviceRows = probes
        .keyBy { $0.deviceId }
        .intervalJoin(devices.keyBy { $0.deviceId })
        .between(.hours(-2), .zero)
        .process(name: "device join", DeviceJoinFunction())
    if s.processCount > 1 {
        deviceRows = try ctx.repartition(deviceRows, env, name: "device-rows", partitions: partitions[s.txnTopic]!,
                                         key: { $0.cardId }, eventTime: { $0.eventTime })
    }
    let joined = deviceRows
        .keyBy { $0.cardId }
        .process(name: "newest device row", NewestPerKey<DeviceFeatureRow>(eventTime: { $0.eventTime }))
    // One online sink for the card's three views: both streams are keyed by card, so a card's rows
    // meet in the same writer and batch, and go out as one entity update (one script step per key).
    if s.writeOnline {
        features.map { $0.onlineUpdate }.union(joined.map { $0.onlineUpdate })
            .sinkTo(ctx.online { $0 }, name: "online store")
    }
    if s.writeOffline { offline.append(joined.map { $0.offlineRow }) }

    if let first = offline.first {
        ctx.offline(offline.dropFirst().reduce(first) { $0.union($1) })
    }
}

/// Builds click-features on `env`: clicks in; session-so-far rows and closed sessions online and in
/// the offline log; dead letters out.
public func buildClickFeatures(_ env: StreamExecutionEnvironment, _ ctx: FeatureJobContext) throws {
    let s = ctx.settings
    let clicks = ctx.input(env, topic: s.clickTopic, schemaId: 3, name: "clicks", builder: Click.Fields.self) { $0.timestamp }
    let live = clicks.map { IngestedClick($0.value, ingestMillis: $0.timestamp, readMillis: ctx.readTime($0)) }
        .keyBy { $0.click.userId }
        .process(name: "session so far", SessionLiveFunction())
    let tooLate = OutputTag<Sourced<Click>>("too-late")
    let sessions = clicks.keyBy { $0.value.userId }
        .window(EventTimeSessionWindows.withGap(.minutes(30)))
        .sideOutputLateData(tooLate)
        .aggregate(SessionAggregate(), SessionRowFunction(), name: "sessions")
    let job = s.job
    ctx.deadLetters(sessions.getSideOutput(tooLate).map {
        $0.rejected(reason: "TOO_LATE", error: "event time \($0.value.timestamp) is behind the watermark of \(job): its session has closed")
    }, topic: s.clickTopic, name: "too-late DLQ")
    if s.writeOnline {
        live.map { $0.onlineUpdate }.union(sessions.map { $0.onlineUpdate })
            .sinkTo(ctx.online { $0 }, name: "online store")
    }
    if s.writeOffline { ctx.offline(live.map { $0.offlineRow }.union(sessions.map { $0.offlineRow })) }
    try ctx.featuresTopic(live, subject: "features.click-value") { r in (r.userId, r.avro) }
}

/// A transaction on its way to the windows: its card, time and amount, and what a dead letter needs.
public struct WindowedTransaction: Sendable {
    public var cardId: String
    public var eventTime: Int64
    public var amountMinor: Int64
    public var origin: RecordOrigin
    public var key: [UInt8]?
    public var bytes: [UInt8]?
    public var ingestMillis: Int64

    public init(_ s: Sourced<Transaction>) {
        cardId = s.value.cardId
        eventTime = s.value.timestamp
        amountMinor = s.value.amountMinor
        origin = s.origin
        key = s.key
        bytes = s.bytes
        ingestMillis = s.timestamp
    }
}

/// A transaction on its way to the device join.
public struct DeviceProbe: Sendable, Codable {
    public var cardId: String
    public var deviceId: String
    public var country: String
    public var timestamp: Int64
}

/// A window's count of transactions and sum of their amounts (a value: window state holds one per
/// card and slice, so no heap allocation per accumulator).
public struct CountAndSum: Sendable, Codable, Equatable {
    public var count: Int64
    public var sum: Int64

    public init(count: Int64 = 0, sum: Int64 = 0) {
        self.count = count
        self.sum = sum
    }
}

/// Count and sum of amounts.
public struct CountSum: AggregateFunction {
    public init() {}
    public func createAccumulator() -> CountAndSum { CountAndSum() }
    public func add(_ value: WindowedTransaction, to a: inout CountAndSum) {
        a.count += 1
        a.sum += value.amountMinor
    }
    public func getResult(_ a: CountAndSum) -> CountAndSum { a }
    public func merge(_ a: CountAndSum, _ b: CountAndSum) -> CountAndSum { CountAndSum(count: a.count + b.count, sum: a.sum + b.sum) }
}

public final class WindowRowFunction: ProcessWindowFunction {
    public typealias Key = String
    let view: FeatureView
    public init(view: FeatureView) { self.view = view }
    public func process(_ key: String, _ context: WindowContext, _ elements: [CountAndSum], _ out: Collector<CardWindowRow>) throws {
        for a in elements {
            try out.collect(CardWindowRow(view: view, cardId: key, windowStart: context.window.start,
                                          windowEnd: context.window.end, count: a.count, sum: a.sum))
        }
    }
}

/// Passes a device record on when it differs from the last one passed on for the device, or that
/// one is an hour older (device.enrich re-announces devices; the join needs one per interval).
public final class DeviceChangesFunction: KeyedProcessFunction {
    public typealias Key = String
    var last: ValueState<Device>!
    public init() {}
    public func open(_ context: RuntimeContext) throws {
        last = try context.getState(ValueStateDescriptor<Device>("last-device")
            .withTimeToLive(StateTtlConfig(ttl: .hours(24))))
    }
    public func processElement(_ d: Device, _ ctx: KeyedProcessContext<String>, _ out: Collector<Device>) throws {
        if let l = last.value(), l.os == d.os, l.firstSeen == d.firstSeen, l.country == d.country,
           d.timestamp < l.timestamp + 3_600_000 { return }
        last.update(d)
        try out.collect(d)
    }
}

public final class DeviceJoinFunction: ProcessJoinFunction {
    public init() {}
    public func processElement(_ t: DeviceProbe, _ d: Device, _ ctx: JoinContext, _ out: Collector<DeviceFeatureRow>) throws {
        try out.collect(DeviceFeatureRow(
            // No ingest time: a pair is complete when its later side arrives, so the latency
            // histogram (event → Redis) covers the on-arrival rows only.
            cardId: t.cardId, eventTime: t.timestamp, ingestMillis: 0, deviceOS: d.os,
            deviceAgeDays: Double(t.timestamp - d.firstSeen) / 86_400_000,
            deviceCountryMismatch: d.country.map { $0 != t.country ? 1 : 0 } ?? 0))
    }
}

/// Passes a row on only when its event time is newer than every earlier row of its key — what
/// Redis will apply — so the offline log holds exactly the rows served online.
public final class NewestPerKey<T: Codable>: KeyedProcessFunction {
    public typealias Key = String
    let eventTime: @Sendable (T) -> Int64
    var newest: ValueState<Int64>!
    public init(eventTime: @escaping @Sendable (T) -> Int64) { self.eventTime = eventTime }
    public func open(_ context: RuntimeContext) throws {
        newest = try context.getState(ValueStateDescriptor<Int64>("newest").withTimeToLive(StateTtlConfig(ttl: .hours(24))))
    }
    public func processElement(_ v: T, _ ctx: KeyedProcessContext<String>, _ out: Collector<T>) throws {
        let t = eventTime(v)
        if let n = newest.value(), t <= n { return }
        newest.update(t)
        try out.collect(v)
    }
}

extension CardFeatureRow {
    /// The features topic's record (`txn_features.v1`).
    public var avro: AvroValue {
        .record([
            .init("card_id", .string(cardId)), .init("txn_id", .string(txnId)), .init("event_timestamp", .long(eventTime)),
            .init("count_5m", .long(count5m)), .init("sum_5m", .long(sum5m)), .init("avg_5m", .double(avg5m)),
            .init("geo_mismatch_ratio_5m", .double(geoMismatchRatio5m)), .init("count_30m", .long(count30m)),
            .init("count_24h", .long(count24h)), .init("sum_24h", .long(sum24h)), .init("avg_24h", .double(avg24h)),
            .init("geo_mismatch_ratio_last_n", .double(geoMismatchRatioLastN)),
            .init("device_mismatch_ratio_last_n", .double(deviceMismatchRatioLastN)),
            .init("seconds_since_last_txn", secondsSinceLastTxn.map { .double($0) } ?? .null),
            .init("amount_minor", .long(amountMinor)),
        ])
    }
}

extension SessionLiveRow {
    /// The features topic's record (`click_features.v1`).
    public var avro: AvroValue {
        .record([
            .init("user_id", .string(userId)), .init("event_timestamp", .long(eventTime)),
            .init("session_clicks", .long(sessionClicks)), .init("session_dwell_seconds", .double(sessionDwellSeconds)),
            .init("session_distinct_items", .long(sessionDistinctItems)), .init("clicks_1h", .long(clicks1h)),
        ])
    }
}
