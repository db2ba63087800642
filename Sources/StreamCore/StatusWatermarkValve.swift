/// Decides which watermark and status an operator with several input channels sees: the minimum
/// over the channels that are active and aligned (caught up with the last output), never
/// decreasing; an idle channel is left out; when the last active channel turns idle the maximum
/// over all channels is flushed and the operator turns idle (Flink's `StatusWatermarkValve`).
///
/// A pure state machine: each input returns the actions to perform, in order.
public struct StatusWatermarkValve: Sendable {
    public enum Action: Equatable, Sendable {
        case emitWatermark(Int64)
        case emitStatus(WatermarkStatus)
    }

    @usableFromInline
    struct Channel: Sendable {
        @usableFromInline var watermark: Int64 = Int64.min
        @usableFromInline var status: WatermarkStatus = .active
        @usableFromInline var aligned = true
    }

    @usableFromInline var channels: [Channel]
    public private(set) var lastOutputWatermark: Int64 = Int64.min
    public private(set) var lastOutputStatus: WatermarkStatus = .active

    public init(channels: Int) {
        precondition(channels > 0)
        self.channels = Array(repeating: Channel(), count: channels)
    }

    public var channelCount: Int { channels.count }

    /// A watermark arrived on `channel`.
    public mutating func inputWatermark(_ watermark: Int64, channel: Int) -> Action? {
        guard lastOutputStatus == .active, channels[channel].status == .active,
              watermark > channels[channel].watermark else { return nil }
        channels[channel].watermark = watermark
        if !channels[channel].aligned, watermark >= lastOutputWatermark {
            channels[channel].aligned = true
        }
        return newMinAcrossAligned()
    }

    /// A status change arrived on `channel`.
    public mutating func inputStatus(_ status: WatermarkStatus, channel: Int) -> [Action] {
        var actions: [Action] = []
        if status == .idle, channels[channel].status == .active {
            channels[channel].status = .idle
            channels[channel].aligned = false
            if !channels.contains(where: { $0.status == .active }) {
                if channels[channel].watermark == lastOutputWatermark, let a = maxAcrossAll() {
                    actions.append(a)
                }
                lastOutputStatus = .idle
                actions.append(.emitStatus(.idle))
            } else if channels[channel].watermark == lastOutputWatermark, let a = newMinAcrossAligned() {
                actions.append(a)
            }
        } else if status == .active, channels[channel].status == .idle {
            channels[channel].status = .active
            if channels[channel].watermark >= lastOutputWatermark { channels[channel].aligned = true }
            if lastOutputStatus == .idle {
                lastOutputStatus = .active
                actions.append(.emitStatus(.active))
            }
        }
        return actions
    }

    private mutating func newMinAcrossAligned() -> Action? {
        var minimum = Int64.max
        var any = false
        for c in channels where c.aligned {
            any = true
            if c.watermark < minimum { minimum = c.watermark }
        }
        guard any, minimum > lastOutputWatermark else { return nil }
        lastOutputWatermark = minimum
        return .emitWatermark(minimum)
    }

    private mutating func maxAcrossAll() -> Action? {
        let maximum = channels.map(\.watermark).max() ?? Int64.min
        guard maximum > lastOutputWatermark else { return nil }
        lastOutputWatermark = maximum
        return .emitWatermark(maximum)
    }
}
