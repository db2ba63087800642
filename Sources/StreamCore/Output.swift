/// Names a side output and the type of its records (Flink's `OutputTag`). Two tags are the same
/// side output when their ids are equal.
public struct OutputTag<T>: Sendable, Hashable {
    public let id: String
    public init(_ id: String) {
        precondition(!id.isEmpty, "an OutputTag needs a non-empty id")
        self.id = id
    }
}

/// The part of an operator's output that does not depend on the record type: watermarks, watermark
/// status and side outputs. Built by the runtime (or a test harness) for each operator instance.
public class AnyOutput {
    @usableFromInline let watermarkSink: (Int64) throws -> Void
    @usableFromInline let statusSink: (WatermarkStatus) throws -> Void
    @exclusivity(unchecked) @usableFromInline var sideOutputs: [String: AnyOutput]

    @usableFromInline
    init(watermark: @escaping (Int64) throws -> Void,
         status: @escaping (WatermarkStatus) throws -> Void,
         sideOutputs: [String: AnyOutput]) {
        self.watermarkSink = watermark
        self.statusSink = status
        self.sideOutputs = sideOutputs
    }

    /// Forwards a watermark to every consumer, side outputs included.
    @inlinable
    public final func emitWatermark(_ watermark: Int64) throws { try watermarkSink(watermark) }

    /// Forwards a watermark status to every consumer.
    @inlinable
    public final func emitWatermarkStatus(_ status: WatermarkStatus) throws { try statusSink(status) }

    /// Routes side output `tagId` to `output` (an `Output<S>` for the tag's type). For harnesses and
    /// custom runtimes; the job runtime wires side outputs itself.
    public final func registerSideOutput(_ tagId: String, _ output: AnyOutput) {
        sideOutputs[tagId] = output
    }

    /// Emits a record to a side output; dropped when nothing consumes that tag (as in Flink).
    @inlinable
    public final func collect<S>(_ tag: OutputTag<S>, _ value: S, timestamp: Int64) throws {
        guard let side = sideOutputs[tag.id] else { return }
        guard let typed = side as? Output<S> else {
            preconditionFailure("side output '\(tag.id)' is consumed with another record type")
        }
        try typed.collect(value, timestamp: timestamp)
    }
}

/// Where an operator emits records of type `T` (Flink's `Output<StreamRecord<T>>`). A record's
/// timestamp is `Timestamps.none` when it has none.
public final class Output<T>: AnyOutput {
    @usableFromInline let recordSink: (T, Int64) throws -> Void

    /// For the runtime and test harnesses.
    @inlinable
    public init(record: @escaping (T, Int64) throws -> Void,
                watermark: @escaping (Int64) throws -> Void,
                status: @escaping (WatermarkStatus) throws -> Void = { _ in },
                sideOutputs: [String: AnyOutput] = [:]) {
        self.recordSink = record
        super.init(watermark: watermark, status: status, sideOutputs: sideOutputs)
    }

    @inlinable
    public func collect(_ value: T, timestamp: Int64) throws { try recordSink(value, timestamp) }

    /// An output that drops everything.
    @inlinable
    public static func discarding() -> Output<T> {
        Output(record: { _, _ in }, watermark: { _ in })
    }
}

/// What user functions emit into: records get the timestamp of the input record (or of the
/// event-time timer that fired), as Flink's `TimestampedCollector` does.
public final class Collector<T> {
    @usableFromInline let output: Output<T>
    /// Where the timestamp lives: a plain cell, so that operators in other modules set it per record
    /// without a dynamic exclusivity check (which `@exclusivity(unchecked)` on a stored property of
    /// this generic class did not remove from their inlined code).
    @usableFromInline let timestampCell: UnsafeMutablePointer<Int64>

    /// The timestamp `collect(_:)` gives records: set by the operator that owns the collector.
    @inlinable
    public var timestamp: Int64 {
        get { timestampCell.pointee }
        set { timestampCell.pointee = newValue }
    }

    @inlinable
    public init(_ output: Output<T>) {
        self.output = output
        timestampCell = .allocate(capacity: 1)
        timestampCell.initialize(to: Timestamps.none)
    }

    deinit { timestampCell.deallocate() }

    @inlinable
    public func collect(_ value: T) throws { try output.collect(value, timestamp: timestamp) }

    /// Emits with an explicit timestamp.
    @inlinable
    public func collect(_ value: T, timestamp: Int64) throws { try output.collect(value, timestamp: timestamp) }
}
