import Contracts
import Foundation
import Generators
import XCTest

/// The synthetic data: deterministic for a seed, with the configured shares of late, too-late,
/// malformed, v2 and fraud records, skewed cards, and fraud patterns that look like what they are
/// called.
final class GeneratorTests: XCTestCase {
    static let schemas = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("schemas").path
    let n: Int64 = 200_000

    func registry() throws -> ContractRegistry { try ContractRegistry(file: Self.schemas + "/registry.json") }

    /// Kafka's own murmur2 vectors (Kafka's UtilsTest), so records land where Kafka's default
    /// partitioner puts them; and `key(i)` is the key of `record(i)`.
    func testKafkaPartitionerAndKeys() {
        let vectors: [(String, Int32)] = [("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
                                          ("a-little-bit-longer-string", -1_486_304_829),
                                          ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971), ("abc", 479_470_107)]
        for (s, h) in vectors { XCTAssertEqual(KafkaPartitioner.murmur2(Array(s.utf8)), h, s) }
        XCTAssertEqual(KafkaPartitioner.partition(Array("21".utf8), partitions: 12), Int32((Int64(-973_932_308) & 0x7fff_ffff) % 12))
        var c = GeneratorConfig()
        c.fraudShare = 0.2
        let t = TransactionGenerator(c), k = ClickGenerator(c), d = DeviceGenerator(c)
        for i in Int64(0)..<2_000 {
            XCTAssertEqual(t.key(i), t.record(i).key)
            XCTAssertEqual(k.key(i), k.record(i).key)
            XCTAssertEqual(d.key(i), d.record(i).key)
        }
    }

    /// Purchases come mostly from buyers (a learnable signal); `amountShift` scales amounts from
    /// `shiftAfter` on and changes nothing before.
    func testPurchasePropensityAndAmountShift() {
        var c = GeneratorConfig()
        c.fraudShare = 0
        let clicks = ClickGenerator(c)
        var buyer = (n: 0, p: 0), other = (n: 0, p: 0)
        for i in Int64(0)..<50_000 {
            let r = clicks.record(i)
            let user = Int(r.key.dropFirst(5))!
            let purchase = r.value["action"] == .enumSymbol("PURCHASE")
            if clicks.isBuyer(user) { buyer.n += 1; buyer.p += purchase ? 1 : 0 } else { other.n += 1; other.p += purchase ? 1 : 0 }
        }
        XCTAssertEqual(Double(buyer.p) / Double(buyer.n), 0.12, accuracy: 0.02)
        XCTAssertEqual(Double(other.p) / Double(other.n), 0.01, accuracy: 0.005)
        var shifted = c
        shifted.amountShift = 3
        shifted.shiftAfter = 1_000
        let a = TransactionGenerator(c), b = TransactionGenerator(shifted)
        for i in Int64(0)..<2_000 {
            let x = a.record(i).value["amount_minor"]!.longValue!, y = b.record(i).value["amount_minor"]!.longValue!
            if i < 1_000 { XCTAssertEqual(x, y) } else { XCTAssertEqual(Double(y), Double(x) * 3, accuracy: 3) }
        }
    }

    func testASeedNamesADataSet() {
        var config = GeneratorConfig()
        let a = TransactionGenerator(config), b = TransactionGenerator(config)
        for i in [0, 1, 63, 64, 12_345, 999_999] as [Int64] {
            XCTAssertEqual(a.record(i).value, b.record(i).value)
            XCTAssertEqual(ClickGenerator(config).record(i).value, ClickGenerator(config).record(i).value)
            XCTAssertEqual(DeviceGenerator(config).record(i).value, DeviceGenerator(config).record(i).value)
        }
        config.seed = 43
        XCTAssertNotEqual(TransactionGenerator(config).record(5).value, a.record(5).value)
    }

    func testSharesAndLateness() throws {
        let config = GeneratorConfig()
        let g = TransactionGenerator(config)
        var late = 0, tooLate = 0, v2 = 0, fraud = 0
        for i in 0..<n {
            let r = g.record(i)
            let delay = r.arrivalTime - r.eventTime
            switch r.lateness {
            case .onTime: XCTAssertTrue((0...config.maxDelayMillis).contains(delay), "on time with delay \(delay)")
            case .late: late += 1; XCTAssertTrue(delay > config.maxDelayMillis && delay <= config.lateMaxMillis, "late with delay \(delay)")
            case .tooLate: tooLate += 1; XCTAssertGreaterThanOrEqual(delay, 86_400_000)
            }
            if r.schemaId == 2 { v2 += 1 }
            if r.fraud != nil { fraud += 1 }
            XCTAssertEqual(r.arrivalTime, config.startMillis + i * 1_000 / Int64(config.eventsPerSecond))
        }
        func share(_ k: Int) -> Double { Double(k) / Double(n) }
        XCTAssertEqual(share(late), config.lateShare, accuracy: 0.002)
        XCTAssertEqual(share(tooLate), config.tooLateShare, accuracy: 0.0005)
        XCTAssertEqual(share(v2), config.v2Share, accuracy: 0.01)
        XCTAssertEqual(share(fraud), config.fraudShare, accuracy: 0.004)
    }

    func testHotCards() {
        let config = GeneratorConfig()
        let g = TransactionGenerator(config)
        var perCard: [String: Int] = [:]
        for i in 0..<n { perCard[g.record(i).key, default: 0] += 1 }
        let sorted = perCard.values.sorted(by: >)
        let top = sorted.prefix(config.cards / 100).reduce(0, +)
        XCTAssertGreaterThan(Double(top) / Double(n), 0.15, "the hottest 1% of cards carry a large share")
    }

    func testFraudPatternsLookLikeTheirNames() {
        let g = TransactionGenerator(GeneratorConfig())
        var blocks: [String: [GeneratedRecord]] = [:]
        for i in 0..<n {
            let r = g.record(i)
            if r.fraud != nil { blocks[r.key, default: []].append(r) }
        }
        XCTAssertGreaterThan(blocks.count, 100)
        var seen = Set<FraudPattern>()
        for (card, records) in blocks {
            let pattern = records[0].fraud!
            seen.insert(pattern)
            XCTAssertEqual(records.count, 8, card)
            XCTAssertTrue(records.allSatisfy { $0.fraud == pattern })
            switch pattern {
            case .burst:
                let times = records.map(\.eventTime)
                XCTAssertLessThan(times.max()! - times.min()!, 60_000, "a burst within a minute")
            case .geoHopping:
                let countries = Set(records.compactMap { $0.value["geo"]?["country"]?.stringValue })
                XCTAssertGreaterThanOrEqual(countries.count, 3, "hops between countries")
            case .newDevice:
                for r in records { XCTAssertTrue(r.value["device_id"]!.stringValue!.hasPrefix("dev-new-")) }
            case .unusualAmount:
                for r in records { XCTAssertGreaterThanOrEqual(r.value["amount_minor"]!.longValue!, 20 * 500) }
            }
        }
        XCTAssertEqual(seen, Set(FraudPattern.allCases))
    }

    /// Every record encodes with its contract and decodes with the v1 reader; the malformed share
    /// fails with the DLQ reason it was made for.
    func testEncodedRecordsAndMalformedOnes() throws {
        let reg = try registry()
        var config = GeneratorConfig()
        config.malformedShare = 0.05
        let writer = try ConfluentAvroCodec(registry: reg, reader: reg.byId[1]!)
        let readers: [UInt64: ConfluentAvroCodec] = [1: try ConfluentAvroCodec(registry: reg, reader: reg.byId[1]!),
                                                    2: try ConfluentAvroCodec(registry: reg, reader: reg.byId[3]!),
                                                    3: try ConfluentAvroCodec(registry: reg, reader: reg.byId[4]!)]
        var malformed = 0
        for stream in [1, 2, 3] as [UInt64] {
            for i in 0..<20_000 as Range<Int64> {
                var r = stream == 1 ? TransactionGenerator(config).record(i) : stream == 2 ? ClickGenerator(config).record(i) : DeviceGenerator(config).record(i)
                let bytes = try r.encode(with: writer, config: config, index: i, stream: stream)
                do {
                    let v = try readers[stream]!.decode(bytes)
                    XCTAssertNil(r.malformed, "malformed record \(i) decoded")
                    XCTAssertEqual(v["timestamp"], .long(r.eventTime))
                } catch {
                    let m = try XCTUnwrap(r.malformed, "record \(i) of stream \(stream) does not decode: \(error)")
                    XCTAssertEqual(error.reason, m.kind)
                    malformed += 1
                }
            }
        }
        XCTAssertEqual(Double(malformed) / 60_000, 0.05, accuracy: 0.006)
    }
}
