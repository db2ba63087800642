/// What travels between tasks: records with their timestamp, watermarks, watermark status,
/// checkpoint barriers, and the end of a producer's partition.
@usableFromInline
enum StreamElement<T> {
    case record(T, Int64)
    case watermark(Int64)
    case status(WatermarkStatus)
    /// Checkpoint barrier N: always the last element of its batch, so a consumer that aligns can
    /// stop taking batches from the channel right after it.
    case barrier(Int64)
    case endOfPartition
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
    /// How often a producer found its channel full and had to hold output back (back-pressure).
    public let producerWaits: Int
}

/// Non-generic face of a gate, for the task loop.
@usableFromInline
class AnyInputGate: @unchecked Sendable {
    /// Guards the queues; taken once per batch, never per record.
    @usableFromInline let lock = ConditionLock()
    @usableFromInline let channelCount: Int
    let inputIndex: Int
    let channelCapacity: Int
    let batchSize: Int
    /// Woken when a batch arrives.
    @usableFromInline let consumer: Parker
    /// Per channel, the producer's parker, woken when its channel has room again.
    @exclusivity(unchecked) @usableFromInline var producers: [Parker?]
    @exclusivity(unchecked) @usableFromInline var endedChannels = 0
    @exclusivity(unchecked) @usableFromInline var queuedElements = 0
    @exclusivity(unchecked) @usableFromInline var peakQueuedElements = 0
    @exclusivity(unchecked) @usableFromInline var producerWaits = 0
    /// Channels that delivered the barrier being aligned: not read until alignment ends. Only the
    /// consumer's thread touches it.
    @exclusivity(unchecked) @usableFromInline var blocked: [Bool]
    @exclusivity(unchecked) @usableFromInline var blockedCount = 0
    /// Set by the consumer task: barrier `id` arrived on `channel` (which is now blocked).
    @exclusivity(unchecked) @usableFromInline var onBarrier: (Int64, Int) throws -> Void = { _, _ in }
    /// Set by the consumer task: a channel ended (alignment may be complete now).
    @exclusivity(unchecked) @usableFromInline var onChannelEnded: () throws -> Void = {}
    let consumerName: String
    let subtask: Int

    @usableFromInline
    init(consumer: Parker, channels: Int, inputIndex: Int, capacity: Int, batchSize: Int,
         consumerName: String, subtask: Int) {
        self.consumer = consumer
        self.producers = Array(repeating: nil, count: channels)
        self.blocked = Array(repeating: false, count: channels)
        self.channelCount = channels
        self.inputIndex = inputIndex
        self.channelCapacity = capacity
        self.batchSize = batchSize
        self.consumerName = consumerName
        self.subtask = subtask
    }

    @usableFromInline var isFinished: Bool { endedChannels == channelCount }

    /// Marks `channel` as having delivered the barrier being aligned.
    @usableFromInline
    func block(_ channel: Int) {
        if !blocked[channel] { blocked[channel] = true; blockedCount += 1 }
    }

    /// Ends alignment: every channel is read again.
    func unblockAll() {
        guard blockedCount > 0 else { return }
        for i in blocked.indices { blocked[i] = false }
        blockedCount = 0
        consumer.unpark()
    }

    /// Processes up to `maxBatches` queued batches; returns how many it processed.
    func processAvailable(maxBatches: Int) throws -> Int { preconditionFailure("abstract") }

    var stats: ExchangeStats {
        lock.withLock {
            ExchangeStats(consumer: consumerName, subtask: subtask, inputIndex: inputIndex, channels: channelCount,
                          peakQueuedElements: peakQueuedElements,
                          capacityElements: channelCount * channelCapacity * batchSize,
                          producerWaits: producerWaits)
        }
    }
}

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
    func removeAll() {
        storage.deinitialize(count: count)
        count = 0
    }

    /// Hands each element to `body`, moved out (no copy to retain and release); the batch is empty
    /// after, also when `body` throws.
    @inlinable
    func drain(_ body: (StreamElement<T>) throws -> Void) rethrows {
        var i = 0
        defer {
            (storage + i).deinitialize(count: count - i)
            count = 0
        }
        while i < count {
            let element = (storage + i).move()
            i += 1
            try body(element)
        }
    }
}

/// Bounded per-channel queues of batches for one input of one consumer subtask. A producer whose
/// channel is full is refused (it holds its output back and yields its thread); drained batches go
/// back to producers. (A channel between subtasks of the same slot is queued too: producer and
/// consumer then take turns on one core, which measured faster than a direct call.)
@usableFromInline
final class InputGate<T>: AnyInputGate, @unchecked Sendable {
    @usableFromInline typealias Batch = ElementBatch<T>

    /// Ring of queued batches per channel.
    @exclusivity(unchecked) @usableFromInline var queues: [[Batch?]]
    @exclusivity(unchecked) @usableFromInline var heads: [Int]
    @exclusivity(unchecked) @usableFromInline var counts: [Int]
    @exclusivity(unchecked) @usableFromInline var recycled: [Batch] = []
    @exclusivity(unchecked) var cursor = 0
    /// Set by the consumer task: processes one batch of a channel. (Not optional: an optional
    /// closure in a generic class is stored maximally abstracted, and calling it from specialized
    /// code allocates a thunk per call.)
    @exclusivity(unchecked) @usableFromInline var process: (Batch, Int) throws -> Void = { _, _ in
        preconditionFailure("input gate used before its consumer was bound")
    }

    @usableFromInline
    override init(consumer: Parker, channels: Int, inputIndex: Int, capacity: Int, batchSize: Int,
                  consumerName: String, subtask: Int) {
        queues = Array(repeating: Array(repeating: nil, count: capacity), count: channels)
        heads = Array(repeating: 0, count: channels)
        counts = Array(repeating: 0, count: channels)
        super.init(consumer: consumer, channels: channels, inputIndex: inputIndex, capacity: capacity,
                   batchSize: batchSize, consumerName: consumerName, subtask: subtask)
    }

    /// Producer side: enqueues `batch` on `channel` and returns an empty batch to fill next, or nil
    /// (batch not taken) when the channel is full.
    @usableFromInline
    func tryPush(channel: Int, batch: Batch) -> Batch? {
        lock.lock()
        guard counts[channel] < channelCapacity else {
            producerWaits += 1
            lock.unlock()
            return nil
        }
        let slot = (heads[channel] + counts[channel]) % channelCapacity
        queuedElements += batch.count
        if queuedElements > peakQueuedElements { peakQueuedElements = queuedElements }
        queues[channel][slot] = batch
        counts[channel] += 1
        let next = recycled.popLast()
        lock.unlock()
        consumer.unpark()
        return next ?? Batch(capacity: batchSize)
    }

    override func processAvailable(maxBatches: Int) throws -> Int {
        var done = 0
        var finished: Batch?
        lock.lock()
        while done < maxBatches {
            if let f = finished {
                if recycled.count < channelCount * (channelCapacity + 1) { recycled.append(f) }
                finished = nil
            }
            var channel = -1
            for i in 0..<channelCount {
                let c = (cursor + i) % channelCount
                if counts[c] > 0, blockedCount == 0 || !blocked[c] {
                    cursor = (c + 1) % channelCount
                    channel = c
                    break
                }
            }
            guard channel >= 0 else { break }
            let batch = queues[channel][heads[channel]].unsafelyUnwrapped
            queues[channel][heads[channel]] = nil
            heads[channel] = (heads[channel] + 1) % channelCapacity
            counts[channel] -= 1
            queuedElements -= batch.count
            let producer = producers[channel]
            lock.unlock()
            producer?.unpark()
            do { try process(batch, channel) } catch {
                batch.removeAll()
                throw error
            }
            batch.removeAll()
            finished = batch
            done += 1
            lock.lock()
        }
        if let f = finished, recycled.count < channelCount * (channelCapacity + 1) { recycled.append(f) }
        lock.unlock()
        return done
    }
}

/// Something a task must flush before it idles and when it ends.
@usableFromInline
protocol PartitionWriter: AnyObject {
    /// Ships held-back batches (oldest first) and, with `partial`, partly filled ones, as far as the
    /// channels have room. Returns whether anything was shipped.
    func ship(partial: Bool) throws -> Bool
    /// True while output is held back because a channel was full.
    var hasPending: Bool { get }
    /// True when nothing is held back and no partial batch is waiting.
    var isDrained: Bool { get }
    /// Appends end-of-partition on every channel (shipped by later `ship(partial: true)` calls).
    func endPartition() throws
    /// Appends checkpoint barrier `id` on every channel and closes each channel's batch after it.
    func emitBarrier(_ id: Int64) throws
}

/// Flags shared by the writers of one task: set when one of them holds output back, so the task
/// stops taking input until it is shipped.
@usableFromInline
final class OutputBackpressure {
    @exclusivity(unchecked) @usableFromInline var blocked = false
    @usableFromInline init() {}
}

/// Producer side of an exchange: routes each record to a consumer subtask (forward, rebalance,
/// broadcast or by key group), buffers per target and ships full batches. Watermarks and status are
/// broadcast to every target. When a channel is full the batch is held back (the task then yields
/// until it is shipped), so queues never exceed their capacity and threads never block.
@usableFromInline
final class ExchangeWriter<T>: PartitionWriter {
    @usableFromInline let gates: [InputGate<T>]
    @usableFromInline let channel: Int
    @usableFromInline let batchSize: Int
    @usableFromInline let backpressure: OutputBackpressure
    /// The batch being filled for each target, and (for the hot path, without reference counting)
    /// its storage and fill level.
    @exclusivity(unchecked) @usableFromInline var batches: ContiguousArray<ElementBatch<T>>
    @usableFromInline let storages: UnsafeMutablePointer<UnsafeMutablePointer<StreamElement<T>>>
    @usableFromInline let fills: UnsafeMutablePointer<Int>
    /// Full batches held back per target, oldest first.
    @exclusivity(unchecked) @usableFromInline var pending: [[ElementBatch<T>]]
    @exclusivity(unchecked) @usableFromInline var pendingCount = 0
    @exclusivity(unchecked) @usableFromInline var spares: [ElementBatch<T>] = []
    /// Routing, flattened so the hot path copies no closure: 0 forward, 1 rebalance, 2 broadcast,
    /// 3 by key group.
    @usableFromInline let routeKind: Int
    /// The consumer subtask of a record. Non-optional on purpose: an optional closure is stored
    /// maximally abstracted and calling it from specialized code allocates a thunk per call.
    @usableFromInline let targetOf: (T) -> Int
    @exclusivity(unchecked) @usableFromInline var roundRobin: Int

    @usableFromInline
    init(gates: [InputGate<T>], channel: Int, batchSize: Int, route: Partitioner<T>.Route, start: Int,
         backpressure: OutputBackpressure) {
        self.gates = gates
        self.channel = channel
        self.batchSize = batchSize
        self.backpressure = backpressure
        self.roundRobin = start % max(1, gates.count)
        switch route {
        case .forward: (routeKind, targetOf) = (gates.count > 1 ? 1 : 0, { _ in 0 })
        case .rebalance: (routeKind, targetOf) = (1, { _ in 0 })
        case .broadcast: (routeKind, targetOf) = (2, { _ in 0 })
        case .keyed(let f): (routeKind, targetOf) = (3, f)
        }
        let batches = ContiguousArray(gates.map { _ in ElementBatch<T>(capacity: batchSize) })
        self.batches = batches
        self.pending = gates.map { _ in [] }
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
        if n &+ 1 == batchSize { shipFull(target) }
    }

    /// The batch of `target` is full: send it, or hold it back behind earlier held-back ones.
    @usableFromInline
    func shipFull(_ target: Int) {
        let full = batches[target]
        full.count = fills[target]
        fills[target] = 0
        if pending[target].isEmpty, let next = gates[target].tryPush(channel: channel, batch: full) {
            install(next, at: target)
        } else {
            pending[target].append(full)
            pendingCount += 1
            backpressure.blocked = true
            install(spares.popLast() ?? ElementBatch<T>(capacity: batchSize), at: target)
        }
    }

    @usableFromInline
    func install(_ batch: ElementBatch<T>, at target: Int) {
        batches[target] = batch
        storages[target] = batch.storage
    }

    @usableFromInline var hasPending: Bool { pendingCount > 0 }

    @usableFromInline
    var isDrained: Bool {
        guard pendingCount == 0 else { return false }
        for t in gates.indices where fills[t] > 0 { return false }
        return true
    }

    @usableFromInline
    func ship(partial: Bool) throws -> Bool {
        var shipped = false
        for t in gates.indices {
            while let first = pending[t].first {
                guard let spare = gates[t].tryPush(channel: channel, batch: first) else { break }
                pending[t].removeFirst()
                pendingCount -= 1
                if spares.count < 2 { spares.append(spare) }
                shipped = true
            }
            if partial, pending[t].isEmpty, fills[t] > 0 {
                let part = batches[t]
                part.count = fills[t]
                if let next = gates[t].tryPush(channel: channel, batch: part) {
                    fills[t] = 0
                    install(next, at: t)
                    shipped = true
                } else {
                    part.count = 0
                }
            }
        }
        return shipped
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
    func endPartition() throws {
        try broadcast(.endOfPartition)
    }

    /// The barrier ends its batch on every channel: sent now, or held back behind earlier batches.
    @usableFromInline
    func emitBarrier(_ id: Int64) throws {
        for t in gates.indices {
            let n = fills[t]
            (storages[t] + n).initialize(to: .barrier(id))
            fills[t] = n &+ 1
            shipFull(t)
        }
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

    @inlinable @inline(__always)
    func subtask(ofHash hash: Int32) -> Int {
        let h = Int(KeyGroupRangeAssignment.murmurHash(hash))   // non-negative
        return Int(table[mask >= 0 ? h & mask : h % maxParallelism])
    }
}
