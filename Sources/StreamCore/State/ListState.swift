/// A list per key (Flink's `ListState`). With TTL every element expires on its own.
public final class ListState<T: Codable>: StateColumn {
    public let name: String
    @usableFromInline let ttl: StateTtlConfig?
    @usableFromInline let store: KeyedStateStore
    @exclusivity(unchecked) @usableFromInline var lists: [[T]?] = []
    /// Last-access times, element by element, only with TTL.
    @exclusivity(unchecked) @usableFromInline var stamps: [[Int64]?] = []
    @exclusivity(unchecked) @usableFromInline var live = 0
    @exclusivity(unchecked) @usableFromInline var cleanupCursor = 0

    init(name: String, ttl: StateTtlConfig?, store: KeyedStateStore) {
        self.name = name
        self.ttl = ttl
        self.store = store
    }

    @usableFromInline var liveEntries: Int { live }

    /// The current key's elements in insertion order (empty when none).
    @inlinable
    public func get() -> [T] {
        let s = store.currentSlot
        guard s >= 0, s < lists.count, let list = lists[s] else { return [] }
        guard let ttl else { return list }
        return readWithTtl(slot: s, ttl: ttl)
    }

    @inlinable
    public func add(_ value: T) {
        let s = prepareWrite()
        if lists[s] == nil {
            lists[s] = [value]
            live += 1
            store.retain(s)
            if ttl != nil { stamps[s] = [store.clock.currentTimeMillis()] }
        } else {
            lists[s]!.append(value)
            if ttl != nil { stamps[s]!.append(store.clock.currentTimeMillis()) }
        }
        if let ttl { cleanupIncrementally(ttl) }
    }

    public func addAll(_ values: [T]) {
        for v in values { add(v) }
    }

    /// Replaces the current key's list; an empty list clears it.
    public func update(_ values: [T]) {
        clear()
        addAll(values)
    }

    @inlinable
    public func clear() {
        let s = store.currentSlot
        guard s >= 0, s < lists.count, lists[s] != nil else { return }
        clearSlot(s)
    }

    @inlinable
    func prepareWrite() -> Int {
        let s = store.slotForWrite()
        if s >= lists.count {
            lists.append(contentsOf: repeatElement(nil, count: s + 1 - lists.count))
            if ttl != nil { stamps.append(contentsOf: repeatElement(nil, count: s + 1 - stamps.count)) }
        }
        return s
    }

    @inlinable
    func clearSlot(_ s: Int) {
        lists[s] = nil
        if ttl != nil { stamps[s] = nil }
        live -= 1
        store.release(s)
    }

    /// Drops expired elements of slot `s`; returns the survivors.
    @usableFromInline
    func purge(slot s: Int, ttl: StateTtlConfig, now: Int64) -> [T] {
        guard let list = lists[s], let st = stamps[s] else { return [] }
        var keptValues: [T] = []
        var keptStamps: [Int64] = []
        for (v, t) in zip(list, st) where !ttl.isExpired(lastAccess: t, now: now) {
            keptValues.append(v)
            keptStamps.append(t)
        }
        if keptValues.isEmpty {
            clearSlot(s)
        } else if keptValues.count != list.count {
            lists[s] = keptValues
            stamps[s] = keptStamps
        }
        return keptValues
    }

    @usableFromInline
    func readWithTtl(slot s: Int, ttl: StateTtlConfig) -> [T] {
        let now = store.clock.currentTimeMillis()
        defer { cleanupIncrementally(ttl) }
        let all = lists[s] ?? []
        let kept = purge(slot: s, ttl: ttl, now: now)
        if ttl.updateType == .onReadAndWrite, lists[s] != nil {
            stamps[s] = Array(repeating: now, count: kept.count)
        }
        return ttl.stateVisibility == .returnExpiredIfNotCleanedUp ? all : kept
    }

    @usableFromInline
    func cleanupIncrementally(_ ttl: StateTtlConfig) {
        guard ttl.incrementalCleanupSize > 0, !lists.isEmpty else { return }
        let now = store.clock.currentTimeMillis()
        for _ in 0..<min(ttl.incrementalCleanupSize, lists.count) {
            if cleanupCursor >= lists.count { cleanupCursor = 0 }
            if lists[cleanupCursor] != nil { _ = purge(slot: cleanupCursor, ttl: ttl, now: now) }
            cleanupCursor += 1
        }
    }

    @usableFromInline
    func removeExpired(now: Int64) {
        guard let ttl else { return }
        for s in lists.indices where lists[s] != nil { _ = purge(slot: s, ttl: ttl, now: now) }
    }

    @usableFromInline struct Snapshot: Codable {
        var values: [T]
        var stamps: [Int64]?
    }

    @usableFromInline func dropSlots(_ slots: [Int]) {
        for s in slots where s < lists.count && lists[s] != nil {
            lists[s] = nil
            if ttl != nil { stamps[s] = nil }
            live -= 1
        }
    }

    /// The lists copied now (they share storage until written), encoded later off the task thread.
    @usableFromInline func captureAll(slotCount: Int) throws -> any ColumnSnapshot {
        var bySlot: [Int: Snapshot] = [:]
        for s in 0..<min(slotCount, lists.count) {
            if let list = lists[s], !list.isEmpty { bySlot[s] = Snapshot(values: list, stamps: ttl == nil ? nil : stamps[s]) }
        }
        return DeferredEntrySnapshot(bySlot: bySlot) { try StateCodec.encode($0) }
    }

    @usableFromInline func snapshotEntry(slot: Int) throws -> [UInt8]? {
        guard slot < lists.count, let list = lists[slot], !list.isEmpty else { return nil }
        return try StateCodec.encode(Snapshot(values: list, stamps: ttl == nil ? nil : stamps[slot]))
    }

    @usableFromInline func restoreEntry(_ bytes: [UInt8]) throws {
        let snap = try StateCodec.decode(Snapshot.self, from: bytes)
        guard !snap.values.isEmpty else { return }
        let s = prepareWrite()
        if lists[s] == nil {
            live += 1
            store.retain(s)
        }
        lists[s] = snap.values
        if ttl != nil {
            let now = store.clock.currentTimeMillis()
            stamps[s] = snap.stamps ?? Array(repeating: now, count: snap.values.count)
        }
    }
}
