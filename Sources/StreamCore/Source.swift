/// A unit of work of a source — a Kafka partition, a file, a range of a sequence — together with
/// the position to resume from, so a checkpoint can record it (Flink's `SourceSplit`).
public protocol SourceSplit: Sendable, Codable {
    var splitId: String { get }
}

public enum Boundedness: Sendable, Equatable {
    /// Ends when every split is read; the watermark then becomes +∞.
    case bounded
    /// Runs until cancelled.
    case continuousUnbounded
}

/// One step of reading a split.
public enum SourceRead<Element> {
    /// A record, with the timestamp the source attaches (e.g. Kafka's) or `Timestamps.none`.
    case record(Element, timestamp: Int64)
    /// Nothing to read right now (unbounded sources); ask again later.
    case nothingAvailable
    /// The split is exhausted.
    case endOfSplit
    /// A record the source read but could not turn into an element (undecodable bytes, ...): it
    /// goes to the side output `SourceOutputs.rejected` and does not touch the watermark.
    case rejected(RejectedRecord)
}

/// Where a record a source rejected came from: a Kafka topic, partition and offset, or a file
/// name and line (partition -1).
public struct RecordOrigin: Sendable, Hashable, Codable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// A record that could not be processed, as it came in: the material of a dead-letter queue entry.
/// Sources emit the ones they cannot decode to `SourceOutputs.rejected`; operators downstream make
/// their own (failed validation, too late for every window) and send them the same way.
public struct RejectedRecord: Sendable, Hashable, Codable {
    /// A reason code, e.g. `TRUNCATED`, `BAD_MAGIC`, `UNKNOWN_SCHEMA`, `UNDECODABLE`, `INVALID`, `TOO_LATE`.
    public var reason: String
    /// What went wrong, for a person.
    public var error: String
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var origin: RecordOrigin
    /// The record's own timestamp (e.g. Kafka's), in epoch milliseconds; `Timestamps.none` if none.
    public var timestamp: Int64

    public init(reason: String, error: String, key: [UInt8]?, value: [UInt8]?, origin: RecordOrigin,
                timestamp: Int64 = Timestamps.none) {
        self.reason = reason
        self.error = error
        self.key = key
        self.value = value
        self.origin = origin
        self.timestamp = timestamp
    }
}

/// Side outputs every source stream has.
public enum SourceOutputs {
    /// The records the source rejected (`SourceRead.rejected`), counted as `numRecordsRejected`:
    /// `stream.getSideOutput(SourceOutputs.rejected)` right on the stream `fromSource` returns.
    public static let rejected = OutputTag<RejectedRecord>("tributary.source.rejected")
}

/// Reads one split on the source task's thread (Flink's `SplitReader`, one split at a time).
/// The thread is shared with other tasks: `next()` must not block — report `.nothingAvailable`
/// and the runtime asks again shortly (every millisecond or two while the source is idle).
public protocol SourceSplitReader<Element>: AnyObject {
    associatedtype Element
    associatedtype Split: SourceSplit
    func next() throws -> SourceRead<Element>
    /// The split with the position of the next unread record, for checkpoints.
    func currentSplit() -> Split
    /// The split's position for checkpoint `checkpointId` (taken at the barrier, between records).
    /// Defaults to `currentSplit()`; a reader that acts on completed checkpoints remembers it here.
    func snapshotSplit(checkpointId: CheckpointId) -> Split
    /// Checkpoint `checkpointId` is complete (durable): e.g. commit the positions it recorded to an
    /// external system, for monitoring (Flink's `SourceReader.notifyCheckpointComplete`).
    func notifyCheckpointComplete(_ checkpointId: CheckpointId) throws
    func close()
}

extension SourceSplitReader {
    public func snapshotSplit(checkpointId: CheckpointId) -> Split { currentSplit() }
    public func notifyCheckpointComplete(_ checkpointId: CheckpointId) throws {}
    public func close() {}
}

/// A source of records (Flink's FLIP-27 `Source`): it enumerates splits once when the job starts,
/// split `i` is read by subtask `i % parallelism`, and each split gets its own watermark generator.
public protocol Source<Element>: Sendable {
    associatedtype Element
    associatedtype Split: SourceSplit
    associatedtype Reader: SourceSplitReader where Reader.Element == Element, Reader.Split == Split
    var boundedness: Boundedness { get }
    func createSplits(parallelism: Int) throws -> [Split]
    func createReader(for split: Split) throws -> Reader
    /// The readers of one subtask's splits, in order: readers of one subtask may share a client
    /// (one Kafka consumer for all of its partitions). Defaults to `createReader` for each.
    func createReaders(for splits: [Split]) throws -> [Reader]
}

extension Source {
    public func createReaders(for splits: [Split]) throws -> [Reader] {
        try splits.map { try createReader(for: $0) }
    }
}

// MARK: - Collections

/// A split over an in-memory array: the index of the next element.
public struct CollectionSplit: SourceSplit, Equatable {
    public let splitId: String
    public var position: Int
    public let end: Int
}

/// A bounded source over an array, in one split (Flink's `fromData` / `fromCollection`).
public struct CollectionSource<T: Sendable>: Source {
    public let elements: [T]
    public let timestamps: [Int64]?

    public init(_ elements: [T], timestamps: [Int64]? = nil) {
        precondition(timestamps == nil || timestamps!.count == elements.count,
                     "timestamps must have one entry per element")
        self.elements = elements
        self.timestamps = timestamps
    }

    public var boundedness: Boundedness { .bounded }

    public func createSplits(parallelism: Int) -> [CollectionSplit] {
        [CollectionSplit(splitId: "collection-0", position: 0, end: elements.count)]
    }

    public func createReader(for split: CollectionSplit) -> Reader {
        Reader(source: self, split: split)
    }

    public final class Reader: SourceSplitReader {
        @usableFromInline let source: CollectionSource<T>
        @exclusivity(unchecked) @usableFromInline var split: CollectionSplit

        init(source: CollectionSource<T>, split: CollectionSplit) {
            self.source = source
            self.split = split
        }

        @inlinable
        public func next() -> SourceRead<T> {
            guard split.position < split.end else { return .endOfSplit }
            let i = split.position
            split.position += 1
            return .record(source.elements[i], timestamp: source.timestamps?[i] ?? Timestamps.none)
        }

        public func currentSplit() -> CollectionSplit { split }
    }
}

// MARK: - Generated data

/// A split over a range of generator indices.
public struct GeneratorSplit: SourceSplit, Equatable {
    public let splitId: String
    /// Next index to generate.
    public var position: Int64
    /// One past the last index.
    public let end: Int64
}

/// A bounded source of `count` records made by `generator(index)`, in as many splits as the source
/// parallelism unless `splits` is given (Flink's `DataGeneratorSource` / `NumberSequenceSource`).
public struct DataGeneratorSource<T>: Source {
    public let count: Int64
    public let splits: Int?
    public let generator: @Sendable (Int64) -> T
    /// Optional timestamp per index (e.g. event time of generated events).
    public let timestampOf: (@Sendable (Int64) -> Int64)?

    public init(count: Int64, splits: Int? = nil,
                timestamp: (@Sendable (Int64) -> Int64)? = nil,
                generator: @escaping @Sendable (Int64) -> T) {
        precondition(count >= 0, "count must not be negative")
        self.count = count
        self.splits = splits
        self.generator = generator
        self.timestampOf = timestamp
    }

    public var boundedness: Boundedness { .bounded }

    public func createSplits(parallelism: Int) -> [GeneratorSplit] {
        let n = Int64(max(1, splits ?? parallelism))
        return (0..<n).map { i in
            GeneratorSplit(splitId: "gen-\(i)", position: count * i / n, end: count * (i + 1) / n)
        }
    }

    public func createReader(for split: GeneratorSplit) -> Reader {
        Reader(source: self, split: split)
    }

    public final class Reader: SourceSplitReader {
        @usableFromInline let source: DataGeneratorSource<T>
        @exclusivity(unchecked) @usableFromInline var split: GeneratorSplit

        init(source: DataGeneratorSource<T>, split: GeneratorSplit) {
            self.source = source
            self.split = split
        }

        @inlinable
        public func next() -> SourceRead<T> {
            guard split.position < split.end else { return .endOfSplit }
            let i = split.position
            split.position += 1
            return .record(source.generator(i), timestamp: source.timestampOf?(i) ?? Timestamps.none)
        }

        public func currentSplit() -> GeneratorSplit { split }
    }
}
