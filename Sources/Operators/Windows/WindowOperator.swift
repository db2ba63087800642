import StreamCore

/// A window operator was used wrongly; the message says what to change.
public struct WindowError: Error, CustomStringConvertible {
    public let description: String
    @inlinable public init(description: String) { self.description = description }
    public static let noTimestamp = WindowError(description:
        "record has no timestamp: event-time windows need timestamps — use fromSource with a WatermarkStrategy that assigns them, or assignTimestampsAndWatermarks(...), or a processing-time window")
}

/// What a window function sees besides the elements (Flink's `ProcessWindowFunction.Context`).
public final class WindowContext {
    @exclusivity(unchecked) public internal(set) var window = TimeWindow(start: 0, end: 0)
    /// The operator's watermark when the window fires.
    @exclusivity(unchecked) public internal(set) var currentWatermark: Int64 = Int64.min
    let processingTime: ProcessingTimeService
    let output: AnyOutput

    @usableFromInline
    init(processingTime: ProcessingTimeService, output: AnyOutput) {
        self.processingTime = processingTime
        self.output = output
    }

    public func currentProcessingTime() -> Int64 { processingTime.currentProcessingTime() }

    /// Set by the operator before each firing.
    @usableFromInline
    func prepare(window: TimeWindow, watermark: Int64) {
        self.window = window
        currentWatermark = watermark
    }

    /// Emits to a side output with the window's timestamp (`end - 1`).
    public func output<S>(_ tag: OutputTag<S>, _ value: S) throws {
        try output.collect(tag, value, timestamp: window.maxTimestamp)
    }
}

/// Turns the contents of a fired window into output (Flink's `ProcessWindowFunction`). One instance
/// per parallel subtask.
public protocol ProcessWindowFunction<Key, Input, Output>: AnyObject, SendableMetatype {
    associatedtype Key: StreamKey
    associatedtype Input
    associatedtype Output
    func open(_ context: RuntimeContext) throws
    func process(_ key: Key, _ context: WindowContext, _ elements: [Input], _ out: Collector<Output>) throws
    func close() throws
}

extension ProcessWindowFunction {
    public func open(_ context: RuntimeContext) throws {}
    public func close() throws {}
}

/// How a window operator folds records into its per-window accumulator and turns it into output.
public struct WindowLogic<K: StreamKey, IN, ACC, OUT> {
    public let add: (ACC?, IN) -> ACC
    public let merge: (ACC, ACC) -> ACC
    public let emit: (K, WindowContext, ACC, Collector<OUT>) throws -> Void
    public let open: (RuntimeContext) throws -> Void
    public let close: () -> Void

    public init(add: @escaping (ACC?, IN) -> ACC, merge: @escaping (ACC, ACC) -> ACC,
                emit: @escaping (K, WindowContext, ACC, Collector<OUT>) throws -> Void,
                open: @escaping (RuntimeContext) throws -> Void = { _ in }, close: @escaping () -> Void = {}) {
        self.add = add
        self.merge = merge
        self.emit = emit
        self.open = open
        self.close = close
    }
}

/// Keyed time windows with Flink's `WindowOperator` rules and its default triggers:
/// - a window fires when the watermark reaches `end - 1` (processing-time windows: when the clock
///   does), with the window's full, cumulative contents, stamped `end - 1`; an empty window never fires;
/// - with allowed lateness `L` a window is late once `end - 1 + L <= watermark`; a record for a window
///   that already fired but is not late is added and the window fires again at once; state is purged
///   at `end - 1 + L`;
/// - a record is dropped from its late windows only; it goes to the late side output (or is counted
///   in `numLateRecordsDropped`) only if it is late for all of its windows;
/// - session windows that touch merge, accumulators merged.
///
/// Event-time tumbling and sliding windows take the aligned path (`WindowOperator+Aligned.swift`):
/// one `NamespacedValueState` keyed by (key slot, window end) and per-window-end lists of key slots as
/// timers; a tumbling window's record takes a fast path without the loop over windows.
/// Event-time sessions without allowed lateness take the session path
/// (`WindowOperator+Sessions.swift`): a key's sessions in one array, one heap entry per session.
/// The rest (processing time, sessions with lateness) take the general path
/// (`WindowOperator+General.swift`): a map of windows per key and a timer per (key, window).
public final class WindowOperator<K: StreamKey, IN, ACC: Codable, OUT>: OneInputStreamOperator {
    public let output: Output<OUT>
    @usableFromInline let assigner: WindowAssigner
    @usableFromInline let allowedLateness: Int64
    @usableFromInline let lateTag: OutputTag<IN>?
    @usableFromInline let logic: WindowLogic<K, IN, ACC, OUT>
    @usableFromInline let keyed: KeyedContext<K>
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let context: WindowContext
    @usableFromInline let collector: Collector<OUT>
    @usableFromInline let lateDropped: Counter

    @usableFromInline enum Path { case aligned, sessions, general }
    @usableFromInline let path: Path

    // The aligned path.
    /// Window size and the step between window starts (the size for tumbling windows), and offset.
    @usableFromInline let size: Int64
    @usableFromInline let slide: Int64
    @usableFromInline let offset: Int64
    /// Window contents by window end.
    @usableFromInline let windows: NamespacedValueState<ACC>!
    /// Fire timers at `end - 1` (which also purge when there is no lateness), cleanup timers at
    /// `end - 1 + L`.
    @exclusivity(unchecked) @usableFromInline var fireTimers = SlotTimerBuckets()
    @exclusivity(unchecked) @usableFromInline var cleanupTimers = SlotTimerBuckets()
    @exclusivity(unchecked) @usableFromInline var currentWatermark = Int64.min
    /// The last `[start, start + slide)` computed: records mostly fall in the same one (no division).
    @exclusivity(unchecked) @usableFromInline var cachedStart: Int64 = 1
    @exclusivity(unchecked) @usableFromInline var cachedEnd: Int64 = 0

    // The session path (event time, no allowed lateness): see WindowOperator+Sessions.swift.
    @usableFromInline let sessions: ValueState<[SessionEntry<ACC>]>!
    @exclusivity(unchecked) @usableFromInline var sessionTimers = SlotTimerHeap()
    @exclusivity(unchecked) @usableFromInline var sessionCount = 0

    // The general path.
    @usableFromInline let contents: MapState<TimeWindow, ACC>!
    @exclusivity(unchecked) @usableFromInline var timers: InternalTimerService<K, TimeWindow>!
    @exclusivity(unchecked) @usableFromInline var scratch: [TimeWindow] = []
    @exclusivity(unchecked) @usableFromInline var sessionScratch: [TimeWindow] = []

    @inlinable
    public convenience init(assigner: WindowAssigner, allowedLateness: Duration = .zero, lateDataTag: OutputTag<IN>? = nil,
                            logic: WindowLogic<K, IN, ACC, OUT>, setup: KeyedOperatorSetup<K, OUT>) throws {
        try self.init(assigner: assigner, allowedLateness: allowedLateness, lateDataTag: lateDataTag, logic: logic,
                      setup: setup, general: false)
    }

    /// `general: true` runs tumbling and sliding event-time windows on the general path too (for
    /// differential tests of the aligned path).
    @inlinable
    init(assigner: WindowAssigner, allowedLateness: Duration, lateDataTag: OutputTag<IN>?,
         logic: WindowLogic<K, IN, ACC, OUT>, setup: KeyedOperatorSetup<K, OUT>, general: Bool) throws {
        let lateness = Timestamps.milliseconds(allowedLateness)
        guard lateness >= 0 else { throw WindowError(description: "allowedLateness must not be negative") }
        guard assigner.isEventTime || lateness == 0 else {
            throw WindowError(description: "allowedLateness applies to event-time windows only")
        }
        self.output = setup.output
        self.assigner = assigner
        self.allowedLateness = lateness
        self.lateTag = lateDataTag
        self.logic = logic
        self.keyed = setup.keyed
        self.runtime = setup.runtime
        self.context = WindowContext(processingTime: setup.keyed.processingTime, output: setup.output)
        self.collector = Collector(setup.output)
        self.lateDropped = setup.runtime.metrics.counter("numLateRecordsDropped")
        switch assigner.kind {
        case .tumbling(let size, let offset) where assigner.isEventTime && !general:
            (self.size, self.slide, self.offset) = (size, size, offset)
            path = .aligned
        case .sliding(let size, let slide, let offset) where assigner.isEventTime && !general:
            (self.size, self.slide, self.offset) = (size, slide, offset)
            path = .aligned
        case .session(let gap) where assigner.isEventTime && lateness == 0 && !general:
            (self.size, self.slide, self.offset) = (gap, 0, 0)
            path = .sessions
        default:
            (self.size, self.slide, self.offset) = (0, 0, 0)
            path = .general
        }
        switch path {
        case .aligned:
            windows = try setup.runtime.getNamespacedState(NamespacedStateDescriptor<ACC>("window-contents"))
            (sessions, contents) = (nil, nil)
            try setup.keyed.addEventTimeTimers(
                name: "window-timers", advance: { [unowned self] wm in try self.advanceAligned(to: wm) },
                pending: { [unowned self] in self.fireTimers.count + self.cleanupTimers.count },
                snapshot: { [unowned self] in self.alignedTimersSnapshot() },
                restore: { [unowned self] slot, time, tag in
                    if tag == 0 { self.fireTimers.add(slot: slot, time: time) } else { self.cleanupTimers.add(slot: slot, time: time) }
                })
        case .sessions:
            sessions = try setup.runtime.getState(ValueStateDescriptor<[SessionEntry<ACC>]>("window-contents"))
            (windows, contents) = (nil, nil)
            try setup.keyed.addEventTimeTimers(
                name: "window-timers", advance: { [unowned self] wm in try self.advanceSessions(to: wm) },
                pending: { [unowned self] in self.sessionCount })
            rebuildSessionTimers()
        case .general:
            (windows, sessions) = (nil, nil)
            contents = try setup.runtime.getMapState(MapStateDescriptor<TimeWindow, ACC>("window-contents"))
            timers = setup.keyed.timerService(
                name: "window-timers", namespace: TimeWindow.self,
                onEventTime: { [unowned self] t in try self.onEventTime(t.namespace, t.timestamp) },
                onProcessingTime: { [unowned self] t in try self.onProcessingTime(t.namespace, t.timestamp) })
        }
    }

    public func open() throws { try logic.open(runtime) }
    public func close() { logic.close() }

    /// Fire timers (tag 0) and cleanup timers (tag 1) of the aligned path, for a checkpoint.
    @usableFromInline
    func alignedTimersSnapshot() -> [(slot: Int, time: Int64, tag: Int32)] {
        var out: [(slot: Int, time: Int64, tag: Int32)] = []
        fireTimers.forEach { out.append(($0, $1, 0)) }
        cleanupTimers.forEach { out.append(($0, $1, 1)) }
        return out
    }

    /// Inlined into the runtime's per-record closure, with the aligned path (one call less per record).
    @inlinable @inline(__always)
    public func processElement(_ value: IN, timestamp: Int64) throws {
        switch path {
        case .aligned: try processAligned(value, timestamp: timestamp)
        case .sessions: try processSession(value, timestamp: timestamp)
        case .general: try processGeneral(value, timestamp: timestamp)
        }
    }

    /// A record late for all of its windows: to the side output, or counted.
    @inlinable
    func dropLate(_ value: IN, timestamp: Int64) throws {
        if let lateTag { try output.collect(lateTag, value, timestamp: timestamp) } else { lateDropped.inc() }
    }
}
