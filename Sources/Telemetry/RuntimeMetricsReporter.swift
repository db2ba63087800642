import CoreMetrics
import StreamCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Brings the runtime's figures into swift-metrics at each scrape: per operator and subtask
/// (labels `operator`, `operator_id` — the graph node, as names repeat — and `subtask`)
/// `tributary_records_in_total`, `tributary_records_out_total`,
/// `tributary_late_records_dropped_total` and `tributary_watermark_lag_seconds` (processing time
/// − the operator's input watermark); per slot `tributary_busy_seconds_total`,
/// `tributary_idle_seconds_total`, `tributary_backpressured_seconds_total`; and the process's
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_start_time_seconds`.
/// Counters go up by what changed since the last scrape.
final class RuntimeMetricsReporter: Sendable {
    private struct State {
        var counters: [String: (handle: FloatingPointCounter, last: Double)] = [:]
        var gauges: [String: Gauge] = [:]
    }
    private let state = Mutex(State())
    private let startTime: Double

    init() {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let uptime = Self.uptimeSeconds()
        startTime = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 - uptime
    }

    func report() {
        let readings = RunningJobs.readings()
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let nowMillis = Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
        state.withLock { st in
            for job in readings {
                for op in job.operators {
                    let labels = [("operator", op.operatorName), ("operator_id", String(op.operatorId)),
                                  ("subtask", String(op.subtaskIndex))]
                    Self.count(&st, "tributary_records_in_total", labels, Double(op.recordsIn))
                    Self.count(&st, "tributary_records_out_total", labels, Double(op.recordsOut))
                    if let late = op.counters["numLateRecordsDropped"] {
                        Self.count(&st, "tributary_late_records_dropped_total", labels, Double(late))
                    }
                    if let wm = op.inputWatermark, wm > Timestamps.minWatermark, wm < Timestamps.maxWatermark {
                        Self.gauge(&st, "tributary_watermark_lag_seconds", labels, Double(nowMillis - wm) / 1000)
                    }
                }
                for slot in job.slots {
                    let labels = [("subtask", String(slot.subtaskIndex))]
                    Self.count(&st, "tributary_busy_seconds_total", labels, Double(slot.busyNanos) / 1e9)
                    Self.count(&st, "tributary_idle_seconds_total", labels, Double(slot.idleNanos) / 1e9)
                    Self.count(&st, "tributary_backpressured_seconds_total", labels, Double(slot.backPressuredNanos) / 1e9)
                }
            }
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
            Self.count(&st, "process_cpu_seconds_total", [], cpu)
            Self.gauge(&st, "process_resident_memory_bytes", [], Double(Self.residentBytes()))
            Self.gauge(&st, "process_start_time_seconds", [], startTime)
        }
    }

    /// Raises a counter to `value` (a reading of a monotone figure). A figure lower than the last
    /// one is a new job run in this process: it counts from zero again.
    private static func count(_ st: inout State, _ name: String, _ labels: [(String, String)], _ value: Double) {
        let key = name + labels.map { "|\($0.1)" }.joined()
        let entry = st.counters[key] ?? (FloatingPointCounter(label: name, dimensions: labels), 0)
        let delta = value >= entry.last ? value - entry.last : value
        if delta > 0 { entry.handle.increment(by: delta) }
        st.counters[key] = (entry.handle, value)
    }

    private static func gauge(_ st: inout State, _ name: String, _ labels: [(String, String)], _ value: Double) {
        let key = name + labels.map { "|\($0.1)" }.joined()
        let g = st.gauges[key] ?? Gauge(label: name, dimensions: labels)
        st.gauges[key] = g
        g.record(value)
    }

    /// Resident set size from /proc/self/statm (pages × page size).
    static func residentBytes() -> Int {
        let fields = firstLine("/proc/self/statm").split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func firstLine(_ path: String) -> String {
        guard let f = fopen(path, "r") else { return "" }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard fgets(&buffer, Int32(buffer.count), f) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Seconds since this process started (/proc/self/stat's start time against the uptime).
    static func uptimeSeconds() -> Double {
        let text = firstLine("/proc/self/stat")
        // Fields after the command name (which may hold spaces) start after the last ')'.
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // Field 22 (starttime, clock ticks since boot) is the 20th after ')'.
        guard fields.count > 19, let ticks = Double(fields[19]) else { return 0 }
        var boot = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let sinceBoot = Double(boot.tv_sec) + Double(boot.tv_nsec) / 1e9
        return max(0, sinceBoot - ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
    }
}
