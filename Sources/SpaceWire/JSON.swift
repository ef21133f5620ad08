// JSON text ⇄ `Value`: an RFC 8259 parser and a compact writer (the writer is `Value.description`).
//
// The parser is iterative (an explicit stack of open containers), so nesting costs heap, not native
// stack, and is capped by `WireLimits.maxDepth` anyway: hostile input gets a typed error, never a crash.

extension SpaceError.Code {
    /// Text handed to ``Value/init(json:limits:)`` is not valid JSON. The message names the line and
    /// column (`"line 3, column 14: expected ',' or '}' after object member, found 'x'"`).
    public static let invalidJSON = SpaceError.Code(rawValue: "invalidJSON")
}

extension Value {
    /// Parses one JSON document (RFC 8259).
    ///
    /// - Objects become `.object` with their members in document order; a key that appears twice in
    ///   one object is an error.
    /// - Integers (no fraction, no exponent) that fit `Int64` become `.int` (so `-0` is `.int(0)`);
    ///   larger ones that fit `UInt64` become `.uint`; every other number becomes `.double` (`-0.0`
    ///   keeps its sign). A number too large for a finite `Double` (`1e400`) is an error.
    /// - Strings accept every escape, including `\uXXXX` surrogate pairs; a lone surrogate is an error.
    /// - Whitespace is space, tab, CR and LF; a leading byte-order mark is ignored.
    ///
    /// Nothing in the result is `.bytes`, `.handle` or `.callback`: JSON has no such thing.
    ///
    /// - Parameters:
    ///   - text: the JSON text.
    ///   - limits: `maxFrameSize` caps the UTF-8 size of `text`, `maxDepth` the nesting of arrays and
    ///     objects, `maxStringLength` the UTF-8 size of each decoded string and key.
    /// - Throws: ``SpaceError/Code/invalidJSON`` for malformed text, with line and column (both from 1;
    ///   the column counts Unicode scalars); ``SpaceError/Code/tooLarge`` when a limit is exceeded.
    public init(json text: String, limits: WireLimits = .default) throws(SpaceError) {
        let size = text.utf8.count
        if size > limits.maxFrameSize {
            throw SpaceError(.tooLarge, "JSON text of \(size) bytes exceeds the limit of \(limits.maxFrameSize)")
        }
        var text = text
        let result: Result<Value, SpaceError> = text.withUTF8 { bytes in
            var parser = JSONParser(bytes: bytes, limits: limits)
            do throws(SpaceError) {
                return .success(try parser.parseDocument())
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    /// The value as compact JSON (no whitespace), members in order; the same text as ``description``.
    ///
    /// Values JSON cannot express are written as ``description`` documents: bytes as `"hex:…"`,
    /// handles as `{"handle":N}`, callbacks as `"cb:N"`, NaN and infinities as strings.
    public var json: String { description }
}

// MARK: - Parser

/// One open container on the parser's stack.
private struct OpenContainer {
    var isObject: Bool
    var elements: [Value] = []
    var fields: [Value.Field] = []
    var keys: Set<String> = []
    /// The key of the member whose value is being parsed (objects only).
    var pendingKey: String = ""
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let limits: WireLimits
    var pos = 0
    var stack: [OpenContainer] = []

    init(bytes: UnsafeBufferPointer<UInt8>, limits: WireLimits) {
        self.bytes = bytes
        self.limits = limits
        // A UTF-8 byte-order mark (EF BB BF) may be ignored (RFC 8259 §8.1).
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { pos = 3 }
    }

    // ASCII bytes the grammar names.
    static let quote: UInt8 = 0x22, backslash: UInt8 = 0x5C, slash: UInt8 = 0x2F
    static let comma: UInt8 = 0x2C, colon: UInt8 = 0x3A, minus: UInt8 = 0x2D, plus: UInt8 = 0x2B
    static let dot: UInt8 = 0x2E, zero: UInt8 = 0x30, nine: UInt8 = 0x39
    static let openBracket: UInt8 = 0x5B, closeBracket: UInt8 = 0x5D
    static let openBrace: UInt8 = 0x7B, closeBrace: UInt8 = 0x7D
    static let lowerE: UInt8 = 0x65, upperE: UInt8 = 0x45

    mutating func parseDocument() throws(SpaceError) -> Value {
        outer: while true {
            // Expect a value.
            skipWhitespace()
            guard pos < bytes.count else { throw error("expected a JSON value", at: pos) }
            var value: Value
            switch bytes[pos] {
            case Self.openBrace:
                let start = pos
                try checkDepth(at: start)
                pos += 1
                skipWhitespace()
                if pos < bytes.count && bytes[pos] == Self.closeBrace {
                    pos += 1
                    value = .object([])
                } else {
                    stack.append(OpenContainer(isObject: true))
                    let key = try parseKey(afterFirst: false)
                    stack[stack.count - 1].pendingKey = key
                    continue outer
                }
            case Self.openBracket:
                let start = pos
                try checkDepth(at: start)
                pos += 1
                skipWhitespace()
                if pos < bytes.count && bytes[pos] == Self.closeBracket {
                    pos += 1
                    value = .array([])
                } else {
                    stack.append(OpenContainer(isObject: false))
                    continue outer
                }
            case Self.quote:
                value = .string(try parseString())
            case Self.minus, Self.zero...Self.nine:
                value = try parseNumber()
            case 0x74: // t
                try literal("true")
                value = .bool(true)
            case 0x66: // f
                try literal("false")
                value = .bool(false)
            case 0x6E: // n
                try literal("null")
                value = .null
            default:
                throw error("expected a JSON value", at: pos)
            }

            // A value is complete: hand it to the innermost open container, closing containers as
            // long as their closing bracket follows.
            while true {
                guard !stack.isEmpty else {
                    skipWhitespace()
                    if pos < bytes.count { throw error("expected end of input after the JSON value", at: pos) }
                    return value
                }
                let top = stack.count - 1
                skipWhitespace()
                if stack[top].isObject {
                    let key = stack[top].pendingKey
                    stack[top].fields.append(Value.Field(key, value))
                    guard pos < bytes.count else { throw error("expected ',' or '}' after object member", at: pos) }
                    if bytes[pos] == Self.comma {
                        pos += 1
                        let key = try parseKey(afterFirst: true)
                        stack[top].pendingKey = key
                        continue outer
                    } else if bytes[pos] == Self.closeBrace {
                        pos += 1
                        value = .object(stack.removeLast().fields)
                    } else {
                        throw error("expected ',' or '}' after object member", at: pos)
                    }
                } else {
                    stack[top].elements.append(value)
                    guard pos < bytes.count else { throw error("expected ',' or ']' after array element", at: pos) }
                    if bytes[pos] == Self.comma {
                        pos += 1
                        continue outer
                    } else if bytes[pos] == Self.closeBracket {
                        pos += 1
                        value = .array(stack.removeLast().elements)
                    } else {
                        throw error("expected ',' or ']' after array element", at: pos)
                    }
                }
            }
        }
    }

    /// Throws unless one more container (opening at `offset`) fits in `limits.maxDepth`; an empty
    /// container counts, as it does in the binary codec.
    func checkDepth(at offset: Int) throws(SpaceError) {
        guard stack.count < limits.maxDepth else {
            throw error("arrays and objects nested deeper than the limit of \(limits.maxDepth)",
                        at: offset, code: .tooLarge, found: false)
        }
    }

    /// Parses `"key" :` inside the innermost (object) container, rejecting a duplicate key.
    mutating func parseKey(afterFirst: Bool) throws(SpaceError) -> String {
        skipWhitespace()
        guard pos < bytes.count, bytes[pos] == Self.quote else {
            throw error(afterFirst ? "expected an object key (a string) after ','"
                                   : "expected an object key (a string) or '}'", at: pos)
        }
        let keyStart = pos
        let key = try parseString()
        let (inserted, _) = stack[stack.count - 1].keys.insert(key)
        if !inserted {
            var quoted = ""
            Value.appendJSONString(key, to: &quoted)
            throw error("duplicate key \(quoted) in object", at: keyStart, found: false)
        }
        skipWhitespace()
        guard pos < bytes.count, bytes[pos] == Self.colon else {
            throw error("expected ':' after object key", at: pos)
        }
        pos += 1
        return key
    }

    mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    mutating func literal(_ word: StaticString) throws(SpaceError) {
        let n = word.utf8CodeUnitCount
        let ok = pos + n <= bytes.count && (0..<n).allSatisfy { bytes[pos + $0] == word.utf8Start[$0] }
        guard ok else { throw error("invalid literal (expected '\(word)')", at: pos) }
        pos += n
    }

    // MARK: Strings

    /// Parses a string whose opening quote is at `pos`.
    mutating func parseString() throws(SpaceError) -> String {
        let open = pos
        pos += 1
        let contentStart = pos
        // Fast path: no escapes.
        while pos < bytes.count {
            let b = bytes[pos]
            if b == Self.quote {
                let n = pos - contentStart
                try checkStringLength(n, at: open)
                pos += 1
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[contentStart..<(pos - 1)]), as: UTF8.self)
            }
            if b == Self.backslash { break }
            if b < 0x20 { throw controlCharacter(at: pos) }
            pos += 1
        }
        guard pos < bytes.count else { throw error("unterminated string", at: open, found: false) }

        // Slow path: decode escapes into a buffer.
        var out = Array(UnsafeBufferPointer(rebasing: bytes[contentStart..<pos]))
        while true {
            guard pos < bytes.count else { throw error("unterminated string", at: open, found: false) }
            let b = bytes[pos]
            if b == Self.quote {
                pos += 1
                break
            }
            if b < 0x20 { throw controlCharacter(at: pos) }
            if b != Self.backslash {
                out.append(b)
                pos += 1
                continue
            }
            let escapeStart = pos
            pos += 1
            guard pos < bytes.count else { throw error("unterminated string", at: open, found: false) }
            let e = bytes[pos]
            pos += 1
            switch e {
            case Self.quote: out.append(Self.quote)
            case Self.backslash: out.append(Self.backslash)
            case Self.slash: out.append(Self.slash)
            case 0x62: out.append(0x08) // b
            case 0x66: out.append(0x0C) // f
            case 0x6E: out.append(0x0A) // n
            case 0x72: out.append(0x0D) // r
            case 0x74: out.append(0x09) // t
            case 0x75: // u
                let unit = try hex4(escapeStart: escapeStart)
                var scalarValue = UInt32(unit)
                if (0xD800...0xDBFF).contains(unit) {
                    // A high surrogate must be followed at once by an escaped low surrogate.
                    let lowStart = pos
                    guard pos + 1 < bytes.count, bytes[pos] == Self.backslash, bytes[pos + 1] == 0x75 else {
                        throw error("unpaired surrogate \\u\(hexString(unit)) in string", at: escapeStart, found: false)
                    }
                    pos += 2
                    let low = try hex4(escapeStart: lowStart)
                    guard (0xDC00...0xDFFF).contains(low) else {
                        throw error("unpaired surrogate \\u\(hexString(unit)) in string", at: escapeStart, found: false)
                    }
                    scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(unit) {
                    throw error("unpaired surrogate \\u\(hexString(unit)) in string", at: escapeStart, found: false)
                }
                // Not a surrogate here, so always a valid scalar.
                let scalar = Unicode.Scalar(scalarValue)!
                UTF8.encode(scalar) { out.append($0) }
            default:
                pos -= 1
                throw error("invalid escape sequence in string (after '\\')", at: pos)
            }
        }
        try checkStringLength(out.count, at: open)
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads the four hex digits after `\u` (at `pos`).
    mutating func hex4(escapeStart: Int) throws(SpaceError) -> UInt16 {
        var v: UInt16 = 0
        for _ in 0..<4 {
            guard pos < bytes.count, let d = hexValue(bytes[pos]) else {
                throw error("invalid \\u escape in string: expected 4 hex digits", at: pos)
            }
            v = v << 4 | UInt16(d)
            pos += 1
        }
        return v
    }

    func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    func hexString(_ v: UInt16) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - s.count) + s
    }

    func checkStringLength(_ n: Int, at offset: Int) throws(SpaceError) {
        if n > limits.maxStringLength {
            throw error("string of \(n) bytes exceeds the limit of \(limits.maxStringLength)",
                        at: offset, code: .tooLarge, found: false)
        }
    }

    func controlCharacter(at offset: Int) -> SpaceError {
        error("unescaped control character U+\(hexString(UInt16(bytes[offset]))) in string", at: offset, found: false)
    }

    // MARK: Numbers

    mutating func parseNumber() throws(SpaceError) -> Value {
        let start = pos
        let negative = bytes[pos] == Self.minus
        if negative { pos += 1 }
        guard pos < bytes.count, isDigit(bytes[pos]) else {
            throw error("expected a digit after '-'", at: pos)
        }
        if bytes[pos] == Self.zero {
            pos += 1
            if pos < bytes.count && isDigit(bytes[pos]) {
                throw error("leading zeros are not allowed in numbers", at: pos - 1, found: false)
            }
        } else {
            while pos < bytes.count && isDigit(bytes[pos]) { pos += 1 }
        }
        let integerEnd = pos
        var isInteger = true
        if pos < bytes.count && bytes[pos] == Self.dot {
            isInteger = false
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("expected a digit after '.'", at: pos) }
            while pos < bytes.count && isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count && (bytes[pos] == Self.lowerE || bytes[pos] == Self.upperE) {
            isInteger = false
            pos += 1
            if pos < bytes.count && (bytes[pos] == Self.plus || bytes[pos] == Self.minus) { pos += 1 }
            guard pos < bytes.count, isDigit(bytes[pos]) else {
                throw error("expected a digit in the exponent", at: pos)
            }
            while pos < bytes.count && isDigit(bytes[pos]) { pos += 1 }
        }
        if pos - start > limits.maxStringLength {
            throw error("number of \(pos - start) characters exceeds the limit of \(limits.maxStringLength)",
                        at: start, code: .tooLarge, found: false)
        }

        if isInteger {
            var magnitude: UInt64 = 0
            var overflow = false
            for i in (negative ? start + 1 : start)..<integerEnd {
                let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(bytes[i] - Self.zero))
                if o1 || o2 { overflow = true; break }
                magnitude = a
            }
            if !overflow {
                if !negative {
                    return magnitude <= UInt64(Int64.max) ? .int(Int64(magnitude)) : .uint(magnitude)
                }
                if magnitude <= UInt64(Int64.max) { return .int(-Int64(magnitude)) }
                if magnitude == UInt64(Int64.max) + 1 { return .int(.min) }
            }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        guard let d = Double(text), d.isFinite else {
            throw error("number \(text.count > 40 ? String(text.prefix(40)) + "…" : text) is out of range",
                        at: start, found: false)
        }
        return .double(d)
    }

    @inline(__always)
    func isDigit(_ b: UInt8) -> Bool { b >= Self.zero && b <= Self.nine }

    // MARK: Errors

    /// An error at byte `offset`: `"line L, column C: message, found 'x'"`.
    func error(_ message: String, at offset: Int, code: SpaceError.Code = .invalidJSON,
               found: Bool = true) -> SpaceError {
        var line = 1
        var column = 1
        var i = 0
        let end = min(offset, bytes.count)
        while i < end {
            let b = bytes[i]
            if b == 0x0A {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1  // count scalars: skip UTF-8 continuation bytes
            }
            i += 1
        }
        var text = "line \(line), column \(column): \(message)"
        if found { text += ", found " + describe(at: offset) }
        return SpaceError(code, text)
    }

    /// What is at `offset`, for "found …": `'x'`, `U+000A`, or `end of input`.
    func describe(at offset: Int) -> String {
        guard offset < bytes.count else { return "end of input" }
        let b = bytes[offset]
        if b < 0x20 || b == 0x7F { return "U+\(hexString(UInt16(b)))" }
        if b < 0x80 { return "'\(Character(Unicode.Scalar(b)))'" }
        var end = offset + 1
        while end < bytes.count && end < offset + 4 && bytes[end] & 0xC0 == 0x80 { end += 1 }
        let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self)
        guard let scalar = s.unicodeScalars.first else { return "end of input" }
        return "'\(scalar)'"
    }
}
