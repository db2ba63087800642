#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with one condition variable. Taken once per batch or wake-up, never per record.
@usableFromInline
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    @usableFromInline
    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        cond = .allocate(capacity: 1)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    @usableFromInline func lock() { pthread_mutex_lock(mutex) }
    @usableFromInline func unlock() { pthread_mutex_unlock(mutex) }

    @usableFromInline
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits on the condition (lock held) for at most `timeoutMillis`.
    func wait(timeoutMillis ms: Int64) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var nanos = Int64(now.tv_nsec) + (ms % 1000) * 1_000_000
        var deadline = timespec(tv_sec: now.tv_sec + Int(ms / 1000) + Int(nanos / 1_000_000_000), tv_nsec: 0)
        nanos %= 1_000_000_000
        deadline.tv_nsec = Int(nanos)
        pthread_cond_timedwait(cond, mutex, &deadline)
    }

    func signal() { pthread_cond_signal(cond) }
}

/// Starts a joinable thread running `body`.
final class NativeThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: @Sendable () -> Void

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, 8 << 20)
        let rc = pthread_create(&handle, &attr, { raw in
            let thread = Unmanaged<NativeThread>.fromOpaque(raw!).takeRetainedValue()
            thread.body()
            return nil
        }, box)
        pthread_attr_destroy(&attr)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    func join() { pthread_join(handle, nil) }
}
