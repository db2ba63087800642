/// Parks a slot's thread until something may have changed: a batch arrived, a full channel has
/// room again, a timer is due, or the job is cancelled. A permit makes wake-ups sticky, so none is
/// lost between checking for work and parking.
@usableFromInline
final class Parker: @unchecked Sendable {
    private let lock = ConditionLock()
    private var permit = false

    @usableFromInline init() {}

    @usableFromInline
    func unpark() {
        lock.lock()
        permit = true
        lock.signal()
        lock.unlock()
    }

    /// Waits for a wake-up or at most `timeoutMillis`.
    func park(timeoutMillis: Int64) {
        lock.lock()
        if !permit { lock.wait(timeoutMillis: max(1, timeoutMillis)) }
        permit = false
        lock.unlock()
    }
}
