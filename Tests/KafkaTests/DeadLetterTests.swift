import Contracts
import Foundation
import Kafka
import Operators
import StreamCore
import StreamTesting
import Synchronization
import XCTest

/// DLQ routing, envelopes and `replay` against the real local broker (issue 5): 10 000 malformed
/// records among valid ones all land in the DLQ with the right reason while the job goes on; the
/// envelope carries the original key and bytes, topic/partition/offset, error, time and job;
/// records in = records processed + records in the DLQ; `replay` puts the original bytes back.
final class DeadLetterTests: XCTestCase {
    func testMalformedRecordsLandInTheDLQWithTheirReasonAndReplayRoundTrips() throws {
        let t = try TestBroker.topics(["txn": 4, "replayed": 2, "fixed": 2])
        let dlqTopic = t["txn"]! + ".dlq"
        try KafkaAdmin.createTopics(try TestBroker.config(), [dlqTopic: 3])
        let reg = try TestBroker.registry()
        let codec = try ConfluentAvroCodec(registry: reg, reader: reg.byId[1]!)

        // 2 000 valid records and 10 000 malformed ones, interleaved: 2 000 each of truncated, wrong
        // magic, unknown schema id, and 4 000 undecodable bodies (garbage, or cut short).
        var rng = SeededRandom(seed: 42)   // the same "garbage" bodies every run
        var records: [KafkaProducerRecord] = []
        var expectedReasons: [String: Int] = [:]
        var valid = 0
        for i in 0..<12_000 {
            let txn = Txn.make(Int64(i))
            let good = try codec.encode(txn.avro, schemaId: 1)
            let kind = i % 6
            var value: [UInt8]
            switch kind {
            case 0: value = Array(good[..<(i % 5)])                                   // shorter than the header
                    expectedReasons["TRUNCATED", default: 0] += 1
            case 1: value = good; value[0] = UInt8(1 + i % 200)                        // wrong magic byte
                    expectedReasons["BAD_MAGIC", default: 0] += 1
            case 2: value = good; value[1...4] = [0, 0, 0x03, 0xE7]                    // schema id 999
                    expectedReasons["UNKNOWN_SCHEMA", default: 0] += 1
            case 3: value = Array(good[..<5]) + (0..<(8 + i % 40)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    expectedReasons["UNDECODABLE", default: 0] += 1                     // garbage body
            case 4: value = Array(good.dropLast(3))                                    // body cut short
                    expectedReasons["UNDECODABLE", default: 0] += 1
            default: value = good
                     valid += 1
            }
            records.append(KafkaProducerRecord(key: Array(txn.card.utf8), value: value))
        }
        XCTAssertEqual(records.count - valid, expectedReasons.values.reduce(0, +))
        try produce(records, to: t["txn"]!) { RawSerializer() }
        let originals = try readAll(t["txn"]!) { KafkaRecordCopier() }
        XCTAssertEqual(originals.count, records.count)
        let originalAt = Dictionary(uniqueKeysWithValues: originals.map { ("\($0.partition)/\($0.offset)", $0) })

        let started = Int64(Date().timeIntervalSince1970 * 1000)
        let env = StreamExecutionEnvironment(parallelism: 2)
        let source = KafkaSource<Txn>(config: try TestBroker.config(), topics: [t["txn"]!], groupId: "dlq-test",
                                      bounded: true, deserializer: txnDeserializer())
        let txns = env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "txns")
        txns.getSideOutput(SourceOutputs.rejected)
            .sinkTo(KafkaSink(config: try TestBroker.config(), topic: dlqTopic, guarantee: .atLeastOnce) {
                try DeadLetterSerializer(registry: TestBroker.registry(), job: "dlq-test")
            }, name: "DLQ")
        let processed = CollectSink<Txn>()
        txns.sinkTo(processed, name: "processed")
        let result = try env.execute("dlq test")
        XCTAssertEqual(processed.values.count, valid, "the job kept going through the malformed records")

        // records in = processed + DLQ
        let src = try XCTUnwrap(result.operator("txns"))
        XCTAssertEqual(src.numRecordsIn, Int64(records.count))
        XCTAssertEqual(src.counters["numRecordsRejected"], Int64(records.count - valid))
        XCTAssertEqual(result.operator("processed")!.numRecordsIn + result.operator("DLQ")!.numRecordsIn, src.numRecordsIn)

        // Every envelope: the right reason, the original key, bytes and position, the job, the time.
        let dlq = try DeadLetterSerializer(registry: reg, job: "reader")
        let envelopes = try readAll(dlqTopic) { KafkaRecordCopier() }.map { try dlq.decode($0.value!) }
        XCTAssertEqual(envelopes.count, records.count - valid)
        var reasons: [String: Int] = [:]
        for e in envelopes {
            reasons[e.record.reason, default: 0] += 1
            let o = try XCTUnwrap(originalAt["\(e.record.origin.partition)/\(e.record.origin.offset)"])
            XCTAssertEqual(e.record.origin.topic, t["txn"]!)
            XCTAssertEqual(e.record.key, o.key)
            XCTAssertEqual(e.record.value, o.value)
            XCTAssertEqual(e.job, "dlq-test")
            XCTAssertFalse(e.record.error.isEmpty)
            XCTAssertGreaterThanOrEqual(e.time, started - 1_000)
        }
        XCTAssertEqual(reasons, expectedReasons)

        // replay dlq → the original records again (key and bytes), with a summary line.
        let bootstrap = try TestBroker.bootstrap()
        let (status, out) = try runReplay(["dlq", "--bootstrap", bootstrap, "--dlq", dlqTopic, "--to", t["replayed"]!,
                                           "--registry", TestBroker.schemas + "/registry.json"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("replay: \(envelopes.count) read, \(envelopes.count) published, 0 skipped"), out)
        let replayed = try readAll(t["replayed"]!) { KafkaRecordCopier() }
        func multiset(_ rs: [(key: [UInt8]?, value: [UInt8]?)]) -> [String: Int] {
            var m: [String: Int] = [:]
            for r in rs { m["\(r.key ?? [])|\(r.value ?? [])", default: 0] += 1 }
            return m
        }
        XCTAssertEqual(multiset(replayed.map { ($0.key, $0.value) }), multiset(envelopes.map { ($0.record.key, $0.record.value) }))

        // Export the BAD_MAGIC ones, fix them (magic byte 0), replay the file: all decode now.
        let file = NSTemporaryDirectory() + "dlq-\(UUID().uuidString).jsonl"
        defer { unlink(file) }
        let (s2, out2) = try runReplay(["dlq", "--bootstrap", bootstrap, "--dlq", dlqTopic, "--reason", "BAD_MAGIC", "--export", file,
                                        "--registry", TestBroker.schemas + "/registry.json"])
        XCTAssertEqual(s2, 0, out2)
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, expectedReasons["BAD_MAGIC"])
        let fixed = try lines.map { line -> String in
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            var v = Array(Data(base64Encoded: o["value_b64"] as! String)!)
            v[0] = 0
            o["value_b64"] = Data(v).base64EncodedString()
            return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }.joined(separator: "\n")
        try fixed.write(toFile: file, atomically: true, encoding: .utf8)
        let (s3, out3) = try runReplay(["file", "--bootstrap", bootstrap, "--file", file, "--to", t["fixed"]!])
        XCTAssertEqual(s3, 0, out3)
        let repaired = try readAll(t["fixed"]!, deserializer: txnDeserializer())
        XCTAssertEqual(repaired.count, expectedReasons["BAD_MAGIC"])
    }

    /// Records too late for every window go to the DLQ as TOO_LATE with their original bytes:
    /// `KeepingOrigin` keeps them with each element, the window's late side output is mapped to
    /// `RejectedRecord`s.
    func testRecordsTooLateForEveryWindowGoToTheDLQ() throws {
        let t = try TestBroker.topics(["txn": 1])
        let dlqTopic = t["txn"]! + ".dlq"
        try KafkaAdmin.createTopics(try TestBroker.config(), [dlqTopic: 1])
        // One partition, in this order; the watermark follows the records (no out-of-orderness):
        // 2 000 arrives after 15 000 closed [0, 10 000), 12 000 after 25 000 closed [10 000, 20 000).
        let times: [Int64] = [1_000, 3_000, 15_000, 2_000, 25_000, 12_000, 30_000]
        let txns = times.enumerated().map { i, ts in Txn(id: Int64(i), card: "c", amount: Int64(10 * (i + 1)), timestamp: ts) }
        try produce(txns, to: t["txn"]!, serializer: txnSerializer())

        let env = StreamExecutionEnvironment(parallelism: 1)
        env.autoWatermarkInterval = .zero
        let source = KafkaSource<Sourced<Txn>>(config: try TestBroker.config(), topics: [t["txn"]!], groupId: "late", bounded: true) {
            KeepingOrigin(try txnDeserializer()())
        }
        let late = OutputTag<Sourced<Txn>>("late")
        let sums = env.fromSource(source, watermarkStrategy: WatermarkStrategy<Sourced<Txn>>.forMonotonousTimestamps()
                                    .withTimestampAssigner { s, _ in s.value.timestamp }, name: "txns")
            .keyBy { $0.value.card }
            .window(TumblingEventTimeWindows.of(.seconds(10)))
            .sideOutputLateData(late)
            .reduce { a, b in var s = a; s.value.amount += b.value.amount; return s }
        sums.getSideOutput(late)
            .map { $0.rejected(reason: "TOO_LATE", error: "event time \($0.value.timestamp) is behind the watermark; its window has fired") }
            .sinkTo(KafkaSink(config: try TestBroker.config(), topic: dlqTopic, guarantee: .atLeastOnce) {
                try DeadLetterSerializer(registry: TestBroker.registry(), job: "late-test")
            }, name: "DLQ")
        let windows = CollectSink<Int64>()
        sums.map { $0.value.amount }.sinkTo(windows)
        try env.execute("too late")

        XCTAssertEqual(windows.values.sorted(), [10 + 20, 30, 50, 70], "windows without the late records")
        let dlq = try DeadLetterSerializer(registry: TestBroker.registry(), job: "reader")
        let envelopes = try readAll(dlqTopic) { KafkaRecordCopier() }.map { try dlq.decode($0.value!) }
        XCTAssertEqual(envelopes.map(\.record.reason), ["TOO_LATE", "TOO_LATE"])
        XCTAssertEqual(envelopes.map(\.record.origin.offset), [3, 5])
        let originals = try readAll(t["txn"]!) { KafkaRecordCopier() }
        XCTAssertEqual(envelopes.map(\.record.value), [originals[3].value, originals[5].value])
        XCTAssertEqual(envelopes.map(\.job), ["late-test", "late-test"])
        XCTAssertEqual(txns.count, 5 + envelopes.count, "records in = records in windows + records in the DLQ")
    }

    func testReplayFailsFastOnBadFlags() throws {
        let (status, out) = try runReplay(["dlq", "--dlq", "x"])
        XCTAssertEqual(status, 2)
        XCTAssertTrue(out.contains("--bootstrap HOST:PORT is required"), out)
        let (s2, out2) = try runReplay(["dlq", "--bootstrap", "127.0.0.1:1", "--dlq", "x", "--reason", "NOPE"])
        XCTAssertEqual(s2, 2)
        XCTAssertTrue(out2.contains("--reason must be one of"), out2)
    }

    /// Runs the replay binary built next to the tests; stdout and stderr together.
    func runReplay(_ args: [String]) throws -> (Int32, String) {
        let binary = LocalBrokerTests.root + "/.build/debug/replay"
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary), "build the replay product first (swift build --build-tests)")
        return LocalBrokerTests.run([binary] + args)
    }
}
