import Connectors
import Foundation
import StreamCore
import Synchronization
import XCTest

final class FileSinkTests: XCTestCase {
    var dir = ""
    let ctx = SinkWriterContext(timestamp: nil, currentWatermark: .min)

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("filesink-\(UUID().uuidString)").path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func sink(endOfInput: EndOfInputCommit = .awaitFinalCheckpoint) -> FileSink<Int> {
        FileSink(directory: dir, suffix: ".txt", endOfInput: endOfInput)
    }

    func writer(subtask: Int = 0) throws -> TwoPhaseCommitSinkWriter<FileTransactionLogic<Int>> {
        try sink().createWriter(SinkInitContext(subtaskIndex: subtask, parallelism: 2))
    }

    func names() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }
    /// What a reader sees: files whose names do not start with ".".
    func visible() throws -> [String] { try names().filter { !$0.hasPrefix(".") } }
    func hidden() throws -> [String] { try names().filter { $0.hasPrefix(".") } }

    /// The rows of every visible file, in name order then line order.
    func committedRows() throws -> [Int] {
        try visible().flatMap { name in
            try String(contentsOfFile: dir + "/" + name, encoding: .utf8).split(separator: "\n").map { Int($0)! }
        }
    }

    func write(_ w: TwoPhaseCommitSinkWriter<FileTransactionLogic<Int>>, _ values: ClosedRange<Int>) throws {
        for v in values { try w.write(v, context: ctx) }
    }

    func testReadersSeeOnlyCommittedFiles() throws {
        let w = try writer()
        try w.initializeState([])
        XCTAssertEqual(try names(), [], "no file before the first record")
        try write(w, 1...3)
        XCTAssertEqual(try visible(), [])
        XCTAssertEqual(try hidden().count, 1)
        XCTAssertTrue(try hidden()[0].hasSuffix(".txt.inprogress"))

        _ = try w.snapshotState(checkpointId: 1)
        XCTAssertEqual(try visible(), [], "pre-committed is not visible")
        XCTAssertTrue(try hidden()[0].hasSuffix(".pending"))
        try write(w, 4...5)
        XCTAssertEqual(try visible(), [])

        try w.notifyCheckpointComplete(1)
        XCTAssertEqual(try visible().count, 1)
        let first = try visible()[0]
        XCTAssertEqual(first, "part-\(w.logic.run)-0-0.txt")
        XCTAssertEqual(try committedRows(), [1, 2, 3])
        XCTAssertEqual(try String(contentsOfFile: dir + "/" + visible()[0], encoding: .utf8), "1\n2\n3\n")

        _ = try w.snapshotState(checkpointId: 2)
        _ = try w.snapshotState(checkpointId: 3)  // nothing written in between: no empty file
        try w.notifyCheckpointComplete(3)
        XCTAssertEqual(try committedRows(), [1, 2, 3, 4, 5])
        XCTAssertEqual(try visible().count, 2)
        try w.close()
        XCTAssertEqual(try hidden(), [], "close leaves no hidden file")
    }

    func testCrashAndRestoreCommitsTheCheckpointAndDropsTheRest() throws {
        var w: TwoPhaseCommitSinkWriter<FileTransactionLogic<Int>>? = try writer()
        try w!.initializeState([])
        try write(w!, 1...2)
        _ = try w!.snapshotState(checkpointId: 1)
        try w!.notifyCheckpointComplete(1)
        try write(w!, 3...4)
        let state = try w!.snapshotState(checkpointId: 2)  // checkpoint 2 completes, the notification is lost
        try write(w!, 5...6)
        _ = try w!.snapshotState(checkpointId: 3)  // never completes
        try write(w!, 7...8)
        XCTAssertEqual(try committedRows(), [1, 2])
        XCTAssertEqual(try hidden().count, 3, "pending of 2 and 3, in-progress of the open transaction")
        w = nil  // crash: no close, no abort

        let restored = try writer()
        try restored.initializeState([state])
        XCTAssertEqual(try committedRows(), [1, 2, 3, 4], "exactly what checkpoint 2 covered")
        XCTAssertEqual(try hidden(), [], "what came after checkpoint 2 is gone (the sources replay it)")

        // The replayed records go to new files of the new run.
        try write(restored, 5...8)
        _ = try restored.snapshotState(checkpointId: 3)
        try restored.notifyCheckpointComplete(3)
        XCTAssertEqual(try committedRows().sorted(), Array(1...8))
    }

    /// Buckets (Flink's BucketAssigner) with file framing: one file per bucket and transaction,
    /// header once per file, a block per flush; restore commits the checkpoint's files in every
    /// bucket and deletes the later hidden ones there.
    func testBucketsAndFramingThroughCrashAndRestore() throws {
        try bucketsAndFramingThroughCrashAndRestore(dir: dir, bucketKey: nil)
    }

    /// The same with a `bucketKey`: identical files, and each bucket's name built once per writer.
    func testBucketKeyGivesTheSameFilesAndNamesEachBucketOnce() throws {
        let calls = BucketCalls()
        try bucketsAndFramingThroughCrashAndRestore(dir: dir + "/keyed", bucketKey: { $0 % 2 }, counting: calls)
        // Two transactions wrote to both buckets before the crash: each name was built once.
        XCTAssertEqual(calls.counts.withLock { $0 }, [0: 1, 1: 1])
    }

    private func bucketsAndFramingThroughCrashAndRestore(dir: String, bucketKey: (@Sendable (Int) -> Int)?,
                                                         counting calls: BucketCalls? = nil) throws {
        let framing = FileFraming(header: { bucket in Array("H[\(bucket)]\n".utf8) },
                                  blockPrefix: { n, _ in Array("B\(n)\n".utf8) }, blockSuffix: Array("E\n".utf8))
        let bucketed = FileSink<Int>(directory: dir, suffix: ".txt", encoder: RowEncoder(framing: framing) { v, b in b += Array("\(v)\n".utf8) },
                                     bucket: { v in calls?.counts.withLock { $0[v % 2, default: 0] += 1 }; return "b\(v % 2)/x" },
                                     bucketKey: bucketKey)
        var w: TwoPhaseCommitSinkWriter<FileTransactionLogic<Int>>? = try bucketed.createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try w!.initializeState([])
        try write(w!, 1...4)
        let state = try w!.snapshotState(checkpointId: 1)   // completes, the notification is lost
        try write(w!, 5...6)
        w = nil                                              // crash
        func files(_ b: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir + "/" + b).sorted() }
        XCTAssertEqual(try files("b0/x").count, 2, "a pending and an in-progress file")

        let restored = try bucketed.createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))
        try restored.initializeState([state])
        for b in ["b0/x", "b1/x"] {
            let names = try files(b)
            XCTAssertEqual(names.count, 1, "\(b): only the committed file is left: \(names)")
            let text = try String(contentsOfFile: dir + "/" + b + "/" + names[0], encoding: .utf8)
            XCTAssertEqual(text, b == "b0/x" ? "H[b0/x]\nB2\n2\n4\nE\n" : "H[b1/x]\nB2\n1\n3\nE\n")
        }
        XCTAssertThrowsError(try FileSink<Int>(directory: dir, bucket: { _ in "../escape" })
            .createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1)).write(1, context: ctx))
    }

    func testRecommitIsIdempotent() throws {
        let w = try writer()
        try w.initializeState([])
        try write(w, 1...3)
        let state = try w.snapshotState(checkpointId: 1)
        try w.notifyCheckpointComplete(1)
        try w.notifyCheckpointComplete(1)
        let committed = try visible()

        // Restore the same checkpoint twice (a crash after a restore): nothing changes.
        for _ in 0..<2 {
            try writer().initializeState([state])
            XCTAssertEqual(try visible(), committed)
            XCTAssertEqual(try committedRows(), [1, 2, 3])
        }
        let txn = try TwoPhaseCommitState<FileTransaction>.decode(state).pending[0].transaction
        try w.logic.commit(txn)
        XCTAssertEqual(try committedRows(), [1, 2, 3])
    }

    func testCommitOfALostPendingFileFails() throws {
        let w = try writer()
        try w.initializeState([])
        try write(w, 1...1)
        let state = try w.snapshotState(checkpointId: 1)
        for name in try hidden() { try FileManager.default.removeItem(atPath: dir + "/" + name) }
        XCTAssertThrowsError(try writer().initializeState([state])) { error in
            XCTAssertTrue("\(error)".contains("neither it nor its pending file"), "\(error)")
        }
    }

    func testRestoreFromSeveralWritersAfterRescaling() throws {
        var states: [[UInt8]] = []
        for subtask in 0..<2 {
            let w = try writer(subtask: subtask)
            try w.initializeState([])
            try write(w, (subtask * 10 + 1)...(subtask * 10 + 2))
            states.append(try w.snapshotState(checkpointId: 7))
            try write(w, 99...99)
        }
        let merged = try writer(subtask: 0)
        try merged.initializeState(states)
        XCTAssertEqual(try committedRows().sorted(), [1, 2, 11, 12])
        XCTAssertEqual(try hidden(), [])
    }

    func testUnwritableDirectoryHasAClearError() throws {
        let file = dir + "-file"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let bad = FileSink<Int>(directory: file + "/out")
        XCTAssertThrowsError(try bad.createWriter(SinkInitContext(subtaskIndex: 0, parallelism: 1))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("cannot write to directory '\(file)/out'"), message)
            XCTAssertTrue(message.contains("writable"), message)
        }
    }

    func testCustomEncoderAndLargeTransactions() throws {
        let sink = FileSink<Int>(directory: dir, prefix: "rows", encoder: RowEncoder { value, buffer in
            buffer.append(contentsOf: "{\"v\":\(value)}\n".utf8)
        })
        let w = try sink.createWriter(SinkInitContext(subtaskIndex: 3, parallelism: 4))
        try w.initializeState([])
        for v in 0..<20_000 { try w.write(v, context: ctx) }  // several buffer drains
        _ = try w.snapshotState(checkpointId: 1)
        try w.notifyCheckpointComplete(1)
        let name = try visible()[0]
        XCTAssertTrue(name.hasPrefix("rows-") && name.hasSuffix("-3-0"), name)
        let lines = try String(contentsOfFile: dir + "/" + name, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 20_000)
        XCTAssertEqual(lines.last, "{\"v\":19999}")
    }

    /// The sink in a real job. Today's runtime takes no checkpoints, so the end of input commits.
    func testInAJobWithCommitAtEndOfInput() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.fromSequence(1, 1000).map { Int($0) }.sinkTo(sink(endOfInput: .commitImmediately))
        try env.execute()
        XCTAssertEqual(try committedRows().sorted(), Array(1...1000))
        XCTAssertEqual(try hidden(), [])
        XCTAssertEqual(try visible().count, 2, "one file per subtask")
    }
}

/// How often a file sink asked for each bucket's name.
final class BucketCalls: Sendable {
    let counts = Mutex<[Int: Int]>([:])
}
