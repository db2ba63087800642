import CRdKafka
#if canImport(Glibc)
import Glibc
#endif

/// librdkafka configuration: bootstrap servers plus any of librdkafka's properties
/// (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md). Properties the
/// source or sink sets itself can be overridden here.
public struct KafkaConfig: Sendable {
    public var bootstrapServers: String
    public var properties: [String: String]

    public init(bootstrapServers: String, properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
    }
}

/// An error from librdkafka or from the Kafka connectors, with librdkafka's code when there is one.
public struct KafkaError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let description: String
    public let isFatal: Bool
    public let isRetriable: Bool
    public let txnRequiresAbort: Bool

    public init(_ message: String, code: Int32 = -1, isFatal: Bool = false, isRetriable: Bool = false,
                txnRequiresAbort: Bool = false) {
        self.description = message
        self.code = code
        self.isFatal = isFatal
        self.isRetriable = isRetriable
        self.txnRequiresAbort = txnRequiresAbort
    }

    init(_ what: String, _ err: rd_kafka_resp_err_t) {
        self.init("\(what): \(String(cString: rd_kafka_err2str(err))) (\(err.rawValue))", code: err.rawValue)
    }

    /// Takes ownership of `error` (destroys it).
    init(_ what: String, consuming error: OpaquePointer) {
        defer { rd_kafka_error_destroy(error) }
        self.init("\(what): \(String(cString: rd_kafka_error_string(error)))",
                  code: rd_kafka_error_code(error).rawValue,
                  isFatal: rd_kafka_error_is_fatal(error) != 0,
                  isRetriable: rd_kafka_error_is_retriable(error) != 0,
                  txnRequiresAbort: rd_kafka_error_txn_requires_abort(error) != 0)
    }
}

/// An `rd_kafka_t` (producer or consumer). librdkafka documents the handle as thread-safe.
final class KafkaHandle: @unchecked Sendable {
    let raw: OpaquePointer
    let isConsumer: Bool
    let brokerList: String

    /// `defaults` first, then the user's properties over them. A bad property fails with its name.
    init(consumer: Bool, config: KafkaConfig, defaults: [String: String],
         configure: (OpaquePointer) -> Void = { _ in }) throws {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError("rd_kafka_conf_new failed") }
        var all = defaults
        all["bootstrap.servers"] = config.bootstrapServers
        for (k, v) in config.properties { all[k] = v }
        var errstr = [CChar](repeating: 0, count: 512)
        for (k, v) in all.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, k, v, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError("Kafka property \(k)=\(v): \(Self.string(errstr))")
            }
        }
        configure(conf)
        guard let h = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError("cannot create a Kafka \(consumer ? "consumer" : "producer"): \(Self.string(errstr))")
        }
        raw = h
        isConsumer = consumer
        brokerList = config.bootstrapServers
    }

    private var consumerClosed = false

    /// Leaves the group and stops fetching (once; also done by deinit).
    func closeConsumer() {
        guard isConsumer, !consumerClosed else { return }
        consumerClosed = true
        rd_kafka_consumer_close(raw)
    }

    deinit {
        closeConsumer()
        rd_kafka_destroy(raw)
    }

    static func string(_ buf: [CChar]) -> String {
        buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// The partition count of each topic; fails naming a topic that does not exist.
    func partitionCounts(_ topics: [String], timeoutMillis: Int32 = 10_000) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for name in topics {
            guard let topic = rd_kafka_topic_new(raw, name, nil) else { throw KafkaError("topic handle \(name)") }
            defer { rd_kafka_topic_destroy(topic) }
            var meta: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(raw, 0, topic, &meta, timeoutMillis)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let meta else {
                throw KafkaError("metadata of topic \(name) from \(brokerList)", err)
            }
            defer { rd_kafka_metadata_destroy(meta) }
            guard meta.pointee.topic_cnt == 1 else { throw KafkaError("no metadata for topic \(name)") }
            let t = meta.pointee.topics[0]
            if t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partition_cnt == 0 {
                throw KafkaError("topic \(name) does not exist on \(brokerList) (create it, e.g. scripts/local-broker.sh topics)", t.err)
            }
            out[name] = Int(t.partition_cnt)
        }
        return out
    }

    /// (low, high) offsets of a partition, asked of the broker.
    func watermarks(topic: String, partition: Int32, timeoutMillis: Int32 = 10_000) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0, high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(raw, topic, partition, &low, &high, timeoutMillis)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError("offsets of \(topic)[\(partition)]", err) }
        return (low, high)
    }
}

/// A topic-partition list built from Swift values; destroyed with the value.
final class PartitionList {
    let raw: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ entries: [(topic: String, partition: Int32, offset: Int64)]) {
        raw = rd_kafka_topic_partition_list_new(Int32(max(1, entries.count)))
        for e in entries {
            rd_kafka_topic_partition_list_add(raw, e.topic, e.partition).pointee.offset = e.offset
        }
    }

    deinit { rd_kafka_topic_partition_list_destroy(raw) }

    var entries: [(topic: String, partition: Int32, offset: Int64, err: rd_kafka_resp_err_t)] {
        (0..<Int(raw.pointee.cnt)).map { i in
            let e = raw.pointee.elems[i]
            return (String(cString: e.topic), e.partition, e.offset, e.err)
        }
    }
}

/// Log lines from librdkafka go to stderr with a prefix (its default prints to stderr too, but
/// without saying which client).
public func writeStderr(_ s: String) {
    var line = s
    if !line.hasSuffix("\n") { line += "\n" }
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}

/// Topic administration (librdkafka's Admin API), for tools and tests.
public enum KafkaAdmin {
    /// The partition count of each topic (a metadata request): fails when the broker cannot be
    /// reached within `timeoutMillis` or a topic does not exist.
    public static func partitionCounts(_ config: KafkaConfig, _ topics: [String], timeoutMillis: Int32 = 5_000) throws -> [String: Int] {
        let handle = try KafkaHandle(consumer: false, config: config, defaults: [:])
        return try handle.partitionCounts(topics, timeoutMillis: timeoutMillis)
    }

    /// Creates topics that do not exist yet (replication factor 1); existing ones are left as they are.
    public static func createTopics(_ config: KafkaConfig, _ topics: [String: Int], timeoutMillis: Int32 = 30_000) throws {
        guard !topics.isEmpty else { return }
        let handle = try KafkaHandle(consumer: false, config: config, defaults: [:])
        var errstr = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for t in newTopics { rd_kafka_NewTopic_destroy(t) } }
        for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            guard let t = rd_kafka_NewTopic_new(name, Int32(partitions), 1, &errstr, errstr.count) else {
                throw KafkaError("topic \(name): \(KafkaHandle.string(errstr))")
            }
            newTopics.append(t)
        }
        let queue = rd_kafka_queue_new(handle.raw)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle.raw, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMillis, &errstr, errstr.count)
        newTopics.withUnsafeMutableBufferPointer { rd_kafka_CreateTopics(handle.raw, $0.baseAddress, $0.count, options, queue) }
        guard let event = rd_kafka_queue_poll(queue, timeoutMillis + 5_000) else { throw KafkaError("creating topics: no answer from \(config.bootstrapServers)") }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError("creating topics on \(config.bootstrapServers): \(String(cString: rd_kafka_event_error_string(event)))")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { throw KafkaError("creating topics: unexpected event") }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for i in 0..<count {
            let r = results[i]
            let err = rd_kafka_topic_result_error(r)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                let name = String(cString: rd_kafka_topic_result_name(r))
                let msg = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? ""
                throw KafkaError("creating topic \(name): \(msg)", code: err.rawValue)
            }
        }
    }
}
