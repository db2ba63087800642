/// `map`: one output per input, same timestamp.
public final class StreamMap<In, Out>: OneInputStreamOperator {
    public let output: Output<Out>
    @usableFromInline let f: @Sendable (In) throws -> Out

    @inlinable
    public init(_ f: @escaping @Sendable (In) throws -> Out, output: Output<Out>) {
        self.f = f
        self.output = output
    }

    @inlinable
    public func processElement(_ value: In, timestamp: Int64) throws {
        try output.collect(f(value), timestamp: timestamp)
    }
}

/// `filter`: keeps the records the predicate accepts.
public final class StreamFilter<T>: OneInputStreamOperator {
    public let output: Output<T>
    @usableFromInline let predicate: @Sendable (T) throws -> Bool

    @inlinable
    public init(_ predicate: @escaping @Sendable (T) throws -> Bool, output: Output<T>) {
        self.predicate = predicate
        self.output = output
    }

    @inlinable
    public func processElement(_ value: T, timestamp: Int64) throws {
        if try predicate(value) { try output.collect(value, timestamp: timestamp) }
    }
}

/// `flatMap`: any number of outputs per input, each with the input's timestamp.
public final class StreamFlatMap<In, Out>: OneInputStreamOperator {
    public let output: Output<Out>
    @usableFromInline let f: @Sendable (In, Collector<Out>) throws -> Void
    @usableFromInline let collector: Collector<Out>

    @inlinable
    public init(_ f: @escaping @Sendable (In, Collector<Out>) throws -> Void, output: Output<Out>) {
        self.f = f
        self.output = output
        self.collector = Collector(output)
    }

    @inlinable
    public func processElement(_ value: In, timestamp: Int64) throws {
        collector.timestamp = timestamp
        try f(value, collector)
    }
}

/// Runs a `ProcessFunction` (Flink's `ProcessOperator`).
public final class ProcessOperator<F: ProcessFunction>: OneInputStreamOperator {
    public let output: Output<F.Output>
    @usableFromInline let function: F
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let context: ProcessContext
    @usableFromInline let collector: Collector<F.Output>

    @inlinable
    public init(_ function: F, setup: OperatorSetup<F.Output>) {
        self.function = function
        self.output = setup.output
        self.runtime = setup.runtime
        self.context = ProcessContext(output: setup.output, processingTime: setup.runtime.processingTime)
        self.collector = Collector(setup.output)
    }

    public func open() throws { try function.open(runtime) }
    public func close() { try? function.close() }

    @inlinable
    public func processElement(_ value: F.Input, timestamp: Int64) throws {
        context.rawTimestamp = timestamp
        collector.timestamp = timestamp
        try function.processElement(value, context, collector)
    }

    public func processWatermark(_ watermark: Int64) throws {
        context.currentWatermark = watermark
        try output.emitWatermark(watermark)
    }
}

/// Runs a `KeyedProcessFunction` (Flink's `KeyedProcessOperator`): state through the runtime
/// context, timers through `ctx.timerService`.
public final class KeyedProcessOperator<F: KeyedProcessFunction>: OneInputStreamOperator {
    public let output: Output<F.Output>
    @usableFromInline let function: F
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let keyed: KeyedContext<F.Key>
    @usableFromInline let context: KeyedProcessContext<F.Key>
    @usableFromInline let collector: Collector<F.Output>

    /// Inlinable so that the timer service (polled on every watermark) is specialised for the key.
    @inlinable
    public init(_ function: F, setup: KeyedOperatorSetup<F.Key, F.Output>) {
        self.function = function
        self.output = setup.output
        self.runtime = setup.runtime
        self.keyed = setup.keyed
        self.collector = Collector(setup.output)
        let timers = TimerCallbacks()
        self.context = KeyedProcessContext(output: setup.output, keyed: setup.keyed, userTimers: timers)
        timers.handler = { [unowned self] time, domain in try self.fire(time, domain) }
    }

    public func open() throws {
        try function.open(runtime)
    }

    public func close() { try? function.close() }

    @inlinable
    public func processElement(_ value: F.Input, timestamp: Int64) throws {
        let ctx = context
        ctx.rawTimestamp = timestamp
        collector.timestamp = timestamp
        try function.processElement(value, ctx, collector)
    }

    @usableFromInline
    func fire(_ time: Int64, _ domain: TimeDomain) throws {
        let ctx = context
        ctx.rawTimestamp = time
        collector.timestamp = domain == .eventTime ? time : Timestamps.none
        ctx.timeDomain = domain
        defer { ctx.timeDomain = nil }
        try function.onTimer(time, ctx, collector)
    }
}

/// Runs a `CoProcessFunction` (Flink's `CoProcessOperator`).
public final class CoProcessOperator<F: CoProcessFunction>: TwoInputStreamOperator {
    public let output: Output<F.Output>
    @usableFromInline let function: F
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let context: ProcessContext
    @usableFromInline let collector: Collector<F.Output>

    @inlinable
    public init(_ function: F, setup: OperatorSetup<F.Output>) {
        self.function = function
        self.output = setup.output
        self.runtime = setup.runtime
        self.context = ProcessContext(output: setup.output, processingTime: setup.runtime.processingTime)
        self.collector = Collector(setup.output)
    }

    public func open() throws { try function.open(runtime) }
    public func close() { try? function.close() }

    @inlinable
    public func processElement1(_ value: F.Input1, timestamp: Int64) throws {
        context.rawTimestamp = timestamp
        collector.timestamp = timestamp
        try function.processElement1(value, context, collector)
    }

    @inlinable
    public func processElement2(_ value: F.Input2, timestamp: Int64) throws {
        context.rawTimestamp = timestamp
        collector.timestamp = timestamp
        try function.processElement2(value, context, collector)
    }

    public func processWatermark(_ watermark: Int64) throws {
        context.currentWatermark = watermark
        try output.emitWatermark(watermark)
    }
}

/// Runs a `KeyedCoProcessFunction` (Flink's `KeyedCoProcessOperator`).
public final class KeyedCoProcessOperator<F: KeyedCoProcessFunction>: TwoInputStreamOperator {
    public let output: Output<F.Output>
    @usableFromInline let function: F
    @usableFromInline let runtime: RuntimeContext
    @usableFromInline let keyed: KeyedContext<F.Key>
    @usableFromInline let context: KeyedProcessContext<F.Key>
    @usableFromInline let collector: Collector<F.Output>

    /// Inlinable so that the timer service (polled on every watermark) is specialised for the key.
    @inlinable
    public init(_ function: F, setup: KeyedOperatorSetup<F.Key, F.Output>) {
        self.function = function
        self.output = setup.output
        self.runtime = setup.runtime
        self.keyed = setup.keyed
        self.collector = Collector(setup.output)
        let timers = TimerCallbacks()
        self.context = KeyedProcessContext(output: setup.output, keyed: setup.keyed, userTimers: timers)
        timers.handler = { [unowned self] time, domain in try self.fire(time, domain) }
    }

    public func open() throws {
        try function.open(runtime)
    }

    public func close() { try? function.close() }

    @inlinable
    public func processElement1(_ value: F.Input1, timestamp: Int64) throws {
        let ctx = context
        ctx.rawTimestamp = timestamp
        collector.timestamp = timestamp
        try function.processElement1(value, ctx, collector)
    }

    @inlinable
    public func processElement2(_ value: F.Input2, timestamp: Int64) throws {
        let ctx = context
        ctx.rawTimestamp = timestamp
        collector.timestamp = timestamp
        try function.processElement2(value, ctx, collector)
    }

    @usableFromInline
    func fire(_ time: Int64, _ domain: TimeDomain) throws {
        let ctx = context
        ctx.rawTimestamp = time
        collector.timestamp = domain == .eventTime ? time : Timestamps.none
        ctx.timeDomain = domain
        defer { ctx.timeDomain = nil }
        try function.onTimer(time, ctx, collector)
    }
}

/// Assigns timestamps and generates watermarks in the middle of a pipeline (Flink's
/// `TimestampsAndWatermarksOperator`): upstream watermarks are dropped except the final +∞.
public final class TimestampsAndWatermarksOperator<T>: OneInputStreamOperator {
    public let output: Output<T>
    @usableFromInline let generator: any WatermarkGenerator<T>
    @usableFromInline let assigner: WatermarkStrategy<T>.TimestampAssigner?
    @usableFromInline let watermarkOutput: DirectWatermarkOutput
    @usableFromInline let interval: Int64
    let processingTime: ProcessingTimeService

    public init(strategy: WatermarkStrategy<T>, autoWatermarkIntervalMillis: Int64, setup: OperatorSetup<T>) {
        self.output = setup.output
        self.processingTime = setup.runtime.processingTime
        self.generator = strategy.createGenerator(clock: processingTime.clock)
        self.assigner = strategy.timestampAssigner
        self.interval = autoWatermarkIntervalMillis
        self.watermarkOutput = DirectWatermarkOutput(setup.output)
    }

    public func open() throws {
        if interval > 0 { schedule(processingTime.currentProcessingTime() + interval) }
    }

    private func schedule(_ at: Int64) {
        processingTime.registerTimer(at: at) { [unowned self] now in
            self.generator.onPeriodicEmit(output: self.watermarkOutput)
            try self.watermarkOutput.rethrow()
            self.schedule(max(now, self.processingTime.currentProcessingTime()) + self.interval)
        }
    }

    @inlinable
    public func processElement(_ value: T, timestamp: Int64) throws {
        let ts = assigner?(value, timestamp) ?? timestamp
        try output.collect(value, timestamp: ts)
        generator.onEvent(value, timestamp: ts, output: watermarkOutput)
        if interval == 0 { generator.onPeriodicEmit(output: watermarkOutput) }
        try watermarkOutput.rethrow()
    }

    public func processWatermark(_ watermark: Int64) throws {
        if watermark == Timestamps.maxWatermark { try output.emitWatermark(watermark) }
    }

    public func processWatermarkStatus(_ status: WatermarkStatus) throws {}

    public func endInput() throws {
        generator.onPeriodicEmit(output: watermarkOutput)
        try watermarkOutput.rethrow()
    }
}

/// A `WatermarkOutput` that forwards straight to an operator output, keeping watermarks
/// non-decreasing and remembering a failure so the caller can rethrow it.
public final class DirectWatermarkOutput: WatermarkOutput {
    let output: AnyOutput
    @exclusivity(unchecked) var last: Int64 = Int64.min
    @exclusivity(unchecked) var idle = false
    @exclusivity(unchecked) @usableFromInline var failure: Error?

    public init(_ output: AnyOutput) { self.output = output }

    public func emitWatermark(_ watermark: Int64) {
        guard failure == nil else { return }
        do {
            if idle { idle = false; try output.emitWatermarkStatus(.active) }
            if watermark > last { last = watermark; try output.emitWatermark(watermark) }
        } catch { failure = error }
    }

    public func markIdle() {
        guard failure == nil, !idle else { return }
        idle = true
        do { try output.emitWatermarkStatus(.idle) } catch { failure = error }
    }

    public func markActive() {
        guard failure == nil, idle else { return }
        idle = false
        do { try output.emitWatermarkStatus(.active) } catch { failure = error }
    }

    @inlinable
    public func rethrow() throws {
        if let f = failure { failure = nil; throw f }
    }
}

/// Lets a keyed operator register timer callbacks before `self` is fully initialised.
@usableFromInline
final class TimerCallbacks {
    @usableFromInline var handler: (Int64, TimeDomain) throws -> Void = { _, _ in }
    @usableFromInline init() {}
    @usableFromInline func fire(_ time: Int64, _ domain: TimeDomain) throws { try handler(time, domain) }
}
