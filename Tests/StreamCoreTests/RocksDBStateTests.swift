import Foundation
import StreamCore
import StreamTesting
import XCTest

/// Runs `body` with keyed harnesses on RocksDB that keep at most `resident` keys in memory (1:
/// nearly every access writes a key out and reads another back).
func onRocksDB(resident: Int, in dir: TemporaryDirectory) -> StateBackendKind {
    .rocksDB(RocksDBStateOptions(directory: dir.path, maxResidentKeys: resident))
}

/// The keyed-state contract suite (`KeyedStateTests`) again, on the RocksDB backend with one
/// resident key: every value goes through RocksDB between accesses to different keys.
final class RocksDBKeyedStateTests: KeyedStateTests {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        HarnessStateBackend.current = onRocksDB(resident: 1, in: dir)
    }

    override func tearDown() {
        HarnessStateBackend.current = .heap
        dir = nil
    }

    override func testIncrementalCleanupRemovesOtherKeysExpiredEntries() throws {
        throw XCTSkip("incremental TTL cleanup walks the keys in memory: heap only, as in Flink (RocksDB: removeExpired and expiry on read)")
    }
}

/// What only the RocksDB backend does: write keys out and read them back, checkpoint through
/// RocksDB's own checkpoints (incremental), restore at another parallelism.
final class RocksDBBackendTests: XCTestCase {
    struct Acc: Codable, Equatable { var sum: Int64; var items: [String] }

    func makeBackend(_ dir: TemporaryDirectory, resident: Int = 1 << 20, range: ClosedRange<Int>? = nil,
                     maxParallelism: Int = 128) throws -> KeyedStateBackend<String> {
        try KeyedStateBackend<String>(clock: ManualClock(0), maxParallelism: maxParallelism, keyGroupRange: range,
                                      rocksDB: RocksDBStateOptions(directory: dir.path, maxResidentKeys: resident))
    }

    func testKeysBeyondTheResidentLimitAreWrittenOutAndReadBack() throws {
        let dir = try TemporaryDirectory()
        let b = try makeBackend(dir, resident: 10)
        let value = try b.getState(ValueStateDescriptor<Acc>("acc"))
        let list = try b.getListState(ListStateDescriptor<Int>("list"))
        let map = try b.getMapState(MapStateDescriptor<String, Int>("map"))
        let windows = try b.getNamespacedState(NamespacedStateDescriptor<Int64>("windows"))
        for round in 0..<3 {
            for i in 0..<200 {
                b.setCurrentKey("k\(i)")
                value.update(Acc(sum: (value.value()?.sum ?? 0) + Int64(i), items: (value.value()?.items ?? []) + ["r\(round)"]))
                list.add(round)
                map.put("r\(round)", i)
                _ = windows.fold(Int64(round * 10)) { ($0 ?? 0) + 1 }
                _ = windows.fold(Int64(round * 10 + 5)) { ($0 ?? 0) + 2 }
            }
        }
        XCTAssertLessThanOrEqual(b.rocksDBStatistics!.residentKeys, 11)
        XCTAssertGreaterThan(b.rocksDBStatistics!.evictions, 500)
        XCTAssertGreaterThan(b.rocksDBStatistics!.loads, 300)
        for i in 0..<200 {
            b.setCurrentKey("k\(i)")
            XCTAssertEqual(value.value(), Acc(sum: Int64(3 * i), items: ["r0", "r1", "r2"]))
            XCTAssertEqual(list.get(), [0, 1, 2])
            XCTAssertEqual(map.entries().map(\.key).sorted(), ["r0", "r1", "r2"])
            XCTAssertEqual(windows.get(slot: b.currentKeySlot, 20), 1)
            XCTAssertEqual(windows.get(slot: b.currentKeySlot, 25), 2)
        }
        XCTAssertEqual(b.entryCounts, ["acc": 200, "list": 200, "map": 200, "windows": 200])
        // Clearing keys written out deletes them from RocksDB too.
        for i in 0..<200 {
            b.setCurrentKey("k\(i)")
            value.clear(); list.clear(); map.clear()
            for ns: Int64 in [0, 5, 10, 15, 20, 25] { windows.remove(ns) }
        }
        XCTAssertEqual(b.keys, [])
        XCTAssertEqual(b.entryCounts, [:])
    }

    /// Window state removed by slot (timers firing for keys that are not current) reads the key
    /// back first.
    func testSlotAccessReadsTheKeyBack() throws {
        let dir = try TemporaryDirectory()
        let b = try makeBackend(dir, resident: 2)
        let windows = try b.getNamespacedState(NamespacedStateDescriptor<Int64>("w"))
        var slots: [Int] = []
        for i in 0..<20 {
            b.setCurrentKey("k\(i)")
            windows.put(100, Int64(i))
            slots.append(b.currentKeySlot)
        }
        b.setCurrentKey("k19")
        for (i, s) in slots.enumerated() { XCTAssertEqual(windows.remove(slot: s, 100), Int64(i)) }
        XCTAssertEqual(b.keys, [])
    }

    func snapshot(_ b: KeyedStateBackend<String>, id: CheckpointId) throws -> RocksDBStateHandle {
        let keyed = KeyedContext(backend: b, processingTime: ProcessingTimeService(clock: ManualClock(0)))
        return try XCTUnwrap(try keyed.captureKeyedState(id)().rocksDB)
    }

    func restore(_ handles: [RocksDBStateHandle], _ dir: TemporaryDirectory, range: ClosedRange<Int>?,
                 resident: Int = 1 << 20) throws -> KeyedStateBackend<String> {
        let b = try makeBackend(dir, resident: resident, range: range)
        var r = RestoredState(checkpointId: 1)
        r.rocksDB = handles
        try KeyedContext(backend: b, processingTime: ProcessingTimeService(clock: ManualClock(0))).restore(r)
        return b
    }

    func values(_ b: KeyedStateBackend<String>) throws -> [String: Int64] {
        let v = try b.getState(ValueStateDescriptor<Int64>("v"))
        var out: [String: Int64] = [:]
        for k in b.keys {
            b.setCurrentKey(k)
            out[k] = v.value()
        }
        return out
    }

    /// A checkpoint is a RocksDB checkpoint of hard-linked SST files; the next one uploads only
    /// the files that are new; the restored backend has every key, at 1 → 2 → 1 subtasks.
    func testIncrementalCheckpointsAndRestoreAtAnotherParallelism() throws {
        let dir = try TemporaryDirectory()
        let b = try makeBackend(dir, resident: 1_000)
        let v = try b.getState(ValueStateDescriptor<Int64>("v"))
        var expected: [String: Int64] = [:]
        for i in 0..<5_000 {
            b.setCurrentKey("key-\(i)")
            v.update(Int64(i))
            expected["key-\(i)"] = Int64(i)
        }
        let first = try snapshot(b, id: 1)
        XCTAssertFalse(first.files.isEmpty)
        XCTAssertEqual(first.newBytes, first.files.map(\.size).reduce(0, +), "the first checkpoint uploads everything")
        for i in 0..<10 {
            b.setCurrentKey("key-\(i)")
            v.update(-1)
            expected["key-\(i)"] = -1
        }
        b.setCurrentKey("key-4999")
        v.clear()
        expected["key-4999"] = nil
        let second = try snapshot(b, id: 2)
        XCTAssertGreaterThan(second.newBytes, 0)
        XCTAssertLessThan(second.newBytes * 5, first.newBytes, "a small change uploads a small file")
        XCTAssertTrue(Set(first.files.map(\.sharedName)).isSubset(of: Set(second.files.map(\.sharedName))),
                      "earlier files are referenced, not uploaded again")
        let snapshotDir = try TemporaryDirectory()
        // Keep the files: the local checkpoints go away with the backend.
        let kept = try keep([second], in: snapshotDir)

        // 1 → 2
        let halves = [0...63, 64...127]
        let restoredDir = try TemporaryDirectory()
        let parts = try halves.map { try restore(kept, restoredDir, range: $0, resident: 100) }
        var seen: [String: Int64] = [:]
        for (p, range) in zip(parts, halves) {
            for (k, x) in try values(p) {
                XCTAssertTrue(range.contains(KeyGroupRangeAssignment.keyGroup(of: k, maxParallelism: 128)))
                seen[k] = x
            }
        }
        XCTAssertEqual(seen, expected)
        // 2 → 1
        let handles = try parts.enumerated().map { try snapshot($0.element, id: 3 + Int64($0.offset)) }
        let keptAgain = try keep(handles, in: snapshotDir)
        let wholeDir = try TemporaryDirectory()
        let whole = try restore(keptAgain, wholeDir, range: nil, resident: 100)
        XCTAssertEqual(try values(whole), expected)
    }

    /// The heap backend restores a RocksDB checkpoint (and RocksDB the heap's): switching backends.
    func testSwitchingBackends() throws {
        let dir = try TemporaryDirectory()
        let b = try makeBackend(dir, resident: 3)
        let v = try b.getState(ValueStateDescriptor<Int64>("v"))
        for i in 0..<50 { b.setCurrentKey("k\(i)"); v.update(Int64(i * i)) }
        let keptDir = try TemporaryDirectory()
        let kept = try keep([try snapshot(b, id: 1)], in: keptDir)
        let heap = KeyedStateBackend<String>(clock: ManualClock(0), maxParallelism: 128)
        var r = RestoredState(checkpointId: 1)
        r.rocksDB = kept
        try KeyedContext(backend: heap, processingTime: ProcessingTimeService(clock: ManualClock(0))).restore(r)
        let expected = Dictionary(uniqueKeysWithValues: (0..<50).map { ("k\($0)", Int64($0 * $0)) })
        XCTAssertEqual(try values(heap), expected)
        let heapGroups = try heap.captureKeyGroupsForTest()
        let backDir = try TemporaryDirectory()
        let back = try makeBackend(backDir, resident: 3)
        try KeyedContext(backend: back, processingTime: ProcessingTimeService(clock: ManualClock(0))).restoreKeyGroups(heapGroups)
        XCTAssertEqual(try values(back), expected)
    }

    /// Copies a handle's files away (as a checkpoint store does) and points the handle at them.
    func keep(_ handles: [RocksDBStateHandle], in dir: TemporaryDirectory) throws -> [RocksDBStateHandle] {
        try handles.map { h in
            var h = h
            for i in h.files.indices {
                let dest = dir.path + "/" + h.files[i].sharedName
                if access(dest, F_OK) != 0 { XCTAssertEqual(link(h.files[i].path, dest), 0) }
                h.files[i].path = dest
            }
            return h
        }
    }
}

extension KeyedStateBackend {
    func captureKeyGroupsForTest() throws -> [KeyGroupState] {
        try KeyedContext(backend: self, processingTime: ProcessingTimeService(clock: ManualClock(0))).snapshotKeyGroups()
    }
}

/// The checkpoint suite (`CheckpointTests`: restore, 1 → 2 → 1, barrier alignment, file
/// checkpoints with a corrupt one, savepoints) with keyed state in RocksDB, ten keys resident.
final class RocksDBCheckpointTests: CheckpointTests {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        stateBackend = .rocksDB(RocksDBStateOptions(directory: dir.path, maxResidentKeys: 10))
    }

    override func tearDown() { dir = nil }

    // Declared here so Linux test discovery finds the class; its inherited tests run too.
    override func testRestoreAtParallelismOneTwoOne() throws { try super.testRestoreAtParallelismOneTwoOne() }
}

extension RocksDBCheckpointTests {
    /// File checkpoints of RocksDB state: SST files go to `shared/` once and are referenced by
    /// later checkpoints; files no retained checkpoint needs are deleted; a corrupt shared file makes
    /// its checkpoint unusable and the previous one is restored (at parallelism 2), continuing exactly.
    func testSharedFilesAreReferencedCollectedAndVerified() throws {
        let dir = try TemporaryDirectory()
        let disk = try FileCheckpointStore(directory: dir.path + "/chk", retainedCheckpoints: 3)
        let memory = InMemoryCheckpointStore()
        let full = try countingJob(parallelism: 1, store: memory, restore: nil)
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.stateBackend = stateBackend
        env.enableCheckpointing(.milliseconds(3), store: disk)
        env.fromSource(Self.source(), watermarkStrategy: .noWatermarks(), name: "numbers")
            .keyBy { $0.key }.process(Count()).sinkTo(DiscardingSink<String>())
        try env.execute("counting")

        let ids = try disk.storage.checkpointIds()
        XCTAssertLessThanOrEqual(ids.count, 3, "retention keeps three")
        let retained = try ids.map { try disk.load(named: "chk-\($0)") }
        let referenced = Set(retained.flatMap { $0.operators.compactMap(\.rocksDB).flatMap(\.files).map(\.sharedName) })
        let shared = Set(try FileManager.default.contentsOfDirectory(atPath: disk.sharedDirectory))
        XCTAssertFalse(referenced.isEmpty)
        XCTAssertEqual(shared, referenced, "shared/ holds exactly the files retained checkpoints reference")
        for cp in retained {
            for h in cp.operators.compactMap(\.rocksDB) {
                XCTAssertTrue(h.files.allSatisfy { $0.path.hasPrefix(disk.sharedDirectory) })
                XCTAssertLessThanOrEqual(h.newBytes, h.files.map(\.size).reduce(0, +))
            }
        }

        // Corrupt a file that a retained checkpoint added (none before it has it): the newest
        // checkpoint without that file is restored, the ones with it are skipped with a warning.
        func files(_ cp: CompletedCheckpoint) -> Set<String> { Set(cp.operators.compactMap(\.rocksDB).flatMap(\.files).map(\.sharedName)) }
        guard let added = retained.indices.dropFirst().last(where: { !files(retained[$0]).subtracting(files(retained[$0 - 1])).isEmpty }) else {
            throw XCTSkip("no retained checkpoint added a file (nothing changed between checkpoints)")
        }
        let name = files(retained[added]).subtracting(files(retained[added - 1])).sorted()[0]
        let path = disk.sharedDirectory + "/" + name
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        let expected = retained.last { !files($0).contains(name) }!
        let (fallback, warnings) = disk.latest()
        XCTAssertEqual(fallback?.id, expected.id)
        XCTAssertTrue(warnings.contains { $0.contains("chk-\(retained[added].id)") && $0.contains("corrupt") }, "\(warnings)")

        // The previous checkpoint restores at parallelism 2 and the run continues exactly.
        let restoredOutput = try countingJob(parallelism: 2, store: InMemoryCheckpointStore(), restore: try XCTUnwrap(fallback))
        if fallback!.operators.contains(where: { !($0.sourceSplits ?? []).isEmpty }) {
            assertContinues(restoredOutput, from: fallback!, full: full)
        }
    }
}
