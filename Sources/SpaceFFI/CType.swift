// The model of C declarations that space understands: the types a plugin's manifest or a `--decl` text
// can name, and the functions and structs built from them. Produced by `DeclarationParser`; consumed by
// the code that builds libffi call interfaces. Pure Swift, no Foundation. Target ABI: LP64 (Linux x86-64,
// aarch64): `long` and pointers are 64 bits, `char` is signed and 8 bits.

/// A C integer type: its width, signedness, and the spelling it was written with.
///
/// `name` is the canonical spelling: `"char"`, `"signed char"`, `"unsigned char"`, `"short"`,
/// `"unsigned short"`, `"int"`, `"unsigned int"`, `"long"`, `"unsigned long"`, `"long long"`,
/// `"unsigned long long"`, or a fixed-width / standard typedef name such as `"uint8_t"` or `"size_t"`.
/// Two integers with the same width and signedness but different names are different values (they
/// render differently), though they share an ABI.
public struct CInteger: Sendable, Hashable {
    /// Width in bits: 8, 16, 32 or 64.
    public var bits: Int
    /// Whether the type is signed (two's complement).
    public var isSigned: Bool
    /// Canonical C spelling, e.g. `"int"`, `"unsigned long"`, `"uint8_t"`, `"size_t"`, `"char"`.
    public var name: String

    /// Creates an integer type description.
    public init(bits: Int, isSigned: Bool, name: String) {
        self.bits = bits
        self.isSigned = isSigned
        self.name = name
    }

    /// Width in bytes (`bits / 8`).
    public var byteCount: Int { bits / 8 }

    /// `char` (8-bit, signed on the supported ABIs).
    public static let char = CInteger(bits: 8, isSigned: true, name: "char")
    /// `signed char`.
    public static let signedChar = CInteger(bits: 8, isSigned: true, name: "signed char")
    /// `unsigned char`.
    public static let unsignedChar = CInteger(bits: 8, isSigned: false, name: "unsigned char")
    /// `short`.
    public static let short = CInteger(bits: 16, isSigned: true, name: "short")
    /// `unsigned short`.
    public static let unsignedShort = CInteger(bits: 16, isSigned: false, name: "unsigned short")
    /// `int`.
    public static let int = CInteger(bits: 32, isSigned: true, name: "int")
    /// `unsigned int`.
    public static let unsignedInt = CInteger(bits: 32, isSigned: false, name: "unsigned int")
    /// `long` (64-bit on LP64).
    public static let long = CInteger(bits: 64, isSigned: true, name: "long")
    /// `unsigned long` (64-bit on LP64).
    public static let unsignedLong = CInteger(bits: 64, isSigned: false, name: "unsigned long")
    /// `long long`.
    public static let longLong = CInteger(bits: 64, isSigned: true, name: "long long")
    /// `unsigned long long`.
    public static let unsignedLongLong = CInteger(bits: 64, isSigned: false, name: "unsigned long long")
    /// `int8_t`.
    public static let int8 = CInteger(bits: 8, isSigned: true, name: "int8_t")
    /// `int16_t`.
    public static let int16 = CInteger(bits: 16, isSigned: true, name: "int16_t")
    /// `int32_t`.
    public static let int32 = CInteger(bits: 32, isSigned: true, name: "int32_t")
    /// `int64_t`.
    public static let int64 = CInteger(bits: 64, isSigned: true, name: "int64_t")
    /// `uint8_t`.
    public static let uint8 = CInteger(bits: 8, isSigned: false, name: "uint8_t")
    /// `uint16_t`.
    public static let uint16 = CInteger(bits: 16, isSigned: false, name: "uint16_t")
    /// `uint32_t`.
    public static let uint32 = CInteger(bits: 32, isSigned: false, name: "uint32_t")
    /// `uint64_t`.
    public static let uint64 = CInteger(bits: 64, isSigned: false, name: "uint64_t")
    /// `size_t` (unsigned 64-bit).
    public static let size = CInteger(bits: 64, isSigned: false, name: "size_t")
    /// `ssize_t` (signed 64-bit).
    public static let ssize = CInteger(bits: 64, isSigned: true, name: "ssize_t")
    /// `intptr_t` (signed 64-bit).
    public static let intptr = CInteger(bits: 64, isSigned: true, name: "intptr_t")
    /// `uintptr_t` (unsigned 64-bit).
    public static let uintptr = CInteger(bits: 64, isSigned: false, name: "uintptr_t")
    /// `ptrdiff_t` (signed 64-bit).
    public static let ptrdiff = CInteger(bits: 64, isSigned: true, name: "ptrdiff_t")
    /// `off_t` (signed 64-bit).
    public static let off = CInteger(bits: 64, isSigned: true, name: "off_t")
    /// `intmax_t` (signed 64-bit).
    public static let intmax = CInteger(bits: 64, isSigned: true, name: "intmax_t")
    /// `uintmax_t` (unsigned 64-bit).
    public static let uintmax = CInteger(bits: 64, isSigned: false, name: "uintmax_t")

    /// The integer typedef names the parser knows (`int8_t` … `uint64_t`, `size_t`, `ssize_t`, `intptr_t`,
    /// `uintptr_t`, `ptrdiff_t`, `off_t`, `intmax_t`, `uintmax_t`), keyed by spelling.
    public static let typedefs: [String: CInteger] = {
        var table: [String: CInteger] = [:]
        for integer in [
            int8, int16, int32, int64, uint8, uint16, uint32, uint64,
            size, ssize, intptr, uintptr, ptrdiff, off, intmax, uintmax,
        ] {
            table[integer.name] = integer
        }
        return table
    }()
}

/// A C type as space understands it.
///
/// `description` renders valid C for the type as an abstract type name: `"int32_t"`, `"const char *"`,
/// `"struct point"`, `"int (*)(const void *, const void *)"`, `"void *"`.
public indirect enum CType: Sendable, Hashable, CustomStringConvertible {
    /// `void`: only meaningful as a return type or behind a pointer.
    case void
    /// `bool` / `_Bool` (one byte, 0 or 1).
    case bool
    /// Any integer type, including `char`.
    case integer(CInteger)
    /// `float` (IEEE 754 binary32).
    case float
    /// `double` (IEEE 754 binary64).
    case double
    /// A data pointer. `isConst` says whether the *pointee* is const-qualified:
    /// `const char *` is `.pointer(to: .integer(.char), isConst: true)`. Qualifiers on the pointer itself
    /// (`char * const p`) do not matter for calls and are dropped.
    case pointer(to: CType, isConst: Bool)
    /// A pointer to a function: a callback slot.
    case functionPointer(CFunctionType)
    /// `struct NAME`, by value. The definition, if any, lives in `CDeclarations.structs`.
    case structure(String)

    /// True for `void`.
    public var isVoid: Bool {
        if case .void = self { return true }
        return false
    }

    /// True for every integer type (including `char`; not `bool`).
    public var isInteger: Bool {
        if case .integer = self { return true }
        return false
    }

    /// True for data pointers and function pointers.
    public var isPointer: Bool {
        switch self {
        case .pointer, .functionPointer: return true
        default: return false
        }
    }

    /// True for a pointer to plain `char` (`char *`, `const char *`): a NUL-terminated string.
    /// `signed char *`, `unsigned char *`, `uint8_t *` are byte buffers, not strings.
    public var isString: Bool {
        if case .pointer(to: .integer(let integer), _) = self {
            return integer.name == "char"
        }
        return false
    }

    /// Valid C for this type as an abstract type name, e.g. `"const char *"`.
    public var description: String {
        CRenderer.render(self, qualifiedConst: false, declarator: "")
    }

    /// Valid C declaring `name` with this type, e.g. `CType.pointer(to: .integer(.char), isConst: true)
    /// .declaration(named: "s")` is `"const char *s"`, and a function pointer named `cb` renders as
    /// `"void (*cb)(int)"`.
    public func declaration(named name: String) -> String {
        CRenderer.render(self, qualifiedConst: false, declarator: name)
    }
}

/// Which way a pointer parameter's pointee travels, as a declaration states it with `SPACE_IN`,
/// `SPACE_OUT` or `SPACE_INOUT` (see docs/plugin-abi.md for the defaults when it says nothing).
public enum CDirection: String, Sendable, Hashable {
    /// The function reads the pointee: the caller passes a value.
    case `in`
    /// The function writes the pointee: the caller passes nothing (or a capacity) and gets the value back.
    case out
    /// The function reads and writes the pointee: the caller passes a value and gets the new one back.
    case `inout`
}

/// Where the element count of an array (pointer) parameter comes from: `SPACE_LEN(n)`, or the size
/// written in an array parameter (`uint8_t digest[16]`).
public enum CLength: Sendable, Hashable {
    /// Another parameter of the same function, by index: an integer holding the count, or a pointer to
    /// an integer holding the capacity before the call and the count written after it.
    case parameter(Int)
    /// A fixed count.
    case fixed(Int)
}

/// One parameter of a function type: an optional name, its type, and what its annotations say.
/// Array parameters are already decayed to pointers and function parameters to function pointers.
public struct CParameter: Sendable, Hashable {
    /// The parameter's name, when the declaration gave one.
    public var name: String?
    /// The parameter's type (never `.void`).
    public var type: CType
    /// The direction written with `SPACE_IN` / `SPACE_OUT` / `SPACE_INOUT`, or nil when not annotated.
    public var direction: CDirection?
    /// The element count written with `SPACE_LEN(…)` or as an array size, or nil.
    public var length: CLength?
    /// `SPACE_RELEASE`: the call ends the life of the handle passed here.
    public var releasesHandle: Bool
    /// `SPACE_SCOPED` (function pointers only): the callback is only called before the function
    /// returns, so the host frees it when the call returns.
    public var isScoped: Bool

    /// Creates a parameter.
    public init(
        name: String? = nil, type: CType, direction: CDirection? = nil, length: CLength? = nil,
        releasesHandle: Bool = false, isScoped: Bool = false
    ) {
        self.name = name
        self.type = type
        self.direction = direction
        self.length = length
        self.releasesHandle = releasesHandle
        self.isScoped = isScoped
    }
}

/// A C function type: return type, parameters, and whether it is variadic (`...`).
///
/// `description` renders it in the manifest form, e.g. `"int32_t (int32_t a, int32_t b)"`,
/// `"void (void)"`, `"int (const char *fmt, ...)"`.
public struct CFunctionType: Sendable, Hashable, CustomStringConvertible {
    /// The return type (`.void` for none).
    public var returnType: CType
    /// The fixed parameters, in order. `f(void)` has none.
    public var parameters: [CParameter]
    /// True when the parameter list ends in `...`.
    public var isVariadic: Bool
    /// `SPACE_ERRNO`: `errno` is cleared before the call and returned beside the result.
    public var capturesErrno: Bool
    /// `SPACE_FREE(fn)`: the function that releases the pointer this function returns (a string is
    /// copied and then released; a handle is released when the space or the plugin lets go of it).
    public var freeFunction: String?
    /// False for a function type written with an empty list, `void (*)()`: in C before C23 that
    /// declares no prototype. As a callback slot it takes as many `intptr_t` arguments as the
    /// caller's `cb:N` says, and returns void. `(void)` is a prototype with no parameters.
    public var hasPrototype: Bool

    /// Creates a function type.
    public init(
        returnType: CType, parameters: [CParameter] = [], isVariadic: Bool = false,
        capturesErrno: Bool = false, freeFunction: String? = nil, hasPrototype: Bool = true
    ) {
        self.returnType = returnType
        self.parameters = parameters
        self.isVariadic = isVariadic
        self.capturesErrno = capturesErrno
        self.freeFunction = freeFunction
        self.hasPrototype = hasPrototype || !parameters.isEmpty || isVariadic
    }

    /// Manifest form: `"int32_t (int32_t a, int32_t b)"`, annotations first
    /// (`"SPACE_ERRNO double (double x)"`).
    public var description: String {
        CRenderer.functionAnnotations(self)
            + CRenderer.render(returnType, qualifiedConst: false, declarator: "(" + CRenderer.parameterList(self) + ")")
    }
}

/// A declared function: its symbol name and its type.
public struct CFunction: Sendable, Hashable, CustomStringConvertible {
    /// The function's name as written (the symbol to look up).
    public var name: String
    /// The function's type.
    public var type: CFunctionType

    /// Creates a function declaration.
    public init(name: String, type: CFunctionType) {
        self.name = name
        self.type = type
    }

    /// The C declaration without the trailing `;`, e.g. `"int32_t add(int32_t a, int32_t b)"`.
    public var description: String {
        CRenderer.functionAnnotations(type) + CRenderer.render(
            type.returnType, qualifiedConst: false,
            declarator: name + "(" + CRenderer.parameterList(type) + ")")
    }
}

/// One field of a struct definition.
public struct CField: Sendable, Hashable {
    /// The field's name.
    public var name: String
    /// The field's type (never `.void`; a by-value struct field names a struct defined earlier).
    public var type: CType

    /// Creates a field.
    public init(name: String, type: CType) {
        self.name = name
        self.type = type
    }
}

/// A struct definition: `struct NAME { fields }`.
public struct CStruct: Sendable, Hashable, CustomStringConvertible {
    /// The struct tag (`point` for `struct point`).
    public var name: String
    /// The fields in declaration order (at least one).
    public var fields: [CField]

    /// Creates a struct definition.
    public init(name: String, fields: [CField]) {
        self.name = name
        self.fields = fields
    }

    /// The C definition without the trailing `;`, e.g. `"struct point { double x; double y; }"`.
    public var description: String {
        var text = "struct " + name + " {"
        for field in fields {
            text += " " + field.type.declaration(named: field.name) + ";"
        }
        return text + " }"
    }
}

/// Everything one declaration text declared: functions in source order and struct definitions by tag.
public struct CDeclarations: Sendable, Hashable {
    /// The functions, in the order they were declared. Names are unique.
    public var functions: [CFunction]
    /// Struct definitions, keyed by tag.
    public var structs: [String: CStruct]
    /// Type aliases from `typedef`, keyed by name, already resolved to the type they stand for.
    public var typedefs: [String: CType]

    /// Creates a set of declarations.
    public init(functions: [CFunction] = [], structs: [String: CStruct] = [:], typedefs: [String: CType] = [:]) {
        self.functions = functions
        self.structs = structs
        self.typedefs = typedefs
    }

    /// The function declared with this exact name, if any.
    public func function(named name: String) -> CFunction? {
        functions.first { $0.name == name }
    }
}

/// Why a declaration text was rejected, and where.
///
/// `line` and `column` are 1-based and point at the offending token (columns count characters, not
/// bytes); `offset` is the 0-based UTF-8 byte offset of the same place. `description` is
/// `"line 1, column 17: expected ')' after parameter list, found ';'"`.
public struct DeclarationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong: what was expected and what was found, or which limit was exceeded.
    public var message: String
    /// 1-based line of the offending token.
    public var line: Int
    /// 1-based column (in characters) of the offending token.
    public var column: Int
    /// 0-based UTF-8 byte offset of the offending token.
    public var offset: Int

    /// Creates an error.
    public init(message: String, line: Int, column: Int, offset: Int) {
        self.message = message
        self.line = line
        self.column = column
        self.offset = offset
    }

    /// `"line L, column C: message"`.
    public var description: String {
        "line \(line), column \(column): \(message)"
    }
}

/// Renders types as C, composing declarators inside-out the way C reads them.
private enum CRenderer {
    /// Renders `type` around `declarator` (a name, an abstract declarator, or ""). `qualifiedConst` says
    /// whether `type` itself is const-qualified (known from the pointer that points at it).
    static func render(_ type: CType, qualifiedConst: Bool, declarator: String) -> String {
        switch type {
        case .void: return base("void", qualifiedConst, declarator)
        case .bool: return base("bool", qualifiedConst, declarator)
        case .integer(let integer): return base(integer.name, qualifiedConst, declarator)
        case .float: return base("float", qualifiedConst, declarator)
        case .double: return base("double", qualifiedConst, declarator)
        case .structure(let name): return base("struct " + name, qualifiedConst, declarator)
        case .pointer(let pointee, let pointeeConst):
            return render(pointee, qualifiedConst: pointeeConst, declarator: star(qualifiedConst, declarator))
        case .functionPointer(let function):
            let inner = "(" + star(qualifiedConst, declarator) + ")(" + parameterList(function) + ")"
            return render(function.returnType, qualifiedConst: false, declarator: inner)
        }
    }

    /// The inside of a parameter list: `"void"`, `"int a, double"`, `"const char *fmt, ..."`.
    static func parameterList(_ function: CFunctionType) -> String {
        var parts: [String] = []
        for parameter in function.parameters {
            parts.append(
                parameterAnnotations(parameter, in: function)
                    + render(parameter.type, qualifiedConst: false, declarator: parameter.name ?? ""))
        }
        if function.isVariadic {
            parts.append("...")
        } else if parts.isEmpty {
            return function.hasPrototype ? "void" : ""
        }
        var text = ""
        for (index, part) in parts.enumerated() {
            if index > 0 { text += ", " }
            text += part
        }
        return text
    }

    /// `"SPACE_ERRNO SPACE_FREE(fn) "`, or "" when the function has no annotations.
    static func functionAnnotations(_ function: CFunctionType) -> String {
        var text = ""
        if function.capturesErrno { text += "SPACE_ERRNO " }
        if let free = function.freeFunction { text += "SPACE_FREE(" + free + ") " }
        return text
    }

    /// `"SPACE_OUT SPACE_LEN(n) "`, or "" when the parameter has no annotations.
    static func parameterAnnotations(_ parameter: CParameter, in function: CFunctionType) -> String {
        var text = ""
        switch parameter.direction {
        case .in?: text += "SPACE_IN "
        case .out?: text += "SPACE_OUT "
        case .inout?: text += "SPACE_INOUT "
        case nil: break
        }
        switch parameter.length {
        case .parameter(let index)?:
            let name = function.parameters.indices.contains(index) ? function.parameters[index].name : nil
            text += "SPACE_LEN(" + (name ?? String(index)) + ") "
        case .fixed(let count)?:
            text += "SPACE_LEN(" + String(count) + ") "
        case nil: break
        }
        if parameter.releasesHandle { text += "SPACE_RELEASE " }
        if parameter.isScoped { text += "SPACE_SCOPED " }
        return text
    }

    private static func base(_ name: String, _ isConst: Bool, _ declarator: String) -> String {
        let prefix = isConst ? "const " + name : name
        return declarator.isEmpty ? prefix : prefix + " " + declarator
    }

    private static func star(_ isConst: Bool, _ declarator: String) -> String {
        guard isConst else { return "*" + declarator }
        return declarator.isEmpty ? "* const" : "* const " + declarator
    }
}
