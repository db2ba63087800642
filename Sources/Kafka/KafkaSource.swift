import CRdKafka
import CoreMetrics
import StreamCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a Kafka source starts reading a partition it has no checkpointed position for (Flink's
/// `OffsetsInitializer`). Resolved to concrete offsets when the job starts.
public enum KafkaStartingOffsets: Sendable, Equatable {
    case earliest
    case latest
    /// The consumer group's committed offset; `fallback` where the group has none.
    case committed(fallback: KafkaFallbackOffset)
}

public enum KafkaFallbackOffset: Sendable, Equatable {
    case earliest, latest
}

/// One partition of a topic, with the offset of the next record to read (Flink's
/// `KafkaPartitionSplit`).
public struct KafkaPartitionSplit: SourceSplit, Equatable {
    public let topic: String
    public let partition: Int32
    /// Offset of the next record to read.
    public var nextOffset: Int64
    /// A bounded split ends when reading reaches the end of the partition.
    public let bounded: Bool
    /// Set when a bounded split reached the end.
    public var isFinished: Bool
    /// Repartition topics (`KafkaRecordDeserializer.readsWatermarkMarkers`): the latest watermark of each writer
    /// of the partition, and which are idle — kept in checkpoints, so a restored reader knows
    /// what the markers before its position said.
    public var channelWatermarks: [Int64]?
    public var idleChannels: [Bool]?
    public var splitId: String { "\(topic)-\(partition)" }

    public init(topic: String, partition: Int32, nextOffset: Int64, bounded: Bool = false) {
        self.topic = topic
        self.partition = partition
        self.nextOffset = nextOffset
        self.bounded = bounded
        self.isFinished = false
    }
}

/// A record as librdkafka hands it over, valid only during `deserialize`: no bytes are copied
/// unless the deserializer copies them.
public struct KafkaMessage {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    /// The record's timestamp (CreateTime or LogAppendTime), epoch ms; `Timestamps.none` if none.
    public let timestamp: Int64
    public let key: UnsafeRawBufferPointer?
    public let value: UnsafeRawBufferPointer?

    public var keyBytes: [UInt8]? { key.map { Array($0) } }
    public var valueBytes: [UInt8]? { value.map { Array($0) } }
    public var origin: RecordOrigin { RecordOrigin(topic: topic, partition: partition, offset: offset) }
}

/// Why a record could not be deserialized: a DLQ reason code and a message.
public struct DeserializationError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public let message: String
    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }
    public var description: String { "\(reason): \(message)" }
}

/// Turns Kafka records into elements, one instance per source subtask (so it may keep decoder
/// state). A thrown `DeserializationError` sends the record to `SourceOutputs.rejected`.
public protocol KafkaRecordDeserializer<Output>: AnyObject {
    associatedtype Output
    func deserialize(_ message: KafkaMessage) throws(DeserializationError) -> Output
    /// True for a repartition topic's reader (`RepartitionDeserializer`): the source takes the
    /// writers' watermark markers out of the partition and hands over their minimum as
    /// `watermark(_:)`'s element; a bounded split then ends when every writer has ended.
    var readsWatermarkMarkers: Bool { get }
    func watermark(_ combined: Int64) -> Output?
}

extension KafkaRecordDeserializer {
    public var readsWatermarkMarkers: Bool { false }
    public func watermark(_ combined: Int64) -> Output? { nil }
}

/// A record with its bytes copied out of librdkafka.
public struct KafkaRecord: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var timestamp: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
}

/// Copies records as they are (`KafkaRecord`).
public final class KafkaRecordCopier: KafkaRecordDeserializer {
    public init() {}
    public func deserialize(_ m: KafkaMessage) -> KafkaRecord {
        KafkaRecord(topic: m.topic, partition: m.partition, offset: m.offset, timestamp: m.timestamp,
                    key: m.keyBytes, value: m.valueBytes)
    }
}

/// Reads Kafka topics (Flink's `KafkaSource`): every partition is a split, assigned statically to
/// subtask `i % parallelism` in (topic, partition) order; each partition has its own watermark
/// generator (per-partition watermarks, idleness per partition with `withIdleness`). Positions are
/// recorded in checkpoints and restored by seeking; offsets are committed to the consumer group
/// when a checkpoint completes (for lag monitoring; never read back unless `startingOffsets` is
/// `.committed`), and by a bounded source once it has read everything. One consumer per subtask
/// serves all of its partitions and stops taking records while `maxBuffered` wait unread
/// (backpressure). Records the
/// deserializer rejects go to `SourceOutputs.rejected`. With `assignment` only this process's share
/// of the partitions is read; with a `RepartitionDeserializer` the topic is a repartition topic
/// (watermark markers, see `Repartition.swift`).
public struct KafkaSource<Output>: Source {
    public typealias Element = Output
    public typealias Split = KafkaPartitionSplit

    public let config: KafkaConfig
    public let topics: [String]
    public let groupId: String
    public let startingOffsets: KafkaStartingOffsets
    /// Bounded: each partition ends when reading first reaches its end (librdkafka's partition EOF).
    /// Flink's `setBounded(latest())` stops at the offsets that are the latest at start; this reads
    /// what is there when it gets to the end — the same when nothing is written meanwhile. (The
    /// local broker reports a wrong latest offset, the last batch's first offset + 1, so offsets
    /// asked for at start cannot serve as the end: ../shared/local-broker.md, docs/kafka.md.)
    public let bounded: Bool
    public let makeDeserializer: @Sendable () throws -> any KafkaRecordDeserializer<Output>
    /// Records taken from librdkafka per poll, and how many a subtask holds unread at most: beyond
    /// that it stops taking records, librdkafka's queue fills (`queued.max.messages.kbytes`) and
    /// librdkafka stops fetching — backpressure reaches the broker.
    public let pollBatch: Int
    public let maxBuffered: Int
    /// Only the partitions this process owns (scale-out over processes, docs/scaling.md); nil: all.
    public var assignment: KafkaStaticAssignment?

    public init(config: KafkaConfig, topics: [String], groupId: String,
                startingOffsets: KafkaStartingOffsets = .earliest, bounded: Bool = false,
                pollBatch: Int = 2_048, maxBuffered: Int = 8_192,
                deserializer: @escaping @Sendable () throws -> any KafkaRecordDeserializer<Output>) {
        precondition(!topics.isEmpty, "a Kafka source needs at least one topic")
        precondition(pollBatch > 0 && maxBuffered > 0)
        self.config = config
        self.topics = topics
        self.groupId = groupId
        self.startingOffsets = startingOffsets
        self.bounded = bounded
        self.pollBatch = pollBatch
        self.maxBuffered = maxBuffered
        self.makeDeserializer = deserializer
    }

    public var boundedness: Boundedness { bounded ? .bounded : .continuousUnbounded }

    func consumerDefaults() -> [String: String] {
        kafkaSourceConsumerDefaults(groupId: groupId).merging([
            "enable.partition.eof": bounded ? "true" : "false",
            "auto.offset.reset": "earliest",
        ]) { $1 }
    }

    /// Every partition of every topic, positioned by `startingOffsets` (and bounded by the latest
    /// offsets if `bounded`).
    public func createSplits(parallelism: Int) throws -> [KafkaPartitionSplit] {
        let handle = try KafkaHandle(consumer: true, config: config, defaults: consumerDefaults())
        let counts = try handle.partitionCounts(topics)
        var splits: [KafkaPartitionSplit] = []
        var committed: [String: Int64] = [:]
        if case .committed = startingOffsets {
            let list = PartitionList(topics.flatMap { t in (0..<Int32(counts[t]!)).map { (t, $0, Int64(RD_KAFKA_OFFSET_INVALID)) } })
            let err = rd_kafka_committed(handle.raw, list.raw, 10_000)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError("committed offsets of group \(groupId)", err) }
            for e in list.entries where e.offset >= 0 { committed["\(e.topic)-\(e.partition)"] = e.offset }
        }
        for topic in topics {
            for p in 0..<Int32(counts[topic]!) where assignment?.owns(partition: p) ?? true {
                // The beginning is offset 0, not the broker's log start: the local broker's
                // ListOffsets(earliest) can be wrong (10 000 for a partition starting at 0, which
                // librdkafka's OFFSET_BEGINNING asks too). Where the log really starts later
                // (retention), 0 is out of range and auto.offset.reset=earliest moves to the start.
                let beginning: Int64 = 0
                let start: Int64
                switch startingOffsets {
                case .earliest: start = beginning
                case .latest: start = try handle.watermarks(topic: topic, partition: p).high
                case .committed(let fallback):
                    if let c = committed["\(topic)-\(p)"] { start = c } else {
                        start = fallback == .earliest ? beginning : try handle.watermarks(topic: topic, partition: p).high
                    }
                }
                splits.append(KafkaPartitionSplit(topic: topic, partition: p, nextOffset: start, bounded: bounded))
            }
        }
        return splits
    }

    public func createReader(for split: KafkaPartitionSplit) throws -> KafkaPartitionReader<Output> {
        try createReaders(for: [split])[0]
    }

    public func createReaders(for splits: [KafkaPartitionSplit]) throws -> [KafkaPartitionReader<Output>] {
        guard !splits.isEmpty else { return [] }
        let session = try KafkaConsumerSession(source: self, splits: splits)
        return splits.indices.map { KafkaPartitionReader(session: session, index: $0) }
    }
}

/// One partition's share of a `KafkaConsumerSession`: its split and the messages polled for it.
/// (Not nested in the generic session: a nested class is generic too, and sorting each message into
/// its buffer then asked the runtime for the class's metadata.)
final class PartitionBuffer {
    // Per message: no dynamic exclusivity checks (the session is confined to the task thread).
    @exclusivity(unchecked) var split: KafkaPartitionSplit
    @exclusivity(unchecked) var messages: [UnsafeMutablePointer<rd_kafka_message_t>] = []
    @exclusivity(unchecked) var head = 0
    /// An end-of-partition past `nextOffset` seen once: the range between is fetched again
    /// before it is taken to hold no records (only transaction markers).
    var eofRetriedAt: Int64?
    /// Records between the position and the partition's end (swift-metrics; per partition).
    let lag: Gauge
    /// Records read from this partition's topic (one counter per topic, shared).
    let read: CoreMetrics.Counter
    @exclusivity(unchecked) var readSinceReport: Int64 = 0
    /// The combined watermark last handed over (repartition topics); not checkpointed, so a
    /// restored reader hands over the current one at the next marker.
    var watermarkHandedOver = Int64.min
    init(_ split: KafkaPartitionSplit, read: CoreMetrics.Counter) {
        self.split = split
        self.read = read
        lag = Gauge(label: "tributary_kafka_consumer_lag_records",
                    dimensions: [("topic", split.topic), ("partition", String(split.partition))])
    }
    var unread: Int { messages.count - head }
}

/// One subtask's consumer, shared by the readers of its partitions: polls librdkafka's queue in
/// batches and sorts the messages into per-partition buffers. Confined to the task thread.
public final class KafkaConsumerSession<Output> {
    let handle: KafkaHandle
    let queue: OpaquePointer
    let deserializer: any KafkaRecordDeserializer<Output>
    let buffers: [PartitionBuffer]
    /// (topic index << 32 | partition) → buffer index.
    var bufferIndex: [Int64: Int] = [:]
    var topicIndex: [OpaquePointer: Int64] = [:]
    let topicNames: [String]
    // Per message: no dynamic exclusivity checks (confined to the task thread).
    @exclusivity(unchecked) var batch: [UnsafeMutablePointer<rd_kafka_message_t>?]
    let maxBuffered: Int
    @exclusivity(unchecked) var unread = 0
    @exclusivity(unchecked) var lastTopic: OpaquePointer?
    @exclusivity(unchecked) var lastPartition: Int32 = -1
    @exclusivity(unchecked) var lastBuffer = 0
    var openReaders: Int
    var closed = false
    /// Positions recorded at checkpoints, committed to the group when one completes.
    var checkpointPositions: [CheckpointId: [Int: Int64]] = [:]
    var finishedPositions: [Int: Int64] = [:]
    let groupId: String
    var lastErrorLog: UInt64 = 0
    var lastMetricsReport: UInt64 = 0
    /// A repartition topic: markers are taken out, and a bounded split ends when every writer has
    /// ended, not at the end of what the partition holds now.
    let markers: Bool

    init(source: KafkaSource<Output>, splits: [KafkaPartitionSplit]) throws {
        handle = try KafkaHandle(consumer: true, config: source.config, defaults: source.consumerDefaults())
        groupId = source.groupId
        deserializer = try source.makeDeserializer()
        markers = deserializer.readsWatermarkMarkers
        var readCounters: [String: CoreMetrics.Counter] = [:]
        for t in Set(splits.map(\.topic)) {
            readCounters[t] = CoreMetrics.Counter(label: "tributary_source_records_total", dimensions: [("topic", t)])
        }
        buffers = splits.map { PartitionBuffer($0, read: readCounters[$0.topic]!) }
        topicNames = Array(Set(splits.map(\.topic))).sorted()
        for (i, s) in splits.enumerated() {
            bufferIndex[Int64(topicNames.firstIndex(of: s.topic)!) << 32 | Int64(s.partition)] = i
        }
        batch = Array(repeating: nil, count: source.pollBatch)
        maxBuffered = source.maxBuffered
        openReaders = splits.count
        // Errors and other events come through the consumer queue, polled by `pull`.
        rd_kafka_poll_set_consumer(handle.raw)
        guard let q = rd_kafka_queue_get_consumer(handle.raw) else { throw KafkaError("no consumer queue (group.id missing?)") }
        queue = q
        let assignment = PartitionList(splits.filter { !$0.isFinished }.map { ($0.topic, $0.partition, $0.nextOffset) })
        if !splits.allSatisfy(\.isFinished) {
            let err = rd_kafka_assign(handle.raw, assignment.raw)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                rd_kafka_queue_destroy(q)
                throw KafkaError("assigning \(splits.map(\.splitId))", err)
            }
        }
    }

    func topicIndex(of rkt: OpaquePointer) -> Int64? {
        if let i = topicIndex[rkt] { return i }
        let name = String(cString: rd_kafka_topic_name(rkt))
        guard let i = topicNames.firstIndex(of: name) else { return nil }
        topicIndex[rkt] = Int64(i)
        return Int64(i)
    }

    /// Takes what librdkafka has ready, without waiting, into the partition buffers.
    func pull() throws {
        reportMetricsIfDue()
        guard unread < maxBuffered else { return }
        let n = batch.withUnsafeMutableBufferPointer { buf in
            rd_kafka_consume_batch_queue(queue, 0, buf.baseAddress, buf.count)
        }
        guard n > 0 else { return }
        for i in 0..<n {
            let m = batch[i]!
            batch[i] = nil
            if m.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR && m.pointee.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                let err = m.pointee.err
                let text = rd_kafka_message_errstr(m).map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(err))
                rd_kafka_message_destroy(m)
                var fatal = [CChar](repeating: 0, count: 512)
                if rd_kafka_fatal_error(handle.raw, &fatal, fatal.count) != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError("Kafka consumer: fatal error: \(KafkaHandle.string(fatal))", code: err.rawValue, isFatal: true)
                }
                // Broker down, timeouts, ...: librdkafka retries by itself. Say so, at most every 5 s.
                let now = monotonicMillis()
                if now &- lastErrorLog >= 5_000 {
                    lastErrorLog = now
                    writeStderr("Kafka consumer: \(text) (\(err.rawValue)); retrying")
                }
                continue
            }
            // Messages come in runs of one partition: the last one's buffer is checked first.
            let b: Int
            if m.pointee.rkt == lastTopic, m.pointee.partition == lastPartition {
                b = lastBuffer
            } else {
                guard let rkt = m.pointee.rkt, let t = topicIndex(of: rkt),
                      let found = bufferIndex[t << 32 | Int64(m.pointee.partition)] else {
                    rd_kafka_message_destroy(m)
                    continue
                }
                (lastTopic, lastPartition, lastBuffer) = (rkt, m.pointee.partition, found)
                b = found
            }
            buffers[b].messages.append(m)
            unread += 1
        }
    }

    /// Once a second: records read per topic, and each partition's lag — its end as librdkafka last
    /// saw it (from fetch responses, no request) minus the position (records taken but not yet
    /// handed to the job count as lag).
    func reportMetricsIfDue() {
        let now = monotonicMillis()
        guard now &- lastMetricsReport >= 1_000 else { return }
        lastMetricsReport = now
        for b in buffers {
            if b.readSinceReport > 0 { b.read.increment(by: b.readSinceReport); b.readSinceReport = 0 }
            var low: Int64 = 0, high: Int64 = 0
            let err = rd_kafka_get_watermark_offsets(handle.raw, b.split.topic, b.split.partition, &low, &high)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 {
                b.lag.record(b.split.isFinished ? 0 : max(0, high - b.split.nextOffset))
            }
        }
    }

    /// Fetch `b`'s partition again from its position.
    func seek(_ b: PartitionBuffer) throws {
        let list = PartitionList([(b.split.topic, b.split.partition, b.split.nextOffset)])
        if let err = rd_kafka_seek_partitions(handle.raw, list.raw, 10_000) {
            throw KafkaError("seeking \(b.split.splitId) to \(b.split.nextOffset)", consuming: err)
        }
    }

    func next(_ index: Int) throws -> SourceRead<Output> {
        let b = buffers[index]
        while true {
            if b.split.isFinished { return .endOfSplit }
            if b.head == b.messages.count {
                if b.head > 0 { b.messages.removeAll(keepingCapacity: true); b.head = 0 }
                try pull()
                if b.head == b.messages.count { return .nothingAvailable }
            }
            let m = b.messages[b.head]
            b.head += 1
            unread -= 1
            defer { rd_kafka_message_destroy(m) }
            let offset = m.pointee.offset
            if m.pointee.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                // Reached the end of what is there. Offsets past the last record read count as
                // read (transaction markers) once a second fetch from the position confirms it.
                if offset > b.split.nextOffset {
                    if b.eofRetriedAt != offset {
                        b.eofRetriedAt = offset
                        try seek(b)
                        continue
                    }
                    b.split.nextOffset = offset
                }
                if b.split.bounded && !markers { b.split.isFinished = true }
                continue
            }
            b.split.nextOffset = offset + 1
            if markers, let marker = RepartitionWire.marker(in: m.pointee.payload.map { UnsafeRawBufferPointer(start: $0, count: m.pointee.len) }) {
                let combined = b.split.apply(marker)
                if b.split.bounded && b.split.allChannelsEnded { b.split.isFinished = true }
                if let w = combined, w > b.watermarkHandedOver, let e = deserializer.watermark(w) {
                    b.watermarkHandedOver = w
                    return .record(e, timestamp: w)
                }
                continue
            }
            b.readSinceReport &+= 1
            return deserialize(m, topic: b.split.topic, with: deserializer)
        }
    }

    func snapshot(_ index: Int, checkpointId: CheckpointId) -> KafkaPartitionSplit {
        let split = buffers[index].split
        checkpointPositions[checkpointId, default: [:]][index] = split.nextOffset
        // Splits that ended since the last checkpoint: their final positions go with this one.
        for (i, offset) in finishedPositions { checkpointPositions[checkpointId]![i] = offset }
        finishedPositions.removeAll()
        return split
    }

    /// Commits the offsets checkpoint `id` recorded (and any earlier ones not yet committed) to
    /// the consumer group, asynchronously; once per checkpoint for all partitions.
    func checkpointComplete(_ id: CheckpointId) {
        let done = checkpointPositions.keys.filter { $0 <= id }.sorted()
        guard !done.isEmpty, !closed else { return }
        var latest: [Int: Int64] = [:]
        for c in done {
            for (i, o) in checkpointPositions[c]! { latest[i] = o }
            checkpointPositions[c] = nil
        }
        commit(latest, async: true, why: "of checkpoint \(id)")
    }

    func commit(_ positions: [Int: Int64], async: Bool, why: String) {
        let positions = positions.filter { $0.value >= 0 }
        guard !positions.isEmpty else { return }
        let list = PartitionList(positions.sorted { $0.key < $1.key }.map { (buffers[$0.key].split.topic, buffers[$0.key].split.partition, $0.value) })
        let err = rd_kafka_commit(handle.raw, list.raw, async ? 1 : 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            writeStderr("Kafka consumer: committing offsets \(why) to group \(groupId) failed: \(String(cString: rd_kafka_err2str(err))) (monitoring only; positions are in the checkpoint)")
        }
    }

    func readerClosed(_ index: Int) {
        openReaders -= 1
        if buffers[index].split.isFinished { finishedPositions[index] = buffers[index].split.nextOffset }
        guard openReaders == 0, !closed else { return }
        lastMetricsReport = 0
        reportMetricsIfDue()
        // A bounded source read everything: the group's offsets are the ends (no checkpoint
        // follows that would carry them).
        if buffers.allSatisfy(\.split.isFinished) {
            commit(Dictionary(uniqueKeysWithValues: buffers.indices.map { ($0, buffers[$0].split.nextOffset) }), async: false, why: "at the end of input")
        }
        closed = true
        for b in buffers {
            for m in b.messages[b.head...] { rd_kafka_message_destroy(m) }
            b.messages.removeAll()
            b.head = 0
        }
        rd_kafka_queue_destroy(queue)
    }

    deinit {
        if !closed {
            for b in buffers { for m in b.messages[b.head...] { rd_kafka_message_destroy(m) } }
            rd_kafka_queue_destroy(queue)
        }
    }
}

/// Reads one partition through its subtask's shared consumer.
public final class KafkaPartitionReader<Output>: SourceSplitReader {
    public typealias Element = Output
    public typealias Split = KafkaPartitionSplit
    let session: KafkaConsumerSession<Output>
    let index: Int
    var isClosed = false

    init(session: KafkaConsumerSession<Output>, index: Int) {
        self.session = session
        self.index = index
    }

    public func next() throws -> SourceRead<Output> { try session.next(index) }
    public func currentSplit() -> KafkaPartitionSplit { session.buffers[index].split }
    public func snapshotSplit(checkpointId: CheckpointId) -> KafkaPartitionSplit {
        session.snapshot(index, checkpointId: checkpointId)
    }
    public func notifyCheckpointComplete(_ checkpointId: CheckpointId) throws {
        session.checkpointComplete(checkpointId)
    }
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        session.readerClosed(index)
    }
}

func monotonicMillis() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

/// The consumer settings both Kafka sources start from.
func kafkaSourceConsumerDefaults(groupId: String) -> [String: String] {
    [
        "group.id": groupId,
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "isolation.level": "read_committed",
        // Low latency: a fetch returns after 10 ms without data (default 500 ms).
        "fetch.wait.max.ms": "10",
        // Bounded prefetch per consumer: librdkafka stops fetching when this much waits unread
        // (4 MiB or 20 000 records, defaults 64 MiB and 100 000 per partition), and fetches again
        // 10 ms after there is room (default 1 s: a taken-out backlog then leaves the source idle
        // most of the time). Records read soon after they were fetched: with `maxBuffered` 8 Ki
        // (was 64 Ki and 32 MiB), txn-features read a backlog 8.5 % faster and the broker spent 38 %
        // less CPU (docs/benchmarks.md).
        "queued.max.messages.kbytes": "4096",
        "queued.min.messages": "20000",
        "fetch.queue.backoff.ms": "10",
    ]
}

/// A data message as an element, or as a rejected record when the deserializer refuses it.
func deserialize<Output>(_ m: UnsafeMutablePointer<rd_kafka_message_t>, topic: String,
                         with deserializer: any KafkaRecordDeserializer<Output>) -> SourceRead<Output> {
    var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    let ts = rd_kafka_message_timestamp(m, &tsType)
    let message = KafkaMessage(
        topic: topic, partition: m.pointee.partition, offset: m.pointee.offset,
        timestamp: tsType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? Timestamps.none : ts,
        key: m.pointee.key.map { UnsafeRawBufferPointer(start: $0, count: m.pointee.key_len) },
        value: m.pointee.payload.map { UnsafeRawBufferPointer(start: $0, count: m.pointee.len) })
    do {
        return .record(try deserializer.deserialize(message), timestamp: message.timestamp)
    } catch {
        return .rejected(RejectedRecord(reason: error.reason, error: error.message, key: message.keyBytes,
                                        value: message.valueBytes, origin: message.origin, timestamp: message.timestamp))
    }
}
