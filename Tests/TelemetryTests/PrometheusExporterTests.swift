import CoreMetrics
import Foundation
import StreamCore
import StreamTesting
import Telemetry
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The exporter in this process: swift-metrics bootstrapped to Prometheus (once), the runtime's
/// per-operator figures read from a running job at each scrape, and the HTTP endpoint.
final class PrometheusExporterTests: XCTestCase {
    static let exporter: PrometheusExporter = {
        try! PrometheusExporter.start(job: "telemetry-test", host: "127.0.0.1", port: 0)
    }()

    func text() -> String { String(decoding: Self.exporter.scrape(), as: UTF8.self) }

    func value(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    /// The sum over the series `name` whose labels contain every one of `labels`; nil if none.
    func sum(_ text: String, _ name: String, _ labels: [String]) -> Double? {
        let values = text.split(separator: "\n").filter { line in
            line.hasPrefix(name + "{") && labels.allSatisfy { line.contains($0) }
        }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        return values.isEmpty ? nil : values.reduce(0, +)
    }

    func testSwiftMetricsSeriesCarryTheJobLabel() throws {
        _ = Self.exporter
        let c = CoreMetrics.Counter(label: "telemetry_test_events_total", dimensions: [("kind", "a")])
        c.increment(by: 3)
        XCTAssertEqual(value(text(), "telemetry_test_events_total{job=\"telemetry-test\",kind=\"a\"}"), 3)
        c.increment(by: 2)
        XCTAssertEqual(value(text(), "telemetry_test_events_total{job=\"telemetry-test\",kind=\"a\"}"), 5)
        // A second bootstrap is the same registry (swift-metrics bootstraps once per process).
        XCTAssertTrue(PrometheusExporter.bootstrap(job: "other") === Self.exporter.registry)
    }

    /// A job that runs a few seconds: its operators' records and watermark lag show while it runs.
    func testARunningJobsOperatorsAreReported() throws {
        _ = Self.exporter
        let env = StreamExecutionEnvironment(parallelism: 2)
        env.autoWatermarkInterval = .milliseconds(20)
        let start = Int64(Date().timeIntervalSince1970 * 1000) - 60_000
        env.fromSource(DataGeneratorSource(count: 40_000, timestamp: { start + $0 }) { $0 },
                       watermarkStrategy: WatermarkStrategy<Int64>.forBoundedOutOfOrderness(.seconds(1)), name: "numbers")
            .map(name: "slow map") { v -> Int64 in usleep(100); return v }
            .keyBy { $0 % 10 }
            .map(name: "keyed map") { $0 }
            .sinkTo(DiscardingSink<Int64>(), name: "discard")
        let client = try env.executeAsync("telemetry job")
        var seen: String?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let t = text()
            if let n = sum(t, "tributary_records_in_total", ["job=\"telemetry-test\"", "operator=\"keyed map\""]), n > 0,
               sum(t, "tributary_watermark_lag_seconds", ["operator=\"keyed map\""]) != nil {
                seen = t
                break
            }
            usleep(50_000)
        }
        _ = try client.waitForResult()
        let t = try XCTUnwrap(seen, "no records in for 'keyed map' while the job ran:\n\(text())")
        let lag = try XCTUnwrap(sum(t, "tributary_watermark_lag_seconds", ["operator=\"keyed map\"", "subtask=\"0\""])
            ?? sum(t, "tributary_watermark_lag_seconds", ["operator=\"keyed map\"", "subtask=\"1\""]))
        XCTAssertGreaterThan(lag, 55, "event time runs a minute behind the wall clock here")
        // Two operators named alike are two series (operator_id tells them apart).
        let mapIds = Set(t.split(separator: "\n").filter { $0.hasPrefix("tributary_records_in_total{") && $0.contains("map\"") }
            .compactMap { $0.split(separator: ",").first { $0.hasPrefix("operator_id=") } })
        XCTAssertEqual(mapIds.count, 2, "\(mapIds)")
        for name in ["tributary_busy_seconds_total", "tributary_idle_seconds_total", "tributary_backpressured_seconds_total",
                     "tributary_records_out_total", "process_cpu_seconds_total", "process_resident_memory_bytes"] {
            XCTAssertTrue(t.contains("\n" + name), "no \(name)")
        }
        // After the job: the counters hold its final totals (every record into the keyed map once).
        let after = text()
        XCTAssertEqual(sum(after, "tributary_records_in_total", ["operator=\"keyed map\""]), 40_000)
        XCTAssertEqual(sum(after, "tributary_records_in_total", ["operator=\"slow map\""]), 40_000)
    }
}
