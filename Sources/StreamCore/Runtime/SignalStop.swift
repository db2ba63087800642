import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Blocks `signals` on the calling thread. Threads a process starts beside a job that stops on a
/// signal (progress lines, /metrics) call it, so the signal reaches the job's signal thread and
/// starts the savepoint instead of landing on them.
public func blockStopSignals(_ signals: [Int32] = [SIGTERM, SIGINT]) {
    var set = signalSet(signals)
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

func signalSet(_ signals: [Int32]) -> sigset_t {
    var set = sigset_t()
    sigemptyset(&set)
    for s in signals { sigaddset(&set, s) }
    return set
}

/// How a job run with `executeStoppingOnSignal` ended.
public enum JobEnding: Sendable {
    /// The input ended and the job finished (with its final checkpoint, when checkpointing is on).
    case finished(JobExecutionResult)
    /// A signal arrived: a savepoint was taken (its id), then the job was stopped. Resume with
    /// `env.restoreFrom` set to it.
    case stoppedWithSavepoint(CheckpointId, signal: Int32)
}

extension StreamExecutionEnvironment {
    /// Runs the job; on SIGTERM or SIGINT takes a savepoint and stops (Flink's stop-with-savepoint),
    /// so a job can be stopped, upgraded and resumed without losing or repeating anything. Needs
    /// checkpointing (`enableCheckpointing`). The signals are blocked in the job's threads and taken
    /// by a dedicated thread, so no handler runs in the middle of a record.
    public func executeStoppingOnSignal(_ jobName: String = "Tributary job",
                                        signals: [Int32] = [SIGTERM, SIGINT]) throws -> JobEnding {
        guard checkpointConfig != nil else {
            throw CheckpointError("stopping with a savepoint needs checkpointing: call env.enableCheckpointing(...) first")
        }
        var set = signalSet(signals)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &set, &previous)   // inherited by every thread the job starts
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        let client = try executeAsync(jobName)
        let outcome = Mutex<(CheckpointId, Int32)?>(nil)
        let done = Atomic<Bool>(false)
        let failure = Mutex<(any Error)?>(nil)
        let blocked = set
        let waiter = NativeThread(name: "signals") {
            var set = blocked
            var signal: Int32 = 0
            while sigwait(&set, &signal) == 0 {
                if done.load(ordering: .acquiring) { return }
                do {
                    let id = try client.stopWithSavepoint()
                    outcome.withLock { $0 = (id, signal) }
                } catch {
                    failure.withLock { $0 = error }
                    client.cancel()
                }
                return
            }
        }
        let result = Result { try client.waitForResult() }
        done.store(true, ordering: .releasing)
        if outcome.withLock({ $0 }) == nil { kill(getpid(), signals[0]) }   // wake the waiter: it sees `done`
        waiter.join()
        // The wake-up signal above is also sent when the waiter had just taken a real signal and was
        // still taking the savepoint (cancelling the job ends `waitForResult` before the waiter
        // records the outcome). Nobody waits for it then: consume it while it is blocked, or
        // restoring the mask delivers it and SIGTERM's default action ends the process (exit 143
        // after the savepoint was stored — CrashTests saw it under load).
        var pending = sigset_t()
        sigpending(&pending)
        for s in signals where sigismember(&pending, s) == 1 {
            var one = sigset_t()
            sigemptyset(&one)
            sigaddset(&one, s)
            var taken: Int32 = 0
            sigwait(&one, &taken)
        }
        if let (id, signal) = outcome.withLock({ $0 }) { return .stoppedWithSavepoint(id, signal: signal) }
        if let error = failure.withLock({ $0 }) { throw error }
        return .finished(try result.get())
    }
}
