import Testing

import SpaceWire
@testable import SpaceCLI

// MARK: - Helpers

/// The error `body` throws, or nil when it does not throw.
private func failure<T>(_ body: () throws(SpaceError) -> T) -> SpaceError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// `math.add` of the calc plugin.
private let add = CLISignature(
    function: "math.add",
    parameters: [CLIParameter(name: "a", type: "int32_t", kind: "integer"),
                 CLIParameter(name: "b", type: "int32_t", kind: "integer")],
    declaration: "int32_t (int32_t a, int32_t b)")

/// A one-parameter signature `f(T x)` of `kind`.
private func signature(_ kind: String, type: String = "T", arity: Int? = nil) -> CLISignature {
    CLISignature(function: "f", parameters: [CLIParameter(name: "x", type: type, kind: kind, arity: arity)])
}

/// `token` typed as the only parameter of kind `kind`.
private func typed(_ token: String, _ kind: String, type: String = "T", arity: Int? = nil) throws(SpaceError) -> Value {
    let values = try CLIArguments.convert([token], for: signature(kind, type: type, arity: arity))
    return values[0]
}

/// The message of the error typing `token` as kind `kind` gives, or nil.
private func message(_ token: String, _ kind: String, type: String = "T", arity: Int? = nil) -> String? {
    failure { () throws(SpaceError) in try typed(token, kind, type: type, arity: arity) }?.message
}

// MARK: - Syntax

@Suite("CLI token syntax")
struct CLITokenSyntaxTests {
    @Test(arguments: [
        ("42", Value.int(42)), ("-7", .int(-7)), ("+3", .int(3)), ("0", .int(0)), ("-0", .int(0)), ("007", .int(7)),
        ("0x1F", .int(31)), ("0XfF", .int(255)), ("-0x10", .int(-16)), ("+0x10", .int(16)),
        ("9223372036854775807", .int(.max)), ("-9223372036854775808", .int(.min)),
        ("9223372036854775808", .uint(9_223_372_036_854_775_808)), ("18446744073709551615", .uint(.max)),
        ("0xFFFFFFFFFFFFFFFF", .uint(.max)), ("-0x8000000000000000", .int(.min)),
    ])
    func integers(_ token: String, _ expected: Value) throws {
        #expect(try CLIArguments.parse(token) == expected)
    }

    @Test(arguments: ["18446744073709551616", "-9223372036854775809", "0x10000000000000000", "99999999999999999999999"])
    func integersBeyond64BitsAreErrors(_ token: String) {
        let e = failure { () throws(SpaceError) in try CLIArguments.parse(token) }
        #expect(e?.code == .badArgument)
        #expect(e?.message == "expected a number, got \"\(token)\": out of range (integers are at most 64 bits)")
        #expect(e?.argument == SpaceError.Argument(index: -1, expected: "a number", got: "\"\(token)\""))
    }

    @Test(arguments: [
        ("2.5", 2.5), ("-1e3", -1000), (".5", 0.5), ("5.", 5), ("1e-7", 1e-7), ("0x1p3", 8), ("+2.5", 2.5),
        ("inf", .infinity), ("-inf", -.infinity), ("Infinity", .infinity), ("INF", .infinity),
    ])
    func floats(_ token: String, _ expected: Double) throws {
        #expect(try CLIArguments.parse(token) == .double(expected))
    }

    @Test func nan() throws {
        for token in ["nan", "NaN", "-nan"] {
            guard case .double(let d) = try CLIArguments.parse(token) else {
                Issue.record("\(token) is not a float")
                continue
            }
            #expect(d.isNaN)
        }
    }

    @Test func words() throws {
        #expect(try CLIArguments.parse("true") == .bool(true))
        #expect(try CLIArguments.parse("false") == .bool(false))
        #expect(try CLIArguments.parse("null") == .null)
        #expect(try CLIArguments.parse("True") == .string("True"))
        #expect(try CLIArguments.parse("NULL") == .string("NULL"))
    }

    @Test func strings() throws {
        #expect(try CLIArguments.parse("hello") == .string("hello"))
        #expect(try CLIArguments.parse("") == .string(""))
        #expect(try CLIArguments.parse("hello world") == .string("hello world"))
        #expect(try CLIArguments.parse("1.2.3") == .string("1.2.3"))
        #expect(try CLIArguments.parse("0x") == .string("0x"))
        #expect(try CLIArguments.parse("0xZZ") == .string("0xZZ"))
        #expect(try CLIArguments.parse("1_000") == .string("1_000"))
        #expect(try CLIArguments.parse("héllo") == .string("héllo"))
        // JSON-quoted: decoded with JSON escapes; the way to pass words and numbers as text.
        #expect(try CLIArguments.parse("\"42\"") == .string("42"))
        #expect(try CLIArguments.parse("\"null\"") == .string("null"))
        #expect(try CLIArguments.parse("\"a\\nb\\t\\\"c\\\"\"") == .string("a\nb\t\"c\""))
        #expect(try CLIArguments.parse("\"\\u00e9\\ud83d\\ude00\"") == .string("é😀"))
        #expect(try CLIArguments.parse("\"\"") == .string(""))
    }

    @Test(arguments: ["\"abc", "\"a\"b\"", "\"\\x\"", "\""])
    func badJSONStrings(_ token: String) {
        let e = failure { () throws(SpaceError) in try CLIArguments.parse(token) }
        #expect(e?.code == .badArgument)
        #expect(e?.message.hasPrefix("expected a JSON string, got ") == true)
        #expect(e?.message.contains("line 1, column") == true)
        #expect(e?.message.contains("\n") == false)
    }

    @Test func callbacks() throws {
        #expect(try CLIArguments.parse("cb:0") == .callback(arity: 0))
        #expect(try CLIArguments.parse("cb:2") == .callback(arity: 2))
        #expect(try CLIArguments.parse("cb:254") == .callback(arity: 254))
        #expect(try CLIArguments.parse("cb:007") == .callback(arity: 7))
    }

    @Test(arguments: ["cb:", "cb:255", "cb:1000", "cb:-1", "cb:x", "cb:1.5", "cb: 1"])
    func badCallbacks(_ token: String) {
        let e = failure { () throws(SpaceError) in try CLIArguments.parse(token) }
        #expect(e?.code == .badArgument)
        #expect(e?.message == "expected cb:N with N from 0 to 254, got \"\(token)\"")
    }

    @Test func hexBytes() throws {
        #expect(try CLIArguments.parse("hex:") == .bytes([]))
        #expect(try CLIArguments.parse("hex:0aFF") == .bytes([0x0A, 0xFF]))
        #expect(try CLIArguments.parse("hex:00010203") == .bytes([0, 1, 2, 3]))
    }

    @Test(arguments: ["hex:abc", "hex:zz", "hex:0g", "hex: 0a"])
    func badHex(_ token: String) {
        let e = failure { () throws(SpaceError) in try CLIArguments.parse(token) }
        #expect(e?.code == .badArgument)
        #expect(e?.message == "expected hex: and an even number of hex digits, got \"\(token)\"")
    }

    @Test(arguments: [
        ("b64:", [UInt8]()), ("b64:aGVsbG8=", Array("hello".utf8)), ("b64:aGVsbG8", Array("hello".utf8)),
        ("b64:AQID", [1, 2, 3]), ("b64:+/8=", [0xFB, 0xFF]), ("b64:+/8", [0xFB, 0xFF]), ("b64:AA==", [0]), ("b64:AA", [0]),
        ("b64:aGVsbG8gd29ybGQ=", Array("hello world".utf8)), ("b64:YWJjZA==", Array("abcd".utf8)),
    ])
    func base64Bytes(_ token: String, _ expected: [UInt8]) throws {
        #expect(try CLIArguments.parse(token) == .bytes(expected))
    }

    @Test func base64RoundTripsEveryLength() {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        for n in 0..<40 {
            let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var text: [UInt8] = []
            var i = 0
            while i < data.count {
                let chunk = Array(data[i..<min(i + 3, data.count)])
                let v = chunk.enumerated().reduce(0 as UInt32) { $0 | UInt32($1.element) << (16 - 8 * UInt32($1.offset)) }
                for k in 0..<(chunk.count + 1) { text.append(alphabet[Int((v >> (18 - 6 * UInt32(k))) & 63)]) }
                for _ in chunk.count..<3 { text.append(UInt8(ascii: "=")) }
                i += 3
            }
            #expect(CLIArguments.decodeBase64(text) == data)
            #expect(CLIArguments.decodeBase64(text.filter { $0 != UInt8(ascii: "=") }) == data)
        }
    }

    @Test(arguments: ["b64:A", "b64:a*b=", "b64:AA=", "b64:AA===", "b64:A===", "b64:AB=C", "b64:aGVs bG8=", "b64:aGVsbG8-"])
    func badBase64(_ token: String) {
        let e = failure { () throws(SpaceError) in try CLIArguments.parse(token) }
        #expect(e?.code == .badArgument)
        #expect(e?.message == "expected b64: and standard base64 (A-Z, a-z, 0-9, +, /; = padding optional), got \"\(token)\"")
    }

    @Test func arraysAndObjects() throws {
        #expect(try CLIArguments.parse("[1, 2.5, \"x\", null, true]") == .array([1, 2.5, "x", nil, true]))
        #expect(try CLIArguments.parse("[]") == .array([]))
        #expect(try CLIArguments.parse("[[1],[2]]") == .array([[1], [2]]))
        #expect(try CLIArguments.parse("{\"x\": 1, \"y\": 2}") == .object([.init("x", 1), .init("y", 2)]))
        #expect(try CLIArguments.parse("{}") == .object([]))
    }

    @Test func handles() throws {
        #expect(try CLIArguments.parse("{\"handle\":7}") == .handle(7))
        #expect(try CLIArguments.parse("{ \"handle\" : 18446744073709551615 }") == .handle(.max))
        // Anything else is an object.
        #expect(try CLIArguments.parse("{\"handle\":-1}") == .object([.init("handle", -1)]))
        #expect(try CLIArguments.parse("{\"handle\":1,\"x\":2}") == .object([.init("handle", 1), .init("x", 2)]))
        #expect(try CLIArguments.parse("{\"handle\":\"1\"}") == .object([.init("handle", "1")]))
    }

    @Test(arguments: [("[1,", "a JSON array"), ("[1 2]", "a JSON array"), ("{\"x\":}", "a JSON object"), ("{x:1}", "a JSON object")])
    func badJSON(_ token: String, _ expected: String) {
        let e = failure { () throws(SpaceError) in try CLIArguments.parse(token) }
        #expect(e?.code == .badArgument)
        #expect(e?.message.hasPrefix("expected \(expected), got \(Value.string(token).json): line 1, column ") == true)
        #expect(e?.argument?.expected == expected)
    }

    @Test func longTokensAreCutInMessages() {
        let token = "[" + String(repeating: "1,", count: 100)
        let e = failure { () throws(SpaceError) in try CLIArguments.parse(token) }
        #expect(e?.argument?.got.count ?? 0 <= 80)
        #expect(e?.argument?.got.hasSuffix("...\"") == true)
    }
}

// MARK: - Typing by kind

@Suite("CLI arguments typed by declaration")
struct CLITypedArgumentTests {
    @Test func designExamples() throws {
        #expect(try CLIArguments.convert(["2", "3"], for: add) == [2, 3])
        let every = CLISignature(function: "timer.every", parameters: [
            CLIParameter(name: "ms", type: "int32_t", kind: "integer"),
            CLIParameter(name: "times", type: "int32_t", kind: "integer"),
            CLIParameter(name: "fn", type: "void (*)(int32_t n)", kind: "callback", arity: 1),
        ])
        #expect(try CLIArguments.convert(["10", "3", "cb:1"], for: every) == [10, 3, .callback(arity: 1)])
    }

    @Test func integer() throws {
        #expect(try typed("42", "integer", type: "int32_t") == .int(42))
        #expect(try typed("-0x10", "integer") == .int(-16))
        #expect(try typed("18446744073709551615", "integer", type: "uint64_t") == .uint(.max))
        // Narrower ranges are the host's to check.
        #expect(try typed("4294967296", "integer", type: "int32_t") == .int(4_294_967_296))
        #expect(message("2.5", "integer", type: "int32_t") == "argument 0 (x) of f: expected int32_t, got \"2.5\"")
        #expect(message("true", "integer", type: "int32_t") == "argument 0 (x) of f: expected int32_t, got \"true\"")
        #expect(message("\"42\"", "integer", type: "int32_t") == "argument 0 (x) of f: expected int32_t, got \"\\\"42\\\"\"")
        #expect(message("99999999999999999999", "integer", type: "int64_t")
                == "argument 0 (x) of f: expected int64_t, got \"99999999999999999999\": out of range (integers are at most 64 bits)")
        #expect(message("cb:1", "integer", type: "int32_t")
                == "argument 0 (x) of f: expected int32_t, got \"cb:1\": a cb: placeholder goes where the declaration has a function pointer")
    }

    @Test func badArgumentNamesPositionTypeAndToken() throws {
        let e = try #require(failure { () throws(SpaceError) in try CLIArguments.convert(["abc", "2"], for: add) })
        #expect(e.code == .badArgument)
        #expect(e.message == "argument 0 (a) of math.add: expected int32_t, got \"abc\"")
        #expect(e.argument == SpaceError.Argument(index: 0, expected: "int32_t", got: "\"abc\""))
        let second = try #require(failure { () throws(SpaceError) in try CLIArguments.convert(["1", "x y"], for: add) })
        #expect(second.message == "argument 1 (b) of math.add: expected int32_t, got \"x y\"")
        #expect(second.argument?.index == 1)
        #expect(!second.message.contains("\n"))
    }

    @Test func float() throws {
        #expect(try typed("2", "float", type: "double") == .double(2))
        #expect(try typed("-3", "float") == .double(-3))
        #expect(try typed("2.5", "float") == .double(2.5))
        #expect(try typed("1e3", "float") == .double(1000))
        #expect(try typed("0x10", "float") == .double(16))
        #expect(try typed("-inf", "float") == .double(-.infinity))
        #expect(try typed("\"Infinity\"", "float") == .double(.infinity))
        #expect(try typed("\"-Infinity\"", "float") == .double(-.infinity))
        #expect(try typed("99999999999999999999", "float") == .double(1e20))
        guard case .double(let n) = try typed("\"NaN\"", "float") else { Issue.record("not a float"); return }
        #expect(n.isNaN)
        #expect(message("x", "float", type: "double") == "argument 0 (x) of f: expected double, got \"x\"")
        #expect(message("\"1\"", "float", type: "double") == "argument 0 (x) of f: expected double, got \"\\\"1\\\"\"")
        #expect(message("null", "float", type: "float") == "argument 0 (x) of f: expected float, got \"null\"")
    }

    @Test func bool() throws {
        #expect(try typed("true", "bool") == .bool(true))
        #expect(try typed("false", "bool") == .bool(false))
        #expect(try typed("1", "bool") == .bool(true))
        #expect(try typed("0", "bool") == .bool(false))
        #expect(message("yes", "bool", type: "bool") == "argument 0 (x) of f: expected bool, got \"yes\": a bool is true, false, 1 or 0")
        #expect(message("2", "bool", type: "bool") == "argument 0 (x) of f: expected bool, got \"2\": a bool is true, false, 1 or 0")
    }

    @Test func string() throws {
        let s = "const char *"
        #expect(try typed("42", "string", type: s) == .string("42"))
        #expect(try typed("hello world", "string", type: s) == .string("hello world"))
        #expect(try typed("", "string", type: s) == .string(""))
        #expect(try typed("null", "string", type: s) == .null)
        #expect(try typed("\"null\"", "string", type: s) == .string("null"))
        #expect(try typed("\"a\\tb\"", "string", type: s) == .string("a\tb"))
        // Only callback parameters treat cb: specially; the rest of the syntax is text too.
        #expect(try typed("cb:1", "string", type: s) == .string("cb:1"))
        #expect(try typed("hex:00", "string", type: s) == .string("hex:00"))
        #expect(try typed("true", "string", type: s) == .string("true"))
        #expect(try typed("2.5", "string", type: s) == .string("2.5"))
        #expect(try typed("[1]", "string", type: s) == .string("[1]"))
        #expect(try typed("{\"handle\":1}", "string", type: s) == .string("{\"handle\":1}"))
        #expect(try typed("it's", "string", type: s) == .string("it's"))
        let e = message("\"unterminated", "string", type: s)
        #expect(e?.hasPrefix("argument 0 (x) of f: expected const char *, got \"\\\"unterminated\": line 1, column ") == true)
    }

    @Test func bytes() throws {
        let t = "const uint8_t *"
        #expect(try typed("hex:0102", "bytes", type: t) == .bytes([1, 2]))
        #expect(try typed("b64:AQI=", "bytes", type: t) == .bytes([1, 2]))
        #expect(try typed("null", "bytes", type: t) == .null)
        #expect(try typed("hello", "bytes", type: t) == .bytes(Array("hello".utf8)))
        #expect(try typed("42", "bytes", type: t) == .bytes(Array("42".utf8)))
        #expect(try typed("\"hex:01\"", "bytes", type: t) == .bytes(Array("hex:01".utf8)))
        #expect(try typed("\"a\\u0000b\"", "bytes", type: t) == .bytes([0x61, 0, 0x62]))
        #expect(try typed("[1, 2, 255]", "bytes", type: t) == .array([1, 2, 255]))
        #expect(message("hex:1", "bytes", type: t) == "argument 0 (x) of f: expected hex: and an even number of hex digits, got \"hex:1\"")
        #expect(message("b64:A", "bytes", type: t)?.hasPrefix("argument 0 (x) of f: expected b64: and standard base64") == true)
        #expect(message("[1,", "bytes", type: t)?.hasPrefix(
            "argument 0 (x) of f: expected const uint8_t * (bytes, or a JSON array of byte values), got \"[1,\": line 1") == true)
    }

    @Test func array() throws {
        let t = "const double *"
        #expect(try typed("[1, 2.5]", "array", type: t) == .array([1, 2.5]))
        #expect(try typed("[]", "array", type: t) == .array([]))
        #expect(try typed("null", "array", type: t) == .null)
        #expect(try typed("[\"a\", \"b\"]", "array", type: "const char *const *") == .array(["a", "b"]))
        #expect(message("1", "array", type: t) == "argument 0 (x) of f: expected const double * (a JSON array), got \"1\"")
        #expect(message("hex:0102", "array", type: t) == "argument 0 (x) of f: expected const double * (a JSON array), got \"hex:0102\"")
        #expect(message("[1,", "array", type: t)?.hasPrefix("argument 0 (x) of f: expected const double * (a JSON array), got \"[1,\": line 1, column") == true)
    }

    @Test func arraysOfPointersTakeHandles() throws {
        #expect(try typed("[{\"handle\":1}, null, {\"handle\":2}]", "array", type: "struct db *const *")
                == .array([.handle(1), nil, .handle(2)]))
        // Elements that are structs stay objects, even with a field called handle.
        #expect(try typed("[{\"handle\":1}]", "array", type: "const struct wrap *")
                == .array([.object([.init("handle", 1)])]))
    }

    @Test func structs() throws {
        let t = "struct point"
        #expect(try typed("{\"x\": 1.5, \"y\": 2}", "struct", type: t) == .object([.init("x", 1.5), .init("y", 2)]))
        #expect(try typed("null", "struct", type: "const struct point *") == .null)
        // A struct whose one field is called handle is still a struct.
        #expect(try typed("{\"handle\": 1}", "struct", type: "struct wrap") == .object([.init("handle", 1)]))
        #expect(message("1", "struct", type: t) == "argument 0 (x) of f: expected struct point (a JSON object with its fields), got \"1\"")
        #expect(message("[1]", "struct", type: t) == "argument 0 (x) of f: expected struct point (a JSON object with its fields), got \"[1]\"")
        #expect(message("{\"x\":", "struct", type: t)?.hasPrefix(
            "argument 0 (x) of f: expected struct point (a JSON object with its fields), got \"{\\\"x\\\":\": line 1") == true)
    }

    @Test func pointer() throws {
        #expect(try typed("5", "pointer", type: "int32_t *") == .int(5))
        #expect(try typed("2.5", "pointer", type: "const double *") == .double(2.5))
        #expect(try typed("null", "pointer", type: "int32_t *") == .null)
        #expect(try typed("true", "pointer", type: "bool *") == .bool(true))
        #expect(try typed("[1, 2]", "pointer", type: "int32_t *") == .array([1, 2]))
        #expect(message("hex:0", "pointer") == "argument 0 (x) of f: expected hex: and an even number of hex digits, got \"hex:0\"")
    }

    @Test func handle() throws {
        let t = "struct DIR *"
        let expected = "struct DIR * (a handle: {\"handle\":N} as results print it)"
        #expect(try typed("{\"handle\":3}", "handle", type: t) == .handle(3))
        #expect(try typed("{ \"handle\" : 3 }", "handle", type: t) == .handle(3))
        #expect(try typed("3", "handle", type: t) == .handle(3))
        #expect(try typed("0x10", "handle", type: t) == .handle(16))
        #expect(try typed("18446744073709551615", "handle", type: t) == .handle(.max))
        #expect(try typed("null", "handle", type: t) == .null)
        #expect(message("-1", "handle", type: t) == "argument 0 (x) of f: expected \(expected), got \"-1\"")
        #expect(message("abc", "handle", type: t) == "argument 0 (x) of f: expected \(expected), got \"abc\"")
        #expect(message("{\"x\":1}", "handle", type: t) == "argument 0 (x) of f: expected \(expected), got \"{\\\"x\\\":1}\"")
        #expect(message("{\"handle\":", "handle", type: t)?.hasPrefix("argument 0 (x) of f: expected \(expected), got") == true)
    }

    @Test func callback() throws {
        let t = "int (*)(const int32_t *, const int32_t *)"
        #expect(try typed("cb:2", "callback", type: t, arity: 2) == .callback(arity: 2))
        #expect(try typed("null", "callback", type: t, arity: 2) == .null)
        // Unprototyped: any N, the host checks its own limit.
        #expect(try typed("cb:5", "callback", type: "void (*)()") == .callback(arity: 5))
        let e = try #require(failure { () throws(SpaceError) in try typed("cb:3", "callback", type: t, arity: 2) })
        #expect(e.code == .badArgument)
        #expect(e.message == "argument 0 (x) of f: expected cb:2 (\(t)), got \"cb:3\": the callback takes 2 arguments")
        #expect(e.argument == SpaceError.Argument(index: 0, expected: "cb:2", got: "\"cb:3\""))
        #expect(message("cb:0", "callback", type: "void (*)(int32_t n)", arity: 1)
                == "argument 0 (x) of f: expected cb:1 (void (*)(int32_t n)), got \"cb:0\": the callback takes 1 argument")
        #expect(message("5", "callback", type: t, arity: 2)
                == "argument 0 (x) of f: expected cb:2 (\(t)), got \"5\": a function pointer takes a cb:N placeholder (or null)")
        #expect(message("x", "callback", type: "void (*)()")
                == "argument 0 (x) of f: expected cb:N (void (*)()), got \"x\": a function pointer takes a cb:N placeholder (or null)")
        #expect(message("cb:255", "callback", type: "void (*)()") == "argument 0 (x) of f: expected cb:N with N from 0 to 254, got \"cb:255\"")
    }

    @Test func valueAndUnknownKindsAreSyntactic() throws {
        for kind in ["value", "pointer", "someday"] {
            #expect(try typed("42", kind) == .int(42))
            #expect(try typed("x", kind) == .string("x"))
            #expect(try typed("hex:01", kind) == .bytes([1]))
            #expect(try typed("{\"handle\":4}", kind) == .handle(4))
            #expect(try typed("cb:1", kind) == .callback(arity: 1))
        }
    }
}

// MARK: - Counts and variadic functions

@Suite("CLI argument counts")
struct CLIArgumentCountTests {
    @Test func tooManyOrTooFew() throws {
        let more = try #require(failure { () throws(SpaceError) in try CLIArguments.convert(["1", "2", "3"], for: add) })
        #expect(more.code == .arityMismatch)
        #expect(more.message == "math.add takes 2 arguments (a, b), got 3; declared as int32_t (int32_t a, int32_t b)")
        let fewer = try #require(failure { () throws(SpaceError) in try CLIArguments.convert(["1"], for: add) })
        #expect(fewer.message == "math.add takes 2 arguments (a, b), got 1; declared as int32_t (int32_t a, int32_t b)")
        let one = failure { () throws(SpaceError) in try CLIArguments.convert([], for: signature("integer")) }
        #expect(one?.message == "f takes 1 argument (x), got 0")
        let none = failure { () throws(SpaceError) in
            try CLIArguments.convert(["1"], for: CLISignature(function: "g", parameters: []))
        }
        #expect(none?.message == "g takes 0 arguments, got 1")
        #expect(try CLIArguments.convert([], for: CLISignature(function: "g", parameters: [])) == [])
    }

    static let snprintf = CLISignature(
        function: "fmt.snprintf",
        parameters: [CLIParameter(name: "size", type: "size_t", kind: "integer"),
                     CLIParameter(name: "format", type: "const char *", kind: "string")],
        isVariadic: true)

    @Test func variadicExtrasAreSyntactic() throws {
        #expect(try CLIArguments.convert(["4", "%s %d %f"], for: Self.snprintf) == [4, "%s %d %f"])
        #expect(try CLIArguments.convert(["16", "%s=%d %g %p", "x", "5", "2.5", "{\"handle\":9}"], for: Self.snprintf)
                == [16, "%s=%d %g %p", "x", 5, 2.5, .handle(9)])
        // The format is a string even when it looks like a number.
        #expect(try CLIArguments.convert(["4", "42", "\"42\""], for: Self.snprintf) == [4, "42", "42"])
        let few = failure { () throws(SpaceError) in try CLIArguments.convert(["4"], for: Self.snprintf) }
        #expect(few?.code == .arityMismatch)
        #expect(few?.message == "fmt.snprintf takes at least 2 arguments (size, format), got 1")
        let bad = try #require(failure { () throws(SpaceError) in
            try CLIArguments.convert(["4", "%s", "x", "hex:1"], for: Self.snprintf)
        })
        #expect(bad.code == .badArgument)
        #expect(bad.message == "argument 3 of fmt.snprintf: expected hex: and an even number of hex digits, got \"hex:1\"")
        #expect(bad.argument?.index == 3)
    }

    @Test func withoutASignatureEveryTokenIsSyntactic() throws {
        #expect(try CLIArguments.convert(["2", "x", "2.5", "null", "cb:1", "[1]"], for: nil)
                == [2, "x", 2.5, nil, .callback(arity: 1), [1]])
        #expect(try CLIArguments.convert([], for: nil) == [])
        let e = try #require(failure { () throws(SpaceError) in try CLIArguments.convert(["1", "cb:x"], for: nil) })
        #expect(e.message == "argument 1: expected cb:N with N from 0 to 254, got \"cb:x\"")
        #expect(e.argument == SpaceError.Argument(index: 1, expected: "cb:N with N from 0 to 254", got: "\"cb:x\""))
    }
}

// MARK: - Reading the add reply

@Suite("CLI signatures from the add reply")
struct CLISignatureTests {
    /// What the host replies for calc's math.add and sort's array.sort.
    static let mathAdd: Value = [
        "name": "math.add", "declaration": "int32_t (int32_t a, int32_t b)",
        "parameters": [["name": "a", "type": "int32_t", "kind": "integer"],
                       ["name": "b", "type": "int32_t", "kind": "integer"]],
    ]
    static let arraySort: Value = [
        "name": "array.sort",
        "declaration": "void (SPACE_INOUT int32_t *xs, size_t n, SPACE_SCOPED int (*cmp)(const int32_t *a, const int32_t *b))",
        "parameters": [["name": "xs", "type": "int32_t *", "kind": "array"],
                       ["name": "cmp", "type": "int (*)(const int32_t *, const int32_t *)", "kind": "callback", "arity": 2]],
    ]

    @Test func readsFunctionObjects() throws {
        let sig = try CLISignature(function: "math.add", summary: Self.mathAdd)
        #expect(sig == add)
        let sort = try CLISignature(function: "array.sort", summary: Self.arraySort)
        #expect(sort.parameters.map(\.kind) == ["array", "callback"])
        #expect(sort.parameters[1].arity == 2)
        #expect(!sort.isVariadic)
        #expect(try CLIArguments.convert(["[3, 1, 2]", "cb:2"], for: sort) == [[3, 1, 2], .callback(arity: 2)])
        let wrong = failure { () throws(SpaceError) in try CLIArguments.convert(["[3, 1, 2]", "cb:1"], for: sort) }
        #expect(wrong?.message == "argument 1 (cmp) of array.sort: expected cb:2 (int (*)(const int32_t *, const int32_t *)), got \"cb:1\": the callback takes 2 arguments")

        let variadic: Value = ["name": "p", "parameters": [["name": "fmt", "type": "const char *", "kind": "string"]], "variadic": true]
        #expect(try CLISignature(function: "p", summary: variadic).isVariadic)
    }

    @Test func withoutParametersTokensAreSyntactic() throws {
        let sig = try CLISignature(function: "old", summary: ["name": "old", "declaration": "int (int a)"])
        #expect(sig.parameters.isEmpty)
        #expect(sig.isVariadic)
        #expect(sig.declaration == "int (int a)")
        #expect(try CLIArguments.convert(["1", "x", "cb:2"], for: sig) == [1, "x", .callback(arity: 2)])
    }

    @Test(arguments: [
        Value.string("math.add"),
        ["name": "f", "parameters": "a"],
        ["name": "f", "parameters": [["name": "a", "type": "int"]]],
        ["name": "f", "parameters": [["name": "a", "kind": "integer"]]],
        ["name": "f", "parameters": [["name": "a", "type": "int", "kind": "callback", "arity": "2"]]],
        ["name": "f", "parameters": [["name": "a", "type": "int", "kind": "callback", "arity": -1]]],
        ["name": "f", "parameters": [], "variadic": 1],
    ])
    func malformedSummariesAreProtocolErrors(_ summary: Value) {
        let e = failure { () throws(SpaceError) in try CLISignature(function: "f", summary: summary) }
        #expect(e?.code == .protocolError)
    }

    @Test func lookupFindsAFunctionLikeTheHost() throws {
        let reply: Value = [
            "name": "calc", "version": "1.0.0", "path": "/x/libcalc.so", "threadSafe": false,
            "functions": [Self.mathAdd, ["name": "geo_area", "parameters": [
                ["name": "w", "type": "double", "kind": "float"], ["name": "h", "type": "double", "kind": "float"]]]],
        ]
        #expect(try CLISignature.lookup("math.add", in: reply) == add)
        let area = try #require(try CLISignature.lookup("geo.area", in: reply))
        #expect(area.function == "geo.area")
        #expect(area.parameters.map(\.name) == ["w", "h"])
        #expect(try CLISignature.lookup("math_add", in: reply) == nil)
        #expect(try CLISignature.lookup("nope", in: reply) == nil)
        let e = failure { () throws(SpaceError) in try CLISignature.lookup("f", in: ["name": "calc"]) }
        #expect(e?.code == .protocolError)
    }
}

// MARK: - Output

@Suite("CLI output lines")
struct CLIOutputTests {
    @Test func resultLines() throws {
        #expect(CLIOutput.resultLine(5) == "{\"result\":5}")
        #expect(CLIOutput.resultLine(nil) == "{\"result\":null}")
        #expect(CLIOutput.resultLine(["return": 0, "min": -1.0]) == "{\"result\":{\"return\":0,\"min\":-1.0}}")
        for v: Value in [5, "a\"b\\c\nd\u{1}", .bytes([0, 0xAB]), .handle(42), .double(.nan), .double(.infinity),
                         .double(-.infinity), .double(1e16), .double(-0.0), .double(1e-7), .uint(.max), .int(.min),
                         ["x": [1, [true, nil]], "s": "é😀"], .callback(arity: 2), .array([])] {
            let line = CLIOutput.resultLine(v)
            #expect(!line.contains("\n"))
            let parsed = try Value(json: line)
            #expect(parsed[field: "result"] != nil)
        }
    }

    @Test func jsonKeepsTheValueRendering() throws {
        #expect(CLIOutput.json(.bytes([1, 0xFF])) == "\"hex:01ff\"")
        #expect(CLIOutput.json(.handle(7)) == "{\"handle\":7}")
        #expect(CLIOutput.json(.double(.nan)) == "\"NaN\"")
        #expect(CLIOutput.json(.double(-.infinity)) == "\"-Infinity\"")
        #expect(CLIOutput.json(.double(2.5)) == "2.5")
        #expect(CLIOutput.json(["a": 1, "b": [2, "x"]]) == "{\"a\":1,\"b\":[2,\"x\"]}")
        // What is printed reads back as the same argument.
        #expect(try CLIArguments.parse(CLIOutput.json(.handle(7))) == .handle(7))
        #expect(try typed(CLIOutput.json(.double(.infinity)), "float") == .double(.infinity))
        #expect(try CLIArguments.parse(CLIOutput.json(["x": 1.5])) == ["x": 1.5])
        let text: Value = "tab\there \"quoted\""
        #expect(try CLIArguments.parse(CLIOutput.json(text)) == text)
    }

    @Test func callbackLines() throws {
        let line = CLIOutput.callbackLine(slot: 0, arguments: [1, "a", .bytes([2])])
        #expect(line == "{\"callback\":0,\"args\":[1,\"a\",\"hex:02\"]}")
        #expect(try Value(json: line) == ["callback": 0, "args": [1, "a", "hex:02"]])
        #expect(CLIOutput.callbackLine(slot: 3, arguments: []) == "{\"callback\":3,\"args\":[]}")
    }

    @Test func errorLines() throws {
        let e = SpaceError(.badArgument, "argument 0 (a) of math.add: expected int32_t, got \"abc\"\nsecond line\t\\ \u{7}")
        let line = CLIOutput.errorLine(e)
        #expect(!line.contains("\n"))
        #expect(try Value(json: line) == ["error": ["code": "badArgument", "message": .string(e.message)]])
        #expect(CLIOutput.errorLine(SpaceError(.timedOut, "late")) == "{\"error\":{\"code\":\"timedOut\",\"message\":\"late\"}}")
        let custom = SpaceError(SpaceError.Code(rawValue: "we\"ird"), "")
        #expect(try Value(json: CLIOutput.errorLine(custom)) == ["error": ["code": "we\"ird", "message": ""]])
    }
}
