#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A checkpoint storage failure, with a message that says what happened and where.
public struct CheckpointStorageError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }

    static func io(_ what: String, _ path: String, errno code: Int32 = errno) -> CheckpointStorageError {
        CheckpointStorageError("\(what) '\(path)' failed: \(String(cString: strerror(code)))")
    }
}

/// POSIX file operations for checkpoint storage: whole-file reads and durable writes.
enum CheckpointFiles {
    /// Writes `bytes` to a new file at `path` (it must not exist) and fsyncs it.
    static func writeDurably(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointStorageError.io("creating", path) }
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(path) }
        }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CheckpointStorageError.io("writing", path)
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw CheckpointStorageError.io("fsync of", path) }
        ok = true
    }

    /// fsyncs a directory, so entries created or renamed in it are durable.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointStorageError.io("opening directory", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw CheckpointStorageError.io("fsync of directory", path) }
    }

    /// Makes `to` (which must not exist) a hard link to `from`, or a durable copy when the two are
    /// on different file systems.
    static func linkOrCopy(from: String, to: String) throws {
        if link(from, to) != 0 { try writeDurably(to, try readAll(from)) }
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointStorageError.io("opening", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CheckpointStorageError.io("stat of", path) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        try out.withUnsafeMutableBytes { raw in
            while done < raw.count {
                let n = read(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CheckpointStorageError.io("reading", path)
                }
                if n == 0 { break }
                done += n
            }
        }
        if done < out.count { out.removeSubrange(done...) }
        return out
    }

    /// The size of a regular file, or nil if there is none.
    static func fileSize(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String) throws {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw CheckpointStorageError.io("creating directory", prefix)
            }
        }
        guard isDirectory(path) else { throw CheckpointStorageError("'\(path)' exists and is not a directory") }
    }

    static func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o755) == 0 else { throw CheckpointStorageError.io("creating directory", path) }
    }

    static func renameItem(_ from: String, _ to: String) throws {
        guard rename(from, to) == 0 else { throw CheckpointStorageError.io("renaming '\(from)' to", to) }
    }

    /// Names in a directory, without "." and "..".
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw CheckpointStorageError.io("listing", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `rm -r` (does not follow symbolic links).
    static func removeTree(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw CheckpointStorageError.io("stat of", path)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in try list(path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 || errno == ENOENT else { throw CheckpointStorageError.io("removing directory", path) }
        } else {
            guard unlink(path) == 0 || errno == ENOENT else { throw CheckpointStorageError.io("removing", path) }
        }
    }

    /// A random lower-case hex suffix for temporary names.
    static func randomSuffix() -> String {
        var g = SystemRandomNumberGenerator()
        return XXHash64.hex(g.next())
    }
}
