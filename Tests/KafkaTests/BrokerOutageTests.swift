import Foundation
import Kafka
import StreamCore
import Synchronization
import XCTest

/// A broker outage, ridden out (issue 5). The local broker keeps data only in memory, so the outage
/// is the broker process stopped with SIGSTOP for a while and resumed with SIGCONT: the job waits,
/// reconnects and goes on, losing nothing and reading nothing twice, its sink included.
final class BrokerOutageTests: XCTestCase {
    func testAJobRidesOutABrokerPause() throws {
        if TestBroker.external != nil { throw XCTSkip("pauses the local broker's process; KAFKA_BOOTSTRAP points elsewhere") }
        let t = try TestBroker.topics(["in": 4, "out": 4])
        let (status, line) = LocalBrokerTests.script(["status"])
        XCTAssertEqual(status, 0, line)
        let pid = try XCTUnwrap(line.split(separator: " ").last.flatMap { Int32($0.dropLast()) }, "no pid in: \(line)")

        let before = 5_000, during = 5_000
        try produce((0..<before).map { Txn.make(Int64($0)) }, to: t["in"]!, serializer: txnSerializer())

        let seen = Mutex<[Int64: Int]>([:])
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.enableCheckpointing(.milliseconds(200), store: InMemoryCheckpointStore())
        let source = KafkaSource<Txn>(config: try TestBroker.config(), topics: [t["in"]!], groupId: "outage",
                                      deserializer: txnDeserializer())
        env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "txns")
            .map { txn -> Txn in
                seen.withLock { $0[txn.id, default: 0] += 1 }
                return txn
            }
            .sinkTo(KafkaSink(config: try TestBroker.config(), topic: t["out"]!, guarantee: .atLeastOnce, serializer: txnSerializer()))
        let job = try env.executeAsync("outage")
        defer { job.cancel(); _ = try? job.waitForResult() }
        func waitFor(_ n: Int, seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if seen.withLock({ $0.count }) >= n { return true }
                usleep(20_000)
            }
            return false
        }
        XCTAssertTrue(waitFor(before, seconds: 30), "the job read the first records")

        // The broker stops answering; records produced meanwhile wait in the producer's queue.
        XCTAssertEqual(kill(pid, SIGSTOP), 0)
        var resumed = false
        defer { if !resumed { kill(pid, SIGCONT) } }
        let producer = Thread {
            try? produce((before..<(before + during)).map { Txn.make(Int64($0)) }, to: t["in"]!, serializer: txnSerializer())
        }
        producer.start()
        sleep(6)
        XCTAssertEqual(seen.withLock { $0.count }, before, "nothing new while the broker is stopped")
        XCTAssertEqual(kill(pid, SIGCONT), 0)
        resumed = true

        XCTAssertTrue(waitFor(before + during, seconds: 90), "after the outage the job read everything (\(seen.withLock { $0.count }))")
        // Let the sink's next checkpoint flush, then stop the job.
        usleep(600_000)
        job.cancel()
        _ = try? job.waitForResult()
        let counts = seen.withLock { $0 }
        XCTAssertEqual(Set(counts.keys), Set((0..<Int64(before + during))))
        XCTAssertEqual(counts.values.filter { $0 > 1 }.count, 0, "records read twice")

        let out = try readAll(t["out"]!, deserializer: txnDeserializer())
        XCTAssertEqual(Set(out.map(\.id)), Set(0..<Int64(before + during)), "the sink delivered every record")
        XCTAssertEqual(out.count, before + during, "no record written twice")
    }
}
