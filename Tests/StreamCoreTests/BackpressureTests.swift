import StreamCore
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A slow consumer bounds memory: producers wait for space instead of queueing without limit.
final class BackpressureTests: XCTestCase {
    struct SlowSink: Sink {
        final class Writer: SinkWriter {
            var seen = 0
            func write(_ value: Int64, context: SinkWriterContext) {
                seen += 1
                if seen % 64 == 0 { usleep(200) }
            }
        }
        func createWriter(_ context: SinkInitContext) -> Writer { Writer() }
    }

    func testSlowSinkBoundsQueuedRecords() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.bufferSize = 32
        env.channelCapacity = 2
        let records: Int64 = 40_000
        env.fromSequence(1, records)
            .map { $0 &* 2 }
            .rebalance()
            .sinkTo(SlowSink(), name: "slow", parallelism: 1)
        let result = try env.execute()
        XCTAssertEqual(result.operator("slow")?.numRecordsIn, records, "nothing is lost")
        XCTAssertEqual(result.exchanges.count, 1)
        let gate = result.exchanges[0]
        // 2 producer channels × 2 batches × 32 elements.
        XCTAssertEqual(gate.capacityElements, 2 * 2 * 32)
        XCTAssertLessThanOrEqual(gate.peakQueuedElements, gate.capacityElements, "peak queued stays under the bound")
        XCTAssertGreaterThan(gate.peakQueuedElements, gate.capacityElements / 2, "the queue really filled up")
        XCTAssertGreaterThan(gate.producerWaits, 0, "producers were held back")
    }

    func testFastPipelineNeverExceedsTheBoundEither() throws {
        let env = StreamExecutionEnvironment(parallelism: 4)
        env.bufferSize = 16
        env.channelCapacity = 1
        env.fromSequence(1, 100_000).keyBy { $0 % 97 }.process(Passthrough()).sinkTo(DiscardingSink<Int64>(), name: "discard")
        let result = try env.execute()
        XCTAssertEqual(result.operator("discard")?.numRecordsIn, 100_000)
        for gate in result.exchanges {
            XCTAssertLessThanOrEqual(gate.peakQueuedElements, gate.capacityElements)
            XCTAssertEqual(gate.capacityElements, 4 * 1 * 16)
        }
    }

    final class Passthrough: KeyedProcessFunction {
        typealias Key = Int64
        func processElement(_ v: Int64, _ ctx: KeyedProcessContext<Int64>, _ out: Collector<Int64>) throws {
            try out.collect(v)
        }
    }
}
