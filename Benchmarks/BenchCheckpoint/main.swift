// bench-checkpoint: checkpoint duration and processing pause with large keyed state.
//
//   swift run -c release bench-checkpoint [--keys N] [--checkpoints K]
//
// A keyed counter (one ValueState<Int64> per key) over an endless generated stream that touches
// every key once per `keys` records; once every key holds state, K checkpoints are triggered one
// after the other. Prints, per checkpoint: duration (trigger until stored), the longest time one
// task paused to take its snapshot, and the encoded state size. Compare as ratios on this noisy
// machine; the in-memory store is used, so storage I/O is not included.
import StreamCore

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
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--keys": keys = Int64(args.popFirst() ?? "") ?? keys
    case "--checkpoints": checkpoints = Int(args.popFirst() ?? "") ?? checkpoints
    case "-h", "--help":
        print("usage: bench-checkpoint [--keys N] [--checkpoints K]")
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

func ms(_ nanos: UInt64) -> String {
    let v = Double(nanos) / 1e6
    return String(Int(v)) + "." + String(Int(v * 10) % 10)
}

let env = StreamExecutionEnvironment(parallelism: 1)
let store = InMemoryCheckpointStore()
env.enableCheckpointing(nil, store: store)
let keySpace = keys
env.fromSource(DataGeneratorSource(count: Int64.max / 2) { i in Rec(key: (i &* 7919) % keySpace) },
               watermarkStrategy: .noWatermarks(), name: "Generator")
    .keyBy { $0.key }
    .process(Count())
    .sinkTo(DiscardingSink<Int64>(), name: "Discard")
let client = try env.executeAsync("bench-checkpoint")
// Let every key get state: a few passes over the key space.
let warmup = max(2.0, Double(keys) / 1_000_000 * 3)
usleep(UInt32(warmup * 1_000_000))
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
