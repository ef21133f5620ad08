// The argument language of `space call <pkg> <fn> ARGS...`: each command-line token becomes a
// `Value`, typed by the C declaration of the parameter it lands in (DESIGN.md, "CLI contract"). The
// host reports what each function's callers pass in its `add` reply (docs/plugin-abi.md, "Parameters
// in the add reply"); this file reads that and types the tokens. No I/O.
import SpaceWire

/// One parameter a caller passes, as the host's `add` reply describes it.
public struct CLIParameter: Sendable, Hashable {
    /// The declared name, or `argN` when the declaration gave none.
    public var name: String
    /// The declared C type, as C (`"const char *"`).
    public var type: String
    /// What kind of value goes there: `integer`, `float`, `bool`, `string`, `bytes`, `array`,
    /// `struct`, `pointer`, `handle`, `callback` or `value`. An unknown kind is read like `value`.
    public var kind: String
    /// For a callback: the number of arguments its declaration has, which `cb:N` must give; nil when
    /// not known (an unprototyped `void (*)()` slot).
    public var arity: Int?

    /// Creates a parameter description.
    public init(name: String, type: String, kind: String, arity: Int? = nil) {
        self.name = name
        self.type = type
        self.kind = kind
        self.arity = arity
    }
}

/// What a function's callers pass: its parameters in order, and whether more may follow.
public struct CLISignature: Sendable, Hashable {
    /// The function's name as the caller wrote it (used in messages).
    public var function: String
    /// The parameters the caller passes, in order (host-filled lengths and out-parameters excluded).
    public var parameters: [CLIParameter]
    /// True when extra arguments may follow the listed ones (a variadic C function).
    public var isVariadic: Bool
    /// The function's C declaration in manifest form, when known (quoted in arity errors).
    public var declaration: String?

    /// Creates a signature from its parts.
    public init(function: String, parameters: [CLIParameter], isVariadic: Bool = false, declaration: String? = nil) {
        self.function = function
        self.parameters = parameters
        self.isVariadic = isVariadic
        self.declaration = declaration
    }

    /// Reads one function object of an `add` reply:
    /// `{"name", "declaration", "parameters": [{"name", "type", "kind", "arity"?}], "variadic"?}`.
    ///
    /// A function object without `"parameters"` (from a host that does not report them) gives a
    /// signature that types tokens syntactically: no listed parameters and ``isVariadic`` true, so
    /// every token is read by ``CLIArguments/parse(_:)`` and the host alone checks the count.
    ///
    /// - Parameter function: the name the caller used, for messages.
    /// - Throws: ``SpaceError/Code/protocolError`` when `summary` is not such an object.
    public init(function: String, summary: Value) throws(SpaceError) {
        guard case .object = summary else {
            throw SpaceError(.protocolError, "the add reply describes \(function) with \(summary.kindName), not an object")
        }
        self.function = function
        if case .string(let d)? = summary[field: "declaration"] { declaration = d } else { declaration = nil }
        guard let list = summary[field: "parameters"] else {
            parameters = []
            isVariadic = true
            return
        }
        guard case .array(let items) = list else {
            throw SpaceError(.protocolError, "the add reply's parameters of \(function) are \(list.kindName), not an array")
        }
        var parameters: [CLIParameter] = []
        for (i, item) in items.enumerated() {
            guard case .string(let name)? = item[field: "name"], case .string(let type)? = item[field: "type"],
                  case .string(let kind)? = item[field: "kind"] else {
                throw SpaceError(.protocolError, "the add reply's parameter \(i) of \(function) lacks a name, type or kind: \(item)")
            }
            var arity: Int?
            if let a = item[field: "arity"] {
                guard let n = a.int, n >= 0 else {
                    throw SpaceError(.protocolError, "the add reply's parameter \(i) of \(function) has arity \(a), not a count")
                }
                arity = n
            }
            parameters.append(CLIParameter(name: name, type: type, kind: kind, arity: arity))
        }
        self.parameters = parameters
        switch summary[field: "variadic"] {
        case nil, .null?: isVariadic = false
        case .bool(let b)?: isVariadic = b
        case let other?:
            throw SpaceError(.protocolError, "the add reply's variadic flag of \(function) is \(other.kindName), not a bool")
        }
    }

    /// The signature of `function` in a whole `add` reply (`{"name", …, "functions": [...]}`), found
    /// the way the host finds it: the exact name, else, for a dotted name, with every `.` as `_`.
    /// Nil when the reply lists no such function (the host will say `unknownFunction`).
    ///
    /// - Throws: ``SpaceError/Code/protocolError`` when the reply or the function's entry is malformed.
    public static func lookup(_ function: String, in addReply: Value) throws(SpaceError) -> CLISignature? {
        guard case .array(let functions)? = addReply[field: "functions"] else {
            throw SpaceError(.protocolError, "the add reply has no functions array")
        }
        func entry(_ name: String) -> Value? {
            functions.first { $0[field: "name"] == .string(name) }
        }
        var found = entry(function)
        if found == nil && function.contains(".") {
            found = entry(String(function.map { $0 == "." ? "_" : $0 }))
        }
        guard let found else { return nil }
        return try CLISignature(function: function, summary: found)
    }
}

/// Converts the tokens of `space call` into call arguments.
///
/// **Syntax** (``parse(_:)``; the same words keep their meaning when typed, except where a kind says
/// otherwise below):
/// - integers: decimal with an optional sign (`42`, `-7`, `+3`, `007` is 7), or hex (`0x1F`, `-0x10`);
///   `.int`, or `.uint` above `Int64.max`; beyond 64 bits is an error.
/// - floats: Swift's `Double(String)` syntax (`2.5`, `1e-3`, `.5`, `0x1p3`), with `inf`, `-inf`,
///   `infinity` and `nan` in any case.
/// - `true`, `false`, `null`.
/// - strings: any other bare word, as typed; or a JSON string (`"\"42\""` on a shell, i.e. the token
///   `"42"`), decoded with JSON escapes. A token starting with `"` must be a whole JSON string.
/// - `cb:N`: a callback slot with N arguments, N from 0 to 254.
/// - bytes: `hex:` and an even number of hex digits, or `b64:` and standard base64 (padding optional).
/// - `[...]`: a JSON array; `{...}`: a JSON object (a struct by field name); `{"handle":N}` alone is a
///   handle, the way results print one.
///
/// **Typing by kind** (``CLIParameter/kind``): `integer` takes integer tokens only; `float` integer
/// or float tokens, as `.double` (also `"NaN"`, `"Infinity"`, `"-Infinity"` quoted, as results
/// print them); `bool` `true`/`false`/`1`/`0`; `string` takes `null`, a JSON
/// string, or else the token exactly as typed (`42` is `"42"`, `cb:1` is `"cb:1"`); `bytes` takes
/// `null`, `hex:`/`b64:`, a JSON string or a JSON array of byte values, or else the token's UTF-8
/// bytes; `array` a JSON array (`{"handle":N}` elements are handles when the elements are pointers)
/// or `null`; `struct` a JSON object or `null`; `handle` `{"handle":N}`, a bare non-negative integer
/// or `null`; `callback` `cb:N` (N checked against the declared arity when known) or `null`;
/// `pointer`, `value` and unknown kinds are read syntactically. Extra tokens after the listed
/// parameters are allowed only for a variadic function, and are read syntactically.
///
/// **Errors**: a token that does not fit is ``SpaceError/Code/badArgument`` with a one-line message,
/// `argument 0 (a) of math.add: expected int32_t, got "abc"`, and a ``SpaceError/Argument`` detail.
/// Positions count from 0, in the message and in ``SpaceError/Argument/index`` alike, as the host
/// counts them in its own `badArgument` messages, so both name an argument the same way. A wrong
/// number of tokens is ``SpaceError/Code/arityMismatch``:
/// `math.add takes 2 arguments (a, b), got 3; declared as int32_t (int32_t a, int32_t b)`.
/// Integer ranges narrower than 64 bits are left to the host, which checks them.
public enum CLIArguments {
    /// Converts command-line tokens to call arguments, typed by `signature` (nil: syntactic only, and
    /// the host checks the count).
    public static func convert(_ tokens: [String], for signature: CLISignature?) throws(SpaceError) -> [Value] {
        guard let signature else {
            var values: [Value] = []
            for (k, token) in tokens.enumerated() {
                do throws(SpaceError) {
                    values.append(try parse(token))
                } catch {
                    throw located(error, index: k, name: nil, function: nil)
                }
            }
            return values
        }
        let fixed = signature.parameters.count
        guard tokens.count == fixed || (signature.isVariadic && tokens.count > fixed) else {
            let names = signature.parameters.map(\.name).joined(separator: ", ")
            let takes = signature.isVariadic ? "at least \(fixed)" : "\(fixed)"
            var message = "\(signature.function) takes \(takes) argument\(fixed == 1 ? "" : "s")"
                + "\(names.isEmpty ? "" : " (\(names))"), got \(tokens.count)"
            if let d = signature.declaration { message += "; declared as \(d)" }
            throw SpaceError(.arityMismatch, message)
        }
        var values: [Value] = []
        values.reserveCapacity(tokens.count)
        for (k, token) in tokens.enumerated() {
            let parameter = k < fixed ? signature.parameters[k] : nil
            do throws(SpaceError) {
                if let parameter {
                    values.append(try typed(token, as: parameter))
                } else {
                    values.append(try parse(token))
                }
            } catch {
                throw located(error, index: k, name: parameter?.name, function: signature.function)
            }
        }
        return values
    }

    /// Syntactic reading of one token (used for variadic extras and when no signature is known); see
    /// ``CLIArguments`` for the grammar.
    ///
    /// - Throws: ``SpaceError/Code/badArgument`` for a token that starts like a number beyond 64 bits,
    ///   `cb:`, `hex:`, `b64:`, a JSON string, array or object but is not a valid one. Its
    ///   ``SpaceError/Argument/index`` is -1 (no position is known here).
    public static func parse(_ token: String) throws(SpaceError) -> Value {
        switch token {
        case "null": return .null
        case "true": return .bool(true)
        case "false": return .bool(false)
        default: break
        }
        if token.hasPrefix("cb:") { return try callback(token) }
        if token.hasPrefix("hex:") || token.hasPrefix("b64:") { return try bytes(token) }
        switch token.utf8.first {
        case UInt8(ascii: "\""): return .string(try jsonString(token, expected: "a JSON string"))
        case UInt8(ascii: "["): return try json(token, expected: "a JSON array")
        case UInt8(ascii: "{"):
            let v = try json(token, expected: "a JSON object")
            return handle(in: v) ?? v
        default: break
        }
        switch integer(token) {
        case .value(let v): return v
        case .outOfRange: throw outOfRange(token, expected: "a number")
        case .notInteger: break
        }
        if let d = Double(token) { return .double(d) }
        return .string(token)
    }

    // MARK: Typing

    /// The value of `token` for a parameter of `p`'s kind.
    private static func typed(_ token: String, as p: CLIParameter) throws(SpaceError) -> Value {
        switch p.kind {
        case "integer":
            switch integer(token) {
            case .value(let v): return v
            case .outOfRange: throw outOfRange(token, expected: p.type)
            case .notInteger: throw mismatch(p.type, token, hint(token, for: p))
            }
        case "float":
            switch integer(token) {
            case .value(let v): return .double(v.double!)
            case .outOfRange, .notInteger:
                if let d = Double(token) { return .double(d) }
                // Results print NaN and infinities as JSON strings; take them back.
                if token.hasPrefix("\""), case .string(let s)? = try? Value(json: token),
                   ["NaN", "Infinity", "-Infinity"].contains(s), let d = Double(s) {
                    return .double(d)
                }
                throw mismatch(p.type, token, hint(token, for: p))
            }
        case "bool":
            switch token {
            case "true", "1": return .bool(true)
            case "false", "0": return .bool(false)
            default: throw mismatch(p.type, token, hint(token, for: p) ?? "a bool is true, false, 1 or 0")
            }
        case "string":
            if token == "null" { return .null }
            if token.hasPrefix("\"") { return .string(try jsonString(token, expected: p.type)) }
            return .string(token)
        case "bytes":
            if token == "null" { return .null }
            if token.hasPrefix("hex:") || token.hasPrefix("b64:") { return try bytes(token) }
            if token.hasPrefix("\"") { return .bytes(Array(try jsonString(token, expected: p.type).utf8)) }
            if token.hasPrefix("[") { return try json(token, expected: "\(p.type) (bytes, or a JSON array of byte values)") }
            return .bytes(Array(token.utf8))
        case "array":
            if token == "null" { return .null }
            guard token.hasPrefix("[") else {
                throw mismatch("\(p.type) (a JSON array)", token, hint(token, for: p))
            }
            let v = try json(token, expected: "\(p.type) (a JSON array)")
            // Elements that are pointers (`struct db *const *`, `const char *const *`) may be handles.
            guard case .array(let elements) = v, Self.pointsToPointers(p.type) else { return v }
            return .array(elements.map { handle(in: $0) ?? $0 })
        case "struct":
            if token == "null" { return .null }
            guard token.hasPrefix("{") else {
                throw mismatch("\(p.type) (a JSON object with its fields)", token, hint(token, for: p))
            }
            return try json(token, expected: "\(p.type) (a JSON object with its fields)")
        case "handle":
            if token == "null" { return .null }
            let expected = "\(p.type) (a handle: {\"handle\":N} as results print it)"
            if token.hasPrefix("{") {
                let v = try json(token, expected: expected)
                if let h = handle(in: v) { return h }
                throw mismatch(expected, token)
            }
            if case .value(let v) = integer(token), let id = v.uint64 { return .handle(id) }
            throw mismatch(expected, token, hint(token, for: p))
        case "callback":
            if token == "null" { return .null }
            let expected = p.arity.map { "cb:\($0)" } ?? "cb:N"
            guard token.hasPrefix("cb:") else {
                throw mismatch("\(expected) (\(p.type))", token, "a function pointer takes a cb:N placeholder (or null)",
                               detail: expected)
            }
            let v = try callback(token)
            if let n = p.arity, case .callback(let given) = v, given != n {
                throw mismatch("\(expected) (\(p.type))", token,
                               "the callback takes \(n) argument\(n == 1 ? "" : "s")", detail: expected)
            }
            return v
        default:  // "pointer", "value", and kinds this CLI does not know
            return try parse(token)
        }
    }

    /// Whether a pointer type's elements are pointers themselves (`struct db *const *`), not a
    /// function pointer.
    private static func pointsToPointers(_ type: String) -> Bool {
        !type.contains("(") && type.utf8.lazy.filter { $0 == UInt8(ascii: "*") }.count >= 2
    }

    /// A note for a token that looks like it was meant for another kind of parameter.
    private static func hint(_ token: String, for p: CLIParameter) -> String? {
        if token.hasPrefix("cb:") { return "a cb: placeholder goes where the declaration has a function pointer" }
        return nil
    }

    // MARK: Tokens

    private enum IntegerToken {
        case value(Value)
        case outOfRange
        case notInteger
    }

    /// `[+-]?[0-9]+` or `[+-]?0[xX][0-9a-fA-F]+`, as `.int` (or `.uint` above `Int64.max`).
    private static func integer(_ token: String) -> IntegerToken {
        var bytes = Substring(token).utf8[...]
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        var radix: UInt64 = 10
        if bytes.count > 2, bytes.first == UInt8(ascii: "0"),
           bytes.dropFirst().first == UInt8(ascii: "x") || bytes.dropFirst().first == UInt8(ascii: "X") {
            radix = 16
            bytes = bytes.dropFirst(2)
        }
        guard !bytes.isEmpty else { return .notInteger }
        var magnitude: UInt64 = 0
        var overflow = false
        for b in bytes {
            guard let digit = digitValue(b), UInt64(digit) < radix else { return .notInteger }
            let (m, o1) = magnitude.multipliedReportingOverflow(by: radix)
            let (a, o2) = m.addingReportingOverflow(UInt64(digit))
            if o1 || o2 { overflow = true }
            magnitude = a
        }
        if overflow { return .outOfRange }
        if !negative { return .value(magnitude <= UInt64(Int64.max) ? .int(Int64(magnitude)) : .uint(magnitude)) }
        if magnitude <= UInt64(Int64.max) { return .value(.int(-Int64(magnitude))) }
        if magnitude == UInt64(Int64.max) + 1 { return .value(.int(.min)) }
        return .outOfRange
    }

    private static func digitValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `cb:N`, N from 0 to 254 in decimal.
    private static func callback(_ token: String) throws(SpaceError) -> Value {
        let digits = token.utf8.dropFirst(3)
        guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let n = Int(Substring(digits)), n < Value.declaredArity else {
            throw mismatch("cb:N with N from 0 to \(Value.declaredArity - 1)", token)
        }
        return .callback(arity: n)
    }

    /// `hex:…` or `b64:…` as bytes.
    private static func bytes(_ token: String) throws(SpaceError) -> Value {
        let body = Array(token.utf8.dropFirst(4))
        if token.hasPrefix("hex:") {
            guard body.count % 2 == 0 else {
                throw mismatch("hex: and an even number of hex digits", token)
            }
            var out: [UInt8] = []
            out.reserveCapacity(body.count / 2)
            var i = 0
            while i < body.count {
                guard let hi = digitValue(body[i]), let lo = digitValue(body[i + 1]) else {
                    throw mismatch("hex: and an even number of hex digits", token)
                }
                out.append(hi << 4 | lo)
                i += 2
            }
            return .bytes(out)
        }
        guard let out = decodeBase64(body) else {
            throw mismatch("b64: and standard base64 (A-Z, a-z, 0-9, +, /; = padding optional)", token)
        }
        return .bytes(out)
    }

    /// Standard base64 (RFC 4648 §4). Padding is optional, but when present it must complete the
    /// last group of four; bits left over in the last character are ignored. Nil when invalid.
    static func decodeBase64(_ text: [UInt8]) -> [UInt8]? {
        var end = text.count
        var padding = 0
        while end > 0 && text[end - 1] == UInt8(ascii: "=") && padding < 2 {
            end -= 1
            padding += 1
        }
        if padding > 0 && text.count % 4 != 0 { return nil }
        if end % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(end / 4 * 3 + 2)
        var buffer: UInt32 = 0
        var bits = 0
        for c in text[..<end] {
            let v: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            default: return nil
            }
            buffer = buffer << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
                buffer &= (1 << UInt32(bits)) - 1
            }
        }
        return out
    }

    /// A token that must be a whole JSON document.
    private static func json(_ token: String, expected: String) throws(SpaceError) -> Value {
        do throws(SpaceError) {
            return try Value(json: token)
        } catch {
            throw mismatch(expected, token, error.message)
        }
    }

    /// A token that must be one JSON string.
    private static func jsonString(_ token: String, expected: String) throws(SpaceError) -> String {
        guard case .string(let s) = try json(token, expected: expected) else {
            throw mismatch(expected, token, "a token starting with \" is a JSON string")
        }
        return s
    }

    /// `{"handle": N}` (exactly that one field, N a non-negative integer) as a handle.
    private static func handle(in v: Value) -> Value? {
        guard case .object(let fields) = v, fields.count == 1, fields[0].name == "handle",
              let id = fields[0].value.uint64 else { return nil }
        return .handle(id)
    }

    // MARK: Errors

    /// A token that does not fit: `expected E, got "token"[: note]`, position filled in later.
    private static func mismatch(_ expected: String, _ token: String, _ note: String? = nil,
                                 detail: String? = nil) -> SpaceError {
        let got = quoted(token)
        return SpaceError(.badArgument, "expected \(expected), got \(got)\(note.map { ": " + $0 } ?? "")",
                          argument: SpaceError.Argument(index: -1, expected: detail ?? expected, got: got))
    }

    private static func outOfRange(_ token: String, expected: String) -> SpaceError {
        mismatch(expected, token, "out of range (integers are at most 64 bits)")
    }

    /// The token as a JSON string, cut to about 80 characters.
    private static func quoted(_ token: String) -> String {
        var text = token
        if text.count > 77 { text = String(text.prefix(74)) + "..." }
        var out = ""
        Value.appendJSONString(text, to: &out)
        return out
    }

    /// Adds the argument's place: `argument K (name) of fn: …` (K from 0, as the host counts).
    private static func located(_ error: SpaceError, index: Int, name: String?, function: String?) -> SpaceError {
        var e = error
        let label = name.map { " (\($0))" } ?? ""
        let place = function.map { " of \($0)" } ?? ""
        e.message = "argument \(index)\(label)\(place): " + error.message
        if var a = e.argument {
            a.index = index
            e.argument = a
        }
        return e
    }
}
