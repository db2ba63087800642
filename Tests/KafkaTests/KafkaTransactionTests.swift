import Foundation
import Kafka
import StreamCore
import XCTest

/// The exactly-once Kafka sink's transactions, driven the way the runtime drives a writer
/// (initializeState, write, snapshotState at a barrier, notifyCheckpointComplete), against the
/// real local broker: fencing on restart, recovery that does not write a committed epoch twice,
/// and recovery of an epoch whose commit was lost in a crash.
final class KafkaTransactionTests: XCTestCase {
    func sink(_ topic: String, prefix: String, retryLimit: Duration = .seconds(60)) throws -> KafkaSink<Txn> {
        KafkaSink(config: try TestBroker.config(), topic: topic, guarantee: .exactlyOnce(transactionalIdPrefix: prefix),
                  transactionRetryLimit: retryLimit, serializer: txnSerializer())
    }

    func write(_ w: KafkaSinkWriter<Txn>, _ range: Range<Int64>) throws {
        for i in range { try w.write(Txn.make(i), context: SinkWriterContext(timestamp: Txn.make(i).timestamp, currentWatermark: .min)) }
    }

    func testARestartedWriterFencesTheOldOne() throws {
        let t = try TestBroker.topics(["out": 2])
        let prefix = "fence-\(UUID().uuidString.prefix(8))"
        // The local broker answers a fenced producer by closing the connection (a real Kafka says
        // PRODUCER_FENCED): the old writer's commit then fails once its retries run out.
        let old = try sink(t["out"]!, prefix: prefix, retryLimit: .seconds(3)).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try old.initializeState([])
        try write(old, 0..<100)
        _ = try old.snapshotState(checkpointId: 1)

        let new = try sink(t["out"]!, prefix: prefix).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try new.initializeState([])
        XCTAssertThrowsError(try old.notifyCheckpointComplete(1), "the old producer is fenced") { error in
            if TestBroker.hidesAbortedRecords { XCTAssertTrue("\(error)".lowercased().contains("fenc"), "\(error)") }
        }
        try write(new, 100..<150)
        _ = try new.snapshotState(checkpointId: 1)
        try new.notifyCheckpointComplete(1)
        try new.close()
        let read = try readAll(t["out"]!, deserializer: txnDeserializer())
        XCTAssertTrue(Set(read.map(\.id)).isSuperset(of: 100..<150))
        if TestBroker.hidesAbortedRecords {
            XCTAssertEqual(read.count, 50, "only the new writer's committed records")
        }
    }

    /// The checkpoint completed and its transaction was committed; a restore from that checkpoint
    /// commits it again (Flink's contract): the commit marker says it is done, nothing is written twice.
    func testRecoveringACommittedEpochWritesNothing() throws {
        let t = try TestBroker.topics(["out": 2])
        let prefix = "recommit-\(UUID().uuidString.prefix(8))"
        let first = try sink(t["out"]!, prefix: prefix).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try first.initializeState([])
        try write(first, 0..<100)
        let state = try first.snapshotState(checkpointId: 7)
        try first.notifyCheckpointComplete(7)
        try first.close()

        let restored = try sink(t["out"]!, prefix: prefix).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try restored.initializeState([state])
        try write(restored, 100..<120)
        _ = try restored.snapshotState(checkpointId: 8)
        try restored.notifyCheckpointComplete(8)
        try restored.close()
        let read = try readAll(t["out"]!, deserializer: txnDeserializer())
        XCTAssertEqual(read.count, 120, "the restored, already committed epoch was not written again")
        XCTAssertEqual(Set(read.map(\.id)), Set(0..<120))
    }

    /// The process died after the checkpoint completed but before the commit. librdkafka cannot
    /// resume another process's transaction, and the restarted producer aborts it; the checkpoint
    /// kept the epoch's records, and recovery writes them again in a new transaction.
    func testRecoveringAnEpochWhoseCommitWasLostWritesItOnce() throws {
        let t = try TestBroker.topics(["out": 2])
        let prefix = "lostcommit-\(UUID().uuidString.prefix(8))"
        var crashed: KafkaSinkWriter<Txn>? = try sink(t["out"]!, prefix: prefix).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try crashed!.initializeState([])
        try write(crashed!, 0..<100)
        let state = try crashed!.snapshotState(checkpointId: 3)
        crashed = nil   // gone without committing

        let restored = try sink(t["out"]!, prefix: prefix).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try restored.initializeState([state])
        try restored.close()
        let read = try readAll(t["out"]!, deserializer: txnDeserializer())
        XCTAssertEqual(Set(read.map(\.id)), Set(0..<100), "the lost epoch's records are there")
        guard TestBroker.hidesAbortedRecords else {
            throw XCTSkip("the local broker delivers aborted records under read_committed (../shared/local-broker.md): "
                + "\(read.count) records read, the aborted first attempt included; run with KAFKA_BOOTSTRAP=<a real Kafka> "
                + "to check that read_committed sees each record once")
        }
        XCTAssertEqual(read.count, 100, "each record once")
    }
}
