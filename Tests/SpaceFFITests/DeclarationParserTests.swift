import Testing

@testable import SpaceFFI

// MARK: - Helpers

/// Parses `text` as a function type and returns the type of its only parameter.
private func parameterType(_ spelling: String, structs: [String: CStruct] = [:]) throws -> CType {
    let function = try DeclarationParser.parseFunctionType("void (\(spelling))", structs: structs)
    try #require(function.parameters.count == 1)
    return function.parameters[0].type
}

/// The error `body` throws, or nil when it does not throw.
private func parseError(_ text: String) -> DeclarationError? {
    do {
        _ = try DeclarationParser.parse(text)
        return nil
    } catch {
        return error
    }
}

private func functionTypeError(_ text: String, structs: [String: CStruct] = [:]) -> DeclarationError? {
    do {
        _ = try DeclarationParser.parseFunctionType(text, structs: structs)
        return nil
    } catch {
        return error
    }
}

private let charType = CType.integer(.char)
private let intType = CType.integer(.int)

// MARK: - Types

@Suite("DeclarationParser types")
struct DeclarationParserTypeTests {
    static let integerSpellings: [(spelling: String, bits: Int, isSigned: Bool, name: String)] = [
        ("char", 8, true, "char"),
        ("signed char", 8, true, "signed char"),
        ("char signed", 8, true, "signed char"),
        ("unsigned char", 8, false, "unsigned char"),
        ("short", 16, true, "short"),
        ("short int", 16, true, "short"),
        ("signed short", 16, true, "short"),
        ("signed short int", 16, true, "short"),
        ("unsigned short", 16, false, "unsigned short"),
        ("unsigned short int", 16, false, "unsigned short"),
        ("int", 32, true, "int"),
        ("signed", 32, true, "int"),
        ("signed int", 32, true, "int"),
        ("unsigned", 32, false, "unsigned int"),
        ("unsigned int", 32, false, "unsigned int"),
        ("int unsigned", 32, false, "unsigned int"),
        ("long", 64, true, "long"),
        ("long int", 64, true, "long"),
        ("signed long", 64, true, "long"),
        ("signed long int", 64, true, "long"),
        ("unsigned long", 64, false, "unsigned long"),
        ("unsigned long int", 64, false, "unsigned long"),
        ("long long", 64, true, "long long"),
        ("long long int", 64, true, "long long"),
        ("signed long long", 64, true, "long long"),
        ("unsigned long long", 64, false, "unsigned long long"),
        ("unsigned long long int", 64, false, "unsigned long long"),
        ("long unsigned long", 64, false, "unsigned long long"),
        ("int8_t", 8, true, "int8_t"),
        ("int16_t", 16, true, "int16_t"),
        ("int32_t", 32, true, "int32_t"),
        ("int64_t", 64, true, "int64_t"),
        ("uint8_t", 8, false, "uint8_t"),
        ("uint16_t", 16, false, "uint16_t"),
        ("uint32_t", 32, false, "uint32_t"),
        ("uint64_t", 64, false, "uint64_t"),
        ("size_t", 64, false, "size_t"),
        ("ssize_t", 64, true, "ssize_t"),
        ("intptr_t", 64, true, "intptr_t"),
        ("uintptr_t", 64, false, "uintptr_t"),
        ("ptrdiff_t", 64, true, "ptrdiff_t"),
        ("off_t", 64, true, "off_t"),
        ("intmax_t", 64, true, "intmax_t"),
        ("uintmax_t", 64, false, "uintmax_t"),
    ]

    @Test("every integer spelling maps to the right width, signedness and name")
    func integerSpellings() throws {
        for entry in Self.integerSpellings {
            let expected = CType.integer(CInteger(bits: entry.bits, isSigned: entry.isSigned, name: entry.name))
            // As a return type, as a named parameter, and as an unnamed parameter.
            let declarations = try DeclarationParser.parse("\(entry.spelling) f(\(entry.spelling) x, \(entry.spelling));")
            let function = try #require(declarations.function(named: "f"))
            #expect(function.type.returnType == expected, "return type \(entry.spelling)")
            #expect(function.type.parameters.map(\.type) == [expected, expected], "parameters \(entry.spelling)")
            #expect(function.type.parameters.map(\.name) == ["x", nil])
            #expect(expected.isInteger)
            #expect(expected.description == entry.name)
        }
    }

    @Test("non-integer scalars")
    func scalars() throws {
        let cases: [(String, CType)] = [
            ("void *", .pointer(to: .void, isConst: false)),
            ("bool", .bool), ("_Bool", .bool), ("float", .float), ("double", .double),
        ]
        for (spelling, expected) in cases {
            #expect(try parameterType(spelling) == expected, "\(spelling)")
        }
        let function = try DeclarationParser.parseFunctionType("void (void)")
        #expect(function.returnType == .void)
        #expect(function.returnType.isVoid)
        #expect(!CType.bool.isInteger)
    }

    @Test("const, volatile and restrict qualifiers")
    func qualifiers() throws {
        let constChar = CType.pointer(to: charType, isConst: true)
        #expect(try parameterType("const char *") == constChar)
        #expect(try parameterType("char const *") == constChar)
        #expect(try parameterType("const char *s") == constChar)
        #expect(try parameterType("char * const p") == .pointer(to: charType, isConst: false))
        #expect(try parameterType("const char * const p") == constChar)
        #expect(try parameterType("volatile int *p") == .pointer(to: intType, isConst: false))
        #expect(try parameterType("char *restrict p") == .pointer(to: charType, isConst: false))
        #expect(try parameterType("char *__restrict p") == .pointer(to: charType, isConst: false))
        #expect(try parameterType("const int") == intType)
        #expect(try parameterType("const void *") == .pointer(to: .void, isConst: true))
        #expect(
            try parameterType("char * const *")
                == .pointer(to: .pointer(to: charType, isConst: false), isConst: true))
        #expect(
            try parameterType("const char **argv")
                == .pointer(to: .pointer(to: charType, isConst: true), isConst: false))
    }

    @Test("pointers of any depth")
    func pointers() throws {
        #expect(try parameterType("char **argv") == .pointer(to: .pointer(to: charType, isConst: false), isConst: false))
        var expected = CType.double
        for _ in 0..<10 { expected = .pointer(to: expected, isConst: false) }
        #expect(try parameterType("double **********") == expected)
        #expect(try parameterType("double * * *") == .pointer(to: .pointer(to: .pointer(to: .double, isConst: false), isConst: false), isConst: false))
    }

    @Test("isString is only char pointers")
    func isString() throws {
        #expect(try parameterType("char *").isString)
        #expect(try parameterType("const char *").isString)
        #expect(try parameterType("char const * const").isString)
        #expect(try !parameterType("unsigned char *").isString)
        #expect(try !parameterType("signed char *").isString)
        #expect(try !parameterType("uint8_t *").isString)
        #expect(try !parameterType("int8_t *").isString)
        #expect(try !parameterType("char **").isString)
        #expect(try !parameterType("char").isString)
        #expect(try parameterType("char **").isPointer)
    }

    @Test("descriptions render valid C and round-trip")
    func descriptions() throws {
        let types: [(CType, String)] = [
            (.integer(.int32), "int32_t"),
            (.pointer(to: charType, isConst: true), "const char *"),
            (.structure("point"), "struct point"),
            (.pointer(to: .void, isConst: false), "void *"),
            (.pointer(to: .structure("db"), isConst: false), "struct db *"),
            (.pointer(to: .pointer(to: charType, isConst: false), isConst: true), "char * const *"),
            (
                .functionPointer(
                    CFunctionType(
                        returnType: intType,
                        parameters: [
                            CParameter(type: .pointer(to: .void, isConst: true)),
                            CParameter(type: .pointer(to: .void, isConst: true)),
                        ])), "int (*)(const void *, const void *)"
            ),
            (.functionPointer(CFunctionType(returnType: .void)), "void (*)(void)"),
            (
                .pointer(to: .functionPointer(CFunctionType(returnType: .void, parameters: [CParameter(type: intType)])), isConst: false),
                "void (**)(int)"
            ),
            (
                .functionPointer(CFunctionType(returnType: .pointer(to: charType, isConst: false), parameters: [CParameter(type: intType)])),
                "char *(*)(int)"
            ),
            (
                .functionPointer(
                    CFunctionType(
                        returnType: .functionPointer(CFunctionType(returnType: intType, parameters: [CParameter(type: intType)])),
                        parameters: [])), "int (*(*)(void))(int)"
            ),
            (
                .functionPointer(CFunctionType(returnType: intType, parameters: [CParameter(name: "fmt", type: .pointer(to: charType, isConst: true))], isVariadic: true)),
                "int (*)(const char *fmt, ...)"
            ),
        ]
        let point = ["point": CStruct(name: "point", fields: [CField(name: "x", type: .double)])]
        for (type, text) in types {
            #expect(type.description == text)
            #expect(try parameterType(text, structs: point) == type, "round trip of \(text)")
        }

        let signatures = [
            "int32_t (int32_t a, int32_t b)",
            "void (void)",
            "double (double, double)",
            "int (const char *fmt, ...)",
            "void (int (*cmp)(const void *, const void *), void *ctx)",
            "char *(const char *s)",
            "int (*(void))(int)",
            "struct point (struct point *p, double scale)",
            "unsigned long long (unsigned char c, signed char d, bool e, float f)",
        ]
        let structs = ["point": CStruct(name: "point", fields: [CField(name: "x", type: .double)])]
        for signature in signatures {
            let function = try DeclarationParser.parseFunctionType(signature, structs: structs)
            #expect(function.description == signature)
            #expect(try DeclarationParser.parseFunctionType(function.description, structs: structs) == function)
        }
        #expect(CType.pointer(to: charType, isConst: true).declaration(named: "s") == "const char *s")
        #expect(
            CType.functionPointer(CFunctionType(returnType: .void, parameters: [CParameter(type: intType)]))
                .declaration(named: "cb") == "void (*cb)(int)")
    }
}

// MARK: - Declarations

@Suite("DeclarationParser declarations")
struct DeclarationParserDeclarationTests {
    @Test("function pointers, named and unnamed")
    func functionPointers() throws {
        let declarations = try DeclarationParser.parse(
            """
            void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
            void on_event(void (*cb)(void), void (*)(int));
            int (*get_handler(int sig))(int);
            void apply(int f(int));
            """)
        let comparator = CFunctionType(
            returnType: intType,
            parameters: [
                CParameter(type: .pointer(to: .void, isConst: true)), CParameter(type: .pointer(to: .void, isConst: true)),
            ])
        let qsort = try #require(declarations.function(named: "qsort"))
        #expect(qsort.type.parameters.count == 4)
        #expect(qsort.type.parameters[3] == CParameter(name: "cmp", type: .functionPointer(comparator)))
        #expect(qsort.type.parameters[1].type == .integer(.size))

        let onEvent = try #require(declarations.function(named: "on_event"))
        #expect(onEvent.type.parameters[0] == CParameter(name: "cb", type: .functionPointer(CFunctionType(returnType: .void))))
        #expect(
            onEvent.type.parameters[1]
                == CParameter(type: .functionPointer(CFunctionType(returnType: .void, parameters: [CParameter(type: intType)]))))

        let handler = CFunctionType(returnType: intType, parameters: [CParameter(type: intType)])
        let getHandler = try #require(declarations.function(named: "get_handler"))
        #expect(getHandler.type.returnType == .functionPointer(handler))
        #expect(getHandler.type.parameters == [CParameter(name: "sig", type: intType)])
        #expect(getHandler.description == "int (*get_handler(int sig))(int)")

        // A function parameter decays to a function pointer.
        let apply = try #require(declarations.function(named: "apply"))
        #expect(apply.type.parameters == [CParameter(name: "f", type: .functionPointer(handler))])
    }

    @Test("(void), empty and variadic parameter lists")
    func parameterLists() throws {
        let declarations = try DeclarationParser.parse(
            "int getpid(void); int rand(); int printf(const char *fmt, ...); int anything(...);")
        #expect(declarations.function(named: "getpid")?.type == CFunctionType(returnType: intType))
        #expect(declarations.function(named: "rand")?.type == CFunctionType(returnType: intType))
        let printf = try #require(declarations.function(named: "printf"))
        #expect(printf.type.isVariadic)
        #expect(printf.type.parameters == [CParameter(name: "fmt", type: .pointer(to: charType, isConst: true))])
        #expect(printf.description == "int printf(const char *fmt, ...)")
        let anything = try #require(declarations.function(named: "anything"))
        #expect(anything.type.isVariadic && anything.type.parameters.isEmpty)
        #expect(declarations.function(named: "missing") == nil)
    }

    @Test("array parameters decay to pointers")
    func arrayParameters() throws {
        let function = try DeclarationParser.parseFunctionType(
            "double sum(const double xs[], double v[4], char *argv[], int n[0x10], int m[static 3])")
        #expect(
            function.parameters.map(\.type) == [
                .pointer(to: .double, isConst: true), .pointer(to: .double, isConst: false),
                .pointer(to: .pointer(to: charType, isConst: false), isConst: false),
                .pointer(to: intType, isConst: false), .pointer(to: intType, isConst: false),
            ])
        #expect(function.parameters.map(\.name) == ["xs", "v", "argv", "n", "m"])
    }

    @Test("struct definitions and references")
    func structs() throws {
        let declarations = try DeclarationParser.parse(
            """
            struct db;
            struct db *open_db(const char *path);
            struct point { double x, y; struct point *next; };
            struct rect { struct point origin; struct point size; int (*hit)(struct point p); };
            double area(struct rect r);
            """)
        let point = try #require(declarations.structs["point"])
        #expect(
            point.fields == [
                CField(name: "x", type: .double), CField(name: "y", type: .double),
                CField(name: "next", type: .pointer(to: .structure("point"), isConst: false)),
            ])
        let rect = try #require(declarations.structs["rect"])
        #expect(rect.fields.map(\.name) == ["origin", "size", "hit"])
        #expect(rect.fields[0].type == .structure("point"))
        #expect(rect.description == "struct rect { struct point origin; struct point size; int (*hit)(struct point p); }")
        #expect(declarations.structs["db"] == nil)
        #expect(declarations.function(named: "open_db")?.type.returnType == .pointer(to: .structure("db"), isConst: false))
        #expect(declarations.function(named: "area")?.type.parameters == [CParameter(name: "r", type: .structure("rect"))])
        #expect(declarations.functions.map(\.name) == ["open_db", "area"])
    }

    @Test("a struct definition and a declaration in one statement; by-value struct defined later")
    func structDefinitionWithDeclarator() throws {
        let declarations = try DeclarationParser.parse(
            "struct pair make_pair(int a, int b); struct pair { int a; int b; } swap(struct pair p);")
        #expect(declarations.structs["pair"]?.fields.count == 2)
        #expect(declarations.function(named: "swap")?.type.returnType == .structure("pair"))
        #expect(declarations.function(named: "make_pair")?.type.returnType == .structure("pair"))
    }

    @Test("parseFunctionType sees the given structs")
    func functionTypeWithStructs() throws {
        let structs = try DeclarationParser.parse("struct point { double x; double y; };").structs
        let function = try DeclarationParser.parseFunctionType("double (struct point a, const struct point *b);", structs: structs)
        #expect(function.parameters.map(\.type) == [.structure("point"), .pointer(to: .structure("point"), isConst: true)])
        let error = try #require(functionTypeError("double (struct point a)"))
        #expect(error.message.contains("struct 'point' is used by value but not defined"))
        #expect(error.column == 9)
        // A pointer to an undefined struct is fine.
        #expect(try DeclarationParser.parseFunctionType("void (struct opaque *)").parameters.count == 1)
    }

    @Test("comments, preprocessor lines, whitespace, storage words")
    func commentsAndWhitespace() throws {
        let declarations = try DeclarationParser.parse(
            """
            #ifndef LIBDEMO_H
            #define LIBDEMO_H \\
                continued
            #include <stdint.h>
            // line comment
            extern /* storage is ignored */ double
              cos ( double x ) ;/**/static inline int32_t add(int32_t a,
                                              int32_t b)  // trailing
            ;
            /* multi
               line */ _Noreturn void die(void)
            #endif
            """)
        #expect(declarations.functions.map(\.name) == ["cos", "add", "die"])
        #expect(declarations.function(named: "add")?.type.description == "int32_t (int32_t a, int32_t b)")
        #expect(try DeclarationParser.parse("").functions.isEmpty)
        #expect(try DeclarationParser.parse("  // nothing\n/* at all */ ;;").functions.isEmpty)
    }

    @Test("several declarations, comma-separated declarators, optional final ';'")
    func multipleDeclarations() throws {
        let declarations = try DeclarationParser.parse(
            "double cos(double); int32_t add(int32_t a, int32_t b); struct point { double x; double y; };\n"
                + "double sin(double), tan(double); double hypot(double, double)")
        #expect(declarations.functions.map(\.name) == ["cos", "add", "sin", "tan", "hypot"])
        #expect(declarations.structs.keys.sorted() == ["point"])
        #expect(declarations.function(named: "hypot")?.type == CFunctionType(returnType: .double, parameters: [CParameter(type: .double), CParameter(type: .double)]))
    }

    @Test("dotted function names are kept as written; other dotted names are errors")
    func dottedNames() throws {
        let declarations = try DeclarationParser.parse("double m.cos(double); int math.v2.add(int a, int b); int printf(const char *, ...);")
        #expect(declarations.functions.map(\.name) == ["m.cos", "math.v2.add", "printf"])
        #expect(declarations.function(named: "m.cos")?.description == "double m.cos(double)")
        #expect(try DeclarationParser.parseFunctionType("int math.add(int a, int b)").parameters.count == 2)
        let parameter = try #require(parseError("int f(int a.b);"))
        #expect(parameter.message.contains("'a.b' cannot be a parameter name") && parameter.column == 11)
        let field = try #require(parseError("struct s { int a.b; };"))
        #expect(field.message.contains("'a.b' cannot be a field name") && field.column == 16)
        let tag = try #require(parseError("struct s.t *f(void);"))
        #expect(tag.message.contains("'s.t' cannot be a struct name") && tag.column == 8)
        #expect(parseError("int f.(void);")?.message.contains("'f' is declared as a variable") == true)
    }

    @Test("manifest-form function types")
    func manifestForms() throws {
        let add = CFunctionType(
            returnType: .integer(.int32), parameters: [CParameter(name: "a", type: .integer(.int32)), CParameter(name: "b", type: .integer(.int32))])
        #expect(try DeclarationParser.parseFunctionType("int32_t (int32_t a, int32_t b)") == add)
        #expect(try DeclarationParser.parseFunctionType("int32_t add(int32_t a, int32_t b);") == add)
        #expect(try DeclarationParser.parseFunctionType(" void ( void ) ; ") == CFunctionType(returnType: .void))
        #expect(try DeclarationParser.parseFunctionType("double hypot(double, double)").parameters.count == 2)
        #expect(try DeclarationParser.parseFunctionType("const char *(void)").returnType == .pointer(to: charType, isConst: true))
    }
}


// MARK: - Errors

@Suite("DeclarationParser errors")
struct DeclarationParserErrorTests {
    /// (text, line, column, a fragment the message must contain). Parsed with `parse(_:)`.
    static let declarationErrors: [(text: String, line: Int, column: Int, message: String)] = [
        ("int32_t add(int32_t a;", 1, 22, "expected ')' after parameter list, found ';'"),
        ("int32_t add(int32_t a b);", 1, 23, "expected ')' after parameter list, found 'b'"),
        ("foo_t f(void);", 1, 1, "unknown type 'foo_t'"),
        ("int f(int a, foo_t b);", 1, 14, "unknown type 'foo_t'"),
        ("double cos(double);\n\n  int32_t add(int32_t a, widget_t b);", 3, 26, "unknown type 'widget_t'"),
        ("long double f(void);", 1, 6, "long double is not supported"),
        ("double long f(void);", 1, 8, "long double is not supported"),
        ("int typedef myint;", 1, 5, "'typedef' must come first in a declaration"),
        ("union u f(void);", 1, 1, "union types are not supported"),
        ("enum e f(void);", 1, 1, "enum types are not supported"),
        ("int (int);", 1, 5, "expected a function name, found '('"),
        ("int;", 1, 4, "expected a function name, found ';'"),
        ("int *;", 1, 6, "expected a function name, found ';'"),
        ("const;", 1, 6, "expected a type, found ';'"),
        ("extern;", 1, 7, "expected a type, found ';'"),
        ("int x;", 1, 5, "'x' is declared as a variable of type 'int'; only function declarations are supported"),
        ("int (*fp)(int);", 1, 7, "'fp' is declared as a variable of type 'int (*)(int)'"),
        ("int xs[3];", 1, 5, "'xs' is declared as an array"),
        ("struct point { double x; } p;", 1, 28, "'p' is declared as a variable of type 'struct point'"),
        ("int f(void), x;", 1, 14, "'x' is declared as a variable"),
        ("int f(void); int f(int);", 1, 18, "duplicate declaration of function 'f'"),
        ("int f(void)\nint g(void);", 2, 1, "expected ';' after declaration, found 'int'"),
        ("int f(int) {}", 1, 12, "function definitions are not supported"),
        ("int f(void x);", 1, 7, "parameter 'x' cannot have type void"),
        ("int f(int, void);", 1, 12, "cannot have type void; only '(void)' alone means no parameters"),
        ("int f(int a, int a);", 1, 18, "duplicate parameter name 'a'"),
        ("int f(static int x);", 1, 7, "'static' is not allowed in a parameter"),
        ("int f(...  , int);", 1, 12, "expected ')' after '...', found ','"),
        ("int f(int x[n]);", 1, 13, "expected ']' after array size, found 'n'"),
        ("int f(int x[4z]);", 1, 13, "invalid array size '4z'"),
        ("int f(int (*p)[4]);", 1, 11, "pointers to arrays are not supported"),
        ("int f(int m[2][3]);", 1, 11, "multidimensional arrays are not supported"),
        ("int (*f(void))(void)(int);", 1, 5, "a function cannot return a function"),
        ("int f(void)[3];", 1, 5, "a function cannot return an array"),
        ("unsigned signed f(void);", 1, 10, "'signed' cannot be combined with 'unsigned'"),
        ("int int f(void);", 1, 5, "duplicate 'int'"),
        ("long long long f(void);", 1, 11, "'long long long' is too long"),
        ("unsigned int32_t f(void);", 1, 10, "'int32_t' cannot be combined with 'unsigned'"),
        ("int32_t unsigned f(void);", 1, 9, "'unsigned' cannot be combined with 'int32_t'"),
        ("float double f(void);", 1, 7, "'double' cannot be combined with 'float'"),
        ("int struct s f(void);", 1, 5, "'struct' cannot be combined with 'int'"),
        ("struct point { double m[4]; };", 1, 23, "array fields are not supported yet"),
        ("struct a { struct b inner; };", 1, 21, "field 'inner' has incomplete type 'struct b'"),
        ("struct a { struct a self; };", 1, 21, "incomplete type 'struct a'"),
        ("struct p { int x; }; struct p { int y; };", 1, 29, "struct 'p' is already defined"),
        ("struct e {};", 1, 10, "struct 'e' has no fields"),
        ("struct { int x; } f(void);", 1, 8, "anonymous structs are not supported"),
        ("struct 3 x;", 1, 8, "expected a struct name after 'struct', found '3'"),
        ("int f(struct s { int x; } v);", 1, 16, "struct definitions are only allowed at the top level"),
        ("struct s { int x; int x; };", 1, 23, "duplicate field 'x' in struct 's'"),
        ("struct s { void v; };", 1, 17, "field 'v' cannot have type void"),
        ("struct s { int f(int); };", 1, 16, "field 'f' has a function type"),
        ("struct s { static int x; };", 1, 12, "'static' is not allowed in a field"),
        ("struct s { int x };", 1, 18, "expected ';' after field declaration, found '}'"),
        ("struct s { int x;", 1, 18, "expected '}' to end struct 's', found end of input"),
        ("struct s { int; };", 1, 15, "expected a field name, found ';'"),
        ("void f(struct s v);", 1, 8, "struct 's' is used by value but not defined"),
        ("struct s g(void);", 1, 1, "struct 's' is used by value but not defined"),
        ("void f(void (*cb)(struct s));", 1, 19, "struct 's' is used by value but not defined"),
        ("int f(int /* never closed", 1, 11, "unterminated comment"),
        ("int f(int @);", 1, 11, "expected ')' after parameter list, found '@'"),
        ("int f(int \u{1}x);", 1, 11, "unexpected control character (byte 0x01)"),
        ("/* é */ int f(ünknown);", 1, 15, "unexpected non-ASCII character"),
        ("int f(int x", 1, 12, "expected ')' after parameter list, found end of input"),
        ("int f(", 1, 7, "expected a type, found end of input"),
        ("int (f", 1, 7, "expected ')' after declarator, found end of input"),
    ]

    @Test("every error names the problem and points at the offending token")
    func declarationErrors() throws {
        for entry in Self.declarationErrors {
            let error = try #require(parseError(entry.text), "expected an error for \(entry.text)")
            #expect(error.message.contains(entry.message), "\(entry.text): \(error)")
            #expect(error.line == entry.line && error.column == entry.column, "\(entry.text): \(error)")
            #expect(error.description == "line \(error.line), column \(error.column): \(error.message)")
        }
    }

    @Test("offset is in UTF-8 bytes while column is in characters")
    func offsetsAndColumns() throws {
        let error = try #require(parseError("/* é */ int f(ünknown);"))
        #expect(error.column == 15)
        #expect(error.offset == 15)  // é is two bytes
        let second = try #require(parseError("int f(void);\n  int g(x);"))
        #expect(second.line == 2 && second.column == 9 && second.offset == 21)
    }

    @Test("the documented description format")
    func descriptionFormat() throws {
        let error = try #require(parseError("int32_t add(int32_t a;"))
        #expect(error.description == "line 1, column 22: expected ')' after parameter list, found ';'")
    }

    static let functionTypeErrors: [(text: String, line: Int, column: Int, message: String)] = [
        ("", 1, 1, "expected a function type like 'int (int a)', found end of input"),
        ("int32_t", 1, 8, "expected a parameter list '(...)' after the return type, found end of input"),
        ("void (*)(int)", 1, 6, "expected a function type, found 'void (*)(int)'"),
        ("int x[2]", 1, 5, "expected a function type, found an array"),
        ("int f(void) extra", 1, 13, "expected end of input after the function type, found 'extra'"),
        ("int f(void);;", 1, 13, "expected end of input after the function type, found ';'"),
        ("struct p { int x; } (void)", 1, 10, "struct definitions are only allowed at the top level"),
        ("double (struct point a)", 1, 9, "struct 'point' is used by value but not defined"),
        ("long double (void)", 1, 6, "long double is not supported"),
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

// MARK: - Limits

@Suite("DeclarationParser limits")
struct DeclarationParserLimitTests {
    @Test("text size limit")
    func textSize() throws {
        let limit = DeclarationParser.maxTextBytes
        let atLimit = String(repeating: " ", count: limit - 14) + "int f(void);\n\n"
        #expect(atLimit.utf8.count == limit)
        #expect(try DeclarationParser.parse(atLimit).functions.count == 1)
        let tooLong = atLimit + " "
        let error = try #require(parseError(tooLong))
        #expect(error.message.contains("too long") && error.message.contains("1048576"))
        #expect(error.line == 1 && error.column == 1)
        #expect(functionTypeError(tooLong) != nil)
    }

    @Test("parenthesis nesting limit")
    func parentheses() throws {
        let ok = "int " + String(repeating: "(", count: 64) + "f" + String(repeating: ")", count: 64) + "(void);"
        #expect(try DeclarationParser.parse(ok).function(named: "f") != nil)
        let deep = "int " + String(repeating: "(", count: 65) + "f" + String(repeating: ")", count: 65) + "(void);"
        let error = try #require(parseError(deep))
        #expect(error.message.contains("nesting is too deep (limit 64)"))
        #expect(error.column == 69)
        // A megabyte of '(' fails fast, without deep recursion.
        let hostile = "int " + String(repeating: "(", count: DeclarationParser.maxTextBytes - 4)
        #expect(parseError(hostile)?.message.contains("nesting is too deep") == true)
    }

    @Test("nested callback types are bounded")
    func nestedCallbacks() throws {
        func nested(_ levels: Int) -> String {
            var text = "void"
            for _ in 0..<levels { text = "void (*)(\(text))" }
            return "void f(\(text));"
        }
        // Each level opens one more parameter list: 63 levels plus f's own list is exactly the limit.
        #expect(try DeclarationParser.parse(nested(63)).functions.count == 1)
        let error = try #require(parseError(nested(64)))
        #expect(error.message.contains("nesting is too deep (limit 64)"))
    }

    @Test("pointer depth limit")
    func pointerDepth() throws {
        #expect(try parameterType("int " + String(repeating: "*", count: 64)) != .void)
        let error = try #require(functionTypeError("void (int " + String(repeating: "*", count: 65) + ")"))
        #expect(error.message.contains("limit 64"))
        let hostile = "void (int " + String(repeating: "*", count: DeclarationParser.maxTextBytes - 20) + ")"
        #expect(functionTypeError(hostile)?.message.contains("limit 64") == true)
    }

    @Test("declaration count limit")
    func declarationCount() throws {
        var text = ""
        for index in 0..<DeclarationParser.maxDeclarations { text += "void f\(index)(void);\n" }
        #expect(try DeclarationParser.parse(text).functions.count == DeclarationParser.maxDeclarations)
        text += "void g(void);\n"
        let error = try #require(parseError(text))
        #expect(error.message.contains("too many declarations (limit 4096)"))
        #expect(error.line == 4097 && error.column == 6)
        // Forward declarations and struct definitions count too.
        let structs = String(repeating: "struct s;", count: DeclarationParser.maxDeclarations + 1)
        #expect(parseError(structs)?.message.contains("too many declarations") == true)
    }
}

// MARK: - Robustness

/// SplitMix64: small, deterministic, good enough for fuzzing.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("DeclarationParser robustness")
struct DeclarationParserFuzzTests {
    static let seeds = [
        "double cos(double); int32_t add(int32_t a, int32_t b); struct point { double x, y; struct point *next; };",
        "void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));",
        "int printf(const char *fmt, ...); struct db *open_db(const char *path);",
        "int (*get_handler(int sig))(int); void apply(int f(int), char *argv[], double v[4]);",
        "/* c */ extern unsigned long long f(signed char c, unsigned short s, long int l) // x\n;",
        "struct rect { struct point *o; int (*hit)(const struct rect *r); }; struct rect *mk(void);",
        "const char * const *names(bool b, _Bool c, float x, uint8_t *buf, ssize_t n);",
    ]

    static let vocabulary = [
        "int", "char", "void", "const", "unsigned", "long", "short", "signed", "double", "float", "bool",
        "struct", "point", "x", "f", "size_t", "uint8_t", "*", "(", ")", "[", "]", "{", "}", ",", ";", "...",
        "4", "0x", "static", "extern", "typedef", "union", "restrict", "/*", "*/", "//", "\n", "#", " ",
        "é", "\u{0}", "\t", "cb", "_Bool",
    ]

    /// Parses `text` both ways; success must round-trip through `description`, failure must be a
    /// well-formed `DeclarationError`.
    static func check(_ text: String) {
        let byteCount = text.utf8.count
        do {
            let declarations = try DeclarationParser.parse(text)
            for function in declarations.functions {
                let reparsed = try? DeclarationParser.parseFunctionType(function.description, structs: declarations.structs)
                #expect(reparsed == function.type, "round trip of \(function) from \(text.debugDescription)")
            }
        } catch {
            #expect(error.line >= 1 && error.column >= 1 && error.offset >= 0 && error.offset <= byteCount)
            #expect(!error.message.isEmpty)
        }
        do {
            let function = try DeclarationParser.parseFunctionType(text)
            #expect((try? DeclarationParser.parseFunctionType(function.description)) == function)
        } catch {
            #expect(error.line >= 1 && error.column >= 1 && error.offset >= 0 && error.offset <= byteCount)
        }
    }

    @Test("2,000 random and mutated inputs parse or throw DeclarationError, never crash")
    func fuzz() {
        var generator = SeededGenerator(state: 0x5EED_0000_0001)
        var parsedCount = 0
        for round in 0..<2000 {
            let text: String
            switch round % 3 {
            case 0:
                // Byte-level mutations of a valid text.
                var bytes = Array(Self.seeds[Int.random(in: 0..<Self.seeds.count, using: &generator)].utf8)
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    let index = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<5, using: &generator) {
                    case 0: if !bytes.isEmpty { bytes.remove(at: index) }
                    case 1: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
                    case 2:
                        let piece = Self.vocabulary[Int.random(in: 0..<Self.vocabulary.count, using: &generator)]
                        bytes.insert(contentsOf: Array(piece.utf8), at: index)
                    case 3: if !bytes.isEmpty { bytes[index] = UInt8.random(in: 0x20...0x7E, using: &generator) }
                    default: bytes.removeSubrange(index..<bytes.count)
                    }
                }
                text = String(decoding: bytes, as: UTF8.self)
            case 1:
                // Token soup.
                var pieces: [String] = []
                for _ in 0..<Int.random(in: 0...40, using: &generator) {
                    pieces.append(Self.vocabulary[Int.random(in: 0..<Self.vocabulary.count, using: &generator)])
                }
                text = pieces.joined(separator: Bool.random(using: &generator) ? " " : "")
            default:
                // Raw random bytes.
                var bytes: [UInt8] = []
                for _ in 0..<Int.random(in: 0...64, using: &generator) {
                    bytes.append(UInt8.random(in: 0...255, using: &generator))
                }
                text = String(decoding: bytes, as: UTF8.self)
            }
            if (try? DeclarationParser.parse(text)) != nil { parsedCount += 1 }
            Self.check(text)
        }
        // The mutations keep some inputs valid, so both paths are exercised.
        #expect(parsedCount > 50)
    }

    @Test("every seed parses")
    func seedsParse() throws {
        for seed in Self.seeds {
            #expect(throws: Never.self) { try DeclarationParser.parse(seed) }
        }
    }
}
