import Contracts

/// Deterministic synthetic data for the feature jobs: transactions, clicks and device records in
/// the contracts' shapes. Record `i` of a stream depends only on the seed and `i` — not on how many
/// subtasks generate or in which order — so a seed names a data set.
///
/// Event time runs from `startMillis` at `eventsPerSecond` (the event-time rate, not how fast they
/// are produced); each record arrives `delay` after its event time: most within `maxDelayMillis`
/// (bounded out-of-orderness), a `lateShare` between `maxDelayMillis` and `lateMaxMillis` (late
/// for a watermark with the normal bound, within allowed lateness), a `tooLateShare` a day and
/// more (too late for every window). Records are emitted in arrival order (by index); the timestamp
/// field carries the event time.
public struct GeneratorConfig: Sendable, Equatable {
    public var seed: UInt64 = 42
    public var startMillis: Int64 = 1_767_225_600_000   // 2026-01-01T00:00:00Z
    public var eventsPerSecond: Double = 5_000
    public var cards = 100_000
    public var users = 50_000
    public var maxDelayMillis: Int64 = 5_000
    public var lateShare = 0.01
    public var lateMaxMillis: Int64 = 120_000
    public var tooLateShare = 0.001
    public var malformedShare = 0.0005
    /// Share of transactions written with `transactions.v2` (with a merchant id).
    public var v2Share = 0.5
    /// Share of transactions that are part of an injected fraud pattern.
    public var fraudShare = 0.01
    /// A distribution shift for drift checks: from record `shiftAfter` on, transaction amounts are
    /// multiplied by `amountShift` (1: no shift).
    public var amountShift = 1.0
    public var shiftAfter: Int64 = 0

    public init() {}
}

/// SplitMix64 finaliser: a well-mixed 64-bit value of `x`.
@inline(__always)
func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Uniform values drawn for one record: `u(k)` is the k-th, in [0, 1).
struct Draws {
    let base: UInt64
    init(seed: UInt64, stream: UInt64, index: Int64) {
        base = mix(seed ^ mix(stream &* 0x632B_E59B_D9B4_E019 ^ UInt64(bitPattern: index)))
    }
    @inline(__always) func raw(_ k: UInt64) -> UInt64 { mix(base &+ k &* 0xD1B5_4A32_D192_ED03) }
    @inline(__always) func u(_ k: UInt64) -> Double { Double(raw(k) >> 11) / Double(1 << 53) }
    @inline(__always) func int(_ k: UInt64, _ n: Int) -> Int { Int(raw(k) % UInt64(max(1, n))) }
}

/// Where a record arrives relative to its event time.
public enum Lateness: String, Sendable, Equatable {
    case onTime, late, tooLate
}

/// The fraud patterns injected into transactions, written with the data as ground truth.
public enum FraudPattern: String, Sendable, CaseIterable {
    /// Several transactions of one card within a minute.
    case burst
    /// Consecutive transactions of one card from countries far apart, minutes apart.
    case geoHopping = "geo_hopping"
    /// A device the card has never used.
    case newDevice = "new_device"
    /// An amount 20–60 times the card's usual.
    case unusualAmount = "unusual_amount"
}

/// A generated record: the Avro datum (and the schema id to write it with) or, for the
/// malformed share, raw bytes that are not a valid message.
public struct GeneratedRecord: Sendable {
    public var key: String
    public var value: AvroValue
    public var schemaId: Int32
    /// Bytes to send instead of the encoded value (a malformed record), with what is wrong.
    public var malformed: (bytes: [UInt8], kind: String)?
    public var eventTime: Int64
    public var arrivalTime: Int64
    public var lateness: Lateness
    public var fraud: FraudPattern?
    public var id: String
}

struct Country { let code: String; let lat: Double; let lon: Double }

let countries: [Country] = [
    Country(code: "DE", lat: 52.52, lon: 13.40), Country(code: "FR", lat: 48.86, lon: 2.35),
    Country(code: "GB", lat: 51.51, lon: -0.13), Country(code: "ES", lat: 40.42, lon: -3.70),
    Country(code: "IT", lat: 41.90, lon: 12.50), Country(code: "NL", lat: 52.37, lon: 4.90),
    Country(code: "PL", lat: 52.23, lon: 21.01), Country(code: "SE", lat: 59.33, lon: 18.07),
    Country(code: "US", lat: 40.71, lon: -74.01), Country(code: "BR", lat: -23.55, lon: -46.63),
    Country(code: "JP", lat: 35.68, lon: 139.69), Country(code: "AU", lat: -33.87, lon: 151.21),
]
let mccs: [Int32] = [5411, 5812, 5999, 4111, 5732, 5311, 7011, 4511, 5541, 5912]

/// The shared part of every stream: event time, arrival, lateness, malformed bytes.
struct Timeline {
    let config: GeneratorConfig

    func times(_ d: Draws, index: Int64) -> (event: Int64, arrival: Int64, lateness: Lateness) {
        let arrival = config.startMillis + Int64(Double(index) * 1_000 / config.eventsPerSecond)
        let r = d.u(1)
        let lateness: Lateness
        let delay: Int64
        if r < config.tooLateShare {
            lateness = .tooLate
            delay = 86_400_000 + Int64(d.u(2) * 3_600_000)
        } else if r < config.tooLateShare + config.lateShare {
            lateness = .late
            delay = config.maxDelayMillis + 1 + Int64(d.u(2) * Double(max(1, config.lateMaxMillis - config.maxDelayMillis)))
        } else {
            lateness = .onTime
            delay = Int64(d.u(2) * Double(config.maxDelayMillis + 1))
        }
        return (arrival - delay, arrival, lateness)
    }

    /// For the malformed share: bytes of one of four kinds (what the DLQ reasons name).
    func malformed(_ d: Draws, good: [UInt8]) -> (bytes: [UInt8], kind: String)? {
        guard d.u(3) < config.malformedShare else { return nil }
        switch d.int(4, 4) {
        case 0: return (Array(good.prefix(d.int(5, 5))), "TRUNCATED")
        case 1: var b = good; b[0] = UInt8(1 + d.int(5, 250)); return (b, "BAD_MAGIC")
        case 2: var b = good; b[1...4] = [0x7F, 0, 0, UInt8(d.int(5, 256))]; return (b, "UNKNOWN_SCHEMA")
        default: return (Array(good.prefix(5)) + (0..<(8 + d.int(5, 32))).map { UInt8(truncatingIfNeeded: d.raw(100 + UInt64($0))) }, "UNDECODABLE")
        }
    }
}

/// Transactions (`txn.events`, key `card_id`). Cards are skewed (a few hot ones), each has a home
/// country, a usual amount and one or two devices; fraud patterns take over blocks of 64 records.
public struct TransactionGenerator: Sendable {
    public let config: GeneratorConfig
    let timeline: Timeline
    static let stream: UInt64 = 1
    static let block: Int64 = 64

    public init(_ config: GeneratorConfig) {
        self.config = config
        timeline = Timeline(config: config)
    }

    /// A skewed card: index `n^3`-distributed, so the lowest card numbers are the hot ones.
    func card(_ u: Double) -> Int { min(config.cards - 1, Int(Double(config.cards) * u * u * u)) }

    /// Which fraud pattern, if any, block `b` of 64 records carries, and its card.
    func fraudBlock(_ b: Int64) -> (FraudPattern, Int)? {
        let d = Draws(seed: config.seed, stream: 99, index: b)
        // A block's first 8 records take part: fraudShare of all records means fraudShare*8 of blocks.
        guard d.u(0) < config.fraudShare * Double(Self.block) / 8 else { return nil }
        return (FraudPattern.allCases[d.int(1, FraudPattern.allCases.count)], config.cards + Int(b))
    }

    /// The card of record `i` and the fraud pattern it is part of, if any.
    func cardAndPattern(_ i: Int64, _ d: Draws) -> (Int, FraudPattern?) {
        if i % Self.block < 8, let (pattern, fraudCard) = fraudBlock(i / Self.block) {
            // Fraud cards are their own (numbers past `cards`), so patterns are not diluted.
            return (fraudCard, pattern)
        }
        return (card(d.u(10)), nil)
    }

    /// The Kafka key of record `i` (its card), without making the record.
    public func key(_ i: Int64) -> String {
        "card-\(cardAndPattern(i, Draws(seed: config.seed, stream: Self.stream, index: i)).0)"
    }

    public func record(_ i: Int64) -> GeneratedRecord {
        let d = Draws(seed: config.seed, stream: Self.stream, index: i)
        var (event, arrival, lateness) = timeline.times(d, index: i)
        let (cardNo, fraud) = cardAndPattern(i, d)
        let inBlock = i % Self.block
        if let pattern = fraud {
            if pattern == .burst || pattern == .geoHopping {
                // On time and close together: a burst within a minute, hops minutes apart.
                lateness = .onTime
                event = arrival - Int64(d.u(2) * 1_000)
            }
        }
        let home = countries[mix(UInt64(cardNo) ^ 7) % 8 == 0 ? 8 + Int(mix(UInt64(cardNo)) % 4) : Int(mix(UInt64(cardNo)) % 8)]
        var country = home
        var device = "dev-\(cardNo)-\(d.int(11, 2))"
        let usual = 500 + Int64(mix(UInt64(cardNo) ^ 3) % 20_000)
        var amount = max(1, Int64(Double(usual) * (0.2 + 1.6 * d.u(12)) * (i >= config.shiftAfter ? config.amountShift : 1)))
        switch fraud {
        case .geoHopping?: country = countries[(Int(inBlock) * 5 + Int(mix(UInt64(cardNo)) % 12)) % countries.count]
        case .newDevice?: device = "dev-new-\(config.seed)-\(i)"
        case .unusualAmount?: amount = usual * Int64(20 + d.int(13, 41))
        default: break
        }
        let v2 = d.u(14) < config.v2Share
        var fields: [AvroValue.Field] = [
            .init("txn_id", .string("t\(config.seed)-\(i)")),
            .init("card_id", .string("card-\(cardNo)")),
            .init("user_id", .string("user-\(cardNo % max(1, config.users))")),
            .init("amount_minor", .long(amount)),
            .init("currency", .string(country.code == "US" ? "USD" : "EUR")),
            .init("mcc", .int(mccs[d.int(15, mccs.count)])),
            .init("device_id", .string(device)),
            .init("ip", .string("10.\(cardNo % 256).\(d.int(16, 256)).\(d.int(17, 256))")),
            .init("geo", .record([.init("lat", .double(country.lat + (d.u(18) - 0.5) / 10)),
                                  .init("lon", .double(country.lon + (d.u(19) - 0.5) / 10)),
                                  .init("country", .string(country.code))])),
            .init("timestamp", .long(event)),
        ]
        if v2 { fields.append(.init("merchant_id", .string("m-\(d.int(20, 5_000))"))) }
        return GeneratedRecord(key: "card-\(cardNo)", value: .record(fields), schemaId: v2 ? 2 : 1, malformed: nil,
                               eventTime: event, arrivalTime: arrival, lateness: lateness, fraud: fraud,
                               id: "t\(config.seed)-\(i)")
    }
}

/// Clicks (`click.events`, key `user_id`): users browse in sessions (a new session after a pause
/// longer than 30 minutes of the user's own event time is up to the consumer to find).
public struct ClickGenerator: Sendable {
    public let config: GeneratorConfig
    let timeline: Timeline

    public init(_ config: GeneratorConfig) {
        self.config = config
        timeline = Timeline(config: config)
    }

    /// Whether a user is a buyer: a fifth of users, more of them among the most active.
    public func isBuyer(_ user: Int) -> Bool {
        let rank = Double(user) / Double(max(1, config.users))
        return Double(mix(UInt64(user) ^ 0xB0B) % 1_000) / 1_000 < 0.35 - 0.3 * rank
    }

    /// A buyer's click is a purchase with probability 0.12, anyone else's with 0.01; the rest are
    /// views, clicks and add-to-carts (labels for a purchase-propensity model: `--click-labels`).
    func action(user: Int, _ d: Draws) -> String {
        if d.u(21) < (isBuyer(user) ? 0.12 : 0.01) { return "PURCHASE" }
        return Self.browsing[d.int(12, Self.browsing.count)]
    }
    static let browsing = ["VIEW", "VIEW", "VIEW", "CLICK", "CLICK", "ADD_TO_CART"]

    func user(_ d: Draws) -> Int {
        let u = d.u(10)
        return min(config.users - 1, Int(Double(config.users) * u * u))
    }

    /// The Kafka key of record `i` (its user), without making the record.
    public func key(_ i: Int64) -> String { "user-\(user(Draws(seed: config.seed, stream: 2, index: i)))" }

    public func record(_ i: Int64) -> GeneratedRecord {
        let d = Draws(seed: config.seed, stream: 2, index: i)
        let (event, arrival, lateness) = timeline.times(d, index: i)
        let user = user(d)
        let fields: [AvroValue.Field] = [
            .init("event_id", .string("c\(config.seed)-\(i)")),
            .init("user_id", .string("user-\(user)")),
            .init("session_hint", .null),
            .init("page", .string("/item/\(d.int(11, 2_000))")),
            .init("action", .enumSymbol(action(user: user, d))),
            .init("device_id", .string("dev-\(user)-\(d.int(13, 2))")),
            .init("timestamp", .long(event)),
        ]
        return GeneratedRecord(key: "user-\(user)", value: .record(fields), schemaId: 3, malformed: nil,
                               eventTime: event, arrivalTime: arrival, lateness: lateness, fraud: nil, id: "c\(config.seed)-\(i)")
    }
}

/// Device records (`device.enrich`, key `device_id`): the devices the transactions use, re-announced.
public struct DeviceGenerator: Sendable {
    public let config: GeneratorConfig
    let timeline: Timeline
    static let oses = ["android", "ios", "windows", "macos", "linux"]

    public init(_ config: GeneratorConfig) {
        self.config = config
        timeline = Timeline(config: config)
    }

    func device(_ d: Draws) -> (card: Int, device: String) {
        let u = d.u(10)
        let cardNo = min(config.cards - 1, Int(Double(config.cards) * u * u * u))
        return (cardNo, "dev-\(cardNo)-\(d.int(11, 2))")
    }

    /// The Kafka key of record `i` (its device), without making the record.
    public func key(_ i: Int64) -> String { device(Draws(seed: config.seed, stream: 3, index: i)).device }

    public func record(_ i: Int64) -> GeneratedRecord {
        let d = Draws(seed: config.seed, stream: 3, index: i)
        let (event, arrival, lateness) = timeline.times(d, index: i)
        let (cardNo, device) = device(d)
        let country = countries[Int(mix(UInt64(cardNo)) % 8)]
        let fields: [AvroValue.Field] = [
            .init("device_id", .string(device)),
            .init("user_id", .string("user-\(cardNo % max(1, config.users))")),
            .init("os", .string(Self.oses[Int(mix(UInt64(cardNo) ^ 11) % 5)])),
            .init("fingerprint", .string(String(mix(UInt64(cardNo) ^ 13), radix: 16))),
            .init("first_seen", .long(config.startMillis - Int64(mix(UInt64(cardNo)) % 31_536_000_000))),
            .init("geo", .record([.init("lat", .double(country.lat)), .init("lon", .double(country.lon)),
                                  .init("country", .string(country.code))])),
            .init("timestamp", .long(event)),
        ]
        return GeneratedRecord(key: device, value: .record(fields), schemaId: 4, malformed: nil,
                               eventTime: event, arrivalTime: arrival, lateness: lateness, fraud: nil, id: "d\(config.seed)-\(i)")
    }
}

extension GeneratedRecord {
    /// The bytes to send: the datum encoded with its schema id, or the malformed bytes chosen for
    /// this record (`config.malformedShare`).
    public mutating func encode(with codec: ConfluentAvroCodec, config: GeneratorConfig, index: Int64, stream: UInt64) throws -> [UInt8] {
        let good = try codec.encode(value, schemaId: schemaId)
        let d = Draws(seed: config.seed, stream: stream &+ 1_000, index: index)
        if let bad = Timeline(config: config).malformed(d, good: good) {
            malformed = bad
            return bad.bytes
        }
        return good
    }
}
