/// A map per key (Flink's `MapState`). With TTL every entry expires on its own.
public final class MapState<UK: Hashable & Codable, UV: Codable>: StateColumn {
    @usableFromInline
    struct Entry: Codable {
        @usableFromInline var value: UV
        @usableFromInline var stamp: Int64
        @usableFromInline init(value: UV, stamp: Int64) { self.value = value; self.stamp = stamp }
    }

    public let name: String
    @usableFromInline let ttl: StateTtlConfig?
    @usableFromInline let store: KeyedStateStore
    @exclusivity(unchecked) @usableFromInline var maps: [[UK: Entry]?] = []
    @exclusivity(unchecked) @usableFromInline var live = 0
    @exclusivity(unchecked) @usableFromInline var cleanupCursor = 0

    init(name: String, ttl: StateTtlConfig?, store: KeyedStateStore) {
        self.name = name
        self.ttl = ttl
        self.store = store
    }

    @usableFromInline var liveEntries: Int { live }

    @inlinable
    var currentSlotIfPresent: Int? {
        let s = store.currentSlot
        guard s >= 0, s < maps.count, maps[s] != nil else { return nil }
        return s
    }

    /// The value under `key` for the current stream key.
    @inlinable
    public func get(_ key: UK) -> UV? {
        guard let s = currentSlotIfPresent, let e = maps[s]![key] else { return nil }
        guard let ttl else { return e.value }
        let now = store.clock.currentTimeMillis()
        defer { cleanupIncrementally(ttl) }
        if ttl.isExpired(lastAccess: e.stamp, now: now) {
            removeEntry(slot: s, key: key)
            return ttl.stateVisibility == .returnExpiredIfNotCleanedUp ? e.value : nil
        }
        if ttl.updateType == .onReadAndWrite { maps[s]![key]!.stamp = now }
        return e.value
    }

    @inlinable
    public func put(_ key: UK, _ value: UV) {
        let s = store.slotForWrite()
        if s >= maps.count { maps.append(contentsOf: repeatElement(nil, count: s + 1 - maps.count)) }
        let stamp = ttl == nil ? 0 : store.clock.currentTimeMillis()
        if maps[s] == nil {
            maps[s] = [key: Entry(value: value, stamp: stamp)]
            live += 1
            store.retain(s)
        } else {
            maps[s]![key] = Entry(value: value, stamp: stamp)
        }
        if let ttl { cleanupIncrementally(ttl) }
    }

    /// Changes the value under `key` in place (no copy of a collection value), creating it with
    /// `initial` when absent. Counts as a write for TTL.
    @inlinable
    public func modify<R>(_ key: UK, initial: @autoclosure () -> UV, _ body: (inout UV) throws -> R) rethrows -> R {
        defer { if ttl != nil { touch(key, at: store.clock.currentTimeMillis()) } }
        let s = store.slotForWrite()
        if s >= maps.count { maps.append(contentsOf: repeatElement(nil, count: s + 1 - maps.count)) }
        let stamp = ttl == nil ? 0 : store.clock.currentTimeMillis()
        if maps[s] == nil {
            maps[s] = [:]
            live += 1
            store.retain(s)
        }
        if let ttl, let e = maps[s]![key], ttl.isExpired(lastAccess: e.stamp, now: stamp) { maps[s]![key] = nil }
        return try body(&maps[s]![key, default: Entry(value: initial(), stamp: stamp)].value)
    }

    /// Restarts the TTL clock of `key` for the current stream key (after a write).
    @inlinable
    func touch(_ key: UK, at stamp: Int64) {
        if let s = currentSlotIfPresent, maps[s]![key] != nil { maps[s]![key]!.stamp = stamp }
    }

    public func putAll(_ entries: [UK: UV]) {
        for (k, v) in entries { put(k, v) }
    }

    @inlinable
    public func remove(_ key: UK) {
        guard let s = currentSlotIfPresent else { return }
        removeEntry(slot: s, key: key)
    }

    public func contains(_ key: UK) -> Bool { get(key) != nil }

    /// All live entries of the current key (unordered).
    public func entries() -> [(key: UK, value: UV)] {
        guard let s = currentSlotIfPresent else { return [] }
        if let ttl {
            let now = store.clock.currentTimeMillis()
            purge(slot: s, ttl: ttl, now: now)
            guard maps.indices.contains(s), let m = maps[s] else { return [] }
            if ttl.updateType == .onReadAndWrite {
                for k in m.keys { maps[s]![k]!.stamp = now }
            }
            return m.map { ($0.key, $0.value.value) }
        }
        return maps[s]!.map { ($0.key, $0.value.value) }
    }

    /// Calls `body` for each live entry of the current key without materialising them (with TTL,
    /// expired entries are purged first).
    @inlinable
    public func forEach(_ body: (UK, UV) throws -> Void) rethrows {
        guard let s = currentSlotIfPresent else { return }
        if let ttl {
            purge(slot: s, ttl: ttl, now: store.clock.currentTimeMillis())
            guard s < maps.count, maps[s] != nil else { return }
        }
        for (k, e) in maps[s]! { try body(k, e.value) }
    }

    public func keys() -> [UK] { entries().map(\.key) }
    public func values() -> [UV] { entries().map(\.value) }
    public var isEmpty: Bool { entries().isEmpty }

    @inlinable
    public func clear() {
        guard let s = currentSlotIfPresent else { return }
        clearSlot(s)
    }

    @inlinable
    func removeEntry(slot s: Int, key: UK) {
        maps[s]![key] = nil
        if maps[s]!.isEmpty { clearSlot(s) }
    }

    @inlinable
    func clearSlot(_ s: Int) {
        maps[s] = nil
        live -= 1
        store.release(s)
    }

    @usableFromInline
    func purge(slot s: Int, ttl: StateTtlConfig, now: Int64) {
        guard let m = maps[s] else { return }
        let kept = m.filter { !ttl.isExpired(lastAccess: $0.value.stamp, now: now) }
        if kept.isEmpty { clearSlot(s) } else if kept.count != m.count { maps[s] = kept }
    }

    @usableFromInline
    func cleanupIncrementally(_ ttl: StateTtlConfig) {
        guard ttl.incrementalCleanupSize > 0, !maps.isEmpty else { return }
        let now = store.clock.currentTimeMillis()
        for _ in 0..<min(ttl.incrementalCleanupSize, maps.count) {
            if cleanupCursor >= maps.count { cleanupCursor = 0 }
            if maps[cleanupCursor] != nil { purge(slot: cleanupCursor, ttl: ttl, now: now) }
            cleanupCursor += 1
        }
    }

    @usableFromInline
    func removeExpired(now: Int64) {
        guard let ttl else { return }
        for s in maps.indices where maps[s] != nil { purge(slot: s, ttl: ttl, now: now) }
    }

    /// Entries as (key, entry) pairs: dictionary keys need not be strings.
    @usableFromInline struct Snapshot: Codable {
        var keys: [UK]
        var entries: [Entry]
    }

    @usableFromInline func dropSlots(_ slots: [Int]) {
        for s in slots where s < maps.count && maps[s] != nil {
            maps[s] = nil
            live -= 1
        }
    }

    /// The maps copied now (they share storage until written), encoded later off the task thread.
    @usableFromInline func captureAll(slotCount: Int) throws -> any ColumnSnapshot {
        var bySlot: [Int: [UK: Entry]] = [:]
        for s in 0..<min(slotCount, maps.count) {
            if let m = maps[s], !m.isEmpty { bySlot[s] = m }
        }
        return DeferredEntrySnapshot(bySlot: bySlot) { m in try StateCodec.encode(Snapshot(keys: Array(m.keys), entries: Array(m.values))) }
    }

    @usableFromInline func snapshotEntry(slot: Int) throws -> [UInt8]? {
        guard slot < maps.count, let m = maps[slot], !m.isEmpty else { return nil }
        return try StateCodec.encode(Snapshot(keys: Array(m.keys), entries: Array(m.values)))
    }

    @usableFromInline func restoreEntry(_ bytes: [UInt8]) throws {
        let snap = try StateCodec.decode(Snapshot.self, from: bytes)
        guard snap.keys.count == snap.entries.count, !snap.keys.isEmpty else { return }
        let s = store.slotForWrite()
        if s >= maps.count { maps.append(contentsOf: repeatElement(nil, count: s + 1 - maps.count)) }
        if maps[s] == nil {
            live += 1
            store.retain(s)
        }
        maps[s] = Dictionary(uniqueKeysWithValues: zip(snap.keys, snap.entries))
    }
}
