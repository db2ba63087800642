@testable import FeatureJobs
import Foundation
import Kafka
import Operators
import StreamCore
import StreamTesting
import XCTest

/// Each feature of docs/features.md on hand-made sequences, through the operator harness.
final class CardFeatureDefinitionTests: XCTestCase {
    let minute: Int64 = 60_000
    let t0: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z

    func txn(_ i: Int, card: String = "c1", at t: Int64, amount: Int64 = 100, country: String = "DE",
             device: String = "d1") -> IngestedTransaction {
        IngestedTransaction(Transaction(txnId: "t\(i)", cardId: card, amountMinor: amount, deviceId: device,
                                        country: country, timestamp: t), ingestMillis: 0)
    }

    func harness(lastN: Int = 20) throws -> KeyedOneInputOperatorHarness<String, KeyedProcessOperator<CardFeaturesFunction>> {
        let h = ProcessFunctionHarnesses.forKeyedProcessFunction(CardFeaturesFunction(lastN: lastN), key: { $0.txn.cardId })
        try h.open()
        return h
    }

    func feed(_ h: KeyedOneInputOperatorHarness<String, KeyedProcessOperator<CardFeaturesFunction>>,
              _ txns: [IngestedTransaction]) throws -> [CardFeatureRow] {
        for t in txns { try h.processElement(t, timestamp: t.txn.timestamp) }
        return h.records
    }

    /// count_5m / sum_5m / avg_5m over [t − 5 min, t], both ends included, the transaction itself counted.
    func testFiveMinuteWindowIncludesBothEnds() throws {
        let rows = try feed(try harness(), [
            txn(0, at: t0, amount: 100),
            txn(1, at: t0 + 2 * minute, amount: 300),
            txn(2, at: t0 + 5 * minute, amount: 500),       // t0 is exactly 5 min before: still in
            txn(3, at: t0 + 5 * minute + 1, amount: 700),   // t0 has left
        ])
        XCTAssertEqual(rows.map(\.count5m), [1, 2, 3, 3])
        XCTAssertEqual(rows.map(\.sum5m), [100, 400, 900, 1_500])
        XCTAssertEqual(rows.map(\.avg5m), [100, 200, 300, 500])
        XCTAssertEqual(rows.map(\.amountMinor), [100, 300, 500, 700])
    }

    /// count_30m is exact over [t − 30 min, t]; count_24h / sum_24h / avg_24h over the 1 440 minutes
    /// ending with the transaction's minute (minute tiles).
    func testThirtyMinutesAndDay() throws {
        let rows = try feed(try harness(), [
            txn(0, at: t0 + 30_000, amount: 10),                       // minute 0
            txn(1, at: t0 + 30 * minute + 30_000, amount: 20),          // exactly 30 min later: both in 30m
            txn(2, at: t0 + 30 * minute + 30_001, amount: 30),          // t0+30s has left 30m
            txn(3, at: t0 + 1_439 * minute + 59_999, amount: 40),       // minute 1439: minute 0 still in the day
            txn(4, at: t0 + 1_440 * minute, amount: 50),                // minute 1440: minute 0 has left
        ])
        XCTAssertEqual(rows.map(\.count30m), [1, 2, 2, 1, 2])
        XCTAssertEqual(rows.map(\.count24h), [1, 2, 3, 4, 4])
        XCTAssertEqual(rows.map(\.sum24h), [10, 30, 60, 100, 140])
        XCTAssertEqual(rows.last!.avg24h, 35)
    }

    /// Geo mismatch: the country differs from the card's previous transaction's; the ratio over
    /// the last N (this one included) and over the 5-minute window.
    func testGeoMismatchRatios() throws {
        let rows = try feed(try harness(lastN: 3), [
            txn(0, at: t0, country: "DE"),
            txn(1, at: t0 + 1_000, country: "FR"),   // mismatch
            txn(2, at: t0 + 2_000, country: "FR"),
            txn(3, at: t0 + 3_000, country: "US"),   // mismatch
            txn(4, at: t0 + 6 * minute, country: "US"),
        ])
        XCTAssertEqual(rows.map(\.geoMismatchRatioLastN), [0, 0.5, 1.0 / 3, 2.0 / 3, 1.0 / 3])
        XCTAssertEqual(rows.map(\.geoMismatchRatio5m), [0, 0.5, 1.0 / 3, 0.5, 0])
    }

    /// Device mismatch: the device is none of the card's previous N transactions' devices.
    func testDeviceMismatchRatio() throws {
        let rows = try feed(try harness(lastN: 2), [
            txn(0, at: t0, device: "a"),          // nothing to compare: 0
            txn(1, at: t0 + 1, device: "b"),      // new
            txn(2, at: t0 + 2, device: "a"),      // seen in the last 2
            txn(3, at: t0 + 3, device: "c"),      // new
            txn(4, at: t0 + 4, device: "b"),      // last 2 before it: a, c → new
        ])
        XCTAssertEqual(rows.map(\.deviceMismatchRatioLastN), [0, 0.5, 0.5, 0.5, 1])
    }

    /// Seconds since the card's previous (newest earlier) transaction; null for the first and after 24 h.
    func testSecondsSinceLastTransaction() throws {
        let rows = try feed(try harness(), [
            txn(0, at: t0),
            txn(1, at: t0 + 1_500),
            txn(2, at: t0 + 1_500 + 86_400_000),       // exactly 24 h later: still counted
            txn(3, at: t0 + 1_501 + 2 * 86_400_000),   // more than 24 h: null
        ])
        XCTAssertEqual(rows.map(\.secondsSinceLastTxn), [nil, 1.5, 86_400, nil])
    }

    /// Out of order: a transaction older than the card's newest updates the aggregates of later rows
    /// but emits no row (Redis keeps the newest event time; the log holds exactly what is online).
    func testOutOfOrderCountsButDoesNotEmit() throws {
        let rows = try feed(try harness(), [
            txn(0, at: t0 + 10_000, amount: 100),
            txn(1, at: t0 + 5_000, amount: 50),     // older: no row
            txn(2, at: t0 + 10_000, amount: 70),    // same time as the newest: no row
            txn(3, at: t0 + 20_000, amount: 30),
        ])
        XCTAssertEqual(rows.map(\.txnId), ["t0", "t3"])
        XCTAssertEqual(rows[1].count5m, 4)
        XCTAssertEqual(rows[1].sum5m, 250)
        XCTAssertEqual(rows[1].secondsSinceLastTxn, 10)
    }

    /// Keys do not mix; an idle card's history is dropped by its timer, and that changes no result.
    func testCardsAreSeparateAndIdleHistoryExpires() throws {
        let h = try harness()
        var rows = try feed(h, [txn(0, card: "a", at: t0), txn(1, card: "b", at: t0 + 1), txn(2, card: "a", at: t0 + 2)])
        XCTAssertEqual(rows.map(\.count5m), [1, 1, 2])
        try h.processWatermark(t0 + 2 * 86_400_000)
        XCTAssertEqual(try h.finish().stateEntries.values.reduce(0, +), 0, "both cards' history expired")
        let h2 = try harness()
        rows = try feed(h2, [txn(0, card: "a", at: t0), txn(1, card: "a", at: t0 + 86_400_001)])
        XCTAssertEqual(rows.last!.count24h, 1)
        XCTAssertNil(rows.last!.secondsSinceLastTxn)
    }

    /// A hot card: 3 000 transactions (bursts, pauses, out-of-order arrivals), each row computed incrementally, equal to a brute-force
    /// recount over the exact definitions.
    func testIncrementalEqualsBruteForce() throws {
        var rng = SeededRandom(seed: 7)
        var txns: [IngestedTransaction] = []
        var t = t0
        for i in 0..<3_000 {
            t += Int64.random(in: 0...50, using: &rng) == 0 ? Int64.random(in: 0...3_600_000, using: &rng) : Int64.random(in: 0...2_000, using: &rng)
            let jitter = Int64.random(in: 0...10, using: &rng) == 0 ? -Int64.random(in: 0...600_000, using: &rng) : 0
            txns.append(txn(i, at: t + jitter, amount: Int64.random(in: 1...1_000, using: &rng),
                            country: ["DE", "FR"][Int.random(in: 0...1, using: &rng)],
                            device: "d\(Int.random(in: 0...3, using: &rng))"))
        }
        let rows = try feed(try harness(), txns)
        // Brute force over everything seen before each emitted row.
        var seen: [Transaction] = []
        var byId: [String: CardFeatureRow] = [:]
        for r in rows { byId[r.txnId] = r }
        var newest = Int64.min
        for x in txns {
            seen.append(x.txn)
            let ts = x.txn.timestamp
            defer { newest = max(newest, ts) }
            guard ts > newest else { XCTAssertNil(byId[x.txn.txnId]); continue }
            let r = try XCTUnwrap(byId[x.txn.txnId])
            let in5 = seen.filter { $0.timestamp >= ts - 300_000 && $0.timestamp <= ts }
            let in30 = seen.filter { $0.timestamp >= ts - 1_800_000 && $0.timestamp <= ts }
            let m = (ts / 60_000) * 60_000
            let inDay = seen.filter { $0.timestamp >= m - 1_439 * 60_000 && $0.timestamp <= ts }
            XCTAssertEqual(r.count5m, Int64(in5.count))
            XCTAssertEqual(r.sum5m, in5.reduce(0) { $0 + $1.amountMinor })
            XCTAssertEqual(r.count30m, Int64(in30.count))
            XCTAssertEqual(r.count24h, Int64(inDay.count))
            XCTAssertEqual(r.sum24h, inDay.reduce(0) { $0 + $1.amountMinor })
            if newest != Int64.min { XCTAssertEqual(r.secondsSinceLastTxn, Double(ts - newest) / 1000) }
        }
        XCTAssertGreaterThan(rows.count, 2_000)
    }
}

final class SessionFeatureDefinitionTests: XCTestCase {
    let minute: Int64 = 60_000
    let t0: Int64 = 1_767_225_600_000

    func click(_ i: Int, user: String = "u1", at t: Int64, page: String = "/item/1") -> IngestedClick {
        IngestedClick(Click(eventId: "c\(i)", userId: user, page: page, timestamp: t), ingestMillis: 0)
    }

    /// Session so far: a gap of more than 30 minutes starts a new session; dwell = last − first
    /// click; distinct items; clicks of the last hour across sessions.
    func testSessionSoFar() throws {
        let h = ProcessFunctionHarnesses.forKeyedProcessFunction(SessionLiveFunction(), key: { $0.click.userId })
        try h.open()
        let clicks = [
            click(0, at: t0, page: "/item/1"),
            click(1, at: t0 + 10_000, page: "/item/2"),
            click(2, at: t0 + 20_000, page: "/home"),
            click(3, at: t0 + 20_000 + 30 * minute, page: "/item/1"),       // exactly the gap: same session
            click(4, at: t0 + 20_001 + 60 * minute, page: "/item/3"),       // more than the gap: new session
        ]
        for c in clicks { try h.processElement(c, timestamp: c.click.timestamp) }
        let rows = h.records
        XCTAssertEqual(rows.map(\.sessionClicks), [1, 2, 3, 4, 1])
        XCTAssertEqual(rows.map(\.sessionDwellSeconds), [0, 10, 20, 1_820, 0])
        XCTAssertEqual(rows.map(\.sessionDistinctItems), [1, 2, 2, 2, 1])
        XCTAssertEqual(rows.map(\.clicks1h), [1, 2, 3, 4, 2])
    }

    /// Closed sessions: Flink's session windows (gap 30 min), fired by the watermark: pages, dwell,
    /// dwell per page, distinct items; the row's event time is the window's max timestamp.
    func testClosedSessionRows() throws {
        let times: [Int64] = [t0, t0 + 10_000, t0 + 40_000, t0 + 40_000 + 31 * minute, t0 + 100 * minute]
        let pages = ["/item/1", "/item/1", "/cart", "/item/9", "/item/2"]
        let clicks = zip(times, pages).enumerated().map { i, tp in
            Sourced(value: Click(eventId: "c\(i)", userId: i == 4 ? "u2" : "u1", page: tp.1, timestamp: tp.0),
                    origin: RecordOrigin(topic: "click.events", partition: 0, offset: Int64(i)), key: nil, bytes: nil, timestamp: 0)
        }
        let env = StreamExecutionEnvironment(parallelism: 1)
        let out = CollectSink<SessionRow>()
        env.fromData(clicks, timestamps: times)
            .assignTimestampsAndWatermarks(WatermarkStrategy<Sourced<Click>>.forMonotonousTimestamps())
            .keyBy { $0.value.userId }
            .window(EventTimeSessionWindows.withGap(.minutes(30)))
            .aggregate(SessionAggregate(), SessionRowFunction())
            .sinkTo(out)
        try env.execute("sessions")
        let rows = out.values.sorted { ($0.userId, $0.sessionStart) < ($1.userId, $1.sessionStart) }
        XCTAssertEqual(rows, [
            SessionRow(userId: "u1", eventTime: t0 + 40_000 + 30 * minute - 1, sessionStart: t0, pages: 3,
                       dwellSeconds: 40, dwellPerPageSeconds: 40.0 / 3, distinctItems: 1),
            SessionRow(userId: "u1", eventTime: t0 + 40_000 + 61 * minute - 1, sessionStart: t0 + 40_000 + 31 * minute,
                       pages: 1, dwellSeconds: 0, dwellPerPageSeconds: 0, distinctItems: 1),
            SessionRow(userId: "u2", eventTime: t0 + 130 * minute - 1, sessionStart: t0 + 100 * minute, pages: 1,
                       dwellSeconds: 0, dwellPerPageSeconds: 0, distinctItems: 1),
        ])
    }
}

final class OfflineBucketTests: XCTestCase {
    /// `<view>/date=YYYY-MM-DD/hour=HH` in UTC, against Foundation's calendar, across the epoch and
    /// far from it (seeded random instants and the hour boundaries around them).
    func testBucketMatchesTheUTCCalendar() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var rng = SeededRandom(seed: 7)
        for i in 0..<5_000 {
            let hour = Int64(rng.next() % 2_000_000) - 1_000_000   // ± 114 years around 1970
            let millis = hour * 3_600_000 + [0, 1, 3_599_999][i % 3]
            let c = calendar.dateComponents([.year, .month, .day, .hour], from: Date(timeIntervalSince1970: Double(millis) / 1000))
            let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
            let view = FeatureView.allCases[i % FeatureView.allCases.count]
            XCTAssertEqual(OfflineRow.bucket(view, millis),
                           "\(view.rawValue)/date=\(c.year!)-\(two(c.month!))-\(two(c.day!))/hour=\(two(c.hour!))", "at \(millis)")
        }
        XCTAssertEqual(OfflineRow.bucket(.txnWindow30m, 1_767_225_600_000 - 1), "txn_window_30m/date=2025-12-31/hour=23")
    }

    /// The file sink's bucket key is equal for two rows exactly when their buckets are.
    func testBucketKeyIsEqualExactlyWhenTheBucketIs() {
        var rng = SeededRandom(seed: 11)
        var byKey: [Int: String] = [:], byBucket: [String: Int] = [:]
        for i in 0..<20_000 {
            let millis = Int64(rng.next() % 400) * 1_800_000 - 100 * 3_600_000 + Int64(rng.next() % 3_600_000)
            let row = OfflineRow(FeatureView.allCases[i % FeatureView.allCases.count], entity: "c", eventTime: millis) { _ in }
            XCTAssertEqual(byKey[row.bucketKey, default: row.bucket], row.bucket, "key \(row.bucketKey) at \(millis)")
            XCTAssertEqual(byBucket[row.bucket, default: row.bucketKey], row.bucketKey, "bucket \(row.bucket)")
            byKey[row.bucketKey] = row.bucket
            byBucket[row.bucket] = row.bucketKey
        }
        XCTAssertGreaterThan(byKey.count, 1_000)
    }
}
