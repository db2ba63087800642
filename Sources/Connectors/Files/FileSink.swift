import Foundation
import StreamCore

#if canImport(Glibc)
import Glibc
#endif

/// How a part file is framed around its rows: bytes at the start of each file, and bytes around
/// each block of rows written together (Avro object container files: a header with the schema, and
/// blocks of `count`, `size`, rows, sync marker). Plain row formats have neither.
public struct FileFraming: Sendable {
    /// The first bytes of a file in `bucket`.
    public let header: @Sendable (_ bucket: String) -> [UInt8]
    /// The bytes before a block of `records` rows of `size` bytes, and after it.
    public let blockPrefix: @Sendable (_ records: Int, _ size: Int) -> [UInt8]
    public let blockSuffix: [UInt8]

    public init(header: @escaping @Sendable (String) -> [UInt8], blockPrefix: @escaping @Sendable (Int, Int) -> [UInt8],
                blockSuffix: [UInt8]) {
        self.header = header
        self.blockPrefix = blockPrefix
        self.blockSuffix = blockSuffix
    }
}

/// Turns a record into the bytes of one row of a part file (and, optionally, frames the file).
public struct RowEncoder<T>: Sendable {
    public let encode: @Sendable (T, inout [UInt8]) throws -> Void
    public let framing: FileFraming?

    /// `encode` appends the row's bytes to the buffer it is given.
    public init(framing: FileFraming? = nil, _ encode: @escaping @Sendable (T, inout [UInt8]) throws -> Void) {
        self.framing = framing
        self.encode = encode
    }

    /// One line per record: `describe(record)` and a newline (newline-delimited JSON when
    /// `describe` gives JSON).
    public static func lines(_ describe: @escaping @Sendable (T) -> String = { "\($0)" }) -> RowEncoder {
        RowEncoder { value, buffer in
            buffer.append(contentsOf: describe(value).utf8)
            buffer.append(UInt8(ascii: "\n"))
        }
    }
}

/// Writes records into part files with exactly-once visibility (Flink's `FileSink` in streaming
/// mode): each subtask writes one part file per checkpoint interval,
/// - to a hidden in-progress file `.<prefix>-<run>-<subtask>-<n><suffix>.inprogress`,
/// - flushed, fsynced and renamed to the hidden `….pending` at the checkpoint barrier (pre-commit),
/// - renamed to its visible name `<prefix>-<run>-<subtask>-<n><suffix>` when the checkpoint completes.
///
/// With a `bucket` function (Flink's `BucketAssigner`) each record goes to the subdirectory it
/// names (e.g. `txn_profile/date=2026-01-01/hour=00`), one part file per bucket and checkpoint.
/// Readers that skip names starting with "." never see uncommitted data. `<run>` is unique per
/// writer instance, so a restarted job never reuses a name. On restore, the files the restored
/// checkpoint pre-committed are committed (a no-op when that already happened), and every other
/// hidden file of the restored writers is deleted (it holds records after the checkpoint, which
/// the sources replay).
public struct FileSink<T>: Sink {
    public let directory: String
    public let prefix: String
    public let suffix: String
    public let encoder: RowEncoder<T>
    public let endOfInput: EndOfInputCommit
    /// The subdirectory (relative, "/"-separated, no ".." and no hidden parts) of each record; nil:
    /// every record in `directory`.
    public let bucket: (@Sendable (T) -> String)?
    /// Optional, with `bucket`: a number equal for two records exactly when their buckets are. The
    /// writer then finds a record's open file by it and calls `bucket` only for a number it has not
    /// seen (a bucket name is a string built per record otherwise).
    public let bucketKey: (@Sendable (T) -> Int)?

    public init(
        directory: String, prefix: String = "part", suffix: String = "",
        encoder: RowEncoder<T> = .lines(), endOfInput: EndOfInputCommit = .awaitFinalCheckpoint,
        bucket: (@Sendable (T) -> String)? = nil, bucketKey: (@Sendable (T) -> Int)? = nil
    ) {
        precondition(!prefix.isEmpty && !prefix.contains("/") && !prefix.hasPrefix("."),
                     "FileSink prefix must be a non-empty file name part without '/' and not hidden")
        self.directory = directory
        self.prefix = prefix
        self.suffix = suffix
        self.encoder = encoder
        self.endOfInput = endOfInput
        self.bucket = bucket
        self.bucketKey = bucket == nil ? nil : bucketKey
    }

    /// Creates the directory if needed and checks that this process can create files in it.
    public func createWriter(_ context: SinkInitContext) throws -> TwoPhaseCommitSinkWriter<FileTransactionLogic<T>> {
        try FileSinkDirectory.prepare(directory)
        let logic = FileTransactionLogic(
            directory: directory, prefix: prefix, suffix: suffix, subtask: context.subtaskIndex, encoder: encoder,
            bucket: bucket, bucketKey: bucketKey)
        return TwoPhaseCommitSinkWriter(logic: logic, endOfInput: endOfInput)
    }
}

/// A problem with the file sink's directory or files: a message that says what to do.
public struct FileSinkError: Error, CustomStringConvertible {
    public let description: String
    private init(_ message: String) { description = message }

    static func notWritable(_ directory: String, _ reason: String) -> FileSinkError {
        FileSinkError("FileSink: cannot write to directory '\(directory)': \(reason). "
            + "Create it (or its parent) and make it writable by this process, or choose another directory.")
    }
    static func io(_ operation: String, _ path: String, errno code: Int32) -> FileSinkError {
        FileSinkError("FileSink: \(operation) '\(path)' failed: \(String(cString: strerror(code))) (errno \(code))")
    }
    static func badBucket(_ bucket: String) -> FileSinkError {
        FileSinkError("FileSink: bucket '\(bucket)' is not a relative directory path without '..' or hidden ('.') parts")
    }
    static func lostPendingFile(_ pending: String, final: String) -> FileSinkError {
        FileSinkError("FileSink: cannot commit '\(final)': neither it nor its pending file '\(pending)' exists. "
            + "Were files removed from the output directory while the job was down?")
    }
}

/// What a file-sink transaction wrote: one part file per bucket, named so that a later process
/// can commit or delete them from this handle alone.
public struct FileTransaction: Codable, Sendable, Equatable {
    /// The visible file name once committed (the same in every bucket).
    public var name: String
    /// The writer instance that began it (part of `name`).
    public var run: String
    public var records: Int
    public var bytes: Int64
    /// The buckets (subdirectories) it wrote to; "" is the sink's directory itself.
    public var buckets: [String] = []

    public var inProgressName: String { ".\(name).inprogress" }
    public var pendingName: String { ".\(name).pending" }
}

/// An open in-progress file of a `FileTransactionLogic` and the rows not yet written to it. (Not
/// nested in the generic logic: a nested class is generic too, and each row's lookup of its part
/// then asked the runtime for the class's metadata.) Confined to the sink's task thread.
final class OpenPart {
    let fd: Int32
    let directory: String
    @exclusivity(unchecked) var buffer: [UInt8] = []
    /// Rows in `buffer`, and where they start in it (after the file header, in a new file).
    @exclusivity(unchecked) var rows = 0
    var rowsStart = 0
    init(fd: Int32, directory: String) {
        self.fd = fd
        self.directory = directory
    }
}

/// The file sink's transaction logic: per transaction one part file per bucket, created on the
/// bucket's first record.
public final class FileTransactionLogic<T>: TwoPhaseCommitLogic {
    public typealias Transaction = FileTransaction

    public let directory: String
    let prefix: String
    let suffix: String
    let subtask: Int
    let encoder: RowEncoder<T>
    let bucket: (@Sendable (T) -> String)?
    let bucketKey: (@Sendable (T) -> Int)?
    /// Unique per writer instance, so that names never collide across restarts.
    public let run: String
    private var counter = 0
    /// The open files of the current transaction, by bucket (looked up per row; task thread only).
    @exclusivity(unchecked) private var open: [String: OpenPart] = [:]
    /// With `bucketKey`: the same open files by bucket key, and each key's bucket name.
    @exclusivity(unchecked) private var openByKey: [Int: OpenPart] = [:]
    private var bucketNames: [Int: String] = [:]
    private var openName: String?
    /// Bucket directories known to exist.
    private var created: Set<String> = [""]
    private static var bufferLimit: Int { 1 << 16 }

    init(directory: String, prefix: String, suffix: String, subtask: Int, encoder: RowEncoder<T>,
         bucket: (@Sendable (T) -> String)? = nil, bucketKey: (@Sendable (T) -> Int)? = nil) {
        self.directory = directory
        self.prefix = prefix
        self.suffix = suffix
        self.subtask = subtask
        self.encoder = encoder
        self.bucket = bucket
        self.bucketKey = bucketKey
        self.run = UUID().uuidString.lowercased()
    }

    deinit { for part in open.values { Glibc.close(part.fd) } }

    private func bucketDirectory(_ bucket: String) -> String { bucket.isEmpty ? directory : directory + "/" + bucket }
    private func path(_ bucket: String, _ name: String) -> String { bucketDirectory(bucket) + "/" + name }

    public func beginTransaction() -> FileTransaction {
        defer { counter += 1 }
        return FileTransaction(name: "\(prefix)-\(run)-\(subtask)-\(counter)\(suffix)", run: run, records: 0, bytes: 0)
    }

    public func invoke(_ transaction: inout FileTransaction, value: T, context: SinkWriterContext) throws {
        let part: OpenPart
        if let key = bucketKey?(value) {
            if let known = openByKey[key] {
                part = known
            } else {
                let b = bucketNames[key] ?? bucket!(value)
                bucketNames[key] = b
                part = try open[b] ?? openPart(b, &transaction)
                openByKey[key] = part
            }
        } else {
            let b = bucket?(value) ?? ""
            part = try open[b] ?? openPart(b, &transaction)
        }
        let before = part.buffer.count
        try encoder.encode(value, &part.buffer)
        part.rows += 1
        transaction.records += 1
        transaction.bytes += Int64(part.buffer.count - before)
        if part.buffer.count >= Self.bufferLimit { try drain(part, transaction) }
    }

    private func openPart(_ b: String, _ transaction: inout FileTransaction) throws -> OpenPart {
        if !created.contains(b) {
            let parts = b.split(separator: "/", omittingEmptySubsequences: false)
            guard !b.hasPrefix("/"), parts.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(".") }) else { throw FileSinkError.badBucket(b) }
            do {
                try FileManager.default.createDirectory(atPath: bucketDirectory(b), withIntermediateDirectories: true)
            } catch {
                throw FileSinkError.notWritable(bucketDirectory(b), "it cannot be created (\(error))")
            }
            created.insert(b)
        }
        let p = path(b, transaction.inProgressName)
        let fd = Glibc.open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileSinkError.io("creating", p, errno: errno) }
        let part = OpenPart(fd: fd, directory: bucketDirectory(b))
        part.buffer.reserveCapacity(Self.bufferLimit + 4096)
        if let framing = encoder.framing {
            part.buffer += framing.header(b)
            part.rowsStart = part.buffer.count
        }
        open[b] = part
        openName = transaction.name
        if !transaction.buckets.contains(b) { transaction.buckets.append(b) }
        return part
    }

    /// Everything written goes to disk (fsync) and each file moves to its pending name.
    public func preCommit(_ transaction: inout FileTransaction) throws {
        for b in transaction.buckets {
            guard let part = open[b] else { continue }
            try drain(part, transaction)
            let inProgress = path(b, transaction.inProgressName)
            if fsync(part.fd) != 0 { throw FileSinkError.io("fsync of", inProgress, errno: errno) }
            Glibc.close(part.fd)
            open[b] = nil
            try rename(inProgress, path(b, transaction.pendingName), in: part.directory)
        }
        openByKey.removeAll(keepingCapacity: true)
        // Names of buckets long past would pile up in a job that runs for months.
        if bucketNames.count > 4_096 { bucketNames.removeAll() }
        openName = nil
    }

    /// Renames the pending files to their visible names; already committed is a no-op.
    public func commit(_ transaction: FileTransaction) throws {
        guard transaction.records > 0 else { return }
        for b in transaction.buckets.isEmpty ? [""] : transaction.buckets {
            let pending = path(b, transaction.pendingName), final = path(b, transaction.name)
            if Glibc.rename(pending, final) == 0 {
                try syncDirectory(bucketDirectory(b))
                continue
            }
            let code = errno
            guard code == ENOENT else { throw FileSinkError.io("renaming \(pending) to", final, errno: code) }
            if access(final, F_OK) != 0 { throw FileSinkError.lostPendingFile(pending, final: final) }
        }
    }

    /// Deletes the transaction's in-progress and pending files, if they exist.
    public func abort(_ transaction: FileTransaction) throws {
        if openName == transaction.name {
            for part in open.values { Glibc.close(part.fd) }
            open.removeAll()
            openByKey.removeAll()
            openName = nil
        }
        for b in transaction.buckets.isEmpty ? [""] : transaction.buckets {
            try removeIfPresent(path(b, transaction.inProgressName))
            try removeIfPresent(path(b, transaction.pendingName))
        }
    }

    /// Deletes the hidden files the restored writers left after their checkpoint: transactions
    /// begun or pre-committed later, whose records the sources replay. A restored writer's state
    /// goes to exactly one new writer, so no other writer touches files of these runs.
    public func finishRecovery(committed: [FileTransaction], aborted: [FileTransaction]) throws {
        let runs = Set((committed + aborted).map(\.run))
        guard !runs.isEmpty else { return }
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw FileSinkError.notWritable(directory, "cannot list it")
        }
        var doomed: [String] = []
        while let relative = walker.nextObject() as? String {
            let name = relative.split(separator: "/").last.map(String.init) ?? relative
            guard name.hasPrefix("."), name.hasSuffix(".inprogress") || name.hasSuffix(".pending") else { continue }
            if runs.contains(where: { name.hasPrefix(".\(prefix)-\($0)-") }) { doomed.append(directory + "/" + relative) }
        }
        for p in doomed { try removeIfPresent(p) }
    }

    public func close() throws {
        for part in open.values { Glibc.close(part.fd) }
        open.removeAll()
        openByKey.removeAll()
        openName = nil
    }

    /// Writes the buffered rows (as one block, when the format frames blocks).
    private func drain(_ part: OpenPart, _ transaction: FileTransaction) throws {
        if let framing = encoder.framing, part.rows > 0 {
            let size = part.buffer.count - part.rowsStart
            let prefix = framing.blockPrefix(part.rows, size)
            part.buffer.insert(contentsOf: prefix, at: part.rowsStart)
            part.buffer += framing.blockSuffix
        } else if encoder.framing != nil {
            part.buffer.removeSubrange(part.rowsStart...)
        }
        var offset = 0
        try part.buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(part.fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileSinkError.io("writing", part.directory + "/" + transaction.inProgressName, errno: errno)
                }
                offset += n
            }
        }
        part.buffer.removeAll(keepingCapacity: true)
        part.rows = 0
        part.rowsStart = 0
    }

    private func rename(_ from: String, _ to: String, in directory: String) throws {
        if Glibc.rename(from, to) != 0 { throw FileSinkError.io("renaming \(from) to", to, errno: errno) }
        try syncDirectory(directory)
    }

    /// Makes a rename durable.
    private func syncDirectory(_ directory: String) throws {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw FileSinkError.io("opening directory", directory, errno: errno) }
        defer { Glibc.close(fd) }
        if fsync(fd) != 0 { throw FileSinkError.io("fsync of directory", directory, errno: errno) }
    }

    private func removeIfPresent(_ path: String) throws {
        if unlink(path) != 0, errno != ENOENT { throw FileSinkError.io("deleting", path, errno: errno) }
    }
}

enum FileSinkDirectory {
    /// Creates `directory` (and its parents) and proves that a file can be created in it.
    static func prepare(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            let reason = (error as NSError).userInfo[NSUnderlyingErrorKey].map { "\($0)" } ?? error.localizedDescription
            throw FileSinkError.notWritable(directory, "it cannot be created (\(reason))")
        }
        let probe = directory + "/.filesink-probe-\(UUID().uuidString)"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            let code = errno
            throw FileSinkError.notWritable(directory, "\(String(cString: strerror(code))) (errno \(code))")
        }
        Glibc.close(fd)
        unlink(probe)
    }
}
