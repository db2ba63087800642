import StreamCore

/// Which windows a record belongs to (Flink's `WindowAssigner`), and in which time.
public struct WindowAssigner: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case tumbling(size: Int64, offset: Int64)
        case sliding(size: Int64, slide: Int64, offset: Int64)
        case session(gap: Int64)
    }

    public let kind: Kind
    /// Event time (the record's timestamp, windows fire on watermarks) or processing time.
    public let isEventTime: Bool

    init(_ kind: Kind, eventTime: Bool) {
        self.kind = kind
        self.isEventTime = eventTime
    }

    /// Merging assigners (sessions) join windows that touch.
    public var isMerging: Bool { if case .session = kind { return true } else { return false } }

    /// The windows of a record at `timestamp`: one tumbling window, `size / slide` sliding windows
    /// (latest first, as Flink lists them), or the session `[timestamp, timestamp + gap)`.
    @inlinable
    public func assignWindows(timestamp ts: Int64, into windows: inout [TimeWindow]) {
        switch kind {
        case .tumbling(let size, let offset):
            let start = TimeWindow.windowStart(timestamp: ts, offset: offset, size: size)
            windows.append(TimeWindow(start: start, end: start &+ size))
        case .sliding(let size, let slide, let offset):
            var start = TimeWindow.windowStart(timestamp: ts, offset: offset, size: slide)
            while start > ts &- size {
                windows.append(TimeWindow(start: start, end: start &+ size))
                start &-= slide
            }
        case .session(let gap):
            windows.append(TimeWindow(start: ts, end: ts &+ gap))
        }
    }

    public var description: String {
        let domain = isEventTime ? "EventTime" : "ProcessingTime"
        switch kind {
        case .tumbling(let size, let offset): return "Tumbling\(domain)Windows(\(size), \(offset))"
        case .sliding(let size, let slide, let offset): return "Sliding\(domain)Windows(\(size), \(slide), \(offset))"
        case .session(let gap): return "\(domain)SessionWindows(\(gap))"
        }
    }

    static func checked(_ d: Duration, _ what: String) -> Int64 {
        let ms = Timestamps.milliseconds(d)
        precondition(ms > 0, "\(what) must be positive")
        return ms
    }
}

/// Tumbling event-time windows of `size`, shifted by `offset` (Flink's `TumblingEventTimeWindows`).
public enum TumblingEventTimeWindows {
    public static func of(_ size: Duration, offset: Duration = .zero) -> WindowAssigner {
        WindowAssigner(.tumbling(size: WindowAssigner.checked(size, "window size"), offset: Timestamps.milliseconds(offset)),
                       eventTime: true)
    }
}

/// Sliding event-time windows (Flink's `SlidingEventTimeWindows`).
public enum SlidingEventTimeWindows {
    public static func of(_ size: Duration, _ slide: Duration, offset: Duration = .zero) -> WindowAssigner {
        WindowAssigner(.sliding(size: WindowAssigner.checked(size, "window size"), slide: WindowAssigner.checked(slide, "slide"),
                                offset: Timestamps.milliseconds(offset)), eventTime: true)
    }
}

/// Event-time session windows closed by a `gap` without records (Flink's `EventTimeSessionWindows`).
public enum EventTimeSessionWindows {
    public static func withGap(_ gap: Duration) -> WindowAssigner {
        WindowAssigner(.session(gap: WindowAssigner.checked(gap, "session gap")), eventTime: true)
    }
}

/// Tumbling windows in processing time (Flink's `TumblingProcessingTimeWindows`).
public enum TumblingProcessingTimeWindows {
    public static func of(_ size: Duration, offset: Duration = .zero) -> WindowAssigner {
        WindowAssigner(.tumbling(size: WindowAssigner.checked(size, "window size"), offset: Timestamps.milliseconds(offset)),
                       eventTime: false)
    }
}

/// Sliding windows in processing time (Flink's `SlidingProcessingTimeWindows`).
public enum SlidingProcessingTimeWindows {
    public static func of(_ size: Duration, _ slide: Duration, offset: Duration = .zero) -> WindowAssigner {
        WindowAssigner(.sliding(size: WindowAssigner.checked(size, "window size"), slide: WindowAssigner.checked(slide, "slide"),
                                offset: Timestamps.milliseconds(offset)), eventTime: false)
    }
}

/// Session windows in processing time (Flink's `ProcessingTimeSessionWindows`).
public enum ProcessingTimeSessionWindows {
    public static func withGap(_ gap: Duration) -> WindowAssigner {
        WindowAssigner(.session(gap: WindowAssigner.checked(gap, "session gap")), eventTime: false)
    }
}
