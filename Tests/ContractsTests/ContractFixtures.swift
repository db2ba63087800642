import Contracts
import Foundation

/// Fixtures the contract tests share.
enum ContractFixtures {
    /// A transaction in the `transactions` contract's shape; `merchant_id` (v2) only when given.
    static func transaction(merchant: String?) -> AvroValue {
        var fields: [AvroValue.Field] = [
            .init("txn_id", .string("t-1")), .init("card_id", .string("card-7")), .init("user_id", .string("u-3")),
            .init("amount_minor", .long(12_345)), .init("currency", .string("EUR")), .init("mcc", .int(5411)),
            .init("device_id", .string("d-9")), .init("ip", .string("10.1.2.3")),
            .init("geo", .record([.init("lat", .double(52.52)), .init("lon", .double(13.40)), .init("country", .string("DE"))])),
            .init("timestamp", .long(1_767_225_600_000)),
        ]
        if let merchant { fields.append(.init("merchant_id", .string(merchant))) }
        return .record(fields)
    }

    /// A ContractRegistry of the given schema texts under their ids, from a temporary directory;
    /// versions count up per subject in the given order.
    static func registry(_ schemas: [(subject: String, id: Int32, json: String)]) throws -> ContractRegistry {
        let dir = NSTemporaryDirectory() + "contracts-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var subjects: [String: [[String: Any]]] = [:]
        for (i, s) in schemas.enumerated() {
            try s.json.write(toFile: dir + "/s\(i).avsc", atomically: true, encoding: .utf8)
            subjects[s.subject, default: []].append(["version": subjects[s.subject, default: []].count + 1, "id": Int(s.id), "schema": "s\(i).avsc"])
        }
        try JSONSerialization.data(withJSONObject: ["subjects": subjects]).write(to: URL(fileURLWithPath: dir + "/registry.json"))
        return try ContractRegistry(file: dir + "/registry.json")
    }
}
