// example-job: a small fraud-feature job written against the public StreamCore API only, as a user
// outside this repository would write it. It generates card transactions in event time, keys them
// by card and computes per-card features on arrival (count, sum, time since the previous
// transaction) plus a per-card summary when event time ends. It prints what it computes.
//
//   swift run example-job [--records N] [--cards N] [--parallelism P] [--quiet]
//   swift run example-job --key-groups KEY...     (which key group / subtask owns each key)
import StreamCore

#if canImport(Glibc)
import Glibc
#endif

struct Transaction: Sendable {
    let card: String
    let amountCents: Int64
    let eventTime: Int64
}

struct CardFeatures: Sendable, CustomStringConvertible {
    let card: String
    let count: Int64
    let sumCents: Int64
    let millisSincePrevious: Int64?
    let eventTime: Int64

    var description: String {
        let since = millisSincePrevious.map { "\($0 / 1000)s" } ?? "-"
        return "features card=\(card) count=\(count) sum=\(Money(sumCents)) since_prev=\(since) t=\(eventTime)"
    }
}

struct Money: CustomStringConvertible {
    let cents: Int64
    init(_ cents: Int64) { self.cents = cents }
    var description: String {
        let c = abs(cents) % 100
        return "\(cents / 100).\(c < 10 ? "0" : "")\(c)"
    }
}

/// Per card: running count and sum, and the gap to the previous transaction, emitted on arrival;
/// a summary when the watermark passes the end of event time.
final class CardFeaturesFunction: KeyedProcessFunction {
    typealias Key = String
    var count: ValueState<Int64>!
    var sum: ValueState<Int64>!
    var lastSeen: ValueState<Int64>!

    func open(_ context: RuntimeContext) throws {
        count = try context.getState(ValueStateDescriptor<Int64>("count"))
        sum = try context.getState(ValueStateDescriptor<Int64>("sum"))
        lastSeen = try context.getState(ValueStateDescriptor<Int64>("last-seen"))
    }

    func processElement(_ txn: Transaction, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
        let n = (count.value() ?? 0) + 1
        let s = (sum.value() ?? 0) + txn.amountCents
        let previous = lastSeen.value()
        count.update(n)
        sum.update(s)
        lastSeen.update(max(previous ?? Int64.min, txn.eventTime))
        try out.collect(CardFeatures(card: txn.card, count: n, sumCents: s,
                                     millisSincePrevious: previous.map { txn.eventTime - $0 },
                                     eventTime: txn.eventTime).description)
        // One timer per card: fires once when event time ends (the final +inf watermark).
        ctx.timerService.registerEventTimeTimer(Int64.max)
    }

    func onTimer(_ timestamp: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
        try out.collect("summary card=\(ctx.currentKey) transactions=\(count.value() ?? 0) total=\(Money(sum.value() ?? 0))")
        count.clear()
        sum.clear()
        lastSeen.clear()
    }
}

func fail(_ message: String) -> Never {
    warn(message)
    exit(2)
}

func warn(_ message: String) {
    let line = "example-job: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}

var records: Int64 = 40
var cards = 5
var parallelism = 2
var quiet = false
var checkpointing = CheckpointingOptions()
var args = CommandLine.arguments.dropFirst()
if args.first == "--key-groups" {
    for key in args.dropFirst() {
        let group = KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: 128)
        let subtasks = [1, 2, 4].map { KeyGroupRangeAssignment.operatorIndex(forKeyGroup: group, maxParallelism: 128, parallelism: $0) }
        print("\(key)\t\(key.stableHashCode)\t\(group)\t\(subtasks.map(String.init).joined(separator: ","))")
    }
    exit(0)
}
while let a = args.popFirst() {
    func number() -> Int64 {
        guard let v = args.popFirst(), let n = Int64(v), n > 0 else { fail("\(a) needs a positive number") }
        return n
    }
    switch a {
    case "--records": records = number()
    case "--cards": cards = Int(number())
    case "--parallelism": parallelism = Int(number())
    case "--quiet": quiet = true
    case "-h", "--help":
        print("usage: example-job [--records N] [--cards N] [--parallelism P] [--quiet] \(CheckpointingOptions.usage) | --key-groups KEY...")
        exit(0)
    default:
        do {
            guard try checkpointing.parse(a, next: { args.popFirst() }) else { fail("unknown option \(a); try --help") }
        } catch {
            fail("\(error)")
        }
    }
}
guard parallelism <= 128 else { fail("--parallelism must be at most 128 (the max parallelism)") }

let start: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
let cardCount = Int64(cards)
let env = StreamExecutionEnvironment(parallelism: parallelism)
let transactions = DataGeneratorSource<Transaction>(count: records) { i in
    // Deterministic pseudo-random spread: cards interleave, amounts vary, time moves ~37 s per txn.
    let card = "card-\((i &* 7) % cardCount)"
    let amount = 100 + (i &* 7919) % 25_000
    return Transaction(card: card, amountCents: amount, eventTime: start + i * 37_000 - (i % 3) * 5_000)
}
let stream = env.fromSource(
    transactions,
    watermarkStrategy: WatermarkStrategy<Transaction>.forBoundedOutOfOrderness(.seconds(10))
        .withTimestampAssigner { txn, _ in txn.eventTime },
    name: "Transactions")
    .keyBy { $0.card }
    .process(name: "CardFeatures", CardFeaturesFunction())
if quiet {
    stream.sinkTo(DiscardingSink<String>(), name: "Discard")
} else {
    stream.print()
}
do {
    let (restored, warnings) = try checkpointing.apply(to: env)
    for w in warnings { warn(w) }
    if let restored { print("restored from checkpoint \(restored)") }
    let result = try env.execute("example-job")
    print(result)
} catch {
    fail("job failed: \(error)")
}
