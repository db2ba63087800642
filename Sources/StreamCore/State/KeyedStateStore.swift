/// A problem with how keyed state is used: a message that says what to fix.
public struct StateError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }

    static func typeMismatch(_ name: String, registered: Any.Type, requested: String) -> StateError {
        StateError("state '\(name)' is already registered as \(registered); it was requested as \(requested). Use another name.")
    }
    static func notKeyed(_ what: String) -> StateError {
        StateError("\(what) is only available on a keyed stream, i.e. after keyBy(); this operator is not keyed.")
    }
}

/// What every keyed state column offers the backend: counts for leak reports and expiry sweeps.
@usableFromInline
protocol StateColumn: AnyObject {
    var name: String { get }
    /// Keys that currently hold a value in this state.
    var liveEntries: Int { get }
    /// Removes every entry (or element) whose TTL has run out; returns how many keys were affected.
    func removeExpired(now: Int64)
    /// The value held in `slot` (with its TTL stamps), encoded for a checkpoint; nil when none.
    func snapshotEntry(slot: Int) throws -> [UInt8]?
    /// Sets the current key's value from a checkpoint entry.
    func restoreEntry(_ bytes: [UInt8]) throws
}

/// The key-independent half of a keyed state backend: the dense slot of the current key, how many
/// states hold a value in each slot, and the registry of states by name. Values live in per-state
/// columns indexed by slot, so a state access after `setCurrentKey` is an array access.
///
/// Confined to one task thread.
public class KeyedStateStore {
    @exclusivity(unchecked) @usableFromInline final var currentSlot: Int = -1
    @exclusivity(unchecked) @usableFromInline final var slotRefs: [Int32] = []
    public let clock: any ProcessingTimeClock
    @exclusivity(unchecked) @usableFromInline var columns: [String: any StateColumn] = [:]
    /// Restored entries of states the operator has not registered yet; applied when it does.
    final var deferredRestores: [String: (any StateColumn) throws -> Void] = [:]

    /// Set by `dispose()`: slots are no longer allocated or freed.
    @exclusivity(unchecked) @usableFromInline final var isDisposed = false

    /// Creates the slot of the current key, and forgets a slot no state uses any more: made by the
    /// typed backend, specialized for its key type. Context-free closures in `let` properties:
    /// a closure read from a `var` (or capturing the backend) is retained and exclusivity-checked
    /// on every call, which happens whenever a key gets or loses a slot — with a million keys,
    /// for most records.
    @usableFromInline let slotAllocator: (KeyedStateStore) -> Int
    @usableFromInline let slotReleaser: (KeyedStateStore, Int) -> Void

    @inlinable final func allocateSlotForCurrentKey() -> Int { slotAllocator(self) }
    @inlinable final func freeSlot(_ slot: Int) { slotReleaser(self, slot) }

    @usableFromInline
    init(clock: any ProcessingTimeClock, slotAllocator: @escaping (KeyedStateStore) -> Int,
         slotReleaser: @escaping (KeyedStateStore, Int) -> Void) {
        self.clock = clock
        self.slotAllocator = slotAllocator
        self.slotReleaser = slotReleaser
    }

    /// The dense slot of the current key, -1 when it holds no state (for state kept per slot).
    @inlinable public final var currentKeySlot: Int { currentSlot }

    @inlinable final func slotForWrite() -> Int {
        currentSlot >= 0 ? currentSlot : allocateSlotForCurrentKey()
    }

    @inlinable final func retain(_ slot: Int) { slotRefs[slot] &+= 1 }

    @inlinable final func release(_ slot: Int) {
        slotRefs[slot] &-= 1
        if slotRefs[slot] == 0 { freeSlot(slot) }
    }

    // MARK: registry

    private func column<C: StateColumn>(_ name: String, as type: C.Type, make: () -> C) throws -> C {
        if let existing = columns[name] {
            guard let typed = existing as? C else {
                throw StateError.typeMismatch(name, registered: Swift.type(of: existing), requested: "\(C.self)")
            }
            return typed
        }
        let c = make()
        columns[name] = c
        if let restore = deferredRestores.removeValue(forKey: name) { try restore(c) }
        return c
    }

    /// The `ValueState` called `descriptor.name`; the same object on every call.
    public final func getState<T>(_ descriptor: ValueStateDescriptor<T>) throws -> ValueState<T> {
        try column(descriptor.name, as: ValueState<T>.self) {
            ValueState(name: descriptor.name, ttl: descriptor.ttl, store: self)
        }
    }

    public final func getListState<T>(_ descriptor: ListStateDescriptor<T>) throws -> ListState<T> {
        try column(descriptor.name, as: ListState<T>.self) {
            ListState(name: descriptor.name, ttl: descriptor.ttl, store: self)
        }
    }

    public final func getMapState<UK, UV>(_ descriptor: MapStateDescriptor<UK, UV>) throws -> MapState<UK, UV> {
        try column(descriptor.name, as: MapState<UK, UV>.self) {
            MapState(name: descriptor.name, ttl: descriptor.ttl, store: self)
        }
    }

    /// The `NamespacedValueState` called `descriptor.name` (window contents by window end or slice).
    public final func getNamespacedState<V>(_ descriptor: NamespacedStateDescriptor<V>) throws -> NamespacedValueState<V> {
        try column(descriptor.name, as: NamespacedValueState<V>.self) {
            NamespacedValueState(name: descriptor.name, store: self)
        }
    }

    /// The `TimeSortedListState` called `descriptor.name` (rows buffered by timestamp, as joins use).
    public final func getTimeSortedListState<T>(_ descriptor: TimeSortedListStateDescriptor<T>) throws -> TimeSortedListState<T> {
        try column(descriptor.name, as: TimeSortedListState<T>.self) {
            TimeSortedListState(name: descriptor.name, store: self)
        }
    }

    public final func getReducingState<T>(_ descriptor: ReducingStateDescriptor<T>) throws -> ReducingState<T> {
        let inner = try getState(ValueStateDescriptor<T>(descriptor.name).withTtl(descriptor.ttl))
        return ReducingState(inner, reduce: descriptor.reduce)
    }

    public final func getAggregatingState<F>(_ descriptor: AggregatingStateDescriptor<F>) throws -> AggregatingState<F> {
        let inner = try getState(ValueStateDescriptor<F.Accumulator>(descriptor.name).withTtl(descriptor.ttl))
        return AggregatingState(inner, function: descriptor.function)
    }

    // MARK: introspection (leak reports, tests)

    /// Keys holding a value, per state name. Empty maps and lists do not count.
    public final var entryCounts: [String: Int] {
        columns.mapValues { $0.liveEntries }.filter { $0.value > 0 }
    }

    /// Total (key, state) entries held.
    public final var totalEntries: Int { columns.values.reduce(0) { $0 + $1.liveEntries } }

    /// Drops every state (breaking the state ↔ store reference cycle); the store is unusable after.
    public final func dispose() {
        columns.removeAll()
        isDisposed = true
    }

    /// Removes everything whose TTL has run out, in every state.
    public final func removeExpired() {
        let now = clock.currentTimeMillis()
        for c in columns.values { c.removeExpired(now: now) }
    }
}

extension ValueStateDescriptor {
    func withTtl(_ ttl: StateTtlConfig?) -> Self { var c = self; c.ttl = ttl; return c }
}

/// Keyed state for keys of type `K`, held in memory (Flink's heap keyed state backend). The runtime
/// sets the current key before each record and timer; state handles read and write the value of
/// that key.
public final class KeyedStateBackend<K: StreamKey>: KeyedStateStore {
    @exclusivity(unchecked) @usableFromInline var keyToSlot = KeySlotTable<K>()
    @exclusivity(unchecked) @usableFromInline var slotKeys: [K?] = []
    @exclusivity(unchecked) @usableFromInline var freeSlots: [Int] = []
    @exclusivity(unchecked) @usableFromInline var _currentKey: K?
    /// The key state accesses refer to.
    public var currentKey: K? { _currentKey }
    public let maxParallelism: Int

    /// Call from inlinable code, so slot management is specialized for `K`.
    @inlinable
    public init(clock: any ProcessingTimeClock, maxParallelism: Int = KeyGroupRangeAssignment.defaultMaxParallelism) {
        self.maxParallelism = maxParallelism
        super.init(clock: clock, slotAllocator: { store in
            precondition(!store.isDisposed, "state backend disposed")
            return unsafeDowncast(store, to: KeyedStateBackend<K>.self).allocateSlot()
        }, slotReleaser: { store, slot in
            if !store.isDisposed { unsafeDowncast(store, to: KeyedStateBackend<K>.self).releaseSlot(slot) }
        })
    }

    deinit { keyToSlot.release() }

    /// Makes `key` the key that state accesses refer to. Inlined: it runs for every record.
    @inlinable @inline(__always)
    public func setCurrentKey(_ key: K) {
        _currentKey = key
        currentSlot = keyToSlot.find(key)
    }

    /// Makes the key in `slot` (a slot some state holds) the current key, without a hash lookup:
    /// for timers kept per slot.
    @inlinable
    public func setCurrentKey(slot: Int) {
        _currentKey = slotKeys[slot]
        currentSlot = slot
    }

    @inlinable
    func allocateSlot() -> Int {
        guard let key = _currentKey else {
            preconditionFailure("keyed state written without a current key")
        }
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slotKeys[slot] = key
            slotRefs[slot] = 0
        } else {
            slot = slotKeys.count
            slotKeys.append(key)
            slotRefs.append(0)
        }
        keyToSlot.insert(key, slot: slot)
        currentSlot = slot
        return slot
    }

    @inlinable
    func releaseSlot(_ slot: Int) {
        if let key = slotKeys[slot] { keyToSlot.remove(key) }
        slotKeys[slot] = nil
        freeSlots.append(slot)
        if currentSlot == slot { currentSlot = -1 }
    }

    /// Keys that hold a value in at least one state.
    public var keys: [K] { slotKeys.compactMap { $0 } }
}

/// One key's state in a checkpoint: state name → encoded entry.
struct KeyedEntry<K: Codable>: Codable {
    var key: K
    var states: [String: [UInt8]]
}

extension KeyedStateBackend {
    /// Every key's state, grouped by key group (Flink's key-grouped snapshot), encoded.
    func snapshotKeyGroups() throws -> [Int: [UInt8]] {
        var byGroup: [Int: [KeyedEntry<K>]] = [:]
        let names = columns.keys.sorted()
        for slot in slotKeys.indices {
            guard let key = slotKeys[slot] else { continue }
            var states: [String: [UInt8]] = [:]
            for name in names {
                if let bytes = try columns[name]!.snapshotEntry(slot: slot) { states[name] = bytes }
            }
            guard !states.isEmpty else { continue }
            let group = KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: maxParallelism)
            byGroup[group, default: []].append(KeyedEntry(key: key, states: states))
        }
        return try byGroup.mapValues { try StateCodec.encode($0) }
    }

    /// Restores the entries of `groups` (encoded by `snapshotKeyGroups`); states the operator has
    /// not registered yet are restored when it registers them.
    func restoreKeyGroups(_ encoded: [[UInt8]]) throws {
        var waiting: [String: [(K, [UInt8])]] = [:]
        for bytes in encoded {
            for entry in try StateCodec.decode([KeyedEntry<K>].self, from: bytes) {
                setCurrentKey(entry.key)
                for (name, value) in entry.states {
                    if let column = columns[name] { try column.restoreEntry(value) } else { waiting[name, default: []].append((entry.key, value)) }
                }
            }
        }
        for (name, entries) in waiting {
            deferredRestores[name] = { [unowned self] column in
                for (key, value) in entries {
                    self.setCurrentKey(key)
                    try column.restoreEntry(value)
                }
            }
        }
    }
}
