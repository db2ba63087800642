import Foundation
import Connectors
import Contracts

/// The feature views the jobs write (docs/features.md): their entity, features and Avro types.
public enum FeatureView: String, CaseIterable, Sendable, Codable {
    case txnStats5m = "txn_stats_5m"
    case txnProfile = "txn_profile"
    case txnDevice = "txn_device"
    case txnWindow5m = "txn_window_5m"
    case txnWindow30m = "txn_window_30m"
    case userSessionLive = "user_session_live"
    case userLastSession = "user_last_session"

    public var entity: String {
        switch self {
        case .txnStats5m, .txnProfile, .txnDevice, .txnWindow5m, .txnWindow30m: "card_id"
        case .userSessionLive, .userLastSession: "user_id"
        }
    }

    /// Whether the view is served online (Redis) as well as logged.
    public var isOnline: Bool { self != .txnWindow5m && self != .txnWindow30m }

    /// A number of its own, 0..<8 (`OfflineRow.bucketKey` multiplies the hour by 8).
    var ordinal: Int {
        switch self {
        case .txnStats5m: 0
        case .txnProfile: 1
        case .txnDevice: 2
        case .txnWindow5m: 3
        case .txnWindow30m: 4
        case .userSessionLive: 5
        case .userLastSession: 6
        }
    }

    /// The features after the entity and `event_timestamp`, with their Avro types.
    public var features: [(name: String, avro: String)] {
        switch self {
        case .txnStats5m:
            [("count_5m", #""long""#), ("sum_5m", #""long""#), ("avg_5m", #""double""#), ("geo_mismatch_ratio_5m", #""double""#)]
        case .txnProfile:
            [("count_30m", #""long""#), ("count_24h", #""long""#), ("sum_24h", #""long""#), ("avg_24h", #""double""#),
             ("geo_mismatch_ratio_last_n", #""double""#), ("device_mismatch_ratio_last_n", #""double""#),
             ("seconds_since_last_txn", #"["null", "double"]"#), ("amount_minor", #""long""#)]
        case .txnDevice:
            [("device_os", #""string""#), ("device_age_days", #""double""#), ("device_country_mismatch", #""long""#)]
        case .txnWindow5m, .txnWindow30m:
            [("window_start", #"{"type": "long", "logicalType": "timestamp-millis"}"#), ("count", #""long""#), ("sum", #""long""#), ("avg", #""double""#)]
        case .userSessionLive:
            [("session_clicks", #""long""#), ("session_dwell_seconds", #""double""#), ("session_distinct_items", #""long""#), ("clicks_1h", #""long""#)]
        case .userLastSession:
            [("last_session_pages", #""long""#), ("last_session_dwell_seconds", #""double""#),
             ("last_session_dwell_per_page_seconds", #""double""#), ("last_session_distinct_items", #""long""#)]
        }
    }

    /// The Avro schema of the view's offline log rows.
    public var schemaJSON: String {
        let fields = [#"{"name": "\#(entity)", "type": "string"}"#,
                      #"{"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}}"#]
            + features.map { #"{"name": "\#($0.name)", "type": \#($0.avro)}"# }
        let name = rawValue.split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        return #"{"type": "record", "name": "\#(name)", "namespace": "io.tributary.features", "fields": [\#(fields.joined(separator: ", "))]}"#
    }
}

/// One row of the offline feature log: its view, event time and Avro body (entity,
/// `event_timestamp`, features in the view's order).
public struct OfflineRow: Sendable {
    public var view: FeatureView
    public var eventTime: Int64
    public var body: [UInt8]

    init(_ view: FeatureView, entity: String, eventTime: Int64, _ fill: (inout AvroRowWriter) -> Void) {
        self.view = view
        self.eventTime = eventTime
        var w = AvroRowWriter()
        w.bytes.reserveCapacity(96)
        w.string(entity)
        w.long(eventTime)
        fill(&w)
        body = w.bytes
    }

    /// `<view>/date=YYYY-MM-DD/hour=HH` of the event time (UTC).
    public var bucket: String { Self.bucket(view, eventTime) }

    /// A number equal for two rows exactly when their buckets are: the view and the hour since the
    /// epoch (the file sink's `bucketKey`, so that it builds each bucket's name once).
    public var bucketKey: Int {
        let (q, r) = eventTime.quotientAndRemainder(dividingBy: 3_600_000)
        return Int(r < 0 ? q - 1 : q) &* 8 &+ view.ordinal
    }

    public static func bucket(_ view: FeatureView, _ millis: Int64) -> String {
        let (q, r) = millis.quotientAndRemainder(dividingBy: 3_600_000)
        let hours = r < 0 ? q - 1 : q
        let (dq, dr) = hours.quotientAndRemainder(dividingBy: 24)
        let days = dr < 0 ? dq - 1 : dq
        let hour = dr < 0 ? dr + 24 : dr
        let (y, m, d) = civil(days)
        // Written byte by byte: every row of the log asks, and interpolating it allocated several times.
        let name = view.rawValue.utf8
        return String(unsafeUninitializedCapacity: name.count + 40) { out in
            var i = 0
            func put(_ bytes: some Sequence<UInt8>) { for b in bytes { out[i] = b; i += 1 } }
            /// `n` in decimal, zero-padded to `width` digits.
            func decimal(_ n: Int64, width: Int) {
                if n < 0 { put(CollectionOfOne(UInt8(ascii: "-"))) }
                var digits = n.magnitude, count = 1
                while digits >= 10 { digits /= 10; count += 1 }
                let end = i + max(count, width)
                var rest = n.magnitude
                for k in stride(from: end - 1, through: i, by: -1) {
                    out[k] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
                i = end
            }
            put(name)
            put("/date=".utf8)
            decimal(y, width: 1)
            put(CollectionOfOne(UInt8(ascii: "-")))
            decimal(m, width: 2)
            put(CollectionOfOne(UInt8(ascii: "-")))
            decimal(d, width: 2)
            put("/hour=".utf8)
            decimal(hour, width: 2)
            return i
        }
    }

    /// Year, month, day of a day number since 1970-01-01 (proleptic Gregorian).
    static func civil(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// The offline feature log: Avro container files per view and hour, committed with checkpoints.
public enum OfflineLog {
    /// Without checkpoints (`checkpointed: false`) files are committed when the input ends (Flink's
    /// batch mode); with them, by the checkpoint that covers them.
    public static func sink(directory: String, checkpointed: Bool = true) -> FileSink<OfflineRow> {
        let sync = AvroContainer.syncMarker(seed: "tributary-offline-log")
        let headers = Dictionary(uniqueKeysWithValues: FeatureView.allCases.map {
            ($0.rawValue, AvroContainer.header(schemaJSON: $0.schemaJSON, sync: sync))
        })
        let framing = FileFraming(header: { bucket in headers[String(bucket.prefix { $0 != "/" })] ?? [] },
                                  blockPrefix: { AvroContainer.blockPrefix(records: $0, size: $1) }, blockSuffix: sync)
        return FileSink(directory: directory, prefix: "part", suffix: ".avro",
                        encoder: RowEncoder(framing: framing) { row, buffer in buffer += row.body },
                        endOfInput: checkpointed ? .awaitFinalCheckpoint : .commitImmediately, bucket: { $0.bucket },
                        bucketKey: { $0.bucketKey })
    }

    /// Every committed row of `view` under `directory` (hidden, uncommitted files skipped), as
    /// Avro values, in file-name order.
    public static func read(_ view: FeatureView, directory: String) throws -> [AvroValue] {
        try files(view, directory: directory).flatMap { try AvroContainer.read(path: $0).rows }
    }
}

extension CardFeatureRow {
    public var offlineRows: [OfflineRow] {
        [OfflineRow(.txnStats5m, entity: cardId, eventTime: eventTime) { w in
            w.long(count5m); w.long(sum5m); w.double(avg5m); w.double(geoMismatchRatio5m)
        },
         OfflineRow(.txnProfile, entity: cardId, eventTime: eventTime) { w in
            w.long(count30m); w.long(count24h); w.long(sum24h); w.double(avg24h)
            w.double(geoMismatchRatioLastN); w.double(deviceMismatchRatioLastN)
            w.optionalDouble(secondsSinceLastTxn); w.long(amountMinor)
        }]
    }

    public var onlineUpdate: FeastEntityUpdate {
        let ts = FeastTimestamp(milliseconds: eventTime)
        return FeastEntityUpdate(entity: FeastEntityKey("card_id", .string(cardId)), rows: [
            FeastViewRow(view: FeatureView.txnStats5m.rawValue, eventTime: ts, features: [
                ("count_5m", .int64(count5m)), ("sum_5m", .int64(sum5m)), ("avg_5m", .double(avg5m)),
                ("geo_mismatch_ratio_5m", .double(geoMismatchRatio5m)),
            ]),
            FeastViewRow(view: FeatureView.txnProfile.rawValue, eventTime: ts, features: [
                ("count_30m", .int64(count30m)), ("count_24h", .int64(count24h)), ("sum_24h", .int64(sum24h)),
                ("avg_24h", .double(avg24h)), ("geo_mismatch_ratio_last_n", .double(geoMismatchRatioLastN)),
                ("device_mismatch_ratio_last_n", .double(deviceMismatchRatioLastN)),
                ("seconds_since_last_txn", secondsSinceLastTxn.map { .double($0) } ?? .null),
                ("amount_minor", .int64(amountMinor)),
            ]),
        ], ingestMillis: ingestMillis > 0 ? ingestMillis : nil, readMillis: readMillis > 0 ? readMillis : nil)
    }
}

/// The device a transaction was made on, as the interval join found it (view `txn_device`).
public struct DeviceFeatureRow: Sendable, Codable, Equatable {
    public var cardId: String
    public var eventTime: Int64
    public var ingestMillis: Int64
    public var deviceOS: String
    public var deviceAgeDays: Double
    public var deviceCountryMismatch: Int64

    public var offlineRow: OfflineRow {
        OfflineRow(.txnDevice, entity: cardId, eventTime: eventTime) { w in
            w.string(deviceOS); w.double(deviceAgeDays); w.long(deviceCountryMismatch)
        }
    }

    public var onlineUpdate: FeastEntityUpdate {
        FeastEntityUpdate(entity: FeastEntityKey("card_id", .string(cardId)), rows: [
            FeastViewRow(view: FeatureView.txnDevice.rawValue, eventTime: FeastTimestamp(milliseconds: eventTime), features: [
                ("device_os", .string(deviceOS)), ("device_age_days", .double(deviceAgeDays)),
                ("device_country_mismatch", .int64(deviceCountryMismatch)),
            ]),
        ], ingestMillis: ingestMillis > 0 ? ingestMillis : nil)
    }
}

/// A card's tumbling or sliding window aggregate (offline only).
public struct CardWindowRow: Sendable, Codable, Equatable {
    public var view: FeatureView
    public var cardId: String
    public var windowStart: Int64
    public var windowEnd: Int64
    public var count: Int64
    public var sum: Int64

    public var offlineRow: OfflineRow {
        OfflineRow(view, entity: cardId, eventTime: windowEnd - 1) { w in
            w.long(windowStart); w.long(count); w.long(sum); w.double(Double(sum) / Double(count))
        }
    }
}

extension SessionLiveRow {
    public var offlineRow: OfflineRow {
        OfflineRow(.userSessionLive, entity: userId, eventTime: eventTime) { w in
            w.long(sessionClicks); w.double(sessionDwellSeconds); w.long(sessionDistinctItems); w.long(clicks1h)
        }
    }

    public var onlineUpdate: FeastEntityUpdate {
        FeastEntityUpdate(entity: FeastEntityKey("user_id", .string(userId)), rows: [
            FeastViewRow(view: FeatureView.userSessionLive.rawValue, eventTime: FeastTimestamp(milliseconds: eventTime), features: [
                ("session_clicks", .int64(sessionClicks)), ("session_dwell_seconds", .double(sessionDwellSeconds)),
                ("session_distinct_items", .int64(sessionDistinctItems)), ("clicks_1h", .int64(clicks1h)),
            ]),
        ], ingestMillis: ingestMillis > 0 ? ingestMillis : nil, readMillis: readMillis > 0 ? readMillis : nil)
    }
}

extension SessionRow {
    public var offlineRow: OfflineRow {
        OfflineRow(.userLastSession, entity: userId, eventTime: eventTime) { w in
            w.long(pages); w.double(dwellSeconds); w.double(dwellPerPageSeconds); w.long(distinctItems)
        }
    }

    public var onlineUpdate: FeastEntityUpdate {
        FeastEntityUpdate(entity: FeastEntityKey("user_id", .string(userId)), rows: [
            FeastViewRow(view: FeatureView.userLastSession.rawValue, eventTime: FeastTimestamp(milliseconds: eventTime), features: [
                ("last_session_pages", .int64(pages)), ("last_session_dwell_seconds", .double(dwellSeconds)),
                ("last_session_dwell_per_page_seconds", .double(dwellPerPageSeconds)),
                ("last_session_distinct_items", .int64(distinctItems)),
            ]),
        ])
    }
}
