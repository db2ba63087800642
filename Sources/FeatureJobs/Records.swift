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
    public init(avro v: AvroValue) throws {
        guard case .record(let fields) = v, fields.count >= 10 else { throw ContractViolation("not a Transaction record") }
        // Resolved to the reader's schema, the fields come in its order.
        txnId = try Self.string(fields[0], "txn_id")
        cardId = try Self.string(fields[1], "card_id")
        userId = try Self.string(fields[2], "user_id")
        guard let amount = fields[3].value.longValue else { throw ContractViolation("amount_minor is not a long") }
        amountMinor = amount
        currency = try Self.string(fields[4], "currency")
        guard case .int(let m) = fields[5].value else { throw ContractViolation("mcc is not an int") }
        mcc = m
        deviceId = try Self.string(fields[6], "device_id")
        guard let c = fields[8].value["country"]?.stringValue else { throw ContractViolation("geo.country is missing") }
        country = c
        guard let ts = fields[9].value.longValue else { throw ContractViolation("timestamp is not a long") }
        timestamp = ts
        if amountMinor <= 0 { throw ContractViolation("amount_minor \(amountMinor) must be positive") }
        if cardId.isEmpty { throw ContractViolation("card_id is empty") }
        if currency.utf8.count != 3 { throw ContractViolation("currency '\(currency)' is not an ISO 4217 code") }
    }

    static func string(_ f: AvroValue.Field, _ name: String) throws -> String {
        guard case .string(let s) = f.value else { throw ContractViolation("\(name) is not a string") }
        return s
    }
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

    public init(avro v: AvroValue) throws {
        guard case .record(let f) = v, f.count >= 7 else { throw ContractViolation("not a Click record") }
        eventId = try Transaction.string(f[0], "event_id")
        userId = try Transaction.string(f[1], "user_id")
        page = try Transaction.string(f[3], "page")
        guard case .enumSymbol(let a) = f[4].value else { throw ContractViolation("action is not an enum symbol") }
        action = a
        guard let ts = f[6].value.longValue else { throw ContractViolation("timestamp is not a long") }
        timestamp = ts
        if userId.isEmpty { throw ContractViolation("user_id is empty") }
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

    public init(avro v: AvroValue) throws {
        guard case .record(let f) = v, f.count >= 7 else { throw ContractViolation("not a Device record") }
        deviceId = try Transaction.string(f[0], "device_id")
        os = try Transaction.string(f[2], "os")
        guard let first = f[4].value.longValue else { throw ContractViolation("first_seen is not a long") }
        firstSeen = first
        country = f[5].value["country"]?.stringValue
        guard let ts = f[6].value.longValue else { throw ContractViolation("timestamp is not a long") }
        timestamp = ts
        if deviceId.isEmpty { throw ContractViolation("device_id is empty") }
    }
}
