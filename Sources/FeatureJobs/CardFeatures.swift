import StreamCore

/// The on-arrival features of one transaction, as of that transaction (the views `txn_stats_5m`
/// and `txn_profile`; definitions in docs/features.md).
public struct CardFeatureRow: Sendable, Codable, Equatable {
    public var cardId: String
    public var txnId: String
    /// The transaction's event time (epoch ms): the rows' event timestamp.
    public var eventTime: Int64
    /// When the event was produced (the Kafka record's timestamp), for latency; 0 when unknown.
    public var ingestMillis: Int64
    /// When the job read the transaction (wall clock), for the job's own latency; 0 when unknown.
    public var readMillis: Int64 = 0
    public var count5m: Int64
    public var sum5m: Int64
    public var avg5m: Double
    public var geoMismatchRatio5m: Double
    public var count30m: Int64
    public var count24h: Int64
    public var sum24h: Int64
    public var avg24h: Double
    public var geoMismatchRatioLastN: Double
    public var deviceMismatchRatioLastN: Double
    public var secondsSinceLastTxn: Double?
    public var amountMinor: Int64

    public init(cardId: String, txnId: String, eventTime: Int64, ingestMillis: Int64, count5m: Int64, sum5m: Int64,
                avg5m: Double, geoMismatchRatio5m: Double, count30m: Int64, count24h: Int64, sum24h: Int64,
                avg24h: Double, geoMismatchRatioLastN: Double, deviceMismatchRatioLastN: Double,
                secondsSinceLastTxn: Double?, amountMinor: Int64) {
        self.cardId = cardId
        self.txnId = txnId
        self.eventTime = eventTime
        self.ingestMillis = ingestMillis
        self.count5m = count5m
        self.sum5m = sum5m
        self.avg5m = avg5m
        self.geoMismatchRatio5m = geoMismatchRatio5m
        self.count30m = count30m
        self.count24h = count24h
        self.sum24h = sum24h
        self.avg24h = avg24h
        self.geoMismatchRatioLastN = geoMismatchRatioLastN
        self.deviceMismatchRatioLastN = deviceMismatchRatioLastN
        self.secondsSinceLastTxn = secondsSinceLastTxn
        self.amountMinor = amountMinor
    }
}

/// A transaction as the job carries it: the decoded record and when it was produced.
public struct IngestedTransaction: Sendable, Codable {
    public var txn: Transaction
    public var ingestMillis: Int64
    public var readMillis: Int64
    public init(_ txn: Transaction, ingestMillis: Int64, readMillis: Int64 = 0) {
        self.txn = txn
        self.ingestMillis = ingestMillis
        self.readMillis = readMillis
    }
}

/// The card's recent history, enough for every feature of the next transaction.
///
/// - `times/amounts/geo`: transactions of the last 30 minutes before the newest event time
///   (exact; sorted by time), with running aggregates over the last 5 minutes from index `p5`.
/// - minute tiles (count, sum) for the last 1 440 minutes, running totals from `tileHead`.
/// - the last N transactions in arrival order (for the mismatch ratios), none older than 24 h.
public struct CardHistory: Sendable, Equatable {
    var newest = Int64.min
    var times: [Int64] = []
    var amounts: [Int64] = []
    var geo: [Bool] = []
    var head = 0
    var p5 = 0
    var count5: Int64 = 0
    var sum5: Int64 = 0
    var geo5: Int64 = 0
    var tileMinute: [Int64] = []
    var tileCount: [Int64] = []
    var tileSum: [Int64] = []
    var tileHead = 0
    var count24: Int64 = 0
    var sum24: Int64 = 0
    var recentTime: [Int64] = []
    var recentCountry: [String] = []
    var recentDevice: [String] = []
    var recentGeo: [Bool] = []
    var recentDevMismatch: [Bool] = []

    public init() {}

    static let minute: Int64 = 60_000
    static let fiveMinutes: Int64 = 300_000
    static let thirtyMinutes: Int64 = 1_800_000
    static let day: Int64 = 86_400_000

    @inline(__always) static func floorMinute(_ t: Int64) -> Int64 {
        let q = t / minute
        return (t % minute < 0 ? q - 1 : q)
    }

    /// Adds transaction `t` (arrival order) and returns its features if its event time is newer
    /// than every earlier one of the card (only those rows go online and to the log).
    mutating func add(_ t: Transaction, ingestMillis: Int64, lastN: Int) -> CardFeatureRow? {
        let ts = t.timestamp
        let previousNewest = newest
        // Mismatch flags against the card's previous transactions (arrival order, within 24 h).
        forgetRecent(before: max(newest, ts) &- Self.day)
        let geoFlag = recentCountry.last.map { $0 != t.country } ?? false
        let devFlag = !recentDevice.isEmpty && !recentDevice.contains(t.deviceId)
        recentTime.append(ts)
        recentCountry.append(t.country)
        recentDevice.append(t.deviceId)
        recentGeo.append(geoFlag)
        recentDevMismatch.append(devFlag)
        if recentTime.count > lastN {
            let extra = recentTime.count - lastN
            recentTime.removeFirst(extra); recentCountry.removeFirst(extra); recentDevice.removeFirst(extra)
            recentGeo.removeFirst(extra); recentDevMismatch.removeFirst(extra)
        }

        if ts > newest {
            advance(to: ts)
            times.append(ts); amounts.append(t.amountMinor); geo.append(geoFlag)
            count5 += 1; sum5 += t.amountMinor; geo5 += geoFlag ? 1 : 0
            addToTile(Self.floorMinute(ts), t.amountMinor)
        } else {
            // Out of order: counts for later rows; emits nothing (not newer than what is online).
            if ts >= newest &- Self.thirtyMinutes {
                var i = times.count
                while i > head, times[i - 1] > ts { i -= 1 }
                times.insert(ts, at: i); amounts.insert(t.amountMinor, at: i); geo.insert(geoFlag, at: i)
                if ts >= newest &- Self.fiveMinutes {
                    count5 += 1; sum5 += t.amountMinor; geo5 += geoFlag ? 1 : 0
                } else {
                    p5 += 1
                }
            }
            let m = Self.floorMinute(ts)
            if m > Self.floorMinute(newest) - 1_440 { addToTile(m, t.amountMinor) }
            return nil
        }

        let n = Double(recentTime.count)
        let geoN = Double(recentGeo.reduce(0) { $0 + ($1 ? 1 : 0) })
        let devN = Double(recentDevMismatch.reduce(0) { $0 + ($1 ? 1 : 0) })
        let since: Double? = previousNewest == Int64.min || ts &- previousNewest > Self.day
            ? nil : Double(ts &- previousNewest) / 1_000
        return CardFeatureRow(
            cardId: t.cardId, txnId: t.txnId, eventTime: ts, ingestMillis: ingestMillis,
            count5m: count5, sum5m: sum5, avg5m: Double(sum5) / Double(count5),
            geoMismatchRatio5m: Double(geo5) / Double(count5),
            count30m: Int64(times.count - head), count24h: count24, sum24h: sum24,
            avg24h: Double(sum24) / Double(count24),
            geoMismatchRatioLastN: geoN / n, deviceMismatchRatioLastN: devN / n,
            secondsSinceLastTxn: since, amountMinor: t.amountMinor)
    }

    /// Moves the windows to end at `ts` (newer than `newest`).
    private mutating func advance(to ts: Int64) {
        newest = ts
        // The 5-minute window first: everything leaving it is subtracted (the 30-minute one starts
        // at or before it).
        while p5 < times.count, times[p5] < ts &- Self.fiveMinutes {
            count5 -= 1; sum5 -= amounts[p5]; geo5 -= geo[p5] ? 1 : 0
            p5 += 1
        }
        while head < p5, times[head] < ts &- Self.thirtyMinutes { head += 1 }
        if head > 64, head * 2 > times.count {
            times.removeFirst(head); amounts.removeFirst(head); geo.removeFirst(head)
            p5 -= head
            head = 0
        }
        let first = Self.floorMinute(ts) - 1_439
        while tileHead < tileMinute.count, tileMinute[tileHead] < first {
            count24 -= tileCount[tileHead]; sum24 -= tileSum[tileHead]
            tileHead += 1
        }
        if tileHead > 64, tileHead * 2 > tileMinute.count {
            tileMinute.removeFirst(tileHead); tileCount.removeFirst(tileHead); tileSum.removeFirst(tileHead)
            tileHead = 0
        }
    }

    private mutating func addToTile(_ m: Int64, _ amount: Int64) {
        var i = tileMinute.count
        while i > tileHead, tileMinute[i - 1] > m { i -= 1 }
        if i > tileHead, tileMinute[i - 1] == m {
            tileCount[i - 1] += 1; tileSum[i - 1] += amount
        } else {
            tileMinute.insert(m, at: i); tileCount.insert(1, at: i); tileSum.insert(amount, at: i)
        }
        count24 += 1; sum24 += amount
    }

    private mutating func forgetRecent(before horizon: Int64) {
        var k = 0
        while k < recentTime.count, recentTime[k] < horizon { k += 1 }
        if k > 0 {
            recentTime.removeFirst(k); recentCountry.removeFirst(k); recentDevice.removeFirst(k)
            recentGeo.removeFirst(k); recentDevMismatch.removeFirst(k)
        }
    }

    /// Nothing here can affect a transaction at or after `t`.
    func isExpired(at t: Int64) -> Bool { newest == Int64.min || t > newest &+ Self.day }
}

/// txn-features' on-arrival card features (keyed by `card_id`): every transaction updates the
/// card's history; a transaction newer than all earlier ones of its card emits its row. An
/// event-time timer drops the history of a card idle for 24 hours (nothing in it could count any
/// more, so expiry never changes a result).
public final class CardFeaturesFunction: KeyedProcessFunction {
    public typealias Key = String
    let lastN: Int
    var history: ValueState<CardHistory>!

    public init(lastN: Int = 20) {
        precondition(lastN >= 1, "lastN must be at least 1")
        self.lastN = lastN
    }

    public func open(_ context: RuntimeContext) throws {
        history = try context.getState(ValueStateDescriptor<CardHistory>("card-history"))
    }

    public func processElement(_ value: IngestedTransaction, _ ctx: KeyedProcessContext<String>, _ out: Collector<CardFeatureRow>) throws {
        let lastN = self.lastN
        var (row, newest) = history.modify(initial: CardHistory()) { h in
            (h.add(value.txn, ingestMillis: value.ingestMillis, lastN: lastN), h.newest)
        }
        row?.readMillis = value.readMillis
        // One timer per card and minute: the first instant after which the history is useless.
        ctx.timerService.registerEventTimeTimer((CardHistory.floorMinute(newest) + 1) * CardHistory.minute + CardHistory.day)
        if let row { try out.collect(row) }
    }

    public func onTimer(_ timestamp: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<CardFeatureRow>) throws {
        if let h = history.value(), h.isExpired(at: timestamp) { history.clear() }
    }
}

/// Checkpoints encode the history as a few byte blobs (the checkpoint codec copies `[UInt8]` in
/// one piece), only the live part of each list.
extension CardHistory: Codable {
    enum CodingKeys: String, CodingKey { case newest, recent, times, amounts, geo, tiles, counts, sums, strings, flags }

    static func pack(_ v: ArraySlice<Int64>) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
    static func unpack(_ b: [UInt8]) -> [Int64] {
        let n = b.count / 8
        var out = [Int64](repeating: 0, count: n)
        out.withUnsafeMutableBytes { dst in b.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<(n * 8)])) } }
        return out
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(newest, forKey: .newest)
        try c.encode(Self.pack(times[head...]), forKey: .times)
        try c.encode(Self.pack(amounts[head...]), forKey: .amounts)
        try c.encode(geo[head...].map { $0 ? UInt8(1) : 0 }, forKey: .geo)
        try c.encode(Self.pack(tileMinute[tileHead...]), forKey: .tiles)
        try c.encode(Self.pack(tileCount[tileHead...]), forKey: .counts)
        try c.encode(Self.pack(tileSum[tileHead...]), forKey: .sums)
        try c.encode(Self.pack(recentTime[...]), forKey: .recent)
        try c.encode((recentCountry + recentDevice).joined(separator: "\u{1F}"), forKey: .strings)
        try c.encode(zip(recentGeo, recentDevMismatch).map { UInt8($0 ? 1 : 0) | UInt8($1 ? 2 : 0) }, forKey: .flags)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        newest = try c.decode(Int64.self, forKey: .newest)
        times = Self.unpack(try c.decode([UInt8].self, forKey: .times))
        amounts = Self.unpack(try c.decode([UInt8].self, forKey: .amounts))
        geo = try c.decode([UInt8].self, forKey: .geo).map { $0 != 0 }
        tileMinute = Self.unpack(try c.decode([UInt8].self, forKey: .tiles))
        tileCount = Self.unpack(try c.decode([UInt8].self, forKey: .counts))
        tileSum = Self.unpack(try c.decode([UInt8].self, forKey: .sums))
        recentTime = Self.unpack(try c.decode([UInt8].self, forKey: .recent))
        let strings = try c.decode(String.self, forKey: .strings)
        let parts = strings.isEmpty ? [] : strings.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
        let n = recentTime.count
        guard parts.count == 2 * n, times.count == amounts.count, times.count == geo.count,
              tileMinute.count == tileCount.count, tileMinute.count == tileSum.count else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "inconsistent card history"))
        }
        recentCountry = Array(parts[..<n])
        recentDevice = Array(parts[n...])
        let flags = try c.decode([UInt8].self, forKey: .flags)
        recentGeo = flags.map { $0 & 1 != 0 }
        recentDevMismatch = flags.map { $0 & 2 != 0 }
        // Running aggregates are derived: the 5-minute window and the day's tiles from the newest.
        head = 0
        tileHead = 0
        p5 = 0
        count5 = 0; sum5 = 0; geo5 = 0
        if newest != Int64.min {
            while p5 < times.count, times[p5] < newest &- Self.fiveMinutes { p5 += 1 }
            for i in p5..<times.count { count5 += 1; sum5 += amounts[i]; geo5 += geo[i] ? 1 : 0 }
        }
        count24 = tileCount.reduce(0, +)
        sum24 = tileSum.reduce(0, +)
    }
}
