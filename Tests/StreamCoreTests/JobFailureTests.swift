import StreamCore
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A throwing user function fails the job with an error naming operator, subtask and key; nothing
/// hangs, even with producers blocked on full queues.
final class JobFailureTests: XCTestCase {
    struct Boom: Error, CustomStringConvertible {
        let what: String
        var description: String { "boom: \(what)" }
    }

    final class FailOnKey: KeyedProcessFunction {
        typealias Key = String
        func processElement(_ v: String, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            if v == "card-7" { throw Boom(what: "bad card") }
            try out.collect(v)
        }
    }

    /// Runs the job; returns its error and how long it took to fail.
    func failure(of env: StreamExecutionEnvironment) -> (error: (any Error)?, seconds: Double) {
        var a = timespec(), b = timespec()
        clock_gettime(CLOCK_MONOTONIC, &a)
        var caught: (any Error)?
        do { try env.execute() } catch { caught = error }
        clock_gettime(CLOCK_MONOTONIC, &b)
        return (caught, Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) / 1e9)
    }

    func testKeyedFunctionFailureNamesOperatorSubtaskAndKey() throws {
        for p in [1, 4] {
            let env = StreamExecutionEnvironment(parallelism: p)
            env.fromData((0..<500).map { "card-\($0 % 20)" })
                .keyBy { $0 }
                .process(name: "score", FailOnKey())
                .sinkTo(DiscardingSink<String>())
            let (error, elapsed) = failure(of: env)
            guard let e = error as? JobExecutionError else { return XCTFail("unexpected \(String(describing: error))") }
            XCTAssertEqual(e.operatorName, "score")
            XCTAssertEqual(e.parallelism, p)
            XCTAssertEqual(e.key, "\"card-7\"")
            XCTAssertEqual(e.subtaskIndex, KeyGroupRangeAssignment.operatorIndex(for: "card-7", maxParallelism: 128, parallelism: p))
            XCTAssertTrue(e.underlying is Boom)
            XCTAssertEqual(e.description, "operator 'score' (subtask \(e.subtaskIndex + 1) of \(p)) failed on key \"card-7\": boom: bad card")
            XCTAssertLessThan(elapsed, 10, "fails promptly at parallelism \(p)")
        }
    }

    func testNonKeyedFailureHasNoKey() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.fromSequence(1, 1_000).map(name: "divide") { v -> Int64 in
            if v == 500 { throw Boom(what: "division") }
            return 1_000 / v
        }.sinkTo(DiscardingSink<Int64>())
        XCTAssertThrowsError(try env.execute()) { error in
            guard let e = error as? JobExecutionError else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(e.operatorName, "divide")
            XCTAssertNil(e.key)
            XCTAssertTrue("\(e)".contains("boom: division"))
        }
    }


    func testSourceFailureNamesTheSource() throws {
        let env = StreamExecutionEnvironment(parallelism: 1)
        let failing = ScriptedSource<Int>(.bounded) { n in
            if n == 100 { throw Boom(what: "disk") }
            return .record(n, timestamp: Timestamps.none)
        }
        env.fromSource(failing, watermarkStrategy: .noWatermarks(), name: "files").sinkTo(DiscardingSink<Int>())
        XCTAssertThrowsError(try env.execute()) { error in
            XCTAssertEqual((error as? JobExecutionError)?.operatorName, "files", "\(error)")
        }
    }

    struct FailingSink: Sink {
        final class Writer: SinkWriter {
            func write(_ value: Int64, context: SinkWriterContext) throws {
                if value == 42 { throw Boom(what: "redis down") }
            }
        }
        func createWriter(_ context: SinkInitContext) -> Writer { Writer() }
    }

    func testFailureDownstreamOfBlockedProducersDoesNotHang() throws {
        // Tiny queues: the sources are blocked on full channels when the sink fails.
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.bufferSize = 8
        env.channelCapacity = 1
        env.fromSequence(1, 2_000_000).rebalance().sinkTo(FailingSink(), name: "writer", parallelism: 1)
        let (error, elapsed) = failure(of: env)
        guard let e = error as? JobExecutionError else { return XCTFail("unexpected \(String(describing: error))") }
        XCTAssertEqual(e.operatorName, "writer")
        XCTAssertTrue("\(e)".contains("redis down"))
        XCTAssertLessThan(elapsed, 10)
    }

    func testConfigurationErrorsFailFast() {
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.maxParallelism = 8
        env.fromSequence(1, 10).map { $0 }.setParallelism(16).sinkTo(DiscardingSink<Int64>())
        XCTAssertThrowsError(try env.execute()) { error in
            XCTAssertTrue(error is JobConfigurationError)
            XCTAssertTrue("\(error)".contains("parallelism 16"), "\(error)")
        }
        XCTAssertThrowsError(try StreamExecutionEnvironment().execute()) { error in
            XCTAssertTrue("\(error)".contains("no operators"), "\(error)")
        }
        let badMax = StreamExecutionEnvironment()
        badMax.maxParallelism = 0
        badMax.fromSequence(1, 2).sinkTo(DiscardingSink<Int64>())
        XCTAssertThrowsError(try badMax.execute()) { error in
            XCTAssertTrue("\(error)".contains("maxParallelism is 0"), "\(error)")
        }
        let badBuffer = StreamExecutionEnvironment()
        badBuffer.bufferSize = 0
        badBuffer.fromSequence(1, 2).sinkTo(DiscardingSink<Int64>())
        XCTAssertThrowsError(try badBuffer.execute()) { error in
            XCTAssertTrue(error is JobConfigurationError, "\(error)")
        }
    }
}
