import StreamCore
import StreamTesting
import XCTest

/// The operator suites again with keyed state in RocksDB, two keys resident: window contents,
/// sessions, rolling aggregates and join buffers are written out and read back between records
/// and when timers fire by slot. Same results as on the heap.
private func useRocksDB(_ test: XCTestCase) throws -> TemporaryDirectory {
    let dir = try TemporaryDirectory()
    HarnessStateBackend.current = .rocksDB(RocksDBStateOptions(directory: dir.path, maxResidentKeys: 2))
    return dir
}

final class RocksDBWindowTests: WindowTests {
    var dir: TemporaryDirectory?
    override func setUpWithError() throws { dir = try useRocksDB(self) }
    override func tearDown() { HarnessStateBackend.current = .heap; dir = nil }
    // Declared here so Linux test discovery finds the class; its inherited tests run too.
    override func testFiresWhenWatermarkReachesEndMinusOne() throws { try super.testFiresWhenWatermarkReachesEndMinusOne() }
}

final class RocksDBAlignedWindowTests: AlignedWindowTests {
    var dir: TemporaryDirectory?
    override func setUpWithError() throws { dir = try useRocksDB(self) }
    override func tearDown() { HarnessStateBackend.current = .heap; dir = nil }
    // Declared here so Linux test discovery finds the class; its inherited tests run too.
    override func testAlignedEqualsGeneralOnRandomInput() throws { try super.testAlignedEqualsGeneralOnRandomInput() }
}

final class RocksDBSlicingTests: SlicingTests {
    var dir: TemporaryDirectory?
    override func setUpWithError() throws { dir = try useRocksDB(self) }
    override func tearDown() { HarnessStateBackend.current = .heap; dir = nil }
    // Declared here so Linux test discovery finds the class; its inherited tests run too.
    override func testSlicedEqualsGeneralOnRandomInput() throws { try super.testSlicedEqualsGeneralOnRandomInput() }
}

final class RocksDBIntervalJoinTests: IntervalJoinTests {
    var dir: TemporaryDirectory?
    override func setUpWithError() throws { dir = try useRocksDB(self) }
    override func tearDown() { HarnessStateBackend.current = .heap; dir = nil }
    // Declared here so Linux test discovery finds the class; its inherited tests run too.
    override func testBoundsAreInclusiveByDefaultAndBothSidesJoin() throws { try super.testBoundsAreInclusiveByDefaultAndBothSidesJoin() }
}

final class RocksDBOverTests: OverTests {
    var dir: TemporaryDirectory?
    override func setUpWithError() throws { dir = try useRocksDB(self) }
    override func tearDown() { HarnessStateBackend.current = .heap; dir = nil }
    // Declared here so Linux test discovery finds the class; its inherited tests run too.
    override func testRangeIsInclusiveAndPeersSeeEachOther() throws { try super.testRangeIsInclusiveAndPeersSeeEachOther() }
}

final class RocksDBWindowCheckpointTests: WindowCheckpointTests {
    var dir: TemporaryDirectory?
    override func setUpWithError() throws { dir = try useRocksDB(self) }
    override func tearDown() { HarnessStateBackend.current = .heap; dir = nil; keptFiles = nil }
    // Declared here so Linux test discovery finds the class; its inherited tests run too.
    override func testWindowsRestoreMidStream() throws { try super.testWindowsRestoreMidStream() }
}
