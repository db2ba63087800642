import StreamCore
import StreamTesting
import XCTest

private struct Acc: Codable, Equatable, Hashable {
    var count: Int64
    var sum: Int64
}

private enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rect(Double, Double)
    case empty
    case named(String, tags: [String], inner: Acc?)
}

private enum Color: String, Codable { case red, green }

private indirect enum Tree: Codable, Equatable {
    case leaf(Int)
    case node(Tree, Tree)
}

private struct Empty: Codable, Equatable {}

private struct Everything: Codable, Equatable {
    var i = Int.min
    var i8 = Int8.min
    var i16 = Int16.max
    var i32 = Int32.min
    var i64 = Int64.max
    var u = UInt.max
    var u8 = UInt8.max
    var u16 = UInt16.max
    var u32 = UInt32.max
    var u64 = UInt64.max
    var d = -0.0
    var inf = Double.infinity
    var f: Float = 1.5
    var b = true
    var s = "héllo, wörld — 🌊"
    var emptyString = ""
    var long = String(repeating: "x", count: 300)
    var opt: Int? = 7
    var optNil: String? = nil
    var optOpt: Int?? = .some(nil)
    var arr: [Int64] = [1, -2, 3]
    var emptyArr: [String] = []
    var nested: [Acc] = [Acc(count: 1, sum: 2), Acc(count: 3, sum: 4)]
    var byString: [String: Int] = ["a": 1, "b": 2, "": 3]
    var byInt: [Int: String] = [1: "one", -5: "minus five"]
    var byInt64: [Int64: Acc] = [9: Acc(count: 9, sum: 90)]
    var byStruct: [Acc: String] = [Acc(count: 1, sum: 1): "x"]
    var optionals: [Int?] = [1, nil, 3]
    var nestedArrays: [[UInt8]] = [[], [1, 2], [255]]
    var shapes: [Shape] = [.circle(radius: 2), .rect(1, 2), .empty, .named("n", tags: ["t1", "t2"], inner: nil),
                           .named("m", tags: [], inner: Acc(count: 5, sum: 6))]
    var color = Color.green
    var tree = Tree.node(.leaf(1), .node(.leaf(2), .leaf(3)))
    var empty = Empty()
    var set: Set<String> = ["p", "q"]
}

final class CheckpointCodecTests: XCTestCase {
    private func roundTrip<T: Codable & Equatable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = try BinaryEncoder().encode(value)
        let back = try BinaryDecoder().decode(T.self, from: bytes)
        XCTAssertEqual(back, value, file: file, line: line)
    }

    /// Byte blobs (encoded state nested in a checkpoint) are written as length + bytes.
    func testByteBlobsAreCompactAndChecked() throws {
        struct Holder: Codable, Equatable { var name: String; var blob: [UInt8]; var blobs: [[UInt8]]; var maybe: [UInt8]? }
        let value = Holder(name: "x", blob: Array(0..<200).map(UInt8.init), blobs: [[], [1, 2, 3], [UInt8](repeating: 7, count: 1000)], maybe: [9])
        let bytes = try BinaryEncoder().encode(value)
        XCTAssertEqual(try BinaryDecoder().decode(Holder.self, from: bytes), value)
        XCTAssertLessThan(bytes.count, 1_300, "about one byte per blob byte")
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            XCTAssertThrowsError(try BinaryDecoder().decode(Holder.self, from: Array(bytes[..<cut])), "prefix \(cut)")
        }
    }

    func testPrimitivesAndOptionalsAtTopLevel() throws {
        try roundTrip(Int64(-42))
        try roundTrip(UInt64.max)
        try roundTrip("")
        try roundTrip("ünïcödé 🎉")
        try roundTrip(true)
        try roundTrip(3.25)
        try roundTrip(Int?.none)
        try roundTrip(Int?.some(0))
        try roundTrip(String??.some(nil))
        try roundTrip([Int]())
        try roundTrip([Int?]([nil, nil, 1]))
        try roundTrip(Empty())
        XCTAssertEqual(try BinaryEncoder().encode(Int64(1)), [1, 0, 0, 0, 0, 0, 0, 0])
    }

    func testEverythingRoundTrips() throws {
        try roundTrip(Everything())
        var other = Everything()
        other.opt = nil
        other.optNil = "now set"
        other.optOpt = nil
        other.byString = [:]
        other.shapes = []
        try roundTrip(other)
    }

    func testNaNKeepsItsBits() throws {
        let nan = Double(nan: 0x1234, signaling: false)
        let back = try BinaryDecoder().decode(Double.self, from: try BinaryEncoder().encode(nan))
        XCTAssertEqual(back.bitPattern, nan.bitPattern)
    }

    func testSmallStructIsCompact() throws {
        // 8 header + ("count": 1+5, len 4, 8) + ("sum": 1+3, len 4, 8)
        XCTAssertEqual(try BinaryEncoder().encode(Acc(count: 1, sum: 2)).count, 42)
    }

    func testLargeCollections() throws {
        let big = (0..<10_000).map { Acc(count: Int64($0), sum: Int64($0) * 3) }
        try roundTrip(big)
        let dict = Dictionary(uniqueKeysWithValues: (0..<2_000).map { ("key\($0)", [Int64($0)]) })
        try roundTrip(dict)
    }

    /// Fields read in another order than written, a field added since (optional, absent), a field
    /// dropped since (ignored): keyed entries are looked up by name.
    func testKeyedLookupIsByName() throws {
        struct V1: Codable { var a: Int; var b: String; var dropped: [Int] }
        struct V2: Decodable, Equatable {
            var a: Int; var b: String; var added: Int?
            enum CodingKeys: String, CodingKey { case a, b, added }
            init(a: Int, b: String, added: Int?) { self.a = a; self.b = b; self.added = added }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                added = try c.decodeIfPresent(Int.self, forKey: .added)
                b = try c.decode(String.self, forKey: .b)
                a = try c.decode(Int.self, forKey: .a)
            }
        }
        let bytes = try BinaryEncoder().encode(V1(a: 1, b: "two", dropped: [3]))
        XCTAssertEqual(try BinaryDecoder().decode(V2.self, from: bytes), V2(a: 1, b: "two", added: nil))
    }

    func testSeveralValuesInOneBuffer() throws {
        var buffer: [UInt8] = []
        try BinaryEncoder().encode(Acc(count: 1, sum: 1), appendingTo: &buffer)
        try BinaryEncoder().encode("between", appendingTo: &buffer)
        try BinaryEncoder().encode([Int?](arrayLiteral: 1, nil), appendingTo: &buffer)
        try buffer.withUnsafeBytes { raw in
            var offset = 0
            XCTAssertEqual(try BinaryDecoder().decode(Acc.self, from: raw, at: &offset), Acc(count: 1, sum: 1))
            XCTAssertEqual(try BinaryDecoder().decode(String.self, from: raw, at: &offset), "between")
            XCTAssertEqual(try BinaryDecoder().decode([Int?].self, from: raw, at: &offset), [1, nil])
            XCTAssertEqual(offset, raw.count)
        }
    }

    func testTypeMismatchAndMissingKeysAreDecodingErrors() throws {
        struct A: Codable { var x: Int64 }
        struct B: Codable { var x: Int32 }
        struct C: Codable { var y: Int64 }
        let bytes = try BinaryEncoder().encode(A(x: 1))
        XCTAssertThrowsError(try BinaryDecoder().decode(B.self, from: bytes)) { error in
            guard case DecodingError.typeMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try BinaryDecoder().decode(C.self, from: bytes)) { error in
            guard case DecodingError.keyNotFound = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try BinaryDecoder().decode(Bool.self, from: [2])) { error in
            guard case DecodingError.dataCorrupted = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try BinaryDecoder().decode(String.self, from: [2, 0xff, 0xfe]))   // bad UTF-8
        XCTAssertThrowsError(try BinaryDecoder().decode(Int64.self, from: [1, 2, 3]))         // truncated
        XCTAssertThrowsError(try BinaryDecoder().decode(UInt8.self, from: [1, 2]))            // trailing
    }

    func testErrorsCarryTheCodingPath() throws {
        struct Inner: Codable { var v: Int64 }
        struct Outer: Codable { var items: [Inner] }
        struct InnerWrong: Codable { var v: String }
        struct OuterWrong: Codable { var items: [InnerWrong] }
        let bytes = try BinaryEncoder().encode(Outer(items: [Inner(v: 1), Inner(v: 2)]))
        XCTAssertThrowsError(try BinaryDecoder().decode(OuterWrong.self, from: bytes)) { error in
            guard case DecodingError.typeMismatch(_, let context) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(context.codingPath.map(\.stringValue), ["items", "Index 0", "v"])
        }
    }

    /// Every prefix of a valid encoding fails with a DecodingError, and no flipped byte or random
    /// input crashes the decoder.
    func testTruncatedAndGarbledInputNeverCrashes() throws {
        let bytes = try BinaryEncoder().encode(Everything())
        for n in 0..<bytes.count {
            XCTAssertThrowsError(try BinaryDecoder().decode(Everything.self, from: Array(bytes[0..<n])), "prefix \(n)") { error in
                XCTAssertTrue(error is DecodingError, "prefix \(n): \(error)")
            }
        }
        var random = SeededRandom(seed: 42)
        for _ in 0..<3_000 {
            var garbled = bytes
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                garbled[Int.random(in: 0..<garbled.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            _ = try? BinaryDecoder().decode(Everything.self, from: garbled)
        }
        for _ in 0..<2_000 {
            let junk = (0..<Int.random(in: 0..<200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            _ = try? BinaryDecoder().decode(Everything.self, from: junk)
            _ = try? BinaryDecoder().decode([String: [Acc]].self, from: junk)
            _ = try? BinaryDecoder().decode([Shape].self, from: junk)
        }
    }

    func testGarbledCountCannotAllocateOrSpin() throws {
        // An unkeyed container claiming 2^32-1 elements in 0 bytes.
        let junk: [UInt8] = [4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        XCTAssertThrowsError(try BinaryDecoder().decode([Empty].self, from: junk))
    }

    func testContainersUsedOutOfNestingOrderThrow() throws {
        struct Misuse: Encodable {
            enum K: String, CodingKey { case a, b }
            func encode(to encoder: any Encoder) throws {
                var outer = encoder.container(keyedBy: K.self)
                var inner = outer.nestedUnkeyedContainer(forKey: .a)
                try inner.encode(1)
                try outer.encode(2, forKey: .b)
                try inner.encode(3)   // inner was closed when outer moved on
            }
        }
        XCTAssertThrowsError(try BinaryEncoder().encode(Misuse())) { error in
            guard case EncodingError.invalidValue = error else { return XCTFail("\(error)") }
        }
    }

    /// Hand-written coders using nested containers and super encoders (class hierarchies).
    func testNestedContainersAndSuperEncoders() throws {
        class Base: Codable {
            var id: Int
            init(id: Int) { self.id = id }
        }
        final class Derived: Base, Equatable {
            var tags: [String]
            var point: (x: Int32, y: Int32)
            enum K: String, CodingKey { case tags, point }
            enum P: String, CodingKey { case x, y }
            init(id: Int, tags: [String], point: (Int32, Int32)) { self.tags = tags; self.point = point; super.init(id: id) }
            required init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: K.self)
                tags = try c.decode([String].self, forKey: .tags)
                let p = try c.nestedContainer(keyedBy: P.self, forKey: .point)
                point = (try p.decode(Int32.self, forKey: .x), try p.decode(Int32.self, forKey: .y))
                try super.init(from: c.superDecoder())
            }
            override func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: K.self)
                try c.encode(tags, forKey: .tags)
                var p = c.nestedContainer(keyedBy: P.self, forKey: .point)
                try p.encode(point.x, forKey: .x)
                try p.encode(point.y, forKey: .y)
                try super.encode(to: c.superEncoder())
            }
            static func == (a: Derived, b: Derived) -> Bool { a.id == b.id && a.tags == b.tags && a.point == b.point }
        }
        try roundTrip(Derived(id: 7, tags: ["a"], point: (-1, 2)))
        try roundTrip([Derived(id: 1, tags: [], point: (0, 0)), Derived(id: 2, tags: ["x", "y"], point: (3, 4))])
    }
}
