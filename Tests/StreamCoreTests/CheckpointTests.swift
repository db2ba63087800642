import Foundation
import StreamCore
import Synchronization
import StreamTesting
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Aligned barrier checkpoints and restore (issue 4): a job restored from any of its checkpoints
/// continues exactly where the checkpoint was taken — source positions and keyed state agree —
/// at the same or another parallelism, and two-input operators align their inputs.
class CheckpointTests: XCTestCase {
    /// The state backend every job of the suite uses (`RocksDBCheckpointTests`: RocksDB).
    var stateBackend: StateBackendKind = .heap

    struct Rec: Codable, Sendable {
        let i: Int64
        let key: Int64
    }

    /// Counts per key in a ValueState; emits "i key count" for every record.
    final class Count: KeyedProcessFunction {
        typealias Key = Int64
        var count: ValueState<Int64>!
        func open(_ context: RuntimeContext) throws { count = try context.getState(ValueStateDescriptor<Int64>("count")) }
        func processElement(_ r: Rec, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<String>) throws {
            let c = (count.value() ?? 0) + 1
            count.update(c)
            try out.collect("\(r.i) \(r.key) \(c)")
        }
    }

    /// Counts per key over both inputs; emits "side i key count".
    final class CountBoth: KeyedCoProcessFunction {
        typealias Key = Int64
        var count: ValueState<Int64>!
        func open(_ context: RuntimeContext) throws { count = try context.getState(ValueStateDescriptor<Int64>("count")) }
        func bump(_ side: String, _ r: Rec, _ out: Collector<String>) throws {
            let c = (count.value() ?? 0) + 1
            count.update(c)
            try out.collect("\(side)\(r.i) \(r.key) \(c)")
        }
        func processElement1(_ r: Rec, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<String>) throws { try bump("a", r, out) }
        func processElement2(_ r: Rec, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<String>) throws { try bump("b", r, out) }
    }

    static let records: Int64 = 60_000

    /// Records slowly enough (a pause every 600 records) that periodic checkpoints land mid-stream.
    static func source(_ count: Int64 = records, offset: Int64 = 0, pauseEvery: Int64 = 600) -> DataGeneratorSource<Rec> {
        DataGeneratorSource(count: count, splits: 4) { i in
            if i % pauseEvery == 0 { usleep(300) }
            return Rec(i: offset + i, key: (offset + i) % 97)
        }
    }

    func countingJob(parallelism: Int, store: InMemoryCheckpointStore, restore: CompletedCheckpoint?) throws -> [String] {
        let env = StreamExecutionEnvironment(parallelism: parallelism)
        env.enableCheckpointing(.milliseconds(3), store: store)
        env.restoreFrom = restore
        let sink = CollectSink<String>()
        env.fromSource(Self.source(), watermarkStrategy: .noWatermarks(), name: "numbers")
            .keyBy { $0.key }
            .process(Count())
            .sinkTo(sink)
        try env.execute("counting")
        return sink.values
    }

    /// The restored run reads exactly the records the checkpoint's source positions leave, once
    /// each, and per key its counts continue from the checkpointed state, without gap or repeat, up
    /// to the full run's final count. (Which count a given record gets depends on how the splits
    /// interleave, which differs between runs and parallelisms; these properties do not.)
    func assertContinues(_ restored: [String], from checkpoint: CompletedCheckpoint, full: [String],
                         file: StaticString = #filePath, line: UInt = #line) {
        var remaining = Set<Int64>()
        for op in checkpoint.operators {
            for bytes in op.sourceSplits ?? [] {
                let split = try! BinaryDecoder().decode(GeneratorSplit.self, from: bytes)
                remaining.formUnion(split.position..<split.end)
            }
        }
        XCTAssertFalse(remaining.isEmpty, "the checkpoint has nothing left to read", file: file, line: line)
        let read = restored.map { Int64($0.split(separator: " ")[0])! }
        XCTAssertEqual(read.count, Set(read).count, "a record was emitted twice", file: file, line: line)
        XCTAssertEqual(Set(read), remaining, "the restored run did not read exactly what the checkpoint left", file: file, line: line)
        var finalByKey: [String: Int] = [:]
        for l in full {
            let f = l.split(separator: " ")
            finalByKey[String(f[1])] = max(finalByKey[String(f[1])] ?? 0, Int(f[2])!)
        }
        var countsByKey: [String: [Int]] = [:]
        for l in restored {
            let f = l.split(separator: " ")
            countsByKey[String(f[1]), default: []].append(Int(f[2])!)
        }
        for (key, counts) in countsByKey {
            let sorted = counts.sorted()
            XCTAssertEqual(sorted, Array(sorted.first!...sorted.last!), "key \(key): counts skip or repeat", file: file, line: line)
            XCTAssertEqual(sorted.last, finalByKey[key], "key \(key) did not reach its final count", file: file, line: line)
        }
    }

    /// A checkpoint from the middle of a run (sources still had records to read).
    func middle(_ store: InMemoryCheckpointStore) throws -> CompletedCheckpoint {
        let mid = store.checkpoints.filter { cp in cp.operators.contains { !($0.sourceSplits ?? []).isEmpty } }
        guard !mid.isEmpty else { throw XCTSkip("no checkpoint landed mid-stream on this machine") }
        return mid[mid.count / 2]
    }

    func testRestoreContinuesWhereTheCheckpointWasTaken() throws {
        let store = InMemoryCheckpointStore()
        let full = try countingJob(parallelism: 1, store: store, restore: nil)
        XCTAssertEqual(full.count, Int(Self.records))
        XCTAssertGreaterThan(store.checkpoints.count, 1)
        XCTAssertEqual(store.checkpoints.map(\.id), Array(1...Int64(store.checkpoints.count)), "ids count up from 1")
        let checkpoint = try middle(store)
        let restored = try countingJob(parallelism: 1, store: InMemoryCheckpointStore(), restore: checkpoint)
        assertContinues(restored, from: checkpoint, full: full)
    }

    func testRestoreAtParallelismOneTwoOne() throws {
        let store1 = InMemoryCheckpointStore()
        let full = try countingJob(parallelism: 1, store: store1, restore: nil)
        let store2 = InMemoryCheckpointStore()
        let mid1 = try middle(store1)
        let at2 = try countingJob(parallelism: 2, store: store2, restore: mid1)
        assertContinues(at2, from: mid1, full: full)
        // Key groups and splits were redistributed over two subtasks, and back to one.
        let mid2 = try middle(store2)
        XCTAssertEqual(Set(mid2.operators.filter { $0.operatorId.hasSuffix("KeyedProcess") }.map(\.subtask)), [0, 1])
        let back = try countingJob(parallelism: 1, store: InMemoryCheckpointStore(), restore: mid2)
        assertContinues(back, from: mid2, full: full)
    }

    func testTwoInputsAlignBarriers() throws {
        func run(_ store: InMemoryCheckpointStore, _ restore: CompletedCheckpoint?) throws -> [String] {
            let env = StreamExecutionEnvironment(parallelism: 2)
            env.stateBackend = stateBackend
            env.enableCheckpointing(.milliseconds(3), store: store)
            env.restoreFrom = restore
            env.bufferSize = 16   // small batches: records behind a barrier reach the operator early
            let sink = CollectSink<String>()
            let a = env.fromSource(Self.source(), watermarkStrategy: .noWatermarks(), name: "a")
            // Input b is slow: a's barrier arrives well before b's, with a's next records queued
            // behind it, which alignment must hold back until b's barrier is in.
            // (One subtask of b, on slot 0: slot 1's operator has to wait for it.)
            let b = env.fromSource(Self.source(20_000, offset: 1_000_000, pauseEvery: 40), watermarkStrategy: .noWatermarks(),
                                   name: "b", parallelism: 1)
            a.keyBy { $0.key }.connect(b.keyBy { $0.key }).process(CountBoth()).sinkTo(sink)
            try env.execute("two inputs")
            return sink.values
        }
        let store = InMemoryCheckpointStore()
        let full = try run(store, nil)
        // Counts over both inputs interleave differently from run to run, so compare per run: the
        // restored run's counts per key continue without gap or repeat from the checkpoint — which
        // holds only if the snapshot saw exactly the records before the barrier on both inputs.
        let restored = try run(InMemoryCheckpointStore(), try middle(store))
        XCTAssertLessThan(restored.count, full.count)
        var counts: [String: [Int]] = [:]
        var seen = Set<String>()
        for l in restored {
            let f = l.split(separator: " ")
            XCTAssertTrue(seen.insert(String(f[0])).inserted, "record \(f[0]) twice")
            counts[String(f[1]), default: []].append(Int(f[2])!)
        }
        let finals = Dictionary(grouping: full, by: { String($0.split(separator: " ")[1]) }).mapValues { $0.count }
        for (key, c) in counts {
            let sorted = c.sorted()
            XCTAssertEqual(sorted, Array(sorted.first!...sorted.last!), "key \(key)")
            XCTAssertEqual(sorted.last, finals[key], "key \(key)")
        }
        // Records before the checkpoint + records after it = every record, once.
        let before = Set(full.map { String($0.split(separator: " ")[0]) }).subtracting(seen)
        XCTAssertEqual(before.count + seen.count, full.count)
    }

    /// A transactional writer: records go to the open transaction, which is pre-committed at the
    /// barrier and committed when the checkpoint completes.
    final class Ledger: Sendable {
        let committed = Mutex<[Int64]>([])
        let commits = Mutex<[CheckpointId]>([])
    }

    struct LedgerSink: Sink {
        let ledger: Ledger
        func createWriter(_ context: SinkInitContext) -> Writer { Writer(ledger: ledger) }
        final class Writer: CheckpointedSinkWriter {
            let ledger: Ledger
            var open: [Int64] = []
            var pending: [CheckpointId: [Int64]] = [:]
            init(ledger: Ledger) { self.ledger = ledger }
            func initializeState(_ restored: [[UInt8]]) throws {}
            func write(_ value: Int64, context: SinkWriterContext) throws { open.append(value) }
            func snapshotState(checkpointId: CheckpointId) throws -> [UInt8] {
                pending[checkpointId] = open
                open = []
                return []
            }
            func notifyCheckpointComplete(_ id: CheckpointId) throws {
                for cid in pending.keys.sorted() where cid <= id {
                    let rows = pending.removeValue(forKey: cid)!
                    ledger.committed.withLock { $0 += rows }
                    ledger.commits.withLock { $0.append(cid) }
                }
            }
        }
    }

    func testSinksCommitOnCompletionAndTheFinalCheckpointCommitsTheRest() throws {
        let ledger = Ledger()
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.stateBackend = stateBackend
        let store = InMemoryCheckpointStore()
        env.enableCheckpointing(.milliseconds(3), store: store)
        env.fromSource(Self.source(), watermarkStrategy: .noWatermarks(), name: "numbers")
            .map { $0.i }
            .sinkTo(LedgerSink(ledger: ledger))
        try env.execute("ledger")
        let committed = ledger.committed.withLock { $0 }
        XCTAssertEqual(committed.sorted(), Array(0..<Self.records), "every record committed exactly once")
        XCTAssertGreaterThan(ledger.commits.withLock { $0.count }, 2, "commits happened along the way, not only at the end")
        XCTAssertEqual(store.latest?.operators.allSatisfy { ($0.sourceSplits ?? []).isEmpty }, true,
                       "the final checkpoint has no splits left to read")
    }

    /// Checkpoints on disk: restore from the latest; a corrupt newest one is skipped with a warning.
    func testFileCheckpointsRestoreAndSkipACorruptOne() throws {
        let dir = NSTemporaryDirectory() + "tributary-chk-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let memory = InMemoryCheckpointStore()
        let full = try countingJob(parallelism: 1, store: memory, restore: nil)
        // Store a mid-stream checkpoint and a later one on disk.
        let disk = try FileCheckpointStore(directory: dir, retainedCheckpoints: 3)
        let mid = try middle(memory)
        try disk.store(mid)
        let later = try XCTUnwrap(memory.checkpoints.last { $0.id > mid.id && $0.operators.contains { !($0.sourceSplits ?? []).isEmpty } } ?? memory.checkpoints.last { $0.id > mid.id })
        try disk.store(later)
        XCTAssertEqual(try disk.firstCheckpointId(restoring: nil), later.id + 1)
        let (latest, warnings) = disk.latest()
        XCTAssertEqual(latest?.id, later.id)
        XCTAssertEqual(warnings, [])
        // Flip a byte in a state file of the newest: it is skipped for the previous one.
        let chkDir = disk.storage.path(of: later.id)
        let file = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: chkDir).first { $0.hasPrefix("op-") && $0.contains("KeyedProcess") })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: chkDir + "/" + file))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: chkDir + "/" + file))
        let (fallback, warned) = disk.latest()
        XCTAssertEqual(fallback?.id, mid.id)
        XCTAssertEqual(warned.count, 1)
        XCTAssertTrue(warned.first?.contains("chk-\(later.id)") ?? false, "\(warned)")
        let restored = try countingJob(parallelism: 2, store: InMemoryCheckpointStore(), restore: try XCTUnwrap(fallback))
        assertContinues(restored, from: mid, full: full)
        // Named, as --from-checkpoint: a corrupt one is refused with the reason.
        XCTAssertEqual(try disk.load(named: "chk-\(mid.id)").id, mid.id)
        XCTAssertThrowsError(try disk.load(named: "\(later.id)")) { XCTAssertTrue("\($0)".contains("checksum") || "\($0)".contains("corrupt"), "\($0)") }
    }

    /// Stop with a savepoint, then resume from it: nothing lost, nothing twice.
    func testStopWithSavepointAndResume() throws {
        func job(_ store: InMemoryCheckpointStore, _ restore: CompletedCheckpoint?, _ sink: CollectSink<String>) -> StreamExecutionEnvironment {
            let env = StreamExecutionEnvironment(parallelism: 2)
            env.stateBackend = stateBackend
            env.enableCheckpointing(nil, store: store)
            env.restoreFrom = restore
            env.fromSource(Self.source(), watermarkStrategy: .noWatermarks(), name: "numbers")
                .keyBy { $0.key }.process(Count()).sinkTo(sink)
            return env
        }
        let store = InMemoryCheckpointStore()
        let first = CollectSink<String>()
        let client = try job(store, nil, first).executeAsync("stopped")
        usleep(20_000)
        let id = try client.stopWithSavepoint()
        let savepoint = try XCTUnwrap(store.checkpoints.first { $0.id == id })
        XCTAssertTrue(savepoint.isSavepoint)
        let second = CollectSink<String>()
        try job(InMemoryCheckpointStore(), savepoint, second).execute("resumed")
        // The resumed run reads exactly what the savepoint left, with the state it had.
        let full = CollectSink<String>()
        try job(InMemoryCheckpointStore(), nil, full).execute("full")
        assertContinues(second.values, from: savepoint, full: full.values)
        // (The first run may have emitted records after the savepoint before it was cancelled:
        // its sink is not transactional.)
        let before = Set(first.values.map { Int64($0.split(separator: " ")[0])! })
        let resumed = second.values.map { Int64($0.split(separator: " ")[0])! }
        XCTAssertEqual(before.union(resumed), Set(0..<Self.records), "every record read by one run or the other")
    }

    func testOnDemandCheckpointAndRestoreMismatchErrors() throws {
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.stateBackend = stateBackend
        let store = InMemoryCheckpointStore()
        env.enableCheckpointing(nil, store: store)
        let sink = CollectSink<String>()
        env.fromSource(Self.source(200_000), watermarkStrategy: .noWatermarks(), name: "numbers")
            .keyBy { $0.key }.process(Count()).sinkTo(sink)
        let client = try env.executeAsync("on demand")
        let id = try client.triggerCheckpoint()
        XCTAssertEqual(id, 1)
        XCTAssertEqual(store.checkpoints.first?.id, 1)
        _ = try client.waitForResult()

        // Another max parallelism: refused with a message that says what to do.
        let other = StreamExecutionEnvironment(parallelism: 1)
        other.stateBackend = stateBackend
        other.maxParallelism = 64
        other.restoreFrom = store.checkpoints.first
        other.fromSource(Self.source(10), watermarkStrategy: .noWatermarks(), name: "numbers")
            .keyBy { $0.key }.process(Count()).sinkTo(CollectSink<String>())
        XCTAssertThrowsError(try other.execute()) { error in
            XCTAssertTrue("\(error)".contains("max parallelism 128"), "\(error)")
        }
    }
}
