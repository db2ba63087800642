/// Processing time for the operators of one task, and callbacks at given processing times.
/// Confined to the task's thread; the runtime (or a harness) fires due callbacks.
public final class ProcessingTimeService {
    public let clock: any ProcessingTimeClock

    private struct Entry: Comparable {
        var time: Int64
        var seq: UInt64
        var id: UInt64
        static func < (a: Entry, b: Entry) -> Bool { (a.time, a.seq) < (b.time, b.seq) }
    }
    private var heap = BinaryHeap<Entry>()
    @exclusivity(unchecked) private var callbacks: [UInt64: (Int64) throws -> Void] = [:]
    @exclusivity(unchecked) private var nextId: UInt64 = 0

    public init(clock: any ProcessingTimeClock) { self.clock = clock }

    @inlinable
    public func currentProcessingTime() -> Int64 { clock.currentTimeMillis() }

    /// Runs `callback(time)` on the task's thread once processing time reaches `time`. A time in the
    /// past fires at the next check. Returns an id for `cancel`.
    @discardableResult
    public func registerTimer(at time: Int64, _ callback: @escaping (Int64) throws -> Void) -> UInt64 {
        nextId &+= 1
        callbacks[nextId] = callback
        heap.push(Entry(time: time, seq: nextId, id: nextId))
        return nextId
    }

    public func cancel(_ id: UInt64) { callbacks[id] = nil }

    /// The earliest time a callback is due, if any.
    public var nextDueTime: Int64? {
        while let top = heap.peek, callbacks[top.id] == nil { _ = heap.pop() }
        return heap.peek?.time
    }

    /// Fires every callback due at `now`, in time order; callbacks may register more.
    public func fireDue(now: Int64) throws {
        while let top = heap.peek, top.time <= now {
            _ = heap.pop()
            if let cb = callbacks.removeValue(forKey: top.id) { try cb(top.time) }
        }
    }

    /// Number of callbacks still registered.
    public var pendingCount: Int { callbacks.count }
}

/// A binary min-heap. (Ordered by `Comparable`, not a stored closure: a closure stored in a generic
/// struct is compiled unspecialised and looks up type metadata on every comparison.)
@usableFromInline
struct BinaryHeap<Element: Comparable> {
    @usableFromInline var storage: [Element] = []

    @inlinable init() {}

    @usableFromInline var peek: Element? { storage.first }
    @usableFromInline var count: Int { storage.count }
    @usableFromInline var isEmpty: Bool { storage.isEmpty }

    @inlinable
    mutating func push(_ e: Element) {
        storage.append(e)
        var i = storage.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if storage[i] < storage[parent] { storage.swapAt(i, parent); i = parent } else { break }
        }
    }

    @inlinable
    mutating func pop() -> Element? {
        guard !storage.isEmpty else { return nil }
        storage.swapAt(0, storage.count - 1)
        let top = storage.removeLast()
        var i = 0
        let n = storage.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n, storage[l] < storage[m] { m = l }
            if r < n, storage[r] < storage[m] { m = r }
            if m == i { break }
            storage.swapAt(i, m)
            i = m
        }
        return top
    }
}
