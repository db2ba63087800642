import Foundation
import Kafka
import StreamCore
import Synchronization
import XCTest

/// The consumer-group mode: the group assigns partitions to the source's subtasks (members);
/// every record is read once across them, and a job restored from its latest checkpoint goes on
/// exactly where it was, whichever member gets which partition after the restore's rebalance.
final class KafkaGroupSourceTests: XCTestCase {
    func run(_ topic: String, group: String, store: InMemoryCheckpointStore, restore: CompletedCheckpoint?,
             seconds: Double = 60, until: @escaping ([String: Int]) -> Bool) throws -> [String: Int] {
        let seen = Mutex<[String: Int]>([:])
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.enableCheckpointing(.milliseconds(100), store: store)
        env.restoreFrom = restore
        let source = KafkaGroupSource<KafkaRecord>(config: try TestBroker.config(), topics: [topic], groupId: group) { KafkaRecordCopier() }
        env.fromSource(source, watermarkStrategy: .noWatermarks(), name: "group")
            .map { r -> Int in seen.withLock { $0["\(r.partition)/\(r.offset)", default: 0] += 1 }; return 0 }
            .sinkTo(DiscardingSink())
        let job = try env.executeAsync("group")
        let deadline = Date().addingTimeInterval(seconds)
        while !seen.withLock({ until($0) }), Date() < deadline { usleep(20_000) }
        // Let a checkpoint complete after the last record, then stop.
        let checkpoints = store.checkpoints.count
        while store.checkpoints.count < checkpoints + 2, Date() < deadline { usleep(20_000) }
        job.cancel()
        _ = try? job.waitForResult()
        return seen.withLock { $0 }
    }

    func testMembersShareThePartitions() throws {
        let t = try TestBroker.topics(["txn": 4])
        try produce((0..<4_000).map { Txn.make(Int64($0)) }, to: t["txn"]!, serializer: txnSerializer())
        let store = InMemoryCheckpointStore()
        let seen = try run(t["txn"]!, group: "group-\(UUID().uuidString.prefix(8))", store: store, restore: nil) { $0.count >= 4_000 }
        XCTAssertEqual(seen.count, 4_000, "every record")
        XCTAssertEqual(seen.values.filter { $0 > 1 }.count, 0, "none twice")
        // Each partition's position is in the split of the one member that held it.
        var holders: [String: Int] = [:]
        for op in try XCTUnwrap(store.checkpoints.last).operators {
            for bytes in op.sourceSplits ?? [] {
                for key in try BinaryDecoder().decode(KafkaGroupMemberSplit.self, from: bytes).offsets.keys { holders[key, default: 0] += 1 }
            }
        }
        XCTAssertEqual(holders.count, 4)
        XCTAssertTrue(holders.values.allSatisfy { $0 == 1 })
    }

    /// Needs a group coordinator that rebalances reliably: the local broker's now and then leaves
    /// the restored members' SyncGroup unanswered for minutes (seen in full-suite runs; alone this
    /// passes). Runs against KAFKA_BOOTSTRAP, or here with TRIBUTARY_GROUP_RESTORE=1.
    func testARestoreFromTheLatestCheckpointGoesOnExactly() throws {
        if TestBroker.external == nil && ProcessInfo.processInfo.environment["TRIBUTARY_GROUP_RESTORE"] == nil {
            throw XCTSkip("the local broker's group coordinator can stall a rebalance after a restart (docs/kafka.md); "
                + "run with KAFKA_BOOTSTRAP=<a real Kafka> or TRIBUTARY_GROUP_RESTORE=1")
        }
        let t = try TestBroker.topics(["txn": 4])
        let group = "group-\(UUID().uuidString.prefix(8))"
        try produce((0..<4_000).map { Txn.make(Int64($0)) }, to: t["txn"]!, serializer: txnSerializer())

        let store = InMemoryCheckpointStore()
        let first = try run(t["txn"]!, group: group, store: store, restore: nil) { $0.count >= 4_000 }
        XCTAssertEqual(first.count, 4_000, "every record")
        let checkpoint = try XCTUnwrap(store.checkpoints.last)

        try produce((4_000..<6_000).map { Txn.make(Int64($0)) }, to: t["txn"]!, serializer: txnSerializer())
        // What the checkpoint says was read: the members' positions.
        var position: [Int32: Int64] = [:]
        for op in checkpoint.operators {
            for bytes in op.sourceSplits ?? [] {
                for (key, offset) in try BinaryDecoder().decode(KafkaGroupMemberSplit.self, from: bytes).offsets {
                    position[Int32(key.split(separator: "/").last!)!] = offset
                }
            }
        }
        XCTAssertEqual(position.count, 4, "each partition's position is in one member's split")
        if TestBroker.external == nil { sleep(11) }   // the first run's sessions expire
        let restored = try run(t["txn"]!, group: group, store: InMemoryCheckpointStore(), restore: checkpoint, seconds: 90) { $0.count >= 2_000 }
        XCTAssertEqual(restored.values.filter { $0 > 1 }.count, 0, "none twice")
        for key in restored.keys {
            let parts = key.split(separator: "/")
            XCTAssertGreaterThanOrEqual(Int64(parts[1])!, position[Int32(parts[0])!]!, "\(key) was read before the checkpoint")
        }
        XCTAssertEqual(restored.count, 2_000, "exactly the records after the checkpoint")
    }
}
