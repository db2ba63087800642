import Kafka
import Operators
import StreamCore

/// A click as the job carries it: the decoded record and when it was produced.
public struct IngestedClick: Sendable, Codable {
    public var click: Click
    public var ingestMillis: Int64
    public var readMillis: Int64
    public init(_ click: Click, ingestMillis: Int64, readMillis: Int64 = 0) {
        self.click = click
        self.ingestMillis = ingestMillis
        self.readMillis = readMillis
    }
}

/// The session-so-far features of a user as of one click (view `user_session_live`).
public struct SessionLiveRow: Sendable, Codable, Equatable {
    public var userId: String
    public var eventTime: Int64
    public var ingestMillis: Int64
    /// When the job read the click (wall clock), for the job's own latency; 0 when unknown.
    public var readMillis: Int64 = 0
    public var sessionClicks: Int64
    public var sessionDwellSeconds: Double
    public var sessionDistinctItems: Int64
    public var clicks1h: Int64
}

/// A closed session (view `user_last_session`), from the 30-minute-gap session window.
public struct SessionRow: Sendable, Codable, Equatable {
    public var userId: String
    /// The session window's max timestamp (last click + gap − 1 ms): when the session is known closed.
    public var eventTime: Int64
    public var sessionStart: Int64
    public var pages: Int64
    public var dwellSeconds: Double
    public var dwellPerPageSeconds: Double
    public var distinctItems: Int64

    public init(userId: String, eventTime: Int64, sessionStart: Int64, pages: Int64, dwellSeconds: Double,
                dwellPerPageSeconds: Double, distinctItems: Int64) {
        self.userId = userId
        self.eventTime = eventTime
        self.sessionStart = sessionStart
        self.pages = pages
        self.dwellSeconds = dwellSeconds
        self.dwellPerPageSeconds = dwellPerPageSeconds
        self.distinctItems = distinctItems
    }
}

/// The item a page shows, if it is an item page (`/item/<id>`).
@inline(__always)
func itemOf(_ page: String) -> Substring? {
    page.hasPrefix("/item/") ? page.dropFirst(6) : nil
}

/// The user's current session (on arrival) and clicks of the last hour.
public struct UserSession: Codable, Sendable, Equatable {
    var newest = Int64.min
    var start = Int64.min
    var last = Int64.min
    var clicks: Int64 = 0
    var items: Set<String> = []
    var hour: [Int64] = []
    var hourHead = 0

    public init() {}

    static let gap: Int64 = 1_800_000
    static let hourMillis: Int64 = 3_600_000

    /// Adds click `c` (arrival order); returns the session-so-far row when `c` is newer than every
    /// earlier click of the user. A click more than the gap after the session's last click starts a
    /// new session; an out-of-order click within the gap before the session joins it.
    mutating func add(_ c: Click, ingestMillis: Int64) -> SessionLiveRow? {
        let ts = c.timestamp
        if clicks == 0 || ts > last &+ Self.gap || ts < start &- Self.gap {
            if ts < start &- Self.gap, clicks > 0 { return countHourOnly(ts) }  // belongs to an older session
            start = ts; last = ts; clicks = 0; items = []
        }
        clicks += 1
        start = min(start, ts)
        last = max(last, ts)
        if let item = itemOf(c.page) { items.insert(String(item)) }
        guard ts > newest else {
            _ = countHourOnly(ts)
            return nil
        }
        newest = ts
        hour.append(ts)
        while hourHead < hour.count, hour[hourHead] < ts &- Self.hourMillis { hourHead += 1 }
        if hourHead > 64, hourHead * 2 > hour.count { hour.removeFirst(hourHead); hourHead = 0 }
        return SessionLiveRow(userId: c.userId, eventTime: ts, ingestMillis: ingestMillis, sessionClicks: clicks,
                              sessionDwellSeconds: Double(last &- start) / 1_000,
                              sessionDistinctItems: Int64(items.count), clicks1h: Int64(hour.count - hourHead))
    }

    /// An out-of-order click still counts in the last hour of later rows.
    private mutating func countHourOnly(_ ts: Int64) -> SessionLiveRow? {
        guard ts >= newest &- Self.hourMillis else { return nil }
        var i = hour.count
        while i > hourHead, hour[i - 1] > ts { i -= 1 }
        hour.insert(ts, at: i)
        return nil
    }

    func isExpired(at t: Int64) -> Bool { newest == Int64.min || t > newest &+ Self.gap &+ Self.hourMillis }
}

/// click-features' session-so-far features on arrival (keyed by `user_id`); a user idle for longer
/// than the gap and the hour has nothing left that counts, and its state is dropped by a timer.
public final class SessionLiveFunction: KeyedProcessFunction {
    public typealias Key = String
    var session: ValueState<UserSession>!

    public init() {}

    public func open(_ context: RuntimeContext) throws {
        session = try context.getState(ValueStateDescriptor<UserSession>("user-session"))
    }

    public func processElement(_ value: IngestedClick, _ ctx: KeyedProcessContext<String>, _ out: Collector<SessionLiveRow>) throws {
        var (row, newest) = session.modify(initial: UserSession()) { s in (s.add(value.click, ingestMillis: value.ingestMillis), s.newest) }
        row?.readMillis = value.readMillis
        let m: Int64 = 60_000
        ctx.timerService.registerEventTimeTimer((newest / m + 1) * m + UserSession.gap + UserSession.hourMillis)
        if let row { try out.collect(row) }
    }

    public func onTimer(_ timestamp: Int64, _ ctx: KeyedProcessContext<String>, _ out: Collector<SessionLiveRow>) throws {
        if let s = session.value(), s.isExpired(at: timestamp) { session.clear() }
    }
}

/// Pages, first and last click time and distinct items of a session window.
public struct SessionAccumulator: Codable, Sendable, Equatable {
    public var pages: Int64 = 0
    public var first = Int64.max
    public var last = Int64.min
    public var items: Set<String> = []
    public init() {}
}

public struct SessionAggregate: AggregateFunction {
    public init() {}
    public func createAccumulator() -> SessionAccumulator { SessionAccumulator() }
    public func add(_ value: Sourced<Click>, to a: inout SessionAccumulator) {
        a.pages += 1
        a.first = min(a.first, value.value.timestamp)
        a.last = max(a.last, value.value.timestamp)
        if let item = itemOf(value.value.page) { a.items.insert(String(item)) }
    }
    public func getResult(_ a: SessionAccumulator) -> SessionAccumulator { a }
    public func merge(_ a: SessionAccumulator, _ b: SessionAccumulator) -> SessionAccumulator {
        var m = a
        m.pages += b.pages
        m.first = min(a.first, b.first)
        m.last = max(a.last, b.last)
        m.items.formUnion(b.items)
        return m
    }
}

/// Turns a fired session window into its row.
public final class SessionRowFunction: ProcessWindowFunction {
    public typealias Key = String
    public init() {}
    public func process(_ key: String, _ context: WindowContext, _ elements: [SessionAccumulator], _ out: Collector<SessionRow>) throws {
        for a in elements {
            let dwell = Double(a.last - a.first) / 1_000
            try out.collect(SessionRow(userId: key, eventTime: context.window.maxTimestamp, sessionStart: a.first,
                                       pages: a.pages, dwellSeconds: dwell, dwellPerPageSeconds: dwell / Double(a.pages),
                                       distinctItems: Int64(a.items.count)))
        }
    }
}
