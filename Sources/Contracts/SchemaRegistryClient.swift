import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a codec finds a writer schema that its local `ContractRegistry` does not have.
public protocol SchemaLookup: Sendable {
    func schema(id: Int32) throws -> AvroSchema
}

/// A failed call to a Schema Registry: the HTTP status and Confluent `error_code` when the registry
/// answered, or why it could not be reached.
public struct SchemaRegistryError: Error, CustomStringConvertible, Sendable {
    /// The registry's base URL, as given to the client.
    public let registry: String
    /// The request, e.g. `GET /subjects/x/versions/latest` (nil for errors outside a request).
    public let request: String?
    /// The HTTP status, when the registry answered.
    public let status: Int?
    /// Confluent's `error_code` from the body (40401 subject not found, 40403 schema not found, …).
    public let errorCode: Int?
    /// The registry's message, or what went wrong.
    public let message: String
    /// The registry could not be reached or gave no usable HTTP answer (connection refused, timeout,
    /// reset): worth retrying, unlike an answer.
    public let isUnreachable: Bool

    public init(registry: String, request: String? = nil, status: Int? = nil, errorCode: Int? = nil, message: String,
                isUnreachable: Bool = false) {
        self.registry = registry
        self.request = request
        self.status = status
        self.errorCode = errorCode
        self.message = message
        self.isUnreachable = isUnreachable
    }

    /// A subject or version that is not there (40401 subject, 40402 version).
    public var isSubjectNotFound: Bool { errorCode == 40401 || errorCode == 40402 }
    /// A schema id that is not there (40403).
    public var isSchemaNotFound: Bool { errorCode == 40403 }

    /// `schema registry http://127.0.0.1:8081: subject 'x' not found (404, error_code 40401; GET /subjects/x/versions/latest)`
    public var description: String {
        var text = message
        while text.hasSuffix(".") { text.removeLast() }
        // "Subject 'x' not found" reads as "subject 'x' not found" after the colon; "HTTP …" stays.
        if let first = text.first, first.isUppercase, text.dropFirst().first?.isLowercase == true {
            text = first.lowercased() + text.dropFirst()
        }
        var details: [String] = []
        if let status { details.append(errorCode.map { "\(status), error_code \($0)" } ?? "\(status)") }
        if let request { details.append(request) }
        return "schema registry \(registry): \(text)" + (details.isEmpty ? "" : " (\(details.joined(separator: "; ")))")
    }
}

/// A client for the Confluent Schema Registry REST API (Confluent's, Karapace, Redpanda's, …):
/// schemas by id (cached: an id never changes its schema), registering versions, the latest version
/// of a subject, compatibility checks. Blocking calls, plain HTTP/1.1 over POSIX sockets with one
/// connection per request (`http://` only: put a TLS-terminating proxy in front for `https://`);
/// every call finishes or fails within `timeout`. Thread-safe.
public final class SchemaRegistryClient: SchemaLookup, @unchecked Sendable {
    public let baseURL: String
    public let timeout: Duration
    private let endpoint: Result<Endpoint, SchemaRegistryError>
    private let lock = NSLock()
    private var schemas: [Int32: AvroSchema] = [:]   // guarded by lock

    struct Endpoint {
        let host: String, port: Int, basePath: String
        var hostHeader: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
    }

    public init(baseURL: String, timeout: Duration = .seconds(5)) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.timeout = timeout
        endpoint = Self.parse(base)
    }

    static func parse(_ base: String) -> Result<Endpoint, SchemaRegistryError> {
        func bad(_ why: String) -> Result<Endpoint, SchemaRegistryError> { .failure(.init(registry: base, message: why)) }
        guard let url = URLComponents(string: base), let scheme = url.scheme?.lowercased() else {
            return bad("not a URL (expected http://host:port)")
        }
        if scheme == "https" {
            return bad("https is not supported by this client (plain HTTP/1.1 only): use an http:// URL, e.g. through a local TLS-terminating proxy")
        }
        guard scheme == "http" else { return bad("unsupported scheme '\(scheme)' (expected http://host:port)") }
        guard let host = url.host, !host.isEmpty else { return bad("no host in the URL") }
        if url.user != nil || url.password != nil { return bad("credentials in the URL are not supported") }
        let path = url.percentEncodedPath
        return .success(Endpoint(host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: url.port ?? 80,
                                 basePath: path == "/" ? "" : path))
    }

    // MARK: The API

    /// The schema registered under `id` (GET /schemas/ids/{id}); cached.
    public func schema(id: Int32) throws -> AvroSchema {
        if let cached = lock.withLock({ schemas[id] }) { return cached }
        let body = try call("GET", "/schemas/ids/\(id)")
        if let type = body["schemaType"] as? String, type != "AVRO" {
            throw SchemaRegistryError(registry: baseURL, request: "GET /schemas/ids/\(id)", message: "schema \(id) is \(type), not Avro")
        }
        guard let json = body["schema"] as? String else { throw malformed("GET /schemas/ids/\(id)", body) }
        let schema: AvroSchema
        do { schema = try AvroSchema(json: json) } catch {
            throw SchemaRegistryError(registry: baseURL, request: "GET /schemas/ids/\(id)", message: "schema \(id) does not parse: \(error)")
        }
        return lock.withLock {
            if let other = schemas[id] { return other }   // another thread was first: keep one
            schemas[id] = schema
            return schema
        }
    }

    /// Registers `schemaJSON` as the next version of `subject` (POST /subjects/{subject}/versions), or
    /// finds it registered already; returns its id.
    @discardableResult
    public func register(subject: String, schemaJSON: String) throws -> Int32 {
        let path = "/subjects/\(Self.escape(subject))/versions"
        let body = try call("POST", path, body: ["schema": schemaJSON])
        guard let id = (body["id"] as? NSNumber)?.int32Value else { throw malformed("POST \(path)", body) }
        return id
    }

    /// The latest version of `subject` (GET /subjects/{subject}/versions/latest).
    public func latestVersion(subject: String) throws -> (version: Int, id: Int32, schema: AvroSchema) {
        try version(path: "/subjects/\(Self.escape(subject))/versions/latest")
    }

    /// Version `version` of `subject` (GET /subjects/{subject}/versions/{version}).
    public func version(_ version: Int, subject: String) throws -> (version: Int, id: Int32, schema: AvroSchema) {
        try self.version(path: "/subjects/\(Self.escape(subject))/versions/\(version)")
    }

    private func version(path: String) throws -> (version: Int, id: Int32, schema: AvroSchema) {
        let body = try call("GET", path)
        guard let version = (body["version"] as? NSNumber)?.intValue, let id = (body["id"] as? NSNumber)?.int32Value,
              let json = body["schema"] as? String else { throw malformed("GET \(path)", body) }
        if let cached = lock.withLock({ schemas[id] }) { return (version, id, cached) }
        let schema: AvroSchema
        do { schema = try AvroSchema(json: json) } catch {
            throw SchemaRegistryError(registry: baseURL, request: "GET \(path)", message: "schema \(id) does not parse: \(error)")
        }
        lock.withLock { if schemas[id] == nil { schemas[id] = schema } }
        return (version, id, schema)
    }

    /// Whether `schemaJSON` may be registered as the next version of `subject` under the subject's
    /// compatibility level (POST /compatibility/subjects/{subject}/versions/latest).
    public func checkCompatibility(subject: String, schemaJSON: String) throws -> Bool {
        let path = "/compatibility/subjects/\(Self.escape(subject))/versions/latest"
        let body = try call("POST", path, body: ["schema": schemaJSON])
        guard let ok = body["is_compatible"] as? Bool else { throw malformed("POST \(path)", body) }
        return ok
    }

    /// The registered subjects (GET /subjects).
    public func subjects() throws -> [String] {
        let (status, data) = try exchange("GET", "/subjects", body: nil)
        let request = "GET /subjects"
        guard (200..<300).contains(status) else { throw answerError(request, status, data) }
        guard let list = (try? JSONSerialization.jsonObject(with: data)) as? [String] else {
            throw SchemaRegistryError(registry: baseURL, request: request, status: status, message: "the answer is not a list of subjects")
        }
        return list
    }

    // MARK: HTTP

    static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }

    private func malformed(_ request: String, _ body: [String: Any]) -> SchemaRegistryError {
        SchemaRegistryError(registry: baseURL, request: request, message: "unexpected answer: \(body)")
    }

    private func answerError(_ request: String, _ status: Int, _ data: Data) -> SchemaRegistryError {
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        let code = (json?["error_code"] as? NSNumber)?.intValue
        var message = json?["message"] as? String ?? ""
        if message.isEmpty {
            let text = String(decoding: data.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            message = "HTTP \(status)" + (text.isEmpty ? "" : ": \(text)")
        }
        return SchemaRegistryError(registry: baseURL, request: request, status: status, errorCode: code, message: message)
    }

    /// One request whose answer is a JSON object; non-2xx answers throw with their error_code.
    private func call(_ method: String, _ path: String, body: [String: Any]? = nil) throws -> [String: Any] {
        let payload = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let (status, data) = try exchange(method, path, body: payload)
        guard (200..<300).contains(status) else { throw answerError("\(method) \(path)", status, data) }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            let text = String(decoding: data.prefix(200), as: UTF8.self)
            throw SchemaRegistryError(registry: baseURL, request: "\(method) \(path)", status: status,
                                      message: "the answer is not a JSON object: \(text)")
        }
        return object
    }

    /// Sends one HTTP/1.1 request on a new connection (`Connection: close`); returns status and body.
    private func exchange(_ method: String, _ path: String, body: Data?) throws -> (Int, Data) {
        let ep = try endpoint.get()
        let request = "\(method) \(path)"
        func fail(_ why: String) -> SchemaRegistryError {
            SchemaRegistryError(registry: baseURL, request: request, message: why, isUnreachable: true)
        }
        let deadline = ContinuousClock.now + timeout

        let fd = try openConnection(ep, deadline: deadline, fail: fail)
        defer { close(fd) }

        var head = "\(method) \(ep.basePath)\(path) HTTP/1.1\r\nHost: \(ep.hostHeader)\r\nUser-Agent: tributary-contracts\r\n"
        head += "Accept: application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5\r\n"
        head += "Connection: close\r\n"
        if let body { head += "Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        var out = Array(head.utf8)
        if let body { out += body }
        var sent = 0
        while sent < out.count {
            try wait(fd, for: Int16(POLLOUT), deadline: deadline, fail: fail, doing: "sending the request")
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + sent, out.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                throw fail("sending the request failed: \(String(cString: strerror(errno)))")
            }
            sent += n
        }

        var input: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var parsed: (status: Int, bodyStart: Int, length: Int?, chunked: Bool)?
        while true {
            if let p = parsed {
                if let length = p.length, input.count - p.bodyStart >= length { break }
                if p.chunked, let _ = Self.dechunk(input[p.bodyStart...]) { break }
            }
            try wait(fd, for: Int16(POLLIN), deadline: deadline, fail: fail, doing: "waiting for the answer")
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                throw fail("reading the answer failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }   // the server closed: the answer is complete (or cut short, checked below)
            input += buffer[0..<n]
            if parsed == nil, let p = try Self.parseHead(input, fail: fail) { parsed = p }
        }
        guard let p = parsed else {
            throw fail(input.isEmpty ? "the connection closed without an answer" : "the answer is not HTTP")
        }
        let rest = input[p.bodyStart...]
        if p.chunked {
            guard let data = Self.dechunk(rest) else { throw fail("the chunked answer was cut short") }
            return (p.status, data)
        }
        if let length = p.length {
            guard rest.count >= length else { throw fail("the answer was cut short (\(rest.count) of \(length) bytes)") }
            return (p.status, Data(rest.prefix(length)))
        }
        return (p.status, Data(rest))
    }

    /// A non-blocking connect to the first address that takes it, within the deadline.
    private func openConnection(_ ep: Endpoint, deadline: ContinuousClock.Instant,
                         fail: (String) -> SchemaRegistryError) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(ep.host, String(ep.port), &hints, &list)
        guard rc == 0, let list else {
            throw fail("cannot resolve \(ep.host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = list
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
            if errno == EINPROGRESS {
                do {
                    try wait(fd, for: Int16(POLLOUT), deadline: deadline, fail: fail, doing: "connecting to \(ep.hostHeader)")
                } catch { close(fd); throw error }
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                if soError == 0 { return fd }
                lastError = String(cString: strerror(soError))
            } else {
                lastError = String(cString: strerror(errno))
            }
            close(fd)
        }
        throw fail("cannot connect to \(ep.hostHeader): \(lastError)")
    }

    /// Polls `fd` for `events` until the deadline; throws when it passes.
    private func wait(_ fd: Int32, for events: Int16, deadline: ContinuousClock.Instant,
                      fail: (String) -> SchemaRegistryError, doing what: String) throws {
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero { throw fail("no answer within \(timeout) (\(what))") }
            let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, Int32(clamping: ms))
            if n > 0 { return }   // ready, or an error the next call reports
            if n < 0 && errno != EINTR { throw fail("\(what): poll failed: \(String(cString: strerror(errno)))") }
        }
    }

    /// The status line and headers, once complete: status, where the body starts, Content-Length,
    /// chunked or not. Nil while the head is incomplete.
    static func parseHead(_ input: [UInt8], fail: (String) -> SchemaRegistryError) throws
        -> (status: Int, bodyStart: Int, length: Int?, chunked: Bool)? {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        guard input.count >= 4, let end = (0...(input.count - 4)).first(where: { input[$0..<$0 + 4].elementsEqual(crlfcrlf) }) else {
            if input.count > 65_536 { throw fail("the answer's headers exceed 64 KiB") }
            return nil
        }
        let lines = String(decoding: input[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw fail("the answer is not HTTP/1.x: \(lines[0].prefix(80))")
        }
        var length: Int?, chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" { length = Int(value) }
            if name == "transfer-encoding", value.lowercased().contains("chunked") { chunked = true }
        }
        if status == 204 || status == 304 { length = 0 }
        return (status, end + 4, chunked ? nil : length, chunked)
    }

    /// The body of a complete chunked transfer encoding; nil while incomplete.
    static func dechunk(_ bytes: ArraySlice<UInt8>) -> Data? {
        var out = Data()
        var i = bytes.startIndex
        while true {
            guard let lineEnd = bytes[i...].firstIndex(of: 13), lineEnd + 1 < bytes.endIndex, bytes[lineEnd + 1] == 10 else { return nil }
            let sizeText = String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            i = lineEnd + 2
            if size == 0 { return out }   // trailers, if any, are not needed
            guard bytes.endIndex - i >= size + 2 else { return nil }
            out.append(contentsOf: bytes[i..<i + size])
            i += size + 2
        }
    }
}
