/// Combines the watermarks of several splits read by one source subtask into one: the minimum over
/// splits that are not idle; idle when all are; the maximum over all when all turn idle, so nothing
/// is held back (Flink's `WatermarkOutputMultiplexer` / `CombinedWatermarkStatus`). Emits only
/// increases.
public final class WatermarkMultiplexer {
    /// What the combination decided after an update.
    public enum Change: Equatable, Sendable {
        case watermark(Int64)
        case status(WatermarkStatus)
    }

    /// One split's view: the output its generator writes to.
    public final class SplitOutput: WatermarkOutput {
        @exclusivity(unchecked) public fileprivate(set) var watermark: Int64 = Int64.min
        @exclusivity(unchecked) public fileprivate(set) var isIdle = false
        fileprivate weak var owner: WatermarkMultiplexer?
        /// Deferred outputs (periodic emission) update state only; the owner combines afterwards.
        @exclusivity(unchecked) fileprivate var immediate = true

        public func emitWatermark(_ wm: Int64) {
            var changed = false
            if isIdle { isIdle = false; changed = true }
            if wm > watermark { watermark = wm; changed = true }
            if changed, immediate { owner?.update() }
        }

        public func markIdle() {
            if !isIdle { isIdle = true; if immediate { owner?.update() } }
        }

        public func markActive() {
            if isIdle { isIdle = false; if immediate { owner?.update() } }
        }
    }

    @exclusivity(unchecked) private var outputs: [String: SplitOutput] = [:]
    @exclusivity(unchecked) private var order: [SplitOutput] = []
    @exclusivity(unchecked) public private(set) var combinedWatermark: Int64 = Int64.min
    @exclusivity(unchecked) public private(set) var status: WatermarkStatus = .active
    private let emit: (Change) -> Void

    /// `emit` receives each change of the combined watermark or status.
    public init(emit: @escaping (Change) -> Void) {
        self.emit = emit
    }

    /// The output for a split, created on first use.
    public func output(for splitId: String) -> SplitOutput {
        if let existing = outputs[splitId] { return existing }
        let o = SplitOutput()
        o.owner = self
        outputs[splitId] = o
        order.append(o)
        return o
    }

    /// A split ended: it no longer takes part in the minimum.
    public func release(splitId: String) {
        guard let o = outputs.removeValue(forKey: splitId) else { return }
        order.removeAll { $0 === o }
        update()
    }

    public var isEmpty: Bool { order.isEmpty }

    /// Runs `body` with every split output deferred (as Flink's periodic emission does), then combines once.
    public func deferred(_ body: () -> Void) {
        for o in order { o.immediate = false }
        body()
        for o in order { o.immediate = true }
        update()
    }

    /// Recomputes the combination; emits a status change and/or a raised watermark.
    public func update() {
        guard !order.isEmpty else { return }
        var minActive = Int64.max
        var maxAll = Int64.min
        var allIdle = true
        for o in order {
            maxAll = max(maxAll, o.watermark)
            if !o.isIdle {
                allIdle = false
                minActive = min(minActive, o.watermark)
            }
        }
        if allIdle {
            if maxAll > combinedWatermark {
                combinedWatermark = maxAll
                emit(.watermark(maxAll))
            }
            if status != .idle { status = .idle; emit(.status(.idle)) }
            return
        }
        if status != .active { status = .active; emit(.status(.active)) }
        if minActive > combinedWatermark {
            combinedWatermark = minActive
            emit(.watermark(minActive))
        }
    }
}
