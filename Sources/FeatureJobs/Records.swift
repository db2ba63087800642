import Contracts

/// A record that breaks its contract's rules after decoding (the DLQ reason is `INVALID`).
public struct ContractViolation: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// A card transaction (`txn.events`, contract `transactions.v1`; v2 data reads as v1).
public struct Transaction: Sendable, Codable, Hashable {
    public var txnId: String
    public var cardId: String
    public var userId: String
    public var amountMinor: Int64
    public var currency: String
    public var mcc: Int32
    public var deviceId: String
    public var country: String
    public var timestamp: Int64

    public init(txnId: String, cardId: String, userId: String = "", amountMinor: Int64, currency: String = "EUR",
                mcc: Int32 = 5411, deviceId: String, country: String, timestamp: Int64) {
        self.txnId = txnId
        self.cardId = cardId
        self.userId = userId
        self.amountMinor = amountMinor
        self.currency = currency
        self.mcc = mcc
        self.deviceId = deviceId
        self.country = country
        self.timestamp = timestamp
    }

    /// From a datum resolved to `transactions.v1`; checks the contract's rules.
    public init(avro v: AvroValue) throws { self = try Fields.record(from: v) }

    /// Builds a `Transaction` from `transactions.v1`'s fields (in its order) straight from the
    /// binary (`ConfluentAvroCodec.decode(_:as:)`) or from a datum; checks the contract's rules.
    public struct Fields: AvroRecordBuilder {
        var t = Transaction(txnId: "", cardId: "", amountMinor: 0, currency: "", mcc: 0, deviceId: "", country: "", timestamp: 0)
        var hasCountry = false
        public init() {}
        public mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {
            switch index {
            case 0: t.txnId = try f.string()
            case 1: t.cardId = try f.string()
            case 2: t.userId = try f.string()
            case 3: t.amountMinor = try f.long()
            case 4: t.currency = try f.string()
            case 5: t.mcc = try f.int()
            case 6: t.deviceId = try f.string()
            case 8:
                if let c = try f.record(GeoCountry.self) ?? nil { t.country = c; hasCountry = true }
            case 9: t.timestamp = try f.long()
            default: break
            }
        }
        public func build() throws -> Transaction {
            if !hasCountry { throw ContractViolation("geo.country is missing") }
            if t.amountMinor <= 0 { throw ContractViolation("amount_minor \(t.amountMinor) must be positive") }
            if t.cardId.isEmpty { throw ContractViolation("card_id is empty") }
            if t.currency.utf8.count != 3 { throw ContractViolation("currency '\(t.currency)' is not an ISO 4217 code") }
            return t
        }
    }
}

/// A `Geo` record's country (`geo.country` of the transaction and device contracts).
struct GeoCountry: AvroRecordBuilder {
    var country: String?
    init() {}
    mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {
        if index == 2 { country = try f.string() }
    }
    func build() -> String? { country }
}

/// A click or page view (`click.events`, contract `clicks.v1`).
public struct Click: Sendable, Codable, Hashable {
    public var eventId: String
    public var userId: String
    public var page: String
    public var action: String
    public var timestamp: Int64

    public init(eventId: String, userId: String, page: String, action: String = "VIEW", timestamp: Int64) {
        self.eventId = eventId
        self.userId = userId
        self.page = page
        self.action = action
        self.timestamp = timestamp
    }

    public init(avro v: AvroValue) throws { self = try Fields.record(from: v) }

    /// Builds a `Click` from `clicks.v1`'s fields (in its order); checks the contract's rules.
    public struct Fields: AvroRecordBuilder {
        var c = Click(eventId: "", userId: "", page: "", action: "", timestamp: 0)
        public init() {}
        public mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {
            switch index {
            case 0: c.eventId = try f.string()
            case 1: c.userId = try f.string()
            case 3: c.page = try f.string()
            case 4: c.action = try f.enumSymbol()
            case 6: c.timestamp = try f.long()
            default: break
            }
        }
        public func build() throws -> Click {
            if c.userId.isEmpty { throw ContractViolation("user_id is empty") }
            return c
        }
    }
}

/// A device announcement (`device.enrich`, contract `devices.v1`).
public struct Device: Sendable, Codable, Hashable {
    public var deviceId: String
    public var os: String
    public var firstSeen: Int64
    public var country: String?
    public var timestamp: Int64

    public init(deviceId: String, os: String, firstSeen: Int64, country: String?, timestamp: Int64) {
        self.deviceId = deviceId
        self.os = os
        self.firstSeen = firstSeen
        self.country = country
        self.timestamp = timestamp
    }

    public init(avro v: AvroValue) throws { self = try Fields.record(from: v) }

    /// Builds a `Device` from `devices.v1`'s fields (in its order); checks the contract's rules.
    public struct Fields: AvroRecordBuilder {
        var d = Device(deviceId: "", os: "", firstSeen: 0, country: nil, timestamp: 0)
        public init() {}
        public mutating func set(field index: Int, from f: inout AvroFieldDecoder) throws {
            switch index {
            case 0: d.deviceId = try f.string()
            case 2: d.os = try f.string()
            case 4: d.firstSeen = try f.long()
            case 5: d.country = try f.record(GeoCountry.self) ?? nil
            case 6: d.timestamp = try f.long()
            default: break
            }
        }
        public func build() throws -> Device {
            if d.deviceId.isEmpty { throw ContractViolation("device_id is empty") }
            return d
        }
    }
}
