// replay — re-publishes dead letters to the topic they came from (issue 5).
//
//   replay dlq  --bootstrap HOST:PORT --dlq TOPIC [--to TOPIC] [--reason CODE] [--export FILE]
//               [--registry schemas/registry.json]
//       Reads every envelope in the DLQ topic and publishes its original key and bytes to its
//       source topic (or --to); --reason keeps only one reason code; --export writes the records
//       to FILE (JSON lines) instead of publishing, for fixing by hand.
//   replay file --bootstrap HOST:PORT --file FILE [--to TOPIC]
//       Publishes the records of FILE (JSON lines as --export writes them: "topic", "key_b64",
//       "value_b64"; "topic" is overridden by --to).
//
// A progress line every second on stderr, a summary line at the end on stdout:
//   replay: 10000 read, 10000 published, 0 skipped (…)
import Contracts
import Foundation
import Kafka
import StreamCore
import Synchronization

struct Usage: Error, CustomStringConvertible {
    let description: String
}

let usage = """
    usage: replay dlq  --bootstrap HOST:PORT --dlq TOPIC [--to TOPIC] [--reason CODE] [--export FILE] [--registry FILE]
           replay file --bootstrap HOST:PORT --file FILE [--to TOPIC]
    """

struct Options {
    var mode = ""
    var bootstrap: String?
    var dlq: String?
    var to: String?
    var reason: String?
    var export: String?
    var file: String?
    var registry = "schemas/registry.json"

    init(_ args: [String]) throws {
        guard let first = args.first, first == "dlq" || first == "file" else { throw Usage(description: usage) }
        mode = first
        var i = 1
        while i < args.count {
            let flag = args[i]
            guard i + 1 < args.count, !args[i + 1].hasPrefix("--") else { throw Usage(description: "\(flag) needs a value\n\(usage)") }
            let v = args[i + 1]
            switch flag {
            case "--bootstrap": bootstrap = v
            case "--dlq": dlq = v
            case "--to": to = v
            case "--reason":
                guard DeadLetterEnvelope.reasons.contains(v) else {
                    throw Usage(description: "--reason must be one of \(DeadLetterEnvelope.reasons.sorted().joined(separator: ", ")), not '\(v)'")
                }
                reason = v
            case "--export": export = v
            case "--file": file = v
            case "--registry": registry = v
            default: throw Usage(description: "unknown flag \(flag)\n\(usage)")
            }
            i += 2
        }
        guard bootstrap != nil else { throw Usage(description: "--bootstrap HOST:PORT is required\n\(usage)") }
        if mode == "dlq", dlq == nil { throw Usage(description: "replay dlq needs --dlq TOPIC\n\(usage)") }
        if mode == "file", file == nil { throw Usage(description: "replay file needs --file FILE\n\(usage)") }
    }
}

/// One record to publish, from an envelope or a file line.
struct Replayed: Sendable {
    var topic: String
    var key: [UInt8]?
    var value: [UInt8]?
    var reason: String
    var origin: RecordOrigin?
    var error: String
}

final class Progress: Sendable {
    let read = Atomic<Int64>(0)
    let published = Atomic<Int64>(0)
    let skipped = Atomic<Int64>(0)
    let started = ContinuousClock.now
    var line: String {
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
        return "replay: \(read.load(ordering: .relaxed)) read, \(published.load(ordering: .relaxed)) published, \(skipped.load(ordering: .relaxed)) skipped (\(String(format: "%.1f", seconds)) s)"
    }
}

final class EnvelopeReader: KafkaRecordDeserializer {
    let dlq: DeadLetterSerializer
    init(registry: ContractRegistry) throws { dlq = try DeadLetterSerializer(registry: registry, job: "replay") }
    func deserialize(_ m: KafkaMessage) throws(DeserializationError) -> Replayed {
        guard let value = m.valueBytes else { throw DeserializationError(reason: "UNDECODABLE", message: "DLQ record without a value") }
        do {
            let e = try dlq.decode(value)
            return Replayed(topic: e.record.origin.topic, key: e.record.key, value: e.record.value, reason: e.record.reason,
                            origin: e.record.origin, error: e.record.error)
        } catch {
            throw DeserializationError(reason: "UNDECODABLE", message: "not a DLQ envelope: \(error)")
        }
    }
}

final class Publisher: KafkaRecordSerializer {
    let to: String?
    let progress: Progress
    init(to: String?, progress: Progress) { self.to = to; self.progress = progress }
    func serialize(_ r: Replayed) -> KafkaProducerRecord {
        progress.published.add(1, ordering: .relaxed)
        return KafkaProducerRecord(topic: to ?? r.topic, key: r.key, value: r.value)
    }
}

func exportLine(_ r: Replayed) -> String {
    var o: [String: Any] = ["topic": r.topic, "reason": r.reason, "error": r.error]
    if let k = r.key { o["key_b64"] = Data(k).base64EncodedString() }
    if let v = r.value { o["value_b64"] = Data(v).base64EncodedString() }
    if let origin = r.origin { o["source_partition"] = origin.partition; o["source_offset"] = origin.offset }
    let data = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

func readFile(_ path: String, to: String?) throws -> [Replayed] {
    guard let data = FileManager.default.contents(atPath: path) else { throw Usage(description: "cannot read \(path)") }
    var out: [Replayed] = []
    for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
        guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw Usage(description: "\(path):\(n + 1): not a JSON object")
        }
        func bytes(_ field: String) throws -> [UInt8]? {
            guard let s = o[field] as? String else { return nil }
            guard let d = Data(base64Encoded: s) else { throw Usage(description: "\(path):\(n + 1): \(field) is not base64") }
            return Array(d)
        }
        guard let topic = to ?? (o["topic"] as? String) else {
            throw Usage(description: "\(path):\(n + 1): no \"topic\" (or give --to)")
        }
        out.append(Replayed(topic: topic, key: try bytes("key_b64"), value: try bytes("value_b64"),
                            reason: o["reason"] as? String ?? "", origin: nil, error: ""))
    }
    return out
}

func run() throws -> Int32 {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    let config = KafkaConfig(bootstrapServers: options.bootstrap!)
    let progress = Progress()
    let env = StreamExecutionEnvironment(parallelism: 1)
    var stream: DataStream<Replayed>
    if options.mode == "dlq" {
        let registry = try ContractRegistry(file: options.registry)
        let source = KafkaSource<Replayed>(config: config, topics: [options.dlq!], groupId: "replay-\(options.dlq!)",
                                           bounded: true) { try EnvelopeReader(registry: registry) }
        let all = env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "DLQ \(options.dlq!)")
        all.getSideOutput(SourceOutputs.rejected).map { r -> Int in
            progress.read.add(1, ordering: .relaxed)
            progress.skipped.add(1, ordering: .relaxed)
            writeStderr("replay: skipped \(r.origin.topic)[\(r.origin.partition)]@\(r.origin.offset): \(r.error)")
            return 0
        }.sinkTo(DiscardingSink())
        let wanted = options.reason
        stream = all.filter { r in
            progress.read.add(1, ordering: .relaxed)
            if let wanted, r.reason != wanted { progress.skipped.add(1, ordering: .relaxed); return false }
            return true
        }
    } else {
        let records = try readFile(options.file!, to: options.to)
        stream = env.fromData(records).map { r in progress.read.add(1, ordering: .relaxed); return r }
    }
    let lines = Mutex<[String]>([])
    if let export = options.export {
        stream.map { r -> Int in lines.withLock { $0.append(exportLine(r)) }; return 0 }.sinkTo(DiscardingSink())
        try env.execute("replay export")
        let text = lines.withLock { $0.joined(separator: "\n") + ($0.isEmpty ? "" : "\n") }
        try text.write(toFile: export, atomically: true, encoding: .utf8)
        print(progress.line.replacingOccurrences(of: "published", with: "exported to \(export)"))
        return 0
    }
    let to = options.to
    stream.sinkTo(KafkaSink(config: config, topic: to ?? "unused", guarantee: .atLeastOnce) { Publisher(to: to, progress: progress) },
                  name: "publish")
    let done = Atomic<Bool>(false)
    let ticker = Thread {
        while !done.load(ordering: .relaxed) {
            Thread.sleep(forTimeInterval: 1)
            if !done.load(ordering: .relaxed) { writeStderr(progress.line) }
        }
    }
    ticker.start()
    defer { done.store(true, ordering: .relaxed) }
    try env.execute("replay")
    print(progress.line)
    return 0
}

do {
    exit(try run())
} catch let e as Usage {
    writeStderr("replay: \(e.description)")
    exit(2)
} catch {
    writeStderr("replay: \(error)")
    exit(1)
}
