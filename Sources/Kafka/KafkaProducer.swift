import CRdKafka
import StreamCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a Kafka sink writes for one element: topic (the sink's default when nil), partition (the
/// default partitioner, murmur2 of the key, when nil), key, value, timestamp (the element's when nil).
public struct KafkaProducerRecord: Sendable, Hashable {
    public var topic: String?
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var timestamp: Int64?

    public init(topic: String? = nil, partition: Int32? = nil, key: [UInt8]?, value: [UInt8]?, timestamp: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.timestamp = timestamp
    }
}

/// Counts delivery reports; reached from librdkafka's callback through the handle's opaque. The
/// callback runs on the thread that polls or flushes: the writer's task thread.
final class DeliveryReports {
    var delivered: Int64 = 0
    var failed: Int64 = 0
    var firstError: String?
}

let onDeliveryReport: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = { _, msg, opaque in
    guard let msg, let opaque else { return }
    let reports = Unmanaged<DeliveryReports>.fromOpaque(opaque).takeUnretainedValue()
    if msg.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        reports.delivered &+= 1
    } else {
        reports.failed &+= 1
        if reports.firstError == nil {
            let topic = msg.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
            reports.firstError = "delivery to \(topic) failed: \(String(cString: rd_kafka_err2str(msg.pointee.err)))"
        }
    }
}

/// A librdkafka producer for one sink subtask: produce with back-off when librdkafka's queue is
/// full, flush that waits out broker outages, delivery failures surfaced as errors.
final class KafkaProducer {
    let handle: KafkaHandle
    let reports: DeliveryReports
    let defaultTopic: String
    var topics: [String: OpaquePointer] = [:]
    var sinceServe = 0
    let name: String

    init(config: KafkaConfig, defaultTopic: String, extra: [String: String], name: String) throws {
        let reports = DeliveryReports()
        self.reports = reports
        self.defaultTopic = defaultTopic
        self.name = name
        let defaults: [String: String] = [
            "enable.idempotence": "true",
            "linger.ms": "5",
            "batch.num.messages": "10000",
            "queue.buffering.max.messages": "500000",
            "queue.buffering.max.kbytes": "262144",
            // Outages: keep retrying a message for 10 minutes before failing it.
            "message.timeout.ms": "600000",
        ].merging(extra) { $1 }
        handle = try KafkaHandle(consumer: false, config: config, defaults: defaults) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, onDeliveryReport)
            rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(reports).toOpaque())
        }
    }

    deinit {
        for t in topics.values { rd_kafka_topic_destroy(t) }
    }

    func topic(_ name: String) -> OpaquePointer {
        if let t = topics[name] { return t }
        let t = rd_kafka_topic_new(handle.raw, name, nil)!
        topics[name] = t
        return t
    }

    var outstanding: Int32 { rd_kafka_outq_len(handle.raw) }

    func produce(_ r: KafkaProducerRecord, timestamp: Int64?) throws {
        let rkt = topic(r.topic ?? defaultTopic)
        var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 5)
        vus[0].vtype = RD_KAFKA_VTYPE_RKT
        vus[0].u.rkt = rkt
        vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
        vus[1].u.i32 = r.partition ?? RD_KAFKA_PARTITION_UA
        vus[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        vus[2].u.i = RD_KAFKA_MSG_F_COPY
        vus[3].vtype = RD_KAFKA_VTYPE_TIMESTAMP
        vus[3].u.i64 = r.timestamp ?? timestamp ?? 0
        var count = 4
        while true {
            let err: OpaquePointer? = withOptionalBytes(r.key) { key in
                withOptionalBytes(r.value) { value in
                    var n = count
                    if let key { vus[n].vtype = RD_KAFKA_VTYPE_KEY; vus[n].u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress); vus[n].u.mem.size = key.count; n += 1 }
                    if let value {
                        if vus.count <= n { vus.append(rd_kafka_vu_t()) }
                        vus[n].vtype = RD_KAFKA_VTYPE_VALUE; vus[n].u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress); vus[n].u.mem.size = value.count; n += 1
                    }
                    return vus.withUnsafeBufferPointer { rd_kafka_produceva(handle.raw, $0.baseAddress, n) }
                }
            }
            guard let err else { break }
            if rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                rd_kafka_error_destroy(err)
                rd_kafka_poll(handle.raw, 10)   // deliveries make room
                count = 4
                continue
            }
            throw KafkaError("\(name): producing to \(r.topic ?? defaultTopic)", consuming: err)
        }
        sinceServe += 1
        if sinceServe >= 1024 {
            sinceServe = 0
            rd_kafka_poll(handle.raw, 0)
        }
        try checkFailures()
    }

    func checkFailures() throws {
        if reports.failed > 0 {
            throw KafkaError("\(name): \(reports.failed) record(s) not delivered; first: \(reports.firstError ?? "?")")
        }
    }

    /// Waits until every produced record is acknowledged (through broker outages: it keeps
    /// waiting, saying so every 10 s), then throws if any delivery failed.
    func flush() throws {
        var waited = 0
        while true {
            let err = rd_kafka_flush(handle.raw, 1_000)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { break }
            waited += 1
            if waited % 10 == 0 {
                writeStderr("\(name): waiting for the broker to acknowledge \(outstanding) record(s) (\(waited) s)")
            }
        }
        try checkFailures()
    }
}

@inline(__always)
func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
    guard let bytes else { return try body(nil) }
    return try bytes.withUnsafeBytes { try body($0) }
}
