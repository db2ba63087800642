import StreamCore

/// Emits what it sees as strings, in order: "r:<value>@<ts>" for records and "w:<watermark>" for
/// watermarks ("w:+inf" for the final one), so a job's watermark sequence can be collected.
final class WatermarkLogger<T>: OneInputStreamOperator {
    let output: Output<String>
    init(output: Output<String>) { self.output = output }

    func processElement(_ value: T, timestamp: Int64) throws {
        let ts = timestamp == Timestamps.none ? "none" : "\(timestamp)"
        try output.collect("r:\(value)@\(ts)", timestamp: timestamp)
    }

    func processWatermark(_ watermark: Int64) throws {
        try output.collect("w:\(watermark == Int64.max ? "+inf" : "\(watermark)")", timestamp: Timestamps.none)
        try output.emitWatermark(watermark)
    }
}

/// A WatermarkOutput that records what a generator emits.
final class RecordingWatermarkOutput: WatermarkOutput {
    var watermarks: [Int64] = []
    var events: [String] = []
    func emitWatermark(_ watermark: Int64) { watermarks.append(watermark); events.append("w:\(watermark)") }
    func markIdle() { events.append("idle") }
    func markActive() { events.append("active") }
}

/// A one-split source whose reader answers its n-th `next()` (counting from 1) with `read(n)`.
struct ScriptedSource<T>: Source {
    struct Split: SourceSplit { let splitId = "scripted" }

    final class Reader: SourceSplitReader {
        let read: @Sendable (Int) throws -> SourceRead<T>
        var calls = 0
        init(read: @escaping @Sendable (Int) throws -> SourceRead<T>) { self.read = read }
        func next() throws -> SourceRead<T> {
            calls += 1
            return try read(calls)
        }
        func currentSplit() -> Split { Split() }
    }

    let boundedness: Boundedness
    let read: @Sendable (Int) throws -> SourceRead<T>

    init(_ boundedness: Boundedness, read: @escaping @Sendable (Int) throws -> SourceRead<T>) {
        self.boundedness = boundedness
        self.read = read
    }

    func createSplits(parallelism: Int) -> [Split] { [Split()] }
    func createReader(for split: Split) -> Reader { Reader(read: read) }
}
