// Value(json:) and Value.json: valid documents, number edge cases, escapes, errors with line and
// column, limits (including a 100k-deep bomb), and seeded random and mutated inputs.
import Testing
import SpaceWire

// MARK: - Helpers (private: independent of the shared Support.swift)

/// Parses `text`, returning the value or the typed error.
private func parse(_ text: String, limits: WireLimits = .default) -> Result<Value, SpaceError> {
    do throws(SpaceError) { return .success(try Value(json: text, limits: limits)) } catch { return .failure(error) }
}

/// Parses `text` that must be valid.
private func valid(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Value? {
    switch parse(text) {
    case .success(let v): return v
    case .failure(let e):
        Issue.record("\(text.debugDescription) failed: \(e)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The error `text` must produce.
private func failure(_ text: String, limits: WireLimits = .default,
                     sourceLocation: SourceLocation = #_sourceLocation) -> SpaceError? {
    switch parse(text, limits: limits) {
    case .success(let v):
        Issue.record("\(text.debugDescription) parsed as \(v), expected an error", sourceLocation: sourceLocation)
        return nil
    case .failure(let e): return e
    }
}

/// Bit-exact equality (doubles by bit pattern, so -0.0 differs from 0.0).
private func same(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.double(let x), .double(let y)): return x.bitPattern == y.bitPattern
    case (.array(let xs), .array(let ys)):
        return xs.count == ys.count && zip(xs, ys).allSatisfy { same($0, $1) }
    case (.object(let xs), .object(let ys)):
        return xs.count == ys.count && zip(xs, ys).allSatisfy { $0.name == $1.name && same($0.value, $1.value) }
    default: return a == b
    }
}

/// A random value that JSON can represent (finite doubles, unique keys).
private func randomJSONValue(_ rng: inout SplitMix64, depth: Int) -> Value {
    switch rng.below(depth > 0 ? 8 : 6) {
    case 0: return .null
    case 1: return .bool(rng.below(2) == 0)
    case 2:
        let specials: [Int64] = [0, -1, .min, .max, 1 << 53, -(1 << 53) - 1]
        return .int(rng.below(3) == 0 ? specials[rng.below(specials.count)] : Int64(bitPattern: rng.next()) >> UInt64(rng.below(64)))
    case 3: return .uint(UInt64(Int64.max) + 1 + rng.next() % UInt64(Int64.max))
    case 4:
        let specials: [Double] = [0, -0.0, 0.1, -1.5e-7, 1e308, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, 5, 1e16]
        if rng.below(3) == 0 { return .double(specials[rng.below(specials.count)]) }
        var d = Double(bitPattern: rng.next())
        while !d.isFinite { d = Double(bitPattern: rng.next()) }
        return .double(d)
    case 5: return .string(randomText(&rng))
    case 6: return .array((0..<rng.below(5)).map { _ in randomJSONValue(&rng, depth: depth - 1) })
    default:
        var names = Set<String>()
        var fields: [Value.Field] = []
        for _ in 0..<rng.below(5) {
            let name = randomText(&rng)
            if names.insert(name).inserted { fields.append(Value.Field(name, randomJSONValue(&rng, depth: depth - 1))) }
        }
        return .object(fields)
    }
}

private func randomText(_ rng: inout SplitMix64) -> String {
    let pool: [Unicode.Scalar] = ["a", "Z", "\0", "\n", "\t", "\u{1F}", "\"", "\\", "/", "é", "€", "中", "😀", "\u{7F}", "\u{FFFF}", "\u{10FFFF}"]
    var s = String.UnicodeScalarView()
    for _ in 0..<rng.below(10) { s.append(pool[rng.below(pool.count)]) }
    return String(s)
}

private func limits(depth: Int = 32, string: Int = 16 << 20, frame: Int = 16 << 20) -> WireLimits {
    WireLimits(maxFrameSize: frame, maxArguments: 255, maxDepth: depth, maxStringLength: string)
}

// MARK: - Valid documents

@Suite struct JSONTests {
    @Test func scalars() {
        #expect(valid("null") == .null)
        #expect(valid("true") == .bool(true))
        #expect(valid("false") == .bool(false))
        #expect(valid("0") == .int(0))
        #expect(valid("42") == .int(42))
        #expect(valid("-7") == .int(-7))
        #expect(valid("2.5") == .double(2.5))
        #expect(valid("\"hi\"") == .string("hi"))
        #expect(valid("\"\"") == .string(""))
        #expect(valid(" \t\r\n 1 \n\t ") == .int(1))
        #expect(valid("\u{FEFF}{\"a\":1}") == .object([Value.Field("a", 1)]), "a leading BOM is ignored")
    }

    @Test func objectsKeepMemberOrder() throws {
        let v = try #require(valid(#"{"zeta": 1, "alpha": 2, "mid": {"b": true, "a": null}}"#))
        #expect(v.fields?.map(\.name) == ["zeta", "alpha", "mid"])
        #expect(v[field: "mid"]?.fields?.map(\.name) == ["b", "a"])
        #expect(v[field: "alpha"] == .int(2))
    }

    @Test func arraysAndNesting() {
        #expect(valid("[]") == .array([]))
        #expect(valid("{}") == .object([]))
        #expect(valid("[ ]") == .array([]))
        #expect(valid("{ \n }") == .object([]))
        #expect(valid("[[], {}, [[]], [{}]]") == .array([.array([]), .object([]), .array([.array([])]), .array([.object([])])]))
        #expect(valid("[1, \"two\", 3.5, true, false, null, [4], {\"five\": 5}]") ==
                .array([1, "two", 3.5, true, false, nil, [4], .object([Value.Field("five", 5)])]))
        let doc = """
        {
          "name": "calc",
          "version": 3,
          "functions": [
            {"name": "math.add", "signature": "int32_t (int32_t a, int32_t b)"},
            {"name": "math.neg", "signature": "double (double)", "pure": true}
          ],
          "limits": {"depth": 32, "ratio": 0.75, "none": null}
        }
        """
        let expected: Value = .object([
            Value.Field("name", "calc"),
            Value.Field("version", 3),
            Value.Field("functions", [
                .object([Value.Field("name", "math.add"), Value.Field("signature", "int32_t (int32_t a, int32_t b)")]),
                .object([Value.Field("name", "math.neg"), Value.Field("signature", "double (double)"), Value.Field("pure", true)]),
            ]),
            Value.Field("limits", .object([Value.Field("depth", 32), Value.Field("ratio", 0.75), Value.Field("none", nil)])),
        ])
        #expect(valid(doc) == expected)
    }

    @Test func sameKeyInDifferentObjectsIsFine() {
        #expect(valid(#"[{"a":1},{"a":2}]"#) == [.object([Value.Field("a", 1)]), .object([Value.Field("a", 2)])])
        #expect(valid(#"{"a":{"a":1}}"#) == .object([Value.Field("a", .object([Value.Field("a", 1)]))]))
    }

    // MARK: Numbers

    @Test func integerEdges() {
        #expect(valid("-9223372036854775808") == .int(.min))
        #expect(valid("9223372036854775807") == .int(.max))
        #expect(valid("-9223372036854775807") == .int(.min + 1))
        #expect(valid("9223372036854775808") == .uint(1 << 63))
        #expect(valid("18446744073709551615") == .uint(.max))
        #expect(valid("-0") == .int(0), "-0 is an integer that fits Int64")
        #expect(valid("1000000000000") == .int(1_000_000_000_000))
    }

    @Test func numbersOutsideIntegerRangeBecomeDoubles() {
        #expect(valid("18446744073709551616") == .double(18446744073709551616.0))
        #expect(valid("-9223372036854775809") == .double(-9223372036854775809.0))
        #expect(valid("123456789012345678901234567890") == .double(1.2345678901234568e29))
        #expect(valid("-123456789012345678901234567890") == .double(-1.2345678901234568e29))
    }

    @Test func fractionsAndExponents() throws {
        #expect(valid("1e308") == .double(1e308))
        #expect(valid("1.7976931348623157e308") == .double(.greatestFiniteMagnitude))
        #expect(valid("1.5e-7") == .double(1.5e-7))
        #expect(valid("5e-324") == .double(.leastNonzeroMagnitude))
        #expect(valid("1E2") == .double(100))
        #expect(valid("1e+2") == .double(100))
        #expect(valid("1e-2") == .double(0.01))
        #expect(valid("0.1") == .double(0.1))
        #expect(valid("3.0") == .double(3), "a fraction makes a double even when it is whole")
        #expect(valid("1e-400") == .double(0), "underflow rounds to zero")
        let negativeZero = try #require(valid("-0.0"))
        #expect(same(negativeZero, .double(-0.0)), "got \(negativeZero)")
        let negativeZeroExp = try #require(valid("-0e0"))
        #expect(same(negativeZeroExp, .double(-0.0)))
        #expect(valid("[1.5,-2e3,0]") == [1.5, -2000.0, 0])
    }

    // MARK: Strings

    @Test func escapes() {
        #expect(valid(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{C}\n\r\t"))
        #expect(valid(#""\u0041\u00e9\u20AC\u4E2D""#) == .string("Aé€中"))
        #expect(valid(#""\u0000""#) == .string("\0"))
        #expect(valid(#""\u001f""#) == .string("\u{1F}"))
        #expect(valid(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(valid(#""\ud83d\ude00x""#) == .string("😀x"))
        #expect(valid(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
        #expect(valid(#""\uFFFF""#) == .string("\u{FFFF}"))
        #expect(valid(#""a\nb""#) == .string("a\nb"))
        #expect(valid(#"{"k\u0065y": 1}"#) == .object([Value.Field("key", 1)]))
    }

    @Test func rawUnicode() {
        #expect(valid("\"中文 é 😀 \u{10FFFF}\"") == .string("中文 é 😀 \u{10FFFF}"))
        #expect(valid("{\"ключ\": \"значение\"}") == .object([Value.Field("ключ", "значение")]))
        #expect(valid("\"\u{7F}\"") == .string("\u{7F}"), "DEL is not a control character in JSON")
    }

    // MARK: Writing

    @Test func jsonIsCompactAndMatchesDescription() {
        let v: Value = .object([Value.Field("b", [1, 2.5, "x\n"]), Value.Field("a", nil), Value.Field("u", .uint(.max))])
        #expect(v.json == #"{"b":[1,2.5,"x\n"],"a":null,"u":18446744073709551615}"#)
        #expect(v.json == v.description)
        #expect(valid(v.json) == v)
    }

    @Test func randomValuesRoundTrip() {
        var rng = SplitMix64(seed: 0x4A53_4F4E)
        for i in 0..<500 {
            let v = randomJSONValue(&rng, depth: 4)
            switch parse(v.json) {
            case .success(let back):
                #expect(same(back, v), "#\(i): \(v.json) came back as \(back.json)")
            case .failure(let e):
                Issue.record("#\(i): \(v.json) failed: \(e)")
            }
        }
    }

    // MARK: - Errors

    /// Malformed inputs and the exact message each must produce.
    static let malformed: [(String, String)] = [
        ("", "line 1, column 1: expected a JSON value, found end of input"),
        ("   \n  ", "line 2, column 3: expected a JSON value, found end of input"),
        ("{\n  \"a\": 1,\n  \"b\": 2 x\n}", "line 3, column 10: expected ',' or '}' after object member, found 'x'"),
        ("[1, 2", "line 1, column 6: expected ',' or ']' after array element, found end of input"),
        ("[1 2]", "line 1, column 4: expected ',' or ']' after array element, found '2'"),
        ("[1,]", "line 1, column 4: expected a JSON value, found ']'"),
        ("{\"a\":1,}", "line 1, column 8: expected an object key (a string) after ',', found '}'"),
        ("{a: 1}", "line 1, column 2: expected an object key (a string) or '}', found 'a'"),
        ("{\"a\" 1}", "line 1, column 6: expected ':' after object key, found '1'"),
        ("{\"a\": 1, \"a\": 2}", "line 1, column 10: duplicate key \"a\" in object"),
        ("\"abc", "line 1, column 1: unterminated string"),
        ("\"a\nb\"", "line 1, column 3: unescaped control character U+000A in string"),
        ("\"\\x\"", "line 1, column 3: invalid escape sequence in string (after '\\'), found 'x'"),
        ("\"\\u12G4\"", "line 1, column 6: invalid \\u escape in string: expected 4 hex digits, found 'G'"),
        ("\"\\uD800\"", "line 1, column 2: unpaired surrogate \\uD800 in string"),
        ("\"\\uDC00\"", "line 1, column 2: unpaired surrogate \\uDC00 in string"),
        ("\"x\\uD83D\\u0041\"", "line 1, column 3: unpaired surrogate \\uD83D in string"),
        ("\"\\uD83Dabc\"", "line 1, column 2: unpaired surrogate \\uD83D in string"),
        ("01", "line 1, column 1: leading zeros are not allowed in numbers"),
        ("-", "line 1, column 2: expected a digit after '-', found end of input"),
        ("-x", "line 1, column 2: expected a digit after '-', found 'x'"),
        ("1.", "line 1, column 3: expected a digit after '.', found end of input"),
        (".5", "line 1, column 1: expected a JSON value, found '.'"),
        ("1e", "line 1, column 3: expected a digit in the exponent, found end of input"),
        ("1e+x", "line 1, column 4: expected a digit in the exponent, found 'x'"),
        ("+1", "line 1, column 1: expected a JSON value, found '+'"),
        ("1e400", "line 1, column 1: number 1e400 is out of range"),
        ("tru", "line 1, column 1: invalid literal (expected 'true'), found 't'"),
        ("nul", "line 1, column 1: invalid literal (expected 'null'), found 'n'"),
        ("True", "line 1, column 1: expected a JSON value, found 'T'"),
        ("NaN", "line 1, column 1: expected a JSON value, found 'N'"),
        ("1 2", "line 1, column 3: expected end of input after the JSON value, found '2'"),
        ("{} x", "line 1, column 4: expected end of input after the JSON value, found 'x'"),
        ("[\"é\", ü]", "line 1, column 7: expected a JSON value, found 'ü'"),
        ("['a']", "line 1, column 2: expected a JSON value, found '''"),
        ("[1,\t\u{1}]", "line 1, column 5: expected a JSON value, found U+0001"),
        ("// comment\n1", "line 1, column 1: expected a JSON value, found '/'"),
        ("\u{FEFF}\u{FEFF}1", "line 1, column 2: expected a JSON value, found '\u{FEFF}'"),
    ]

    @Test(arguments: malformed)
    func malformedInputNamesLineAndColumn(_ input: String, _ message: String) throws {
        let e = try #require(failure(input))
        #expect(e.code == .invalidJSON)
        #expect(e.message == message)
    }

    @Test func invalidJSONCodeIsStable() {
        #expect(SpaceError.Code.invalidJSON.rawValue == "invalidJSON")
        #expect(SpaceError.Code.invalidJSON != .protocolError)
    }

    // MARK: - Limits

    @Test func depthLimitIsExact() throws {
        let lim = limits(depth: 4)
        #expect(try Value(json: "[[[[1]]]]", limits: lim) == [[[[1]]]])
        #expect(try Value(json: #"{"a":{"b":[{"c":1}]}}"#, limits: lim).json == #"{"a":{"b":[{"c":1}]}}"#)
        let e = try #require(failure("[[[[[1]]]]]", limits: lim))
        #expect(e.code == .tooLarge)
        #expect(e.message == "line 1, column 5: arrays and objects nested deeper than the limit of 4")
        let o = try #require(failure(#"{"a":{"b":[{"c":{}}]}}"#, limits: lim))
        #expect(o.code == .tooLarge)
        // The default depth (32) admits 32 levels and no more.
        #expect(throws: Never.self) { try Value(json: String(repeating: "[", count: 32) + String(repeating: "]", count: 32)) }
        #expect(failure(String(repeating: "[", count: 33) + String(repeating: "]", count: 33))?.code == .tooLarge)
    }

    @Test func depthBombDoesNotCrash() {
        let n = 100_000
        #expect(failure(String(repeating: "[", count: n))?.code == .tooLarge)
        #expect(failure(String(repeating: "[", count: n) + String(repeating: "]", count: n))?.code == .tooLarge)
        #expect(failure(String(repeating: #"{"a":"#, count: n))?.code == .tooLarge)
        #expect(failure(String(repeating: #"[{"a":"#, count: n))?.code == .tooLarge)
        // A raised limit is honoured exactly.
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: Never.self) { _ = try Value(json: deep, limits: limits(depth: 300)).kindName }
        #expect(failure(deep, limits: limits(depth: 299))?.message == "line 1, column 300: arrays and objects nested deeper than the limit of 299")
    }

    @Test func stringLengthLimit() throws {
        let lim = limits(string: 8)
        #expect(try Value(json: #""12345678""#, limits: lim) == "12345678")
        #expect(try Value(json: #""1234567\u0038""#, limits: lim) == "12345678")
        #expect(try Value(json: #""\u00e9\u00e9\u00e9\u00e9""#, limits: lim) == "éééé", "8 UTF-8 bytes")
        for input in [#""123456789""#, #""1234567\u00e9""#, #"{"123456789":1}"#, #"["ok", "éééé1"]"#] {
            let e = try #require(failure(input, limits: lim))
            #expect(e.code == .tooLarge, "\(input): \(e)")
            #expect(e.message.contains("exceeds the limit of 8"))
        }
    }

    @Test func inputSizeLimit() throws {
        let lim = limits(frame: 10)
        #expect(try Value(json: "[1,2,3,44]", limits: lim) == [1, 2, 3, 44])
        let e = try #require(failure("[1,2,3,444]", limits: lim))
        #expect(e.code == .tooLarge)
        #expect(e.message == "JSON text of 11 bytes exceeds the limit of 10")
        #expect(failure("\"ééééé\"", limits: lim)?.code == .tooLarge, "the limit counts UTF-8 bytes")
    }

    @Test func hugeFlatDocumentsParse() throws {
        let n = 100_000
        let array = "[" + (0..<n).map(String.init).joined(separator: ",") + "]"
        #expect(try Value(json: array).array?.count == n)
        let object = "{" + (0..<n).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
        let v = try Value(json: object)
        #expect(v.fields?.count == n)
        #expect(v.fields?.last == Value.Field("k\(n - 1)", .int(Int64(n - 1))))
    }

    // MARK: - Hostile input

    @Test func randomAndMutatedInputsNeverCrash() {
        var rng = SplitMix64(seed: 2024)
        let seeds: [String] = [
            #"{"a": [1, 2.5e-3, -0, true, false, null], "b": {"c": "d\u00e9\uD83D\uDE00\n"}}"#,
            #"[[[[]]], {}, "", "\\", 18446744073709551615, -9223372036854775808, 1e308]"#,
            #"{"inactivityTimeout": 3600000, "paths": ["/a"], "control": {"forkTimeout": 10000}}"#,
        ]
        let alphabet = Array(#"{}[],:"\/ubfnrt0123456789-+.eEDdCc8aF tnull"#.utf8) + [0x0A, 0x00, 0x1F, 0xC3, 0xA9, 0xFF]
        var successes = 0
        var failures = 0
        for i in 0..<2_000 {
            var bytes: [UInt8]
            if i % 4 == 3 {
                // Token soup.
                bytes = (0..<rng.below(64)).map { _ in alphabet[rng.below(alphabet.count)] }
            } else {
                // A valid document (a seed or a random value), mutated a few times.
                bytes = Array((i % 2 == 0 ? seeds[rng.below(seeds.count)] : randomJSONValue(&rng, depth: 3).json).utf8)
                for _ in 0..<(1 + rng.below(4)) {
                    let at = bytes.isEmpty ? 0 : rng.below(bytes.count)
                    switch rng.below(5) {
                    case 0 where !bytes.isEmpty: bytes[at] = alphabet[rng.below(alphabet.count)]
                    case 1 where !bytes.isEmpty: bytes.remove(at: at)
                    case 2: bytes.insert(alphabet[rng.below(alphabet.count)], at: at)
                    case 3: bytes = Array(bytes.prefix(at))
                    default:
                        if !bytes.isEmpty { bytes[at] ^= UInt8(truncatingIfNeeded: 1 << rng.below(8)) }
                    }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            switch parse(text, limits: limits(depth: 1 + rng.below(6))) {
            case .success(let v):
                successes += 1
                #expect(parse(v.json).map { same($0, v) } == .success(true), "#\(i): \(text.debugDescription)")
            case .failure(let e):
                failures += 1
                #expect(e.code == .invalidJSON || e.code == .tooLarge, "#\(i): \(e)")
                if e.code == .invalidJSON { #expect(e.message.hasPrefix("line "), "#\(i): \(e)") }
            }
        }
        #expect(successes + failures == 2_000)
        #expect(failures > 500, "mutations should mostly break documents")
    }
}
