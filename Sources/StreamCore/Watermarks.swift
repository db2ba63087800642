/// Whether a stream currently advances event time. An idle input is left out of the minimum a
/// multi-input operator takes over its inputs (Flink's `WatermarkStatus`).
public enum WatermarkStatus: Sendable, Equatable {
    case active
    case idle
}

/// Where a `WatermarkGenerator` reports (Flink's `WatermarkOutput`).
public protocol WatermarkOutput: AnyObject {
    /// Reports a watermark; values not above the last one are ignored downstream.
    func emitWatermark(_ watermark: Int64)
    /// This output will not advance until further notice: leave it out of the minimum.
    func markIdle()
    /// This output takes part in the minimum again.
    func markActive()
}

/// Generates watermarks from events and from the passing of processing time
/// (Flink's `WatermarkGenerator`).
public protocol WatermarkGenerator<Event>: AnyObject {
    associatedtype Event
    /// Sees every event with its assigned timestamp.
    func onEvent(_ event: Event, timestamp: Int64, output: any WatermarkOutput)
    /// Called every auto-watermark interval of processing time (or after every record when the
    /// interval is 0).
    func onPeriodicEmit(output: any WatermarkOutput)
}

/// DataStream's bounded out-of-orderness rule: the watermark is `maxTimestamp - bound - 1`
/// (Flink's `BoundedOutOfOrdernessWatermarks`). Before any event it is `Int64.min`.
public final class BoundedOutOfOrdernessWatermarks<Event>: WatermarkGenerator {
    public let outOfOrdernessMillis: Int64
    @exclusivity(unchecked) @usableFromInline var maxTimestamp: Int64

    public init(outOfOrdernessMillis: Int64) {
        precondition(outOfOrdernessMillis >= 0, "out-of-orderness must not be negative")
        self.outOfOrdernessMillis = outOfOrdernessMillis
        // Start so that the first watermark is exactly Int64.min.
        self.maxTimestamp = Int64.min &+ outOfOrdernessMillis &+ 1
    }

    @inlinable
    public func onEvent(_ event: Event, timestamp: Int64, output: any WatermarkOutput) {
        if timestamp > maxTimestamp { maxTimestamp = timestamp }
    }

    @inlinable
    public func onPeriodicEmit(output: any WatermarkOutput) {
        output.emitWatermark(maxTimestamp &- outOfOrdernessMillis &- 1)
    }
}

/// Flink SQL's `WATERMARK FOR ts AS ts - INTERVAL 'b'` rule: `maxTimestamp - bound`, and, as Flink
/// SQL's watermark assigner, only watermarks above 0 (it starts at 0 and emits increases).
public final class SQLBoundedOutOfOrdernessWatermarks<Event>: WatermarkGenerator {
    public let outOfOrdernessMillis: Int64
    @exclusivity(unchecked) @usableFromInline var maxTimestamp: Int64

    public init(outOfOrdernessMillis: Int64) {
        self.outOfOrdernessMillis = outOfOrdernessMillis
        self.maxTimestamp = Int64.min &+ outOfOrdernessMillis
    }

    public func onEvent(_ event: Event, timestamp: Int64, output: any WatermarkOutput) {
        if timestamp > maxTimestamp { maxTimestamp = timestamp }
    }

    public func onPeriodicEmit(output: any WatermarkOutput) {
        // Flink SQL's WatermarkAssignerOperator starts its watermark at 0 and emits only increases:
        // no watermark at or below 0 is ever emitted, so records before the epoch are not late
        // until event time passes 0 + bound (found by the differential test against Flink 2.3).
        let watermark = maxTimestamp &- outOfOrdernessMillis
        if watermark > 0 { output.emitWatermark(watermark) }
    }
}

/// Generates no watermarks (only the final +∞ at end of input).
public final class NoWatermarksGenerator<Event>: WatermarkGenerator {
    public init() {}
    public func onEvent(_ event: Event, timestamp: Int64, output: any WatermarkOutput) {}
    public func onPeriodicEmit(output: any WatermarkOutput) {}
}

/// Flink's `IdlenessTimer`: idle once no event arrived for longer than the timeout, measured from
/// the first periodic check that saw no activity.
@usableFromInline
struct IdlenessTimer {
    @usableFromInline let clock: any ProcessingTimeClock
    @usableFromInline let timeoutMillis: Int64
    @usableFromInline var counter: UInt64 = 0
    @usableFromInline var lastCounter: UInt64 = 0
    @usableFromInline var startOfInactivity: Int64? = nil

    @usableFromInline
    init(clock: any ProcessingTimeClock, timeoutMillis: Int64) {
        self.clock = clock
        self.timeoutMillis = timeoutMillis
    }

    @inlinable mutating func activity() { counter &+= 1 }

    @usableFromInline
    mutating func checkIfIdle() -> Bool {
        if counter != lastCounter {
            lastCounter = counter
            startOfInactivity = nil
            return false
        }
        let now = clock.currentTimeMillis()
        guard let start = startOfInactivity else {
            startOfInactivity = now
            return false
        }
        return now - start > timeoutMillis
    }
}

/// Wraps a generator so its output is marked idle when no events arrive for a while
/// (Flink's `WatermarksWithIdleness`).
public final class WatermarksWithIdleness<Event>: WatermarkGenerator {
    @usableFromInline let inner: any WatermarkGenerator<Event>
    @exclusivity(unchecked) @usableFromInline var timer: IdlenessTimer
    @exclusivity(unchecked) @usableFromInline var isIdleNow = false

    public init(_ inner: any WatermarkGenerator<Event>, timeoutMillis: Int64, clock: any ProcessingTimeClock) {
        precondition(timeoutMillis > 0, "idleness timeout must be positive")
        self.inner = inner
        self.timer = IdlenessTimer(clock: clock, timeoutMillis: timeoutMillis)
    }

    @inlinable
    public func onEvent(_ event: Event, timestamp: Int64, output: any WatermarkOutput) {
        inner.onEvent(event, timestamp: timestamp, output: output)
        timer.activity()
        isIdleNow = false
    }

    public func onPeriodicEmit(output: any WatermarkOutput) {
        if timer.checkIfIdle() {
            if !isIdleNow {
                output.markIdle()
                isIdleNow = true
            }
        } else {
            inner.onPeriodicEmit(output: output)
        }
    }
}

/// How a source (or `assignTimestampsAndWatermarks`) derives event time and watermarks: which
/// timestamp each record has and which generator turns them into watermarks
/// (Flink's `WatermarkStrategy`). Values, so they compose: `.forBoundedOutOfOrderness(.seconds(5))
/// .withTimestampAssigner { e, _ in e.ts }.withIdleness(.minutes(1))`.
public struct WatermarkStrategy<Event>: Sendable {
    public typealias TimestampAssigner = @Sendable (Event, Int64) -> Int64
    public typealias GeneratorFactory = @Sendable (any ProcessingTimeClock) -> any WatermarkGenerator<Event>

    public var makeGenerator: GeneratorFactory
    /// `(event, timestamp the source attached or Timestamps.none) -> event timestamp`.
    public var timestampAssigner: TimestampAssigner?
    public var idleTimeoutMillis: Int64?

    public init(generator: @escaping GeneratorFactory) {
        self.makeGenerator = generator
    }

    /// `maxTimestamp - bound - 1`, emitted periodically (DataStream semantics).
    public static func forBoundedOutOfOrderness(_ bound: Duration) -> WatermarkStrategy {
        let ms = Timestamps.milliseconds(bound)
        return WatermarkStrategy { _ in BoundedOutOfOrdernessWatermarks<Event>(outOfOrdernessMillis: ms) }
    }

    /// `maxTimestamp - 1`: timestamps never go backwards.
    public static func forMonotonousTimestamps() -> WatermarkStrategy {
        WatermarkStrategy { _ in BoundedOutOfOrdernessWatermarks<Event>(outOfOrdernessMillis: 0) }
    }

    /// Flink SQL's `WATERMARK FOR ts AS ts - INTERVAL 'bound'`: `maxTimestamp - bound`; as in Flink SQL,
    /// no watermark at or below 0 is emitted (records before the epoch are never late by it).
    public static func forSQLBoundedOutOfOrderness(_ bound: Duration) -> WatermarkStrategy {
        let ms = Timestamps.milliseconds(bound)
        return WatermarkStrategy { _ in SQLBoundedOutOfOrdernessWatermarks<Event>(outOfOrdernessMillis: ms) }
    }

    /// No watermarks until the +∞ at end of input.
    public static func noWatermarks() -> WatermarkStrategy {
        WatermarkStrategy { _ in NoWatermarksGenerator<Event>() }
    }

    /// A custom generator.
    public static func forGenerator(_ make: @escaping GeneratorFactory) -> WatermarkStrategy {
        WatermarkStrategy(generator: make)
    }

    /// Takes the event timestamp from the event.
    public func withTimestampAssigner(_ assigner: @escaping @Sendable (Event, Int64) -> Int64) -> WatermarkStrategy {
        var copy = self
        copy.timestampAssigner = assigner
        return copy
    }

    /// Marks an input idle after `timeout` without events, so it no longer holds back the watermark.
    public func withIdleness(_ timeout: Duration) -> WatermarkStrategy {
        var copy = self
        copy.idleTimeoutMillis = Timestamps.milliseconds(timeout)
        return copy
    }

    /// The generator for one split or one subtask, with idleness applied.
    public func createGenerator(clock: any ProcessingTimeClock) -> any WatermarkGenerator<Event> {
        let base = makeGenerator(clock)
        if let idle = idleTimeoutMillis {
            return WatermarksWithIdleness(base, timeoutMillis: idle, clock: clock)
        }
        return base
    }
}
