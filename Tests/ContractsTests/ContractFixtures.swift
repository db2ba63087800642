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

    /// Writer and reader of the schema-resolution tests: promotions, aliases, enum defaults,
    /// unions on either side, writer-only fields of complex types, defaults of every kind.
    static let resolutionWriter = """
    {"type":"record","name":"R","namespace":"t","fields":[
      {"name":"a","type":"int"},
      {"name":"gone","type":{"type":"array","items":{"type":"map","values":["null","string"]}}},
      {"name":"old_name","type":"string"},
      {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
      {"name":"u","type":["null","int","string"]},
      {"name":"f","type":"float"},
      {"name":"skipped_rec","type":{"type":"record","name":"S","fields":[{"name":"x","type":"long"},{"name":"y","type":["null","bytes"]}]}},
      {"name":"n","type":"long"},
      {"name":"i2d","type":"int"}
    ]}
    """
    static let resolutionReader = """
    {"type":"record","name":"R","namespace":"t","fields":[
      {"name":"a","type":"long"},
      {"name":"new_name","aliases":["old_name"],"type":"string"},
      {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"],"default":"RED"}},
      {"name":"u","type":["null","long","string"]},
      {"name":"f","type":"double"},
      {"name":"n","type":["null","long"]},
      {"name":"i2d","type":"double"},
      {"name":"d_int","type":"int","default":7},
      {"name":"d_str","type":"string","default":"x"},
      {"name":"d_arr","type":{"type":"array","items":"int"},"default":[1,2]},
      {"name":"d_rec","type":{"type":"record","name":"D","fields":[{"name":"k","type":"boolean"}]},"default":{"k":true}},
      {"name":"d_union","type":["null","string"],"default":null}
    ]}
    """

    /// A datum of `resolutionWriter`.
    static func resolutionDatum(_ color: String, _ u: AvroValue, _ s: String = "hello") -> AvroValue {
        .record([.init("a", .int(-5)), .init("gone", .array([.map(["k": .string("v"), "z": .null])])),
                 .init("old_name", .string(s)), .init("color", .enumSymbol(color)), .init("u", u),
                 .init("f", .float(1.5)), .init("skipped_rec", .record([.init("x", .long(9)), .init("y", .bytes([1, 2]))])),
                 .init("n", .long(1 << 40)), .init("i2d", .int(-3))])
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
