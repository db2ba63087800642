import StreamCore
import XCTest

/// A transaction logic that records every call; transactions are named "<writer>-<n>" and carry
/// the values written into them.
final class RecordingLogic: TwoPhaseCommitLogic {
    struct Txn: Codable, Sendable, Equatable {
        var name: String
        var values: [Int] = []
        var preCommitted = false
    }

    let writer: String
    var counter = 0
    var log: [String] = []
    var committedValues: [Int] = []
    var failCommitOf: String?

    init(writer: String = "w") { self.writer = writer }

    func beginTransaction() -> Txn {
        counter += 1
        log.append("begin \(writer)-\(counter)")
        return Txn(name: "\(writer)-\(counter)")
    }
    func invoke(_ transaction: inout Txn, value: Int, context: SinkWriterContext) {
        transaction.values.append(value)
    }
    func preCommit(_ transaction: inout Txn) {
        transaction.preCommitted = true
        log.append("preCommit \(transaction.name)")
    }
    struct Boom: Error {}
    func commit(_ transaction: Txn) throws {
        if transaction.name == failCommitOf { throw Boom() }
        log.append("commit \(transaction.name)")
        committedValues += transaction.values
    }
    func abort(_ transaction: Txn) { log.append("abort \(transaction.name)") }
    func recoverAndCommit(_ transaction: Txn) throws {
        log.append("recoverAndCommit \(transaction.name)")
        committedValues += transaction.values
    }
    func recoverAndAbort(_ transaction: Txn) { log.append("recoverAndAbort \(transaction.name)") }
    func finishRecovery(committed: [Txn], aborted: [Txn]) {
        log.append("finishRecovery \(committed.map(\.name)) \(aborted.map(\.name))")
    }
}

final class TwoPhaseCommitTests: XCTestCase {
    let ctx = SinkWriterContext(timestamp: nil, currentWatermark: .min)

    func makeWriter(_ logic: RecordingLogic = RecordingLogic()) -> TwoPhaseCommitSinkWriter<RecordingLogic> {
        TwoPhaseCommitSinkWriter(logic: logic)
    }

    func write(_ w: TwoPhaseCommitSinkWriter<RecordingLogic>, _ values: ClosedRange<Int>) throws {
        for v in values { try w.write(v, context: ctx) }
    }

    func testBarrierPreCommitsAndCompletionCommits() throws {
        let w = makeWriter()
        try w.initializeState([])
        try write(w, 1...3)
        _ = try w.snapshotState(checkpointId: 1)
        XCTAssertEqual(w.logic.log, ["begin w-1", "preCommit w-1", "begin w-2"])
        XCTAssertEqual(w.logic.committedValues, [], "nothing is committed at the snapshot")
        try w.notifyCheckpointComplete(1)
        XCTAssertEqual(w.logic.log.last, "commit w-1")
        XCTAssertEqual(w.logic.committedValues, [1, 2, 3])
        XCTAssertTrue(w.transactions.pending.isEmpty)
        try w.notifyCheckpointComplete(1)  // a repeated notification commits nothing more
        XCTAssertEqual(w.logic.committedValues, [1, 2, 3])
    }

    func testSeveralPendingCommittedInOrderByALaterCompletion() throws {
        let w = makeWriter()
        try w.initializeState([])
        try write(w, 1...2)
        _ = try w.snapshotState(checkpointId: 1)
        try write(w, 3...4)
        _ = try w.snapshotState(checkpointId: 2)
        try write(w, 5...5)
        _ = try w.snapshotState(checkpointId: 3)
        XCTAssertEqual(w.transactions.pending.map(\.checkpointId), [1, 2, 3])
        try w.notifyCheckpointComplete(2)  // 1's notification was missed
        XCTAssertEqual(w.logic.log.filter { $0.hasPrefix("commit") }, ["commit w-1", "commit w-2"])
        XCTAssertEqual(w.transactions.pending.map(\.checkpointId), [3])
        XCTAssertEqual(w.logic.committedValues, [1, 2, 3, 4])
        try w.notifyCheckpointComplete(3)
        XCTAssertEqual(w.logic.committedValues, [1, 2, 3, 4, 5])
    }

    func testAbortedCheckpointStaysPendingForTheNextCompletion() throws {
        let w = makeWriter()
        try w.initializeState([])
        try write(w, 1...1)
        _ = try w.snapshotState(checkpointId: 1)
        w.notifyCheckpointAborted(1)
        XCTAssertEqual(w.transactions.pending.map(\.checkpointId), [1])
        try write(w, 2...2)
        _ = try w.snapshotState(checkpointId: 2)
        try w.notifyCheckpointComplete(2)
        XCTAssertEqual(w.logic.committedValues, [1, 2])
    }

    func testFailedCommitKeepsItAndLaterOnesPending() throws {
        let logic = RecordingLogic()
        let w = makeWriter(logic)
        try w.initializeState([])
        try write(w, 1...1)
        _ = try w.snapshotState(checkpointId: 1)
        try write(w, 2...2)
        _ = try w.snapshotState(checkpointId: 2)
        logic.failCommitOf = "w-1"
        XCTAssertThrowsError(try w.notifyCheckpointComplete(2))
        XCTAssertEqual(w.transactions.pending.map(\.checkpointId), [1, 2])
        logic.failCommitOf = nil
        try w.notifyCheckpointComplete(2)
        XCTAssertEqual(logic.committedValues, [1, 2])
    }

    func testCloseAbortsTheOpenTransactionOnly() throws {
        let w = makeWriter()
        try w.initializeState([])
        try write(w, 1...1)
        _ = try w.snapshotState(checkpointId: 1)
        try write(w, 2...2)
        try w.close()
        XCTAssertEqual(w.logic.log.suffix(1), ["abort w-2"])
        XCTAssertFalse(w.logic.log.contains("abort w-1"), "pending transactions are left for a restore to commit")
        XCTAssertThrowsError(try w.write(3, context: ctx))
    }

    func testRestoreCommitsPendingAndAbortsTheOpenTransaction() throws {
        let first = makeWriter(RecordingLogic(writer: "a"))
        try first.initializeState([])
        try write(first, 1...2)
        _ = try first.snapshotState(checkpointId: 1)
        try write(first, 3...4)
        let state = try first.snapshotState(checkpointId: 2)
        try write(first, 5...6)  // after the barrier: belongs to the open transaction a-3
        // Crash: `first` is dropped without any notification.

        let decoded = try TwoPhaseCommitState<RecordingLogic.Txn>.decode(state)
        XCTAssertEqual(decoded.version, 1)
        XCTAssertEqual(decoded.pending.map(\.checkpointId), [1, 2])
        XCTAssertEqual(decoded.current?.name, "a-3")

        let logic = RecordingLogic(writer: "b")
        let second = makeWriter(logic)
        try second.initializeState([state])
        XCTAssertEqual(logic.log, [
            "recoverAndCommit a-1", "recoverAndCommit a-2", "recoverAndAbort a-3",
            "finishRecovery [\"a-1\", \"a-2\"] [\"a-3\"]", "begin b-1",
        ])
        XCTAssertEqual(logic.committedValues, [1, 2, 3, 4])
        XCTAssertTrue(second.transactions.pending.isEmpty)

        // Restoring the same state again (a crash right after the restore) repeats the same calls:
        // the logic's commit must be idempotent.
        let third = makeWriter(RecordingLogic(writer: "c"))
        try third.initializeState([state])
        XCTAssertEqual(third.logic.log.prefix(3), ["recoverAndCommit a-1", "recoverAndCommit a-2", "recoverAndAbort a-3"])
    }

    func testRestoreFromSeveralStatesCommitsInCheckpointOrder() throws {
        var states: [[UInt8]] = []
        for name in ["x", "y"] {
            let w = makeWriter(RecordingLogic(writer: name))
            try w.initializeState([])
            try write(w, 1...1)
            _ = try w.snapshotState(checkpointId: 4)
            try write(w, 2...2)
            states.append(try w.snapshotState(checkpointId: 5))
        }
        let logic = RecordingLogic(writer: "z")
        try makeWriter(logic).initializeState(states + [[]])  // an empty state (a writer with nothing) is skipped
        XCTAssertEqual(logic.log, [
            "recoverAndCommit x-1", "recoverAndCommit y-1", "recoverAndCommit x-2", "recoverAndCommit y-2",
            "recoverAndAbort x-3", "recoverAndAbort y-3",
            "finishRecovery [\"x-1\", \"y-1\", \"x-2\", \"y-2\"] [\"x-3\", \"y-3\"]", "begin z-1",
        ])
    }

    func testFreshStartWithoutInitializeAndCommitAtEndOfInput() throws {
        let w = TwoPhaseCommitSinkWriter(logic: RecordingLogic(), endOfInput: .commitImmediately)
        try write(w, 1...2)  // no initializeState: a runtime without checkpoints
        try w.flush(endOfInput: true)
        XCTAssertEqual(w.logic.committedValues, [1, 2])
        XCTAssertEqual(w.logic.log, ["begin w-1", "preCommit w-1", "commit w-1"])
        try w.close()
        XCTAssertEqual(w.logic.log.count, 3, "nothing left to abort")
    }

    func testEndOfInputAwaitsTheFinalCheckpointByDefault() throws {
        let w = makeWriter()
        try w.initializeState([])
        try write(w, 1...2)
        try w.flush(endOfInput: true)
        XCTAssertEqual(w.logic.committedValues, [])
        _ = try w.snapshotState(checkpointId: 9)
        try w.notifyCheckpointComplete(9)
        XCTAssertEqual(w.logic.committedValues, [1, 2])
    }

    func testCheckpointIdsMustIncreaseAndStateVersionIsChecked() throws {
        let w = makeWriter()
        try w.initializeState([])
        _ = try w.snapshotState(checkpointId: 3)
        XCTAssertThrowsError(try w.snapshotState(checkpointId: 3)) { error in
            XCTAssertTrue("\(error)".contains("must increase"), "\(error)")
        }
        let future = Array(#"{"version":2,"pending":[]}"#.utf8)
        XCTAssertThrowsError(try makeWriter().initializeState([future])) { error in
            XCTAssertTrue("\(error)".contains("version 2"), "\(error)")
        }
        XCTAssertThrowsError(try makeWriter().initializeState([Array("garbage".utf8)])) { error in
            XCTAssertTrue("\(error)".contains("cannot decode"), "\(error)")
        }
        XCTAssertThrowsError(try w.initializeState([]))
    }
}
