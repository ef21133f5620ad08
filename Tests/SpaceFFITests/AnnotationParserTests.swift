import Testing

@testable import SpaceFFI

// Annotations (SPACE_IN/OUT/INOUT, SPACE_LEN, SPACE_RELEASE, SPACE_ERRNO, SPACE_FREE) and typedefs in
// DeclarationParser.

// MARK: - Helpers

/// The error `parse(text)` throws, or nil when it does not throw.
private func parseError(_ text: String) -> DeclarationError? {
    do {
        _ = try DeclarationParser.parse(text)
        return nil
    } catch {
        return error
    }
}

/// The error `parseFunctionType(text, declarations:)` throws, or nil when it does not throw.
private func functionTypeError(_ text: String, declarations: CDeclarations = CDeclarations()) -> DeclarationError? {
    do {
        _ = try DeclarationParser.parseFunctionType(text, declarations: declarations)
        return nil
    } catch {
        return error
    }
}

/// The only function `text` declares.
private func function(_ text: String) throws -> CFunction {
    let declarations = try DeclarationParser.parse(text)
    try #require(declarations.functions.count == 1)
    return declarations.functions[0]
}

private let intType = CType.integer(.int)
private let charType = CType.integer(.char)
private let uLong = CType.integer(.unsignedLong)
private let byte = CType.integer(.unsignedChar)

private func pointer(_ type: CType, const isConst: Bool = false) -> CType {
    .pointer(to: type, isConst: isConst)
}

// MARK: - Annotations

@Suite("DeclarationParser annotations")
struct AnnotationParserTests {
    @Test("zlib compress2: SPACE_OUT + SPACE_LEN naming a later SPACE_INOUT length, through typedefs")
    func zlibCompress() throws {
        let declarations = try DeclarationParser.parse(
            """
            typedef unsigned long uLong;
            typedef unsigned char Bytef;
            int compress2(SPACE_OUT SPACE_LEN(destLen) Bytef *dest, SPACE_INOUT uLong *destLen,
                          const Bytef *source, uLong sourceLen, int level);
            """)
        #expect(declarations.typedefs == ["uLong": uLong, "Bytef": byte])
        let compress = try #require(declarations.function(named: "compress2"))
        #expect(
            compress.type.parameters == [
                CParameter(name: "dest", type: pointer(byte), direction: .out, length: .parameter(1)),
                CParameter(name: "destLen", type: pointer(uLong), direction: .inout),
                CParameter(name: "source", type: pointer(byte, const: true)),
                CParameter(name: "sourceLen", type: uLong),
                CParameter(name: "level", type: intType),
            ])
        #expect(!compress.type.capturesErrno && compress.type.freeFunction == nil)
        #expect(
            compress.description
                == "int compress2(SPACE_OUT SPACE_LEN(destLen) unsigned char *dest, SPACE_INOUT unsigned long *destLen, "
                + "const unsigned char *source, unsigned long sourceLen, int level)")
    }

    @Test("libm frexp: SPACE_OUT on an int pointer")
    func frexp() throws {
        let frexp = try function("double frexp(double x, SPACE_OUT int *exp);")
        #expect(frexp.type.returnType == .double)
        #expect(frexp.type.parameters == [CParameter(name: "x", type: .double), CParameter(name: "exp", type: pointer(intType), direction: .out)])
        let modf = try function("double modf(double x, SPACE_OUT double *iptr);")
        #expect(modf.type.parameters[1].direction == .out)
    }

    @Test("strdup: SPACE_ERRNO and SPACE_FREE on the function")
    func strdup() throws {
        let strdup = try function("SPACE_ERRNO SPACE_FREE(free) char *strdup(const char *s);")
        #expect(strdup.type.capturesErrno)
        #expect(strdup.type.freeFunction == "free")
        #expect(strdup.type.parameters == [CParameter(name: "s", type: pointer(charType, const: true))])
        #expect(strdup.description == "SPACE_ERRNO SPACE_FREE(free) char *strdup(const char *s)")
        // Order and position among the specifiers do not matter.
        let other = try function("extern char SPACE_FREE(free) const SPACE_ERRNO *strdup(const char *s);")
        #expect(other.type.capturesErrno && other.type.freeFunction == "free")
        #expect(other.type.returnType == pointer(charType, const: true))
        // SPACE_ERRNO twice is the same as once.
        #expect(try function("SPACE_ERRNO SPACE_ERRNO int close(int fd);").type.capturesErrno)
    }

    @Test("annotations anywhere among the specifiers; the same direction twice is fine")
    func positions() throws {
        let f = try function(
            """
            void f(const SPACE_IN char *a, SPACE_OUT int *b, char SPACE_INOUT *c, unsigned SPACE_OUT long *d,
                   SPACE_IN SPACE_IN const char *e, SPACE_RELEASE void *h);
            """)
        #expect(f.type.parameters.map(\.direction) == [.in, .out, .inout, .out, .in, nil])
        #expect(f.type.parameters.map(\.type) == [
            pointer(charType, const: true), pointer(intType), pointer(charType), pointer(uLong),
            pointer(charType, const: true), pointer(.void),
        ])
        #expect(f.type.parameters.map(\.releasesHandle) == [false, false, false, false, false, true])
    }

    @Test("SPACE_LEN: a name before or after, a pointer-to-integer capacity, or a fixed count")
    func lengths() throws {
        let f = try function(
            """
            void f(size_t n, SPACE_IN SPACE_LEN(n) const double *xs, SPACE_OUT SPACE_LEN(cap) char *buf,
                   SPACE_INOUT size_t *cap, SPACE_OUT SPACE_LEN(32) uint8_t *digest, SPACE_LEN(n) int *ys);
            """)
        #expect(f.type.parameters.map(\.length) == [nil, .parameter(0), .parameter(3), nil, .fixed(32), .parameter(0)])
        #expect(try function("void g(SPACE_LEN(1073741824) uint8_t *p);").type.parameters[0].length == .fixed(1 << 30))
        #expect(try function("void g(SPACE_LEN(1) uint8_t *p);").type.parameters[0].length == .fixed(1))
        // A length parameter may be any integer type, or a pointer (const or not) to one.
        for lengthType in ["int", "unsigned char", "int64_t", "const size_t *", "long *"] {
            let g = try function("void g(SPACE_LEN(n) void *p, \(lengthType) n);")
            #expect(g.type.parameters[0].length == .parameter(1), "\(lengthType)")
        }
    }

    @Test("array parameters: a size becomes a fixed length unless SPACE_LEN says otherwise")
    func arrays() throws {
        let f = try function(
            """
            void f(uint8_t digest[16], double xs[], int n[0x10], int m[static 3], char *argv[],
                   SPACE_LEN(count) uint8_t data[64], size_t count, SPACE_OUT uint8_t out[010]);
            """)
        #expect(f.type.parameters.map(\.length) == [.fixed(16), nil, .fixed(16), .fixed(3), nil, .parameter(6), nil, .fixed(8)])
        #expect(f.type.parameters[0].type == pointer(.integer(.uint8)))
        #expect(f.type.parameters[7].direction == .out)
        #expect(f.description.hasPrefix("void f(SPACE_LEN(16) uint8_t *digest, double *xs, SPACE_LEN(16) int *n,"))
    }

    @Test("annotations in callback parameter lists")
    func callbacks() throws {
        let each = try function(
            "void each(void (*cb)(SPACE_IN SPACE_LEN(n) const char *items, size_t n, SPACE_OUT int *stop), void *ctx);")
        guard case .functionPointer(let callback) = each.type.parameters[0].type else {
            Issue.record("expected a function pointer")
            return
        }
        #expect(callback.parameters[0] == CParameter(name: "items", type: pointer(charType, const: true), direction: .in, length: .parameter(1)))
        #expect(callback.parameters[2].direction == .out)
        #expect(each.type.parameters[0].direction == nil && each.type.parameters[0].length == nil)
        // The callback's own list is resolved on its own: 'n' of the outer list is not visible inside.
        let error = try #require(parseError("void f(size_t n, void (*cb)(SPACE_LEN(n) int *p));"))
        #expect(error.message == "SPACE_LEN(n): no parameter named 'n'")
        #expect(error.column == 29)
    }

    @Test("function annotations apply to every function of a comma-separated declaration")
    func commaDeclarators() throws {
        let declarations = try DeclarationParser.parse(
            "SPACE_ERRNO SPACE_FREE(release) char *a(void), *b(int x), *(*c(void));")
        #expect(declarations.functions.map(\.name) == ["a", "b", "c"])
        for function in declarations.functions {
            #expect(function.type.capturesErrno && function.type.freeFunction == "release", "\(function)")
        }
        // SPACE_FREE on a function returning a function pointer goes to the declared function.
        let handler = try function("SPACE_ERRNO int (*get_handler(SPACE_OUT SPACE_LEN(2) int *pair))(int);")
        #expect(handler.type.capturesErrno)
        #expect(handler.type.parameters[0].length == .fixed(2))
        guard case .functionPointer(let returned) = handler.type.returnType else {
            Issue.record("expected a function pointer return")
            return
        }
        #expect(!returned.capturesErrno)
        #expect(handler.description == "SPACE_ERRNO int (*get_handler(SPACE_OUT SPACE_LEN(2) int *pair))(int)")
    }

    @Test("manifest function types carry annotations")
    func manifestForm() throws {
        let cbrt = try DeclarationParser.parseFunctionType("SPACE_ERRNO double (double x)")
        #expect(cbrt == CFunctionType(returnType: .double, parameters: [CParameter(name: "x", type: .double)], capturesErrno: true))
        let dup = try DeclarationParser.parseFunctionType(
            "SPACE_ERRNO SPACE_FREE(text_free) char *(SPACE_OUT SPACE_LEN(cap) uint8_t *out, size_t cap)")
        #expect(dup.freeFunction == "text_free" && dup.capturesErrno)
        #expect(dup.parameters[0] == CParameter(name: "out", type: pointer(.integer(.uint8)), direction: .out, length: .parameter(1)))
        #expect(dup.description == "SPACE_ERRNO SPACE_FREE(text_free) char *(SPACE_OUT SPACE_LEN(cap) uint8_t *out, size_t cap)")
        // The old overload accepts annotations too.
        #expect(try DeclarationParser.parseFunctionType("void (SPACE_RELEASE struct db *db);", structs: [:]).parameters[0].releasesHandle)
    }

    @Test("description → parse gives back an equal value")
    func roundTrip() throws {
        let texts = [
            "SPACE_ERRNO SPACE_FREE(text_free) char *text_dup(SPACE_OUT SPACE_LEN(cap) uint8_t *out, size_t cap)",
            "int compress2(SPACE_OUT SPACE_LEN(destLen) unsigned char *dest, SPACE_INOUT unsigned long *destLen, const unsigned char *source, unsigned long sourceLen, int level)",
            "void sha256(SPACE_IN SPACE_LEN(n) const uint8_t *data, size_t n, SPACE_OUT SPACE_LEN(32) uint8_t *digest)",
            "void db_close(SPACE_RELEASE struct db *db)",
            "SPACE_ERRNO double frexp(double x, SPACE_OUT int *exp)",
            "void each(void (*cb)(SPACE_IN SPACE_LEN(n) const char *items, size_t n, void *ctx), void *ctx)",
            "SPACE_ERRNO int (*handler(SPACE_INOUT SPACE_LEN(2) int *pair))(int)",
            "SPACE_FREE(free) void *alloc(size_t n)",
            "SPACE_ERRNO int printf(SPACE_IN const char *fmt, ...)",
            "void fill(SPACE_LEN(n) double *xs, SPACE_INOUT SPACE_LEN(k) int *ys, const size_t *k, long n)",
            "void kill_all(SPACE_IN SPACE_LEN(n) SPACE_RELEASE struct db **dbs, int n)",
        ]
        for text in texts {
            let parsed = try function(text + ";")
            #expect(parsed.description == text)
            #expect(try function(parsed.description) == parsed, "\(text)")
            #expect(try DeclarationParser.parseFunctionType(parsed.type.description) == parsed.type, "\(text)")
            #expect(try DeclarationParser.parseFunctionType(parsed.description) == parsed.type, "\(text)")
        }
        // Non-canonical spellings come back canonical, and the canonical form parses to the same value.
        let scattered = [
            "char SPACE_FREE(f) SPACE_ERRNO *g(const SPACE_IN char *s, uint8_t buf[4])",
            "typedef unsigned long uLong; uLong SPACE_ERRNO crc(uLong crc, SPACE_LEN(len) const unsigned char *buf, unsigned len)",
        ]
        for text in scattered {
            let declarations = try DeclarationParser.parse(text)
            let parsed = try #require(declarations.functions.first)
            #expect(try function(parsed.description) == parsed, "\(parsed.description)")
        }
        // Built values render and parse back too.
        let built = CFunction(
            name: "read_all",
            type: CFunctionType(
                returnType: .integer(.ssize),
                parameters: [
                    CParameter(name: "fd", type: intType),
                    CParameter(name: "buf", type: pointer(.void), direction: .out, length: .parameter(2)),
                    CParameter(name: "len", type: pointer(.integer(.size)), direction: .inout),
                ],
                capturesErrno: true))
        #expect(try function(built.description) == built)
    }
}

// MARK: - Typedefs

@Suite("DeclarationParser typedefs")
struct TypedefParserTests {
    @Test("typedefs of scalars, pointers, structs and function pointers")
    func kinds() throws {
        let declarations = try DeclarationParser.parse(
            """
            typedef unsigned long uLong;
            typedef unsigned char Bytef;
            typedef struct db db_t;
            typedef struct point { double x, y; } point_t;
            typedef void (*cb_t)(int);
            typedef const char *cstr;
            typedef int i1, *ip, (*op)(void);
            typedef void nothing;
            """)
        let callback = CType.functionPointer(CFunctionType(returnType: .void, parameters: [CParameter(type: intType)]))
        #expect(
            declarations.typedefs == [
                "uLong": uLong, "Bytef": byte, "db_t": .structure("db"), "point_t": .structure("point"),
                "cb_t": callback, "cstr": pointer(charType, const: true), "i1": intType, "ip": pointer(intType),
                "op": .functionPointer(CFunctionType(returnType: intType)), "nothing": .void,
            ])
        #expect(declarations.structs["point"]?.fields == [CField(name: "x", type: .double), CField(name: "y", type: .double)])
        #expect(declarations.structs["db"] == nil)
        #expect(declarations.functions.isEmpty)
    }

    @Test("typedef names are usable later as types, with const and pointers")
    func uses() throws {
        let declarations = try DeclarationParser.parse(
            """
            typedef unsigned long uLong;
            typedef unsigned char Bytef;
            typedef uLong *uLongp;
            typedef struct db db_t;
            typedef struct point { double x, y; } point_t;
            typedef void (*cb_t)(SPACE_LEN(n) const Bytef *data, uLong n);
            typedef const char *cstr;
            typedef void nothing;
            struct line { point_t from, to; cb_t on_draw; };
            uLong crc32(uLong crc, const Bytef *buf, uLong len);
            db_t *db_open(cstr path, uLong *out, uLongp more, const cstr name);
            point_t mid(point_t a, const point_t *b);
            void on(cb_t cb, nothing *ctx);
            nothing done(void);
            """)
        let crc = try #require(declarations.function(named: "crc32"))
        #expect(crc.type.returnType == uLong)
        #expect(crc.type.parameters.map(\.type) == [uLong, pointer(byte, const: true), uLong])
        let open = try #require(declarations.function(named: "db_open"))
        #expect(open.type.returnType == pointer(.structure("db")))
        #expect(open.type.parameters.map(\.type) == [pointer(charType, const: true), pointer(uLong), pointer(uLong), pointer(charType, const: true)])
        #expect(declarations.function(named: "mid")?.type.parameters.map(\.type) == [.structure("point"), pointer(.structure("point"), const: true)])
        #expect(declarations.structs["line"]?.fields.map(\.type) == [.structure("point"), .structure("point"), try #require(declarations.typedefs["cb_t"])])
        let on = try #require(declarations.function(named: "on"))
        guard case .functionPointer(let callback) = on.type.parameters[0].type else {
            Issue.record("expected a function pointer")
            return
        }
        #expect(callback.parameters[0].length == .parameter(1))
        #expect(on.type.parameters[1].type == pointer(.void))
        #expect(declarations.function(named: "done")?.type.returnType == .void)
        // Descriptions spell out the underlying types, so they parse without the typedefs.
        for function in declarations.functions {
            #expect(try DeclarationParser.parseFunctionType(function.description, structs: declarations.structs) == function.type)
        }
    }

    @Test("C name rules: a typedef name after a type is a declarator name; redefinition with the same type")
    func nameRules() throws {
        let declarations = try DeclarationParser.parse(
            """
            typedef int len;
            typedef int len;
            typedef len len;
            typedef struct point point;
            struct point { len x; };
            int size_of(int len, len (*f)(len));
            point origin(void);
            """)
        #expect(declarations.typedefs == ["len": intType, "point": .structure("point")])
        let sizeOf = try #require(declarations.function(named: "size_of"))
        #expect(sizeOf.type.parameters[0] == CParameter(name: "len", type: intType))
        #expect(sizeOf.type.parameters[1].type == .functionPointer(CFunctionType(returnType: intType, parameters: [CParameter(type: intType)])))
        // `(len)` after a declarator is a parameter list, as in C, when `len` is a typedef name.
        let abstract = try function("typedef int len; void g(int (len));")
        #expect(abstract.type.parameters[0].type == .functionPointer(CFunctionType(returnType: intType, parameters: [CParameter(type: intType)])))
        // The final ';' may be omitted after a typedef too.
        #expect(try DeclarationParser.parse("typedef int last").typedefs == ["last": intType])
    }

    @Test("manifest function types see the typedefs and structs of a declarations value")
    func manifest() throws {
        let shared = try DeclarationParser.parse(
            """
            typedef unsigned long uLong;
            typedef unsigned char Bytef;
            typedef struct point { double x, y; } point_t;
            typedef struct db db_t;
            """)
        let compress = try DeclarationParser.parseFunctionType(
            "int (SPACE_OUT SPACE_LEN(destLen) Bytef *dest, SPACE_INOUT uLong *destLen, const Bytef *source, uLong sourceLen)",
            declarations: shared)
        #expect(compress.parameters[0] == CParameter(name: "dest", type: pointer(byte), direction: .out, length: .parameter(1)))
        #expect(compress.parameters[2].type == pointer(byte, const: true))
        let norm = try DeclarationParser.parseFunctionType("SPACE_ERRNO double (point_t p, SPACE_RELEASE db_t *db);", declarations: shared)
        #expect(norm.capturesErrno)
        #expect(norm.parameters.map(\.type) == [.structure("point"), pointer(.structure("db"))])
        #expect(norm.parameters[1].releasesHandle)
        // By value, a struct typedef still needs the struct's definition.
        let error = try #require(functionTypeError("void (db_t db)", declarations: shared))
        #expect(error.message.contains("struct 'db' is used by value but not defined"))
        #expect(error.column == 7)
        // Without the declarations, the names are unknown.
        #expect(functionTypeError("uLong (void)")?.message == "unknown type 'uLong'")
        // The structs-only overload still works and does not see typedefs.
        #expect(try DeclarationParser.parseFunctionType("double (struct point p)", structs: shared.structs).returnType == .double)
    }

    @Test("typedef chains are bounded by the nesting limit")
    func depth() throws {
        var text = "typedef int p0;\n"
        for level in 1...64 { text += "typedef p\(level - 1) *p\(level);\n" }
        let declarations = try DeclarationParser.parse(text)
        #expect(declarations.typedefs.count == 65)
        let error = try #require(parseError(text + "typedef p64 *p65;"))
        #expect(error.message.contains("limit 64"))
        #expect(error.line == 66)
        // The same limit through the manifest overload.
        #expect(functionTypeError("void (p64 *x)", declarations: declarations)?.message.contains("limit 64") == true)
        #expect(try DeclarationParser.parseFunctionType("void (p64 x)", declarations: declarations).parameters.count == 1)
    }
}

// MARK: - Errors

@Suite("DeclarationParser annotation and typedef errors")
struct AnnotationErrorTests {
    /// (text, line, column, message fragment). Parsed with `parse(_:)`.
    static let declarationErrors: [(text: String, line: Int, column: Int, message: String)] = [
        // Where annotations may appear.
        ("SPACE_OUT int f(void);", 1, 1, "SPACE_OUT is only valid on a parameter"),
        ("struct s { SPACE_LEN(4) int *p; };", 1, 12, "SPACE_LEN is only valid on a parameter"),
        ("typedef SPACE_IN int *p;", 1, 9, "SPACE_IN is only valid on a parameter"),
        ("int f(void), SPACE_RELEASE g(void);", 1, 14, "expected a function name, found 'SPACE_RELEASE'"),
        ("void f(SPACE_ERRNO int x);", 1, 8, "SPACE_ERRNO is only valid at the start of a function declaration, not on a parameter"),
        ("struct s { SPACE_FREE(free) char *p; };", 1, 12, "SPACE_FREE is only valid at the start of a function declaration, not on a struct field"),
        ("typedef SPACE_ERRNO int e;", 1, 9, "SPACE_ERRNO is only valid at the start of a function declaration, not on a typedef"),
        ("SPACE_ERRNO struct s;", 1, 1, "SPACE_ERRNO is only valid on a function declaration, not on a struct declaration"),
        ("SPACE_ERRNO int x;", 1, 17, "'x' is declared as a variable of type 'int'"),
        ("void f(int * SPACE_OUT p);", 1, 14, "SPACE_OUT must come before the type"),
        // Directions.
        ("void f(SPACE_IN SPACE_OUT int *p);", 1, 17, "SPACE_OUT conflicts with SPACE_IN: a parameter has one direction"),
        ("void f(SPACE_OUT int n);", 1, 8, "SPACE_OUT on 'n' needs a pointer parameter, not 'int'"),
        ("void f(SPACE_INOUT struct s v);", 1, 8, "SPACE_INOUT on 'v' needs a pointer parameter, not 'struct s'"),
        ("void f(SPACE_IN void (*cb)(void));", 1, 8, "SPACE_IN cannot be used on function pointer parameter 'cb'"),
        ("void f(SPACE_OUT int (int));", 1, 8, "SPACE_OUT cannot be used on function pointer parameter an unnamed parameter"),
        // Lengths.
        ("void f(SPACE_LEN(n) int x, int n);", 1, 8, "SPACE_LEN on 'x' needs a pointer parameter"),
        ("void f(SPACE_LEN(4) void (*cb)(void));", 1, 8, "SPACE_LEN cannot be used on function pointer parameter 'cb'"),
        ("void f(SPACE_LEN(n) int *p);", 1, 8, "SPACE_LEN(n): no parameter named 'n'"),
        ("void f(int a,\n       SPACE_LEN(count) int *p, int cnt);", 2, 8, "SPACE_LEN(count): no parameter named 'count'"),
        ("void f(SPACE_LEN(p) int *p);", 1, 8, "SPACE_LEN(p) on 'p' names the parameter itself"),
        ("void f(SPACE_LEN(d) int *p, double d);", 1, 8, "SPACE_LEN(d): parameter 'd' must be an integer or a pointer to an integer, not 'double'"),
        ("void f(SPACE_LEN(q) int *p, int **q);", 1, 8, "parameter 'q' must be an integer or a pointer to an integer, not 'int **'"),
        ("void f(SPACE_LEN(n) int *p, ...);", 1, 8, "SPACE_LEN(n): no parameter named 'n'"),
        ("void f(SPACE_LEN(n) SPACE_LEN(n) int *p, int n);", 1, 21, "duplicate SPACE_LEN on one parameter"),
        ("void f(SPACE_LEN(4) int p[4], SPACE_LEN(0) int *q);", 1, 41, "SPACE_LEN(0): a count must be a decimal number from 1 to 1073741824"),
        ("void f(SPACE_LEN(1073741825) int *p);", 1, 18, "a count must be a decimal number from 1 to 1073741824"),
        ("void f(SPACE_LEN(99999999999999999999999) int *p);", 1, 18, "a count must be a decimal number"),
        ("void f(SPACE_LEN(0x10) int *p);", 1, 18, "SPACE_LEN(0x10): a count must be a decimal number"),
        ("void f(SPACE_LEN(010) int *p);", 1, 18, "SPACE_LEN(010): a count must be a decimal number"),
        ("void f(SPACE_LEN(4u) int *p);", 1, 18, "SPACE_LEN(4u): a count must be a decimal number"),
        ("void f(SPACE_LEN() int *p);", 1, 18, "expected a parameter name or a count in SPACE_LEN(...), found ')'"),
        ("void f(SPACE_LEN(int) int *p);", 1, 18, "expected a parameter name or a count in SPACE_LEN(...), found 'int'"),
        ("void f(SPACE_LEN(a.b) int *p);", 1, 18, "'a.b' cannot be a parameter name"),
        ("void f(SPACE_LEN int *p);", 1, 18, "expected '(' after SPACE_LEN, found 'int'"),
        ("void f(SPACE_LEN(n int *p, int n);", 1, 20, "expected ')' after the SPACE_LEN argument, found 'int'"),
        ("void f(SPACE_LEN(", 1, 18, "expected a parameter name or a count in SPACE_LEN(...), found end of input"),
        ("void f(int xs[0]);", 1, 15, "array size '0' is out of range (1 to 1073741824)"),
        ("void f(int xs[2000000000]);", 1, 15, "array size '2000000000' is out of range"),
        ("void f(int xs[08]);", 1, 15, "invalid array size '08'"),
        // Release.
        ("void f(SPACE_RELEASE int h);", 1, 8, "SPACE_RELEASE on 'h' needs a pointer parameter (the handle), not 'int'"),
        ("void f(SPACE_RELEASE void (*h)(void));", 1, 8, "SPACE_RELEASE on 'h' needs a pointer parameter"),
        // Function annotations.
        ("SPACE_FREE(free) SPACE_FREE(free) char *f(void);", 1, 18, "duplicate SPACE_FREE on one function"),
        ("SPACE_FREE(free) int f(void);", 1, 1, "SPACE_FREE(free) needs a function that returns a pointer; function 'f' returns 'int'"),
        ("SPACE_FREE(free) char *f(void), g(void);", 1, 1, "function 'g' returns 'char'"),
        ("SPACE_FREE(my.free) char *f(void);", 1, 12, "SPACE_FREE(my.free): the free function must be a plain C identifier"),
        ("SPACE_FREE(int) char *f(void);", 1, 12, "expected the name of a free function in SPACE_FREE(...), found 'int'"),
        ("SPACE_FREE(\"free\") char *f(void);", 1, 12, "expected the name of a free function in SPACE_FREE(...), found '\"'"),
        ("SPACE_FREE free char *f(void);", 1, 12, "expected '(' after SPACE_FREE, found 'free'"),
        ("SPACE_FREE(free char *f(void);", 1, 17, "expected ')' after the SPACE_FREE argument, found 'char'"),
        ("int SPACE_OUT(void);", 1, 5, "SPACE_OUT is only valid on a parameter"),
        ("int f(int SPACE_LEN);", 1, 20, "expected '(' after SPACE_LEN, found ')'"),
        ("int ok(void);\nvoid g(SPACE_OUT double d);", 2, 8, "SPACE_OUT on 'd' needs a pointer parameter, not 'double'"),
        // Typedefs.
        ("typedef int int;", 1, 13, "'int' is a builtin type name; a typedef cannot redefine it"),
        ("typedef unsigned long size_t;", 1, 23, "'size_t' is a builtin type name"),
        ("typedef int *bool;", 1, 14, "'bool' is a builtin type name"),
        ("typedef int a, long;", 1, 16, "'long' is a builtin type name"),
        ("typedef int fn_t(int);", 1, 13, "typedef 'fn_t' names a function type, which is not supported; use a function pointer: int (*fn_t)(...)"),
        ("typedef int a;\ntypedef long a;", 2, 14, "typedef 'a' is already defined as 'int'"),
        ("typedef char *s; typedef const char *s;", 1, 38, "typedef 's' is already defined as 'char *'"),
        ("typedef int arr[4];", 1, 13, "array typedefs are not supported (typedef 'arr')"),
        ("typedef const char cchar;", 1, 20, "typedef 'cchar' of a const-qualified type is not supported"),
        ("typedef int;", 1, 12, "expected a typedef name, found ';'"),
        ("typedef struct s;", 1, 17, "expected a typedef name, found ';'"),
        ("typedef int t.x;", 1, 13, "'t.x' cannot be a typedef name"),
        ("typedef extern int x;", 1, 9, "'extern' is not allowed in a typedef"),
        ("struct s { SPACE_ERRNO int x; };", 1, 12, "not on a struct field"),
        ("typedef int x", 1, 14, ""),
        ("int typedef x;", 1, 5, "'typedef' must come first in a declaration"),
        ("void f(typedef int x);", 1, 8, "typedef is only allowed at the top level"),
        ("struct s { typedef int x; };", 1, 12, "typedef is only allowed at the top level"),
        ("int f(void); typedef int f;", 1, 26, "'f' is already declared as a function; it cannot also be a typedef name"),
        ("typedef int g; int g(void);", 1, 20, "'g' is a typedef name; it cannot also name a function"),
        ("uLong f(void); typedef unsigned long uLong;", 1, 1, "unknown type 'uLong'"),
        ("typedef struct db db_t; db_t open_db(void);", 1, 25, "struct 'db' is used by value but not defined"),
        ("typedef struct db db_t; void f(db_t d);", 1, 32, "struct 'db' is used by value but not defined"),
        ("typedef struct db db_t; struct s { db_t d; };", 1, 41, "field 'd' has incomplete type 'struct db'"),
        ("typedef int x; int f(x y z);", 1, 26, "expected ')' after parameter list, found 'z'"),
        ("typedef int x; int f(unsigned x);", 1, 14, ""),
        ("typedef int x; typedef x unsigned y;", 1, 26, "'unsigned' cannot be combined with 'x'"),
        ("typedef void (*cb)(SPACE_OUT int n);", 1, 20, "SPACE_OUT on 'n' needs a pointer parameter"),
    ]

    @Test("every error names the problem and points at the offending token")
    func declarationErrors() throws {
        for entry in Self.declarationErrors where !entry.message.isEmpty {
            let error = try #require(parseError(entry.text), "expected an error for \(entry.text)")
            #expect(error.message.contains(entry.message), "\(entry.text): \(error)")
            #expect(error.line == entry.line && error.column == entry.column, "\(entry.text): \(error)")
        }
        // Entries without a message are valid C the parser accepts.
        for entry in Self.declarationErrors where entry.message.isEmpty {
            #expect(parseError(entry.text) == nil, "\(entry.text)")
        }
    }

    static let functionTypeErrors: [(text: String, line: Int, column: Int, message: String)] = [
        ("SPACE_OUT int (void)", 1, 1, "SPACE_OUT is only valid on a parameter"),
        ("int (SPACE_FREE(free) char *s)", 1, 6, "SPACE_FREE is only valid at the start of a function declaration, not on a parameter"),
        ("SPACE_FREE(free) int (void)", 1, 1, "SPACE_FREE(free) needs a function that returns a pointer; the function returns 'int'"),
        ("SPACE_FREE(free) int name(void)", 1, 1, "function 'name' returns 'int'"),
        ("typedef int x", 1, 1, "typedef is not allowed in a function type; define it with the declarations"),
        ("void (SPACE_LEN(n) int *p)", 1, 7, "SPACE_LEN(n): no parameter named 'n'"),
        ("uLong (void)", 1, 1, "unknown type 'uLong'"),
    ]

    @Test("parseFunctionType errors")
    func functionTypeErrors() throws {
        for entry in Self.functionTypeErrors {
            let error = try #require(functionTypeError(entry.text), "expected an error for \(entry.text)")
            #expect(error.message.contains(entry.message), "\(entry.text): \(error)")
            #expect(error.line == entry.line && error.column == entry.column, "\(entry.text): \(error)")
        }
    }
}

// MARK: - Robustness

/// SplitMix64, as in DeclarationParserTests.
private struct AnnotationFuzzGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("DeclarationParser annotation robustness")
struct AnnotationFuzzTests {
    static let seeds = [
        "typedef unsigned long uLong; typedef unsigned char Bytef; int compress2(SPACE_OUT SPACE_LEN(destLen) Bytef *dest, SPACE_INOUT uLong *destLen, const Bytef *source, uLong sourceLen, int level);",
        "SPACE_ERRNO SPACE_FREE(free) char *strdup(const char *s); double frexp(double x, SPACE_OUT int *exp);",
        "typedef struct point { double x, y; } point_t; typedef void (*cb_t)(SPACE_LEN(n) const int *v, size_t n); void each(cb_t cb, SPACE_RELEASE point_t *p, uint8_t d[16]);",
    ]

    static let vocabulary = [
        "SPACE_IN", "SPACE_OUT", "SPACE_INOUT", "SPACE_LEN", "SPACE_RELEASE", "SPACE_ERRNO", "SPACE_FREE", "typedef",
        "(", ")", "n", "4", "0", "*", ",", ";", "int", "size_t", "uLong", "const", "[", "]", "16", "struct", " ",
    ]

    @Test("mutated annotated inputs parse or throw DeclarationError; successes round-trip")
    func fuzz() {
        var generator = AnnotationFuzzGenerator(state: 0xA770_7A7E)
        var parsedCount = 0
        for round in 0..<1500 {
            var bytes = Array(Self.seeds[round % Self.seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes.remove(at: index)
                case 1:
                    let piece = Self.vocabulary[Int.random(in: 0..<Self.vocabulary.count, using: &generator)]
                    bytes.insert(contentsOf: Array((" " + piece + " ").utf8), at: index)
                default: bytes[index] = UInt8.random(in: 0x20...0x7E, using: &generator)
                }
                if bytes.isEmpty { bytes = [UInt8(ascii: ";")] }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            do {
                let declarations = try DeclarationParser.parse(text)
                parsedCount += 1
                for function in declarations.functions {
                    let reparsed = try? DeclarationParser.parseFunctionType(function.description, structs: declarations.structs)
                    #expect(reparsed == function.type, "round trip of \(function) from \(text.debugDescription)")
                    let manifest = try? DeclarationParser.parseFunctionType(function.type.description, declarations: declarations)
                    #expect(manifest == function.type, "manifest round trip of \(function.type)")
                }
            } catch {
                #expect(error.line >= 1 && error.column >= 1 && error.offset >= 0 && error.offset <= bytes.count)
                #expect(!error.message.isEmpty)
            }
        }
        #expect(parsedCount > 50)
    }
}
