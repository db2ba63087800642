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
    public internal(set) var window = TimeWindow(start: 0, end: 0)
    /// The operator's watermark when the window fires.
    public internal(set) var currentWatermark: Int64 = Int64.min
    let processingTime: ProcessingTimeService
    let output: AnyOutput

    @usableFromInline
    init(processingTime: ProcessingTimeService, output: AnyOutput) {
        self.processingTime = processingTime
        self.output = output
    }

    public func currentProcessingTime() -> Int64 { processingTime.currentProcessingTime() }

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
public final class WindowOperator<K: StreamKey, IN, ACC: Codable, OUT>: OneInputStreamOperator {
    public let output: Output<OUT>
    @usableFromInline let assigner: WindowAssigner
    @usableFromInline let allowedLateness: Int64
    @usableFromInline let lateTag: OutputTag<IN>?
    @usableFromInline let logic: WindowLogic<K, IN, ACC, OUT>
    @usableFromInline let keyed: KeyedContext<K>
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let contents: MapState<TimeWindow, ACC>
    @exclusivity(unchecked) @usableFromInline var timers: InternalTimerService<K, TimeWindow>!
    @usableFromInline let context: WindowContext
    @usableFromInline let collector: Collector<OUT>
    @usableFromInline let lateDropped: Counter
    @exclusivity(unchecked) @usableFromInline var scratch: [TimeWindow] = []
    @exclusivity(unchecked) @usableFromInline var sessionScratch: [TimeWindow] = []

    @inlinable
    public init(assigner: WindowAssigner, allowedLateness: Duration = .zero, lateDataTag: OutputTag<IN>? = nil,
                logic: WindowLogic<K, IN, ACC, OUT>, setup: KeyedOperatorSetup<K, OUT>) throws {
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
        self.contents = try setup.runtime.getMapState(MapStateDescriptor<TimeWindow, ACC>("window-contents"))
        self.context = WindowContext(processingTime: setup.keyed.processingTime, output: setup.output)
        self.collector = Collector(setup.output)
        self.lateDropped = setup.runtime.metrics.counter("numLateRecordsDropped")
        self.timers = setup.keyed.timerService(
            name: "window-timers", namespace: TimeWindow.self,
            onEventTime: { [unowned self] t in try self.onEventTime(t.namespace, t.timestamp) },
            onProcessingTime: { [unowned self] t in try self.onProcessingTime(t.namespace, t.timestamp) })
    }

    public func open() throws { try logic.open(runtime) }
    public func close() { logic.close() }

    @usableFromInline var watermark: Int64 { timers.currentWatermark }

    /// `end - 1 + allowedLateness` (event time, saturating) or `end - 1` (processing time).
    @inlinable
    func cleanupTime(_ w: TimeWindow) -> Int64 {
        guard assigner.isEventTime else { return w.maxTimestamp }
        let (t, overflow) = w.maxTimestamp.addingReportingOverflow(allowedLateness)
        return overflow ? Int64.max : t
    }

    @inlinable
    func isWindowLate(_ w: TimeWindow) -> Bool { assigner.isEventTime && cleanupTime(w) <= watermark }

    @inlinable
    public func processElement(_ value: IN, timestamp: Int64) throws {
        let time: Int64
        if assigner.isEventTime {
            guard timestamp != Timestamps.none else { throw WindowError.noTimestamp }
            time = timestamp
        } else {
            time = keyed.processingTime.currentProcessingTime()
        }
        scratch.removeAll(keepingCapacity: true)
        assigner.assignWindows(timestamp: time, into: &scratch)
        var skipped = true
        if assigner.isMerging {
            skipped = try addToSession(value, candidate: scratch[0])
        } else {
            for w in scratch where !isWindowLate(w) {
                skipped = false
                let old = contents.get(w)
                contents.put(w, logic.add(old, value))
                if old == nil {
                    // A new window: its trigger and cleanup timers (re-registering them for every
                    // record, as Flink does, is a deduplicated no-op).
                    try onElement(w)
                    registerCleanupTimer(w)
                } else if assigner.isEventTime, w.maxTimestamp <= watermark {
                    try fire(w)   // late but allowed: fire again at once
                }
            }
        }
        if skipped, assigner.isEventTime, timestamp &+ allowedLateness <= watermark {
            if let lateTag { try output.collect(lateTag, value, timestamp: timestamp) } else { lateDropped.inc() }
        }
    }

    /// The default triggers' `onElement`: fire at once if the watermark already passed the window
    /// (a late-but-allowed record), else wait for `end - 1`.
    @inlinable
    func onElement(_ w: TimeWindow) throws {
        if assigner.isEventTime {
            if w.maxTimestamp <= watermark { try fire(w) } else { timers.registerEventTimeTimer(namespace: w, time: w.maxTimestamp) }
        } else {
            timers.registerProcessingTimeTimer(namespace: w, time: w.maxTimestamp)
        }
    }

    @inlinable
    func registerCleanupTimer(_ w: TimeWindow) {
        let t = cleanupTime(w)
        guard t != Int64.max else { return }
        if assigner.isEventTime {
            timers.registerEventTimeTimer(namespace: w, time: t)
        } else {
            timers.registerProcessingTimeTimer(namespace: w, time: t)
        }
    }

    @usableFromInline
    func fire(_ w: TimeWindow) throws {
        guard let acc = contents.get(w) else { return }
        context.window = w
        context.currentWatermark = watermark
        collector.timestamp = w.maxTimestamp
        try logic.emit(keyed.currentKey!, context, acc, collector)
    }

    @usableFromInline
    func clear(_ w: TimeWindow) {
        contents.remove(w)
        if assigner.isEventTime {
            timers.deleteEventTimeTimer(namespace: w, time: w.maxTimestamp)
            timers.deleteEventTimeTimer(namespace: w, time: cleanupTime(w))
        } else {
            timers.deleteProcessingTimeTimer(namespace: w, time: w.maxTimestamp)
        }
    }

    @inlinable
    func onEventTime(_ w: TimeWindow, _ time: Int64) throws {
        guard assigner.isEventTime else { return }
        if time == w.maxTimestamp { try fire(w) }
        if time == cleanupTime(w) { clear(w) }
    }

    @inlinable
    func onProcessingTime(_ w: TimeWindow, _ time: Int64) throws {
        guard !assigner.isEventTime else { return }
        if time == w.maxTimestamp {
            try fire(w)
            clear(w)
        }
    }

    /// Adds a record to its session, merging every session it touches (transitively) into one.
    /// Returns true when the record was skipped because the merged session is already late.
    @inlinable
    func addToSession(_ value: IN, candidate: TimeWindow) throws -> Bool {
        // The key's sessions are disjoint and do not touch, so one pass in start order finds every
        // session the growing window reaches.
        sessionScratch.removeAll(keepingCapacity: true)
        contents.forEach { w, _ in sessionScratch.append(w) }
        var merged = candidate
        var absorbed = 0
        if !sessionScratch.isEmpty {
            sessionScratch.sort()
            var i = 0
            while i < sessionScratch.count {
                if sessionScratch[i].intersects(merged) {
                    merged = merged.cover(sessionScratch[i])
                    sessionScratch.swapAt(i, absorbed)
                    absorbed += 1
                }
                i += 1
            }
            // A session before the merged range may touch it only after it grew: one more sweep.
            var grew = true
            while grew {
                grew = false
                var j = absorbed
                while j < sessionScratch.count {
                    if sessionScratch[j].intersects(merged) {
                        merged = merged.cover(sessionScratch[j])
                        sessionScratch.swapAt(j, absorbed)
                        absorbed += 1
                        grew = true
                    }
                    j += 1
                }
            }
        }
        if isWindowLate(merged) { return true }
        if absorbed == 1, sessionScratch[0] == merged {
            // The record falls inside an existing session: just add it.
            contents.put(merged, logic.add(contents.get(merged), value))
            if assigner.isEventTime, merged.maxTimestamp <= watermark { try fire(merged) }
            return false
        }
        var acc: ACC?
        sessionScratch.removeSubrange(absorbed...)
        sessionScratch.sort()
        for w in sessionScratch {
            if let a = contents.get(w) { acc = acc.map { logic.merge($0, a) } ?? a }
        }
        // Store the merged session before dropping the parts, so the key's map is never emptied
        // (which would free and re-create it).
        contents.put(merged, logic.add(acc, value))
        for w in sessionScratch where w != merged { clear(w) }
        try onElement(merged)
        registerCleanupTimer(merged)
        return false
    }
}
