import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where a sink writer runs.
public struct SinkInitContext: Sendable {
    public let subtaskIndex: Int
    public let parallelism: Int
    public init(subtaskIndex: Int, parallelism: Int) {
        self.subtaskIndex = subtaskIndex
        self.parallelism = parallelism
    }
}

/// The record being written: its timestamp and the writer's current watermark.
public struct SinkWriterContext: Sendable {
    public var timestamp: Int64?
    public var currentWatermark: Int64
    public init(timestamp: Int64?, currentWatermark: Int64) {
        self.timestamp = timestamp
        self.currentWatermark = currentWatermark
    }
}

/// Writes records for one subtask (Flink's `SinkWriter`).
public protocol SinkWriter<Input>: AnyObject {
    associatedtype Input
    func write(_ value: Input, context: SinkWriterContext) throws
    func writeWatermark(_ watermark: Int64) throws
    /// Called at the end of input (`endOfInput` true) and, later, at checkpoints.
    func flush(endOfInput: Bool) throws
    /// The writer's thread ran out of input for now: send what is buffered (latency when the
    /// input is slow). Called only between records, never on the hot path.
    func flushIdle() throws
    /// A buffer timeout passed while the writer's thread is busy: move what is buffered along
    /// without waiting for replies (what it sends may be confirmed at the next call, a full
    /// buffer, an idle flush or a checkpoint). By default `flushIdle()`.
    func flushBusy() throws
    func close() throws
}

extension SinkWriter {
    public func writeWatermark(_ watermark: Int64) throws {}
    public func flush(endOfInput: Bool) throws {}
    public func flushIdle() throws {}
    public func flushBusy() throws { try flushIdle() }
    public func close() throws {}
}

/// A sink (Flink's Sink V2): makes one writer per parallel subtask.
public protocol Sink<Input>: Sendable {
    associatedtype Input
    associatedtype Writer: SinkWriter where Writer.Input == Input
    func createWriter(_ context: SinkInitContext) throws -> Writer
}

/// Runs a sink writer as the last operator of a chain.
public final class SinkOperator<W: SinkWriter>: OneInputStreamOperator {
    public let output: Output<Void> = .discarding()
    @usableFromInline let writer: W
    @exclusivity(unchecked) @usableFromInline var context = SinkWriterContext(timestamp: nil, currentWatermark: Int64.min)

    @inlinable
    public init(writer: W) { self.writer = writer }

    @inlinable
    public func processElement(_ value: W.Input, timestamp: Int64) throws {
        context.timestamp = timestamp == Timestamps.none ? nil : timestamp
        try writer.write(value, context: context)
    }

    public func processWatermark(_ watermark: Int64) throws {
        context.currentWatermark = watermark
        try writer.writeWatermark(watermark)
    }

    public func endInput() throws { try writer.flush(endOfInput: true) }
    public func close() { try? writer.close() }
}

/// Collects everything written into memory, for tests and small jobs. Each subtask buffers locally
/// and publishes when its input ends (or the job fails), so the hot path takes no lock.
public final class CollectSink<T: Sendable>: Sink, Sendable {
    public struct Record: Sendable {
        public let value: T
        public let timestamp: Int64?
        public let subtask: Int
        @usableFromInline init(value: T, timestamp: Int64?, subtask: Int) {
            self.value = value
            self.timestamp = timestamp
            self.subtask = subtask
        }
    }

    private let published = Mutex<[Int: [Record]]>([:])

    public init() {}

    /// Every record, subtask by subtask, each subtask's in arrival order.
    public var records: [Record] {
        published.withLock { byTask in byTask.keys.sorted().flatMap { byTask[$0]! } }
    }

    public var values: [T] { records.map(\.value) }

    /// Records of one subtask in arrival order.
    public func records(ofSubtask i: Int) -> [Record] { published.withLock { $0[i] ?? [] } }

    public func clear() { published.withLock { $0 = [:] } }

    public func createWriter(_ context: SinkInitContext) -> Writer {
        Writer(sink: self, subtask: context.subtaskIndex)
    }

    fileprivate func publish(_ records: [Record], subtask: Int) {
        published.withLock { $0[subtask, default: []].append(contentsOf: records) }
    }

    public final class Writer: SinkWriter {
        let sink: CollectSink<T>
        @usableFromInline let subtask: Int
        @exclusivity(unchecked) @usableFromInline var buffer: [Record] = []

        init(sink: CollectSink<T>, subtask: Int) {
            self.sink = sink
            self.subtask = subtask
        }

        @inlinable
        public func write(_ value: T, context: SinkWriterContext) {
            buffer.append(Record(value: value, timestamp: context.timestamp, subtask: subtask))
        }

        public func flush(endOfInput: Bool) {
            sink.publish(buffer, subtask: subtask)
            buffer.removeAll()
        }

        public func close() { flush(endOfInput: false) }
    }
}

/// Prints each record on standard output as Flink's `print()` does: `"N> value"` with N the
/// 1-based subtask when the sink runs in parallel.
public struct PrintSink<T>: Sink {
    public let prefix: String?
    public let describe: @Sendable (T) -> String

    public init(prefix: String? = nil, describe: @escaping @Sendable (T) -> String = { "\($0)" }) {
        self.prefix = prefix
        self.describe = describe
    }

    public func createWriter(_ context: SinkInitContext) -> Writer {
        var head = prefix.map { "\($0):" } ?? ""
        if context.parallelism > 1 { head += "\(context.subtaskIndex + 1)> " } else if prefix != nil { head += " " }
        return Writer(head: head, describe: describe)
    }

    public final class Writer: SinkWriter {
        let head: String
        let describe: @Sendable (T) -> String
        @exclusivity(unchecked) var pending: [UInt8] = []

        init(head: String, describe: @escaping @Sendable (T) -> String) {
            self.head = head
            self.describe = describe
        }

        public func write(_ value: T, context: SinkWriterContext) {
            pending.append(contentsOf: (head + describe(value) + "\n").utf8)
            if pending.count >= 8192 { drain() }
        }

        public func flush(endOfInput: Bool) { drain() }
        public func close() { drain() }

        private func drain() {
            var offset = 0
            pending.withUnsafeBytes { raw in
                while offset < raw.count {
                    let n = Glibc.write(STDOUT_FILENO, raw.baseAddress! + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
            pending.removeAll(keepingCapacity: true)
        }
    }
}

/// Drops everything; counts what it saw.
public struct DiscardingSink<T>: Sink {
    public init() {}
    public func createWriter(_ context: SinkInitContext) -> Writer { Writer() }
    public final class Writer: SinkWriter {
        @exclusivity(unchecked) @usableFromInline var _count: Int64 = 0
        public var count: Int64 { _count }
        public init() {}
        @inlinable public func write(_ value: T, context: SinkWriterContext) { _count &+= 1 }
    }
}
