/// The context of a non-keyed `ProcessFunction` / `CoProcessFunction` call: the record's timestamp,
/// time, and side outputs. Registering timers needs a keyed stream.
public final class ProcessContext {
    @usableFromInline let output: AnyOutput
    @usableFromInline let processingTime: ProcessingTimeService
    @exclusivity(unchecked) @usableFromInline var rawTimestamp: Int64 = Timestamps.none
    /// The operator's current watermark.
    @exclusivity(unchecked) public internal(set) var currentWatermark: Int64 = Int64.min

    @usableFromInline
    init(output: AnyOutput, processingTime: ProcessingTimeService) {
        self.output = output
        self.processingTime = processingTime
    }

    /// The timestamp of the record being processed, if it has one.
    public var timestamp: Int64? { rawTimestamp == Timestamps.none ? nil : rawTimestamp }
    public func currentProcessingTime() -> Int64 { processingTime.currentProcessingTime() }

    /// Emits to a side output, with the current record's timestamp.
    @inlinable
    public func output<S>(_ tag: OutputTag<S>, _ value: S) throws {
        try output.collect(tag, value, timestamp: rawTimestamp)
    }
}

/// Timers for the current key (Flink's `TimerService` inside a keyed function).
public final class TimerService<K: StreamKey> {
    @usableFromInline let timers: InternalTimerService<K, VoidNamespace>

    @usableFromInline init(_ timers: InternalTimerService<K, VoidNamespace>) { self.timers = timers }

    public func currentProcessingTime() -> Int64 { timers.currentProcessingTime() }
    public func currentWatermark() -> Int64 { timers.currentWatermark }
    /// Fires `onTimer` once the watermark reaches `time`. Deduplicated per (key, time).
    @inlinable public func registerEventTimeTimer(_ time: Int64) { timers.registerEventTimeTimer(namespace: VoidNamespace(), time: time) }
    @inlinable public func deleteEventTimeTimer(_ time: Int64) { timers.deleteEventTimeTimer(namespace: VoidNamespace(), time: time) }
    @inlinable public func registerProcessingTimeTimer(_ time: Int64) { timers.registerProcessingTimeTimer(namespace: VoidNamespace(), time: time) }
    @inlinable public func deleteProcessingTimeTimer(_ time: Int64) { timers.deleteProcessingTimeTimer(namespace: VoidNamespace(), time: time) }
}

/// The context of a keyed function call: the key, the record's (or timer's) timestamp, timers and
/// side outputs.
public final class KeyedProcessContext<K: StreamKey> {
    @usableFromInline let output: AnyOutput
    @usableFromInline let keyed: KeyedContext<K>
    public let timerService: TimerService<K>
    @exclusivity(unchecked) @usableFromInline var rawTimestamp: Int64 = Timestamps.none
    /// Set while `onTimer` runs.
    @exclusivity(unchecked) public internal(set) var timeDomain: TimeDomain? = nil

    @usableFromInline
    init(output: AnyOutput, keyed: KeyedContext<K>, timers: InternalTimerService<K, VoidNamespace>) {
        self.output = output
        self.keyed = keyed
        self.timerService = TimerService(timers)
    }

    /// A context whose timer service ("user-timers") fires through `callbacks`.
    @inlinable
    convenience init(output: AnyOutput, keyed: KeyedContext<K>, userTimers callbacks: TimerCallbacks) {
        let service = keyed.timerService(
            name: "user-timers", namespace: VoidNamespace.self,
            onEventTime: { t in try callbacks.fire(t.timestamp, .eventTime) },
            onProcessingTime: { t in try callbacks.fire(t.timestamp, .processingTime) })
        self.init(output: output, keyed: keyed, timers: service)
    }

    public var timestamp: Int64? { rawTimestamp == Timestamps.none ? nil : rawTimestamp }

    /// The key of the record or timer being processed.
    public var currentKey: K {
        guard let k = keyed.currentKey else { preconditionFailure("no current key") }
        return k
    }

    @inlinable
    public func output<S>(_ tag: OutputTag<S>, _ value: S) throws {
        try output.collect(tag, value, timestamp: rawTimestamp)
    }
}

/// A function over each record with side outputs and time (Flink's `ProcessFunction`). One instance
/// per parallel subtask.
public protocol ProcessFunction<Input, Output>: AnyObject, SendableMetatype {
    associatedtype Input
    associatedtype Output
    func open(_ context: RuntimeContext) throws
    func processElement(_ value: Input, _ ctx: ProcessContext, _ out: Collector<Output>) throws
    func close() throws
}

extension ProcessFunction {
    public func open(_ context: RuntimeContext) throws {}
    public func close() throws {}
}

/// A function over a keyed stream with keyed state and timers (Flink's `KeyedProcessFunction`).
/// One instance per parallel subtask; get state handles in `open`.
public protocol KeyedProcessFunction<Key, Input, Output>: AnyObject, SendableMetatype {
    associatedtype Key: StreamKey
    associatedtype Input
    associatedtype Output
    func open(_ context: RuntimeContext) throws
    func processElement(_ value: Input, _ ctx: KeyedProcessContext<Key>, _ out: Collector<Output>) throws
    /// A timer of the current key fired; `ctx.timeDomain` says which kind.
    func onTimer(_ timestamp: Int64, _ ctx: KeyedProcessContext<Key>, _ out: Collector<Output>) throws
    func close() throws
}

extension KeyedProcessFunction {
    public func open(_ context: RuntimeContext) throws {}
    public func onTimer(_ timestamp: Int64, _ ctx: KeyedProcessContext<Key>, _ out: Collector<Output>) throws {}
    public func close() throws {}
}

/// A function over two connected streams (Flink's `CoProcessFunction`).
public protocol CoProcessFunction<Input1, Input2, Output>: AnyObject, SendableMetatype {
    associatedtype Input1
    associatedtype Input2
    associatedtype Output
    func open(_ context: RuntimeContext) throws
    func processElement1(_ value: Input1, _ ctx: ProcessContext, _ out: Collector<Output>) throws
    func processElement2(_ value: Input2, _ ctx: ProcessContext, _ out: Collector<Output>) throws
    func close() throws
}

extension CoProcessFunction {
    public func open(_ context: RuntimeContext) throws {}
    public func close() throws {}
}

/// A function over two keyed streams sharing keyed state and timers (Flink's `KeyedCoProcessFunction`).
public protocol KeyedCoProcessFunction<Key, Input1, Input2, Output>: AnyObject, SendableMetatype {
    associatedtype Key: StreamKey
    associatedtype Input1
    associatedtype Input2
    associatedtype Output
    func open(_ context: RuntimeContext) throws
    func processElement1(_ value: Input1, _ ctx: KeyedProcessContext<Key>, _ out: Collector<Output>) throws
    func processElement2(_ value: Input2, _ ctx: KeyedProcessContext<Key>, _ out: Collector<Output>) throws
    func onTimer(_ timestamp: Int64, _ ctx: KeyedProcessContext<Key>, _ out: Collector<Output>) throws
    func close() throws
}

extension KeyedCoProcessFunction {
    public func open(_ context: RuntimeContext) throws {}
    public func onTimer(_ timestamp: Int64, _ ctx: KeyedProcessContext<Key>, _ out: Collector<Output>) throws {}
    public func close() throws {}
}
