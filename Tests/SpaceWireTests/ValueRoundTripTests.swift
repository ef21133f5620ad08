// Every Value case survives WireWriter.writeValue → WireReader.readValue bit for bit.
import Testing
@testable import SpaceWire

@Suite("Value round trips")
struct ValueRoundTripTests {
    static let scalars: [Value] = [
        .null, .bool(false), .bool(true),
        .int(0), .int(1), .int(-1), .int(.min), .int(.max),
        .uint(UInt64(Int64.max) + 1), .uint(.max),
        .double(0), .double(-0.0), .double(1.5), .double(.nan), .double(-.nan),
        .double(Double(nan: 0x1234, signaling: true)), .double(.infinity), .double(-.infinity),
        .double(.leastNonzeroMagnitude), .double(.greatestFiniteMagnitude),
        .string(""), .string("hello"), .string("héllo wörld 中文 😀"), .string("a\0b\0"),
        .string("\"\\\n\t\u{1}"),
        .bytes([]), .bytes([0, 1, 0xFF]),
        .handle(0), .handle(.max),
        .callback(arity: 0), .callback(arity: 3), .callback(arity: 255),
        .array([]), .object([]),
        .object([Value.Field("", .null), Value.Field("x", 1), Value.Field("x", 2)]),
    ]

    @Test("scalar and edge values", arguments: scalars)
    func roundTrip(_ value: Value) throws {
        let decoded = try decodeValue(encode(value)).get()
        #expect(identical(decoded, value), "\(value) came back as \(decoded)")
    }

    @Test func encodedSizeIsWhatTheWriterWrites() {
        for value in Self.scalars {
            #expect(value.encodedSize == encode(value).count, "\(value)")
        }
        var rng = SplitMix64(seed: 42)
        for _ in 0..<500 {
            let value = randomValue(&rng, depth: 0)
            #expect(value.encodedSize == encode(value).count, "\(value)")
        }
    }

    @Test func doubleBitPatternsSurvive() throws {
        // NaN payloads and the sign of zero are not visible to ==.
        for bits: UInt64 in [0x7FF8_0000_0000_0001, 0xFFF0_0000_0000_0001, 0x8000_0000_0000_0000, 0x7FF4_0000_0000_0000] {
            guard case .double(let d) = try decodeValue(encode(.double(Double(bitPattern: bits)))).get() else {
                Issue.record("not a double"); continue
            }
            #expect(d.bitPattern == bits)
        }
    }

    @Test func oneMebibyteOfBytes() throws {
        var rng = SplitMix64(seed: 1)
        let big = rng.bytes(1 << 20)
        let encoded = encode(.bytes(big))
        #expect(encoded.count == 1 + 4 + (1 << 20))
        #expect(try decodeValue(encoded).get() == .bytes(big))
    }

    @Test func nestingUpToTheDepthLimit() throws {
        let limit = WireLimits.default.maxDepth
        var array: Value = .int(7)
        var object: Value = .string("leaf")
        for i in 0..<limit {
            array = .array([array, .null])
            object = .object([Value.Field("k\(i)", object)])
        }
        #expect(try decodeValue(encode(array)).get() == array)
        #expect(try decodeValue(encode(object)).get() == object)
        // One more level is refused with tooLarge.
        expectFailure(decodeValue(encode(.array([array]))), .tooLarge)
        expectFailure(decodeValue(encode(.object([Value.Field("k", object)]))), .tooLarge)
        // A smaller limit is honoured exactly.
        let small = WireLimits(maxFrameSize: 1 << 20, maxArguments: 8, maxDepth: 2, maxStringLength: 64)
        #expect(try decodeValue(encode([[1]]), limits: small).get() == [[1]])
        expectFailure(decodeValue(encode([[[1]]]), limits: small), .tooLarge)
    }

    @Test func randomTreesRoundTrip() throws {
        var rng = SplitMix64(seed: 0x5EED)
        for _ in 0..<2_000 {
            let v = randomValue(&rng, depth: rng.below(6))
            let decoded = try decodeValue(encode(v)).get()
            #expect(identical(decoded, v), "\(v)")
            // Encoding is deterministic: the decoded value encodes to the same bytes.
            #expect(encode(decoded) == encode(v))
        }
    }

    @Test func writeUIntPicksTheCanonicalEncoding() throws {
        for v: UInt64 in [0, 1, UInt64(Int64.max)] {
            var w = WireWriter()
            w.writeUInt(v)
            #expect(w.bytes.first == ValueTag.int.rawValue)
            #expect(try decodeValue(w.bytes).get() == .int(Int64(v)))
        }
        for v: UInt64 in [UInt64(Int64.max) + 1, .max] {
            var w = WireWriter()
            w.writeUInt(v)
            #expect(w.bytes.first == ValueTag.uint.rawValue)
            #expect(try decodeValue(w.bytes).get() == .uint(v))
        }
    }

    @Test func typedWritersMatchWriteValue() {
        func bytes(_ f: (inout WireWriter) -> Void) -> [UInt8] {
            var w = WireWriter()
            f(&w)
            return w.bytes
        }
        #expect(bytes { $0.writeInt(-5) } == encode(.int(-5)))
        #expect(bytes { $0.writeDouble(-0.0) } == encode(.double(-0.0)))
        #expect(bytes { $0.writeBool(true) } == encode(.bool(true)))
        #expect(bytes { $0.writeBool(false) } == encode(.bool(false)))
        let utf8: [UInt8] = Array("héllo".utf8)
        #expect(bytes { w in utf8.withUnsafeBytes { w.writeStringValue(bytes: $0) } } == encode(.string("héllo")))
    }

    @Test func encodedLayoutOfEachTag() {
        #expect(encode(.null) == [0x00])
        #expect(encode(false) == [0x01])
        #expect(encode(true) == [0x02])
        #expect(encode(.int(-2)) == [0x03, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(encode(.uint(0x8000_0000_0000_0001)) == [0x04, 0x01, 0, 0, 0, 0, 0, 0, 0x80])
        #expect(encode(.double(1.0)) == [0x05, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
        #expect(encode("hé") == [0x06, 3, 0, 0, 0, 0x68, 0xC3, 0xA9])
        #expect(encode(.bytes([0xAB])) == [0x07, 1, 0, 0, 0, 0xAB])
        #expect(encode([1, nil]) == [0x08, 2, 0, 0, 0, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0x00])
        #expect(encode(.object([Value.Field("a", true)])) == [0x09, 1, 0, 0, 0, 1, 0, 0, 0, 0x61, 0x02])
        #expect(encode(.handle(0x0102)) == [0x0A, 0x02, 0x01, 0, 0, 0, 0, 0, 0])
        #expect(encode(.callback(arity: 2)) == [0x0B, 0x02])
    }

    @Test func valuesAreReadBackToBack() throws {
        var w = WireWriter()
        let values: [Value] = [1, "two", [3.0], nil, .bytes([4])]
        for v in values { w.writeValue(v) }
        let decoded = try read(w.bytes) { (r: inout WireReader) throws(SpaceError) -> [Value] in
            var out: [Value] = []
            while !r.isAtEnd { out.append(try r.readValue()) }
            return out
        }.get()
        #expect(decoded == values)
    }
}
