#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with two condition variables. Used once per batch, never per record.
@usableFromInline
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conds: UnsafeMutablePointer<pthread_cond_t>

    @usableFromInline
    init(conditions: Int = 2) {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        conds = .allocate(capacity: conditions)
        for i in 0..<conditions { pthread_cond_init(conds + i, nil) }
        count = conditions
    }
    private let count: Int

    deinit {
        for i in 0..<count { pthread_cond_destroy(conds + i) }
        pthread_mutex_destroy(mutex)
        conds.deallocate()
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

    /// Waits on condition `c` (lock held) for at most `timeoutMillis` (nil: forever).
    @usableFromInline
    func wait(_ c: Int, timeoutMillis: Int64? = nil) {
        guard let ms = timeoutMillis else {
            pthread_cond_wait(conds + c, mutex)
            return
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var nanos = Int64(now.tv_nsec) + (ms % 1000) * 1_000_000
        var deadline = timespec(tv_sec: now.tv_sec + Int(ms / 1000) + Int(nanos / 1_000_000_000), tv_nsec: 0)
        nanos %= 1_000_000_000
        deadline.tv_nsec = Int(nanos)
        pthread_cond_timedwait(conds + c, mutex, &deadline)
    }

    @usableFromInline func signal(_ c: Int) { pthread_cond_signal(conds + c) }
    @usableFromInline func broadcast(_ c: Int) { pthread_cond_broadcast(conds + c) }
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
