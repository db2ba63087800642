import Contracts
import Foundation
import Kafka
import StreamCore
import XCTest

/// `generate` against the real local broker: every stream's records arrive keyed and decodable, the
/// malformed share is rejected with the reasons the summary counts, fraud labels are written, and
/// --rate throttles.
final class GenerateToolTests: XCTestCase {
    func generate(_ args: [String]) throws -> (Int32, String) {
        let binary = LocalBrokerTests.root + "/.build/debug/generate"
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary), "build the generate product first (swift build --build-tests)")
        return LocalBrokerTests.run([binary, "--registry", TestBroker.schemas + "/registry.json"] + args)
    }

    func testAllStreamsArriveDecodableWithTheirMalformedShare() throws {
        let t = try TestBroker.topics(["txn": 4, "clicks": 4, "devices": 2])
        let labels = NSTemporaryDirectory() + "labels-\(UUID().uuidString).csv"
        defer { unlink(labels) }
        let (status, out) = try generate(["--bootstrap", try TestBroker.bootstrap(), "--count", "3000", "--rate", "0",
                                          "--malformed-share", "0.02", "--fraud-share", "0.05", "--labels", labels,
                                          "--txn-topic", t["txn"]!, "--clicks-topic", t["clicks"]!, "--devices-topic", t["devices"]!])
        XCTAssertEqual(status, 0, out)
        let reg = try TestBroker.registry()
        for (stream, readerId) in [("txn", Int32(1)), ("clicks", 3), ("devices", 4)] {
            let env = StreamExecutionEnvironment(parallelism: 1)
            let source = KafkaSource<AvroValue>(config: try TestBroker.config(), topics: [t[stream]!], groupId: "gen", bounded: true) {
                try ConfluentAvroDeserializer(registry: reg, readerSchema: reg.byId[readerId]!)
            }
            let s = env.fromSource(source, watermarkStrategy: .noWatermarks(), name: stream)
            let rejected = CollectSink<RejectedRecord>()
            s.getSideOutput(SourceOutputs.rejected).sinkTo(rejected)
            let good = try s.executeAndCollect()
            XCTAssertEqual(good.count + rejected.values.count, 3_000, stream)
            // The summary line counts the malformed ones by reason; the DLQ reasons agree.
            let line = try XCTUnwrap(out.split(separator: "\n").first { $0.contains("  \(stream): ") }, out)
            XCTAssertTrue(line.contains("malformed \(rejected.values.count)"), "\(line) vs \(rejected.values.count) rejected")
            var reasons: [String: Int] = [:]
            for r in rejected.values { reasons[r.reason, default: 0] += 1 }
            for (reason, count) in reasons { XCTAssertTrue(line.contains("\(reason) \(count)"), "\(line) vs \(reasons)") }
            XCTAssertGreaterThan(rejected.values.count, 20)
        }
        let rows = try String(contentsOfFile: labels, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.first, "txn_id,card_id,event_time,pattern")
        let txnLine = try XCTUnwrap(out.split(separator: "\n").first { $0.contains("  txn: ") })
        XCTAssertTrue(txnLine.contains("fraud \(rows.count - 1)"), "\(txnLine) vs \(rows.count - 1) labels")
        XCTAssertGreaterThan(rows.count, 50)
    }

    func testRateThrottlesAndBadFlagsFailFast() throws {
        let t = try TestBroker.topics(["txn": 1])
        let start = ContinuousClock.now
        let (status, out) = try generate(["--bootstrap", try TestBroker.bootstrap(), "--streams", "txn", "--count", "1500",
                                          "--rate", "1000", "--txn-topic", t["txn"]!])
        XCTAssertEqual(status, 0, out)
        XCTAssertGreaterThan(ContinuousClock.now - start, .milliseconds(1_300), "1 500 records at 1 000/s take at least 1.5 s")
        let (bad, message) = try generate(["--streams", "txn,payments"])
        XCTAssertEqual(bad, 2)
        XCTAssertTrue(message.contains("--streams takes txn, clicks and devices, not 'payments'"), message)
        let (bad2, message2) = try generate(["--late-share", "2"])
        XCTAssertEqual(bad2, 2)
        XCTAssertTrue(message2.contains("--late-share takes a share between 0 and 1"), message2)
    }
}
