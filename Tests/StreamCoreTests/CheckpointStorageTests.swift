import StreamCore
import StreamTesting
import XCTest

final class CheckpointStorageTests: XCTestCase {
    private func info(_ kind: CheckpointKind = .checkpoint) -> CheckpointInfo {
        CheckpointInfo(jobName: "fraud-features", timestampMillis: 1_700_000_000_000, parallelism: 2,
                       maxParallelism: 128, kind: kind,
                       metadata: ["source-splits": Array("transactions-0:42,transactions-1:17".utf8), "empty": []])
    }

    private func owner(_ subtask: Int) -> StateFileOwner {
        StateFileOwner(operatorUid: "count-per-card", subtask: subtask, keyGroups: subtask == 0 ? 0...63 : 64...127)
    }

    /// Writes checkpoint `id` with two state files whose content names the checkpoint.
    @discardableResult
    private func writeCheckpoint(_ storage: CheckpointStorage, _ id: CheckpointId, kind: CheckpointKind = .checkpoint) throws -> CheckpointWriter.Completion {
        let w = try storage.beginCheckpoint(id)
        try w.writeFile("count-per-card-0", content(id, 0), owner: owner(0))
        try w.writeFile("count-per-card-1", content(id, 1), owner: owner(1))
        return try w.complete(info(kind))
    }

    private func content(_ id: CheckpointId, _ subtask: Int) -> [UInt8] {
        Array(String(repeating: "state of chk \(id) subtask \(subtask); ", count: 200).utf8)
    }

    private func names(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    }

    func testCompleteWritesManifestAndFilesAtomically() throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path + "/checkpoints")
        let w = try storage.beginCheckpoint(1)
        try w.writeFile("count-per-card-0", content(1, 0), owner: owner(0))
        // In progress: only a hidden temporary directory, which readers ignore.
        let during = try names(storage.directory)
        XCTAssertEqual(during.count, 1)
        XCTAssertTrue(during[0].hasPrefix(".chk-1.inprogress-"), "\(during)")
        XCTAssertNil(storage.latestValid().checkpoint)
        XCTAssertEqual(try storage.checkpointIds(), [])
        XCTAssertThrowsError(try w.writeFile("count-per-card-0", [1], owner: owner(0)))   // duplicate name
        XCTAssertThrowsError(try w.writeFile("../escape", [1], owner: owner(0)))
        try w.writeFile("count-per-card-1", content(1, 1), owner: owner(1))

        let done = try w.complete(info())
        XCTAssertEqual(try names(storage.directory), ["chk-1"])
        XCTAssertEqual(try names(storage.directory + "/chk-1"), ["_manifest.json", "count-per-card-0", "count-per-card-1"])
        XCTAssertEqual(done.checkpoint.manifest.files.map(\.name), ["count-per-card-0", "count-per-card-1"])
        XCTAssertThrowsError(try w.writeFile("late", [1], owner: owner(0)))

        let restored = try XCTUnwrap(storage.latestValid().checkpoint)
        XCTAssertEqual(restored.id, 1)
        XCTAssertEqual(restored.manifest, done.checkpoint.manifest)
        XCTAssertEqual(restored.info, info())
        XCTAssertEqual(try restored.readFile("count-per-card-1"), content(1, 1))
        let entry = try XCTUnwrap(restored.manifest.file(named: "count-per-card-0"))
        XCTAssertEqual(entry.owner, owner(0))
        XCTAssertEqual(entry.rawSize, content(1, 0).count)
        XCTAssertLessThan(entry.storedSize, entry.rawSize / 10)   // zstd-compressed on disk
        XCTAssertEqual(restored.files(ofOperator: "count-per-card", intersecting: 60...70).map(\.name),
                       ["count-per-card-0", "count-per-card-1"])
        XCTAssertEqual(restored.files(ofOperator: "count-per-card", intersecting: 100...127).map(\.name), ["count-per-card-1"])
        XCTAssertEqual(try storage.nextCheckpointId(), 2)
        XCTAssertThrowsError(try storage.beginCheckpoint(1))   // ids are never reused
    }

    func testManifestIsChecksummedJSON() throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path)
        try writeCheckpoint(storage, 1)
        let text = try String(contentsOfFile: dir.path + "/chk-1/_manifest.json", encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("{\"manifestChecksum\": \""), text)
        let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        let manifest = try XCTUnwrap(json?["manifest"] as? [String: Any])
        XCTAssertEqual(manifest["checkpointId"] as? Int, 1)
        XCTAssertEqual(manifest["jobName"] as? String, "fraud-features")
        XCTAssertEqual(manifest["kind"] as? String, "checkpoint")
        XCTAssertEqual((manifest["metadata"] as? [String: String])?["source-splits"],
                       Data("transactions-0:42,transactions-1:17".utf8).base64EncodedString())
        let files = try XCTUnwrap(manifest["files"] as? [[String: Any]])
        XCTAssertEqual(files.first?["keyGroups"] as? [Int], [0, 63])
    }

    func testAbortRemovesTheTemporaryDirectory() throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path)
        let w = try storage.beginCheckpoint(1)
        try w.writeFile("a", [1, 2, 3], owner: owner(0))
        w.abort()
        w.abort()
        XCTAssertEqual(try names(dir.path), [])
        XCTAssertThrowsError(try w.complete(info()))
    }

    func testRetentionKeepsLastKAndRemovesStaleInProgress() throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path, retainedCheckpoints: 3)
        // A crashed run left a half-written checkpoint and a half-removed one.
        try FileManager.default.createDirectory(atPath: dir.path + "/.chk-9.inprogress-deadbeef", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: dir.path + "/.chk-0.deleting-00", withIntermediateDirectories: false)
        XCTAssertEqual(try storage.nextCheckpointId(), 10)
        let running = try storage.beginCheckpoint(20)   // in progress in this run: kept
        for id: CheckpointId in 1...3 { try writeCheckpoint(storage, id) }
        XCTAssertEqual(try names(dir.path).filter { !$0.hasPrefix(".chk-20.") }, ["chk-1", "chk-2", "chk-3"])
        try writeCheckpoint(storage, 4, kind: .savepoint)
        let fifth = try writeCheckpoint(storage, 5)
        XCTAssertEqual(fifth.retention.removed, ["chk-1"])
        let sixth = try writeCheckpoint(storage, 6)
        XCTAssertEqual(sixth.retention.removed, ["chk-2"])
        XCTAssertEqual(sixth.retention.warnings, [])
        let left = try names(dir.path)
        XCTAssertEqual(left.filter { !$0.hasPrefix(".") }, ["chk-3", "chk-4", "chk-5", "chk-6"])   // chk-4 is a savepoint: not counted
        XCTAssertEqual(left.filter { $0.hasPrefix(".") }.count, 1)
        XCTAssertTrue(left.contains { $0.hasPrefix(".chk-20.inprogress-") })
        try writeCheckpoint(storage, 7)
        XCTAssertEqual(try storage.checkpointIds(), [4, 5, 6, 7])
        running.abort()
        XCTAssertEqual(try names(dir.path), ["chk-4", "chk-5", "chk-6", "chk-7"])
    }

    // MARK: corruption

    private func corruptionCase(_ damage: (String) throws -> Void, expect fragment: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path)
        try writeCheckpoint(storage, 1)
        try writeCheckpoint(storage, 2)
        try damage(dir.path + "/chk-2")
        let selection = storage.latestValid()
        XCTAssertEqual(selection.checkpoint?.id, 1, file: file, line: line)
        XCTAssertEqual(try selection.checkpoint?.readFile("count-per-card-0"), content(1, 0), file: file, line: line)
        XCTAssertEqual(selection.warnings.count, 1, "\(selection.warnings)", file: file, line: line)
        let warning = selection.warnings.first ?? ""
        XCTAssertTrue(warning.contains("chk-2") && warning.contains(fragment) && warning.contains("falling back"),
                      warning, file: file, line: line)
        // Named, it fails with the reason instead.
        XCTAssertThrowsError(try storage.open(named: "chk-2"), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(fragment), "\(error)", file: file, line: line)
        }
        XCTAssertEqual(try storage.open(named: "1").id, 1, file: file, line: line)
    }

    private func flipByte(_ path: String, at: (Int) -> Int) throws {
        var bytes = try readAll(path)
        bytes[at(bytes.count)] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func testCorruptedFileByteFallsBack() throws {
        try corruptionCase({ try self.flipByte($0 + "/count-per-card-1", at: { $0 / 2 }) }, expect: "corrupt: checksum")
    }

    func testTruncatedFileFallsBack() throws {
        try corruptionCase({ XCTAssertEqual(truncate($0 + "/count-per-card-0", 10), 0) }, expect: "truncated")
    }

    func testMissingFileFallsBack() throws {
        try corruptionCase({ XCTAssertEqual(unlink($0 + "/count-per-card-0"), 0) }, expect: "missing")
    }

    func testGarbageManifestFallsBack() throws {
        try corruptionCase({ try Data("{not json".utf8).write(to: URL(fileURLWithPath: $0 + "/_manifest.json")) },
                           expect: "manifest")
    }

    func testManifestByteFlipFallsBack() throws {
        try corruptionCase({ try self.flipByte($0 + "/_manifest.json", at: { $0 - 40 }) }, expect: "manifest checksum mismatch")
    }

    func testMissingManifestFallsBack() throws {
        try corruptionCase({ XCTAssertEqual(unlink($0 + "/_manifest.json"), 0) }, expect: "no _manifest.json")
    }

    func testNothingUsable() throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path)
        XCTAssertNil(storage.latestValid().checkpoint)
        XCTAssertEqual(storage.latestValid().warnings, [])
        try writeCheckpoint(storage, 1)
        XCTAssertEqual(unlink(dir.path + "/chk-1/count-per-card-1"), 0)
        let selection = storage.latestValid()
        XCTAssertNil(selection.checkpoint)
        XCTAssertEqual(selection.warnings.count, 2)
    }

    func testOpenNamedAndByPath() throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path)
        try writeCheckpoint(storage, 1)
        try writeCheckpoint(storage, 2)
        XCTAssertEqual(try storage.open(named: "chk-1").id, 1)
        XCTAssertEqual(try storage.open(named: "2").id, 2)
        XCTAssertEqual(try storage.open(named: dir.path + "/chk-1/").id, 1)
        XCTAssertEqual(try CheckpointStorage.open(path: dir.path + "/chk-2").readFile("count-per-card-0"), content(2, 0))
        XCTAssertThrowsError(try storage.open(named: "chk-7")) { error in
            XCTAssertTrue("\(error)".contains("available: chk-1, chk-2"), "\(error)")
        }
        XCTAssertThrowsError(try storage.open(named: "latest"))
        XCTAssertThrowsError(try storage.open(named: dir.path + "/nope"))
        // A checkpoint directory copied under another name still opens by path.
        XCTAssertEqual(rename(dir.path + "/chk-1", dir.path + "/saved"), 0)
        XCTAssertEqual(try storage.open(named: dir.path + "/saved").id, 1)
    }

    func testConcurrentWritersOfOneCheckpoint() throws {
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path)
        let w = try storage.beginCheckpoint(1)
        let payloads = (0..<8).map { content(1, $0) }
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                try w.writeFile("op-\(i)", payloads[i], owner: StateFileOwner(operatorUid: "op", subtask: i))
            } catch {
                XCTFail("\(error)")
            }
        }
        let c = try w.complete(info()).checkpoint
        XCTAssertEqual(c.manifest.files.count, 8)
        for i in 0..<8 { XCTAssertEqual(try c.readFile("op-\(i)"), content(1, i)) }
    }
}
