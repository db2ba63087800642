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
    /// For a checkpoint: copies the column (on the task thread, as fast as possible); the copy is
    /// split by key group and encoded later, on another thread.
    /// `slotCount`: slots that may hold a value are below it.
    func captureAll(slotCount: Int) throws -> any ColumnSnapshot
    /// Restores values encoded by a columnar `capture`: value `i` belongs to the key `select(i)`
    /// makes current.
    func restoreColumnar(_ payload: [UInt8], count: Int, select: (Int) -> Void) throws
    /// The values of `slots` encoded as `snapshotEntry` encodes one (nil: none).
    func snapshotEntries(_ slots: [Int]) throws -> [[UInt8]?]
    /// The values of `slots` copied now (the task thread) and encoded as `snapshotEntries` by the
    /// closure (any thread).
    func captureEntries(_ slots: [Int]) throws -> () throws -> [[UInt8]?]
    /// Forgets the values of `slots` in memory without releasing the slots (the RocksDB backend
    /// wrote them out; their keys stay).
    func dropSlots(_ slots: [Int])
}

/// What a state column captured for a checkpoint.
@usableFromInline
struct ColumnCapture {
    /// Positions (in the captured slots) that hold a value; empty when all do.
    var present: [Int32]
    /// True: `encode` gives the column's own bulk encoding (`restoreColumnar` reads it); false: an
    /// encoded list of per-entry bytes (`restoreEntry` reads each).
    var columnar: Bool
    var encode: () throws -> [UInt8]

    @usableFromInline init(present: [Int32], columnar: Bool, encode: @escaping () throws -> [UInt8]) {
        self.present = present
        self.columnar = columnar
        self.encode = encode
    }
}

/// A copy of a state column taken for a checkpoint.
@usableFromInline
protocol ColumnSnapshot {
    /// Which of `slots` hold a value, and how to encode those values. nil: none does.
    func capture(_ slots: [Int]) throws -> ColumnCapture?
}

/// Entries copied on the task thread as they are (copies of values; arrays and dictionaries share
/// their storage until the task writes to them) and encoded by `encode` later, on the thread that
/// encodes the checkpoint — the same bytes as `snapshotEntry`, without the task pausing for them.
@usableFromInline
struct DeferredEntrySnapshot<T>: ColumnSnapshot {
    let bySlot: [Int: T]
    let encode: (T) throws -> [UInt8]

    @usableFromInline init(bySlot: [Int: T], encode: @escaping (T) throws -> [UInt8]) {
        self.bySlot = bySlot
        self.encode = encode
    }

    @usableFromInline func capture(_ slots: [Int]) throws -> ColumnCapture? {
        var present: [Int32] = []
        var values: [T] = []
        for (i, s) in slots.enumerated() {
            if let v = bySlot[s] { present.append(Int32(i)); values.append(v) }
        }
        guard !values.isEmpty else { return nil }
        if present.count == slots.count { present = [] }
        let encode = self.encode
        return ColumnCapture(present: present, columnar: false, encode: { try StateCodec.encode(try values.map(encode)) })
    }
}

/// The general path: every entry encoded at once, on the task thread.
struct PerEntrySnapshot: ColumnSnapshot {
    let bySlot: [Int: [UInt8]]

    func capture(_ slots: [Int]) throws -> ColumnCapture? {
        var present: [Int32] = []
        var entries: [[UInt8]] = []
        for (i, s) in slots.enumerated() {
            if let bytes = bySlot[s] { present.append(Int32(i)); entries.append(bytes) }
        }
        guard !entries.isEmpty else { return nil }
        if present.count == slots.count { present = [] }
        return ColumnCapture(present: present, columnar: false, encode: { try StateCodec.encode(entries) })
    }
}

extension StateColumn {
    @usableFromInline
    func snapshotEntries(_ slots: [Int]) throws -> [[UInt8]?] { try slots.map { try snapshotEntry(slot: $0) } }

    @usableFromInline
    func captureEntries(_ slots: [Int]) throws -> () throws -> [[UInt8]?] {
        let encoded = try snapshotEntries(slots)
        return { encoded }
    }

    @usableFromInline
    func captureAll(slotCount: Int) throws -> any ColumnSnapshot { try perEntryCapture(slotCount: slotCount) }

    /// The general capture: every entry encoded now.
    @usableFromInline
    func perEntryCapture(slotCount: Int) throws -> any ColumnSnapshot {
        try PerEntrySnapshot(bySlot: (0..<slotCount).reduce(into: [:]) { out, s in
            if let bytes = try snapshotEntry(slot: s) { out[s] = bytes }
        })
    }

    @usableFromInline
    func restoreColumnar(_ payload: [UInt8], count: Int, select: (Int) -> Void) throws {
        throw StateError("state '\(name)' has no columnar snapshot format; the checkpoint was written by another version")
    }
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
    /// With the RocksDB backend: which keys have their values in memory, and the database.
    @usableFromInline let rocks: RocksDBKeyedState?
    /// Reads a cold slot's values back (`mayEvict`: and makes room first, at a record boundary).
    @usableFromInline let rocksSlowPath: (KeyedStateStore, Int, Bool) -> Void

    @inlinable final func allocateSlotForCurrentKey() -> Int { slotAllocator(self) }
    @inlinable final func freeSlot(_ slot: Int) { slotReleaser(self, slot) }

    @usableFromInline
    init(clock: any ProcessingTimeClock, slotAllocator: @escaping (KeyedStateStore) -> Int,
         slotReleaser: @escaping (KeyedStateStore, Int) -> Void, rocks: RocksDBKeyedState?,
         rocksSlowPath: @escaping (KeyedStateStore, Int, Bool) -> Void) {
        self.clock = clock
        self.slotAllocator = slotAllocator
        self.slotReleaser = slotReleaser
        self.rocks = rocks
        self.rocksSlowPath = rocksSlowPath
    }

    /// An access to the key in `slot` (-1: a key without state). With RocksDB: marks it used and
    /// changed, reads its values back if they were written out, and at a record boundary
    /// (`mayEvict`) writes out the least recently used keys when too many are in memory. With the
    /// heap backend: nothing.
    @inlinable @inline(__always)
    public final func noteAccess(_ slot: Int, mayEvict: Bool) {
        if _slowPath(rocks != nil) { noteRocksDBAccess(slot, mayEvict: mayEvict) }
    }

    @inlinable @inline(never)
    final func noteRocksDBAccess(_ slot: Int, mayEvict: Bool) {
        guard let rocks else { return }
        if slot >= 0, rocks.touch(slot) {
            rocksSlowPath(self, slot, mayEvict)
        } else if mayEvict, rocks.resident > rocks.maxResident {
            rocksSlowPath(self, slot, true)   // never writes out `slot`, the key about to be used
        }
    }

    /// With RocksDB: reads every key written out back (for operators that walk all their state
    /// after a restore; the next record writes the excess out again).
    public final func loadAllColdSlots() {
        guard let rocks else { return }
        for s in rocks.flags.indices where rocks.flags[s] & RocksDBKeyedState.cold != 0 { rocksSlowPath(self, s, false) }
    }

    /// Makes the values of the key in `slot` resident before a state is read or changed by slot
    /// (timers that fire per slot).
    @inlinable @inline(__always)
    public final func prepareSlot(_ slot: Int) { noteAccess(slot, mayEvict: false) }

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

    /// Every state name the backend knows (registered, or restored and not registered yet).
    final var allStateNames: [String] { Array(Set(columns.keys).union(deferredRestores.keys)).sorted() }

    /// The registered states in name order with their names' bytes (RocksDB key suffixes),
    /// rebuilt when a state is registered.
    final var registeredColumns: [(name: [UInt8], column: any StateColumn)] {
        if registeredCache.count != columns.count {
            registeredCache = columns.keys.sorted().map { (Array($0.utf8), columns[$0]!) }
        }
        return registeredCache
    }
    final var registeredCache: [(name: [UInt8], column: any StateColumn)] = []

    // MARK: introspection (leak reports, tests)

    /// Keys holding a value, per state name. Empty maps and lists do not count. With RocksDB also
    /// the keys whose values are only in RocksDB (a scan of the database).
    public var entryCounts: [String: Int] {
        columns.mapValues { $0.liveEntries }.filter { $0.value > 0 }
    }

    /// Total (key, state) entries held.
    public final var totalEntries: Int { entryCounts.values.reduce(0, +) }

    /// Drops every state (breaking the state ↔ store reference cycle); the store is unusable after.
    public final func dispose() {
        columns.removeAll()
        isDisposed = true
    }

    /// Removes everything whose TTL has run out, in every state (with RocksDB also in the keys
    /// written out: read back a batch at a time).
    public func removeExpired() {
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

    /// The key groups this backend holds (a subtask's range; all of them by default).
    public let keyGroupRange: ClosedRange<Int>

    /// Call from inlinable code, so slot management is specialized for `K`.
    /// - Parameter rocksDB: keep state in RocksDB (nil: in memory); `name` names the subtask's
    ///   directory below the options' directory.
    @inlinable
    public init(clock: any ProcessingTimeClock, maxParallelism: Int = KeyGroupRangeAssignment.defaultMaxParallelism,
                keyGroupRange: ClosedRange<Int>? = nil,
                rocksDB: RocksDBStateOptions? = nil, name: String = "keyed") throws {
        self.maxParallelism = maxParallelism
        self.keyGroupRange = keyGroupRange ?? 0...(maxParallelism - 1)
        let rocks = try rocksDB.map { try RocksDBKeyedState(options: $0, name: name) }
        super.init(clock: clock, slotAllocator: { store in
            precondition(!store.isDisposed, "state backend disposed")
            return unsafeDowncast(store, to: KeyedStateBackend<K>.self).allocateSlot()
        }, slotReleaser: { store, slot in
            if !store.isDisposed { unsafeDowncast(store, to: KeyedStateBackend<K>.self).releaseSlot(slot) }
        }, rocks: rocks, rocksSlowPath: { store, slot, mayEvict in
            unsafeDowncast(store, to: KeyedStateBackend<K>.self).rocksSlowPath(slot: slot, mayEvict: mayEvict)
        })
    }

    /// A heap backend (cannot fail).
    @inlinable
    public convenience init(clock: any ProcessingTimeClock, maxParallelism: Int = KeyGroupRangeAssignment.defaultMaxParallelism) {
        try! self.init(clock: clock, maxParallelism: maxParallelism, keyGroupRange: nil, rocksDB: nil)
    }

    deinit { keyToSlot.release() }

    /// Makes `key` the key that state accesses refer to. Inlined: it runs for every record.
    @inlinable @inline(__always)
    public func setCurrentKey(_ key: K) {
        _currentKey = key
        currentSlot = keyToSlot.find(key)
        noteAccess(currentSlot, mayEvict: true)
    }

    /// The slot of `key` without touching it (-1: none): for restoring timers.
    @inlinable
    public func slot(of key: K) -> Int { keyToSlot.find(key) }

    /// Makes the key in `slot` (a slot some state holds) the current key, without a hash lookup:
    /// for timers kept per slot.
    @inlinable
    public func setCurrentKey(slot: Int) {
        _currentKey = slotKeys[slot]
        currentSlot = slot
        noteAccess(slot, mayEvict: false)
    }

    @inlinable
    func allocateSlot() -> Int {
        guard let key = _currentKey else {
            preconditionFailure("keyed state written without a current key")
        }
        let slot = takeSlot(for: key, refs: 0)
        currentSlot = slot
        if let rocks { rocks.slotAllocated(slot) }
        return slot
    }

    /// A free slot (or a new one) for `key`, entered in the key table.
    @inlinable
    func takeSlot(for key: K, refs: Int32) -> Int {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slotKeys[slot] = key
            slotRefs[slot] = refs
        } else {
            slot = slotKeys.count
            slotKeys.append(key)
            slotRefs.append(refs)
        }
        keyToSlot.insert(key, slot: slot)
        return slot
    }

    @inlinable
    func releaseSlot(_ slot: Int) {
        if let rocks, rocks.slotReleased(slot), let key = slotKeys[slot] { rocksForget(key) }
        if let key = slotKeys[slot] { keyToSlot.remove(key) }
        slotKeys[slot] = nil
        freeSlots.append(slot)
        if currentSlot == slot { currentSlot = -1 }
    }

    /// Keys that hold a value in at least one state.
    public var keys: [K] { slotKeys.compactMap { $0 } }

    /// With RocksDB: how many keys are in memory, read back and written out.
    public var rocksDBStatistics: RocksDBStatistics? {
        rocks.map { RocksDBStatistics(residentKeys: $0.resident, loads: $0.loads, evictions: $0.evictions) }
    }

    public override var entryCounts: [String: Int] {
        var counts = super.entryCounts
        addColdEntryCounts(&counts)
        return counts
    }

    public override func removeExpired() {
        if rocks != nil { removeExpiredInRocksDB() } else { super.removeExpired() }
    }
}

/// One key group's keyed state in a checkpoint: its keys, and per state the values of the keys
/// that hold one.
struct KeyGroupBlock<K: Codable>: Codable {
    var keys: [K]
    var columns: [ColumnBlock]
}

struct ColumnBlock: Codable {
    var name: String
    /// Indices into `keys`; empty when every key holds a value.
    var present: [Int32]
    var columnar: Bool
    var payload: [UInt8]
}

extension KeyedStateBackend {
    /// Copies every key's state, grouped by key group (Flink's key-grouped snapshot), on the task
    /// thread; the returned closure encodes the copy and may run on another thread.
    func captureKeyGroups() throws -> () throws -> [Int: [UInt8]] {
        // On the task thread: O(1) copy-on-write of the slot → key table, one bulk copy per column.
        let slotKeys = self.slotKeys
        let maxParallelism = self.maxParallelism
        let copies = try columns.keys.sorted().map { ($0, try columns[$0]!.captureAll(slotCount: slotKeys.count)) }
        return {
            var slotsByGroup = [[Int]](repeating: [], count: maxParallelism)
            for slot in slotKeys.indices {
                guard let key = slotKeys[slot] else { continue }
                slotsByGroup[KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: maxParallelism)].append(slot)
            }
            var out: [Int: [UInt8]] = [:]
            for (group, slots) in slotsByGroup.enumerated() where !slots.isEmpty {
                var blocks: [ColumnBlock] = []
                for (name, copy) in copies {
                    guard let c = try copy.capture(slots) else { continue }
                    blocks.append(ColumnBlock(name: name, present: c.present, columnar: c.columnar, payload: try c.encode()))
                }
                if !blocks.isEmpty {
                    out[group] = try StateCodec.encode(KeyGroupBlock(keys: slots.map { slotKeys[$0]! }, columns: blocks))
                }
            }
            return out
        }
    }

    /// Restores key groups encoded by `captureKeyGroups`; states the operator has not registered
    /// yet are restored when it registers them.
    func restoreKeyGroups(_ encoded: [[UInt8]]) throws {
        var waiting: [String: [(keys: [K], block: ColumnBlock)]] = [:]
        for bytes in encoded {
            let group = try StateCodec.decode(KeyGroupBlock<K>.self, from: bytes)
            for block in group.columns {
                if let column = columns[block.name] {
                    try restore(block, keys: group.keys, into: column)
                } else {
                    waiting[block.name, default: []].append((group.keys, block))
                }
            }
        }
        for (name, blocks) in waiting {
            deferredRestores[name] = { [unowned self] column in
                for b in blocks { try self.restore(b.block, keys: b.keys, into: column) }
            }
        }
    }

    private func restore(_ block: ColumnBlock, keys: [K], into column: any StateColumn) throws {
        let indices = block.present.isEmpty ? Array(keys.indices) : block.present.map(Int.init)
        guard indices.allSatisfy({ keys.indices.contains($0) }) else {
            throw StateError("state '\(block.name)' in the checkpoint refers to keys it does not list: the checkpoint is damaged")
        }
        if block.columnar {
            try column.restoreColumnar(block.payload, count: indices.count) { setCurrentKey(keys[indices[$0]]) }
        } else {
            let entries = try StateCodec.decode([[UInt8]].self, from: block.payload)
            guard entries.count == indices.count else {
                throw StateError("state '\(block.name)' in the checkpoint has \(entries.count) entries for \(indices.count) keys: the checkpoint is damaged")
            }
            for (i, bytes) in entries.enumerated() {
                setCurrentKey(keys[indices[i]])
                try column.restoreEntry(bytes)
            }
        }
    }
}
