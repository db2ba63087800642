@testable import Connectors
import Foundation
import StreamCore
import Synchronization
import XCTest

/// The batched multi-view Feast sink against a real redis-server (scripts/redis-test-server.sh).
final class FeastOnlineSinkTests: RedisServerTestCase {
    let ctx = SinkWriterContext(timestamp: nil, currentWatermark: .min)
    let t0: Int64 = 1_795_564_800

    /// A card's update: `txn_stats_5m` at `stats` seconds and (optionally) `txn_device` at `device` seconds.
    struct Update: Sendable {
        var card: String
        var stats: Int64?
        var device: Int64?
        var count: Int64 = 0
        var os = "ios"
        var ingest: Int64? = nil
    }

    func sink(ttl: Int? = nil, maxBatch: Int = 1024, latency: OnlineLatencyObserver? = nil,
              protocol writeProtocol: FeastWriteProtocol = .optimistic()) -> FeastOnlineSink<Update> {
        FeastOnlineSink(project: "fraud", options: .init(port: port, keyTTLSeconds: ttl, maxBatch: maxBatch, writeProtocol: writeProtocol),
                        latency: latency) { u in
            var rows: [FeastViewRow] = []
            if let s = u.stats {
                rows.append(FeastViewRow(view: "txn_stats_5m", eventTime: FeastTimestamp(seconds: s),
                                         features: [("count_5m", .int64(u.count)), ("sum_5m", .double(123.45))]))
            }
            if let d = u.device {
                rows.append(FeastViewRow(view: "txn_device", eventTime: FeastTimestamp(seconds: d), features: [("device_os", .string(u.os))]))
            }
            return FeastEntityUpdate(entity: FeastEntityKey(["card_id": .string(u.card)]), rows: rows, ingestMillis: u.ingest)
        }
    }

    func writer(_ s: FeastOnlineSink<Update>? = nil) throws -> FeastOnlineWriter<Update> {
        let w = try (s ?? sink()).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try w.initializeState([])
        return w
    }

    func key(_ card: String) -> [UInt8] { FeastLayout.hashKey(FeastEntityKey(["card_id": .string(card)]), project: "fraud") }
    func field(_ view: String, _ feature: String) -> [UInt8] { FeastLayout.featureField(view: view, feature: feature) }
    func hget(_ card: String, _ f: [UInt8]) throws -> [UInt8]? {
        if case .string(let b) = try admin.command([Array("HGET".utf8), key(card), f]) { return b }
        return nil
    }

    func testTestVectorsAndViewsAreIndependent() throws {
        let w = try writer()
        try w.write(Update(card: "c1", stats: t0, count: 7), context: ctx)
        _ = try w.snapshotState(checkpointId: 1)
        XCTAssertEqual(try hget("c1", [0x86, 0x2b, 0xab, 0x97]), [0x20, 0x07])
        XCTAssertEqual(try hget("c1", [0xda, 0x98, 0x56, 0x76]), [0x29, 0xcd, 0xcc, 0xcc, 0xcc, 0xcc, 0xdc, 0x5e, 0x40])
        XCTAssertEqual(try hget("c1", Array("_ts:txn_stats_5m".utf8)), [0x08, 0x80, 0xca, 0x98, 0xd8, 0x06])

        // One update, two views: the stats row is older than what is stored, the device row is new.
        try w.write(Update(card: "c1", stats: t0 - 1, device: t0 - 100, count: 8, os: "android"), context: ctx)
        try w.flush(endOfInput: true)
        XCTAssertEqual(try hget("c1", field("txn_stats_5m", "count_5m")), FeastValue.int64(7).serialized(), "older stats row ignored")
        XCTAssertEqual(try hget("c1", field("txn_device", "device_os")), FeastValue.string("android").serialized())
        XCTAssertEqual(w.rowsWritten, 2)
        XCTAssertEqual(w.rowsNotNewer, 1)
        XCTAssertEqual(try admin.command([Array("TTL".utf8), key("c1")]), .integer(-1))
    }

    /// In one batch the newest row of each view wins; replaying everything changes nothing.
    func testCoalescingAndReplay() throws { try coalescingAndReplay(.optimistic()) }
    func testCoalescingAndReplayThroughTheScript() throws { try coalescingAndReplay(.script) }

    func coalescingAndReplay(_ writeProtocol: FeastWriteProtocol) throws {
        var updates: [Update] = []
        for i in 0..<3_000 {
            let device: Int64? = i % 3 == 0 ? t0 + Int64(i) : nil
            updates.append(Update(card: "c\(i % 100)", stats: t0 + Int64(i % 700), device: device, count: Int64(i)))
        }
        let w = try writer(sink(maxBatch: 64, protocol: writeProtocol))
        for u in updates { try w.write(u, context: ctx) }
        _ = try w.snapshotState(checkpointId: 1)
        // The expected newest row per card and view, by event time (first wins on ties, as Redis keeps it).
        var stats: [String: (Int64, Int64)] = [:], device: [String: Int64] = [:]
        for u in updates {
            if let s = u.stats, s > stats[u.card]?.0 ?? .min { stats[u.card] = (s, u.count) }
            if let d = u.device, d > device[u.card] ?? .min { device[u.card] = d }
        }
        for (card, (ts, count)) in stats {
            XCTAssertEqual(try hget(card, field("txn_stats_5m", "count_5m")), FeastValue.int64(count).serialized(), card)
            XCTAssertEqual(try hget(card, Array("_ts:txn_stats_5m".utf8)), FeastTimestamp(seconds: ts).serialized())
        }
        for (card, ts) in device { XCTAssertEqual(try hget(card, Array("_ts:txn_device".utf8)), FeastTimestamp(seconds: ts).serialized()) }
        let before = try admin.command("DBSIZE")
        let replay = try writer(sink(protocol: writeProtocol))
        for u in updates { try replay.write(u, context: ctx) }
        try replay.flush(endOfInput: true)
        XCTAssertEqual(replay.rowsWritten, 0, "a replay is a no-op")
        XCTAssertEqual(try admin.command("DBSIZE"), before)
        XCTAssertEqual(w.transactionsInterrupted + replay.transactionsInterrupted, 0)
    }

    func testKeyTTLAndLatencyObserver() throws {
        let seen = Mutex<[Int64]>([])
        let w = try writer(sink(ttl: 300, latency: { fromIngest, _ in seen.withLock { $0 += fromIngest } }))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for i in 0..<10 { try w.write(Update(card: "c\(i)", stats: t0, ingest: now - 5), context: ctx) }
        try w.flushIdle()
        guard case .integer(let ttl) = try admin.command([Array("TTL".utf8), key("c3")]) else { return XCTFail() }
        XCTAssertTrue((290...300).contains(ttl), "\(ttl)")
        let latencies = seen.withLock { $0 }
        XCTAssertEqual(latencies.count, 10)
        XCTAssertTrue(latencies.allSatisfy { $0 >= 5 && $0 < 10_000 }, "\(latencies)")
    }

    /// On a busy thread the writer moves its batches along without waiting: the first busy flush
    /// sends the check, the second commits it (no reply read yet), and the rows land in Redis with
    /// no idle flush; the idle flush then takes the replies.
    func testBusyFlushesLandRowsWithoutWaitingForReplies() throws {
        let w = try writer()
        for i in 0..<10 { try w.write(Update(card: "b\(i)", stats: t0 + Int64(i), count: Int64(i)), context: ctx) }
        try w.flushBusy()
        XCTAssertNil(try hget("b3", field("txn_stats_5m", "count_5m")), "checked, not yet committed")
        try w.flushBusy()
        var waited = 0
        while try hget("b9", field("txn_stats_5m", "count_5m")) == nil, waited < 200 { usleep(10_000); waited += 1 }
        for i in 0..<10 { XCTAssertEqual(try hget("b\(i)", field("txn_stats_5m", "count_5m")), FeastValue.int64(Int64(i)).serialized()) }
        XCTAssertEqual(w.rowsWritten, 0, "the commit's replies are not read by a busy flush")
        try w.flushIdle()
        XCTAssertEqual(w.rowsWritten, 10)
    }

    func testRecoversFromAFlushedScriptAndALostConnection() throws {
        let w = try writer(sink(maxBatch: 8, protocol: .script))
        for i in 0..<40 { try w.write(Update(card: "a\(i)", stats: t0), context: ctx) }
        _ = try w.snapshotState(checkpointId: 1)
        try admin.command("SCRIPT", "FLUSH")
        for i in 0..<40 { try w.write(Update(card: "b\(i)", stats: t0), context: ctx) }
        _ = try w.snapshotState(checkpointId: 2)
        try admin.command("CLIENT", "KILL", "TYPE", "normal")
        for i in 0..<40 { try w.write(Update(card: "c\(i)", stats: t0), context: ctx) }
        _ = try w.snapshotState(checkpointId: 3)
        XCTAssertEqual(try admin.command("DBSIZE"), .integer(120))
        XCTAssertEqual(w.rowsWritten, 120)
    }

    /// The connection lost between a batch's check and its commit, and between two batches: every
    /// row arrives, once.
    func testOptimisticRecoversFromALostConnection() throws {
        let w = try writer(sink(maxBatch: 8))
        var kills = 0
        w.beforeCommit = { [admin] in
            kills += 1
            if kills == 2 { try admin!.command("CLIENT", "KILL", "TYPE", "normal") }  // not admin itself (SKIPME yes is the default)
        }
        for i in 0..<40 { try w.write(Update(card: "a\(i)", stats: t0, count: Int64(i)), context: ctx) }
        _ = try w.snapshotState(checkpointId: 1)
        try admin.command("CLIENT", "KILL", "TYPE", "normal")
        for i in 0..<40 { try w.write(Update(card: "b\(i)", stats: t0), context: ctx) }
        _ = try w.snapshotState(checkpointId: 2)
        XCTAssertEqual(try admin.command("DBSIZE"), .integer(80))
        XCTAssertEqual(w.rowsWritten, 80)
        XCTAssertEqual(try hget("a9", field("txn_stats_5m", "count_5m")), FeastValue.int64(9).serialized())
    }

    /// Another client writes a key between the check and the commit: Redis refuses the commit and
    /// the batch is checked again — a row the other client made stale is not written.
    func testAnotherWriterBetweenCheckAndCommit() throws {
        let w = try writer(sink(maxBatch: 4))
        var round = 0
        w.beforeCommit = { [admin, key] in
            round += 1
            guard round == 1 else { return }
            // c1's stats get a newer row; c2 gets a field of another view only.
            try admin!.command([Array("HSET".utf8), key("c1"), Array("_ts:txn_stats_5m".utf8), FeastTimestamp(seconds: 1_795_570_000).serialized()])
            try admin!.command([Array("HSET".utf8), key("c2"), Array("unrelated".utf8), [1]])
        }
        for i in 0..<4 { try w.write(Update(card: "c\(i)", stats: t0, count: 5), context: ctx) }
        try w.flush(endOfInput: true)
        XCTAssertEqual(w.transactionsInterrupted, 1)
        XCTAssertEqual([w.rowsWritten, w.rowsNotNewer], [3, 1])
        XCTAssertNil(try hget("c1", field("txn_stats_5m", "count_5m")), "the other writer's row is newer")
        for card in ["c0", "c2", "c3"] {
            XCTAssertEqual(try hget(card, field("txn_stats_5m", "count_5m")), FeastValue.int64(5).serialized(), card)
        }
        XCTAssertEqual(try hget("c2", Array("unrelated".utf8)), [1])
    }

    /// A batch with nothing newer (a replay) ends its `WATCH` with `UNWATCH`, sent without waiting
    /// for the reply: the keys it watched no longer interrupt the next batch's commit when another
    /// client changes them in between.
    func testBatchWithNothingNewerUnwatchesItsKeys() throws {
        let first = try writer(sink(maxBatch: 4))
        for i in 0..<4 { try first.write(Update(card: "o\(i)", stats: t0 + 10, count: 1), context: ctx) }
        try first.flush(endOfInput: true)
        let w = try writer(sink(maxBatch: 4))
        var round = 0
        w.beforeCommit = { [admin, key] in
            round += 1
            // At the second batch's commit: a key only the first (unwatched) batch watched.
            if round == 2 { try admin!.command([Array("HSET".utf8), key("o1"), Array("touched".utf8), [1]]) }
        }
        for i in 0..<4 { try w.write(Update(card: "o\(i)", stats: t0, count: 2), context: ctx) }
        for i in 0..<4 { try w.write(Update(card: "n\(i)", stats: t0, count: 3), context: ctx) }
        try w.flush(endOfInput: true)
        XCTAssertEqual(round, 2)
        XCTAssertEqual(w.transactionsInterrupted, 0, "o1 was no longer watched")
        XCTAssertEqual([w.rowsWritten, w.rowsNotNewer], [4, 4])
        XCTAssertEqual(try hget("o1", field("txn_stats_5m", "count_5m")), FeastValue.int64(1).serialized())
        XCTAssertEqual(try hget("n1", field("txn_stats_5m", "count_5m")), FeastValue.int64(3).serialized())
    }

    /// A key written by someone else before every commit: after three refused commits the batch
    /// goes through the script, which cannot be interrupted.
    func testContendedBatchFallsBackToTheScript() throws {
        let w = try writer(sink(maxBatch: 2, protocol: .optimistic(attempts: 3)))
        var round = 0
        w.beforeCommit = { [admin, key] in
            round += 1
            try admin!.command([Array("HSET".utf8), key("busy"), Array("touched".utf8), Array("\(round)".utf8)])
        }
        try w.write(Update(card: "busy", stats: t0, count: 1), context: ctx)
        try w.write(Update(card: "calm", stats: t0, count: 2), context: ctx)
        _ = try w.snapshotState(checkpointId: 1)
        XCTAssertEqual(w.transactionsInterrupted, 3)
        XCTAssertEqual(round, 3)
        XCTAssertEqual(w.rowsWritten, 2)
        XCTAssertEqual(try hget("busy", field("txn_stats_5m", "count_5m")), FeastValue.int64(1).serialized())
        XCTAssertEqual(try hget("calm", field("txn_stats_5m", "count_5m")), FeastValue.int64(2).serialized())
    }
}
