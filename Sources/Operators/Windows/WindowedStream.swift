import StreamCore

extension KeyedStream where T: SendableMetatype {
    /// Groups each key's records into windows (Flink's `KeyedStream.window`).
    public func window(_ assigner: WindowAssigner) -> WindowedStream<T, K> {
        WindowedStream(keyed: self, assigner: assigner)
    }

    /// The last `size` records of each key: fires every `slide` records (every `size` when `slide` is
    /// nil, purging) with an aggregate over the last `size` (Flink's `countWindow`). Results carry
    /// timestamp `Int64.max`, as Flink's global window does.
    public func countWindow(_ size: Int, _ slide: Int? = nil) -> CountWindowedStream<T, K> {
        precondition(size > 0 && (slide ?? 1) > 0, "count window size and slide must be positive")
        return CountWindowedStream(keyed: self, size: size, slide: slide)
    }
}

/// A keyed stream grouped into time windows (Flink's `WindowedStream`).
public struct WindowedStream<T: SendableMetatype, K: StreamKey> {
    public let keyed: KeyedStream<T, K>
    public let assigner: WindowAssigner
    public private(set) var lateness: Duration = .zero
    public private(set) var lateDataTag: OutputTag<T>?

    init(keyed: KeyedStream<T, K>, assigner: WindowAssigner) {
        self.keyed = keyed
        self.assigner = assigner
    }

    /// Keeps windows for `lateness` after they fire; late-but-allowed records re-fire them.
    public func allowedLateness(_ lateness: Duration) -> WindowedStream {
        var copy = self
        copy.lateness = lateness
        return copy
    }

    /// Records late for all their windows go to `tag` instead of being dropped; read them with
    /// `getSideOutput(tag)` on the result.
    public func sideOutputLateData(_ tag: OutputTag<T>) -> WindowedStream {
        var copy = self
        copy.lateDataTag = tag
        return copy
    }

    /// Runs a window operator with the given fold and emit logic.
    @inlinable
    public func apply<ACC: Codable & SendableMetatype, OUT>(name: String, _ makeLogic: @escaping @Sendable () -> WindowLogic<K, T, ACC, OUT>) -> DataStream<OUT> {
        let assigner = self.assigner, lateness = self.lateness, tag = self.lateDataTag
        return keyed.transform(name) { setup in
            try WindowOperator(assigner: assigner, allowedLateness: lateness, lateDataTag: tag, logic: makeLogic(), setup: setup)
        }
    }

    /// Runs mergeable logic: sliced for sliding event-time windows (a record updates one slice),
    /// the general window operator otherwise.
    @inlinable
    public func applyMergeable<ACC: Codable & SendableMetatype, OUT>(name: String, _ makeLogic: @escaping @Sendable () -> WindowLogic<K, T, ACC, OUT>) -> DataStream<OUT> {
        guard case .sliding(let size, let slide, let offset) = assigner.kind, assigner.isEventTime, size % slide == 0 else {
            return apply(name: name, makeLogic)
        }
        let lateness = self.lateness, tag = self.lateDataTag
        return keyed.transform(name) { setup in
            try SlicingWindowOperator(size: .milliseconds(size), slide: .milliseconds(slide), offset: .milliseconds(offset),
                                      allowedLateness: lateness, lateDataTag: tag, logic: makeLogic(), setup: setup)
        }
    }

    /// Incremental aggregation; one result per window firing (Flink's `aggregate`).
    @inlinable
    public func aggregate<F: AggregateFunction>(_ function: F, name: String = "Window") -> DataStream<F.Result>
    where F.Input == T, F.Accumulator: Codable & SendableMetatype {
        applyMergeable(name: name) {
            WindowLogic(add: { acc, v in
                var a = acc ?? function.createAccumulator()
                function.add(v, to: &a)
                return a
            }, merge: function.merge, emit: { _, _, acc, out in try out.collect(function.getResult(acc)) })
        }
    }

    /// Incremental aggregation whose result a `ProcessWindowFunction` sees with the window.
    @inlinable
    public func aggregate<F: AggregateFunction, W: ProcessWindowFunction>(
        _ function: F, _ windowFunction: @autoclosure @escaping @Sendable () -> W, name: String = "Window"
    ) -> DataStream<W.Output> where F.Input == T, F.Accumulator: Codable & SendableMetatype, W.Input == F.Result, W.Key == K {
        applyMergeable(name: name) {
            let wf = windowFunction()
            return WindowLogic(add: { acc, v in
                var a = acc ?? function.createAccumulator()
                function.add(v, to: &a)
                return a
            }, merge: function.merge, emit: { key, ctx, acc, out in
                try wf.process(key, ctx, [function.getResult(acc)], out)
            }, open: { try wf.open($0) }, close: { try? wf.close() })
        }
    }

    /// Pairwise reduction (Flink's `reduce`).
    @inlinable
    public func reduce(name: String = "Window", _ f: @escaping @Sendable (T, T) -> T) -> DataStream<T> where T: Codable {
        applyMergeable(name: name) {
            WindowLogic(add: { acc, v in acc.map { f($0, v) } ?? v }, merge: f,
                        emit: { _, _, acc, out in try out.collect(acc) })
        }
    }

    /// All elements of the window at once (Flink's `process`).
    @inlinable
    public func process<W: ProcessWindowFunction>(name: String = "Window", _ windowFunction: @autoclosure @escaping @Sendable () -> W) -> DataStream<W.Output>
    where W.Input == T, W.Key == K, T: Codable {
        apply(name: name) {
            let wf = windowFunction()
            return WindowLogic(add: { acc, v in (acc ?? []) + [v] }, merge: { $0 + $1 },
                               emit: { key, ctx, elements, out in try wf.process(key, ctx, elements, out) },
                               open: { try wf.open($0) }, close: { try? wf.close() })
        }
    }
}

/// A keyed stream grouped into count windows.
public struct CountWindowedStream<T: SendableMetatype, K: StreamKey> {
    public let keyed: KeyedStream<T, K>
    public let size: Int
    public let slide: Int?

    /// Aggregates over the window's records each time it fires.
    @inlinable
    public func aggregate<F: AggregateFunction>(_ function: F, name: String = "CountWindow") -> DataStream<F.Result>
    where F.Input == T, T: Codable {
        let size = self.size, slide = self.slide
        return keyed.transform(name) { setup in
            try CountWindowOperator<K, T, F.Result>(size: size, slide: slide, setup: setup) { elements in
                var acc = function.createAccumulator()
                for e in elements { function.add(e, to: &acc) }
                return function.getResult(acc)
            }
        }
    }

    @inlinable
    public func reduce(name: String = "CountWindow", _ f: @escaping @Sendable (T, T) -> T) -> DataStream<T> where T: Codable {
        let size = self.size, slide = self.slide
        return keyed.transform(name) { setup in
            try CountWindowOperator<K, T, T>(size: size, slide: slide, setup: setup) { elements in
                elements.dropFirst().reduce(elements[0], f)
            }
        }
    }
}

/// Flink's `countWindow(size)` (global window, purging count trigger) and `countWindow(size, slide)`
/// (global window, count trigger every `slide`, count evictor keeping the last `size`).
public final class CountWindowOperator<K: StreamKey, IN: Codable, OUT>: OneInputStreamOperator {
    public let output: Output<OUT>
    let size: Int
    let slide: Int?
    let evaluate: ([IN]) -> OUT
    let elements: ListState<IN>
    let sinceFire: ValueState<Int>

    public init(size: Int, slide: Int?, setup: KeyedOperatorSetup<K, OUT>, evaluate: @escaping ([IN]) -> OUT) throws {
        self.output = setup.output
        self.size = size
        self.slide = slide
        self.evaluate = evaluate
        self.elements = try setup.runtime.getListState(ListStateDescriptor<IN>("count-window-elements"))
        self.sinceFire = try setup.runtime.getState(ValueStateDescriptor<Int>("count-window-since-fire"))
    }

    public func processElement(_ value: IN, timestamp: Int64) throws {
        elements.add(value)
        let count = (sinceFire.value() ?? 0) + 1
        guard let slide else {
            // Tumbling: fire and purge every `size` records.
            if count >= size {
                try output.collect(evaluate(elements.get()), timestamp: Int64.max)
                elements.clear()
                sinceFire.clear()
            } else {
                sinceFire.update(count)
            }
            return
        }
        var kept = elements.get()
        if kept.count > size {
            kept.removeFirst(kept.count - size)
            elements.update(kept)
        }
        if count >= slide {
            try output.collect(evaluate(kept), timestamp: Int64.max)
            sinceFire.clear()
        } else {
            sinceFire.update(count)
        }
    }
}
