// crash-test-job: the job the crash tests kill with SIGKILL and restart (Tests/CrashTests).
//
//   crash-test-job --checkpoint-dir DIR --output-dir DIR --redis-port PORT [--project NAME]
//                  [--records N] [--interval-ms MS] [--parallelism P] [--pause-every N --pause-us US]
//                  [--state-backend heap|rocksdb]   (RocksDB files under <checkpoint-dir>-local)
//
// Reads N generated events (a replayable source: its position is in every checkpoint), counts per
// key, and writes every counted event to a two-phase-commit FileSink (visible only once the
// checkpoint that covers it completed) and the key's latest count to Redis in Feast's layout through
// the idempotent write-if-newer sink. On start it resumes from the latest intact checkpoint in
// --checkpoint-dir. Each key's events come from one split, so the output does not depend on how the
// splits interleave: a run that is killed and restarted any number of times must end with exactly
// the files and Redis contents of a run that never failed.
//
// Prints markers on stdout for the driver: "restored N" / "fresh", "storing N" (checkpoint N is
// being written), "stored N" (durable; sinks are committing), "done"; on SIGTERM it takes a savepoint,
// prints "savepoint N" and exits 0.
import Connectors
import StreamCore

#if canImport(Glibc)
import Glibc
#endif

struct Event: Codable, Sendable {
    let i: Int64
    let key: Int64
}

struct Counted: Codable, Sendable {
    let i: Int64
    let key: Int64
    let count: Int64
}

final class RunningCount: KeyedProcessFunction {
    typealias Key = Int64
    var count: ValueState<Int64>!
    func open(_ context: RuntimeContext) throws { count = try context.getState(ValueStateDescriptor<Int64>("count")) }
    func processElement(_ e: Event, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<Counted>) throws {
        let c = (count.value() ?? 0) + 1
        count.update(c)
        try out.collect(Counted(i: e.i, key: e.key, count: c))
    }
}

/// Prints when a checkpoint is being stored and when it is durable.
final class MarkingStore: CompletedCheckpointStore, @unchecked Sendable {
    let inner: FileCheckpointStore
    init(_ inner: FileCheckpointStore) { self.inner = inner }
    func store(_ checkpoint: CompletedCheckpoint) throws {
        say("storing \(checkpoint.id)")
        try inner.store(checkpoint)
        say("stored \(checkpoint.id)")
    }
    func firstCheckpointId(restoring restored: CheckpointId?) throws -> CheckpointId {
        try inner.firstCheckpointId(restoring: restored)
    }
}

func say(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    let text = "crash-test-job: \(message)\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

var checkpointDir: String?
var outputDir: String?
var redisPort: Int?
var project = "crash"
var records: Int64 = 200_000
var intervalMillis: Int64 = 50
var parallelism = 2
var pauseEvery: Int64 = 2_000
var pauseMicros: UInt32 = 2_000
var backendName = "heap"
var args = CommandLine.arguments.dropFirst()
@MainActor func value(_ flag: String) -> String {
    guard let v = args.popFirst() else { fail("\(flag) needs a value") }
    return v
}
@MainActor func number<N: LosslessStringConvertible>(_ type: N.Type, _ flag: String, _ message: String) -> N {
    guard let n = N(value(flag)) else { fail(message) }
    return n
}
while let a = args.popFirst() {
    switch a {
    case "--checkpoint-dir": checkpointDir = value(a)
    case "--output-dir": outputDir = value(a)
    case "--redis-port": redisPort = number(Int.self, a, "--redis-port needs a number")
    case "--project": project = value(a)
    case "--records": records = number(Int64.self, a, "--records needs a number")
    case "--interval-ms": intervalMillis = number(Int64.self, a, "--interval-ms needs a number")
    case "--parallelism": parallelism = number(Int.self, a, "--parallelism needs a number")
    case "--pause-every": pauseEvery = number(Int64.self, a, "--pause-every needs a number")
    case "--pause-us": pauseMicros = number(UInt32.self, a, "--pause-us needs a number")
    case "--state-backend": backendName = value(a)
    default: fail("unknown argument \(a); usage: crash-test-job --checkpoint-dir DIR --output-dir DIR --redis-port PORT [--project NAME] [--records N] [--interval-ms MS] [--parallelism P] [--pause-every N --pause-us US] [--state-backend heap|rocksdb]")
    }
}
guard let checkpointDir, let outputDir, let redisPort else { fail("needs --checkpoint-dir, --output-dir and --redis-port") }

do {
    let files = try FileCheckpointStore(directory: checkpointDir, retainedCheckpoints: 3)
    let (latest, warnings) = files.latest()
    for w in warnings { _ = (w + "\n").withCString { write(2, $0, strlen($0)) } }
    let env = StreamExecutionEnvironment(parallelism: parallelism)
    // The local RocksDB directory belongs to this job: what a killed run left there is garbage.
    let localDir = checkpointDir + "-local"
    _ = system("rm -rf '\(localDir)'")
    env.stateBackend = try StateBackendKind.parse(backendName, directory: localDir)
    env.restoreFrom = latest
    env.enableCheckpointing(.milliseconds(intervalMillis), store: MarkingStore(files))
    say(latest.map { "restored \($0.id)" } ?? "fresh")

    let n = records, every = max(1, pauseEvery), micros = pauseMicros
    let perSplit = max(1, n / 4)
    let counted = env.fromSource(DataGeneratorSource(count: n, splits: 4) { i in
        if i % every == 0 { usleep(micros) }
        // Keys never cross splits: key = split * 1000 + i % 50.
        return Event(i: i, key: (i / perSplit) * 1_000 + i % 50)
    }, watermarkStrategy: .noWatermarks(), name: "events")
        .keyBy { $0.key }
        .process(name: "count", RunningCount())
    counted.sinkTo(FileSink<Counted>(directory: outputDir, encoder: .lines { "\($0.i) \($0.key) \($0.count)" }),
                   name: "files")
    let view = "counts"
    counted.sinkTo(RedisUpsertSink<Counted>(project: project, featureView: view,
                                            options: .init(port: redisPort)) { c in
        FeastRow(entity: FeastEntityKey(["key": .int64(c.key)]), eventTime: FeastTimestamp(milliseconds: c.i + 1),
                 features: [(name: "count", value: .int64(c.count)), (name: "last_event", value: .int64(c.i))])
    }, name: "redis")
    switch try env.executeStoppingOnSignal("crash-test-job") {
    case .finished: say("done")
    case .stoppedWithSavepoint(let id, let signal): say("savepoint \(id) (signal \(signal))")
    }
} catch {
    fail("\(error)")
}
