import CRocksDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure reported by RocksDB, with what was being done.
public struct RocksDBError: Error, CustomStringConvertible {
    public let description: String
    init(_ what: String, _ message: String) { description = "RocksDB: \(what): \(message)" }
}

/// A thin owner of one RocksDB database (the C API): writes without a write-ahead log (a
/// checkpoint flushes the memtable, so nothing the WAL would protect is ever needed), point reads,
/// range scans and checkpoints of hard-linked SST files. Thread-safe as RocksDB is; one writer
/// (the task thread, or the checkpoint thread while the task thread does not write).
final class RocksDB: @unchecked Sendable {
    let path: String
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let tableOptions: OpaquePointer
    private let writeOptions: OpaquePointer
    private let readOptions: OpaquePointer

    /// Opens (creating) the database in `path`.
    init(path: String) throws {
        self.path = path
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_set_compression(options, Int32(rocksdb_lz4_compression))
        // Point reads of keys that may be absent (a key without one of its states): bloom filters.
        tableOptions = rocksdb_block_based_options_create()
        rocksdb_block_based_options_set_filter_policy(tableOptions, rocksdb_filterpolicy_create_bloom(10))
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        rocksdb_options_set_max_open_files(options, 256)
        writeOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_disable_WAL(writeOptions, 1)
        readOptions = rocksdb_readoptions_create()
        var err: UnsafeMutablePointer<CChar>?
        let handle = rocksdb_open(options, path, &err)
        if let e = err {
            defer { rocksdb_free(e) }
            rocksdb_writeoptions_destroy(writeOptions)
            rocksdb_readoptions_destroy(readOptions)
            rocksdb_options_destroy(options)
            rocksdb_block_based_options_destroy(tableOptions)
            throw RocksDBError("open \(path)", String(cString: e))
        }
        db = handle!
    }

    deinit {
        rocksdb_close(db)
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_options_destroy(options)
        rocksdb_block_based_options_destroy(tableOptions)
    }

    private static func check(_ err: UnsafeMutablePointer<CChar>?, _ what: @autoclosure () -> String) throws {
        if let e = err {
            defer { rocksdb_free(e) }
            throw RocksDBError(what(), String(cString: e))
        }
    }

    /// The value under `key`, or nil.
    func get(_ key: [UInt8]) throws -> [UInt8]? {
        var err: UnsafeMutablePointer<CChar>?
        var length = 0
        let value = key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { rocksdb_get(db, readOptions, $0.baseAddress, k.count, &length, &err) }
        }
        try Self.check(err, "get in \(path)")
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    /// Applies `batch` atomically.
    func write(_ batch: WriteBatch) throws {
        var err: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, writeOptions, batch.handle, &err)
        try Self.check(err, "write to \(path)")
    }

    /// Calls `body` with each (key, value) whose key is in `[from, until)`, in key order; `until`
    /// nil: to the end. `body` returns false to stop.
    func scan(from: [UInt8], until: [UInt8]?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let ro = rocksdb_readoptions_create()!
        defer { rocksdb_readoptions_destroy(ro) }
        rocksdb_readoptions_set_fill_cache(ro, 0)
        // RocksDB keeps the pointer to the upper bound for the iterator's life: memory of our own.
        let upper = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(1, until?.count ?? 0))
        defer { upper.deallocate() }
        if let until {
            for (i, b) in until.enumerated() { upper[i] = CChar(bitPattern: b) }
            rocksdb_readoptions_set_iterate_upper_bound(ro, upper.baseAddress, until.count)
        }
        let it = rocksdb_create_iterator(db, ro)!
        defer { rocksdb_iter_destroy(it) }
        from.withUnsafeBufferPointer { f in
            f.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek(it, $0.baseAddress, f.count) }
        }
        while rocksdb_iter_valid(it) != 0 {
            var kl = 0, vl = 0
            let k = rocksdb_iter_key(it, &kl)
            let v = rocksdb_iter_value(it, &vl)
            if try !body(UnsafeRawBufferPointer(start: k, count: kl), UnsafeRawBufferPointer(start: v, count: vl)) { break }
            rocksdb_iter_next(it)
        }
        var err: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(it, &err)
        try Self.check(err, "scan of \(path)")
    }

    /// Flushes the memtable and writes a checkpoint into `directory` (which must not exist): hard
    /// links to the SST files and copies of the small metadata files.
    func checkpoint(into directory: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let cp = rocksdb_checkpoint_object_create(db, &err)
        try Self.check(err, "checkpoint of \(path)")
        defer { rocksdb_checkpoint_object_destroy(cp) }
        rocksdb_checkpoint_create(cp, directory, 0, &err)
        try Self.check(err, "checkpoint of \(path) into \(directory)")
    }
}

/// A batch of writes applied atomically by `RocksDB.write`.
final class WriteBatch {
    let handle: OpaquePointer
    init() { handle = rocksdb_writebatch_create() }
    deinit { rocksdb_writebatch_destroy(handle) }

    var count: Int { Int(rocksdb_writebatch_count(handle)) }

    func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: CChar.self) { kc in
                    v.withMemoryRebound(to: CChar.self) { vc in
                        rocksdb_writebatch_put(handle, kc.baseAddress, k.count, vc.baseAddress, v.count)
                    }
                }
            }
        }
    }

    func delete(_ key: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { rocksdb_writebatch_delete(handle, $0.baseAddress, k.count) }
        }
    }

    func clear() { rocksdb_writebatch_clear(handle) }
}
