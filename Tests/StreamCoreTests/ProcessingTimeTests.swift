import StreamCore
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Processing time in a running job: timers and periodic watermarks follow the injected clock.
final class ProcessingTimeTests: XCTestCase {
    /// A sink that makes each record visible at once, so a test can watch a running job.
    final class LiveSink: Sink, Sendable {
        let seen = Mutex<[String]>([])
        final class Writer: SinkWriter {
            let sink: LiveSink
            init(_ sink: LiveSink) { self.sink = sink }
            func write(_ value: String, context: SinkWriterContext) { sink.seen.withLock { $0.append(value) } }
        }
        func createWriter(_ context: SinkInitContext) -> Writer { Writer(self) }
        var values: [String] { seen.withLock { $0 } }
    }

    /// Emits `count` records (timestamps 1000, 2000, …), then nothing, forever.
    static func trickle(_ count: Int) -> ScriptedSource<Int> {
        ScriptedSource(.continuousUnbounded) { n in n <= count ? .record(n, timestamp: Int64(n) * 1_000) : .nothingAvailable }
    }

    final class Remind: KeyedProcessFunction {
        typealias Key = Int
        func processElement(_ v: Int, _ ctx: KeyedProcessContext<Int>, _ out: Collector<String>) throws {
            ctx.timerService.registerProcessingTimeTimer(ctx.timerService.currentProcessingTime() + 30)
        }
        func onTimer(_ t: Int64, _ ctx: KeyedProcessContext<Int>, _ out: Collector<String>) throws {
            try out.collect("reminder \(ctx.currentKey)")
        }
    }

    func waitFor(_ sink: LiveSink, count: Int, seconds: Double = 5) {
        var waited = 0.0
        while sink.values.count < count, waited < seconds {
            usleep(10_000)
            waited += 0.01
        }
    }

    func testProcessingTimeTimersFireInARunningJob() throws {
        let env = StreamExecutionEnvironment(parallelism: 2)
        let sink = LiveSink()
        env.fromSource(Self.trickle(4), watermarkStrategy: .noWatermarks(), name: "trickle")
            .keyBy { $0 }
            .process(Remind())
            .sinkTo(sink)
        let client = try env.executeAsync()
        waitFor(sink, count: 4)
        client.cancel()
        _ = try? client.waitForResult()
        XCTAssertEqual(sink.values.sorted(), ["reminder 1", "reminder 2", "reminder 3", "reminder 4"])
    }

    final class WatermarkEcho: ProcessFunction {
        func processElement(_ v: Int, _ ctx: ProcessContext, _ out: Collector<String>) throws {}
    }

    func testPeriodicWatermarksAndIdlenessOnTheSystemClock() throws {
        // A source that goes quiet: periodic emission brings the watermark to maxTs - 1 and, with
        // idleness, the subtask is marked idle after the timeout.
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.autoWatermarkInterval = .milliseconds(5)
        let sink = LiveSink()
        env.fromSource(Self.trickle(3),
                       watermarkStrategy: WatermarkStrategy<Int>.forMonotonousTimestamps().withIdleness(.milliseconds(30)),
                       name: "trickle")
            .transform("status") { StatusLogger(output: $0.output) }
            .sinkTo(sink)
        let client = try env.executeAsync()
        waitFor(sink, count: 5)
        client.cancel()
        _ = try? client.waitForResult()
        let events = sink.values
        XCTAssertEqual(Array(events.prefix(3)), ["r:1", "r:2", "r:3"])
        XCTAssertTrue(events.contains("w:2999"), "\(events)")
        XCTAssertEqual(events.last, "idle", "\(events)")
    }

    final class StatusLogger: OneInputStreamOperator {
        let output: Output<String>
        init(output: Output<String>) { self.output = output }
        func processElement(_ value: Int, timestamp: Int64) throws { try output.collect("r:\(value)", timestamp: timestamp) }
        func processWatermark(_ watermark: Int64) throws { try output.collect("w:\(watermark)", timestamp: Timestamps.none) }
        func processWatermarkStatus(_ status: WatermarkStatus) throws {
            try output.collect(status == .idle ? "idle" : "active", timestamp: Timestamps.none)
        }
    }


    func testPartialBatchesShipWithinTheBufferTimeoutOnABusyThread() throws {
        // One slot: a source that never pauses keeps the thread busy, while a trickle of three
        // records goes through an exchange; they must not wait for the batch to fill.
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.bufferTimeout = .milliseconds(5)
        let sink = LiveSink()
        env.fromSource(ScriptedSource<Int>(.continuousUnbounded) { .record($0, timestamp: Timestamps.none) },
                       watermarkStrategy: .noWatermarks(), name: "busy").sinkTo(DiscardingSink<Int>())
        env.fromSource(Self.trickle(3), watermarkStrategy: .noWatermarks(), name: "trickle")
            .map { "t\($0)" }.startNewChain()
            .sinkTo(sink)
        let plan = try env.explain()
        XCTAssertTrue(plan.contains("chain ×1: Map -> Sink  <= trickle"), plan)
        let client = try env.executeAsync()
        waitFor(sink, count: 3, seconds: 5)
        client.cancel()
        _ = try? client.waitForResult()
        XCTAssertEqual(sink.values, ["t1", "t2", "t3"])
    }

    /// Counts how a sink writer is told to flush.
    final class FlushCounter: Sink, Sendable {
        let busy = Atomic<Int>(0), idle = Atomic<Int>(0)
        final class Writer: SinkWriter {
            let sink: FlushCounter
            init(_ sink: FlushCounter) { self.sink = sink }
            func write(_ value: Int, context: SinkWriterContext) {}
            func flushIdle() { sink.idle.add(1, ordering: .relaxed) }
            func flushBusy() { sink.busy.add(1, ordering: .relaxed) }
        }
        func createWriter(_ context: SinkInitContext) -> Writer { Writer(self) }
    }

    func testABusyThreadFlushesSinksWithoutWaitingAnIdleOneWaiting() throws {
        // A source that never pauses: every buffer timeout the sink is told to move its buffer
        // along (flushBusy), never that its thread ran out of input (flushIdle, which may wait).
        let env = StreamExecutionEnvironment(parallelism: 1)
        env.bufferTimeout = .milliseconds(2)
        let busy = FlushCounter()
        env.fromSource(ScriptedSource<Int>(.continuousUnbounded) { .record($0, timestamp: Timestamps.none) },
                       watermarkStrategy: .noWatermarks(), name: "busy").sinkTo(busy)
        let client = try env.executeAsync()
        var waited = 0
        while busy.busy.load(ordering: .relaxed) < 5, waited < 500 { usleep(10_000); waited += 1 }
        client.cancel()
        _ = try? client.waitForResult()
        XCTAssertGreaterThanOrEqual(busy.busy.load(ordering: .relaxed), 5)
        XCTAssertEqual(busy.idle.load(ordering: .relaxed), 0)

        // A source that stops: its thread goes idle, and the sink is told so.
        let env2 = StreamExecutionEnvironment(parallelism: 1)
        let quiet = FlushCounter()
        env2.fromSource(Self.trickle(3), watermarkStrategy: .noWatermarks(), name: "trickle").sinkTo(quiet)
        let client2 = try env2.executeAsync()
        waited = 0
        while quiet.idle.load(ordering: .relaxed) < 1, waited < 500 { usleep(10_000); waited += 1 }
        client2.cancel()
        _ = try? client2.waitForResult()
        XCTAssertGreaterThanOrEqual(quiet.idle.load(ordering: .relaxed), 1)
    }

    /// A sink writer that only says when it is idle is told to flush then on a busy thread too.
    func testFlushBusyDefaultsToFlushIdle() throws {
        final class OnlyIdle: SinkWriter {
            var idle = 0
            func write(_ value: Int, context: SinkWriterContext) {}
            func flushIdle() { idle += 1 }
        }
        let w = OnlyIdle()
        try w.flushBusy()
        XCTAssertEqual(w.idle, 1)
    }
}
