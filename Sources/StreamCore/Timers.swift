/// The namespace of timers and state that belong to the key alone (Flink's `VoidNamespace`).
public struct VoidNamespace: Hashable, Sendable {
    public init() {}
}

/// A timer: key, namespace (e.g. a window) and time (Flink's `InternalTimer`).
public struct InternalTimer<K: StreamKey, N: Hashable>: Hashable {
    public let key: K
    public let namespace: N
    public let timestamp: Int64

    @inlinable
    public init(key: K, namespace: N, timestamp: Int64) {
        self.key = key
        self.namespace = namespace
        self.timestamp = timestamp
    }
}

/// Which clock a timer belongs to.
public enum TimeDomain: Sendable, Equatable {
    case eventTime
    case processingTime
}

/// Timers of one keyed operator on one subtask, per (key, namespace, time), deduplicated, fired in
/// time order (Flink's `InternalTimerService`). Event-time timers fire when a watermark at or past
/// their time arrives — one registered at or behind the current watermark waits for the next
/// watermark advance. Processing-time timers fire when the task's clock reaches them.
public final class InternalTimerService<K: StreamKey, N: Hashable> {
    public typealias Timer = InternalTimer<K, N>
    public typealias Callback = (Timer) throws -> Void

    @usableFromInline
    struct Queue {
        @usableFromInline struct Entry: Comparable {
            @usableFromInline var timer: Timer
            @usableFromInline var seq: UInt64
            @usableFromInline init(timer: Timer, seq: UInt64) { self.timer = timer; self.seq = seq }
            @inlinable static func < (a: Entry, b: Entry) -> Bool {
                (a.timer.timestamp, a.seq) < (b.timer.timestamp, b.seq)
            }
            @inlinable static func == (a: Entry, b: Entry) -> Bool { a.seq == b.seq }
        }
        @usableFromInline var heap = BinaryHeap<Entry>()
        @usableFromInline var live = Set<Timer>()
        @usableFromInline var seq: UInt64 = 0

        /// Returns true when the timer is new.
        @inlinable
        mutating func add(_ t: Timer) -> Bool {
            guard live.insert(t).inserted else { return false }
            seq &+= 1
            heap.push(Entry(timer: t, seq: seq))
            return true
        }

        @inlinable mutating func remove(_ t: Timer) { live.remove(t) }

        /// The earliest live timer.
        @inlinable
        mutating func peek() -> Timer? {
            while let top = heap.peek {
                if live.contains(top.timer) { return top.timer }
                _ = heap.pop()  // deleted or already fired: drop the stale entry
            }
            return nil
        }

        @inlinable
        mutating func poll() -> Timer? {
            guard let t = peek() else { return nil }
            _ = heap.pop()
            live.remove(t)
            return t
        }
    }

    public let name: String
    @usableFromInline let backend: KeyedStateBackend<K>
    @usableFromInline let processingTime: ProcessingTimeService
    @exclusivity(unchecked) @usableFromInline var eventTimers = Queue()
    @exclusivity(unchecked) @usableFromInline var processingTimers = Queue()
    @exclusivity(unchecked) @usableFromInline var scheduledWakeup: (time: Int64, id: UInt64)?
    @exclusivity(unchecked) @usableFromInline var _currentWatermark: Int64 = Int64.min
    /// The last watermark this service advanced to.
    @inlinable public var currentWatermark: Int64 { _currentWatermark }
    @usableFromInline let onEventTime: Callback
    @usableFromInline let onProcessingTime: Callback

    @usableFromInline
    init(name: String, backend: KeyedStateBackend<K>, processingTime: ProcessingTimeService,
         onEventTime: @escaping Callback, onProcessingTime: @escaping Callback) {
        self.name = name
        self.backend = backend
        self.processingTime = processingTime
        self.onEventTime = onEventTime
        self.onProcessingTime = onProcessingTime
    }

    @inlinable var currentKey: K {
        guard let k = backend.currentKey else { preconditionFailure("timer used without a current key") }
        return k
    }

    @inlinable
    public func registerEventTimeTimer(namespace: N, time: Int64) {
        _ = eventTimers.add(Timer(key: currentKey, namespace: namespace, timestamp: time))
    }

    @inlinable
    public func deleteEventTimeTimer(namespace: N, time: Int64) {
        eventTimers.remove(Timer(key: currentKey, namespace: namespace, timestamp: time))
    }

    @inlinable
    public func registerProcessingTimeTimer(namespace: N, time: Int64) {
        if processingTimers.add(Timer(key: currentKey, namespace: namespace, timestamp: time)) {
            scheduleWakeup()
        }
    }

    @inlinable
    public func deleteProcessingTimeTimer(namespace: N, time: Int64) {
        processingTimers.remove(Timer(key: currentKey, namespace: namespace, timestamp: time))
    }

    public func currentProcessingTime() -> Int64 { processingTime.currentProcessingTime() }

    public var numEventTimeTimers: Int { eventTimers.live.count }
    public var numProcessingTimeTimers: Int { processingTimers.live.count }

    /// Sets the watermark and fires every event-time timer at or before it, in time order. Timers
    /// registered while firing at or before the watermark fire in the same advance, as in Flink.
    @inlinable
    public func advanceWatermark(_ watermark: Int64) throws {
        _currentWatermark = watermark
        while let t = eventTimers.peek(), t.timestamp <= watermark {
            _ = eventTimers.poll()
            backend.setCurrentKey(t.key)
            try onEventTime(t)
        }
    }

    @usableFromInline
    func scheduleWakeup() {
        guard let next = processingTimers.peek() else { return }
        if let s = scheduledWakeup, s.time <= next.timestamp { return }
        if let s = scheduledWakeup { processingTime.cancel(s.id) }
        let id = processingTime.registerTimer(at: next.timestamp) { [unowned self] now in
            self.scheduledWakeup = nil
            try self.fireProcessingTimers(now: max(now, self.processingTime.currentProcessingTime()))
        }
        scheduledWakeup = (next.timestamp, id)
    }

    func fireProcessingTimers(now: Int64) throws {
        while let t = processingTimers.peek(), t.timestamp <= now {
            _ = processingTimers.poll()
            backend.setCurrentKey(t.key)
            try onProcessingTime(t)
        }
        scheduleWakeup()
    }
}

/// Everything a keyed operator instance needs: its state backend, timer services and the current
/// watermark. The runtime sets the current key before each record.
public final class KeyedContext<K: StreamKey> {
    public let backend: KeyedStateBackend<K>
    public let processingTime: ProcessingTimeService
    @exclusivity(unchecked) @usableFromInline var advancers: [(name: String, advance: (Int64) throws -> Void, counts: () -> (Int, Int))] = []
    @exclusivity(unchecked) public private(set) var currentWatermark: Int64 = Int64.min

    public init(backend: KeyedStateBackend<K>, processingTime: ProcessingTimeService) {
        self.backend = backend
        self.processingTime = processingTime
    }

    @inlinable public func setCurrentKey(_ key: K) { backend.setCurrentKey(key) }
    public var currentKey: K? { backend.currentKey }

    /// A named timer service; callbacks run with the timer's key set as current key. Call it from
    /// inlinable code so the service's hot paths are specialised for the key and namespace types.
    @inlinable
    public func timerService<N: Hashable>(
        name: String, namespace: N.Type = N.self,
        onEventTime: @escaping InternalTimerService<K, N>.Callback,
        onProcessingTime: @escaping InternalTimerService<K, N>.Callback
    ) -> InternalTimerService<K, N> {
        let service = InternalTimerService<K, N>(
            name: name, backend: backend, processingTime: processingTime,
            onEventTime: onEventTime, onProcessingTime: onProcessingTime)
        advancers.append((name, { wm in try service.advanceWatermark(wm) },
                          { (service.numEventTimeTimers, service.numProcessingTimeTimers) }))
        return service
    }

    /// Adds event-time timers an operator keeps itself (`SlotTimerBuckets`, `SlotTimerHeap`):
    /// `advance` runs on every watermark advance, after `currentWatermark` is set and in order with
    /// the timer services; `pending` counts them for leak reports.
    public func addEventTimeTimers(name: String, advance: @escaping (Int64) throws -> Void, pending: @escaping () -> Int) {
        advancers.append((name, advance, { (pending(), 0) }))
    }

    /// Fires the event-time timers of every service up to `watermark`.
    public func advanceWatermark(_ watermark: Int64) throws {
        currentWatermark = watermark
        for a in advancers { try a.advance(watermark) }
    }

    /// Timers still pending: (event time, processing time), summed over services.
    public var pendingTimers: (eventTime: Int, processingTime: Int) {
        advancers.reduce((0, 0)) { acc, a in let c = a.counts(); return (acc.0 + c.0, acc.1 + c.1) }
    }
}
