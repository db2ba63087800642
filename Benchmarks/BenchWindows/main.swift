// bench-windows: throughput of the runtime itself (later issues add window operators).
//
//   swift run -c release bench-windows [--records N] [--json PATH] [--only NAME]
//
// With `--state-backend rocksdb` keyed state lives in RocksDB (`--resident-keys` bounds the keys
// whose values stay decoded in memory); `--checkpoint-interval-ms` adds file checkpoints.
//
// Prints records/s, ns/record and mallocs/record per case, and the CPU time of the busiest slot
// thread per record (what the wall time would be with a free core per slot: on a shared machine the
// wall clock at parallelism 2 depends on whether the other core is really free). Compare figures as
// ratios within one run: the machines are shared and noisy.
import CMallocCounter
import Operators

#if canImport(Glibc)
import Glibc
#endif

struct Txn: Sendable, Codable {
    var card: Int64
    var amountCents: Int64
}

/// Count and sum of amounts (the tumbling case), or count only (sliding, session).
struct CountSum: AggregateFunction {
    func createAccumulator() -> CountSumAcc { CountSumAcc() }
    func add(_ t: Txn, to acc: inout CountSumAcc) { acc.count &+= 1; acc.sum &+= t.amountCents }
    func getResult(_ acc: CountSumAcc) -> Int64 { acc.count &+ acc.sum }
    func merge(_ a: CountSumAcc, _ b: CountSumAcc) -> CountSumAcc { CountSumAcc(count: a.count + b.count, sum: a.sum + b.sum) }
}

struct CountSumAcc: Codable {
    var count: Int64 = 0
    var sum: Int64 = 0
}

final class CountPerKey: KeyedProcessFunction {
    typealias Key = Int64
    var count: ValueState<Int64>!

    func open(_ context: RuntimeContext) throws {
        count = try context.getState(ValueStateDescriptor<Int64>("count"))
    }

    func processElement(_ value: Txn, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<Int64>) throws {
        let c = (count.value() ?? 0) &+ 1
        count.update(c)
        try out.collect(c)
    }
}

struct CaseResult {
    let name: String
    let parallelism: Int
    let records: Int64
    let seconds: Double
    let mallocs: UInt64
    /// CPU time of the busiest slot thread: what the wall time would be with a free core per slot.
    let busiestSlotSeconds: Double
    var recordsPerSecond: Double { Double(records) / seconds }
    var nsPerRecord: Double { seconds * 1e9 / Double(records) }
    var mallocsPerRecord: Double { Double(mallocs) / Double(records) }
    var cpuNsPerRecord: Double { busiestSlotSeconds * 1e9 / Double(records) }
}

/// `value` with `decimals` digits after the point (no Foundation here).
func fixed(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int64(scaled / scale)
    let frac = Int64(scaled - Double(whole) * scale)
    var s = (value < 0 ? "-" : "") + String(whole)
    if decimals > 0 {
        let f = String(frac)
        s += "." + String(repeating: "0", count: max(0, decimals - f.count)) + f
    }
    return s
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

@MainActor
func measure(_ name: String, parallelism: Int, records: Int64, build: (StreamExecutionEnvironment) -> Void) throws -> CaseResult {
    let env = StreamExecutionEnvironment(parallelism: parallelism)
    if let bufferSize { env.bufferSize = bufferSize }
    if let channelCapacity { env.channelCapacity = channelCapacity }
    var stateDir: String?
    if backendName != "heap" {
        var template = Array("/tmp/bench-windows-state-XXXXXX".utf8CString)
        stateDir = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
        env.stateBackend = try StateBackendKind.parse(backendName, directory: stateDir! + "/rocksdb")
        if case .rocksDB(var options) = env.stateBackend, let residentKeys {
            options.maxResidentKeys = residentKeys
            env.stateBackend = .rocksDB(options)
        }
    }
    defer { if let stateDir { _ = system("rm -rf '\(stateDir)'") } }
    if let checkpointMillis {
        let dir = (stateDir ?? "/tmp") + "/checkpoints-\(getpid())"
        env.enableCheckpointing(.milliseconds(checkpointMillis), store: try FileCheckpointStore(directory: dir))
    }
    build(env)
    let m0 = tributary_malloc_count()
    let t0 = nowSeconds()
    let result = try env.execute(name)
    let t1 = nowSeconds()
    let m1 = tributary_malloc_count()
    guard let sink = result.operator("Discard"), sink.numRecordsIn > 0 else {
        fatalError("benchmark \(name) produced no output")
    }
    let busiest = Double(result.slotCPUNanos.max() ?? 0) / 1e9
    if getenv("BENCH_DEBUG") != nil {
        print("  slot cpu ms:", result.slotCPUNanos.map { $0 / 1_000_000 },
              result.operators.map { "\($0.name) \($0.recordsInPerSubtask)" })
    }
    return CaseResult(name: name, parallelism: parallelism, records: records, seconds: t1 - t0, mallocs: m1 - m0,
                      busiestSlotSeconds: busiest)
}

func chainedMapFilter(records: Int64) -> (StreamExecutionEnvironment) -> Void {
    { env in
        env.fromSource(DataGeneratorSource(count: records) { $0 }, watermarkStrategy: .noWatermarks(), name: "Generator")
            .map { $0 &* 3 }
            .filter { $0 & 1 == 0 }
            .map { $0 &+ 1 }
            .sinkTo(DiscardingSink<Int64>(), name: "Discard")
    }
}

/// Generated transactions, one per millisecond of event time, spread over `keys` cards. Two splits
/// that interleave in event time (even and odd milliseconds), so at parallelism 2 both source
/// subtasks advance the watermark together.
func transactions(_ env: StreamExecutionEnvironment, records: Int64, keys: Int64) -> KeyedStream<Txn, Int64> {
    let half = records / 2
    let source = DataGeneratorSource(count: records, splits: 2,
                                     timestamp: { i in i < half ? i * 2 : (i - half) * 2 + 1 }) { i in
        Txn(card: (i &* 7919) % keys, amountCents: i & 1023)
    }
    return env.fromSource(source, watermarkStrategy: .forBoundedOutOfOrderness(.seconds(5)), name: "Generator")
        .keyBy { $0.card }
}

func windowed(_ assigner: WindowAssigner, records: Int64, keys: Int64) -> (StreamExecutionEnvironment) -> Void {
    { env in
        transactions(env, records: records, keys: keys)
            .window(assigner)
            .aggregate(CountSum())
            .sinkTo(DiscardingSink<Int64>(), name: "Discard")
    }
}

func rollingOver(records: Int64, keys: Int64) -> (StreamExecutionEnvironment) -> Void {
    { env in
        transactions(env, records: records, keys: keys)
            .over(CountSumMinMax<Txn> { $0.amountCents }, range: .minutes(5))
            .map { $0.value.count }
            .sinkTo(DiscardingSink<Int64>(), name: "Discard")
    }
}

final class JoinCount: ProcessJoinFunction {
    func processElement(_ l: Txn, _ r: Txn, _ ctx: JoinContext, _ out: Collector<Int64>) throws {
        try out.collect(l.amountCents &+ r.amountCents)
    }
}

/// Half the records on each side; right rows join left rows of the last 5 minutes.
func intervalJoin(records: Int64, keys: Int64) -> (StreamExecutionEnvironment) -> Void {
    { env in
        let left = transactions(env, records: records / 2, keys: keys)
        let right = transactions(env, records: records / 2, keys: keys)
        left.intervalJoin(right)
            .between(.minutes(-5), .zero)
            .process(JoinCount())
            .sinkTo(DiscardingSink<Int64>(), name: "Discard")
    }
}

func keyedCount(records: Int64, keys: Int64) -> (StreamExecutionEnvironment) -> Void {
    { env in
        env.fromSource(DataGeneratorSource(count: records) { i in Txn(card: (i &* 7919) % keys, amountCents: i & 1023) },
                       watermarkStrategy: .noWatermarks(), name: "Generator")
            .keyBy { $0.card }
            .process(CountPerKey())
            .sinkTo(DiscardingSink<Int64>(), name: "Discard")
    }
}

var records: Int64 = 10_000_000
var jsonPath: String?
var only: String?
var parallelisms = [1, 2]
var windowKeys: Int64 = 10_000
var bufferSize: Int?
var channelCapacity: Int?
var backendName = "heap"
var residentKeys: Int?
var checkpointMillis: Int?
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--records": records = Int64(args.popFirst() ?? "") ?? records
    case "--json": jsonPath = args.popFirst()
    case "--only": only = args.popFirst()
    case "--parallelism": parallelisms = [Int(args.popFirst() ?? "") ?? 1]
    case "--buffer-size": bufferSize = Int(args.popFirst() ?? "")
    case "--keys": windowKeys = Int64(args.popFirst() ?? "") ?? windowKeys
    case "--channel-capacity": channelCapacity = Int(args.popFirst() ?? "")
    case "--state-backend": backendName = args.popFirst() ?? ""
    case "--resident-keys": residentKeys = Int(args.popFirst() ?? "")
    case "--checkpoint-interval-ms": checkpointMillis = Int(args.popFirst() ?? "")
    case "-h", "--help":
        print("usage: bench-windows [--records N] [--json PATH] [--only map-filter|keyed-10k|keyed-1m|tumbling-5m|sliding-30m-5m|session-30m|over-5m|interval-join] [--parallelism P] [--buffer-size N] [--channel-capacity N] [--keys N (window, OVER and join cases, default 10000)] [--state-backend heap|rocksdb] [--resident-keys N (RocksDB: keys kept in memory)] [--checkpoint-interval-ms MS (file checkpoints under /tmp)]")
        exit(0)
    default:
        print("unknown argument \(a); see --help")
        exit(2)
    }
}

var cases: [(String, (Int64) -> (StreamExecutionEnvironment) -> Void)] = [
    ("map-filter", { chainedMapFilter(records: $0) }),
    ("keyed-10k", { keyedCount(records: $0, keys: 10_000) }),
    ("keyed-1m", { keyedCount(records: $0, keys: 1_000_000) }),
    ("tumbling-5m", { windowed(TumblingEventTimeWindows.of(.minutes(5)), records: $0, keys: windowKeys) }),
    ("sliding-30m-5m", { windowed(SlidingEventTimeWindows.of(.minutes(30), .minutes(5)), records: $0, keys: windowKeys) }),
    ("session-30m", { windowed(EventTimeSessionWindows.withGap(.minutes(30)), records: $0, keys: windowKeys) }),
    ("over-5m", { rollingOver(records: $0, keys: windowKeys) }),
    ("interval-join", { intervalJoin(records: $0, keys: windowKeys) }),
]
if let only { cases = cases.filter { $0.0 == only } }

var results: [CaseResult] = []
print(pad("case", 14) + pad("p", 3) + pad("records", 11) + pad("seconds", 9) + pad("records/s", 14) + pad("ns/record", 10)
      + pad("mallocs/record", 15) + "busiest-thread cpu ns/record")
for (name, make) in cases {
    for p in parallelisms {
        let r = try measure(name, parallelism: p, records: records, build: make(records))
        results.append(r)
        let cells: [String] = [
            pad(name, 14), pad("\(p)", 3), pad("\(records)", 11), pad(fixed(r.seconds, 3), 9),
            pad(fixed(r.recordsPerSecond, 0), 14), pad(fixed(r.nsPerRecord, 1), 10), pad(fixed(r.mallocsPerRecord, 5), 15),
            fixed(r.cpuNsPerRecord, 1),
        ]
        print(cells.joined())
    }
}
for name in Set(results.map(\.name)).sorted() {
    guard let p1 = results.first(where: { $0.name == name && $0.parallelism == 1 }),
          let p2 = results.first(where: { $0.name == name && $0.parallelism == 2 }) else { continue }
    print("\(name): parallelism 2 / parallelism 1 = \(fixed(p2.recordsPerSecond / p1.recordsPerSecond, 2))x wall clock, "
          + "\(fixed(p1.cpuNsPerRecord / p2.cpuNsPerRecord, 2))x by busiest-thread CPU time")
}

if let jsonPath {
    var json = "{\n  \"benchmark\": \"bench-windows\",\n  \"records\": \(records),\n  \"cases\": [\n"
    json += results.map { r -> String in
        let fields: [String] = [
            "\"name\": \"\(r.name)\"", "\"parallelism\": \(r.parallelism)", "\"seconds\": \(fixed(r.seconds, 4))",
            "\"recordsPerSecond\": \(fixed(r.recordsPerSecond, 0))", "\"nsPerRecord\": \(fixed(r.nsPerRecord, 2))",
            "\"mallocsPerRecord\": \(fixed(r.mallocsPerRecord, 6))",
            "\"busiestThreadCpuNsPerRecord\": \(fixed(r.cpuNsPerRecord, 2))",
        ]
        return "    {" + fields.joined(separator: ", ") + "}"
    }.joined(separator: ",\n")
    json += "\n  ]\n}\n"
    let fd = open(jsonPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { print("cannot write \(jsonPath)"); exit(1) }
    _ = json.withCString { write(fd, $0, strlen($0)) }
    close(fd)
    print("wrote \(jsonPath)")
}
