/// Time-to-live for keyed state, as Flink's `StateTtlConfig`: measured in processing time, an
/// expired value is never returned (with the default visibility), and expired entries are removed
/// lazily on access and incrementally in the background of state accesses.
public struct StateTtlConfig: Sendable, Equatable {
    public enum UpdateType: Sendable, Equatable {
        /// The clock restarts when a value is created or written (Flink's default).
        case onCreateAndWrite
        /// …and also when it is read.
        case onReadAndWrite
    }

    public enum StateVisibility: Sendable, Equatable {
        /// Expired values are never returned (Flink's default).
        case neverReturnExpired
        /// An expired value may be returned while it has not been cleaned up yet.
        case returnExpiredIfNotCleanedUp
    }

    public var ttlMillis: Int64
    public var updateType: UpdateType
    public var stateVisibility: StateVisibility
    /// How many entries each state access checks for expiry (Flink's `cleanupIncrementally`); 0 turns
    /// background cleanup off.
    public var incrementalCleanupSize: Int

    public init(ttl: Duration,
                updateType: UpdateType = .onCreateAndWrite,
                stateVisibility: StateVisibility = .neverReturnExpired,
                incrementalCleanupSize: Int = 5) {
        let ms = Timestamps.milliseconds(ttl)
        precondition(ms > 0, "state TTL must be positive")
        self.ttlMillis = ms
        self.updateType = updateType
        self.stateVisibility = stateVisibility
        self.incrementalCleanupSize = incrementalCleanupSize
    }

    /// Flink's `lastAccess + ttl <= now` (saturating).
    @inlinable
    public func isExpired(lastAccess: Int64, now: Int64) -> Bool {
        let (sum, overflow) = lastAccess.addingReportingOverflow(ttlMillis)
        return !overflow && sum <= now
    }
}

/// Describes a `ValueState`: its name, unique per operator, and optional TTL.
public struct ValueStateDescriptor<T: Codable>: Sendable {
    public let name: String
    public var ttl: StateTtlConfig?
    public init(_ name: String, of type: T.Type = T.self) { self.name = name }
    public mutating func enableTimeToLive(_ config: StateTtlConfig) { ttl = config }
    public func withTimeToLive(_ config: StateTtlConfig) -> Self { var c = self; c.ttl = config; return c }
}

/// Describes a `ListState`; TTL applies to each element on its own.
public struct ListStateDescriptor<T: Codable>: Sendable {
    public let name: String
    public var ttl: StateTtlConfig?
    public init(_ name: String, of type: T.Type = T.self) { self.name = name }
    public func withTimeToLive(_ config: StateTtlConfig) -> Self { var c = self; c.ttl = config; return c }
}

/// Describes a `MapState`; TTL applies to each entry on its own.
public struct MapStateDescriptor<UK: Hashable & Codable, UV: Codable>: Sendable {
    public let name: String
    public var ttl: StateTtlConfig?
    public init(_ name: String, keyType: UK.Type = UK.self, valueType: UV.Type = UV.self) { self.name = name }
    public func withTimeToLive(_ config: StateTtlConfig) -> Self { var c = self; c.ttl = config; return c }
}

/// Describes a `ReducingState`: values are combined with `reduce` as they are added.
public struct ReducingStateDescriptor<T: Codable>: Sendable {
    public let name: String
    public var ttl: StateTtlConfig?
    public let reduce: @Sendable (T, T) -> T
    public init(_ name: String, reduce: @escaping @Sendable (T, T) -> T) { self.name = name; self.reduce = reduce }
    public func withTimeToLive(_ config: StateTtlConfig) -> Self { var c = self; c.ttl = config; return c }
}

/// Folds inputs into an accumulator and reads a result from it (Flink's `AggregateFunction`).
public protocol AggregateFunction<Input, Accumulator, Result>: Sendable {
    associatedtype Input
    associatedtype Accumulator
    associatedtype Result
    func createAccumulator() -> Accumulator
    func add(_ value: Input, to accumulator: inout Accumulator)
    func getResult(_ accumulator: Accumulator) -> Result
    func merge(_ a: Accumulator, _ b: Accumulator) -> Accumulator
}

/// Describes an `AggregatingState` over an `AggregateFunction`.
public struct AggregatingStateDescriptor<F: AggregateFunction>: Sendable where F.Accumulator: Codable {
    public let name: String
    public var ttl: StateTtlConfig?
    public let function: F
    public init(_ name: String, _ function: F) { self.name = name; self.function = function }
    public func withTimeToLive(_ config: StateTtlConfig) -> Self { var c = self; c.ttl = config; return c }
}
