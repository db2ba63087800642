import Foundation
import StreamCore
import XCTest

/// Keys map to key groups and subtasks exactly as Flink's `KeyGroupRangeAssignment` does, with a
/// hash that does not depend on the process. Every vector below was printed by Flink 2.3 itself
/// (`KeyGroupRangeAssignment.assignToKeyGroup`, `assignKeyToParallelOperator`,
/// `computeKeyGroupRangeForOperatorIndex` and `MathUtils.murmurHash` from the flink-dist jar of the
/// apache-flink 2.3.0 wheel, on Java 17), with Java `String` and `long` keys.
final class KeyGroupTests: XCTestCase {
    func testMurmurHashMatchesFlink() {
        let vectors: [(Int32, Int32)] = [
            (0, 593_689_054), (1, 68_075_478), (2, 1_085_422_463), (-1, 1_982_413_648),
            (Int32.min, 1_718_298_732), (123_456, 1_294_369_584),
        ]
        for (input, expected) in vectors {
            XCTAssertEqual(KeyGroupRangeAssignment.murmurHash(input), expected, "murmurHash(\(input))")
        }
    }

    func testStringKeysHashAndGroupAsInJava() {
        // key, Java hashCode, key group (max parallelism 128), subtask at parallelism 4
        let vectors: [(String, Int32, Int, Int)] = [
            ("", 0, 94, 2), ("a", 97, 81, 2), ("hello", 99_162_322, 35, 1), ("card-17", 553_884_163, 116, 3),
            ("user-42", -147_182_656, 20, 0), ("Ünïcødé", 1_055_433_303, 57, 1), ("😀", 1_772_899, 54, 1),
            ("device-9f3a", -1_590_822_990, 92, 2),
        ]
        for (key, hash, group, subtask) in vectors {
            XCTAssertEqual(key.stableHashCode, hash, "hashCode of \(key)")
            XCTAssertEqual(KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: 128), group, "key group of \(key)")
            XCTAssertEqual(KeyGroupRangeAssignment.operatorIndex(for: key, maxParallelism: 128, parallelism: 4), subtask)
        }
    }

    func testLongKeysHashAndGroupAsInJava() {
        // key, Java Long.hashCode, key group (128), subtask at parallelism 3
        let vectors: [(Int64, Int32, Int, Int)] = [
            (0, 0, 94, 2), (1, 1, 86, 2), (-1, 0, 94, 2), (42, 42, 29, 0), (4_294_967_296, 1, 86, 2),
            (Int64.max, Int32.min, 108, 2), (Int64.min, Int32.min, 108, 2), (123_456_789_012_345, -2_045_923_535, 61, 1),
        ]
        for (key, hash, group, subtask) in vectors {
            XCTAssertEqual(key.stableHashCode, hash, "hashCode of \(key)")
            XCTAssertEqual(Int(key).stableHashCode, hash, "Int hashes as a Java long")
            XCTAssertEqual(KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: 128), group)
            XCTAssertEqual(KeyGroupRangeAssignment.operatorIndex(for: key, maxParallelism: 128, parallelism: 3), subtask)
        }
    }

    func testKeyGroupRangesMatchFlink() {
        let expected: [Int: [ClosedRange<Int>]] = [
            1: [0...127],
            2: [0...63, 64...127],
            3: [0...42, 43...85, 86...127],
            4: [0...31, 32...63, 64...95, 96...127],
            7: [0...18, 19...36, 37...54, 55...73, 74...91, 92...109, 110...127],
        ]
        for (p, ranges) in expected {
            let got = (0..<p).map { KeyGroupRangeAssignment.keyGroupRange(maxParallelism: 128, parallelism: p, operatorIndex: $0) }
            XCTAssertEqual(got, ranges, "parallelism \(p)")
        }
    }

    func testKeyGroupRangesPartitionAllGroups() {
        for p in [1, 2, 3, 4, 7, 128] {
            var covered: [Int] = []
            for i in 0..<p {
                guard let r = KeyGroupRangeAssignment.keyGroupRange(maxParallelism: 128, parallelism: p, operatorIndex: i) else {
                    return XCTFail("empty range")
                }
                for g in r { XCTAssertEqual(KeyGroupRangeAssignment.operatorIndex(forKeyGroup: g, maxParallelism: 128, parallelism: p), i) }
                covered += Array(r)
            }
            XCTAssertEqual(covered, Array(0..<128), "parallelism \(p)")
        }
    }

    func testKeyGroupsAreStableAcrossProcesses() throws {
        // Another process (with its own random Swift hash seed) must place keys exactly as this one.
        let keys = (0..<50).map { "card-\($0 * 7919)" } + ["", "Ünïcødé", "😀"]
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("example-job")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            return XCTFail("example-job not built next to the tests at \(binary.path)")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--key-groups"] + keys
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(lines.count, keys.count)
        for (key, line) in zip(keys, lines) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            let group = KeyGroupRangeAssignment.keyGroup(of: key, maxParallelism: 128)
            let subtasks = [1, 2, 4].map { String(KeyGroupRangeAssignment.operatorIndex(forKeyGroup: group, maxParallelism: 128, parallelism: $0)) }
            XCTAssertEqual(fields, [key, String(key.stableHashCode), String(group), subtasks.joined(separator: ",")])
        }
    }

    func testRecordsReachTheSubtaskOwningTheirKeyGroup() throws {
        final class Where: KeyedProcessFunction {
            typealias Key = String
            var subtask = -1
            func open(_ context: RuntimeContext) throws { subtask = context.subtaskIndex }
            func processElement(_ v: String, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
                try out.collect("\(v)=\(subtask)")
            }
        }
        let keys = (0..<200).map { "k\($0)" }
        let env = StreamExecutionEnvironment(parallelism: 4)
        let got = try env.fromData(keys).keyBy { $0 }.process(Where()).executeAndCollect()
        XCTAssertEqual(got.count, keys.count)
        for entry in got {
            let parts = entry.split(separator: "=")
            let expected = KeyGroupRangeAssignment.operatorIndex(for: String(parts[0]), maxParallelism: 128, parallelism: 4)
            XCTAssertEqual(Int(parts[1]), expected, "\(parts[0])")
        }
    }
}
