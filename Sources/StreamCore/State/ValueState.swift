/// One value per key (Flink's `ValueState`). `nil` means no value; `update(nil)` clears.
public final class ValueState<T: Codable>: StateColumn {
    @usableFromInline
    struct Entry: Codable {
        @usableFromInline var value: T
        @usableFromInline var stamp: Int64
        @usableFromInline init(value: T, stamp: Int64) { self.value = value; self.stamp = stamp }
    }

    public let name: String
    @usableFromInline let ttl: StateTtlConfig?
    @usableFromInline let store: KeyedStateStore
    @exclusivity(unchecked) @usableFromInline var entries = SlotColumn<Entry>()
    @exclusivity(unchecked) @usableFromInline var live = 0
    @exclusivity(unchecked) @usableFromInline var cleanupCursor = 0

    init(name: String, ttl: StateTtlConfig?, store: KeyedStateStore) {
        self.name = name
        self.ttl = ttl
        self.store = store
    }

    deinit { entries.release() }

    @usableFromInline var liveEntries: Int { live }

    /// The current key's value, or nil.
    @inlinable
    public func value() -> T? {
        let s = store.currentSlot
        guard s >= 0, let e = entries[s] else { return nil }
        guard let ttl else { return e.value }
        return readWithTtl(slot: s, entry: e, ttl: ttl)
    }

    /// Sets the current key's value; nil clears it.
    @inlinable
    public func update(_ value: T?) {
        guard let value else { clear(); return }
        let s = store.slotForWrite()
        entries.ensure(s)
        let stamp = ttl == nil ? 0 : store.clock.currentTimeMillis()
        if entries[s] == nil {
            live += 1
            store.retain(s)
        }
        entries[s] = Entry(value: value, stamp: stamp)
        if let ttl { cleanupIncrementally(ttl, now: stamp) }
    }

    /// Changes the current key's value in place (no copy of a collection value), creating it with
    /// `initial` when there is none. Counts as a write for TTL.
    @inlinable
    public func modify<R>(initial: @autoclosure () -> T, _ body: (inout T) throws -> R) rethrows -> R {
        if ttl != nil, value() == nil { update(initial()) }   // TTL: read (expiry) and stamp through the slow path
        let s = store.slotForWrite()
        entries.ensure(s)
        if entries[s] == nil {
            entries[s] = Entry(value: initial(), stamp: 0)
            live += 1
            store.retain(s)
        }
        if ttl != nil { entries[s]!.stamp = store.clock.currentTimeMillis() }
        return try body(&entries[s]!.value)
    }

    /// Changes the current key's value in place if it has one; returns nil (without calling `body`)
    /// when it has none. Counts as a write for TTL.
    @inlinable
    public func modifyIfPresent<R>(_ body: (inout T) throws -> R) rethrows -> R? {
        if ttl != nil {
            guard var v = value() else { return nil }
            let r = try body(&v)
            update(v)
            return r
        }
        let s = store.currentSlot
        guard s >= 0, s < entries.capacity, entries.base[s] != nil else { return nil }
        return try body(&entries.base[s]!.value)
    }

    /// Removes the current key's value.
    @inlinable
    public func clear() {
        let s = store.currentSlot
        guard s >= 0, entries[s] != nil else { return }
        clearSlot(s)
    }

    @inlinable
    func clearSlot(_ s: Int) {
        entries[s] = nil
        live -= 1
        store.release(s)
    }

    @inlinable
    func readWithTtl(slot s: Int, entry e: Entry, ttl: StateTtlConfig) -> T? {
        let now = store.clock.currentTimeMillis()
        defer { cleanupIncrementally(ttl, now: now) }
        if ttl.isExpired(lastAccess: e.stamp, now: now) {
            clearSlot(s)
            return ttl.stateVisibility == .returnExpiredIfNotCleanedUp ? e.value : nil
        }
        if ttl.updateType == .onReadAndWrite { entries[s]?.stamp = now }
        return e.value
    }

    @inlinable
    func cleanupIncrementally(_ ttl: StateTtlConfig, now: Int64) {
        guard ttl.incrementalCleanupSize > 0, live > 0 else { return }
        for _ in 0..<min(ttl.incrementalCleanupSize, entries.capacity) {
            if cleanupCursor >= entries.capacity { cleanupCursor = 0 }
            if let e = entries[cleanupCursor], ttl.isExpired(lastAccess: e.stamp, now: now) {
                clearSlot(cleanupCursor)
            }
            cleanupCursor += 1
        }
    }

    @usableFromInline
    func removeExpired(now: Int64) {
        guard let ttl else { return }
        for s in entries.indices {
            if let e = entries[s], ttl.isExpired(lastAccess: e.stamp, now: now) { clearSlot(s) }
        }
    }

    @usableFromInline func dropSlots(_ slots: [Int]) {
        for s in slots where entries[s] != nil {
            entries[s] = nil
            live -= 1
        }
    }

    /// The entries of `slots` copied now, encoded by the closure.
    @usableFromInline func captureEntries(_ slots: [Int]) throws -> () throws -> [[UInt8]?] {
        let copied = slots.map { entries[$0] }
        return {
            let encoder = BinaryEncoder()   // one scratch buffer for all of them
            return try copied.map { try $0.map { try encoder.encode($0) } }
        }
    }

    @usableFromInline func snapshotEntry(slot: Int) throws -> [UInt8]? {
        guard let e = entries[slot] else { return nil }
        return try StateCodec.encode(e)
    }

    /// The fast path: the whole column is copied now in one bulk copy; split by key group and
    /// encoded as arrays later, on another thread.
    @usableFromInline func captureAll(slotCount: Int) throws -> any ColumnSnapshot {
        let n = entries.capacity
        guard _isPOD(Entry?.self) else {
            return ValueColumnSnapshot(entries: Array(UnsafeBufferPointer(start: entries.base, count: n)))
        }
        // Plain data (counters, sums, …): one memcpy, however many keys.
        let base = entries.base
        return ValueColumnSnapshot(entries: Array(unsafeUninitializedCapacity: n) { buffer, count in
            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: base, byteCount: n * MemoryLayout<Entry?>.stride)
            count = n
        })
    }

    @usableFromInline
    struct ValueColumnSnapshot: ColumnSnapshot {
        let entries: [Entry?]

        @usableFromInline func capture(_ slots: [Int]) throws -> ColumnCapture? {
            var present: [Int32] = []
            var values: [Entry] = []
            values.reserveCapacity(slots.count)
            for (i, s) in slots.enumerated() where s < entries.count {
                if let e = entries[s] { present.append(Int32(i)); values.append(e) }
            }
            guard !values.isEmpty else { return nil }
            if present.count == slots.count { present = [] }
            return ColumnCapture(present: present, columnar: true, encode: { [values] in try StateCodec.encode(values) })
        }
    }

    @usableFromInline func restoreColumnar(_ payload: [UInt8], count: Int, select: (Int) -> Void) throws {
        let values = try StateCodec.decode([Entry].self, from: payload)
        guard values.count == count else {
            throw StateError("state '\(name)' in the checkpoint has \(values.count) values for \(count) keys: the checkpoint is damaged")
        }
        for (i, e) in values.enumerated() {
            select(i)
            setRestored(e)
        }
    }

    @usableFromInline func restoreEntry(_ bytes: [UInt8]) throws {
        setRestored(try StateCodec.decode(Entry.self, from: bytes))
    }

    /// The current key's entry, as a checkpoint had it (TTL stamp included).
    @usableFromInline func setRestored(_ e: Entry) {
        let s = store.slotForWrite()
        entries.ensure(s)
        if entries[s] == nil {
            live += 1
            store.retain(s)
        }
        entries[s] = e
    }
}

/// Combines added values with a reduce function (Flink's `ReducingState`).
public final class ReducingState<T: Codable> {
    @usableFromInline let inner: ValueState<T>
    @usableFromInline let reduce: @Sendable (T, T) -> T

    init(_ inner: ValueState<T>, reduce: @escaping @Sendable (T, T) -> T) {
        self.inner = inner
        self.reduce = reduce
    }

    @inlinable public func get() -> T? { inner.value() }

    @inlinable public func add(_ value: T) {
        if let old = inner.value() { inner.update(reduce(old, value)) } else { inner.update(value) }
    }

    @inlinable public func clear() { inner.clear() }
}

/// Folds added values into an accumulator (Flink's `AggregatingState`).
public final class AggregatingState<F: AggregateFunction> where F.Accumulator: Codable {
    @usableFromInline let inner: ValueState<F.Accumulator>
    @usableFromInline let function: F

    init(_ inner: ValueState<F.Accumulator>, function: F) {
        self.inner = inner
        self.function = function
    }

    @inlinable public func get() -> F.Result? { inner.value().map(function.getResult) }

    @inlinable public func add(_ value: F.Input) {
        var acc = inner.value() ?? function.createAccumulator()
        function.add(value, to: &acc)
        inner.update(acc)
    }

    @inlinable public func clear() { inner.clear() }
}
