import CRdKafka
import StreamCore

/// One member of a consumer group, with the positions of the partitions it has read (topic
/// and partition → next offset).
public struct KafkaGroupMemberSplit: SourceSplit, Equatable {
    public let member: Int
    public var offsets: [String: Int64]
    public var splitId: String { "group-member-\(member)" }

    public init(member: Int, offsets: [String: Int64] = [:]) {
        self.member = member
        self.offsets = offsets
    }

    static func key(_ topic: String, _ partition: Int32) -> String { "\(topic)/\(partition)" }
}

/// Reads Kafka topics with the consumer group assigning the partitions (`subscribe`), for
/// deployments that share a group with other consumers or want partitions to move without a job
/// restart. Each source subtask is one group member (one split); the group's rebalances move
/// partitions between members.
///
/// Differences from `KafkaSource` (static assignment, Flink's way), because partitions move:
/// - one watermark generator per member, not per partition (idleness per member);
/// - positions are checkpointed per member, and a partition that a rebalance gives to another
///   member than the one that checkpointed it starts at the group's committed offset. Offsets are
///   committed synchronously when a checkpoint completes, so restoring from the latest completed
///   checkpoint is exact; restoring from an older one (a savepoint) is exact only for partitions
///   that stay with their member.
/// - a member without partitions reports nothing; give the strategy `withIdleness` so it does not
///   hold the watermark back.
public struct KafkaGroupSource<Output>: Source {
    public typealias Element = Output
    public typealias Split = KafkaGroupMemberSplit

    public let config: KafkaConfig
    public let topics: [String]
    public let groupId: String
    /// Where a partition without a checkpointed or committed offset starts.
    public let fallback: KafkaFallbackOffset
    public let makeDeserializer: @Sendable () throws -> any KafkaRecordDeserializer<Output>

    public init(config: KafkaConfig, topics: [String], groupId: String, fallback: KafkaFallbackOffset = .earliest,
                deserializer: @escaping @Sendable () throws -> any KafkaRecordDeserializer<Output>) {
        precondition(!topics.isEmpty, "a Kafka source needs at least one topic")
        self.config = config
        self.topics = topics
        self.groupId = groupId
        self.fallback = fallback
        self.makeDeserializer = deserializer
    }

    public var boundedness: Boundedness { .continuousUnbounded }

    /// One member per subtask; the topics must exist.
    public func createSplits(parallelism: Int) throws -> [KafkaGroupMemberSplit] {
        let handle = try KafkaHandle(consumer: true, config: config, defaults: ["group.id": groupId])
        _ = try handle.partitionCounts(topics)
        return (0..<parallelism).map { KafkaGroupMemberSplit(member: $0) }
    }

    public func createReader(for split: KafkaGroupMemberSplit) throws -> KafkaGroupMemberReader<Output> {
        try KafkaGroupMemberReader(source: self, split: split)
    }
}

/// Receives the group's rebalances; librdkafka calls it from `rd_kafka_consumer_poll`, on the
/// reader's task thread.
let onRebalance: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = { rk, err, partitions, opaque in
    guard let rk, let opaque else { return }
    let member = Unmanaged<GroupMembership>.fromOpaque(opaque).takeUnretainedValue()
    member.rebalance(rk, err, partitions)
}

/// The rebalance state of one member: positions to resume from, partitions held.
final class GroupMembership {
    var offsets: [String: Int64]
    var assigned: Set<String> = []
    var rebalanceError: KafkaError?

    init(offsets: [String: Int64]) { self.offsets = offsets }

    func rebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        guard let partitions else { return }
        let entries = (0..<Int(partitions.pointee.cnt)).map { partitions.pointee.elems + $0 }
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            for e in entries {
                let key = KafkaGroupMemberSplit.key(String(cString: e.pointee.topic), e.pointee.partition)
                // Our checkpointed position; otherwise the group's committed offset (INVALID).
                e.pointee.offset = offsets[key] ?? Int64(RD_KAFKA_OFFSET_INVALID)
                assigned.insert(key)
            }
            if cooperative {
                if let e = rd_kafka_incremental_assign(rk, partitions) { rebalanceError = KafkaError("group assignment", consuming: e) }
            } else {
                let e = rd_kafka_assign(rk, partitions)
                if e != RD_KAFKA_RESP_ERR_NO_ERROR { rebalanceError = KafkaError("group assignment", e) }
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            // A revoked partition's position leaves with it: its next holder resumes at the
            // committed offset, and this member's checkpoints no longer claim it.
            for e in entries {
                let key = KafkaGroupMemberSplit.key(String(cString: e.pointee.topic), e.pointee.partition)
                assigned.remove(key)
                offsets[key] = nil
            }
            if cooperative {
                if let e = rd_kafka_incremental_unassign(rk, partitions) { rebalanceError = KafkaError("group revocation", consuming: e) }
            } else {
                for key in assigned { offsets[key] = nil }
                assigned.removeAll()
                _ = rd_kafka_assign(rk, nil)
            }
        default:
            rebalanceError = KafkaError("group rebalance", err)
            _ = rd_kafka_assign(rk, nil)
        }
    }
}

/// One group member: subscribes, follows rebalances, reads whatever partitions it holds.
public final class KafkaGroupMemberReader<Output>: SourceSplitReader {
    public typealias Element = Output
    public typealias Split = KafkaGroupMemberSplit

    let member: Int
    let membership: GroupMembership
    let handle: KafkaHandle
    let deserializer: any KafkaRecordDeserializer<Output>
    let groupId: String
    var topicNames: [OpaquePointer: String] = [:]
    var pendingCommits: [CheckpointId: [String: Int64]] = [:]
    var lastErrorLog: UInt64 = 0

    init(source: KafkaGroupSource<Output>, split: KafkaGroupMemberSplit) throws {
        member = split.member
        groupId = source.groupId
        let membership = GroupMembership(offsets: split.offsets)
        self.membership = membership
        handle = try KafkaHandle(consumer: true, config: source.config, defaults: kafkaSourceConsumerDefaults(groupId: source.groupId).merging([
            "auto.offset.reset": source.fallback == .earliest ? "earliest" : "latest",
            // A member that died (kill -9) holds its partitions until its session times out:
            // 10 s instead of librdkafka's 45 s.
            "session.timeout.ms": "10000",
            "heartbeat.interval.ms": "3000",
            // Also the rebalance timeout: how long a rebalance waits for members that do not
            // rejoin (librdkafka's default is 5 minutes). The task polls every few milliseconds.
            "max.poll.interval.ms": "30000",
        ]) { $1 }) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, onRebalance)
            rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(membership).toOpaque())
        }
        deserializer = try source.makeDeserializer()
        let list = PartitionList(source.topics.map { ($0, Int32(RD_KAFKA_PARTITION_UA), Int64(RD_KAFKA_OFFSET_INVALID)) })
        let err = rd_kafka_subscribe(handle.raw, list.raw)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError("subscribing to \(source.topics)", err) }
    }

    public func next() throws -> SourceRead<Output> {
        while true {
            guard let m = rd_kafka_consumer_poll(handle.raw, 0) else {
                if let e = membership.rebalanceError { throw e }
                return .nothingAvailable
            }
            defer { rd_kafka_message_destroy(m) }
            if m.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                var fatal = [CChar](repeating: 0, count: 512)
                if rd_kafka_fatal_error(handle.raw, &fatal, fatal.count) != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError("Kafka group member \(member): fatal error: \(KafkaHandle.string(fatal))", isFatal: true)
                }
                let now = monotonicMillis()
                if now &- lastErrorLog >= 5_000, m.pointee.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    lastErrorLog = now
                    writeStderr("Kafka group member \(member): \(String(cString: rd_kafka_err2str(m.pointee.err))); retrying")
                }
                continue
            }
            guard let rkt = m.pointee.rkt else { continue }
            let topic: String
            if let t = topicNames[rkt] { topic = t } else {
                topic = String(cString: rd_kafka_topic_name(rkt))
                topicNames[rkt] = topic
            }
            membership.offsets[KafkaGroupMemberSplit.key(topic, m.pointee.partition)] = m.pointee.offset + 1
            return deserialize(m, topic: topic, with: deserializer)
        }
    }

    /// The positions of the partitions this member holds.
    public func currentSplit() -> KafkaGroupMemberSplit {
        KafkaGroupMemberSplit(member: member, offsets: membership.offsets.filter { membership.assigned.contains($0.key) })
    }

    public func snapshotSplit(checkpointId: CheckpointId) -> KafkaGroupMemberSplit {
        // The positions of the partitions held now are committed when this checkpoint completes.
        let split = currentSplit()
        pendingCommits[checkpointId] = split.offsets
        return split
    }

    /// Commits (synchronously, so a restore from this checkpoint finds them) the positions it recorded.
    public func notifyCheckpointComplete(_ checkpointId: CheckpointId) throws {
        let done = pendingCommits.keys.filter { $0 <= checkpointId }.sorted()
        guard let last = done.last, let positions = pendingCommits[last] else { return }
        for c in done { pendingCommits[c] = nil }
        let entries = positions.compactMap { key, offset -> (String, Int32, Int64)? in
            guard let slash = key.lastIndex(of: "/"), let p = Int32(key[key.index(after: slash)...]) else { return nil }
            return (String(key[..<slash]), p, offset)
        }
        guard !entries.isEmpty else { return }
        let list = PartitionList(entries)
        let err = withExtendedLifetime(list) { rd_kafka_commit(handle.raw, list.raw, 0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            writeStderr("Kafka group member \(member): committing the offsets of checkpoint \(checkpointId) to group \(groupId) failed: \(String(cString: rd_kafka_err2str(err)))")
        }
    }

    /// Leaves the group (its partitions go to the other members), while the rebalance callback's
    /// state is still alive.
    public func close() {
        handle.closeConsumer()
    }

    deinit { handle.closeConsumer() }
}
