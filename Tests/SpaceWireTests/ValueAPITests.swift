// The Value API: typed accessors, literals, JSON description, kind names.
import Testing
@testable import SpaceWire

@Suite("Value API")
struct ValueAPITests {
    @Test func integerAccessors() {
        #expect(Value.int(-3).int == -3)
        #expect(Value.int(-3).int64 == -3)
        #expect(Value.int(-3).uint64 == nil)
        #expect(Value.int(.min).int64 == .min)
        #expect(Value.int(7).uint64 == 7)
        #expect(Value.uint(.max).uint64 == .max)
        #expect(Value.uint(.max).int64 == nil)
        #expect(Value.uint(.max).int == nil)
        #expect(Value.uint(5).int == 5)  // a non-canonical small uint still reads as an integer
        #expect(Value.uint(5).int64 == 5)
        #expect(Value.double(2).int == nil)
        #expect(Value.string("2").int == nil)
        #expect(Value.bool(true).int64 == nil)
    }

    @Test func doubleAccessor() {
        #expect(Value.double(2.5).double == 2.5)
        #expect(Value.int(-4).double == -4)
        #expect(Value.uint(.max).double == 18446744073709551615.0)
        #expect(Value.double(.nan).double?.isNaN == true)
        #expect(Value.string("1").double == nil)
        #expect(Value.null.double == nil)
    }

    @Test func otherAccessors() {
        #expect(Value.bool(false).bool == false)
        #expect(Value.int(0).bool == nil)
        #expect(Value.string("s").string == "s")
        #expect(Value.bytes([1]).string == nil)
        #expect(Value.bytes([1, 2]).bytes == [1, 2])
        #expect(Value.string("x").bytes == nil)
        #expect(Value.array([1, "a"]).array == [1, "a"])
        #expect(Value.object([]).array == nil)
        let obj = Value.object([Value.Field("a", 1), Value.Field("b", nil), Value.Field("a", 2)])
        #expect(obj.fields?.map(\.name) == ["a", "b", "a"])
        #expect(obj[field: "a"] == 1)  // the first field of that name
        #expect(obj[field: "b"] == .null)
        #expect(obj[field: "c"] == nil)
        #expect(Value.array([]).fields == nil)
        #expect(Value.array([1])[field: "a"] == nil)
        #expect(Value.null.isNull)
        #expect(!Value.int(0).isNull)
        #expect(!Value.array([]).isNull)
    }

    @Test func literals() {
        let i: Value = 42
        let d: Value = 2.5
        let s: Value = "hi"
        let b: Value = true
        let n: Value = nil
        let a: Value = [1, "x", nil, [false]]
        #expect(i == .int(42))
        #expect(d == .double(2.5))
        #expect(s == .string("hi"))
        #expect(b == .bool(true))
        #expect(n == .null)
        #expect(a == .array([.int(1), .string("x"), .null, .array([.bool(false)])]))
        let big: Value = 9_223_372_036_854_775_807
        #expect(big == .int(.max))
    }

    @Test func descriptionIsJSON() {
        let cases: [(Value, String)] = [
            (.null, "null"),
            (.bool(true), "true"),
            (.bool(false), "false"),
            (.int(-42), "-42"),
            (.int(.min), "-9223372036854775808"),
            (.uint(.max), "18446744073709551615"),
            (.double(5), "5.0"),
            (.double(-0.0), "-0.0"),
            (.double(0.1), "0.1"),
            (.double(1e16), "1e+16"),
            (.double(.nan), "\"NaN\""),
            (.double(.infinity), "\"Infinity\""),
            (.double(-.infinity), "\"-Infinity\""),
            (.string(""), "\"\""),
            (.string("a\"b\\c\nd\re\tf"), #""a\"b\\c\nd\re\tf""#),
            (.string("\0\u{1}\u{1F}\u{7F}"), #""\u0000\u0001\u001f\#u{7F}""#),
            (.string("é中😀"), "\"é中😀\""),
            (.bytes([]), "\"hex:\""),
            (.bytes([0x00, 0x0F, 0xA0, 0xFF]), "\"hex:000fa0ff\""),
            (.array([]), "[]"),
            (.array([1, "a", nil]), "[1,\"a\",null]"),
            (.object([]), "{}"),
            (.object([Value.Field("k\"", 1), Value.Field("n", [true])]), #"{"k\"":1,"n":[true]}"#),
            (.handle(17), "{\"handle\":17}"),
            (.callback(arity: 2), "\"cb:2\""),
        ]
        for (value, json) in cases {
            #expect(value.description == json)
            #expect("\(value)" == json)
        }
    }

    @Test func appendJSONStringIsPublicAndEscapes() {
        var out = "x="
        Value.appendJSONString("q\"\u{8}", to: &out)
        #expect(out == #"x="q\"\u0008""#)
    }

    @Test func kindNames() {
        let cases: [(Value, String)] = [
            (.null, "null"), (.bool(true), "bool"), (.int(1), "integer"), (.uint(.max), "integer"),
            (.double(1), "float"), (.string(""), "string"), (.bytes([]), "bytes"), (.array([]), "array"),
            (.object([]), "object"), (.handle(1), "handle"), (.callback(arity: 0), "callback"),
        ]
        for (value, name) in cases { #expect(value.kindName == name) }
    }

    @Test func equalityAndHashing() {
        #expect(Value.int(1) != Value.uint(1))  // different cases, even when the numbers agree
        #expect(Value.int(1) != Value.double(1))
        #expect(Set<Value>([1, 1, "1", [1]]).count == 3)
        #expect(Value.Field("a", 1) == Value.Field("a", 1))
        #expect(Value.Field("a", 1) != Value.Field("b", 1))
    }
}
