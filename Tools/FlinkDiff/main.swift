// flink-diff-tributary: the Tributary side of the differential test against Apache Flink
// (scripts/flink_diff.py). Runs the same jobs as flink/src/io/tributary/flink/DiffJobs.java on the
// same input and writes one CSV per job in the same row format:
//
//   flink-diff-tributary --input DIR --output DIR [--bound-ms B] [--lateness-ms L] [--only JOB]
//
// The Flink SQL jobs (TUMBLE, HOP, OVER, interval join) use the SQL watermark rule
// (`forSQLBoundedOutOfOrderness`: maxTs - b); the DataStream jobs use `forBoundedOutOfOrderness`
// (maxTs - b - 1). Watermark interval 0: a watermark after every record that raises it, as on the
// Flink side. Parallelism 1, as on the Flink side.
import Operators

#if canImport(Glibc)
import Glibc
#endif

struct Event: Codable, Sendable {
    var k: Int64
    var ts: Int64
    var v: Int64
}

struct Acc: Codable, Sendable {
    var key: Int64 = 0
    var count: Int64 = 0
    var sum: Int64 = 0
}

struct CountSum: AggregateFunction {
    func createAccumulator() -> Acc { Acc() }
    func add(_ e: Event, to acc: inout Acc) { acc.key = e.k; acc.count += 1; acc.sum += e.v }
    func getResult(_ acc: Acc) -> Acc { acc }
    func merge(_ a: Acc, _ b: Acc) -> Acc { Acc(key: a.key, count: a.count + b.count, sum: a.sum + b.sum) }
}

/// `k,start,end,count,sum,watermark` per firing (DataStream jobs), or without the watermark (SQL).
final class WindowRow: ProcessWindowFunction {
    let withWatermark: Bool
    init(withWatermark: Bool) { self.withWatermark = withWatermark }
    func process(_ key: Int64, _ ctx: WindowContext, _ elements: [Acc], _ out: Collector<String>) throws {
        let a = elements[0]
        var row = "\(key),\(ctx.window.start),\(ctx.window.end),\(a.count),\(a.sum)"
        if withWatermark { row += ",\(ctx.currentWatermark)" }
        try out.collect(row)
    }
}

/// Counts records per key; each registers an event-time timer at ts + 3000; a timer emits
/// `k,timerTs,count,watermark`.
final class Timers: KeyedProcessFunction {
    typealias Key = Int64
    var count: ValueState<Int64>!
    func open(_ context: RuntimeContext) throws {
        count = try context.getState(ValueStateDescriptor<Int64>("count"))
    }
    func processElement(_ e: Event, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<String>) throws {
        count.update((count.value() ?? 0) + 1)
        ctx.timerService.registerEventTimeTimer(e.ts + 3000)
    }
    func onTimer(_ t: Int64, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<String>) throws {
        try out.collect("\(ctx.currentKey),\(t),\(count.value() ?? 0),\(ctx.timerService.currentWatermark())")
    }
}

final class JoinRow: ProcessJoinFunction {
    func processElement(_ l: Event, _ r: Event, _ ctx: JoinContext, _ out: Collector<String>) throws {
        try out.collect("\(l.k),\(l.ts),\(l.v),\(r.ts),\(r.v)")
    }
}

func fail(_ message: String) -> Never {
    let text = "flink-diff-tributary: \(message)\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

func readEvents(_ path: String) -> [Event] {
    guard let f = fopen(path, "r") else { fail("cannot open \(path)") }
    defer { fclose(f) }
    var events: [Event] = []
    var line: UnsafeMutablePointer<CChar>?
    var cap = 0
    var n = 0
    while getline(&line, &cap, f) > 0 {
        n += 1
        let fields = String(cString: line!).split(separator: ",").map { Int64(String($0.filter { !$0.isWhitespace })) }
        guard fields.count == 3, let k = fields[0], let ts = fields[1], let v = fields[2] else {
            fail("\(path):\(n): expected key,ts,value")
        }
        events.append(Event(k: k, ts: ts, v: v))
    }
    free(line)
    return events
}

func writeRows(_ dir: String, _ job: String, _ rows: [String]) {
    let path = dir + "/" + job + ".csv"
    guard let f = fopen(path, "w") else { fail("cannot write \(path)") }
    for r in rows { fputs(r + "\n", f) }
    fclose(f)
}

var input: String?
var output: String?
var bound: Int64 = 2000
var lateness: Int64 = 5000
var only: String?
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--input": input = args.popFirst()
    case "--output": output = args.popFirst()
    case "--bound-ms": bound = Int64(args.popFirst() ?? "") ?? { fail("--bound-ms needs milliseconds") }()
    case "--lateness-ms": lateness = Int64(args.popFirst() ?? "") ?? { fail("--lateness-ms needs milliseconds") }()
    case "--only": only = args.popFirst()
    default: fail("unknown argument \(a); usage: flink-diff-tributary --input DIR --output DIR [--bound-ms B] [--lateness-ms L] [--only JOB]")
    }
}
guard let input, let output else { fail("needs --input DIR and --output DIR") }
mkdir(output, 0o755)
let events = readEvents(input + "/events.csv")
let right = readEvents(input + "/right.csv")

func newEnv() -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment(parallelism: 1)
    env.autoWatermarkInterval = .zero
    return env
}

@MainActor
func source(_ env: StreamExecutionEnvironment, _ rows: [Event], sql: Bool, name: String) -> DataStream<Event> {
    let b = Duration.milliseconds(bound)
    let strategy: WatermarkStrategy<Event> = sql ? .forSQLBoundedOutOfOrderness(b) : .forBoundedOutOfOrderness(b)
    return env.fromSource(CollectionSource(rows), watermarkStrategy: strategy.withTimestampAssigner { e, _ in e.ts },
                          name: name, parallelism: 1)
}

func run(_ env: StreamExecutionEnvironment, _ stream: DataStream<String>, _ job: String) throws -> [String] {
    let sink = CollectSink<String>()
    stream.sinkTo(sink)
    try env.execute(job)
    return sink.values
}

let jobs = ["sql-tumble", "sql-hop", "sql-over", "sql-join", "ds-tumble", "ds-slide", "ds-session",
            "ds-timers", "ds-count", "ds-count-sliding", "ds-join"]
for job in jobs where only == nil || only == job {
    let env = newEnv()
    var rows: [String]
    do {
        switch job {
        case "sql-tumble", "sql-hop":
            let assigner: WindowAssigner = job == "sql-tumble" ? TumblingEventTimeWindows.of(.seconds(10))
                : SlidingEventTimeWindows.of(.seconds(30), .seconds(10))
            rows = try run(env, source(env, events, sql: true, name: "events").keyBy { $0.k }
                .window(assigner).aggregate(CountSum(), WindowRow(withWatermark: false)), job)
        case "sql-over":
            rows = try run(env, source(env, events, sql: true, name: "events").keyBy { $0.k }
                .over(CountSumMinMax<Event> { $0.v }, range: .seconds(10))
                .map { r in
                    let a = r.value
                    return "\(r.row.k),\(r.row.ts),\(r.row.v),\(a.count),\(a.sum),\(a.min.map(String.init) ?? "null"),\(a.max.map(String.init) ?? "null")"
                }, job)
        case "sql-join", "ds-join":
            let sql = job == "sql-join"
            let l = source(env, events, sql: sql, name: "left").keyBy { $0.k }
            let r = source(env, right, sql: sql, name: "right").keyBy { $0.k }
            var join = l.intervalJoin(r).between(.seconds(-5), .seconds(1))
            if !sql { join = join.upperBoundExclusive() }
            rows = try run(env, join.process(JoinRow()), job)
        case "ds-tumble", "ds-slide", "ds-session":
            let assigner: WindowAssigner = job == "ds-tumble" ? TumblingEventTimeWindows.of(.seconds(10))
                : job == "ds-slide" ? SlidingEventTimeWindows.of(.seconds(30), .seconds(10))
                : EventTimeSessionWindows.withGap(.seconds(5))
            let lateTag = OutputTag<Event>("late")
            let fired = source(env, events, sql: false, name: "events").keyBy { $0.k }
                .window(assigner).allowedLateness(.milliseconds(lateness)).sideOutputLateData(lateTag)
                .aggregate(CountSum(), WindowRow(withWatermark: true))
            let late = fired.getSideOutput(lateTag).map { e in "late,\(e.k),\(e.ts),\(e.v)" }
            rows = try run(env, fired.union(late), job)
        case "ds-timers":
            rows = try run(env, source(env, events, sql: false, name: "events").keyBy { $0.k }.process(Timers()), job)
        case "ds-count", "ds-count-sliding":
            let keyed = source(env, events, sql: false, name: "events").keyBy { $0.k }
            let windowed = job == "ds-count" ? keyed.countWindow(3) : keyed.countWindow(4, 2)
            rows = try run(env, windowed.aggregate(CountSum()).map { a in "\(a.key),\(a.count),\(a.sum)" }, job)
        default:
            fail("unknown job \(job)")
        }
    } catch {
        fail("\(job): \(error)")
    }
    writeRows(output, job, rows)
}
