import Foundation
import StreamCore

#if canImport(Glibc)
import Glibc
#endif

/// Turns a record into the bytes of one row of a part file.
public struct RowEncoder<T>: Sendable {
    public let encode: @Sendable (T, inout [UInt8]) throws -> Void

    /// `encode` appends the row's bytes to the buffer it is given.
    public init(_ encode: @escaping @Sendable (T, inout [UInt8]) throws -> Void) {
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

    public init(
        directory: String, prefix: String = "part", suffix: String = "",
        encoder: RowEncoder<T> = .lines(), endOfInput: EndOfInputCommit = .awaitFinalCheckpoint
    ) {
        precondition(!prefix.isEmpty && !prefix.contains("/") && !prefix.hasPrefix("."),
                     "FileSink prefix must be a non-empty file name part without '/' and not hidden")
        self.directory = directory
        self.prefix = prefix
        self.suffix = suffix
        self.encoder = encoder
        self.endOfInput = endOfInput
    }

    /// Creates the directory if needed and checks that this process can create files in it.
    public func createWriter(_ context: SinkInitContext) throws -> TwoPhaseCommitSinkWriter<FileTransactionLogic<T>> {
        try FileSinkDirectory.prepare(directory)
        let logic = FileTransactionLogic(
            directory: directory, prefix: prefix, suffix: suffix, subtask: context.subtaskIndex, encoder: encoder)
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
    static func lostPendingFile(_ pending: String, final: String) -> FileSinkError {
        FileSinkError("FileSink: cannot commit '\(final)': neither it nor its pending file '\(pending)' exists. "
            + "Were files removed from the output directory while the job was down?")
    }
}

/// One part file: what a file-sink transaction wrote, named so that a later process can commit
/// or delete it from this handle alone.
public struct FileTransaction: Codable, Sendable, Equatable {
    /// The visible name once committed.
    public var name: String
    /// The writer instance that began it (part of `name`).
    public var run: String
    public var records: Int
    public var bytes: Int64

    public var inProgressName: String { ".\(name).inprogress" }
    public var pendingName: String { ".\(name).pending" }
}

/// The file sink's transaction logic: one part file per transaction, created on its first record.
public final class FileTransactionLogic<T>: TwoPhaseCommitLogic {
    public typealias Transaction = FileTransaction

    public let directory: String
    let prefix: String
    let suffix: String
    let subtask: Int
    let encoder: RowEncoder<T>
    /// Unique per writer instance, so that names never collide across restarts.
    public let run: String
    private var counter = 0
    /// The open in-progress file of the current transaction and the bytes not yet written to it.
    private var file: Int32 = -1
    private var openName: String?
    private var buffer: [UInt8] = []
    private static var bufferLimit: Int { 1 << 16 }

    init(directory: String, prefix: String, suffix: String, subtask: Int, encoder: RowEncoder<T>) {
        self.directory = directory
        self.prefix = prefix
        self.suffix = suffix
        self.subtask = subtask
        self.encoder = encoder
        self.run = UUID().uuidString.lowercased()
        buffer.reserveCapacity(Self.bufferLimit)
    }

    deinit { if file >= 0 { Glibc.close(file) } }

    private func path(_ name: String) -> String { directory + "/" + name }

    public func beginTransaction() -> FileTransaction {
        defer { counter += 1 }
        return FileTransaction(name: "\(prefix)-\(run)-\(subtask)-\(counter)\(suffix)", run: run, records: 0, bytes: 0)
    }

    public func invoke(_ transaction: inout FileTransaction, value: T, context: SinkWriterContext) throws {
        if file < 0 {
            let p = path(transaction.inProgressName)
            file = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if file < 0 { throw FileSinkError.io("creating", p, errno: errno) }
            openName = transaction.name
        }
        let before = buffer.count
        try encoder.encode(value, &buffer)
        transaction.records += 1
        transaction.bytes += Int64(buffer.count - before)
        if buffer.count >= Self.bufferLimit { try drain(transaction) }
    }

    /// Everything written goes to disk (fsync) and the file moves to its pending name.
    public func preCommit(_ transaction: inout FileTransaction) throws {
        guard file >= 0 else { return }  // no record: no file
        try drain(transaction)
        let inProgress = path(transaction.inProgressName)
        if fsync(file) != 0 { throw FileSinkError.io("fsync of", inProgress, errno: errno) }
        closeFile()
        try rename(inProgress, path(transaction.pendingName))
    }

    /// Renames the pending file to its visible name; already committed is a no-op.
    public func commit(_ transaction: FileTransaction) throws {
        guard transaction.records > 0 else { return }
        let pending = path(transaction.pendingName), final = path(transaction.name)
        if Glibc.rename(pending, final) == 0 {
            try syncDirectory()
            return
        }
        let code = errno
        guard code == ENOENT else { throw FileSinkError.io("renaming \(pending) to", final, errno: code) }
        if access(final, F_OK) != 0 { throw FileSinkError.lostPendingFile(pending, final: final) }
    }

    /// Deletes the transaction's in-progress and pending files, if they exist.
    public func abort(_ transaction: FileTransaction) throws {
        if openName == transaction.name {
            closeFile()
            buffer.removeAll(keepingCapacity: true)
        }
        try removeIfPresent(path(transaction.inProgressName))
        try removeIfPresent(path(transaction.pendingName))
    }

    /// Deletes the hidden files the restored writers left after their checkpoint: transactions
    /// begun or pre-committed later, whose records the sources replay. A restored writer's state
    /// goes to exactly one new writer, so no other writer touches files of these runs.
    public func finishRecovery(committed: [FileTransaction], aborted: [FileTransaction]) throws {
        let runs = Set((committed + aborted).map(\.run))
        guard !runs.isEmpty else { return }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw FileSinkError.notWritable(directory, "cannot list it (\(error))")
        }
        for name in names where name.hasPrefix(".") && (name.hasSuffix(".inprogress") || name.hasSuffix(".pending")) {
            if runs.contains(where: { name.hasPrefix(".\(prefix)-\($0)-") }) { try removeIfPresent(path(name)) }
        }
    }

    public func close() throws { closeFile() }

    private func closeFile() {
        if file >= 0 { Glibc.close(file) }
        file = -1
        openName = nil
    }

    private func drain(_ transaction: FileTransaction) throws {
        var offset = 0
        try buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(file, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileSinkError.io("writing", path(transaction.inProgressName), errno: errno)
                }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 { throw FileSinkError.io("renaming \(from) to", to, errno: errno) }
        try syncDirectory()
    }

    /// Makes a rename durable.
    private func syncDirectory() throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
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
