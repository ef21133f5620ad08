/// A value crossing the process boundary: an argument, a result, an init parameter.
///
/// The set of cases is the wire protocol's closed set of tags (docs/protocol.md). What a value
/// *means* to native code is decided by the C declaration of the parameter it lands in: `.int(2)`
/// becomes an `int32_t`, a `double` or an `int8_t` there; integers are range-checked (floats follow
/// C's conversion: a `double` too large for a `float` parameter becomes infinity).
public enum Value: Sendable, Hashable {
    /// The arity a `cb:` placeholder carries to mean "as many arguments as declared" (the Swift
    /// API's handlers do not state it; `cb:N` on the command line does).
    public static let declaredArity = 255

    /// C `NULL`, JSON `null`, and the result of a `void` function.
    case null
    /// C `bool`.
    case bool(Bool)
    /// Any signed integer (and an unsigned one that fits).
    case int(Int64)
    /// An unsigned integer. Results use it only above `Int64.max`; below that they are `.int`.
    case uint(UInt64)
    /// `float` or `double`.
    case double(Double)
    /// A UTF-8 string (`const char *`).
    case string(String)
    /// Raw bytes (a buffer).
    case bytes([UInt8])
    /// An array of values.
    case array([Value])
    /// A struct: ordered named fields.
    case object([Field])
    /// An opaque pointer that lives in the space, named by its index in the space's handle table.
    case handle(UInt64)
    /// A `cb:N` placeholder: a callback slot taking `arity` arguments (``Value/declaredArity``:
    /// as many as the declaration says).
    case callback(arity: Int)

    /// One named field of an `.object`.
    public struct Field: Sendable, Hashable {
        /// The field's name.
        public var name: String
        /// The field's value.
        public var value: Value
        /// Creates a field.
        public init(_ name: String, _ value: Value) {
            self.name = name
            self.value = value
        }
    }
}

extension Value {
    /// The integer, if this is an integer that fits in `Int`.
    public var int: Int? {
        switch self {
        case .int(let v): return Int(exactly: v)
        case .uint(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The integer, if this is an integer that fits in `Int64`.
    public var int64: Int64? {
        switch self {
        case .int(let v): return v
        case .uint(let v): return Int64(exactly: v)
        default: return nil
        }
    }

    /// The integer, if this is a non-negative integer.
    public var uint64: UInt64? {
        switch self {
        case .int(let v): return UInt64(exactly: v)
        case .uint(let v): return v
        default: return nil
        }
    }

    /// The number as a `Double`, for floats and integers alike.
    public var double: Double? {
        switch self {
        case .double(let v): return v
        case .int(let v): return Double(v)
        case .uint(let v): return Double(v)
        default: return nil
        }
    }

    /// The Boolean, if this is `.bool`.
    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// The string, if this is `.string`.
    public var string: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    /// The bytes, if this is `.bytes`.
    public var bytes: [UInt8]? {
        if case .bytes(let v) = self { return v }
        return nil
    }

    /// The elements, if this is `.array`.
    public var array: [Value]? {
        if case .array(let v) = self { return v }
        return nil
    }

    /// The fields, if this is `.object`.
    public var fields: [Field]? {
        if case .object(let v) = self { return v }
        return nil
    }

    /// The value of the field called `name`, if this is an `.object` that has one.
    public subscript(field name: String) -> Value? {
        guard case .object(let fields) = self else { return nil }
        return fields.first(where: { $0.name == name })?.value
    }

    /// True for `.null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A short name of the value's kind, as used in error messages ("int", "string", ...).
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "bool"
        case .int, .uint: return "integer"
        case .double: return "float"
        case .string: return "string"
        case .bytes: return "bytes"
        case .array: return "array"
        case .object: return "object"
        case .handle: return "handle"
        case .callback: return "callback"
        }
    }
}

extension Value: ExpressibleByIntegerLiteral {
    /// `2` is `.int(2)`.
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension Value: ExpressibleByFloatLiteral {
    /// `2.5` is `.double(2.5)`.
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension Value: ExpressibleByStringLiteral {
    /// `"hi"` is `.string("hi")`.
    public init(stringLiteral value: String) { self = .string(value) }
}

extension Value: ExpressibleByBooleanLiteral {
    /// `true` is `.bool(true)`.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension Value: ExpressibleByNilLiteral {
    /// `nil` is `.null`.
    public init(nilLiteral: ()) { self = .null }
}

extension Value: ExpressibleByArrayLiteral {
    /// `[1, 2]` is `.array([.int(1), .int(2)])`.
    public init(arrayLiteral elements: Value...) { self = .array(elements) }
}

extension Value {
    /// The number of bytes ``WireWriter/writeValue(_:)`` appends for this value.
    public var encodedSize: Int {
        switch self {
        case .null, .bool: return 1
        case .int, .uint, .double, .handle: return 9
        case .callback: return 2
        case .string(let s): return 5 + s.utf8.count
        case .bytes(let b): return 5 + b.count
        case .array(let xs):
            var n = 5
            for x in xs { n += x.encodedSize }
            return n
        case .object(let fields):
            var n = 5
            for f in fields { n += 4 + f.name.utf8.count + f.value.encodedSize }
            return n
        }
    }
}

extension Value: CustomStringConvertible {
    /// The value as JSON (bytes as `"hex:…"`, handles as `{"handle":N}`, callbacks as `"cb:N"`).
    public var description: String {
        var out = ""
        Value.appendJSON(self, to: &out)
        return out
    }

    static func appendJSON(_ value: Value, to out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let v): out += String(v)
        case .uint(let v): out += String(v)
        case .double(let d):
            if d.isNaN {
                out += "\"NaN\""
            } else if d.isInfinite {
                out += d < 0 ? "\"-Infinity\"" : "\"Infinity\""
            } else {
                out += String(d)  // Swift prints 5.0 as "5.0" and 1e16 as "1e+16": both JSON
            }
        case .string(let s): appendJSONString(s, to: &out)
        case .bytes(let b):
            var s = "hex:"
            s.reserveCapacity(4 + b.count * 2)
            for byte in b {
                s.append(hexDigit(byte >> 4))
                s.append(hexDigit(byte & 0xF))
            }
            appendJSONString(s, to: &out)
        case .array(let xs):
            out += "["
            for (i, x) in xs.enumerated() {
                if i > 0 { out += "," }
                appendJSON(x, to: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, f) in fields.enumerated() {
                if i > 0 { out += "," }
                appendJSONString(f.name, to: &out)
                out += ":"
                appendJSON(f.value, to: &out)
            }
            out += "}"
        case .handle(let h): out += "{\"handle\":\(h)}"
        case .callback(let n): out += "\"cb:\(n)\""
        }
    }

    private static func hexDigit(_ v: UInt8) -> Character {
        Character(Unicode.Scalar(v < 10 ? 48 + v : 87 + v))
    }

    /// Appends `s` as a JSON string literal.
    public static func appendJSONString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

extension Value: ExpressibleByDictionaryLiteral {
    /// `["x": 1.5, "y": 2]` is `.object` with fields `x` and `y`, in the order written: a struct by
    /// field name.
    public init(dictionaryLiteral elements: (String, Value)...) {
        self = .object(elements.map { Field($0.0, $0.1) })
    }
}
