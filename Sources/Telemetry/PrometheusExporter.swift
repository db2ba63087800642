import CoreMetrics
import Foundation
import Prometheus
import StreamCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A process's metrics in Prometheus's text format on `GET /metrics` (Flink's
/// `PrometheusReporter`, `metrics.reporter.prom.port`).
///
/// Everything a library emits through swift-metrics (checkpoints, Kafka lag, DLQ, sinks, the jobs'
/// own series) lands in one Prometheus registry, bootstrapped here once per process; every series
/// carries `job="<job>"`. The runtime's per-operator figures (records in/out, late records dropped,
/// watermark lag, busy / idle / back-pressured time) are read from the running jobs at each scrape
/// (`RuntimeMetricsReporter`), so the record path pays nothing for them.
public final class PrometheusExporter: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// The port it listens on (the one asked for, or the one the system chose for port 0).
    public let port: Int
    private let socket: Int32
    private let reporter: RuntimeMetricsReporter

    /// The registry swift-metrics was bootstrapped with in this process, and the job it labels.
    private static let bootstrapped = Mutex<(registry: PrometheusCollectorRegistry, job: String)?>(nil)

    /// Bootstraps swift-metrics with a Prometheus registry labelling every series `job=<job>` —
    /// once per process; later calls return the same registry. Call it before building the job:
    /// metric handles made before the bootstrap stay no-ops.
    public static func bootstrap(job: String) -> PrometheusCollectorRegistry {
        bootstrapped.withLock { current in
            if let current { return current.registry }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            // Job-wide series: latencies in ms–s, checkpoint durations in ms–min.
            let latencyBuckets: [Duration] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000].map { .milliseconds($0) }
            factory.defaultDurationHistogramBuckets = latencyBuckets
            factory.durationHistogramBuckets["tributary_checkpoint_duration_seconds"] =
                [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000].map { .milliseconds($0) }
            factory.nameAndLabelSanitizer = { name, labels in
                labels.contains { $0.0 == "job" } ? (name, labels) : (name, [("job", job)] + labels)
            }
            MetricsSystem.bootstrap(factory)
            current = (registry, job)
            return registry
        }
    }

    /// Bootstraps (see `bootstrap`) and serves `/metrics` on `host:port` from a thread of its own,
    /// for the life of the process.
    /// Throws, saying what to change, when the port cannot be bound.
    public static func start(job: String, host: String = "0.0.0.0", port: Int) throws -> PrometheusExporter {
        let registry = bootstrap(job: job)
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MetricsEndpointError("cannot open a socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw MetricsEndpointError("'\(host)' is not an IPv4 address (--metrics-host)")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw MetricsEndpointError("cannot serve /metrics on \(host):\(port): \(why) (another process has the port? pass a free one with --metrics-port or METRICS_PORT)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let exporter = PrometheusExporter(registry: registry, socket: fd, port: Int(UInt16(bigEndian: actual.sin_port)))
        let thread = Thread { exporter.serve() }
        thread.name = "metrics-http"
        thread.start()
        return exporter
    }

    private init(registry: PrometheusCollectorRegistry, socket: Int32, port: Int) {
        self.registry = registry
        self.socket = socket
        self.port = port
        self.reporter = RuntimeMetricsReporter()
    }

    /// The text a scrape gets now: the runtime's figures brought up to date, then the registry.
    public func scrape() -> [UInt8] {
        reporter.report()
        var out: [UInt8] = []
        out.reserveCapacity(64 * 1024)
        registry.emit(into: &out)
        return out
    }

    private func serve() {
        blockStopSignals()
        while true {
            let client = accept(socket, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            handle(client)
            close(client)
        }
    }

    /// One request per connection: `GET /metrics` (or `/`), answered and closed.
    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            request.append(contentsOf: chunk[0..<n])
            if request.firstRange(of: [13, 10, 13, 10]) != nil { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let (status, type, body): (String, String, [UInt8])
        if line.count >= 2, line[0] == "GET" || line[0] == "HEAD" {
            let path = line[1].split(separator: "?").first.map(String.init) ?? ""
            if path == "/metrics" {
                (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", scrape())
            } else if path == "/" {
                (status, type, body) = ("200 OK", "text/plain; charset=utf-8", Array("Tributary metrics: GET /metrics\n".utf8))
            } else {
                (status, type, body) = ("404 Not Found", "text/plain; charset=utf-8", Array("not found: try /metrics\n".utf8))
            }
        } else {
            (status, type, body) = ("405 Method Not Allowed", "text/plain; charset=utf-8", Array("GET /metrics\n".utf8))
        }
        var response = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        if line.first != "HEAD" { response += body }
        var sent = 0
        while sent < response.count {
            let n = response.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }
}

public struct MetricsEndpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
