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

    @inlinable var peek: Element? { storage.first }
    @inlinable var count: Int { storage.count }
    @inlinable var isEmpty: Bool { storage.isEmpty }

    /// Sift-up with a hole (one move per level, no swaps), over raw storage.
    @inlinable
    mutating func push(_ e: Element) {
        storage.append(e)
        storage.withUnsafeMutableBufferPointer { h in
            var i = h.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard e < h[parent] else { break }
                h[i] = h[parent]
                i = parent
            }
            h[i] = e
        }
    }

    /// Takes the minimum; the last element sifts down from the root with a hole.
    @inlinable
    mutating func pop() -> Element? {
        guard let last = storage.popLast() else { return nil }
        if storage.isEmpty { return last }
        return storage.withUnsafeMutableBufferPointer { h in
            let top = h[0]
            let n = h.count
            var i = 0
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                let r = l + 1
                let m = r < n && h[r] < h[l] ? r : l
                guard h[m] < last else { break }
                h[i] = h[m]
                i = m
            }
            h[i] = last
            return top
        }
    }
}
