import Contracts
import StreamCore

// Scale-out over several processes (docs/scaling.md): a static split of every input topic's
// partitions, and repartition topics that carry a re-keyed stream — records *and* watermarks —
// from the processes that have the records to the processes that own their new keys.

/// Process `index` of `count` reads the partitions `p` with `p % count == index` of every topic: a
/// static assignment, no group coordinator and no rebalance, so a partition's keyed state stays in
/// the checkpoints of the one process that reads it.
public struct KafkaStaticAssignment: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) {
        precondition(count >= 1 && index >= 0 && index < count, "process index \(index) is not in 0..<\(count)")
        self.index = index
        self.count = count
    }

    public func owns(partition: Int32) -> Bool { Int(partition) % count == index }
    public var description: String { "process \(index) of \(count)" }
}

/// A watermark one writer ("channel") of a repartition topic put into one of its partitions: the
/// writer will send that partition no more records at or before `watermark` (`Int64.max`: none at
/// all — its input ended), or, `idle`, it has nothing to say for now and is left out of the minimum
/// (Flink's idle channel) until its next watermark.
public struct KafkaWatermarkMarker: Sendable, Equatable {
    public var channel: Int32
    public var channels: Int32
    public var watermark: Int64
    public var idle: Bool

    public init(channel: Int32, channels: Int32, watermark: Int64, idle: Bool = false) {
        self.channel = channel
        self.channels = channels
        self.watermark = watermark
        self.idle = idle
    }
}

/// The value bytes of a repartition topic: tag 0 and the record's encoding, or tag 1 (watermark)
/// / 2 (idle) with channel, channel count (big-endian Int32s) and watermark (big-endian Int64).
public enum RepartitionWire {
    static let recordTag: UInt8 = 0, watermarkTag: UInt8 = 1, idleTag: UInt8 = 2

    public static func marker(_ m: KafkaWatermarkMarker) -> [UInt8] {
        var out: [UInt8] = [m.idle ? idleTag : watermarkTag]
        out.reserveCapacity(17)
        func put<I: FixedWidthInteger>(_ v: I) { withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) } }
        put(m.channel)
        put(m.channels)
        put(m.watermark)
        return out
    }

    /// The marker in `value`, if it is one.
    public static func marker(in value: UnsafeRawBufferPointer?) -> KafkaWatermarkMarker? {
        guard let v = value, v.count == 17, v[0] == watermarkTag || v[0] == idleTag else { return nil }
        func get(_ at: Int, _ n: Int) -> UInt64 { (0..<n).reduce(UInt64(0)) { $0 << 8 | UInt64(v[at + $1]) } }
        return KafkaWatermarkMarker(channel: Int32(truncatingIfNeeded: get(1, 4)), channels: Int32(truncatingIfNeeded: get(5, 4)),
                                    watermark: Int64(bitPattern: get(9, 8)), idle: v[0] == idleTag)
    }
}

/// What a repartition writer sends: a record, or a watermark marker for one partition.
public enum RepartitionItem<T> {
    case record(T)
    case marker(KafkaWatermarkMarker, partition: Int32)
}

extension RepartitionItem: Sendable where T: Sendable {}

/// What a repartition topic's reader gets: a record, or the partition's combined watermark (the
/// minimum over the writers' markers), which `RepartitionWatermarks` turns into the watermark.
public enum Repartitioned<T> {
    case record(T)
    case watermark(Int64)
}

extension Repartitioned: Sendable where T: Sendable {}

/// Runs just before a repartition topic's sink: passes records on, and turns each watermark (and
/// idleness) of this subtask into a marker for every partition of the topic. Subtask `i` of process
/// `p` is channel `p * parallelism + i` of `processes * parallelism`; the sink must be its forward
/// neighbour (the default at equal parallelism), so a channel's markers follow its records.
public final class RepartitionMarkers<T>: OneInputStreamOperator {
    public let output: Output<RepartitionItem<T>>
    let partitions: Int
    let channel: Int32
    let channels: Int32
    var last = Int64.min
    var idle = false

    public init(partitions: Int, processIndex: Int, processCount: Int, setup: OperatorSetup<RepartitionItem<T>>) {
        output = setup.output
        self.partitions = partitions
        channel = Int32(processIndex * setup.runtime.parallelism + setup.runtime.subtaskIndex)
        channels = Int32(processCount * setup.runtime.parallelism)
    }

    public func processElement(_ value: T, timestamp: Int64) throws {
        try output.collect(.record(value), timestamp: timestamp)
    }

    public func processWatermark(_ watermark: Int64) throws {
        if watermark > last || idle {
            last = max(last, watermark)
            idle = false
            try mark(idle: false)
        }
        try output.emitWatermark(watermark)
    }

    public func processWatermarkStatus(_ status: WatermarkStatus) throws {
        if status == .idle, !idle { idle = true; try mark(idle: true) }
        if status == .active, idle, last > Int64.min { idle = false; try mark(idle: false) }
        try output.emitWatermarkStatus(status)
    }

    func mark(idle: Bool) throws {
        let m = KafkaWatermarkMarker(channel: channel, channels: channels, watermark: last, idle: idle)
        for p in 0..<Int32(partitions) { try output.collect(.marker(m, partition: p), timestamp: Timestamps.none) }
    }
}

/// Writes `RepartitionItem`s: a record to the partition of its key (Kafka's partitioner, so
/// partition `p` mirrors partition `p` of the topic keyed the same way), encoded with
/// `BinaryEncoder`; a marker to its partition.
public final class RepartitionSerializer<T: Encodable>: KafkaRecordSerializer {
    let partitions: Int
    let key: @Sendable (T) -> String
    let eventTime: @Sendable (T) -> Int64
    let encoder = BinaryEncoder()

    public init(partitions: Int, key: @escaping @Sendable (T) -> String, eventTime: @escaping @Sendable (T) -> Int64) {
        self.partitions = partitions
        self.key = key
        self.eventTime = eventTime
    }

    public func serialize(_ item: RepartitionItem<T>) throws -> KafkaProducerRecord {
        switch item {
        case .record(let v):
            let k = Array(key(v).utf8)
            var value: [UInt8] = [RepartitionWire.recordTag]
            try encoder.encode(v, appendingTo: &value)
            return KafkaProducerRecord(partition: KafkaPartitioner.partition(k, partitions: partitions), key: k, value: value,
                                       timestamp: max(0, eventTime(v)))
        case .marker(let m, let p):
            // Timestamp 0: librdkafka stamps the send time.
            return KafkaProducerRecord(partition: p, key: nil, value: RepartitionWire.marker(m), timestamp: 0)
        }
    }
}

/// Reads a repartition topic's records (markers are taken out by the source, which hands over the
/// combined watermark through `watermark(_:)`).
public final class RepartitionDeserializer<T: Decodable>: KafkaRecordDeserializer {
    let decoder = BinaryDecoder()
    public init() {}

    public func deserialize(_ m: KafkaMessage) throws(DeserializationError) -> Repartitioned<T> {
        guard let v = m.value, v.count > 0, v[0] == RepartitionWire.recordTag else {
            throw DeserializationError(reason: "UNDECODABLE", message: "not a repartition record")
        }
        do {
            return .record(try decoder.decode(T.self, from: UnsafeRawBufferPointer(rebasing: v[1...])))
        } catch {
            throw DeserializationError(reason: "UNDECODABLE", message: "repartition record: \(error)")
        }
    }

    public var readsWatermarkMarkers: Bool { true }
    public func watermark(_ combined: Int64) -> Repartitioned<T>? { .watermark(combined) }
}

/// The watermark of a repartition topic's partition: what its writers' markers say (the minimum
/// over the channels that are not idle), nothing from the records' own times.
public final class RepartitionWatermarks<T>: WatermarkGenerator {
    public init() {}
    public func onEvent(_ event: Repartitioned<T>, timestamp: Int64, output: any WatermarkOutput) {
        if case .watermark(let w) = event { output.emitWatermark(w) }
    }
    public func onPeriodicEmit(output: any WatermarkOutput) {}

    public static func strategy(eventTime: @escaping @Sendable (T) -> Int64) -> WatermarkStrategy<Repartitioned<T>> {
        WatermarkStrategy<Repartitioned<T>>(generator: { _ in RepartitionWatermarks<T>() })
            .withTimestampAssigner { e, _ in
                switch e {
                case .record(let v): eventTime(v)
                case .watermark(let w): w
                }
            }
    }
}

extension KafkaPartitionSplit {
    /// A writer's marker arrived: returns the partition's combined watermark (the minimum over
    /// the channels not idle; `nil` while no channel has spoken or all are idle).
    mutating func apply(_ m: KafkaWatermarkMarker) -> Int64? {
        let n = Int(max(m.channels, m.channel + 1))
        var w = channelWatermarks ?? []
        var idle = idleChannels ?? []
        if w.count < n {
            w += Array(repeating: Int64.min, count: n - w.count)
            idle += Array(repeating: false, count: n - idle.count)
        }
        let c = Int(m.channel)
        if m.idle { idle[c] = true } else { idle[c] = false; w[c] = max(w[c], m.watermark) }
        channelWatermarks = w
        idleChannels = idle
        let active = w.indices.filter { !idle[$0] }.map { w[$0] }
        return active.min()
    }

    /// Every writer of the partition has ended (sent `Int64.max`).
    var allChannelsEnded: Bool { channelWatermarks.map { !$0.isEmpty && $0.allSatisfy { $0 == Int64.max } } ?? false }
}
