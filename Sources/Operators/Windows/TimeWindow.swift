import StreamCore

/// A half-open time interval `[start, end)` (Flink's `TimeWindow`). Its last timestamp, and the
/// watermark at which it fires, is `end - 1`.
public struct TimeWindow: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public let start: Int64
    public let end: Int64

    @inlinable
    public init(start: Int64, end: Int64) {
        self.start = start
        self.end = end
    }

    /// `end - 1`: the window fires when the watermark reaches it.
    @inlinable public var maxTimestamp: Int64 { end &- 1 }

    /// Flink's rule: windows that overlap or touch (`[0,10)` and `[10,20)`) intersect, so sessions merge.
    @inlinable
    public func intersects(_ other: TimeWindow) -> Bool { start <= other.end && end >= other.start }

    /// The smallest window covering both.
    @inlinable
    public func cover(_ other: TimeWindow) -> TimeWindow {
        TimeWindow(start: min(start, other.start), end: max(end, other.end))
    }

    public static func < (a: TimeWindow, b: TimeWindow) -> Bool { (a.start, a.end) < (b.start, b.end) }

    public var description: String { "[\(start), \(end))" }

    /// Flink's `TimeWindow.getWindowStartWithOffset`: `ts - floorMod(ts - offset, size)`, a true floor
    /// also for negative timestamps (`-1` → `-size`).
    @inlinable
    public static func windowStart(timestamp: Int64, offset: Int64, size: Int64) -> Int64 {
        let remainder = (timestamp &- offset) % size
        return remainder < 0 ? timestamp &- (remainder &+ size) : timestamp &- remainder
    }
}
