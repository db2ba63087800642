import StreamCore

/// One entry of a harness's output log: records, watermarks, status changes and side outputs in the
/// order the operator emitted them.
public enum HarnessEvent<Out> {
    case record(Out, timestamp: Int64?)
    case watermark(Int64)
    case status(WatermarkStatus)
    /// A side-output record: the tag id, the value and its timestamp.
    case sideOutput(String, Any, timestamp: Int64?)
}

extension HarnessEvent: Equatable where Out: Equatable {
    /// Side outputs compare by tag, timestamp and description of the value.
    public static func == (a: HarnessEvent, b: HarnessEvent) -> Bool {
        switch (a, b) {
        case let (.record(x, t1), .record(y, t2)): return x == y && t1 == t2
        case let (.watermark(x), .watermark(y)): return x == y
        case let (.status(x), .status(y)): return x == y
        case let (.sideOutput(t1, v1, ts1), .sideOutput(t2, v2, ts2)):
            return t1 == t2 && ts1 == ts2 && "\(v1)" == "\(v2)"
        default: return false
        }
    }
}

extension HarnessEvent: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .record(v, ts): return "record(\(v)\(ts.map { " @\($0)" } ?? ""))"
        case let .watermark(w): return "watermark(\(w == Int64.max ? "+inf" : "\(w)"))"
        case let .status(s): return "status(\(s))"
        case let .sideOutput(tag, v, ts): return "side[\(tag)](\(v)\(ts.map { " @\($0)" } ?? ""))"
        }
    }
}
