import Foundation
import StreamCore
import StreamTesting
import XCTest

/// The job flags for checkpoints and state: parsed with messages that say what to fix, applied to
/// an environment (file checkpoints, restore of the newest or a named checkpoint, RocksDB).
final class CheckpointingOptionsTests: XCTestCase {
    func parse(_ argv: [String]) throws -> CheckpointingOptions {
        var o = CheckpointingOptions()
        var args = argv[...]
        while let a = args.popFirst() {
            guard try o.parse(a, next: { args.popFirst() }) else { throw JobConfigurationError("unknown \(a)") }
        }
        return o
    }

    func testFlagsAndTheirErrors() throws {
        let o = try parse(["--checkpoint-dir", "/tmp/x", "--checkpoint-interval", "250ms", "--retained-checkpoints", "5",
                           "--state-backend", "RocksDB", "--from-checkpoint", "chk-3"])
        XCTAssertEqual(o.checkpointDirectory, "/tmp/x")
        XCTAssertEqual(o.interval, .milliseconds(250))
        XCTAssertEqual(o.retainedCheckpoints, 5)
        XCTAssertEqual(o.stateBackend, "rocksdb")
        XCTAssertEqual(o.fromCheckpoint, "chk-3")
        XCTAssertEqual(try parse(["--checkpoint-interval", "2m"]).interval, .seconds(120))
        XCTAssertEqual(try parse(["--checkpoint-interval", "30s"]).interval, .seconds(30))
        for (argv, says) in [(["--checkpoint-interval", "soon"], "500ms, 30s or 2m"), (["--checkpoint-interval", "0s"], "positive"),
                             (["--state-backend", "leveldb"], "'heap' or 'rocksdb'"), (["--retained-checkpoints", "0"], "≥ 1"),
                             (["--checkpoint-dir"], "needs a value")] {
            XCTAssertThrowsError(try parse(argv)) { XCTAssertTrue("\($0)".contains(says), "\(argv): \($0)") }
        }
        var rocksWithoutDir = CheckpointingOptions()
        rocksWithoutDir.stateBackend = "rocksdb"
        XCTAssertThrowsError(try rocksWithoutDir.apply(to: StreamExecutionEnvironment(parallelism: 1))) {
            XCTAssertTrue("\($0)".contains("--state-dir"), "\($0)")
        }
    }

    /// A first run checkpoints into --checkpoint-dir with RocksDB state; a second run with the same
    /// flags restores the newest checkpoint by itself; --from-checkpoint names one.
    func testApplyRestoresTheNewestOrTheNamedCheckpoint() throws {
        let dir = try TemporaryDirectory()
        let o = try parse(["--checkpoint-dir", dir.path + "/chk", "--checkpoint-interval", "5ms", "--state-backend", "rocksdb"])
        func run() throws -> (CheckpointId?, [String]) {
            let env = StreamExecutionEnvironment(parallelism: 1)
            let applied = try o.apply(to: env)
            XCTAssertEqual(env.stateBackend, .rocksDB(RocksDBStateOptions(directory: dir.path + "/chk-local")))
            let sink = CollectSink<Int64>()
            env.fromSource(DataGeneratorSource(count: 20_000) { i in
                if i % 500 == 0 { usleep(200) }
                return i
            }, watermarkStrategy: .noWatermarks(), name: "n")
                .keyBy { $0 % 10 }
                .process(SumPerKey())
                .sinkTo(sink)
            try env.execute("options")
            return applied
        }
        // A killed run's leftovers in the state directory are cleared at start.
        try FileManager.default.createDirectory(atPath: dir.path + "/chk-local/stale-db", withIntermediateDirectories: true)
        let first = try run()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "/chk-local/stale-db"))
        XCTAssertNil(first.0, "nothing to restore the first time")
        let ids = try FileCheckpointStore(directory: dir.path + "/chk").storage.checkpointIds()
        XCTAssertFalse(ids.isEmpty)
        XCTAssertEqual(try run().0, ids.last, "the newest checkpoint is restored")
        var named = o
        named.fromCheckpoint = "chk-\(ids.last!)"
        let env = StreamExecutionEnvironment(parallelism: 1)
        XCTAssertEqual(try named.apply(to: env).restored, ids.last)
        named.fromCheckpoint = "chk-999999"
        XCTAssertThrowsError(try named.apply(to: StreamExecutionEnvironment(parallelism: 1)))
    }

    final class SumPerKey: KeyedProcessFunction {
        typealias Key = Int64
        var sum: ValueState<Int64>!
        func open(_ context: RuntimeContext) throws { sum = try context.getState(ValueStateDescriptor<Int64>("sum")) }
        func processElement(_ v: Int64, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<Int64>) throws {
            let s = (sum.value() ?? 0) + v
            sum.update(s)
            try out.collect(s)
        }
    }
}
