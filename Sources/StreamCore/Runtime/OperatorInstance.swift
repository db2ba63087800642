/// A user function or operator threw: the job fails with this error, which names the operator,
/// the subtask and (on keyed streams) the key.
public struct JobExecutionError: Error, CustomStringConvertible {
    public let operatorName: String
    public let subtaskIndex: Int
    public let parallelism: Int
    /// The current key, described, when the operator is keyed.
    public let key: String?
    public let underlying: any Error

    public var description: String {
        var s = "operator '\(operatorName)' (subtask \(subtaskIndex + 1) of \(parallelism)) failed"
        if let key { s += " on key \(key)" }
        return s + ": \(underlying)"
    }
}

/// Leftover state and timers of an operator instance: after the final watermark a well-behaved
/// operator has none.
public struct Leftover: Sendable, Equatable {
    public var stateEntries: [String: Int] = [:]
    public var eventTimeTimers = 0
    public var processingTimeTimers = 0
    public var isEmpty: Bool { stateEntries.isEmpty && eventTimeTimers == 0 && processingTimeTimers == 0 }
    public init() {}
}

@usableFromInline
func wrapFailure(_ error: any Error, _ metrics: OperatorMetrics, key: String?) -> any Error {
    if error is JobExecutionError || error is TaskCancelled { return error }
    return JobExecutionError(operatorName: metrics.operatorName, subtaskIndex: metrics.subtaskIndex,
                             parallelism: metrics.parallelism, key: key, underlying: error)
}

@usableFromInline
func describeKey<K>(_ key: K?) -> String? {
    guard let key else { return nil }
    if let s = key as? String { return "\"\(s)\"" }
    return "\(key)"
}

/// One running operator: its typed input entry points (as outputs of the upstream) and lifecycle.
/// Built by the runtime on the task's thread, or by a test harness.
public final class OperatorInstance {
    /// Input 1 (and 2) as `Output<In>` objects upstream operators or gates push into.
    public let inputs: [AnyOutput]
    public let metrics: OperatorMetrics
    @usableFromInline let openFn: () throws -> Void
    @usableFromInline let endInputFn: (Int) throws -> Void
    @usableFromInline let finishFn: () throws -> Void
    @usableFromInline let closeFn: () -> Void
    @usableFromInline let leftoverFn: () -> Leftover

    @usableFromInline
    init(inputs: [AnyOutput], metrics: OperatorMetrics, open: @escaping () throws -> Void,
         endInput: @escaping (Int) throws -> Void, finish: @escaping () throws -> Void,
         close: @escaping () -> Void, leftover: @escaping () -> Leftover) {
        self.inputs = inputs
        self.metrics = metrics
        self.openFn = open
        self.endInputFn = endInput
        self.finishFn = finish
        self.closeFn = close
        self.leftoverFn = leftover
    }

    public func open() throws {
        do { try openFn() } catch { throw wrapFailure(error, metrics, key: nil) }
    }
    public func endInput(_ input: Int) throws {
        do { try endInputFn(input) } catch { throw wrapFailure(error, metrics, key: nil) }
    }
    public func finish() throws {
        do { try finishFn() } catch { throw wrapFailure(error, metrics, key: nil) }
    }
    public func close() { closeFn() }
    public var leftover: Leftover { leftoverFn() }

    // MARK: checkpoints (cold paths: set by the factories that know the operator's state)

    /// Copies the operator's keyed state and timers (on the task thread) and returns how to encode
    /// them by key group (later, on another thread).
    public var captureKeyedState: ((CheckpointId) throws -> () throws -> KeyedStateSnapshot)?
    /// The operator's non-keyed state (a sink writer's transactions) at barrier `id`.
    public var snapshotOperatorState: ((CheckpointId) throws -> [UInt8]?)?
    /// The task ran out of input for now (a sink sends what it buffers).
    public var flushIdle: (() throws -> Void)?
    /// A buffer timeout passed while the task is busy (a sink moves what it buffers along, not waiting).
    public var flushBusy: (() throws -> Void)?
    /// Checkpoint `id` completed.
    public var notifyCheckpointComplete: ((CheckpointId) throws -> Void)?

    /// This subtask's state for checkpoint `id`; keyed state still to be encoded.
    func snapshot(_ id: CheckpointId, operatorId: String) throws -> PendingSubtaskState {
        var state = OperatorSubtaskState(operatorId: operatorId, subtask: metrics.subtaskIndex, parallelism: metrics.parallelism)
        var keyed: (() throws -> KeyedStateSnapshot)?
        do {
            if let f = captureKeyedState { keyed = try f(id) }
            if let f = snapshotOperatorState { state.operatorState = try f(id) }
        } catch { throw wrapFailure(error, metrics, key: nil) }
        return PendingSubtaskState(state: state, encodeKeyed: keyed)
    }

    func checkpointComplete(_ id: CheckpointId) throws {
        guard let f = notifyCheckpointComplete else { return }
        do { try f(id) } catch { throw wrapFailure(error, metrics, key: nil) }
    }

    /// A non-keyed one-input operator.
    @inlinable
    public static func oneInput<Op: OneInputStreamOperator>(_ op: Op, metrics: OperatorMetrics) -> OperatorInstance {
        let input = Output<Op.In>(
            record: { v, ts in
                metrics.recordsIn &+= 1
                do { try op.processElement(v, timestamp: ts) } catch { throw wrapFailure(error, metrics, key: nil) }
            },
            watermark: { wm in
                metrics.inputWatermark = wm
                do { try op.processWatermark(wm) } catch { throw wrapFailure(error, metrics, key: nil) }
            },
            status: { s in try op.processWatermarkStatus(s) })
        return OperatorInstance(
            inputs: [input], metrics: metrics, open: { try op.open() },
            endInput: { _ in try op.endInput() }, finish: { try op.finish() }, close: { op.close() },
            leftover: { Leftover() })
    }

    /// A keyed one-input operator: sets the current key from each record, fires due timers before
    /// passing a watermark on.
    @inlinable
    public static func keyedOneInput<K: StreamKey, Op: OneInputStreamOperator>(
        _ op: Op, keyed: KeyedContext<K>, key selector: @escaping @Sendable (Op.In) -> K,
        metrics: OperatorMetrics
    ) -> OperatorInstance {
        let backend = keyed.backend
        let entry = KeyedRecordEntry(op, backend: backend, selector: selector, metrics: metrics)
        let input = Output<Op.In>(
            record: { v, ts in try entry.process(v, timestamp: ts) },
            watermark: { wm in
                metrics.inputWatermark = wm
                do {
                    try keyed.advanceWatermark(wm)
                    try op.processWatermark(wm)
                } catch { throw wrapFailure(error, metrics, key: describeKey(backend.currentKey)) }
            },
            status: { s in try op.processWatermarkStatus(s) })
        let instance = OperatorInstance(
            inputs: [input], metrics: metrics, open: { try op.open() },
            endInput: { _ in try op.endInput() }, finish: { try op.finish() },
            close: { op.close(); keyed.backend.dispose() },
            leftover: { keyed.leftover })
        instance.captureKeyedState = { try keyed.captureKeyedState($0) }
        return instance
    }

    /// A two-input operator, optionally keyed (both selectors given).
    @inlinable
    public static func twoInput<K: StreamKey, Op: TwoInputStreamOperator>(
        _ op: Op, keyed: KeyedContext<K>?,
        key1: (@Sendable (Op.In1) -> K)?, key2: (@Sendable (Op.In2) -> K)?,
        metrics: OperatorMetrics
    ) -> OperatorInstance {
        var combiner = TwoInputWatermarkCombiner()
        let backend = keyed?.backend
        func keyDescription() -> String? { describeKey(backend?.currentKey) }
        func perform(_ actions: [StatusWatermarkValve.Action]) throws {
            for action in actions {
                do {
                    switch action {
                    case .emitWatermark(let wm):
                        metrics.inputWatermark = wm
                        try keyed?.advanceWatermark(wm)
                        try op.processWatermark(wm)
                    case .emitStatus(let st):
                        try op.processWatermarkStatus(st)
                    }
                } catch { throw wrapFailure(error, metrics, key: keyDescription()) }
            }
        }
        func onWatermark(_ wm: Int64, _ input: Int) throws { try perform(combiner.watermark(wm, input: input)) }
        func onStatus(_ s: WatermarkStatus, _ input: Int) throws { try perform(combiner.status(s, input: input)) }
        let input1 = Output<Op.In1>(
            record: { v, ts in
                metrics.recordsIn &+= 1
                if let backend, let key1 { backend.setCurrentKey(key1(v)) }
                do { try op.processElement1(v, timestamp: ts) } catch { throw wrapFailure(error, metrics, key: keyDescription()) }
            },
            watermark: { try onWatermark($0, 1) },
            status: { try onStatus($0, 1) })
        let input2 = Output<Op.In2>(
            record: { v, ts in
                metrics.recordsIn &+= 1
                if let backend, let key2 { backend.setCurrentKey(key2(v)) }
                do { try op.processElement2(v, timestamp: ts) } catch { throw wrapFailure(error, metrics, key: keyDescription()) }
            },
            watermark: { try onWatermark($0, 2) },
            status: { try onStatus($0, 2) })
        let instance = OperatorInstance(
            inputs: [input1, input2], metrics: metrics, open: { try op.open() },
            endInput: { try op.endInput($0) }, finish: { try op.finish() },
            close: { op.close(); keyed?.backend.dispose() },
            leftover: { keyed?.leftover ?? Leftover() })
        if let keyed { instance.captureKeyedState = { try keyed.captureKeyedState($0) } }
        return instance
    }
}

/// What a keyed one-input operator does with each record, in one object: the per-record closure
/// then captures one reference instead of four (its partial-apply forwarder passed all of them,
/// 17 instructions per record).
@usableFromInline
final class KeyedRecordEntry<K: StreamKey, Op: OneInputStreamOperator> {
    @usableFromInline let op: Op
    @usableFromInline let backend: KeyedStateBackend<K>
    @usableFromInline let selector: @Sendable (Op.In) -> K
    @usableFromInline let metrics: OperatorMetrics

    @inlinable
    init(_ op: Op, backend: KeyedStateBackend<K>, selector: @escaping @Sendable (Op.In) -> K, metrics: OperatorMetrics) {
        self.op = op
        self.backend = backend
        self.selector = selector
        self.metrics = metrics
    }

    @inlinable @inline(__always)
    func process(_ v: Op.In, timestamp ts: Int64) throws {
        metrics.recordsIn &+= 1
        backend.setCurrentKey(selector(v))
        do {
            try op.processElement(v, timestamp: ts)
            if _slowPath(backend.rocks != nil), let failure = backend.rocks!.failure { throw failure }
        } catch {
            throw wrapFailure(error, metrics, key: describeKey(backend.currentKey))
        }
    }
}

extension KeyedContext {
    /// State entries and timers still held.
    public var leftover: Leftover {
        var l = Leftover()
        l.stateEntries = backend.entryCounts
        let t = pendingTimers
        l.eventTimeTimers = t.eventTime
        l.processingTimeTimers = t.processingTime
        return l
    }
}

/// An operator subtask's state as a task acknowledges it: everything but the keyed state is final;
/// the keyed state was copied and is encoded when the checkpoint is stored, off the task thread.
struct PendingSubtaskState {
    var state: OperatorSubtaskState
    var encodeKeyed: (() throws -> KeyedStateSnapshot)?

    func materialize() throws -> OperatorSubtaskState {
        var s = state
        if let encodeKeyed {
            let keyed = try encodeKeyed()
            s.keyedState = keyed.keyGroups
            s.rocksDB = keyed.rocksDB
        }
        return s
    }
}
