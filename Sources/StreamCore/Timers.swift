/// The namespace of timers and state that belong to the key alone (Flink's `VoidNamespace`).
public struct VoidNamespace: Hashable, Sendable, Codable {
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
    /// Per timer service: its timers grouped by key group, encoded.
    /// Each copies its timers on the task thread and returns how to encode them later.
    @usableFromInline var timerSnapshots: [(name: String, capture: () throws -> () throws -> [Int: [UInt8]])] = []
    /// Restored timers of services not created yet, by service name.
    @usableFromInline var pendingTimerRestores: [String: [[UInt8]]] = [:]

    public init(backend: KeyedStateBackend<K>, processingTime: ProcessingTimeService) {
        self.backend = backend
        self.processingTime = processingTime
    }

    @inlinable public func setCurrentKey(_ key: K) { backend.setCurrentKey(key) }
    public var currentKey: K? { backend.currentKey }

    /// A named timer service; callbacks run with the timer's key set as current key. Call it from
    /// inlinable code so the service's hot paths are specialised for the key and namespace types.
    @inlinable
    public func timerService<N: Hashable & Codable>(
        name: String, namespace: N.Type = N.self,
        onEventTime: @escaping InternalTimerService<K, N>.Callback,
        onProcessingTime: @escaping InternalTimerService<K, N>.Callback
    ) -> InternalTimerService<K, N> {
        let service = InternalTimerService<K, N>(
            name: name, backend: backend, processingTime: processingTime,
            onEventTime: onEventTime, onProcessingTime: onProcessingTime)
        advancers.append((name, { wm in try service.advanceWatermark(wm) },
                          { (service.numEventTimeTimers, service.numProcessingTimeTimers) }))
        timerSnapshots.append((name, { service.captureByKeyGroup() }))
        if let restored = pendingTimerRestores.removeValue(forKey: name) {
            for bytes in restored { try? service.restore(bytes) }
        }
        return service
    }

    /// Adds event-time timers an operator keeps itself (`SlotTimerBuckets`, `SlotTimerHeap`):
    /// `advance` runs on every watermark advance, after `currentWatermark` is set and in order with
    /// the timer services; `pending` counts them for leak reports. For checkpoints, `snapshot` lists
    /// them as (key slot, time, operator's tag), stored by key group under `name`; on restore (call
    /// this after registering the operator's state, which restores first) `restore` gets each back
    /// with the key's slot here. Operators that rebuild their timers from their state pass neither.
    public func addEventTimeTimers(
        name: String, advance: @escaping (Int64) throws -> Void, pending: @escaping () -> Int,
        snapshot: @escaping () throws -> [(slot: Int, time: Int64, tag: Int32)] = { [] },
        restore: @escaping (_ slot: Int, _ time: Int64, _ tag: Int32) throws -> Void = { _, _, _ in }
    ) throws {
        advancers.append((name, advance, { (pending(), 0) }))
        timerSnapshots.append((name, { [unowned self] in
            let grouped = self.groupSlotTimers(try snapshot())
            return { try grouped.mapValues { try StateCodec.encode($0) } }
        }))
        if let restored = pendingTimerRestores.removeValue(forKey: name) {
            for bytes in restored {
                for e in try StateCodec.decode([SlotTimerEntry<K>].self, from: bytes) {
                    let slot = backend.slot(of: e.key)
                    if slot >= 0 { try restore(slot, e.time, e.tag) }
                }
            }
        }
    }

    /// Operator-kept timers grouped by the key group of their slot's key (slots are resolved to
    /// keys now, on the task thread).
    func groupSlotTimers(_ timers: [(slot: Int, time: Int64, tag: Int32)]) -> [Int: [SlotTimerEntry<K>]] {
        var byGroup: [Int: [SlotTimerEntry<K>]] = [:]
        for t in timers {
            guard t.slot < backend.slotKeys.count, let key = backend.slotKeys[t.slot] else { continue }
            byGroup[KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: backend.maxParallelism), default: []]
                .append(SlotTimerEntry(key: key, time: t.time, tag: t.tag))
        }
        return byGroup
    }

    /// Fires the event-time timers of every service up to `watermark`.
    public func advanceWatermark(_ watermark: Int64) throws {
        currentWatermark = watermark
        for a in advancers { try a.advance(watermark) }
        if let rocks = backend.rocks, let failure = rocks.failure { throw failure }
    }

    /// Timers still pending: (event time, processing time), summed over services.
    public var pendingTimers: (eventTime: Int, processingTime: Int) {
        advancers.reduce((0, 0)) { acc, a in let c = a.counts(); return (acc.0 + c.0, acc.1 + c.1) }
    }
}

/// An operator-kept timer in a checkpoint.
struct SlotTimerEntry<K: Codable>: Codable {
    var key: K
    var time: Int64
    var tag: Int32
}

/// A timer in a checkpoint.
@usableFromInline
struct TimerEntry<K: Codable, N: Codable>: Codable {
    var key: K
    var namespace: N
    var timestamp: Int64
    var eventTime: Bool
}

extension InternalTimerService where N: Codable {
    /// Pending timers: the sets are copied now (copy-on-write: O(1) on the task thread), grouped
    /// by key group and encoded by the returned closure.
    @usableFromInline
    func captureByKeyGroup() -> () throws -> [Int: [UInt8]] {
        let event = eventTimers.live, processing = processingTimers.live
        let maxP = backend.maxParallelism
        return {
            var byGroup: [Int: [TimerEntry<K, N>]] = [:]
            for (timers, isEvent) in [(event, true), (processing, false)] {
                for t in timers {
                    byGroup[KeyGroupRangeAssignment.keyGroup(of: t.key, maxParallelism: maxP), default: []]
                        .append(TimerEntry(key: t.key, namespace: t.namespace, timestamp: t.timestamp, eventTime: isEvent))
                }
            }
            return try byGroup.mapValues { try StateCodec.encode($0) }
        }
    }

    /// Adds the timers of one key group's snapshot.
    @usableFromInline
    func restore(_ bytes: [UInt8]) throws {
        var anyProcessing = false
        for e in try StateCodec.decode([TimerEntry<K, N>].self, from: bytes) {
            let timer = Timer(key: e.key, namespace: e.namespace, timestamp: e.timestamp)
            if e.eventTime { _ = eventTimers.add(timer) } else { _ = processingTimers.add(timer); anyProcessing = true }
        }
        if anyProcessing { scheduleWakeup() }
    }
}

/// Timers of every service of one key group, by service name.
struct KeyGroupTimers: Codable {
    var services: [String: [UInt8]]
}

extension KeyedContext {
    /// Keyed state and timers of every key group that holds any.
    public func snapshotKeyGroups() throws -> [KeyGroupState] { try captureKeyGroups()() }

    /// Copies keyed state and timers on the task thread (the only pause a checkpoint causes) and
    /// returns how to encode them, which may run on another thread.
    public func captureKeyGroups() throws -> () throws -> [KeyGroupState] {
        let encodeEntries = try backend.captureKeyGroups()
        let encodeTimers = try timerSnapshots.map { ($0.name, try $0.capture()) }
        return { try Self.encode(entries: try encodeEntries(), timers: encodeTimers) }
    }

    /// The keyed state of checkpoint `id`: with the heap backend entries and timers by key group;
    /// with RocksDB the database's checkpoint, and timers by key group.
    public func captureKeyedState(_ id: CheckpointId) throws -> () throws -> KeyedStateSnapshot {
        guard backend.rocks != nil else {
            let encode = try captureKeyGroups()
            return { KeyedStateSnapshot(keyGroups: try encode(), rocksDB: nil) }
        }
        let describe = try backend.captureRocksDB(id)
        let encodeTimers = try timerSnapshots.map { ($0.name, try $0.capture()) }
        return { KeyedStateSnapshot(keyGroups: try Self.encode(entries: [:], timers: encodeTimers), rocksDB: try describe()) }
    }

    /// Restores what `restored` holds for this subtask, before the operator registers its states.
    public func restore(_ restored: RestoredState) throws {
        try restoreKeyGroups(restored.keyGroups)
        if !restored.rocksDB.isEmpty { try backend.restoreRocksDB(restored.rocksDB) }
    }

    private static func encode(entries: [Int: [UInt8]], timers encodeTimers: [(String, () throws -> [Int: [UInt8]])]) throws -> [KeyGroupState] {
        var timers: [Int: [String: [UInt8]]] = [:]
        for (name, encode) in encodeTimers {
            for (group, bytes) in try encode() { timers[group, default: [:]][name] = bytes }
        }
        let groups = Set(entries.keys).union(timers.keys).sorted()
        return try groups.map { g in
            var encodedTimers: [UInt8] = []
            if let t = timers[g] { encodedTimers = try StateCodec.encode(KeyGroupTimers(services: t)) }
            return KeyGroupState(keyGroup: g, entries: entries[g] ?? [], timers: encodedTimers)
        }
    }

    /// Restores keyed state and timers before the operator registers its states and services.
    public func restoreKeyGroups(_ groups: [KeyGroupState]) throws {
        try backend.restoreKeyGroups(groups.map(\.entries).filter { !$0.isEmpty })
        for g in groups where !g.timers.isEmpty {
            for (name, bytes) in try StateCodec.decode(KeyGroupTimers.self, from: g.timers).services {
                pendingTimerRestores[name, default: []].append(bytes)
            }
        }
    }
}
