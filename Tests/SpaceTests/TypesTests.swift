import Space
import Testing

/// Structs, arrays, buffers, out-parameters, handles, variadics and errno through the real host.
@Suite("Types beyond scalars")
struct TypesTests {
    @Test func structsByValueAndByPointer() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        let mid = try await space.call("calc", "geo.midpoint", ["x": 0.0, "y": 0.0], ["x": 4.0, "y": 2.0])
        #expect(mid == ["x": 2.0, "y": 1.0])
        #expect(try await space.call("calc", "geo.length", ["x": 3, "y": 4]) == 5.0)
        #expect(try await space.call("calc", "geo.length", nil) == -1.0)
        #expect(try await space.call("calc", "geo.scale", ["x": 1.5, "y": -2], 2) == ["p": ["x": 3.0, "y": -4.0]])
        #expect(try await space.call("calc", "geo.origin") == ["x": 0.0, "y": 0.0])
        let box = try await space.call("calc", "geo.bounds", [["x": 1, "y": 5], ["x": -2, "y": 3], ["x": 4, "y": -1]])
        #expect(box == ["min": ["x": -2.0, "y": -1.0], "max": ["x": 4.0, "y": 5.0]])
    }

    @Test func arraysAndOutParameters() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        #expect(try await space.call("calc", "stats.minmax", [3.5, -1, 9, 2]) == ["return": 0, "min": -1.0, "max": 9.0])
        #expect(try await space.call("calc", "stats.sum", [1, 2, 3.5]) == 6.5)
        #expect(try await space.call("calc", "stats.isum", [.int(Int64(Int32.max)), 1]) == .int(Int64(Int32.max) + 1))
        #expect(try await space.call("calc", "math.divmod", 17, 5) == ["quotient": 3, "remainder": 2])
    }

    @Test func buffersAndStrings() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("text")
        #expect(try await space.call("text", "bytes.reverse", .bytes([1, 2, 3])) == ["data": .bytes([3, 2, 1])])
        #expect(try await space.call("text", "bytes.fill", 4, 7) == ["return": 4, "out": .bytes([7, 7, 7, 7])])
        #expect(try await space.call("text", "bytes.copy", .bytes([9, 8])) == ["return": 2, "out": .bytes([9, 8])])
        #expect(try await space.call("text", "text.dup", "abc") == "ABC")
        #expect(try await space.call("text", "text.live") == 0)
        #expect(try await space.call("text", "text.format", 64, "%s=%d", "x", 42) == ["return": 4, "out": "x=42"])
        #expect(try await space.call("text", "text.join", ["a", "b", "c"], "-") == "a-b-c")
    }

    @Test func handlesErrnoAndVariadics() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        let c = try await space.call("calc", "counter.new", 10)
        guard case .handle = c else { Issue.record("expected a handle, got \(c)"); return }
        #expect(try await space.call("calc", "counter.add", c, 5) == 15)
        #expect(try await space.call("calc", "counter.live") == 1)
        #expect(try await space.call("calc", "counter.free", c) == .null)
        #expect(try await space.call("calc", "counter.live") == 0)
        let stale = await spaceError { _ = try await space.call("calc", "counter.add", c, 1) }
        #expect(stale?.code == .badArgument)
        #expect(try await space.call("calc", "math.safe_div", 1, 0) == ["return": 0.0, "errno": 33])
        #expect(try await space.call("calc", "math.sum_ints", 3, 1, 2, 3) == 6)
    }
}

/// Every bad argument to a struct, array, buffer, handle or variadic parameter is a typed error that
/// names the place, and the next call works.
@Suite("Bad arguments beyond scalars")
struct TypesErrorTests {
    @Test func structErrorsNameTheField() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        let unknown = await spaceError { _ = try await space.call("calc", "geo.length", ["x": 1, "z": 2]) }
        #expect(unknown?.code == .badArgument)
        #expect(unknown?.message.contains("struct point has no field 'z'") == true)
        #expect(unknown?.argument?.index == 0)
        let missing = await spaceError { _ = try await space.call("calc", "geo.midpoint", ["x": 1, "y": 2], ["x": 1]) }
        #expect(missing?.message.contains("argument 1 (b)") == true)
        #expect(missing?.message.contains("'y'") == true)
        #expect(missing?.argument?.index == 1)
        let wrongType = await spaceError { _ = try await space.call("calc", "geo.midpoint", ["x": 1, "y": "two"], ["x": 1, "y": 2]) }
        #expect(wrongType?.message.contains("field 'y': expected double, got string \"two\"") == true)
        let twice = await spaceError { _ = try await space.call("calc", "geo.length", .object([.init("x", 1), .init("x", 2)])) }
        #expect(twice?.message.contains("twice") == true)
        let notObject = await spaceError { _ = try await space.call("calc", "geo.midpoint", [1, 2], ["x": 1, "y": 2]) }
        #expect(notObject?.code == .badArgument)
        let nested = await spaceError {
            _ = try await space.call("calc", "types.deep", [
                "box": ["min": ["x": 0, "y": 0], "max": ["x": 1, "y": "no"]],
                "s": ["tag": 1, "value": 2, "weight": 3, "ok": true, "ratio": 0.5], "id": 9,
            ])
        }
        #expect(nested?.message.contains("field 'box': field 'max': field 'y'") == true)
        let range = await spaceError {
            _ = try await space.call("calc", "types.sample", ["tag": 300, "value": 2, "weight": 3, "ok": true, "ratio": 0.5])
        }
        #expect(range?.message.contains("field 'tag'") == true)
        #expect(range?.message.contains("out of range") == true)
        #expect(try await space.call("calc", "geo.length", ["x": 3, "y": 4]) == 5.0)
    }

    @Test func arrayAndBufferErrors() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        try await space.add("text")
        let element = await spaceError { _ = try await space.call("calc", "stats.sum", [1, "x", 3]) }
        #expect(element?.message.contains("element 1: expected double") == true)
        let notArray = await spaceError { _ = try await space.call("calc", "stats.sum", 5) }
        #expect(notArray?.code == .badArgument)
        let arity = await spaceError { _ = try await space.call("calc", "stats.minmax", [1.0], [2.0]) }
        #expect(arity?.code == .arityMismatch)
        #expect(arity?.message.contains("takes 1 argument (xs)") == true)
        // A string's UTF-8 is accepted as bytes, and so is an array of byte values; an integer is not.
        let viaBytes = try await space.call("text", "bytes.checksum", .bytes([97, 98]))
        #expect(try await space.call("text", "bytes.checksum", "ab") == viaBytes)
        #expect(try await space.call("text", "bytes.checksum", [97, 98]) == viaBytes)
        let integer = await spaceError { _ = try await space.call("text", "bytes.checksum", 5) }
        #expect(integer?.code == .badArgument)
        let byteRange = await spaceError { _ = try await space.call("text", "bytes.checksum", [1, 256]) }
        #expect(byteRange?.message.contains("out of range") == true)
        // An out buffer larger than any reply could carry is refused before the call.
        let huge = await spaceError { _ = try await space.call("text", "bytes.fill", .int(1 << 40), 1) }
        #expect(huge?.code == .tooLarge)
        let negative = await spaceError { _ = try await space.call("text", "bytes.fill", -1, 1) }
        #expect(negative?.code == .badArgument)
        let variadic = await spaceError { _ = try await space.call("text", "text.format", 16, "%d", [1]) }
        #expect(variadic?.code == .badArgument)
        #expect(variadic?.argument?.index == 2)
        let tooFew = await spaceError { _ = try await space.call("text", "text.format", 16) }
        #expect(tooFew?.code == .arityMismatch)
        #expect(try await space.call("text", "bytes.checksum", .bytes([])) == .int(2_166_136_261))
    }

    @Test func anArrayTooLargeInMemoryIsRefusedBeforeAllocating() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        // 5 M one-byte elements on the wire, 64 bytes each in C: 320 MiB, over the per-argument cap.
        try await space.add("c", declarations: """
            struct big { double a, b, c, d, e, f, g, h; };
            int abs(const struct big *xs, size_t n);
            size_t strlen(const char *s);
            """)
        let huge = Value.array(Array(repeating: .null, count: 5_000_000))
        let e = await spaceError { _ = try await space.call("c", "abs", huge) }
        #expect(e?.code == .tooLarge)
        #expect(try await space.call("c", "strlen", "fine") == 4)
    }

    @Test func declarationsThatContradictThemselvesAreRefusedAtAdd() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let cases = [
            "SPACE_FREE(no_such_free_function) char *getenv(const char *name);",
            "SPACE_FREE(free) int abs(int);",
            "int compress(SPACE_OUT char *dest, int n);",
            "int closedir(SPACE_OUT struct DIR *dir);",
        ]
        for text in cases {
            let e = await spaceError { _ = try await space.add("c", declarations: text) }
            #expect(e?.code == .declarationError, "\(text)")
        }
        try await space.add("c", declarations: "size_t strlen(const char *s);")
        #expect(try await space.call("c", "strlen", "ok") == 2)
    }
}

/// Random values and extremes of every type, round-tripped through the real host.
@Suite("Round trips through the host")
struct RoundTripTests {
    @Test func randomStructsRoundTrip() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        var rng = SplitMix(seed: 0x5EED)
        for _ in 0..<300 {
            let s: Value = [
                "tag": .int(Int64(Int8.min) + Int64(rng.next() % 256)),
                "value": .double(rng.double()),
                "weight": .int(Int64(rng.next() % 65536)),
                "ok": .bool(rng.next() % 2 == 0),
                "ratio": .double(Double(Float(rng.double()))),
            ]
            #expect(try await space.call("calc", "types.sample", s) == s)
            let d: Value = [
                "box": ["min": ["x": .double(rng.double()), "y": .double(rng.double())],
                        "max": ["x": .double(rng.double()), "y": .double(rng.double())]],
                "s": s,
                "id": .int(Int64(bitPattern: rng.next())),
            ]
            #expect(try await space.call("calc", "types.deep", d) == d)
        }
    }

    @Test func extremes() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        try await space.add("text")
        let edge: Value = [
            "box": ["min": ["x": .double(-.infinity), "y": .double(-0.0)],
                    "max": ["x": .double(.greatestFiniteMagnitude), "y": .double(.leastNonzeroMagnitude)]],
            "s": ["tag": .int(Int64(Int8.min)), "value": .double(.infinity), "weight": .int(Int64(UInt16.max)),
                  "ok": false, "ratio": .double(Double(Float.greatestFiniteMagnitude))],
            "id": .int(Int64.min),
        ]
        #expect(try await space.call("calc", "types.deep", edge) == edge)
        let nan = try await space.call("calc", "types.sample", ["tag": 0, "value": .double(.nan), "weight": 0, "ok": true, "ratio": .double(.nan)])
        #expect(nan[field: "value"]?.double?.isNaN == true)
        #expect(nan[field: "ratio"]?.double?.isNaN == true)
        #expect(try await space.call("calc", "stats.isum", []) == 0)
        #expect(try await space.call("calc", "stats.minmax", []) == ["return": -1, "min": 0.0, "max": 0.0])

        // Empty, NUL-filled and 1 MiB buffers, in and out.
        #expect(try await space.call("text", "bytes.reverse", .bytes([])) == ["data": .bytes([])])
        #expect(try await space.call("text", "bytes.reverse", .bytes([0, 0, 1])) == ["data": .bytes([1, 0, 0])])
        var rng = SplitMix(seed: 1)
        let mib = (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        #expect(try await space.call("text", "bytes.reverse", .bytes(mib)) == ["data": .bytes(mib.reversed())])
        #expect(try await space.call("text", "bytes.copy", .bytes(mib)) == ["return": .int(1 << 20), "out": .bytes(mib)])
        let filled = try await space.call("text", "bytes.fill", .int(1 << 20), 0xAB)
        #expect(filled[field: "out"]?.bytes?.count == 1 << 20)
        #expect(filled[field: "out"]?.bytes?.allSatisfy { $0 == 0xAB } == true)
    }

    @Test func ownedStringsAreReleasedAndBorrowedOnesLeftAlone() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("text")
        for i in 0..<500 {
            #expect(try await space.call("text", "text.dup", .string("n\(i)é")) == .string("N\(i)é"))
        }
        // Every copy text.dup made was released with text_free (SPACE_FREE): none is live.
        #expect(try await space.call("text", "text.live") == 0)
        #expect(try await space.call("text", "text.dup", nil) == .null)
        // Borrowed (per-thread buffer) strings are copied and not freed: calling again still works.
        #expect(try await space.call("text", "upper", "abc") == "ABC")
        #expect(try await space.call("text", "upper", "def") == "DEF")
    }
}

/// A small deterministic generator, so a failing round trip can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func double() -> Double {
        Double(bitPattern: next() & 0x7FEF_FFFF_FFFF_FFFF | (next() & (1 << 63)))
    }
}
