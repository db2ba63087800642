// generate — synthetic transactions, clicks and device records to their Kafka topics (issue 6).
//
//   generate [--bootstrap HOST:PORT] [--streams txn,clicks,devices] [--count N] [--rate R] [--seed S]
//            [--late-share F] [--too-late-share F] [--malformed-share F] [--v2-share F] [--fraud-share F]
//            [--cards N] [--users N] [--start MILLIS] [--labels FILE] [--registry FILE]
//            [--txn-topic T] [--clicks-topic T] [--devices-topic T]
//
// N records per stream (default 100 000), at R events/s per stream (default 5 000; 0: as fast as
// possible), Avro in the Confluent wire format, keyed as the design says (card_id, user_id,
// device_id). Deterministic for a seed (see Sources/Generators). --labels writes the injected fraud
// transactions as CSV (txn_id,card_id,event_time,pattern) for training. A progress line every
// second on stderr; a summary on stdout at the end.
import Contracts
import Foundation
import Generators
import Kafka
import StreamCore
import Synchronization

struct Usage: Error, CustomStringConvertible { let description: String }

struct Options {
    var bootstrap = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP"] ?? "127.0.0.1:9092"
    var streams = ["txn", "clicks", "devices"]
    var count: Int64 = 100_000
    var rate = 5_000.0
    var labels: String?
    var clickLabels: String?
    /// Event time per second of records (default: `--rate`, or 5 000 unthrottled).
    var eventRate: Double?
    var registry = "schemas/registry.json"
    var topics = ["txn": "txn.events", "clicks": "click.events", "devices": "device.enrich"]
    var config = GeneratorConfig()
    /// `--start now`: the records' Kafka timestamps are when they are sent (for latency), not the timeline's arrival.
    var wallClockTimestamps = false
    /// `-X key=value`: librdkafka producer properties over the defaults (e.g. `enable.idempotence=false`).
    var producerProperties: [String: String] = [:]

    init(_ args: [String]) throws {
        var i = 0
        func share(_ v: String, _ flag: String) throws -> Double {
            guard let d = Double(v), (0...1).contains(d) else { throw Usage(description: "\(flag) takes a share between 0 and 1, not '\(v)'") }
            return d
        }
        while i < args.count {
            let flag = args[i]
            guard i + 1 < args.count else { throw Usage(description: "\(flag) needs a value") }
            let v = args[i + 1]
            switch flag {
            case "--bootstrap": bootstrap = v
            case "--streams":
                streams = v.split(separator: ",").map(String.init)
                for s in streams where topics[s] == nil { throw Usage(description: "--streams takes txn, clicks and devices, not '\(s)'") }
            case "--count":
                guard let n = Int64(v), n >= 0 else { throw Usage(description: "--count takes a whole number, not '\(v)'") }
                count = n
            case "--rate":
                guard let r = Double(v), r >= 0 else { throw Usage(description: "--rate takes events per second (0: unthrottled), not '\(v)'") }
                rate = r
            case "--seed":
                guard let s = UInt64(v) else { throw Usage(description: "--seed takes a whole number, not '\(v)'") }
                config.seed = s
            case "--start":
                if v == "now" {
                    wallClockTimestamps = true
                    // Arrival times (the records' Kafka timestamps) then follow the wall clock when throttled.
                    var ts = timespec()
                    clock_gettime(CLOCK_REALTIME, &ts)
                    config.startMillis = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
                } else {
                    guard let s = Int64(v) else { throw Usage(description: "--start takes epoch milliseconds or 'now', not '\(v)'") }
                    config.startMillis = s
                }
            case "--late-share": config.lateShare = try share(v, flag)
            case "--too-late-share": config.tooLateShare = try share(v, flag)
            case "--malformed-share": config.malformedShare = try share(v, flag)
            case "--v2-share": config.v2Share = try share(v, flag)
            case "--fraud-share": config.fraudShare = try share(v, flag)
            case "--cards", "--users":
                guard let n = Int(v), n > 0 else { throw Usage(description: "\(flag) takes a positive number, not '\(v)'") }
                if flag == "--cards" { config.cards = n } else { config.users = n }
            case "--labels": labels = v
            case "--click-labels": clickLabels = v
            case "--amount-shift":
                guard let f = Double(v), f > 0 else { throw Usage(description: "--amount-shift takes a factor > 0, not '\(v)'") }
                config.amountShift = f
            case "--shift-after":
                guard let n = Int64(v), n >= 0 else { throw Usage(description: "--shift-after takes a record index ≥ 0, not '\(v)'") }
                config.shiftAfter = n
            case "--registry": registry = v
            case "--txn-topic": topics["txn"] = v
            case "--event-rate":
                guard let r = Double(v), r > 0 else { throw Usage(description: "--event-rate takes events per second of event time > 0, not '\(v)'") }
                eventRate = r
            case "--clicks-topic": topics["clicks"] = v
            case "--devices-topic": topics["devices"] = v
            case "-X":
                let parts = v.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, !parts[0].isEmpty else { throw Usage(description: "-X takes a librdkafka property as key=value, not '\(v)'") }
                producerProperties[String(parts[0])] = String(parts[1])
            default: throw Usage(description: "unknown flag \(flag)")
            }
            i += 2
        }
        if let eventRate { config.eventsPerSecond = eventRate } else if rate > 0 { config.eventsPerSecond = rate }
    }
}

/// Counts for the progress line and the summary, per stream.
final class Tally: Sendable {
    let sent = Atomic<Int64>(0)
    let malformed = Mutex<[String: Int64]>([:])
    let late = Atomic<Int64>(0)
    let tooLate = Atomic<Int64>(0)
    let fraud = Atomic<Int64>(0)
    let v2 = Atomic<Int64>(0)
}

/// The fraud label lines, from every subtask.
final class LabelLog: Sendable {
    let lines = Mutex<[String]>([])
}

final class RecordWriter: KafkaRecordSerializer {
    let codec: ConfluentAvroCodec
    let config: GeneratorConfig
    let stream: String
    let tally: Tally
    let labels: LabelLog?
    let make: (Int64) -> GeneratedRecord
    let partitions: Int
    let wallClock: Bool

    init(registry: ContractRegistry, config: GeneratorConfig, stream: String, partitions: Int, wallClock: Bool, tally: Tally, labels: LabelLog?) throws {
        self.partitions = partitions
        self.wallClock = wallClock
        codec = try ConfluentAvroCodec(registry: registry, reader: registry.byId[1]!)
        self.config = config
        self.stream = stream
        self.tally = tally
        self.labels = labels
        switch stream {
        case "txn": let g = TransactionGenerator(config); make = g.record
        case "clicks": let g = ClickGenerator(config); make = g.record
        default: let g = DeviceGenerator(config); make = g.record
        }
    }

    func serialize(_ i: Int64) throws -> KafkaProducerRecord {
        var r = make(i)
        let bytes = try r.encode(with: codec, config: config, index: i, stream: stream == "txn" ? 1 : stream == "clicks" ? 2 : 3)
        tally.sent.add(1, ordering: .relaxed)
        if let m = r.malformed { tally.malformed.withLock { $0[m.kind, default: 0] += 1 } }
        switch r.lateness {
        case .late: tally.late.add(1, ordering: .relaxed)
        case .tooLate: tally.tooLate.add(1, ordering: .relaxed)
        case .onTime: break
        }
        if r.schemaId == 2 { tally.v2.add(1, ordering: .relaxed) }
        if let f = r.fraud {
            tally.fraud.add(1, ordering: .relaxed)
            labels?.lines.withLock { $0.append("\(r.id),\(r.key),\(r.eventTime),\(f.rawValue)") }
        }
        if stream == "clicks", let labels, r.malformed == nil, r.value["action"] == .enumSymbol("PURCHASE") {
            labels.lines.withLock { $0.append("\(r.id),\(r.key),\(r.eventTime),PURCHASE") }
        }
        // The partition Kafka's default partitioner picks (murmur2), set here so the lanes agree on it.
        let key = Array(r.key.utf8)
        return KafkaProducerRecord(partition: KafkaPartitioner.partition(key, partitions: partitions), key: key, value: bytes,
                                   timestamp: wallClock ? nil : r.arrivalTime)
    }
}

func run() throws {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    let registry = try ContractRegistry(file: options.registry)
    var config = KafkaConfig(bootstrapServers: options.bootstrap)
    config.properties.merge(options.producerProperties) { $1 }
    // Unthrottled, two lanes generate in parallel; each sends the records of its own partitions, so
    // every partition receives its records in index (= arrival) order, as the timeline says.
    let lanes = options.rate > 0 ? 1 : 2
    let env = StreamExecutionEnvironment(parallelism: lanes)
    let partitionCounts = try KafkaAdmin.partitionCounts(config, options.streams.map { options.topics[$0]! }, timeoutMillis: 10_000)
    let labels = options.labels.map { _ in LabelLog() }
    let clickLabels = options.clickLabels.map { _ in LabelLog() }
    var tallies: [(String, Tally)] = []
    let started = ContinuousClock.now
    let rate = options.rate
    for stream in options.streams {
        let tally = Tally()
        tallies.append((stream, tally))
        let g = options.config
        let partitions = partitionCounts[options.topics[stream]!]!
        let wallClock = options.wallClockTimestamps
        let keyOf: @Sendable (Int64) -> String
        switch stream {
        case "txn": let gen = TransactionGenerator(g); keyOf = gen.key
        case "clicks": let gen = ClickGenerator(g); keyOf = gen.key
        default: let gen = DeviceGenerator(g); keyOf = gen.key
        }
        let count = options.count
        let source = DataGeneratorSource(count: count * Int64(lanes), splits: lanes) { j -> Int64 in
            let i = j % count
            if lanes > 1, Int(KafkaPartitioner.partition(Array(keyOf(i).utf8), partitions: partitions)) % lanes != Int(j / count) { return -1 }
            if rate > 0 {
                // Record i is due i / rate seconds after the start.
                let due = started + .nanoseconds(Int64(Double(i) * 1e9 / rate))
                let now = ContinuousClock.now
                if due > now { Thread.sleep(forTimeInterval: Double((due - now).components.attoseconds) / 1e18 + Double((due - now).components.seconds)) }
            }
            return i
        }
        env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "generate \(stream)")
            .filter { $0 >= 0 }
            .sinkTo(KafkaSink(config: config, topic: options.topics[stream]!, guarantee: .atLeastOnce) {
                try RecordWriter(registry: registry, config: g, stream: stream, partitions: partitions, wallClock: wallClock, tally: tally, labels: stream == "txn" ? labels : stream == "clicks" ? clickLabels : nil)
            }, name: "to \(options.topics[stream]!)")
    }
    let all = tallies, count = options.count
    let line: @Sendable () -> String = {
        let tallies = all, options = (count: count, ())
        let seconds = max(0.001, Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds))
        return tallies.map { name, t in
            let n = t.sent.load(ordering: .relaxed)
            return "\(name) \(n)/\(options.count) (\(Int(Double(n) / seconds))/s)"
        }.joined(separator: ", ")
    }
    let done = Atomic<Bool>(false)
    let ticker = Thread {
        while !done.load(ordering: .relaxed) {
            Thread.sleep(forTimeInterval: 1)
            if !done.load(ordering: .relaxed) { writeStderr("generate: " + line()) }
        }
    }
    ticker.start()
    defer { done.store(true, ordering: .relaxed) }
    try env.execute("generate")
    let elapsed = ContinuousClock.now - started
    if let path = options.labels, let labels {
        let text = "txn_id,card_id,event_time,pattern\n" + labels.lines.withLock { $0.sorted().joined(separator: "\n") } + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
    if let path = options.clickLabels, let clickLabels {
        let text = "event_id,user_id,event_time,action\n" + clickLabels.lines.withLock { $0.sorted().joined(separator: "\n") } + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
    print("generate: done in \(elapsed.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))) — " + line())
    for (name, t) in tallies {
        let malformed = t.malformed.withLock { $0 }
        print("  \(name): \(t.sent.load(ordering: .relaxed)) sent to \(options.topics[name]!); late \(t.late.load(ordering: .relaxed)), too late \(t.tooLate.load(ordering: .relaxed)), malformed \(malformed.values.reduce(0, +))"
              + (malformed.isEmpty ? "" : " (" + malformed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
              + (name == "txn" ? ", v2 \(t.v2.load(ordering: .relaxed)), fraud \(t.fraud.load(ordering: .relaxed))" : ""))
    }
    if let path = options.labels { print("  fraud labels: \(path)") }
    if let path = options.clickLabels { print("  purchase labels: \(path)") }
}

do {
    try run()
} catch let e as Usage {
    writeStderr("generate: \(e.description)\nusage: generate [--bootstrap HOST:PORT] [--streams txn,clicks,devices] [--count N] [--rate R] [--seed S] [--labels FILE] …")
    exit(2)
} catch {
    writeStderr("generate: \(error)")
    exit(1)
}
