import StreamCore

/// The shared machinery of the operator test harnesses (in the spirit of Flink's
/// `AbstractStreamOperatorTestHarness`): a manual processing-time clock, one ordered output log, and
/// the operator instance wired exactly as the runtime wires it.
public class OperatorHarnessBase<Out> {
    public let clock: ManualClock
    public let processingTime: ProcessingTimeService
    public let metrics: OperatorMetrics
    /// Everything emitted, in order.
    public private(set) var log: [HarnessEvent<Out>] = []
    let output: Output<Out>
    var instance: OperatorInstance!
    private var opened = false
    private var finished = false

    init(operatorName: String, clock: ManualClock, processingTime: ProcessingTimeService) {
        self.clock = clock
        self.processingTime = processingTime
        metrics = OperatorMetrics(operatorName: operatorName, subtaskIndex: 0, parallelism: 1)
        var sink: ((HarnessEvent<Out>) -> Void)?
        output = Output<Out>(
            record: { v, ts in sink?(.record(v, timestamp: ts == Timestamps.none ? nil : ts)) },
            watermark: { sink?(.watermark($0)) },
            status: { sink?(.status($0)) })
        sink = { [unowned self] in self.log.append($0) }
    }

    func install(_ instance: OperatorInstance) { self.instance = instance }

    /// Records side outputs of `tag` in the log; call before feeding input.
    @discardableResult
    public func captureSideOutput<S>(_ tag: OutputTag<S>) -> Self {
        let side = Output<S>(
            record: { [unowned self] v, ts in self.log.append(.sideOutput(tag.id, v, timestamp: ts == Timestamps.none ? nil : ts)) },
            watermark: { _ in })
        output.registerSideOutput(tag.id, side)
        return self
    }

    /// Opens the operator (done automatically before the first input).
    public func open() throws {
        guard !opened else { return }
        opened = true
        try instance.open()
    }

    func openIfNeeded() throws { if !opened { try open() } }

    /// Moves processing time to `time` and fires every processing-time timer and callback due.
    public func setProcessingTime(_ time: Int64) throws {
        try openIfNeeded()
        clock.set(time)
        try processingTime.fireDue(now: clock.currentTimeMillis())
    }

    /// Ends the input and finishes the operator; returns the state and timers still held (after a
    /// final watermark a well-behaved operator holds none).
    @discardableResult
    public func finish() throws -> Leftover {
        try openIfNeeded()
        if !finished {
            finished = true
            for i in 1...instance.inputs.count { try instance.endInput(i) }
            try instance.finish()
        }
        return instance.leftover
    }

    /// Releases the operator.
    public func close() { instance?.close() }

    /// State entries and pending timers right now.
    public var leftover: Leftover { instance.leftover }

    /// Returns the log and starts a new one (Flink's `extractOutputValues` keeps only records).
    public func extractLog() -> [HarnessEvent<Out>] {
        defer { log.removeAll() }
        return log
    }

    /// The records emitted so far, in order.
    public var records: [Out] {
        log.compactMap { if case .record(let v, _) = $0 { return v } else { return nil } }
    }

    /// The records emitted so far with their timestamps.
    public var recordsWithTimestamps: [(Out, Int64?)] {
        log.compactMap { if case .record(let v, let ts) = $0 { return (v, ts) } else { return nil } }
    }

    /// The watermarks emitted so far.
    public var watermarks: [Int64] {
        log.compactMap { if case .watermark(let w) = $0 { return w } else { return nil } }
    }

    /// The side-output records of `tag` so far.
    public func sideOutput<S>(_ tag: OutputTag<S>) -> [S] {
        log.compactMap {
            if case .sideOutput(let id, let v, _) = $0, id == tag.id { return v as? S } else { return nil }
        }
    }

    func push<T>(_ input: Int, _ value: T, _ timestamp: Int64?) throws {
        try openIfNeeded()
        let target = instance.inputs[input - 1] as! Output<T>
        try target.collect(value, timestamp: timestamp ?? Timestamps.none)
    }

    func pushWatermark(_ input: Int, _ watermark: Int64) throws {
        try openIfNeeded()
        try instance.inputs[input - 1].emitWatermark(watermark)
    }

    func pushStatus(_ input: Int, _ status: WatermarkStatus) throws {
        try openIfNeeded()
        try instance.inputs[input - 1].emitWatermarkStatus(status)
    }

    func runtimeContext(keyed store: KeyedStateStore?) -> RuntimeContext {
        RuntimeContext(operatorName: metrics.operatorName, subtaskIndex: 0, parallelism: 1,
                       maxParallelism: KeyGroupRangeAssignment.defaultMaxParallelism,
                       processingTime: processingTime, metrics: metrics, keyedStateStore: store)
    }
}

/// Drives a one-input operator by hand (Flink's `OneInputStreamOperatorTestHarness`).
public final class OneInputOperatorHarness<Op: OneInputStreamOperator>: OperatorHarnessBase<Op.Out> {
    public private(set) var op: Op!

    public init(name: String = "operator", startTime: Int64 = 0,
                _ factory: (OperatorSetup<Op.Out>) throws -> Op) rethrows {
        let clock = ManualClock(startTime)
        super.init(operatorName: name, clock: clock, processingTime: ProcessingTimeService(clock: clock))
        let op = try factory(OperatorSetup(output: output, runtime: runtimeContext(keyed: nil)))
        self.op = op
        install(OperatorInstance.oneInput(op, metrics: metrics))
    }

    /// Feeds a record; `timestamp` nil means the record has none.
    public func processElement(_ value: Op.In, timestamp: Int64? = nil) throws { try push(1, value, timestamp) }
    public func processWatermark(_ watermark: Int64) throws { try pushWatermark(1, watermark) }
    public func processWatermarkStatus(_ status: WatermarkStatus) throws { try pushStatus(1, status) }
}

/// The state backend keyed harnesses create (a test class that runs its tests on RocksDB sets it
/// in `setUp` and resets it in `tearDown`; tests run one at a time).
public enum HarnessStateBackend {
    nonisolated(unsafe) public static var current: StateBackendKind = .heap

    public static func make<K: StreamKey>(_ key: K.Type, clock: any ProcessingTimeClock) -> KeyedStateBackend<K> {
        switch current {
        case .heap: return KeyedStateBackend<K>(clock: clock)
        case .rocksDB(let options):
            do { return try KeyedStateBackend<K>(clock: clock, rocksDB: options, name: "harness") } catch {
                fatalError("harness: cannot create the RocksDB state backend in \(options.directory): \(error)")
            }
        }
    }
}

/// Drives a keyed one-input operator by hand (Flink's `KeyedOneInputStreamOperatorTestHarness`):
/// the current key is set from each record, timers fire on watermarks and processing time.
public final class KeyedOneInputOperatorHarness<K: StreamKey, Op: OneInputStreamOperator>: OperatorHarnessBase<Op.Out> {
    public private(set) var op: Op!
    public let keyed: KeyedContext<K>

    public init(name: String = "operator", startTime: Int64 = 0,
                key: @escaping @Sendable (Op.In) -> K,
                _ factory: (KeyedOperatorSetup<K, Op.Out>) throws -> Op) rethrows {
        let clock = ManualClock(startTime)
        let processingTime = ProcessingTimeService(clock: clock)
        keyed = KeyedContext(backend: HarnessStateBackend.make(K.self, clock: clock), processingTime: processingTime)
        super.init(operatorName: name, clock: clock, processingTime: processingTime)
        let op = try factory(KeyedOperatorSetup(output: output, runtime: runtimeContext(keyed: keyed.backend), keyed: keyed))
        self.op = op
        install(OperatorInstance.keyedOneInput(op, keyed: keyed, key: key, metrics: metrics))
    }

    public func processElement(_ value: Op.In, timestamp: Int64? = nil) throws { try push(1, value, timestamp) }
    public func processWatermark(_ watermark: Int64) throws { try pushWatermark(1, watermark) }
    public func processWatermarkStatus(_ status: WatermarkStatus) throws { try pushStatus(1, status) }

    /// Keys that hold state.
    public var keysWithState: [K] { keyed.backend.keys }
    /// Event-time timers pending.
    public var numEventTimeTimers: Int { keyed.pendingTimers.eventTime }
    /// Processing-time timers pending.
    public var numProcessingTimeTimers: Int { keyed.pendingTimers.processingTime }
}

/// Drives a two-input operator by hand (Flink's `TwoInputStreamOperatorTestHarness`); keyed when
/// both key selectors are given.
public final class TwoInputOperatorHarness<K: StreamKey, Op: TwoInputStreamOperator>: OperatorHarnessBase<Op.Out> {
    public private(set) var op: Op!
    public let keyed: KeyedContext<K>?

    /// A keyed two-input operator.
    public init(name: String = "operator", startTime: Int64 = 0,
                key1: @escaping @Sendable (Op.In1) -> K, key2: @escaping @Sendable (Op.In2) -> K,
                _ factory: (KeyedOperatorSetup<K, Op.Out>) throws -> Op) rethrows {
        let clock = ManualClock(startTime)
        let processingTime = ProcessingTimeService(clock: clock)
        let keyed = KeyedContext(backend: HarnessStateBackend.make(K.self, clock: clock), processingTime: processingTime)
        self.keyed = keyed
        super.init(operatorName: name, clock: clock, processingTime: processingTime)
        let op = try factory(KeyedOperatorSetup(output: output, runtime: runtimeContext(keyed: keyed.backend), keyed: keyed))
        self.op = op
        install(OperatorInstance.twoInput(op, keyed: keyed, key1: key1, key2: key2, metrics: metrics))
    }

    /// A non-keyed two-input operator.
    public init(name: String = "operator", startTime: Int64 = 0,
                _ factory: (OperatorSetup<Op.Out>) throws -> Op) rethrows where K == Int {
        let clock = ManualClock(startTime)
        self.keyed = nil
        super.init(operatorName: name, clock: clock, processingTime: ProcessingTimeService(clock: clock))
        let op = try factory(OperatorSetup(output: output, runtime: runtimeContext(keyed: nil)))
        self.op = op
        install(OperatorInstance.twoInput(op, keyed: KeyedContext<Int>?.none, key1: nil, key2: nil, metrics: metrics))
    }

    public func processElement1(_ value: Op.In1, timestamp: Int64? = nil) throws { try push(1, value, timestamp) }
    public func processElement2(_ value: Op.In2, timestamp: Int64? = nil) throws { try push(2, value, timestamp) }
    public func processWatermark1(_ watermark: Int64) throws { try pushWatermark(1, watermark) }
    public func processWatermark2(_ watermark: Int64) throws { try pushWatermark(2, watermark) }
    /// The same watermark on both inputs.
    public func processBothWatermarks(_ watermark: Int64) throws {
        try pushWatermark(1, watermark)
        try pushWatermark(2, watermark)
    }
    public func processWatermarkStatus1(_ status: WatermarkStatus) throws { try pushStatus(1, status) }
    public func processWatermarkStatus2(_ status: WatermarkStatus) throws { try pushStatus(2, status) }
}

/// Harnesses for user functions (Flink's `ProcessFunctionTestHarnesses`).
public enum ProcessFunctionHarnesses {
    public static func forProcessFunction<F: ProcessFunction>(_ function: F) -> OneInputOperatorHarness<ProcessOperator<F>> {
        OneInputOperatorHarness { ProcessOperator(function, setup: $0) }
    }

    public static func forKeyedProcessFunction<F: KeyedProcessFunction>(
        _ function: F, key: @escaping @Sendable (F.Input) -> F.Key
    ) -> KeyedOneInputOperatorHarness<F.Key, KeyedProcessOperator<F>> {
        KeyedOneInputOperatorHarness(key: key) { KeyedProcessOperator(function, setup: $0) }
    }

    public static func forCoProcessFunction<F: CoProcessFunction>(_ function: F) -> TwoInputOperatorHarness<Int, CoProcessOperator<F>> {
        TwoInputOperatorHarness { CoProcessOperator(function, setup: $0) }
    }

    public static func forKeyedCoProcessFunction<F: KeyedCoProcessFunction>(
        _ function: F, key1: @escaping @Sendable (F.Input1) -> F.Key, key2: @escaping @Sendable (F.Input2) -> F.Key
    ) -> TwoInputOperatorHarness<F.Key, KeyedCoProcessOperator<F>> {
        TwoInputOperatorHarness(key1: key1, key2: key2) { KeyedCoProcessOperator(function, setup: $0) }
    }
}
