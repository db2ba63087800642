#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh directory under /tmp, removed with its content when released.
public final class TemporaryDirectory {
    public let path: String

    public init() throws {
        var template = Array("/tmp/tributary-test-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TemporaryDirectoryError()
        }
        path = String(cString: p)
    }

    deinit { _ = system("rm -rf '\(path)'") }
}

public struct TemporaryDirectoryError: Error, CustomStringConvertible {
    public var description: String { "mkdtemp failed: cannot create a directory under /tmp" }
}
