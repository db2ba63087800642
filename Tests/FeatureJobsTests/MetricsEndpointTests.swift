import Foundation
import StreamTesting
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `txn-features --metrics-port`: a running job serves /metrics in Prometheus's text format, with
/// the series the alerts and the dashboard read (ops/prometheus, ops/grafana), and they move.
final class MetricsEndpointTests: XCTestCase {
    override class func tearDown() { JobTestStack.stop() }

    /// One scrape: series name → [labels text → value].
    typealias Scrape = [String: [String: Double]]

    static func scrape(port: Int) -> (status: Int, body: String)? { httpGet(port: port, path: "/metrics") }

    /// GET over a plain socket (what Prometheus does), HTTP/1.1 with Connection: close.
    static func httpGet(port: Int, path: String) -> (status: Int, body: String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return nil }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n"), let status = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        return (status, String(text[end.upperBound...]))
    }

    static func parse(_ text: String) -> Scrape {
        var out: Scrape = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            let name = series.firstIndex(of: "{").map { String(series[..<$0]) } ?? String(series)
            let labels = series.firstIndex(of: "{").map { String(series[$0...]) } ?? ""
            out[name, default: [:]][labels] = value
        }
        return out
    }

    static func total(_ s: Scrape, _ name: String, where filter: (String) -> Bool = { _ in true }) -> Double {
        (s[name] ?? [:]).filter { filter($0.key) }.values.reduce(0, +)
    }

    /// The `tributary_*` names of the feature contract's metrics (`CONTRACT_METRICS` in
    /// scripts/check_ops.py), histograms as their `_bucket` series.
    static func contractJobMetrics() throws -> [String] {
        let text = try String(contentsOfFile: JobTestStack.root + "/scripts/check_ops.py", encoding: .utf8)
        func names(_ set: String) throws -> [String] {
            let start = try XCTUnwrap(text.range(of: set + " = frozenset({"), "no \(set) in check_ops.py")
            let end = try XCTUnwrap(text.range(of: "})", range: start.upperBound..<text.endIndex))
            return text[start.upperBound..<end.lowerBound].split(separator: "\"").enumerated()
                .filter { $0.offset % 2 == 1 }.map { String($0.element) }
        }
        let histograms = Set(try names("CONTRACT_HISTOGRAMS"))
        return try names("CONTRACT_METRICS").filter { $0.hasPrefix("tributary_") }
            .map { histograms.contains($0) ? $0 + "_bucket" : $0 }
    }

    func testARunningJobServesItsMetricsAndTheyMove() throws {
        let (bootstrap, redisPort) = try JobTestStack.ready()
        let t = try JobTestStack.topics(["txn": 4, "devices": 2])
        let (_, flags) = TxnFeaturesJobTests.generatorConfig(seed: 11, count: 20_000)
        try JobTestStack.generate("txn,devices", count: 20_000, seed: 11, topics: t, extra: flags)

        let port = TestProcesses.freePorts(1)[0]
        let chk = JobTestStack.tempDir("metrics-chk"), offline = JobTestStack.tempDir("metrics-offline")
        let job = try SpawnedProcess([
            JobTestStack.binaries + "/txn-features", "--bootstrap", bootstrap, "--redis", "127.0.0.1:\(redisPort)",
            "--checkpoint-dir", chk, "--checkpoint-interval", "300ms", "--offline-dir", offline,
            "--registry", JobTestStack.root + "/schemas/registry.json", "--group-id", "metrics-\(UUID().uuidString.prefix(8))",
            "--starting-offsets", "earliest", "--features-topic", "none", "--progress-seconds", "0",
            "--txn-topic", t["txn"]!, "--device-topic", t["devices"]!, "--metrics-port", "\(port)"])

        // The first scrape once the first batch is in and a checkpoint has completed.
        func scrapeWhen(_ what: String, _ ready: (Scrape) -> Bool) throws -> Scrape {
            let deadline = Date().addingTimeInterval(90)
            var last: Scrape = [:]
            while Date() < deadline {
                XCTAssertNil(job.poll(), "txn-features ended: \(job.output())")
                if job.poll() != nil { break }
                if let (code, body) = Self.scrape(port: port) {
                    XCTAssertEqual(code, 200)
                    last = Self.parse(body)
                    if ready(last) { return last }
                }
                usleep(200_000)
            }
            XCTFail("\(what) did not happen in 90 s; last scrape has \(last.keys.sorted())\n\(job.output())")
            return last
        }
        let txnTopic = { (labels: String) in labels.contains("topic=\"\(t["txn"]!)\"") }
        let a = try scrapeWhen("reading the first 20 000 transactions and a checkpoint") {
            Self.total($0, "tributary_source_records_total", where: txnTopic) >= 20_000
                && Self.total($0, "tributary_checkpoints_completed_total") >= 1
        }

        // Every job series of the feature contract (scripts/check_ops.py, which holds the alert
        // rules and the dashboard to it), and the job's other series, labelled with the job.
        let contract = try Self.contractJobMetrics()
        XCTAssertGreaterThan(contract.count, 15)
        let expected = contract + [
            "tributary_source_records_total", "tributary_records_in_total", "tributary_records_out_total",
            "tributary_kafka_consumer_lag_records", "tributary_watermark_lag_seconds",
            "tributary_busy_seconds_total", "tributary_idle_seconds_total", "tributary_backpressured_seconds_total",
            "tributary_checkpoint_duration_seconds_bucket", "tributary_checkpoints_completed_total",
            "tributary_checkpoint_failures_total", "tributary_last_checkpoint_id", "tributary_last_checkpoint_timestamp_seconds",
            "tributary_checkpoint_size_bytes", "tributary_state_size_bytes",
            "tributary_dlq_records_total", "tributary_sink_latency_seconds_bucket", "tributary_sink_records_total",
            "tributary_event_to_feature_latency_seconds_bucket", "tributary_read_to_feature_latency_seconds_bucket",
            "process_cpu_seconds_total", "process_resident_memory_bytes",
        ]
        for name in expected {
            let series = a[name] ?? [:]
            XCTAssertFalse(series.isEmpty, "no \(name) in the scrape")
            for labels in series.keys { XCTAssertTrue(labels.contains("job=\"txn-features\""), "\(name)\(labels) has no job label") }
        }
        // Per operator and subtask, per partition, by reason.
        XCTAssertTrue((a["tributary_records_in_total"] ?? [:]).keys.contains { $0.contains("operator=\"card features\"") && $0.contains("subtask=\"1\"") })
        XCTAssertEqual((a["tributary_kafka_consumer_lag_records"] ?? [:]).keys.filter(txnTopic).count, 4, "one lag series per partition")
        XCTAssertTrue((a["tributary_dlq_records_total"] ?? [:]).keys.contains { $0.contains("reason=") && txnTopic($0) })
        XCTAssertEqual(Self.total(a, "tributary_checkpoint_failures_total"), 0)
        let lag = Self.total(a, "tributary_watermark_lag_seconds", where: { $0.contains("operator=\"card features\"") })
        XCTAssertGreaterThan(lag, 0, "the watermark trails processing time")

        // A second batch: the counters move, the checkpoint id and time go up.
        try JobTestStack.generate("txn", count: 10_000, seed: 12, topics: t, extra: flags)
        let b = try scrapeWhen("reading the second batch and another checkpoint") {
            Self.total($0, "tributary_source_records_total", where: txnTopic) >= 30_000
                && Self.total($0, "tributary_last_checkpoint_id") > Self.total(a, "tributary_last_checkpoint_id")
                && Self.total($0, "tributary_sink_records_total") > Self.total(a, "tributary_sink_records_total")
        }
        for name in ["tributary_records_in_total", "tributary_records_out_total", "tributary_checkpoints_completed_total",
                     "tributary_busy_seconds_total", "tributary_event_to_feature_latency_seconds_count",
                     "tributary_sink_latency_seconds_count", "tributary_last_checkpoint_timestamp_seconds", "process_cpu_seconds_total"] {
            XCTAssertGreaterThan(Self.total(b, name), Self.total(a, name), "\(name) did not move")
        }
        // Consumer lag drops to zero once everything is read.
        _ = try scrapeWhen("the consumer lag to reach 0") { Self.total($0, "tributary_kafka_consumer_lag_records", where: txnTopic) == 0 }

        // Not found elsewhere; the job still stops cleanly with a savepoint.
        XCTAssertEqual(Self.httpGet(port: port, path: "/nothing")?.status, 404)
        kill(job.pid, SIGTERM)
        XCTAssertEqual(job.wait(), 0, job.output())
        XCTAssertTrue(job.output().contains("serving Prometheus metrics on http://0.0.0.0:\(port)/metrics"), job.output())
    }

    /// A port that is taken fails fast, saying what to do.
    func testATakenMetricsPortIsAClearError() throws {
        let (bootstrap, redisPort) = try JobTestStack.ready()
        let (fd, port) = TestProcesses.loopbackSocket()
        defer { close(fd) }
        listen(fd, 1)
        let r = TestProcesses.run([JobTestStack.binaries + "/txn-features", "--bootstrap", bootstrap, "--redis", "127.0.0.1:\(redisPort)",
                                   "--registry", JobTestStack.root + "/schemas/registry.json", "--metrics-host", "127.0.0.1",
                                   "--metrics-port", "\(port)", "--checkpoint-dir", "none"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot serve /metrics on 127.0.0.1:\(port)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("--metrics-port"), r.stderr)
    }
}
