// bench-checkpoint: checkpoint duration and processing pause with large keyed state.
//
//   swift run -c release bench-checkpoint [--keys N] [--checkpoints K] [--state-backend heap|rocksdb]
//
// With RocksDB the checkpoints go to a FileCheckpointStore under /tmp (SST files uploaded to
// `shared/` once); after the first checkpoint the stream narrows to 1% of the keys, so the later
// checkpoints show what an incremental checkpoint of a small change to large state uploads.
//
// A keyed counter (one ValueState<Int64> per key) over an endless generated stream that touches
// every key once per `keys` records; once every key holds state, K checkpoints are triggered one
// after the other. Prints, per checkpoint: duration (trigger until stored), the longest time one
// task paused to take its snapshot, and the encoded state size. Compare as ratios on this noisy
// machine; the in-memory store is used, so storage I/O is not included.
import StreamCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct Rec: Codable, Sendable {
    let key: Int64
}

final class Count: KeyedProcessFunction {
    typealias Key = Int64
    var count: ValueState<Int64>!
    func open(_ context: RuntimeContext) throws { count = try context.getState(ValueStateDescriptor<Int64>("count")) }
    func processElement(_ r: Rec, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<Int64>) throws {
        count.update((count.value() ?? 0) &+ 1)
    }
}

var keys: Int64 = 1_000_000
var checkpoints = 3
var backendName = "heap"
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--keys": keys = Int64(args.popFirst() ?? "") ?? keys
    case "--checkpoints": checkpoints = Int(args.popFirst() ?? "") ?? checkpoints
    case "--state-backend": backendName = args.popFirst() ?? ""
    case "-h", "--help":
        print("usage: bench-checkpoint [--keys N] [--checkpoints K] [--state-backend heap|rocksdb]")
        exit(0)
    default:
        print("unknown argument \(a); see --help")
        exit(2)
    }
}

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func ms(_ nanos: UInt64) -> String { format1(Double(nanos) / 1e6) }

func format1(_ v: Double) -> String { String(Int(v)) + "." + String(Int(v * 10) % 10) }

/// Starts the keyed counter over an endless stream whose keys `keyOf` picks, and waits until every
/// key holds state (a few passes over the key space); returns the warm-up in seconds.
func startCounting(_ env: StreamExecutionEnvironment, keys: Int64,
                   keyOf: @escaping @Sendable (Int64) -> Int64) throws -> (JobClient, Double) {
    env.fromSource(DataGeneratorSource(count: Int64.max / 2) { i in Rec(key: keyOf(i)) },
                   watermarkStrategy: .noWatermarks(), name: "Generator")
        .keyBy { $0.key }
        .process(Count())
        .sinkTo(DiscardingSink<Int64>(), name: "Discard")
    let client = try env.executeAsync("bench-checkpoint")
    let warmup = max(2.0, Double(keys) / 1_000_000 * 3)
    usleep(UInt32(warmup * 1_000_000))
    return (client, warmup)
}

if backendName == "rocksdb" {
    try runRocksDB(keys: keys, checkpoints: checkpoints)
    exit(0)
}
guard backendName == "heap" else {
    print("unknown state backend \(backendName): use heap or rocksdb")
    exit(2)
}

/// The RocksDB run: file checkpoints, a full one and then incremental ones after a small change.
func runRocksDB(keys: Int64, checkpoints: Int) throws {
    let dir = "/tmp/bench-checkpoint-rocksdb-\(getpid())"
    defer { _ = system("rm -rf '\(dir)'") }
    let disk = try FileCheckpointStore(directory: dir + "/checkpoints")
    let env = StreamExecutionEnvironment(parallelism: 1)
    env.stateBackend = .rocksDB(RocksDBStateOptions(directory: dir + "/local"))
    env.enableCheckpointing(nil, store: disk)
    let keySpace = KeySpace(keys)
    let (client, warmup) = try startCounting(env, keys: keys) { i in (i &* 7919) % keySpace.current }
    print("RocksDB backend, keys \(keys), warm-up \(warmup) s; checkpoint: duration ms, longest task pause ms, uploaded MB of total MB")
    for n in 0..<checkpoints {
        if n == 1 {
            // A small change to large state: from now on 1% of the keys get records.
            keySpace.narrow(to: max(1, keys / 100))
            usleep(1_000_000)
        }
        let id = try client.triggerCheckpoint()
        let cp = try disk.load(named: "chk-\(id)")
        let handles = cp.operators.compactMap(\.rocksDB)
        let uploaded = handles.map(\.newBytes).reduce(0, +), total = handles.flatMap(\.files).map(\.size).reduce(0, +)
        if let s = client.checkpointStats.first(where: { $0.id == id }) {
            print("checkpoint \(id)\(n == 0 ? " (all keys changed)" : " (1% of keys changed)"): \(ms(s.durationNanos)) ms, pause \(ms(s.maxTaskPauseNanos)) ms, uploaded \(String(format1(Double(uploaded) / 1e6))) MB of \(String(format1(Double(total) / 1e6))) MB")
        }
    }
    client.cancel()
    _ = try? client.waitForResult()
    // Restore: verify the files (checksums), link them into a new database, index its keys.
    var t0 = nowNanos()
    let (loaded, _) = disk.latest()
    let read = nowNanos() - t0
    t0 = nowNanos()
    let backend = try KeyedStateBackend<Int64>(clock: SystemClock(), rocksDB: RocksDBStateOptions(directory: dir + "/restored"))
    var restored = RestoredState(checkpointId: loaded!.id)
    restored.rocksDB = loaded!.operators.compactMap(\.rocksDB)
    try KeyedContext(backend: backend, processingTime: ProcessingTimeService(clock: SystemClock())).restore(restored)
    let rebuilt = nowNanos() - t0
    t0 = nowNanos()
    let count = try backend.getState(ValueStateDescriptor<Int64>("count"))
    var sum: Int64 = 0
    for k in 0..<min(keys, 100_000) { backend.setCurrentKey(k); sum &+= count.value() ?? 0 }
    let firstReads = nowNanos() - t0
    print("restore of \(backend.keys.count) keys: load + verify checksums \(ms(read)) ms, open database + index keys \(ms(rebuilt)) ms; then \(min(keys, 100_000)) first reads \(ms(firstReads)) ms (checksum \(sum))")
}

/// How many keys the generator spreads records over; narrowed while the job runs.
final class KeySpace: Sendable {
    private let size: Atomic<Int64>
    init(_ n: Int64) { size = Atomic(n) }
    var current: Int64 { size.load(ordering: .relaxed) }
    func narrow(to n: Int64) { size.store(n, ordering: .relaxed) }
}

let env = StreamExecutionEnvironment(parallelism: 1)
let store = InMemoryCheckpointStore()
env.enableCheckpointing(nil, store: store)
let keySpace = keys
let (client, warmup) = try startCounting(env, keys: keys) { i in (i &* 7919) % keySpace }
print("keys \(keys), warm-up \(warmup) s; checkpoint: duration ms, longest task pause ms, state MB")
for _ in 0..<checkpoints {
    let id = try client.triggerCheckpoint()
    if let s = client.checkpointStats.first(where: { $0.id == id }) {
        print("checkpoint \(id): \(ms(s.durationNanos)) ms, pause \(ms(s.maxTaskPauseNanos)) ms, \(s.stateBytes / 1_000_000) MB")
    }
}
client.cancel()
_ = try? client.waitForResult()

// Restore: read the last checkpoint back from disk (checksums, zstd, decoding) and rebuild the keyed
// state of the counting operator — what a restarted job does before its first record.
let dir = "/tmp/bench-checkpoint-\(getpid())"
defer { _ = system("rm -rf '\(dir)'") }
let disk = try FileCheckpointStore(directory: dir)
let last = store.latest!
var t0 = nowNanos()
try disk.store(last)
let wrote = nowNanos() - t0
t0 = nowNanos()
let (loaded, _) = disk.latest()
let read = nowNanos() - t0
t0 = nowNanos()
let groups = loaded!.operators.filter { $0.operatorId.hasSuffix("KeyedProcess") }.flatMap(\.keyedState)
let backend = KeyedStateBackend<Int64>(clock: SystemClock())
let keyed = KeyedContext(backend: backend, processingTime: ProcessingTimeService(clock: SystemClock()))
try keyed.restoreKeyGroups(groups)
_ = try backend.getState(ValueStateDescriptor<Int64>("count"))   // registering applies the restored entries
let rebuilt = nowNanos() - t0
print("restore of \(backend.keys.count) keys: write to disk \(ms(wrote)) ms, read + verify + decompress \(ms(read)) ms, rebuild state \(ms(rebuilt)) ms")
