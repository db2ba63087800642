import CoreMetrics
import Synchronization

/// Counters and the event → online latency of a running feature job, shared by its threads
/// (updated per batch or per rare event, never under contention per record), for the progress
/// line and the summary.
public final class JobStats: Sendable {
    public let recordsIn = Atomic<Int64>(0)
    /// Records of the inputs that are not counted as events (txn-features' device records).
    public let sideRecordsIn = Atomic<Int64>(0)
    public let outOfRange = Atomic<Int64>(0)
    public let onlineRows = Atomic<Int64>(0)
    public let offlineRows = Atomic<Int64>(0)
    public let deadLetters = Atomic<Int64>(0)
    let reasons = Mutex<[String: Int64]>([:])
    /// Latency histogram: bucket i holds latencies in [i, i+1) ms below 1 000 ms, then 10 ms buckets to 60 s.
    let latency = Mutex<[Int64]>(Array(repeating: 0, count: 1_000 + 5_900 + 1))
    /// The same for event → read by the job's source (the broker's part of the latency).
    let sourceLatency = Mutex<[Int64]>(Array(repeating: 0, count: 1_000 + 5_900 + 1))

    /// The same latencies through swift-metrics (Prometheus histograms when the job serves /metrics):
    /// event → in Redis, event → read by the job (sampled), read → in Redis.
    let eventToFeature = CoreMetrics.Timer(label: "tributary_event_to_feature_latency_seconds")
    let eventToRead = CoreMetrics.Timer(label: "tributary_event_to_read_latency_seconds")
    let readToFeature = CoreMetrics.Timer(label: "tributary_read_to_feature_latency_seconds")

    public init() {}

    public func deadLetter(reason: String) {
        deadLetters.add(1, ordering: .relaxed)
        reasons.withLock { $0[reason, default: 0] += 1 }
    }

    public var deadLetterReasons: [String: Int64] { reasons.withLock { $0 } }

    /// The job's own part: read from the source → in Redis.
    let jobLatency = Mutex<[Int64]>(Array(repeating: 0, count: 1_000 + 5_900 + 1))

    public func observeLatency(_ millis: [Int64], fromRead: [Int64] = []) {
        Self.record(millis, into: latency)
        for m in millis { eventToFeature.recordMilliseconds(max(0, m)) }
        if !fromRead.isEmpty {
            Self.record(fromRead, into: jobLatency)
            for m in fromRead { readToFeature.recordMilliseconds(max(0, m)) }
        }
    }

    /// Event → source read, sampled by the caller.
    public func observeSourceLatency(_ millis: Int64) {
        Self.record([millis], into: sourceLatency)
        eventToRead.recordMilliseconds(max(0, millis))
    }

    static func record(_ millis: [Int64], into histogram: borrowing Mutex<[Int64]>) {
        histogram.withLock { h in
            for m in millis {
                let v = max(0, m)
                let i = v < 1_000 ? Int(v) : min(h.count - 1, 1_000 + Int((v - 1_000) / 10))
                h[i] += 1
            }
        }
    }

    /// The latency at quantile `q` (0...1) in ms, or nil without observations.
    public enum LatencyKind { case eventToRedis, eventToRead, readToRedis }

    public func latencyQuantile(_ q: Double, _ kind: LatencyKind = .eventToRedis) -> Int64? {
        let h: [Int64]
        switch kind {
        case .eventToRedis: h = latency.withLock { $0 }
        case .eventToRead: h = sourceLatency.withLock { $0 }
        case .readToRedis: h = jobLatency.withLock { $0 }
        }
        let total = h.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = Int64((Double(total) * q).rounded(.up))
        var seen: Int64 = 0
        for (i, c) in h.enumerated() {
            seen += c
            if seen >= max(1, rank) { return i < 1_000 ? Int64(i) : 1_000 + Int64(i - 1_000) * 10 }
        }
        return nil
    }

    public var latencyCount: Int64 { latency.withLock { $0.reduce(0, +) } }
}
