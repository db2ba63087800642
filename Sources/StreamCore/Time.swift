import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Event and processing times are Int64 milliseconds since the Unix epoch, as in Flink.
public typealias Timestamp = Int64

public enum Timestamps {
    /// Marks a record that carries no timestamp (Flink's `StreamRecord.hasTimestamp() == false`).
    public static let none: Int64 = Int64.min
    /// The watermark that ends event time: every window and timer fires at it.
    public static let maxWatermark: Int64 = Int64.max
    /// The watermark before any input (Flink's `Long.MIN_VALUE`).
    public static let minWatermark: Int64 = Int64.min

    @inlinable
    public static func milliseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000
    }
}

/// Where processing time comes from. Operators never read the wall clock themselves: the runtime
/// and the harnesses inject one of these.
public protocol ProcessingTimeClock: Sendable {
    /// Current processing time in epoch milliseconds.
    func currentTimeMillis() -> Int64
    /// True when time only moves when someone advances it (tests); the runtime then polls instead of
    /// sleeping until a timer is due.
    var isManual: Bool { get }
}

extension ProcessingTimeClock {
    public var isManual: Bool { false }
}

/// The wall clock.
public struct SystemClock: ProcessingTimeClock {
    public init() {}
    public func currentTimeMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A clock that moves only when told to; safe to advance from any thread.
public final class ManualClock: ProcessingTimeClock {
    private let millis: Atomic<Int64>

    public init(_ startMillis: Int64 = 0) { millis = Atomic(startMillis) }

    public func currentTimeMillis() -> Int64 { millis.load(ordering: .acquiring) }
    public var isManual: Bool { true }

    /// Sets the time; it never moves backwards.
    public func set(_ newMillis: Int64) {
        var current = millis.load(ordering: .relaxed)
        while newMillis > current {
            let (exchanged, original) = millis.compareExchange(
                expected: current, desired: newMillis, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }

    public func advance(by ms: Int64) { set(currentTimeMillis() + ms) }
}

/// CPU time the calling thread has used, in nanoseconds.
func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// A monotonic clock for measuring elapsed time (benchmarks, job runtime, metrics), not for operators.
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension Duration {
    /// `m` minutes (Swift's `Duration` stops at seconds; windows and TTLs are usually minutes).
    public static func minutes(_ m: Int64) -> Duration { .seconds(m * 60) }
    /// `h` hours.
    public static func hours(_ h: Int64) -> Duration { .seconds(h * 3600) }
}
