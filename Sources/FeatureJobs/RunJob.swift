import Foundation
import Kafka
import StreamCore
import Telemetry

#if canImport(Glibc)
import Glibc
#endif

/// The whole life of a feature job process: settings, connections, the graph, restore, run until
/// the input ends (`--bounded`) or SIGTERM/SIGINT (then a savepoint), the summary. Exit codes:
/// 0 done, 2 bad settings or an unreachable dependency, 1 the job failed.
public func runFeatureJob(_ job: String, topics: @escaping (JobSettings) -> [String],
                          build: (StreamExecutionEnvironment, FeatureJobContext) throws -> Void) -> Never {
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.contains("--help") || arguments.contains("-h") {
        print(JobSettings.usage(job))
        fflush(nil)
        exit(0)
    }
    let settings: JobSettings
    let ctx: FeatureJobContext
    do {
        settings = try JobSettings.parse(job: job, arguments: arguments, environment: ProcessInfo.processInfo.environment)
        // Before anything makes a metric handle: handles made before the bootstrap stay no-ops.
        if let port = settings.metricsPort {
            let exporter = try PrometheusExporter.start(job: job, host: settings.metricsHost, port: port)
            writeStderr("\(job): serving Prometheus metrics on http://\(settings.metricsHost):\(exporter.port)/metrics")
        }
        ctx = try FeatureJobContext(settings: settings)
        try ctx.checkConnections(topics: topics(settings))
    } catch {
        writeStderr("\(job): \(error)")
        exit(2)
    }
    do {
        let env = StreamExecutionEnvironment(parallelism: settings.parallelism)
        env.autoWatermarkInterval = settings.autoWatermarkInterval
        env.bufferTimeout = settings.bufferTimeout
        let (restored, warnings) = try settings.checkpointing.apply(to: env)
        for w in warnings { writeStderr("\(job): \(w)") }
        try build(env, ctx)
        writeStderr("\(job): \(restored.map { "restored checkpoint \($0)" } ?? "starting fresh") — broker \(settings.bootstrap), Redis \(settings.writeOnline ? "\(settings.redisHost):\(settings.redisPort)" : "off"), offline log \(settings.writeOffline ? settings.offlineDir : "off"), parallelism \(settings.parallelism)\(settings.bounded ? ", bounded" : "")")
        let stopProgress = ctx.startProgress()
        let started = Date()
        let checkpoints: String
        if settings.checkpointing.checkpointDirectory != nil {
            switch try env.executeStoppingOnSignal(job) {
            case .finished:
                checkpoints = "finished with a final checkpoint in \(settings.checkpointing.checkpointDirectory!)"
            case .stoppedWithSavepoint(let id, let signal):
                checkpoints = "stopped by signal \(signal) with savepoint \(id) in \(settings.checkpointing.checkpointDirectory!)"
            }
        } else {
            _ = try env.execute(job)
            checkpoints = "none (no --checkpoint-dir)"
        }
        stopProgress()
        let summary = ctx.summary(checkpoints: checkpoints + (restored.map { "; restored from \($0)" } ?? ""),
                                  seconds: Date().timeIntervalSince(started))
        print(summary)
        fflush(nil)
        exit(0)
    } catch let e as JobConfigurationError {
        writeStderr("\(job): \(e)")
        exit(2)
    } catch {
        writeStderr("\(job): failed: \(error)")
        exit(1)
    }
}
