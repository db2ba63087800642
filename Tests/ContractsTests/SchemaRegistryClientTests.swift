import Contracts
import Foundation
import StreamTesting
import XCTest

/// `SchemaRegistryClient` against a real Confluent-compatible Schema Registry: Karapace on its own
/// local broker, started by `scripts/schema-registry.sh` on a free port (fresh: the broker keeps
/// nothing across restarts), or the one at SCHEMA_REGISTRY_URL (which must then be empty for the
/// ids of schemas/registry.json to come out the same). Karapace is not on PyPI (nor any other
/// Confluent-compatible registry, nor in Debian): without its source tree (KARAPACE_SOURCE,
/// third_party/ or .local/src/karapace-3.16.0, see the script) and without SCHEMA_REGISTRY_URL,
/// the tests that need a registry are skipped, saying so; a registry that is there but fails to
/// start fails them.
final class SchemaRegistryClientTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let registryFile = root + "/schemas/registry.json"
    /// The state directory of the registry these tests start (not the one `make up` would use).
    static let stateDir = root + "/.build/schema-registry-tests"

    struct NoRegistry: Error, CustomStringConvertible {
        let description: String
        var notInstallable = false
    }

    /// Runs a script of this checkout; returns (status, stdout, stderr).
    static func script(_ args: [String], name: String = "schema-registry.sh", env extra: [String: String] = [:]) -> (Int32, String, String) {
        let r = TestProcesses.run([root + "/scripts/" + name] + args, env: extra)
        return (r.status, r.stdout, r.stderr)
    }

    static var scriptEnv: [String: String] { ["SCHEMA_REGISTRY_DIR": stateDir, "SCHEMA_REGISTRY_PORT": "\(freePort())"] }

    /// A port nothing listens on.
    static func freePort() -> Int { TestProcesses.freePorts(1)[0] }

    /// The registry's URL and whether these tests started it; or why there is none.
    static let server: Result<(url: String, started: Bool), NoRegistry> = {
        if let url = ProcessInfo.processInfo.environment["SCHEMA_REGISTRY_URL"], !url.isEmpty { return .success((url, false)) }
        _ = script(["stop"], env: scriptEnv)   // a registry left over from a killed run: start afresh
        let started = ContinuousClock.now
        let (status, out, err) = script(["start"], env: scriptEnv)
        guard status == 0, let url = out.split(separator: "\n").last.map(String.init), url.hasPrefix("http://") else {
            if err.contains("no Karapace") {
                return .failure(NoRegistry(description: "no Schema Registry here (set SCHEMA_REGISTRY_URL to test against one): \(err)",
                                           notInstallable: true))
            }
            return .failure(NoRegistry(description: "scripts/schema-registry.sh start failed (exit \(status)): \(err)\(out.isEmpty ? "" : "\n\(out)")"))
        }
        print("SchemaRegistryClientTests: registry \(url) up in \(ContinuousClock.now - started)")
        return .success((url, true))
    }()

    /// schemas/registry.json registered in the registry, before any test registers anything else (so
    /// the ids come out the file's on a fresh registry).
    static let synced: Result<ContractRegistry, any Error> = {
        Result {
            let url = try registryURL()
            return try ContractRegistry(file: registryFile).syncing(with: SchemaRegistryClient(baseURL: url, timeout: .seconds(30)))
        }
    }()

    override class func tearDown() {
        if case .success(let s) = server, s.started { _ = script(["stop"], env: ["SCHEMA_REGISTRY_DIR": stateDir]) }
    }

    /// The registry's URL; skips the test when none can be had here.
    static func registryURL() throws -> String {
        switch server {
        case .success(let s): return s.url
        case .failure(let e) where e.notInstallable: throw XCTSkip(e.description)
        case .failure(let e): throw e
        }
    }

    /// A client of the registry, after the contracts are in it.
    func client() throws -> SchemaRegistryClient {
        _ = try Self.synced.get()
        return SchemaRegistryClient(baseURL: try Self.registryURL(), timeout: .seconds(30))
    }

    func schemaText(_ file: String) throws -> String {
        try String(contentsOfFile: Self.root + "/schemas/" + file, encoding: .utf8)
    }

    /// `transactions.v2.avsc` with one more field appended.
    func transactionsV2(adding field: [String: Any]) throws -> String {
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try schemaText("transactions.v2.avsc").utf8)) as? [String: Any])
        json["fields"] = try XCTUnwrap(json["fields"] as? [Any]) + [field]
        return String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
    }

    func localRegistry(_ schemas: [(subject: String, id: Int32, json: String)]) throws -> ContractRegistry {
        try ContractFixtures.registry(schemas)
    }

    func transaction(merchant: String?) -> AvroValue { ContractFixtures.transaction(merchant: merchant) }

    // MARK: Against the registry

    func testSyncingRegistryJSONGivesTheFilesIds() throws {
        let client = try client()
        let contracts = try Self.synced.get()
        XCTAssertEqual(contracts.byId.count, 7)
        let subjects = Set(try client.subjects())
        for (subject, versions) in contracts.subjects {
            XCTAssertTrue(subjects.contains(subject), "\(subject) not in \(subjects.sorted())")
            let latest = try client.latestVersion(subject: subject)
            XCTAssertEqual(latest.version, versions.last!.version, subject)
            XCTAssertEqual(latest.id, versions.last!.id, subject)
        }
        XCTAssertEqual(try client.latestVersion(subject: "txn.events-value").id, 2)
        XCTAssertEqual(try client.latestVersion(subject: "dlq-value").id, 7)
        // Again: the registry finds every schema registered already, under the same ids.
        XCTAssertNoThrow(try contracts.syncing(with: client))
        // Contracts whose ids the registry does not share: the registry reuses clicks.v1's id 3 for
        // the same schema under another subject.
        let wrong = try localRegistry([("contracts-tests.mismatch-value", 1, try schemaText("clicks.v1.avsc"))])
        XCTAssertThrowsError(try wrong.syncing(with: client)) { error in
            XCTAssertEqual("\(error)", "schema registry \(client.baseURL): subject 'contracts-tests.mismatch-value' version 1: "
                + "the registry gave id 3, the contracts say id 1")
        }
    }

    func testSchemaByIdRoundTrips() throws {
        let client = try client()
        let contracts = try Self.synced.get()
        for id in contracts.byId.keys.sorted() {
            XCTAssertNoThrow(try client.schema(id: id), "schema \(id)")
        }
        let fetched = try client.schema(id: 2)
        XCTAssertTrue(try client.schema(id: 2) === fetched, "cached")
        // From many threads at once: one cached schema per id in the end.
        let shared = SchemaRegistryClient(baseURL: client.baseURL, timeout: .seconds(30))
        DispatchQueue.concurrentPerform(iterations: 28) { i in _ = try? shared.schema(id: Int32(i % 7 + 1)) }
        for id in Int32(1)...7 { XCTAssertTrue(try shared.schema(id: id) === shared.schema(id: id), "schema \(id)") }
        // The registry's copy (its own canonical JSON) reads what the file's schema writes, and writes
        // what the file's reads.
        let local = try ConfluentAvroCodec(registry: contracts, reader: contracts.byId[2]!)
        let bytes = try local.encode(transaction(merchant: "m-1"), schemaId: 2)
        let viaRegistry = try ConfluentAvroCodec(registry: contracts, reader: fetched)
        XCTAssertEqual(try viaRegistry.decode(bytes), transaction(merchant: "m-1"))
        let remoteOnly = try localRegistry([("txn.events-value", 2, fetched.json)])
        let writer = try ConfluentAvroCodec(registry: remoteOnly, reader: fetched)
        XCTAssertEqual(try local.decode(try writer.encode(transaction(merchant: nil), schemaId: 2))["merchant_id"], .null)
    }

    func testTheCodecFetchesAWriterSchemaOnlyTheRegistryKnows() throws {
        let client = try client()
        // A v3 of the transactions, registered under its own subject: an id that no file has.
        let v3 = try transactionsV2(adding: ["name": "channel", "type": ["null", "string"], "default": NSNull()])
        let id = try client.register(subject: "contracts-tests.remote-value", schemaJSON: v3)
        let contracts = try Self.synced.get()
        XCTAssertNil(contracts.byId[id], "id \(id) is the registry's alone")
        let producer = try ConfluentAvroCodec(registry: try localRegistry([("contracts-tests.remote-value", id, v3)]), reader: try AvroSchema(json: v3))
        var v3record = transaction(merchant: "m-1")
        if case .record(let fields) = v3record { v3record = .record(fields + [.init("channel", .string("web"))]) }
        let message = try producer.encode(v3record, schemaId: id)

        // A job that knows only transactions v1 locally, reading with v1.
        let v1 = try schemaText("transactions.v1.avsc")
        let onlyV1 = try localRegistry([("txn.events-value", 1, v1)])
        let offline = try ConfluentAvroCodec(registry: onlyV1, reader: onlyV1.byId[1]!)
        XCTAssertThrowsError(try offline.decode(message)) { XCTAssertEqual(($0 as? AvroDecodeError)?.reason, "UNKNOWN_SCHEMA") }

        let online = try ConfluentAvroCodec(registry: onlyV1, reader: onlyV1.byId[1]!, remote: client)
        let expected = transaction(merchant: nil)   // v1 has no merchant_id
        XCTAssertEqual(try online.decode(message), expected, "v3 data read as v1: merchant_id and channel skipped")
        XCTAssertEqual(try online.decode(message), expected, "again, from the codec's cache")

        // An id the registry does not have either: UNKNOWN_SCHEMA, as without a registry.
        var unknown = message
        unknown[1...4] = [0, 0, 0x30, 0x39]   // 12345
        XCTAssertThrowsError(try online.decode(unknown)) { error in
            XCTAssertEqual(error as? AvroDecodeError, .unknownSchema(id: 12_345))
        }
    }

    func testCompatibilityRejectsANewRequiredFieldAndAcceptsAnOptionalOne() throws {
        let client = try client()
        let required = try transactionsV2(adding: ["name": "risk_score", "type": "double"])
        XCTAssertFalse(try client.checkCompatibility(subject: "txn.events-value", schemaJSON: required),
                       "a new field without a default cannot read v2 data (BACKWARD)")
        let optional = try transactionsV2(adding: ["name": "risk_score", "type": ["null", "double"], "default": NSNull()])
        XCTAssertTrue(try client.checkCompatibility(subject: "txn.events-value", schemaJSON: optional))
        XCTAssertTrue(try client.checkCompatibility(subject: "txn.events-value", schemaJSON: try schemaText("transactions.v2.avsc")))
        XCTAssertEqual(try client.latestVersion(subject: "txn.events-value").version, 2, "checking registers nothing")
    }

    func testAMissingSubjectGivesTheClearError() throws {
        let client = try client()
        let subject = "no-such-subject-\(UUID().uuidString.prefix(8))"
        XCTAssertThrowsError(try client.latestVersion(subject: subject)) { error in
            guard let e = error as? SchemaRegistryError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.status, 404)
            XCTAssertEqual(e.errorCode, 40401)
            XCTAssertTrue(e.isSubjectNotFound)
            XCTAssertFalse(e.isUnreachable)
            XCTAssertTrue(e.description.hasPrefix("schema registry \(client.baseURL): subject '\(subject)' not found (404, error_code 40401"), e.description)
        }
        XCTAssertThrowsError(try client.schema(id: 99_999)) { error in
            XCTAssertEqual((error as? SchemaRegistryError)?.errorCode, 40403, "\(error)")
        }
    }

    // MARK: Without a registry

    func testConnectionRefusedNamesTheURL() throws {
        let url = "http://127.0.0.1:\(Self.freePort())"
        let client = SchemaRegistryClient(baseURL: url, timeout: .seconds(2))
        XCTAssertThrowsError(try client.schema(id: 1)) { error in
            guard let e = error as? SchemaRegistryError else { return XCTFail("\(error)") }
            XCTAssertTrue(e.isUnreachable)
            XCTAssertNil(e.status)
            XCTAssertTrue(e.description.contains(url), e.description)
            XCTAssertTrue(e.description.contains("Connection refused"), e.description)
        }
        // A codec with that registry: not the message's fault, so not UNKNOWN_SCHEMA, and asked again next time.
        let contracts = try ContractRegistry(file: Self.registryFile)
        let codec = try ConfluentAvroCodec(registry: contracts, reader: contracts.byId[1]!, remote: client)
        for _ in 0..<2 {
            XCTAssertThrowsError(try codec.decode([0, 0, 0, 0x30, 0x39, 1, 2])) { error in
                guard case .registryUnavailable(let id, let reason)? = error as? AvroDecodeError else { return XCTFail("\(error)") }
                XCTAssertEqual(id, 12_345)
                XCTAssertTrue(reason.contains(url), reason)
            }
        }
        XCTAssertNotNil(try? codec.decode(try codec.encode(transaction(merchant: nil), schemaId: 1)), "local ids need no registry")
    }

    func testASilentServerTimesOut() throws {
        // A socket that accepts connections (the kernel does) and never answers.
        let (fd, port) = TestProcesses.loopbackSocket()
        defer { close(fd) }
        XCTAssertEqual(listen(fd, 4), 0)
        let url = "http://127.0.0.1:\(port)"
        let started = ContinuousClock.now
        XCTAssertThrowsError(try SchemaRegistryClient(baseURL: url, timeout: .milliseconds(300)).subjects()) { error in
            XCTAssertTrue("\(error)".contains("no answer within"), "\(error)")
            XCTAssertTrue("\(error)".contains(url), "\(error)")
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
    }

    func testURLsItCannotUse() {
        for (url, words) in [("https://registry.example:8081", "https is not supported"), ("ftp://x", "unsupported scheme"),
                             ("not a url", "not a URL")] {
            XCTAssertThrowsError(try SchemaRegistryClient(baseURL: url).subjects()) { error in
                XCTAssertTrue("\(error)".contains(words), "\(url): \(error)")
                XCTAssertTrue("\(error)".contains(url), "\(url): \(error)")
            }
        }
    }
}
