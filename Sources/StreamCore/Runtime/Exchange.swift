/// What travels between tasks: records with their timestamp, watermarks, watermark status, and
/// the end of a producer's partition.
@usableFromInline
enum StreamElement<T> {
    case record(T, Int64)
    case watermark(Int64)
    case status(WatermarkStatus)
    case endOfPartition
}

/// The input side of one consumer task: a lock and conditions shared by all of the task's gates, so
/// one thread can wait on all of its inputs. Condition 0: data available; 1: space available.
@usableFromInline
final class TaskMailbox: @unchecked Sendable {
    @usableFromInline let lock = ConditionLock(conditions: 2)
    @exclusivity(unchecked) @usableFromInline var cancelled = false
    @exclusivity(unchecked) @usableFromInline var gates: [AnyInputGate] = []
    static let dataAvailable = 0
    static let spaceAvailable = 1

    @usableFromInline init() {}

    func cancel() {
        lock.withLock {
            cancelled = true
            lock.broadcast(Self.dataAvailable)
            lock.broadcast(Self.spaceAvailable)
        }
    }
}

/// Raised inside tasks when the job is being cancelled (another task failed).
@usableFromInline struct TaskCancelled: Error { @usableFromInline init() {} }

/// Gate statistics for the job result.
public struct ExchangeStats: Sendable, Equatable {
    /// Operator that consumes the gate.
    public let consumer: String
    public let subtask: Int
    public let inputIndex: Int
    public let channels: Int
    /// Highest number of elements (records, watermarks…) queued at once in the gate.
    public let peakQueuedElements: Int
    /// The bound: channels × channel capacity × batch size.
    public let capacityElements: Int
    /// How often a producer had to wait for space (back-pressure).
    public let producerWaits: Int
}

/// Non-generic face of a gate, for the task loop.
@usableFromInline
class AnyInputGate: @unchecked Sendable {
    @usableFromInline let mailbox: TaskMailbox
    @usableFromInline let channelCount: Int
    let inputIndex: Int
    let channelCapacity: Int
    let batchSize: Int
    @exclusivity(unchecked) @usableFromInline var endedChannels = 0
    @exclusivity(unchecked) @usableFromInline var queuedElements = 0
    @exclusivity(unchecked) @usableFromInline var peakQueuedElements = 0
    @exclusivity(unchecked) @usableFromInline var producerWaits = 0
    let consumerName: String
    let subtask: Int

    @usableFromInline
    init(mailbox: TaskMailbox, channels: Int, inputIndex: Int, capacity: Int, batchSize: Int,
         consumerName: String, subtask: Int) {
        self.mailbox = mailbox
        self.channelCount = channels
        self.inputIndex = inputIndex
        self.channelCapacity = capacity
        self.batchSize = batchSize
        self.consumerName = consumerName
        self.subtask = subtask
    }

    @usableFromInline var isFinished: Bool { endedChannels == channelCount }

    /// Lock held: a channel with a queued batch, searching round-robin.
    func channelWithData() -> Int? { preconditionFailure("abstract") }
    /// Pops a batch of `channel` (lock held), then processes it with the lock released.
    func processBatch(channel: Int) throws { preconditionFailure("abstract") }

    var stats: ExchangeStats {
        ExchangeStats(consumer: consumerName, subtask: subtask, inputIndex: inputIndex, channels: channelCount,
                      peakQueuedElements: peakQueuedElements,
                      capacityElements: channelCount * channelCapacity * batchSize,
                      producerWaits: producerWaits)
    }
}

/// Bounded per-channel queues of batches for one input of one consumer subtask. Producers block when
/// their channel is full (back-pressure); emptied batch buffers are recycled to producers, so the
/// steady state allocates nothing.
/// A fixed-capacity buffer of elements, filled by one producer, drained by one consumer, then
/// recycled: no allocation per record or per batch in the steady state.
@usableFromInline
final class ElementBatch<T> {
    @usableFromInline let storage: UnsafeMutablePointer<StreamElement<T>>
    @usableFromInline let capacity: Int
    @exclusivity(unchecked) @usableFromInline var count = 0

    @usableFromInline
    init(capacity: Int) {
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    @inlinable
    func append(_ e: StreamElement<T>) {
        (storage + count).initialize(to: e)
        count &+= 1
    }

    @inlinable
    func removeAll() {
        storage.deinitialize(count: count)
        count = 0
    }
}

/// Bounded per-channel queues of batches for one input of one consumer subtask. Producers block when
/// their channel is full (back-pressure); drained batches go back to producers.
@usableFromInline
final class InputGate<T>: AnyInputGate, @unchecked Sendable {
    @usableFromInline typealias Batch = ElementBatch<T>

    /// Ring of queued batches per channel.
    @exclusivity(unchecked) @usableFromInline var queues: [[Batch?]]
    @exclusivity(unchecked) @usableFromInline var heads: [Int]
    @exclusivity(unchecked) @usableFromInline var counts: [Int]
    @exclusivity(unchecked) @usableFromInline var recycled: [Batch] = []
    @exclusivity(unchecked) var cursor = 0
    /// Set by the consumer task: processes one batch and empties it.
    @exclusivity(unchecked) @usableFromInline var process: ((Batch, Int) throws -> Void)?

    @usableFromInline
    override init(mailbox: TaskMailbox, channels: Int, inputIndex: Int, capacity: Int, batchSize: Int,
                  consumerName: String, subtask: Int) {
        queues = Array(repeating: Array(repeating: nil, count: capacity), count: channels)
        heads = Array(repeating: 0, count: channels)
        counts = Array(repeating: 0, count: channels)
        super.init(mailbox: mailbox, channels: channels, inputIndex: inputIndex, capacity: capacity,
                   batchSize: batchSize, consumerName: consumerName, subtask: subtask)
    }

    /// Producer side: enqueues `batch` on `channel`, waiting while the channel is full, and returns
    /// an empty batch to fill next.
    @usableFromInline
    func push(channel: Int, batch: Batch) throws -> Batch {
        let lock = mailbox.lock
        lock.lock()
        defer { lock.unlock() }
        if counts[channel] == channelCapacity { producerWaits += 1 }
        while counts[channel] == channelCapacity {
            if mailbox.cancelled { throw TaskCancelled() }
            lock.wait(TaskMailbox.spaceAvailable)
        }
        if mailbox.cancelled { throw TaskCancelled() }
        let slot = (heads[channel] + counts[channel]) % channelCapacity
        queuedElements += batch.count
        if queuedElements > peakQueuedElements { peakQueuedElements = queuedElements }
        queues[channel][slot] = batch
        counts[channel] += 1
        lock.signal(TaskMailbox.dataAvailable)
        return recycled.popLast() ?? Batch(capacity: batchSize)
    }

    override func channelWithData() -> Int? {
        for i in 0..<channelCount {
            let c = (cursor + i) % channelCount
            if counts[c] > 0 {
                cursor = (c + 1) % channelCount
                return c
            }
        }
        return nil
    }

    override func processBatch(channel c: Int) throws {
        // Lock held on entry: take the batch out, process it unlocked, recycle it locked.
        let batch = queues[c][heads[c]].unsafelyUnwrapped
        queues[c][heads[c]] = nil
        heads[c] = (heads[c] + 1) % channelCapacity
        counts[c] -= 1
        queuedElements -= batch.count
        mailbox.lock.broadcast(TaskMailbox.spaceAvailable)
        mailbox.lock.unlock()
        var failure: Error?
        do { try process.unsafelyUnwrapped(batch, c) } catch { failure = error }
        batch.removeAll()
        mailbox.lock.lock()
        if recycled.count < channelCount * (channelCapacity + 1) { recycled.append(batch) }
        if let failure { throw failure }
    }
}

/// Something a task must flush before it waits and when it ends.
@usableFromInline
protocol PartitionWriter: AnyObject {
    /// Sends partially filled batches now (latency), without waiting if nothing is pending.
    func flushAll() throws
    /// Sends end-of-partition on every channel.
    func finishPartition() throws
}

/// Producer side of an exchange: routes each record to a consumer subtask (forward, rebalance,
/// broadcast or by key group), buffers per target and ships full batches. Watermarks and status are
/// broadcast to every target.
@usableFromInline
final class ExchangeWriter<T>: PartitionWriter {
    @usableFromInline let gates: [InputGate<T>]
    @usableFromInline let channel: Int
    @usableFromInline let batchSize: Int
    /// The batch being filled for each target, and (for the hot path, without reference counting)
    /// its storage and fill level.
    @exclusivity(unchecked) @usableFromInline var batches: ContiguousArray<ElementBatch<T>>
    @usableFromInline let storages: UnsafeMutablePointer<UnsafeMutablePointer<StreamElement<T>>>
    @usableFromInline let fills: UnsafeMutablePointer<Int>
    /// Routing, flattened so the hot path copies no closure: 0 forward, 1 rebalance, 2 broadcast,
    /// 3 by key group.
    @usableFromInline let routeKind: Int
    /// The consumer subtask of a record. Non-optional on purpose: an optional closure is stored maximally abstracted and calling it
    /// from specialized code allocates a thunk per call.
    @usableFromInline let targetOf: (T) -> Int
    @exclusivity(unchecked) @usableFromInline var roundRobin: Int

    @usableFromInline
    init(gates: [InputGate<T>], channel: Int, batchSize: Int, route: Partitioner<T>.Route, start: Int) {
        self.gates = gates
        self.channel = channel
        self.batchSize = batchSize
        self.roundRobin = start % max(1, gates.count)
        // A forward route with several targets (parallelism changed) spreads round-robin.
        switch route {
        case .forward: (routeKind, targetOf) = (gates.count > 1 ? 1 : 0, { _ in 0 })
        case .rebalance: (routeKind, targetOf) = (1, { _ in 0 })
        case .broadcast: (routeKind, targetOf) = (2, { _ in 0 })
        case .keyed(let f): (routeKind, targetOf) = (3, f)
        }
        let batches = ContiguousArray(gates.map { _ in ElementBatch<T>(capacity: batchSize) })
        self.batches = batches
        storages = .allocate(capacity: gates.count)
        fills = .allocate(capacity: gates.count)
        for (i, b) in batches.enumerated() {
            (storages + i).initialize(to: b.storage)
            (fills + i).initialize(to: 0)
        }
    }

    deinit {
        for i in batches.indices { batches[i].count = fills[i] }
        storages.deallocate()
        fills.deallocate()
    }

    @inlinable
    func append(_ e: StreamElement<T>, to target: Int) throws {
        let n = fills[target]
        (storages[target] + n).initialize(to: e)
        fills[target] = n &+ 1
        if n &+ 1 == batchSize { try ship(target) }
    }

    @usableFromInline
    func ship(_ target: Int) throws {
        let full = batches[target]
        full.count = fills[target]
        fills[target] = 0
        let next = try gates[target].push(channel: channel, batch: full)
        batches[target] = next
        storages[target] = next.storage
    }

    @inlinable
    func emit(_ value: T, timestamp: Int64) throws {
        switch routeKind {
        case 3:
            try append(.record(value, timestamp), to: targetOf(value))
        case 0:
            try append(.record(value, timestamp), to: 0)
        case 1:
            let t = roundRobin
            roundRobin = t + 1 == gates.count ? 0 : t + 1
            try append(.record(value, timestamp), to: t)
        default:
            for t in gates.indices { try append(.record(value, timestamp), to: t) }
        }
    }

    @inlinable
    func broadcast(_ e: StreamElement<T>) throws {
        for t in gates.indices { try append(e, to: t) }
    }

    @usableFromInline
    func flushAll() throws {
        for t in gates.indices where fills[t] > 0 { try ship(t) }
    }

    @usableFromInline
    func finishPartition() throws {
        try broadcast(.endOfPartition)
        try flushAll()
    }

    /// This writer as an operator output.
    @inlinable
    func asOutput() -> Output<T> {
        let record: (T, Int64) throws -> Void
        if routeKind == 3 {
            // The common keyed case gets its own closure: no route switch per record.
            let targetOf = self.targetOf
            record = { v, ts in try self.append(.record(v, ts), to: targetOf(v)) }
        } else {
            record = { v, ts in try self.emit(v, timestamp: ts) }
        }
        return Output<T>(
            record: record,
            watermark: { wm in try self.broadcast(.watermark(wm)) },
            status: { s in try self.broadcast(.status(s)) })
    }
}

/// How records of type `T` are distributed over the subtasks of the consuming operator.
public struct Partitioner<T>: @unchecked Sendable {
    @usableFromInline
    enum Route {
        case forward
        case rebalance
        case broadcast
        /// The consumer subtask of a record.
        case keyed((T) -> Int)
    }

    @usableFromInline enum Kind { case forward, rebalance, broadcast, hash }
    @usableFromInline let kind: Kind
    /// For `hash`: given (max parallelism, parallelism), the record → subtask function. Made in the
    /// typed context of `keyBy`, so it is specialised for the key type.
    @usableFromInline let makeTarget: (@Sendable (Int, Int) -> (T) -> Int)?

    @usableFromInline
    init(kind: Kind, makeTarget: (@Sendable (Int, Int) -> (T) -> Int)? = nil) {
        self.kind = kind
        self.makeTarget = makeTarget
    }

    public static var forward: Partitioner { Partitioner(kind: .forward) }
    public static var rebalance: Partitioner { Partitioner(kind: .rebalance) }
    public static var broadcast: Partitioner { Partitioner(kind: .broadcast) }

    /// By key group, as `keyBy` does: `murmurHash(hashCode) % maxParallelism`, then the subtask owning
    /// that key group (looked up in a table computed once).
    @inlinable
    public static func hash<K: StreamKey>(_ key: @escaping @Sendable (T) -> K) -> Partitioner {
        Partitioner(kind: .hash, makeTarget: { maxParallelism, parallelism in
            let owner = KeyGroupOwners(maxParallelism: maxParallelism, parallelism: parallelism)
            return { v in owner.subtask(ofHash: key(v).stableHashCode) }
        })
    }

    @inlinable
    func route(maxParallelism: Int, parallelism: Int) -> Route {
        switch kind {
        case .forward: return .forward
        case .rebalance: return .rebalance
        case .broadcast: return .broadcast
        case .hash: return .keyed(makeTarget!(maxParallelism, parallelism))
        }
    }

    var isForward: Bool { kind == .forward }
    var isBroadcast: Bool { kind == .broadcast }
}

/// Key group → owning subtask, as a table computed once per exchange writer.
@usableFromInline
final class KeyGroupOwners: @unchecked Sendable {
    @usableFromInline let table: UnsafeMutablePointer<Int32>
    @usableFromInline let maxParallelism: Int
    /// `maxParallelism - 1` when it is a power of two (the default 128), else -1.
    @usableFromInline let mask: Int

    @usableFromInline
    init(maxParallelism: Int, parallelism: Int) {
        self.maxParallelism = maxParallelism
        mask = maxParallelism & (maxParallelism - 1) == 0 ? maxParallelism - 1 : -1
        table = .allocate(capacity: maxParallelism)
        for g in 0..<maxParallelism {
            table[g] = Int32(KeyGroupRangeAssignment.operatorIndex(forKeyGroup: g, maxParallelism: maxParallelism,
                                                                   parallelism: parallelism))
        }
    }

    deinit { table.deallocate() }

    @inlinable
    func subtask(ofHash hash: Int32) -> Int {
        let h = Int(KeyGroupRangeAssignment.murmurHash(hash))   // non-negative
        return Int(table[mask >= 0 ? h & mask : h % maxParallelism])
    }
}
