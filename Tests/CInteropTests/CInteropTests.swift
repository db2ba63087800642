import CAvro
import CHiredis
import CRdKafka
import CRocksDB
import CZstd
import XCTest

/// The system-library targets compile, link and run: what setup.sh installs is what the later
/// connectors and the RocksDB backend need.
final class CInteropTests: XCTestCase {
    func testZstdRoundTrip() {
        let input = Array(String(repeating: "event;", count: 200).utf8)
        var packed = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let n = packed.withUnsafeMutableBytes { d in input.withUnsafeBytes { s in
            ZSTD_compress(d.baseAddress, d.count, s.baseAddress, s.count, 3) } }
        XCTAssertEqual(ZSTD_isError(n), 0)
        var output = [UInt8](repeating: 0, count: input.count)
        let m = output.withUnsafeMutableBytes { d in packed.withUnsafeBytes { s in
            ZSTD_decompress(d.baseAddress, d.count, s.baseAddress, n) } }
        XCTAssertEqual(m, input.count)
        XCTAssertEqual(output, input)
    }

    func testRocksDBPutGet() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rocks-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var err: UnsafeMutablePointer<CChar>? = nil
        let opts = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(opts, 1)
        let db = rocksdb_open(opts, dir, &err)
        XCTAssertNil(err)
        let wo = rocksdb_writeoptions_create(), ro = rocksdb_readoptions_create()
        rocksdb_put(db, wo, "k", 1, "v1", 2, &err)
        XCTAssertNil(err)
        var len = 0
        let v = rocksdb_get(db, ro, "k", 1, &len, &err)
        XCTAssertEqual(len, 2)
        XCTAssertEqual(v.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: len), as: UTF8.self) }, "v1")
        rocksdb_free(v)
        rocksdb_close(db)
        rocksdb_writeoptions_destroy(wo)
        rocksdb_readoptions_destroy(ro)
        rocksdb_options_destroy(opts)
    }

    func testAvroSchemaParses() {
        let json = #"{"type":"record","name":"Txn","fields":[{"name":"card_id","type":"string"},{"name":"amount_cents","type":"long"}]}"#
        var schema: avro_schema_t? = nil
        XCTAssertEqual(avro_schema_from_json_length(json, json.utf8.count, &schema), 0)
        XCTAssertNotNil(schema)
        avro_schema_decref(schema)
    }

    func testKafkaClientAndHiredisReaderLink() {
        XCTAssertFalse(String(cString: rd_kafka_version_str()).isEmpty)
        let reader = redisReaderCreate()
        XCTAssertNotNil(reader)
        redisReaderFree(reader)
    }
}
