import Testing

@testable import SpaceFFI

#if canImport(Glibc)
import Glibc
#endif

/// Prepares the single function declared in `text` (struct definitions allowed), with a real code
/// pointer from libc; nothing is called.
private func function(_ text: String) throws -> FFIFunction {
    let declarations = try DeclarationParser.parse(text)
    let f = try #require(declarations.functions.first)
    let code = try #require(dlsym(nil, "strlen"))
    return try FFIFunction(name: f.name, type: f.type, code: code, structs: declarations.structs)
}

/// The visible parameters of the function declared in `text`, as (name, kind) pairs.
private func kinds(_ text: String) throws -> [String] {
    try function(text).visibleParameters.map { "\($0.name):\($0.kind.rawValue)" }
}

private let point = "struct point { double x; double y; };"

@Suite("Parameter summaries")
struct ParameterSummaryTests {
    @Test func scalars() throws {
        let f = try function("int32_t add(int32_t a, double b, bool c, float d, uint64_t e, char f);")
        #expect(f.visibleParameters == [
            ParameterSummary(name: "a", type: "int32_t", kind: .integer),
            ParameterSummary(name: "b", type: "double", kind: .float),
            ParameterSummary(name: "c", type: "bool", kind: .bool),
            ParameterSummary(name: "d", type: "float", kind: .float),
            ParameterSummary(name: "e", type: "uint64_t", kind: .integer),
            ParameterSummary(name: "f", type: "char", kind: .integer),
        ])
        #expect(!f.type.isVariadic)
    }

    @Test func unnamedParametersAreArgN() throws {
        let f = try function("double pow(double, double);")
        #expect(f.visibleParameters.map(\.name) == ["arg0", "arg1"])
        #expect(f.visibleParameters.map(\.name) == f.argumentNames)
    }

    @Test func strings() throws {
        let f = try function("size_t len(const char *s, char *copy);")
        #expect(f.visibleParameters == [
            ParameterSummary(name: "s", type: "const char *", kind: .string),
            ParameterSummary(name: "copy", type: "char *", kind: .string),
        ])
    }

    @Test func byteBufferHidesItsLength() throws {
        let f = try function("uint32_t crc(const unsigned char *buf, size_t len);")
        #expect(f.visibleParameters == [ParameterSummary(name: "buf", type: "const unsigned char *", kind: .bytes)])
        #expect(try kinds("size_t hash(const void *data, size_t n, uint32_t seed);") == ["data:bytes", "seed:integer"])
        #expect(try kinds("void rev(SPACE_INOUT uint8_t *data, size_t len);") == ["data:bytes"])
    }

    @Test func arrays() throws {
        let f = try function("double sum(const double *xs, size_t n);")
        #expect(f.visibleParameters == [ParameterSummary(name: "xs", type: "const double *", kind: .array)])
        #expect(try kinds("int32_t count(const char *const *words, size_t n);") == ["words:array"])
        #expect(try kinds("\(point) double far(const struct point *ps, size_t n);") == ["ps:array"])
        #expect(try kinds("int any(const bool *flags, size_t n);") == ["flags:array"])
        #expect(try kinds("void sort(SPACE_INOUT int32_t *xs, size_t n, SPACE_SCOPED int (*cmp)(const int32_t *a, const int32_t *b));")
                == ["xs:array", "cmp:callback"])
    }

    @Test func textBuffers() throws {
        // An in-out char buffer with a length is filled from a string.
        #expect(try kinds("void upper(SPACE_INOUT SPACE_LEN(n) char *s, size_t n);") == ["s:string"])
    }

    @Test func structs() throws {
        let byValue = try function("\(point) double norm(struct point p);")
        #expect(byValue.visibleParameters == [ParameterSummary(name: "p", type: "struct point", kind: .struct)])
        #expect(try kinds("\(point) double len(const struct point *p);") == ["p:struct"])
        #expect(try kinds("\(point) double len(SPACE_IN struct point *p);") == ["p:struct"])
        #expect(try kinds("\(point) void grow(SPACE_INOUT struct point *p, double by);") == ["p:struct", "by:float"])
        // An out struct is not passed.
        #expect(try kinds("\(point) void origin(struct point *p);") == [])
    }

    @Test func pointersToOneScalar() throws {
        let f = try function("void bump(SPACE_INOUT int32_t *v, const double *scale);")
        #expect(f.visibleParameters == [
            ParameterSummary(name: "v", type: "int32_t *", kind: .pointer),
            ParameterSummary(name: "scale", type: "const double *", kind: .pointer),
        ])
        // A capacity behind a pointer is in-out: the caller passes it.
        #expect(try kinds("int pack(SPACE_OUT SPACE_LEN(destLen) uint8_t *dest, SPACE_INOUT size_t *destLen, const uint8_t *src, size_t srcLen);")
                == ["destLen:pointer", "src:bytes"])
    }

    @Test func handles() throws {
        let f = try function("struct DIR; int closedir(SPACE_RELEASE struct DIR *d);")
        #expect(f.visibleParameters == [ParameterSummary(name: "d", type: "struct DIR *", kind: .handle)])
        #expect(try kinds("void release(void *p);") == ["p:handle"])
        // A pointer to a handle slot is an out-parameter: not passed.
        #expect(try kinds("struct db; int open(const char *path, struct db **out);") == ["path:string"])
    }

    @Test func callbacks() throws {
        let f = try function("void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));")
        let cmp = try #require(f.visibleParameters.last)
        #expect(cmp == ParameterSummary(name: "cmp", type: "int (*)(const void *, const void *)", kind: .callback, arity: 2))
        // `void *base, size_t n` unannotated is an out buffer of capacity n; in-out, it is bytes.
        #expect(f.visibleParameters.map(\.name) == ["n", "size", "cmp"])
        #expect(try kinds("void qsort(SPACE_INOUT void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));")
                == ["base:bytes", "size:integer", "cmp:callback"])

        let unprototyped = try function("void every(int32_t ms, void (*f)());")
        #expect(unprototyped.visibleParameters.last == ParameterSummary(name: "f", type: "void (*)()", kind: .callback, arity: nil))

        let none = try function("void tick(void (*f)(void));")
        #expect(none.visibleParameters == [ParameterSummary(name: "f", type: "void (*)(void)", kind: .callback, arity: 0)])

        // A callback's length argument is folded in, but cb:N still counts it.
        let bytes = try function("void feed(void (*on)(const uint8_t *data, size_t len, int32_t tag));")
        #expect(bytes.visibleParameters.first?.arity == 3)
    }

    @Test func outParametersAreNotListed() throws {
        let f = try function("int minmax(const double *xs, size_t n, SPACE_OUT double *min, SPACE_OUT double *max);")
        #expect(f.visibleParameters == [ParameterSummary(name: "xs", type: "const double *", kind: .array)])
        #expect(try kinds("double frexp(double x, int *exp);") == ["x:float"])
        // An out array's capacity is passed; the array is not.
        #expect(try kinds("void fill(uint8_t *out, size_t cap);") == ["cap:integer"])
    }

    @Test func variadic() throws {
        let f = try function("int snprintf(SPACE_LEN(size) char *str, size_t size, const char *format, ...);")
        #expect(f.type.isVariadic)
        #expect(f.visibleParameters == [
            ParameterSummary(name: "size", type: "size_t", kind: .integer),
            ParameterSummary(name: "format", type: "const char *", kind: .string),
        ])
    }

    @Test func visibleParametersMatchArity() throws {
        for text in [
            "int32_t add(int32_t a, int32_t b);",
            "int minmax(const double *xs, size_t n, SPACE_OUT double *min, SPACE_OUT double *max);",
            "int snprintf(SPACE_LEN(size) char *str, size_t size, const char *format, ...);",
            "void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));",
        ] {
            let f = try function(text)
            #expect(f.visibleParameters.count == f.arity)
            #expect(f.visibleParameters.map(\.name) == f.argumentNames)
        }
    }
}
