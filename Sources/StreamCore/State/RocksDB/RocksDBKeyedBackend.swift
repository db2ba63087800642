#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The typed half of the RocksDB backend: values move between the state columns (the resident
/// keys) and RocksDB, one key at a time, each state of a key under `prefix(key) + state name`,
/// encoded as a checkpoint encodes one entry.
extension KeyedStateBackend {
    @usableFromInline
    func rocksPrefix(_ key: K) throws -> [UInt8] {
        RocksDBKeys.prefix(keyGroup: KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: maxParallelism),
                           key: try (rocks?.keyEncoder ?? BinaryEncoder()).encode(key))
    }

    /// A key lost its last state after RocksDB got values of it: they are deleted with the next write.
    @usableFromInline
    func rocksForget(_ key: K) {
        guard let rocks else { return }
        do { rocks.pendingDeletes.append(try rocksPrefix(key)) } catch { rocks.failure = rocks.failure ?? error }
    }

    @usableFromInline
    func rocksSlowPath(slot: Int, mayEvict: Bool) {
        guard let rocks, !isDisposed else { return }
        do {
            if mayEvict, rocks.resident >= rocks.maxResident { try evict(current: slot) }
            if slot >= 0, rocks.flags[slot] & RocksDBKeyedState.cold != 0 { try load(slot) }
        } catch {
            rocks.failure = rocks.failure ?? error
        }
    }

    /// Reads the values of the key in `slot` back into the columns; the current key is kept.
    func load(_ slot: Int) throws {
        guard let rocks, let key = slotKeys[slot] else { return }
        let savedKey = _currentKey, savedSlot = currentSlot
        defer {
            _currentKey = savedKey
            currentSlot = savedSlot == slot && slotKeys[slot] == nil ? -1 : savedSlot
        }
        rocks.loaded(slot)   // first: reading a column by slot while restoring must not load again
        _currentKey = key
        currentSlot = slot
        slotRefs[slot] = 0
        var k = try rocksPrefix(key)
        let prefixLength = k.count
        for (name, column) in registeredColumns {
            k.removeSubrange(prefixLength...)
            k.append(contentsOf: name)
            guard let bytes = try rocks.db.get(k) else { continue }
            try column.restoreEntry(bytes)
        }
        if slotRefs[slot] == 0 { releaseSlot(slot) }   // nothing of it left (e.g. only unregistered states)
    }

    /// Writes out the least recently used resident keys until there is room for one more.
    func evict(current: Int) throws {
        guard let rocks, !rocks.isFlushing else { return }   // the barrier's state is not in RocksDB yet
        let batchSize = max(1, min(4096, rocks.maxResident / 16))
        let victims = rocks.victims(rocks.resident - rocks.maxResident + batchSize, current: current)
        guard !victims.isEmpty else { return }
        try rocks.db.write(try captureWrites(victims.filter { rocks.flags[$0] & RocksDBKeyedState.dirty != 0 })())
        for c in columns.values { c.dropSlots(victims) }
        for s in victims { rocks.evicted(s) }
    }

    /// Captures the values of `slots` and the pending deletes (on the task thread; marks the slots
    /// written); the closure encodes them into a batch, in key order (any thread). A state a key
    /// no longer holds is deleted if RocksDB may have it.
    private func captureWrites(_ slots: [Int]) throws -> () throws -> WriteBatch {
        guard let rocks else { throw StateError("not a RocksDB backend") }
        let deletes = rocks.pendingDeletes
        rocks.pendingDeletes.removeAll(keepingCapacity: true)
        let names = allStateNames.map { Array($0.utf8) }
        let registered = registeredColumns
        let captured = try registered.map { try $0.column.captureEntries(slots) }
        let allKeys = slotKeys   // copy-on-write: O(1) here
        var persisted: [Bool] = []
        persisted.reserveCapacity(slots.count)
        for s in slots {
            persisted.append(rocks.flags[s] & RocksDBKeyedState.persisted != 0)
            rocks.flags[s] = (rocks.flags[s] & ~RocksDBKeyedState.dirty) | RocksDBKeyedState.persisted
        }
        let maxParallelism = self.maxParallelism
        return {
            let batch = WriteBatch()
            for prefix in deletes { for name in names { batch.delete(prefix + name) } }
            let encoded = try captured.map { try $0() }
            // In key order: RocksDB's memtable takes sorted inserts much faster.
            let encoder = BinaryEncoder()
            var prefixes: [[UInt8]] = []
            prefixes.reserveCapacity(slots.count)
            for s in slots {
                let key = allKeys[s]!
                prefixes.append(RocksDBKeys.prefix(keyGroup: KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: maxParallelism),
                                                   key: try encoder.encode(key)))
            }
            var order = Array(prefixes.indices)
            prefixes.withUnsafeBufferPointer { p in
                order.sort { a, b in
                    p[a].withUnsafeBytes { x in
                        p[b].withUnsafeBytes { y in
                            let c = memcmp(x.baseAddress!, y.baseAddress!, min(x.count, y.count))
                            return c != 0 ? c < 0 : x.count < y.count
                        }
                    }
                }
            }
            for i in order {
                let prefix = prefixes[i]
                var k = prefix
                for (c, (name, _)) in registered.enumerated() {
                    k.removeSubrange(prefix.count...)
                    k.append(contentsOf: name)
                    if let bytes = encoded[c][i] {
                        batch.put(k, bytes)
                    } else if persisted[i] {
                        batch.delete(k)
                    }
                }
            }
            return batch
        }
    }

    // MARK: checkpoints

    /// Encodes every key changed since the last checkpoint (on the task thread: the pause); the
    /// closure writes them to RocksDB, takes a RocksDB checkpoint and describes its files (on the
    /// thread that stores the checkpoint). Until then keys are not written out to make room.
    func captureRocksDB(_ id: CheckpointId) throws -> () throws -> RocksDBStateHandle {
        guard let rocks else { throw StateError("not a RocksDB backend") }
        if let failure = rocks.failure { throw failure }
        var changed: [Int] = []
        for s in rocks.flags.indices where rocks.flags[s] & (RocksDBKeyedState.dirty | RocksDBKeyedState.cold) == RocksDBKeyedState.dirty {
            changed.append(s)
        }
        try rocks.beginFlush(id, try captureWrites(changed))
        let range = keyGroupRange
        return { try rocks.finishFlush(id, keyGroups: range) }
    }

    /// Restores from RocksDB checkpoints: the key groups of this backend's range from each handle.
    /// With one handle of exactly this range its files become the database (nothing is copied);
    /// otherwise the range is read out of each and written into a fresh database. Every key gets a
    /// slot; values are read when a key is first used.
    func restoreRocksDB(_ handles: [RocksDBStateHandle]) throws {
        guard let rocks else {
            try restoreRocksDBIntoMemory(handles)
            return
        }
        let relevant = handles.filter { $0.keyGroups.overlaps(keyGroupRange) }
        guard !relevant.isEmpty else { return }
        let target = rocks.directory + "/restored-" + CheckpointFiles.randomSuffix()
        if relevant.count == 1, relevant[0].keyGroups == keyGroupRange {
            try RocksDBKeyedState.materialize(relevant[0], at: target)
            try rocks.replaceDatabase(with: target)
            rocks.uploaded.withLock { up in for f in relevant[0].files { up[f.localName] = f } }
        } else {
            try rocks.replaceDatabase(with: target)
            let batch = WriteBatch()
            try forEachEntry(in: relevant) { key, value in
                batch.put(Array(key), Array(value))
                if batch.count >= 65_536 { try rocks.db.write(batch); batch.clear() }
            }
            try rocks.db.write(batch)
        }
        // The key index: one cold slot per key.
        var previous: [UInt8] = []
        try rocks.db.scan(from: [], until: nil) { k, _ in
            guard let p = RocksDBKeys.parse(k) else { throw StateError("RocksDB state holds a malformed key: the checkpoint is damaged") }
            if p.prefixLength == previous.count, previous.withUnsafeBytes({ $0.elementsEqual(k[0..<p.prefixLength]) }) { return true }
            previous = Array(k[0..<p.prefixLength])
            // Any non-zero count keeps a cold slot; reading the key back recounts it.
            let slot = takeSlot(for: try StateCodec.decode(K.self, from: Array(k[p.key])), refs: 1)
            rocks.coldSlot(slot)
            return true
        }
    }

    /// Calls `body` with every (RocksDB key, value) of this backend's key groups in `handles`.
    private func forEachEntry(in handles: [RocksDBStateHandle],
                              _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws {
        let scratch = (rocks?.directory ?? "/tmp") + "/restore-scratch-" + CheckpointFiles.randomSuffix()
        defer { try? CheckpointFiles.removeTree(scratch) }
        for (i, h) in handles.enumerated() {
            let dir = scratch + "/\(i)"
            try RocksDBKeyedState.materialize(h, at: dir)
            let db = try RocksDB(path: dir)
            let lo = max(h.keyGroupFirst, keyGroupRange.lowerBound)
            let hi = min(h.keyGroupLast, keyGroupRange.upperBound)
            try db.scan(from: RocksDBKeys.keyGroupStart(lo), until: RocksDBKeys.keyGroupStart(hi + 1)) { k, v in
                try body(k, v)
                return true
            }
        }
    }

    /// A heap backend restoring a RocksDB checkpoint (switching backends): every entry is read.
    private func restoreRocksDBIntoMemory(_ handles: [RocksDBStateHandle]) throws {
        let relevant = handles.filter { $0.keyGroups.overlaps(keyGroupRange) }
        guard !relevant.isEmpty else { return }
        var byName: [String: [(K, [UInt8])]] = [:]
        try forEachEntry(in: relevant) { k, v in
            guard let p = RocksDBKeys.parse(k) else { throw StateError("RocksDB state holds a malformed key: the checkpoint is damaged") }
            let key = try StateCodec.decode(K.self, from: Array(k[p.key]))
            byName[String(decoding: k[p.prefixLength...], as: UTF8.self), default: []].append((key, Array(v)))
        }
        for (name, entries) in byName {
            let apply: (any StateColumn) throws -> Void = { [unowned self] column in
                for (key, bytes) in entries {
                    self.setCurrentKey(key)
                    try column.restoreEntry(bytes)
                }
            }
            if let column = columns[name] { try apply(column) } else { deferredRestores[name] = apply }
        }
    }
}

extension KeyedStateBackend {
    /// Adds to `counts` the entries of keys whose values are only in RocksDB.
    func addColdEntryCounts(_ counts: inout [String: Int]) {
        guard let rocks else { return }
        do {
            try rocks.db.scan(from: [], until: nil) { k, _ in
                guard let p = RocksDBKeys.parse(k), let key = try? StateCodec.decode(K.self, from: Array(k[p.key])) else { return true }
                let s = keyToSlot.find(key)
                if s >= 0, rocks.flags[s] & RocksDBKeyedState.cold != 0 {
                    counts[String(decoding: k[p.prefixLength...], as: UTF8.self), default: 0] += 1
                }
                return true
            }
        } catch {
            rocks.failure = rocks.failure ?? error
        }
    }

    /// Reads the keys written out back a batch at a time and removes what expired.
    func removeExpiredInRocksDB() {
        guard let rocks else { return }
        let now = clock.currentTimeMillis()
        do {
            let cold = rocks.flags.indices.filter { rocks.flags[$0] & RocksDBKeyedState.cold != 0 }
            var i = 0
            repeat {
                for s in cold[i..<min(cold.count, i + max(1, rocks.maxResident))] where s < slotKeys.count && slotKeys[s] != nil {
                    try load(s)
                }
                i += max(1, rocks.maxResident)
                for c in columns.values { c.removeExpired(now: now) }
                if rocks.resident > rocks.maxResident { try evict(current: -1) }
            } while i < cold.count
        } catch {
            rocks.failure = rocks.failure ?? error
        }
    }
}
