import CRdKafka
import StreamCore
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Flink's `DeliveryGuarantee` for the Kafka sink.
public enum KafkaDeliveryGuarantee: Sendable, Equatable {
    /// Fire and forget: nothing waits for acknowledgements at checkpoints.
    case none
    /// Every record written before a checkpoint's barrier is acknowledged by the broker before the
    /// checkpoint completes; after a failure, records since the last checkpoint are written again.
    case atLeastOnce
    /// One Kafka transaction per checkpoint epoch, committed when the checkpoint completes;
    /// consumers with `isolation.level=read_committed` see each record once. The transactional id
    /// of subtask `i` is `"<prefix>-<i>"`: a restarted job fences the previous run's producers.
    case exactlyOnce(transactionalIdPrefix: String)
}

/// Turns elements into Kafka records, one instance per sink subtask.
public protocol KafkaRecordSerializer<Input>: AnyObject {
    associatedtype Input
    func serialize(_ value: Input) throws -> KafkaProducerRecord
}

/// Writes to Kafka (Flink's `KafkaSink`), at least once or exactly once (see
/// `KafkaDeliveryGuarantee`).
public struct KafkaSink<Input>: Sink {
    public let config: KafkaConfig
    public let topic: String
    public let guarantee: KafkaDeliveryGuarantee
    public let makeSerializer: @Sendable () throws -> any KafkaRecordSerializer<Input>
    /// Exactly-once without checkpoints commits at the end of input (`.commitImmediately`).
    public let endOfInput: EndOfInputCommit
    public let producerProperties: [String: String]
    /// How long a transaction operation (begin, commit, abort, init) is retried through retriable
    /// errors — a broker outage — before the writer gives up and fails the job.
    public let transactionRetryLimit: Duration

    public init(config: KafkaConfig, topic: String, guarantee: KafkaDeliveryGuarantee,
                endOfInput: EndOfInputCommit = .awaitFinalCheckpoint, producerProperties: [String: String] = [:],
                transactionRetryLimit: Duration = .seconds(600),
                serializer: @escaping @Sendable () throws -> any KafkaRecordSerializer<Input>) {
        if case .exactlyOnce(let prefix) = guarantee {
            precondition(!prefix.isEmpty, "exactly-once needs a transactional id prefix")
        }
        self.config = config
        self.topic = topic
        self.guarantee = guarantee
        self.endOfInput = endOfInput
        self.producerProperties = producerProperties
        self.transactionRetryLimit = transactionRetryLimit
        self.makeSerializer = serializer
    }

    public func createWriter(_ context: SinkInitContext) throws -> KafkaSinkWriter<Input> {
        let serializer = try makeSerializer()
        switch guarantee {
        case .none, .atLeastOnce:
            let producer = try KafkaProducer(config: config, defaultTopic: topic, extra: producerProperties,
                                             name: "Kafka sink \(topic) subtask \(context.subtaskIndex)")
            return KafkaSinkWriter(.plain(AtLeastOnceKafkaWriter(producer: producer, serializer: serializer,
                                                                 waitAtCheckpoints: guarantee == .atLeastOnce)))
        case .exactlyOnce(let prefix):
            let logic = try TransactionalKafkaLogic(config: config, topic: topic,
                                                    transactionalId: "\(prefix)-\(context.subtaskIndex)",
                                                    extra: producerProperties, retryLimit: transactionRetryLimit,
                                                    serializer: serializer)
            return KafkaSinkWriter(.transactional(TwoPhaseCommitSinkWriter(logic: logic, endOfInput: endOfInput)))
        }
    }
}

/// The writer of a `KafkaSink`: one of the two implementations behind one type.
public final class KafkaSinkWriter<Input>: CheckpointedSinkWriter {
    enum Kind {
        case plain(AtLeastOnceKafkaWriter<Input>)
        case transactional(TwoPhaseCommitSinkWriter<TransactionalKafkaLogic<Input>>)
    }
    let kind: Kind
    init(_ kind: Kind) { self.kind = kind }

    public func write(_ value: Input, context: SinkWriterContext) throws {
        switch kind {
        case .plain(let w): try w.write(value, timestamp: context.timestamp)
        case .transactional(let w): try w.write(value, context: context)
        }
    }
    public func flush(endOfInput: Bool) throws {
        switch kind {
        case .plain(let w): if endOfInput { try w.producer.flush() }
        case .transactional(let w): try w.flush(endOfInput: endOfInput)
        }
    }
    public func initializeState(_ restored: [[UInt8]]) throws {
        if case .transactional(let w) = kind { try w.initializeState(restored) }
    }
    public func snapshotState(checkpointId: CheckpointId) throws -> [UInt8] {
        switch kind {
        case .plain(let w):
            if w.waitAtCheckpoints { try w.producer.flush() }
            return []
        case .transactional(let w): return try w.snapshotState(checkpointId: checkpointId)
        }
    }
    public func notifyCheckpointComplete(_ id: CheckpointId) throws {
        if case .transactional(let w) = kind { try w.notifyCheckpointComplete(id) }
    }
    public func notifyCheckpointAborted(_ id: CheckpointId) {}
    public func close() throws {
        switch kind {
        case .plain(let w): try w.producer.flush()
        case .transactional(let w): try w.close()
        }
    }
}

final class AtLeastOnceKafkaWriter<Input> {
    let producer: KafkaProducer
    let serializer: any KafkaRecordSerializer<Input>
    let waitAtCheckpoints: Bool
    init(producer: KafkaProducer, serializer: any KafkaRecordSerializer<Input>, waitAtCheckpoints: Bool) {
        self.producer = producer
        self.serializer = serializer
        self.waitAtCheckpoints = waitAtCheckpoints
    }
    func write(_ value: Input, timestamp: Int64?) throws {
        try producer.produce(try serializer.serialize(value), timestamp: timestamp)
    }
}

// MARK: - Exactly once

/// A Kafka transaction of one checkpoint epoch, as stored in checkpoints: which transactional id
/// wrote it, its sequence number, and, once pre-committed, a copy of its records.
///
/// The copy is why it works with librdkafka: a transaction cannot be resumed by another process
/// (librdkafka has no API for Flink's resume-by-producer-id), and the first thing a restarted
/// producer does with the same transactional id aborts it. So a restore re-writes the records of a
/// pre-committed transaction in a new one — unless it was committed before the failure, which the
/// transaction itself recorded: each commits, atomically with its records, the offset `seq` of
/// partition 0 of the sink's topic for the consumer group `"<transactionalId>.commits"`.
public struct KafkaTransaction: Codable, Sendable, Equatable {
    public var transactionalId: String
    public var seq: Int64
    /// The records, encoded (`RecordLog`), filled in at pre-commit.
    public var records: Data
    public var count: Int
}

/// Records in a byte log: per record, topic, partition (-1 = any), timestamp, key and value
/// (length -1 = null).
struct RecordLog {
    var bytes = Data()
    var count = 0

    mutating func append(_ r: KafkaProducerRecord, topic: String, timestamp: Int64?) {
        func int(_ v: Int64) { var x = v.bigEndian; withUnsafeBytes(of: &x) { bytes.append(contentsOf: $0) } }
        func blob(_ b: [UInt8]?) {
            guard let b else { int(-1); return }
            int(Int64(b.count)); bytes.append(contentsOf: b)
        }
        blob(Array((r.topic ?? topic).utf8))
        int(Int64(r.partition ?? -1))
        int(r.timestamp ?? timestamp ?? 0)
        blob(r.key)
        blob(r.value)
        count += 1
    }

    static func records(_ data: Data) throws -> [KafkaProducerRecord] {
        var out: [KafkaProducerRecord] = []
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var i = 0
            func int() throws -> Int64 {
                guard i + 8 <= raw.count else { throw KafkaError("Kafka sink: transaction log truncated") }
                var v: Int64 = 0
                for k in 0..<8 { v = v << 8 | Int64(raw[i + k]) }
                i += 8
                return v
            }
            func blob() throws -> [UInt8]? {
                let n = try int()
                if n < 0 { return nil }
                guard i + Int(n) <= raw.count else { throw KafkaError("Kafka sink: transaction log truncated") }
                defer { i += Int(n) }
                return Array(raw[i..<i + Int(n)])
            }
            while i < raw.count {
                let topic = String(decoding: try blob() ?? [], as: UTF8.self)
                let partition = try int()
                let ts = try int()
                out.append(KafkaProducerRecord(topic: topic, partition: partition < 0 ? nil : Int32(partition),
                                               key: try blob(), value: try blob(), timestamp: ts))
            }
        }
        return out
    }
}

/// The two-phase-commit logic of the exactly-once Kafka sink. One producer (transactional id
/// `"<prefix>-<subtask>"`) holds at most one open Kafka transaction. Records of epoch `n` go into
/// it as they come when no earlier epoch awaits its commit; otherwise they wait in memory and go
/// in once the earlier epochs are committed. Every epoch's records are kept until its commit (see
/// `KafkaTransaction`).
public final class TransactionalKafkaLogic<Input>: TwoPhaseCommitLogic {
    public typealias Transaction = KafkaTransaction
    let config: KafkaConfig
    let topic: String
    let transactionalId: String
    let extra: [String: String]
    let serializer: any KafkaRecordSerializer<Input>
    var producer: KafkaProducer?
    /// The seq of the transaction open in Kafka, if any.
    var live: Int64?
    var nextSeq: Int64 = 1
    /// The open (not yet pre-committed) epoch's records.
    var openSeq: Int64?
    var openLog = RecordLog()
    /// Pre-committed and not yet committed, in order.
    var pending: [Int64] = []
    let retryLimit: Duration
    /// One attempt's timeout: at most a minute, at most the retry limit.
    var timeoutMillis: Int32 { Int32(min(60_000, max(1_000, retryLimit.components.seconds * 1_000))) }

    init(config: KafkaConfig, topic: String, transactionalId: String, extra: [String: String],
         retryLimit: Duration, serializer: any KafkaRecordSerializer<Input>) throws {
        self.retryLimit = retryLimit
        self.config = config
        self.topic = topic
        self.transactionalId = transactionalId
        self.extra = extra
        self.serializer = serializer
    }

    var markerGroup: String { "\(transactionalId).commits" }

    /// The producer, created and initialised (which fences earlier producers with this id and
    /// aborts their open transaction) on first use.
    func ensureProducer() throws -> KafkaProducer {
        if let producer { return producer }
        let p = try Self.initTransactional(config: config, topic: topic, transactionalId: transactionalId, extra: extra, limit: retryLimit)
        producer = p
        // A fresh start continues the id's sequence, so a later restore compares against this run's numbers.
        nextSeq = max(nextSeq, try committedMarker(markerGroup) + 1)
        return p
    }

    static func initTransactional(config: KafkaConfig, topic: String, transactionalId: String,
                                  extra: [String: String], limit: Duration) throws -> KafkaProducer {
        var props = extra
        props["transactional.id"] = transactionalId
        props["transaction.timeout.ms"] = props["transaction.timeout.ms"] ?? "600000"
        let p = try KafkaProducer(config: config, defaultTopic: topic, extra: props, name: "Kafka sink \(transactionalId)")
        try Self.retrying("init transactions of \(transactionalId)", limit: limit) { rd_kafka_init_transactions(p.handle.raw, 60_000) }
        return p
    }

    /// Retries retriable errors (broker outage) until success or until `limit` has passed; throws others.
    static func retrying(_ what: String, limit: Duration, _ call: () -> OpaquePointer?) throws {
        let deadline = ContinuousClock.now + limit
        while let err = call() {
            let e = KafkaError("Kafka sink: \(what)", consuming: err)
            guard e.isRetriable else { throw e }
            guard ContinuousClock.now < deadline else {
                throw KafkaError("\(e.description) — still failing after \(limit); giving up", code: e.code)
            }
            writeStderr("\(e); retrying")
        }
    }

    func retrying(_ what: String, _ call: () -> OpaquePointer?) throws {
        try Self.retrying(what, limit: retryLimit, call)
    }

    /// The sequence number last committed by transactional id owner of `group` (0 if none).
    func committedMarker(_ group: String) throws -> Int64 {
        let consumer = try KafkaHandle(consumer: true, config: config, defaults: ["group.id": group, "enable.auto.commit": "false"])
        let list = PartitionList([(topic, 0, Int64(RD_KAFKA_OFFSET_INVALID))])
        let err = rd_kafka_committed(consumer.raw, list.raw, 30_000)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError("Kafka sink: reading commit marker of \(group)", err) }
        return max(0, list.entries.first?.offset ?? 0)
    }

    public func beginTransaction() throws -> KafkaTransaction {
        let p = try ensureProducer()
        let seq = nextSeq
        nextSeq += 1
        openSeq = seq
        openLog = RecordLog()
        if live == nil && pending.isEmpty {
            try retrying("begin transaction") { rd_kafka_begin_transaction(p.handle.raw) }
            live = seq
        }
        return KafkaTransaction(transactionalId: transactionalId, seq: seq, records: Data(), count: 0)
    }

    public func invoke(_ transaction: inout KafkaTransaction, value: Input, context: SinkWriterContext) throws {
        let record = try serializer.serialize(value)
        openLog.append(record, topic: topic, timestamp: context.timestamp)
        if live == transaction.seq { try producer!.produce(record, timestamp: context.timestamp) }
    }

    /// TRIBUTARY_KAFKA_TXN_TRACE=1 traces the transactions on stderr.
    static var tracing: Bool { getenv("TRIBUTARY_KAFKA_TXN_TRACE") != nil }

    func debug(_ s: @autoclosure () -> String) {
        guard Self.tracing else { return }
        writeStderr("\(transactionalId): \(s()) live \(live.map(String.init) ?? "-") pending \(pending) open \(openSeq.map(String.init) ?? "-")")
    }

    public func preCommit(_ transaction: inout KafkaTransaction) throws {
        defer { debug("preCommit #\(transaction.seq) (\(transaction.count) records)") }
        transaction.records = openLog.bytes
        transaction.count = openLog.count
        openLog = RecordLog()
        openSeq = nil
        pending.append(transaction.seq)
        if live == transaction.seq {
            try producer!.flush()
            try sendMarker(transaction)
        }
    }

    func sendMarker(_ t: KafkaTransaction) throws {
        let p = producer!
        let offsets = PartitionList([(topic, 0, t.seq)])
        guard let meta = rd_kafka_consumer_group_metadata_new("\(t.transactionalId).commits") else {
            throw KafkaError("Kafka sink: group metadata")
        }
        defer { rd_kafka_consumer_group_metadata_destroy(meta) }
        try retrying("sending the commit marker of \(t.transactionalId) #\(t.seq)") {
            rd_kafka_send_offsets_to_transaction(p.handle.raw, offsets.raw, meta, timeoutMillis)
        }
    }

    public func commit(_ transaction: KafkaTransaction) throws {
        debug("commit #\(transaction.seq)")
        let p = try ensureProducer()
        if live != transaction.seq {
            // Written only to the log so far (an earlier epoch was live): write it now.
            precondition(live == nil, "the Kafka sink commits transactions in order")
            try writeInNewTransaction(transaction)
        } else {
            try retrying("committing transaction #\(transaction.seq)") { rd_kafka_commit_transaction(p.handle.raw, timeoutMillis) }
            live = nil
        }
        pending.removeAll { $0 == transaction.seq }
        try promoteOpen()
    }

    /// Once nothing earlier awaits its commit, the open epoch goes into a live Kafka transaction.
    func promoteOpen() throws {
        guard live == nil, pending.isEmpty, let seq = openSeq, let p = producer else { return }
        try retrying("begin transaction") { rd_kafka_begin_transaction(p.handle.raw) }
        live = seq
        for r in try RecordLog.records(openLog.bytes) { try p.produce(r, timestamp: nil) }
    }

    func writeInNewTransaction(_ t: KafkaTransaction) throws {
        let p = try ensureProducer()
        try retrying("begin transaction") { rd_kafka_begin_transaction(p.handle.raw) }
        live = t.seq
        for r in try RecordLog.records(t.records) { try p.produce(r, timestamp: nil) }
        try p.flush()
        try sendMarker(t)
        try retrying("committing transaction #\(t.seq)") { rd_kafka_commit_transaction(p.handle.raw, timeoutMillis) }
        live = nil
    }

    public func abort(_ transaction: KafkaTransaction) throws {
        debug("abort #\(transaction.seq)")
        if transaction.seq == openSeq { openSeq = nil; openLog = RecordLog() }
        guard live == transaction.seq, let p = producer else { return }
        try retrying("aborting transaction #\(transaction.seq)") { rd_kafka_abort_transaction(p.handle.raw, timeoutMillis) }
        live = nil
    }

    /// Restore: commit a pre-committed transaction unless its marker says it was.
    public func recoverAndCommit(_ transaction: KafkaTransaction) throws {
        _ = try ensureProducer()
        nextSeq = max(nextSeq, transaction.seq + 1)
        if try committedMarker("\(transaction.transactionalId).commits") >= transaction.seq { return }
        try writeInNewTransaction(transaction)
    }

    /// Restore: the open transaction of another subtask's id (after a rescale) is fenced and
    /// aborted by initialising a producer with that id; ours was when our producer started.
    public func recoverAndAbort(_ transaction: KafkaTransaction) throws {
        nextSeq = max(nextSeq, transaction.seq + 1)
        if transaction.transactionalId != transactionalId {
            _ = try Self.initTransactional(config: config, topic: topic, transactionalId: transaction.transactionalId,
                                           extra: extra, limit: retryLimit)
        }
    }

    public func close() throws {
        producer = nil
    }
}
