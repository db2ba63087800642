#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The transaction logic of a two-phase-commit sink: the hooks of Flink's
/// `TwoPhaseCommitSinkFunction`. `TwoPhaseCommitSinkWriter` drives them through checkpoints.
///
/// A transaction handle is a small value that names what the transaction wrote (file names, a
/// transactional id, ...). It is stored in checkpoints, so a later process must be able to commit
/// or abort it from the handle alone. Called on the writer's task thread only.
public protocol TwoPhaseCommitLogic<Input, Transaction>: AnyObject {
    associatedtype Input
    associatedtype Transaction: Codable & Sendable

    /// Starts a transaction. Called at start-up and right after each pre-commit.
    func beginTransaction() throws -> Transaction
    /// Writes one record into the open transaction.
    func invoke(_ transaction: inout Transaction, value: Input, context: SinkWriterContext) throws
    /// Phase one, at the checkpoint barrier: make everything written durable, so that `commit`
    /// cannot fail for lack of data, without making it visible. No more writes go to it.
    func preCommit(_ transaction: inout Transaction) throws
    /// Phase two: make a pre-committed transaction visible. Must be idempotent: after a crash, the
    /// transactions of a completed checkpoint are committed again on restore.
    func commit(_ transaction: Transaction) throws
    /// Drops a transaction that will never be committed.
    func abort(_ transaction: Transaction) throws
    /// On restore: commits a transaction that the restored checkpoint pre-committed, possibly
    /// written and even committed by an earlier process. Defaults to `commit`.
    func recoverAndCommit(_ transaction: Transaction) throws
    /// On restore: aborts a transaction that was open when the restored checkpoint was taken.
    /// Defaults to `abort`.
    func recoverAndAbort(_ transaction: Transaction) throws
    /// Called once after restore handled every restored transaction: a place to clean up what
    /// earlier processes left behind (e.g. transactions begun after the restored checkpoint).
    func finishRecovery(committed: [Transaction], aborted: [Transaction]) throws
    /// Releases resources; pending transactions stay as they are (a restore may commit them).
    func close() throws
}

extension TwoPhaseCommitLogic {
    public func recoverAndCommit(_ transaction: Transaction) throws { try commit(transaction) }
    public func recoverAndAbort(_ transaction: Transaction) throws { try abort(transaction) }
    public func finishRecovery(committed: [Transaction], aborted: [Transaction]) throws {}
    public func close() throws {}
}

/// What a two-phase-commit writer does when its input ends.
public enum EndOfInputCommit: Sendable {
    /// Nothing: the records written since the last barrier are committed by the next completed
    /// checkpoint, which the runtime takes after the end of input (Flink 2's final checkpoint).
    /// Exactly-once; without checkpoints nothing is ever committed.
    case awaitFinalCheckpoint
    /// Pre-commit and commit everything at once (Flink's batch mode): for jobs run without
    /// checkpoints. With checkpoints, a crash between the end of input and the next completed
    /// checkpoint replays (and so duplicates) the records written since the last one.
    case commitImmediately
}

/// A problem in the two-phase-commit protocol or its state: a message that says what to fix.
public struct TwoPhaseCommitError: Error, CustomStringConvertible {
    public let description: String
    private init(_ message: String) { description = message }

    static func checkpointIdNotIncreasing(_ id: CheckpointId, last: CheckpointId) -> TwoPhaseCommitError {
        TwoPhaseCommitError("two-phase commit: barrier for checkpoint \(id) after checkpoint \(last); "
            + "checkpoint ids must increase within a run")
    }
    static func unsupportedVersion(_ version: Int) -> TwoPhaseCommitError {
        TwoPhaseCommitError("two-phase commit: sink state version \(version) is newer than this build reads "
            + "(\(twoPhaseCommitStateVersion)); restore with a newer build or start without this checkpoint")
    }
    static func undecodable(_ error: any Error) -> TwoPhaseCommitError {
        TwoPhaseCommitError("two-phase commit: cannot decode the sink's checkpointed state (\(error)); "
            + "was the checkpoint written by another sink type?")
    }
    static func initializedTwice() -> TwoPhaseCommitError {
        TwoPhaseCommitError("two-phase commit: initializeState called twice; the runtime calls it once, before the first record")
    }
    static func closed(_ what: String) -> TwoPhaseCommitError {
        TwoPhaseCommitError("two-phase commit: \(what) after close()")
    }
}

private let twoPhaseCommitStateVersion = 1

/// A pre-committed transaction waiting for its checkpoint to complete.
public struct PendingTransaction<Transaction> {
    public var checkpointId: CheckpointId
    public var transaction: Transaction
}

extension PendingTransaction: Codable where Transaction: Codable {}
extension PendingTransaction: Sendable where Transaction: Sendable {}
extension PendingTransaction: Equatable where Transaction: Equatable {}

/// A two-phase-commit writer's checkpointed state, as Flink keeps it: the pending (pre-committed)
/// transactions, to commit on restore, and the transaction open at the barrier, to abort.
/// Stored as versioned JSON.
public struct TwoPhaseCommitState<Transaction: Codable>: Codable {
    public static var currentVersion: Int { twoPhaseCommitStateVersion }
    public var version: Int
    public var pending: [PendingTransaction<Transaction>]
    public var current: Transaction?

    public init(pending: [PendingTransaction<Transaction>], current: Transaction?) {
        self.version = Self.currentVersion
        self.pending = pending
        self.current = current
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(self))
    }

    private struct Header: Decodable { var version: Int }

    public static func decode(_ bytes: [UInt8]) throws -> TwoPhaseCommitState {
        let data = Data(bytes)
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: data) } catch { throw TwoPhaseCommitError.undecodable(error) }
        guard header.version <= currentVersion else { throw TwoPhaseCommitError.unsupportedVersion(header.version) }
        do { return try JSONDecoder().decode(TwoPhaseCommitState.self, from: data) } catch { throw TwoPhaseCommitError.undecodable(error) }
    }
}

/// The bookkeeping of the transaction lifecycle, without I/O: which transaction is open, which
/// are pre-committed and waiting for which checkpoint. `TwoPhaseCommitSinkWriter` performs what
/// it decides.
public struct TwoPhaseCommitTransactions<Transaction> {
    public enum Phase: Equatable, Sendable {
        /// Before `initializeState` (or the first record).
        case uninitialized
        /// Recovered (or started fresh); no transaction open yet.
        case ready
        /// A transaction is open and takes records.
        case open
        /// Closed: nothing more happens.
        case closed
    }

    public private(set) var phase: Phase = .uninitialized
    /// The open transaction (in phase `.open`).
    public var current: Transaction?
    /// Pre-committed transactions, in increasing checkpoint id order.
    public private(set) var pending: [PendingTransaction<Transaction>] = []
    public private(set) var lastCheckpointId: CheckpointId?

    public init() {}

    /// Restore: the transactions to commit, in checkpoint order over all restored states, and those
    /// to abort (the ones open at the restored barrier).
    public mutating func recover(_ states: [TwoPhaseCommitState<Transaction>]) throws
        -> (commit: [Transaction], abort: [Transaction]) where Transaction: Codable {
        guard phase == .uninitialized else { throw TwoPhaseCommitError.initializedTwice() }
        // A stable sort keeps restored states in their given order for equal ids.
        let toCommit = states.flatMap(\.pending).enumerated()
            .sorted { ($0.element.checkpointId, $0.offset) < ($1.element.checkpointId, $1.offset) }
            .map(\.element.transaction)
        phase = .ready
        return (toCommit, states.compactMap(\.current))
    }

    public mutating func began(_ transaction: Transaction) {
        precondition(phase == .ready, "a transaction is begun only when none is open")
        current = transaction
        phase = .open
    }

    /// Barrier `id`: hands out the open transaction for pre-commit. After its pre-commit, call
    /// `preCommitted`, then begin the next one.
    public mutating func barrier(_ id: CheckpointId) throws -> Transaction {
        if phase == .closed { throw TwoPhaseCommitError.closed("snapshotState(\(id))") }
        precondition(phase == .open, "the writer opens a transaction before any barrier")
        if let last = lastCheckpointId, id <= last { throw TwoPhaseCommitError.checkpointIdNotIncreasing(id, last: last) }
        lastCheckpointId = id
        phase = .ready
        defer { current = nil }
        return current!
    }

    public mutating func preCommitted(_ transaction: Transaction, checkpointId: CheckpointId) {
        // Ids only increase, so appending keeps `pending` sorted.
        pending.append(PendingTransaction(checkpointId: checkpointId, transaction: transaction))
    }

    /// What the checkpoint state holds: pending plus the open transaction.
    public func state() -> TwoPhaseCommitState<Transaction> where Transaction: Codable {
        TwoPhaseCommitState(pending: pending, current: current)
    }

    /// Pending transactions that checkpoint `id` completes (its own and all earlier ones), in order.
    public func committable(upTo id: CheckpointId) -> ArraySlice<PendingTransaction<Transaction>> {
        pending.prefix { $0.checkpointId <= id }
    }

    /// The first pending transaction has been committed.
    public mutating func committedFirst() {
        pending.removeFirst()
    }

    /// End of input with `.commitImmediately`: hands out the open transaction, to pre-commit and
    /// commit after all pending ones.
    public mutating func endOfInput() -> Transaction? {
        guard phase == .open else { return nil }
        phase = .ready
        defer { current = nil }
        return current
    }

    /// Close: the open transaction, if any, to abort.
    public mutating func close() -> Transaction? {
        defer { phase = .closed; current = nil }
        return phase == .open ? current : nil
    }
}

/// A `CheckpointedSinkWriter` on top of a `TwoPhaseCommitLogic`, with Flink's
/// `TwoPhaseCommitSinkFunction` protocol:
/// - one open transaction takes the records;
/// - at barrier `n` it is pre-committed and kept as pending under `n`, and a new one begins; the
///   checkpoint state is the pending transactions plus the new open one;
/// - when checkpoint `n` completes, every pending transaction with id `<= n` is committed, in order
///   (a missed notification is covered by a later one); an aborted checkpoint leaves its
///   transaction pending for the next completed one;
/// - on restore, the restored pending transactions are committed (they belong to a completed
///   checkpoint, perhaps committed already: commit is idempotent) and the restored open ones
///   aborted; with several restored states (after rescaling), all of them are handled.
///
/// Confined to the task thread, like every writer.
public final class TwoPhaseCommitSinkWriter<Logic: TwoPhaseCommitLogic>: CheckpointedSinkWriter {
    public typealias Input = Logic.Input

    public let logic: Logic
    public let endOfInput: EndOfInputCommit
    /// The transaction lifecycle (stored apart from `transactions` so that `write`, inlined into
    /// the sink operator and so specialised, reaches it). Confined to the task thread.
    @exclusivity(unchecked) @usableFromInline var lifecycle = TwoPhaseCommitTransactions<Logic.Transaction>()
    public var transactions: TwoPhaseCommitTransactions<Logic.Transaction> { lifecycle }

    public init(logic: Logic, endOfInput: EndOfInputCommit = .awaitFinalCheckpoint) {
        self.logic = logic
        self.endOfInput = endOfInput
    }

    public func initializeState(_ restored: [[UInt8]]) throws {
        let states = try restored.filter { !$0.isEmpty }.map { try TwoPhaseCommitState<Logic.Transaction>.decode($0) }
        let plan = try lifecycle.recover(states)
        for transaction in plan.commit { try logic.recoverAndCommit(transaction) }
        for transaction in plan.abort { try logic.recoverAndAbort(transaction) }
        if !states.isEmpty { try logic.finishRecovery(committed: plan.commit, aborted: plan.abort) }
        try begin()
    }

    @inlinable
    public func write(_ value: Input, context: SinkWriterContext) throws {
        if lifecycle.phase != .open { try openForWriting() }
        try logic.invoke(&lifecycle.current!, value: value, context: context)
    }

    public func snapshotState(checkpointId: CheckpointId) throws -> [UInt8] {
        if lifecycle.phase == .uninitialized { try initializeState([]) }
        if lifecycle.phase == .ready { try begin() }  // after an end-of-input commit
        var transaction = try lifecycle.barrier(checkpointId)
        try logic.preCommit(&transaction)
        lifecycle.preCommitted(transaction, checkpointId: checkpointId)
        try begin()
        return try lifecycle.state().encoded()
    }

    public func notifyCheckpointComplete(_ id: CheckpointId) throws {
        // Commit one at a time and drop it only once committed: if a commit fails, it and the later
        // ones stay pending (and in the next checkpoint's state).
        while let first = lifecycle.committable(upTo: id).first {
            try logic.commit(first.transaction)
            lifecycle.committedFirst()
        }
    }

    /// Pending transactions stay pending: the next completed checkpoint commits them.
    public func notifyCheckpointAborted(_ id: CheckpointId) {}

    public func flush(endOfInput ended: Bool) throws {
        guard ended, endOfInput == .commitImmediately, var transaction = lifecycle.endOfInput() else { return }
        try logic.preCommit(&transaction)
        while let first = lifecycle.pending.first {
            try logic.commit(first.transaction)
            lifecycle.committedFirst()
        }
        try logic.commit(transaction)
    }

    /// Aborts the open transaction (what it holds was never pre-committed); pending ones stay for a
    /// restore to commit.
    public func close() throws {
        guard lifecycle.phase != .closed else { return }
        let open = lifecycle.close()
        defer { try? logic.close() }
        if let open { try logic.abort(open) }
    }

    @usableFromInline
    func openForWriting() throws {
        switch lifecycle.phase {
        case .uninitialized: try initializeState([])  // a runtime without checkpoints: a fresh start
        case .ready: try begin()
        case .open: break
        case .closed: throw TwoPhaseCommitError.closed("write")
        }
    }

    private func begin() throws {
        lifecycle.began(try logic.beginTransaction())
    }
}
