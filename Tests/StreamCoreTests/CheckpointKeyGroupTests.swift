import StreamCore
import StreamTesting
import XCTest

final class CheckpointKeyGroupTests: XCTestCase {
    private struct Entry: Codable, Equatable {
        var key: String
        var count: Int64
        var sum: Int64
    }

    func testSectionsRoundTripAndValidate() throws {
        var w = KeyGroupSnapshotWriter()
        try w.beginKeyGroup(3)
        try w.appendRecord(Entry(key: "a", count: 1, sum: 10))
        try w.appendRecord(Entry(key: "b", count: 2, sum: 20))
        try w.beginKeyGroup(4)   // empty section
        try w.beginKeyGroup(9)
        w.append([0xAA, 0xBB])
        XCTAssertThrowsError(try w.beginKeyGroup(9))
        XCTAssertThrowsError(try w.beginKeyGroup(2))
        let bytes = w.finish()

        let r = try KeyGroupSnapshotReader(bytes)
        XCTAssertEqual(r.keyGroups, [3, 4, 9])
        XCTAssertEqual(r.payload(ofKeyGroup: 9).map(Array.init), [0xAA, 0xBB])
        XCTAssertEqual(r.payload(ofKeyGroup: 4)?.count, 0)
        XCTAssertNil(r.payload(ofKeyGroup: 5))
        XCTAssertEqual(r.sections(in: 4...100).map(\.keyGroup), [4, 9])
        var seen: [Entry] = []
        try r.forEachRecord(Entry.self, in: 0...3) { kg, e in
            XCTAssertEqual(kg, 3)
            seen.append(e)
        }
        XCTAssertEqual(seen.map(\.key), ["a", "b"])

        var empty = KeyGroupSnapshotWriter()
        XCTAssertEqual(try KeyGroupSnapshotReader(empty.finish()).keyGroups, [])

        // Truncated or garbled indexes are rejected, never crash.
        for n in 0..<bytes.count {
            XCTAssertThrowsError(try KeyGroupSnapshotReader(Array(bytes[0..<n])))
        }
        for i in bytes.indices {
            var garbled = bytes
            garbled[i] ^= 0xff
            _ = try? KeyGroupSnapshotReader(garbled)
        }
    }

    /// State snapshotted at parallelism 2 and restored at parallelism 3 (and 1): each new subtask
    /// reads only its own key-group range from the old files that overlap it, and gets exactly the
    /// keys Flink's assignment routes to it.
    func testRescaleReadsOnlyOwnedKeyGroups() throws {
        let maxParallelism = 128, oldParallelism = 2
        let keys = (0..<2_000).map { "card-\($0)" }
        let dir = try TemporaryDirectory()
        let storage = try CheckpointStorage(directory: dir.path)
        let writer = try storage.beginCheckpoint(1)
        for subtask in 0..<oldParallelism {
            let range = try XCTUnwrap(KeyGroupRangeAssignment.keyGroupRange(maxParallelism: maxParallelism, parallelism: oldParallelism, operatorIndex: subtask))
            let mine = keys.filter { range.contains(KeyGroupRangeAssignment.keyGroup(of: $0, maxParallelism: maxParallelism)) }
            let byGroup = Dictionary(grouping: mine) { KeyGroupRangeAssignment.keyGroup(of: $0, maxParallelism: maxParallelism) }
            var w = KeyGroupSnapshotWriter()
            for kg in byGroup.keys.sorted() {
                try w.beginKeyGroup(kg)
                for key in byGroup[kg]!.sorted() {
                    try w.appendRecord(Entry(key: key, count: Int64(key.count), sum: Int64(key.utf8.reduce(0) { $0 + Int($1) })))
                }
            }
            try writer.writeFile("counts-\(subtask)", w.finish(),
                                 owner: StateFileOwner(operatorUid: "counts", subtask: subtask, keyGroups: range))
        }
        _ = try writer.complete(CheckpointInfo(jobName: "j", timestampMillis: 0, parallelism: oldParallelism, maxParallelism: maxParallelism))

        let checkpoint = try XCTUnwrap(storage.latestValid().checkpoint)
        for newParallelism in [1, 3] {
            var restored: [String: Int] = [:]
            for subtask in 0..<newParallelism {
                let range = try XCTUnwrap(KeyGroupRangeAssignment.keyGroupRange(maxParallelism: maxParallelism, parallelism: newParallelism, operatorIndex: subtask))
                let files = checkpoint.files(ofOperator: "counts", intersecting: range)
                XCTAssertEqual(files.count, newParallelism == 3 && subtask == 1 ? 2 : (newParallelism == 1 ? 2 : 1))
                for file in files {
                    let reader = try KeyGroupSnapshotReader(try checkpoint.readFile(file.name))
                    try reader.forEachRecord(Entry.self, in: range) { kg, entry in
                        XCTAssertTrue(range.contains(kg))
                        XCTAssertEqual(KeyGroupRangeAssignment.operatorIndex(for: entry.key, maxParallelism: maxParallelism, parallelism: newParallelism), subtask)
                        XCTAssertEqual(entry.count, Int64(entry.key.count))
                        XCTAssertNil(restored.updateValue(subtask, forKey: entry.key), "key restored twice")
                    }
                }
            }
            XCTAssertEqual(Set(restored.keys), Set(keys), "parallelism \(newParallelism)")
        }
    }
}
