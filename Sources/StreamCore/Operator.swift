/// Lifecycle shared by all operators. Only `processElement` is required of an operator; the rest
/// has defaults.
public protocol StreamOperator: AnyObject, SendableMetatype {
    /// Before the first element, on the task's thread.
    func open() throws
    /// After the last element and the final watermark; may still emit.
    func finish() throws
    /// Releases resources; called after `finish` and also when the job fails.
    func close()
}

extension StreamOperator {
    public func open() throws {}
    public func finish() throws {}
    public func close() {}
}

/// An operator with one input (Flink's `OneInputStreamOperator`). For keyed streams the runtime sets
/// the current key before `processElement` and fires due timers before `processWatermark`.
public protocol OneInputStreamOperator<In, Out>: StreamOperator {
    associatedtype In
    associatedtype Out
    var output: Output<Out> { get }
    func processElement(_ value: In, timestamp: Int64) throws
    /// Default: forward.
    func processWatermark(_ watermark: Int64) throws
    /// Default: forward.
    func processWatermarkStatus(_ status: WatermarkStatus) throws
    /// The input has ended (Flink's `BoundedOneInput.endInput`).
    func endInput() throws
}

extension OneInputStreamOperator {
    public func processWatermark(_ watermark: Int64) throws { try output.emitWatermark(watermark) }
    public func processWatermarkStatus(_ status: WatermarkStatus) throws { try output.emitWatermarkStatus(status) }
    public func endInput() throws {}
}

/// An operator with two inputs (Flink's `TwoInputStreamOperator`). The runtime combines the two
/// inputs' watermarks (the minimum, idle inputs left out) before `processWatermark`.
public protocol TwoInputStreamOperator<In1, In2, Out>: StreamOperator {
    associatedtype In1
    associatedtype In2
    associatedtype Out
    var output: Output<Out> { get }
    func processElement1(_ value: In1, timestamp: Int64) throws
    func processElement2(_ value: In2, timestamp: Int64) throws
    func processWatermark(_ watermark: Int64) throws
    func processWatermarkStatus(_ status: WatermarkStatus) throws
    /// Input 1 or 2 has ended.
    func endInput(_ input: Int) throws
}

extension TwoInputStreamOperator {
    public func processWatermark(_ watermark: Int64) throws { try output.emitWatermark(watermark) }
    public func processWatermarkStatus(_ status: WatermarkStatus) throws { try output.emitWatermarkStatus(status) }
    public func endInput(_ input: Int) throws {}
}

/// Combines the watermarks and statuses of a two-input operator's inputs as Flink's
/// `AbstractStreamOperator` does (`IndexedCombinedWatermarkStatus`): the minimum over the inputs that
/// are not idle, emitted only when it rises; a watermark makes its input active again; when both
/// turn idle the maximum is flushed and the operator turns idle.
public struct TwoInputWatermarkCombiner {
    private final class Changes { var list: [WatermarkMultiplexer.Change] = [] }
    private let changes = Changes()
    private let multiplexer: WatermarkMultiplexer
    private let inputs: [WatermarkMultiplexer.SplitOutput]

    public init() {
        let changes = self.changes
        multiplexer = WatermarkMultiplexer { changes.list.append($0) }
        inputs = [multiplexer.output(for: "input-1"), multiplexer.output(for: "input-2")]
    }

    private func take() -> [StatusWatermarkValve.Action] {
        defer { changes.list.removeAll() }
        return changes.list.map {
            switch $0 {
            case .watermark(let w): return .emitWatermark(w)
            case .status(let s): return .emitStatus(s)
            }
        }
    }

    /// A watermark on input 1 or 2; returns what the operator must do, in order.
    public mutating func watermark(_ wm: Int64, input: Int) -> [StatusWatermarkValve.Action] {
        inputs[input - 1].emitWatermark(wm)
        return take()
    }

    /// A status change on input 1 or 2; returns what the operator must do, in order.
    public mutating func status(_ s: WatermarkStatus, input: Int) -> [StatusWatermarkValve.Action] {
        if s == .idle { inputs[input - 1].markIdle() } else { inputs[input - 1].markActive() }
        return take()
    }

    public var combinedWatermark: Int64 { multiplexer.combinedWatermark }
}
