@testable import Connectors
import Foundation
import StreamCore
import XCTest

/// The hiredis wrapper and the upsert sink against a real redis-server, started once for the class
/// by scripts/redis-test-server.sh and stopped at the end.
final class RedisUpsertSinkTests: RedisServerTestCase {
    let ctx = SinkWriterContext(timestamp: nil, currentWatermark: .min)
    let view = "txn_stats_5m"
    let t0: Int64 = 1_795_564_800

    struct Stat: Sendable {
        var card: String
        var seconds: Int64
        var nanos: Int32 = 0
        var count: Int64
        var sum: Double = 0
    }

    func sink(ttl: Int? = nil, rowsPerWrite: Int = 1, maxInFlight: Int = 1024,
              protocol writeProtocol: FeastWriteProtocol = .optimistic()) -> RedisUpsertSink<Stat> {
        RedisUpsertSink(
            project: "fraud", featureView: view,
            options: .init(port: port, keyTTLSeconds: ttl, rowsPerWrite: rowsPerWrite, maxInFlight: maxInFlight,
                           writeProtocol: writeProtocol)
        ) { s in
            FeastRow(entity: FeastEntityKey(["card_id": .string(s.card)]),
                     eventTime: FeastTimestamp(seconds: s.seconds, nanos: s.nanos),
                     features: [("count_5m", .int64(s.count)), ("sum_5m", .double(s.sum))])
        }
    }

    func writer(_ sink: RedisUpsertSink<Stat>? = nil) throws -> RedisUpsertWriter<Stat> {
        let w = try (sink ?? self.sink()).createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try w.initializeState([])
        return w
    }

    func key(_ card: String) -> [UInt8] { FeastLayout.hashKey(FeastEntityKey(["card_id": .string(card)]), project: "fraud") }

    func hget(_ card: String, _ field: [UInt8]) throws -> RedisReply {
        try admin.command([Array("HGET".utf8), key(card), field])
    }

    func storedCount(_ card: String) throws -> RedisReply {
        try hget(card, FeastLayout.featureField(view: view, feature: "count_5m"))
    }

    // MARK: the client

    func testClientBinarySafeArgumentsPipelineAndErrors() throws {
        let c = try RedisConnection(port: port)
        let binary: [UInt8] = [0, 1, 0xff, 0x0a, 0x0d, 0]
        XCTAssertEqual(try c.command([Array("SET".utf8), binary, binary]), .status("OK"))
        XCTAssertEqual(try c.command([Array("GET".utf8), binary]), .string(binary))
        XCTAssertEqual(try c.command([Array("SET".utf8), Array("empty".utf8), []]), .status("OK"))
        XCTAssertEqual(try c.command("GET", "empty"), .string([]))
        XCTAssertEqual(try c.command("GET", "missing"), .null)

        let replies = try c.pipeline((1...100).map { _ in [Array("INCR".utf8), Array("n".utf8)] })
        XCTAssertEqual(replies.last, .integer(100))
        XCTAssertEqual(try c.command("RPUSH", "l", "a", "b"), .integer(2))
        XCTAssertEqual(try c.command("LRANGE", "l", "0", "-1"), .array([.string(Array("a".utf8)), .string(Array("b".utf8))]))
        XCTAssertEqual(try c.pipeline([[Array("NOSUCHCOMMAND".utf8)]]).first?.errorMessage?.hasPrefix("ERR"), true)
        XCTAssertThrowsError(try c.command("INCR", "l")) { error in
            XCTAssertTrue("\(error)".contains("WRONGTYPE"), "\(error)")
        }
        XCTAssertEqual(try c.command("PING"), .status("PONG"), "an error reply leaves the connection usable")
    }

    func testConnectErrorSaysWhereAndWhat() throws {
        // Port 1: nothing listens there.
        XCTAssertThrowsError(try RedisConnection(port: 1, connectTimeout: .milliseconds(200))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("cannot connect to 127.0.0.1:1"), message)
            XCTAssertTrue(message.contains("refused"), message)
        }
    }

    func testEvalLoadsTheScriptOnNoScriptAndReconnectAfterKill() throws {
        let c = try RedisConnection(port: port)
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        XCTAssertEqual(try c.eval(script, keys: [Array("k".utf8)], arguments: [Array("2".utf8)]), .integer(2))
        try admin.command("SCRIPT", "FLUSH")
        XCTAssertEqual(try c.eval(script, keys: [Array("k".utf8)], arguments: [Array("3".utf8)]), .integer(5))

        let id = try c.command("CLIENT", "ID")
        guard case .integer(let clientId) = id else { return XCTFail("\(id)") }
        try admin.command("CLIENT", "KILL", "ID", String(clientId))
        XCTAssertThrowsError(try c.command("PING")) { error in
            XCTAssertTrue((error as? RedisError)?.isConnectionError ?? false, "\(error)")
        }
        try c.reconnect()
        XCTAssertEqual(try c.command("PING"), .status("PONG"))
    }

    // MARK: the sink

    func testFeastLayoutBytesMatchTheTestVectors() throws {
        let w = try writer()
        try w.write(Stat(card: "c1", seconds: t0, count: 7, sum: 123.45), context: ctx)
        _ = try w.snapshotState(checkpointId: 1)
        let expectedKey: [UInt8] = [1, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0] + Array("card_id".utf8) + [2, 0, 0, 0, 2, 0, 0, 0]
            + Array("c1".utf8) + Array("fraud".utf8)
        XCTAssertEqual(try admin.command([Array("EXISTS".utf8), expectedKey]), .integer(1))
        XCTAssertEqual(try admin.command([Array("HLEN".utf8), expectedKey]), .integer(3))
        XCTAssertEqual(hex(try admin.command([Array("HGET".utf8), expectedKey, [0x86, 0x2b, 0xab, 0x97]]).bytes), "2007")
        XCTAssertEqual(hex(try admin.command([Array("HGET".utf8), expectedKey, [0xda, 0x98, 0x56, 0x76]]).bytes),
                       "29cdccccccccdc5e40")
        XCTAssertEqual(hex(try admin.command([Array("HGET".utf8), expectedKey, Array("_ts:txn_stats_5m".utf8)]).bytes),
                       "0880ca98d806")
        XCTAssertEqual(try admin.command([Array("TTL".utf8), expectedKey]), .integer(-1), "no TTL unless configured")
        XCTAssertEqual(w.rowsWritten, 1)
    }

    func testWriteIfNewerOlderIsIgnored() throws {
        let w = try writer()
        try w.write(Stat(card: "c1", seconds: t0, count: 1), context: ctx)
        try w.write(Stat(card: "c1", seconds: t0 - 1, count: 2), context: ctx)  // older: ignored
        try w.write(Stat(card: "c1", seconds: t0, count: 3), context: ctx)  // same time: not newer, ignored
        _ = try w.snapshotState(checkpointId: 1)
        XCTAssertEqual(try storedCount("c1").bytes, FeastValue.int64(1).serialized())
        XCTAssertEqual([w.rowsWritten, w.rowsNotNewer], [1, 2])

        try w.write(Stat(card: "c1", seconds: t0, nanos: 1, count: 4), context: ctx)  // 1 ns newer
        try w.write(Stat(card: "c1", seconds: t0, nanos: 0, count: 5), context: ctx)
        _ = try w.snapshotState(checkpointId: 2)
        XCTAssertEqual(try storedCount("c1").bytes, FeastValue.int64(4).serialized())
        XCTAssertEqual(hex(try hget("c1", FeastLayout.timestampField(view: view)).bytes), "0880ca98d8061001")

        try w.write(Stat(card: "c1", seconds: t0 + 60, count: 6), context: ctx)
        try w.flush(endOfInput: true)
        XCTAssertEqual(try storedCount("c1").bytes, FeastValue.int64(6).serialized())
    }

    func testTimesBeforeTheEpochCompareExactly() throws { try timesBeforeTheEpochCompareExactly(.optimistic()) }
    func testTimesBeforeTheEpochCompareExactlyInTheScript() throws { try timesBeforeTheEpochCompareExactly(.script) }

    func timesBeforeTheEpochCompareExactly(_ writeProtocol: FeastWriteProtocol) throws {
        let w = try writer(sink(protocol: writeProtocol))
        try w.write(Stat(card: "old", seconds: -5, count: 1), context: ctx)
        try w.write(Stat(card: "old", seconds: -6, count: 2), context: ctx)
        try w.write(Stat(card: "old", seconds: -5, nanos: 1, count: 3), context: ctx)
        try w.write(Stat(card: "old", seconds: -4_000_000_000_000, count: 4), context: ctx)
        _ = try w.snapshotState(checkpointId: 1)
        XCTAssertEqual(try storedCount("old").bytes, FeastValue.int64(3).serialized())
        XCTAssertEqual([w.rowsWritten, w.rowsNotNewer], [2, 2])
    }

    func testReplayingABatchIsANoOp() throws {
        let rows = (0..<500).map { i in Stat(card: "c\(i % 50)", seconds: t0 + Int64(i), count: Int64(i), sum: Double(i) / 4) }
        let first = try writer(sink(rowsPerWrite: 16, maxInFlight: 64))
        for r in rows { try first.write(r, context: ctx) }
        _ = try first.snapshotState(checkpointId: 1)
        XCTAssertEqual(first.rowsWritten, 500)
        let before = try dumpAll()

        // After a crash the sources replay from the last checkpoint: the same rows again.
        let replay = try writer()
        for r in rows { try replay.write(r, context: ctx) }
        try replay.flush(endOfInput: true)
        XCTAssertEqual([replay.rowsWritten, replay.rowsNotNewer], [0, 500])
        XCTAssertEqual(try dumpAll(), before)
        XCTAssertEqual(try storedCount("c7").bytes, FeastValue.int64(457).serialized(), "the newest row of c7 is 457")
    }

    func testKeyTTL() throws {
        let w = try writer(sink(ttl: 300))
        try w.write(Stat(card: "c1", seconds: t0, count: 1), context: ctx)
        _ = try w.snapshotState(checkpointId: 1)
        guard case .integer(let ttl) = try admin.command([Array("TTL".utf8), key("c1")]) else { return XCTFail() }
        XCTAssertTrue((290...300).contains(ttl), "\(ttl)")
    }

    func testSnapshotWaitsUntilEveryRowIsApplied() throws {
        let w = try writer(sink(rowsPerWrite: 1000, maxInFlight: 1000))
        for i in 0..<10 { try w.write(Stat(card: "c\(i)", seconds: t0, count: 1), context: ctx) }
        XCTAssertEqual(try admin.command("DBSIZE"), .integer(0), "queued, not sent yet")
        XCTAssertEqual(try w.snapshotState(checkpointId: 1), [])
        XCTAssertEqual(try admin.command("DBSIZE"), .integer(10))
        XCTAssertEqual(w.rowsWritten, 10)
    }

    func testRecoversFromALostConnectionAndAFlushedScript() throws {
        let w = try writer(sink(rowsPerWrite: 1, maxInFlight: 100, protocol: .script))
        for i in 0..<20 { try w.write(Stat(card: "a\(i)", seconds: t0, count: 1), context: ctx) }
        _ = try w.snapshotState(checkpointId: 1)
        try admin.command("SCRIPT", "FLUSH")
        for i in 0..<20 { try w.write(Stat(card: "b\(i)", seconds: t0, count: 1), context: ctx) }
        _ = try w.snapshotState(checkpointId: 2)
        XCTAssertEqual(try admin.command("DBSIZE"), .integer(40))

        try admin.command("CLIENT", "KILL", "TYPE", "normal")  // kills the writer's connection (not ours)
        for i in 0..<20 { try w.write(Stat(card: "c\(i)", seconds: t0, count: 1), context: ctx) }
        _ = try w.snapshotState(checkpointId: 3)
        XCTAssertEqual(try admin.command("DBSIZE"), .integer(60))
        XCTAssertEqual(w.rowsWritten, 60)
    }

    func testAFieldThatIsNoTimestampIsAnError() throws { try aFieldThatIsNoTimestampIsAnError(.optimistic()) }
    func testAFieldThatIsNoTimestampIsAnErrorInTheScript() throws { try aFieldThatIsNoTimestampIsAnError(.script) }

    func aFieldThatIsNoTimestampIsAnError(_ writeProtocol: FeastWriteProtocol) throws {
        try admin.command([Array("HSET".utf8), key("c1"), Array("_ts:\(view)".utf8), [0xff]])
        let w = try writer(sink(protocol: writeProtocol))
        try w.write(Stat(card: "c1", seconds: t0, count: 1), context: ctx)
        XCTAssertThrowsError(try w.snapshotState(checkpointId: 1)) { error in
            XCTAssertTrue("\(error)".contains("does not hold a protobuf Timestamp"), "\(error)")
        }
    }

    func testInAJob() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.fromSequence(1, 400)
            .map { i in Stat(card: "c\(i % 10)", seconds: 1_795_564_800 + i, count: i) }
            .sinkTo(sink())
        try env.execute()
        XCTAssertEqual(try admin.command("DBSIZE"), .integer(10))
        XCTAssertEqual(try storedCount("c3").bytes, FeastValue.int64(393).serialized())
    }

    /// Every key with its hash, for before/after comparisons.
    func dumpAll() throws -> [String: RedisReply] {
        guard case .array(let keys) = try admin.command("KEYS", "*") else { return [:] }
        var out: [String: RedisReply] = [:]
        for k in keys { out[hex(k.bytes)] = try admin.command([Array("HGETALL".utf8), k.bytes]) }
        return out
    }
}

extension RedisReply {
    var bytes: [UInt8] {
        if case .string(let b) = self { return b }
        return []
    }
}
