import StreamCore
import StreamTesting
import XCTest

/// The README's examples, compiled and run, so the documentation cannot drift from the API.
final class ReadmeExampleTests: XCTestCase {
    struct Txn: Sendable { let card: String; let amountCents: Int64; let ts: Int64 }

    final class CountPerCard: KeyedProcessFunction {
        typealias Key = String
        var count: ValueState<Int64>!

        func open(_ context: RuntimeContext) throws {
            count = try context.getState(ValueStateDescriptor<Int64>("count")
                .withTimeToLive(StateTtlConfig(ttl: .seconds(24 * 3600))))
        }

        func processElement(_ t: Txn, _ ctx: KeyedProcessContext<String>, _ out: Collector<String>) throws {
            let n = (count.value() ?? 0) + 1
            count.update(n)
            try out.collect("\(t.card): \(n)")
        }
    }

    func testJobExample() throws {
        let env = StreamExecutionEnvironment(parallelism: 4)
        let mySource = CollectionSource([Txn(card: "c1", amountCents: 1, ts: 10), Txn(card: "c2", amountCents: 2, ts: 20),
                                         Txn(card: "c1", amountCents: 3, ts: 30)])
        let sink = CollectSink<String>()
        env.fromSource(mySource,
                       watermarkStrategy: WatermarkStrategy<Txn>.forBoundedOutOfOrderness(.seconds(5))
                           .withTimestampAssigner { t, _ in t.ts }
                           .withIdleness(.minutes(1)),
                       name: "transactions")
            .keyBy { $0.card }
            .process(CountPerCard())
            .sinkTo(sink)
        let result = try env.execute("count-per-card")
        XCTAssertEqual(sink.values.sorted(), ["c1: 1", "c1: 2", "c2: 1"])
        XCTAssertEqual(result.operator("KeyedProcess")?.numRecordsIn, 3)
    }

    func testHarnessExample() throws {
        let harness = ProcessFunctionHarnesses.forKeyedProcessFunction(CountPerCard(), key: { $0.card })
        try harness.processElement(Txn(card: "c1", amountCents: 100, ts: 10), timestamp: 10)
        try harness.processWatermark(100)
        XCTAssertEqual(harness.records, ["c1: 1"])
        XCTAssertEqual(harness.leftover.stateEntries, ["count": 1])
        try harness.setProcessingTime(24 * 3_600_000)
        harness.keyed.backend.removeExpired()
        XCTAssertTrue(try harness.finish().isEmpty)
    }
}
