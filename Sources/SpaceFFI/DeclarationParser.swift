// A parser for the subset of C declarations space uses as its signature language (see CType.swift for
// the model). Hand-written, pure Swift, no Foundation. Designed for hostile input: bounded text size,
// bounded nesting (so recursion is shallow), bounded declaration count, and every failure is a
// `DeclarationError` with a 1-based line/column — never a trap.

/// Parses C declarations into the `CType` model.
///
/// Supported: the scalar types `void`, `bool`/`_Bool`, `char`/`short`/`int`/`long`/`long long` with
/// `signed`/`unsigned`, the fixed-width and standard integer typedefs (`int8_t` … `uint64_t`, `size_t`,
/// `ssize_t`, `intptr_t`, `uintptr_t`, `ptrdiff_t`, `off_t`, `intmax_t`, `uintmax_t`), `float`, `double`;
/// pointers of any depth with `const`/`volatile`/`restrict` qualifiers; function pointers (named and
/// abstract); array and function parameters (decayed to pointers; an array size becomes the parameter's
/// length); variadic functions; `struct` references and definitions; top-level `typedef`s, usable as type
/// names anywhere after their definition. `extern`/`static`/`inline` are ignored, as are comments and
/// preprocessor lines (`#include`, include guards). Not supported, with a clear error: `union`, `enum`,
/// `long double`, array fields, typedefs of function, array or top-level const types, function
/// definitions, variables.
///
/// Annotations are words the plugin SDK header defines as empty macros, so annotated text stays valid C.
/// They may appear anywhere among a declaration's specifiers (before, between or after the type words):
///
/// - On a parameter only: `SPACE_IN`, `SPACE_OUT`, `SPACE_INOUT` (the pointee's direction; the parameter
///   must be a data pointer), `SPACE_LEN(n)` (the element count of a data-pointer parameter: the name of
///   another parameter of the same list — an integer, or a pointer to one — declared before or after it,
///   or a decimal count from 1 to 2^30), `SPACE_RELEASE` (the call ends the life of the handle passed
///   here; the parameter must be a data pointer). They work the same inside callback parameter lists.
/// - At the start of a function declaration or a manifest function type only: `SPACE_ERRNO` (capture
///   `errno`) and `SPACE_FREE(fn)` (the function that releases the returned pointer). In
///   `SPACE_ERRNO int a(void), b(void);` they apply to both functions.
///
/// Limits: text at most ``maxTextBytes`` bytes, nesting (parentheses, pointers, nested function types) at
/// most ``maxNestingDepth``, at most ``maxDeclarations`` declarations.
public enum DeclarationParser {
    /// Longest accepted text, in UTF-8 bytes (1 MiB).
    public static let maxTextBytes = 1 << 20
    /// Deepest accepted nesting of parentheses and of type derivations (pointer levels, function types).
    public static let maxNestingDepth = 64
    /// Most declarations (functions, struct definitions, forward declarations, typedef names) in one text.
    public static let maxDeclarations = 4096
    /// Largest element count accepted in `SPACE_LEN(n)` and as an array parameter's size (2^30).
    public static let maxFixedLength = 1 << 30

    /// Parses several declarations in one text, e.g.
    /// `double cos(double); int32_t add(int32_t a, int32_t b); struct point { double x; double y; };`.
    ///
    /// Every declaration must be a named function prototype, a struct definition, a struct forward
    /// declaration (`struct db;`), or a typedef (`typedef unsigned long uLong;`,
    /// `typedef struct point { double x, y; } point_t;`, `typedef void (*cb_t)(int);`). Function names must
    /// be unique; they may be dotted (`double m.cos(double);`, kept as written in `CFunction.name` — mapping
    /// `.` to `_` for the symbol is the caller's job). A typedef name may be defined again only with the
    /// same type, and may not be a builtin type name. The `;` after the last declaration may be omitted. A
    /// struct used by value in a function (parameter or return, including inside callback types) must be
    /// defined somewhere in the text; a struct used by value as a field must be defined before that field.
    public static func parse(_ text: String) throws(DeclarationError) -> CDeclarations {
        var parser = try Parser(text: text, structs: [:], typedefs: [:])
        return try parser.parseDeclarations()
    }

    /// Parses one function type in manifest form, name optional: `"int32_t (int32_t a, int32_t b)"`,
    /// `"void (void)"`, `"double hypot(double, double)"`, `"SPACE_ERRNO double (double x)"`, optionally
    /// ending in `;`.
    ///
    /// `structs` are the struct definitions visible to it (may be empty); a struct used by value must be
    /// one of them. Struct definitions and typedefs inside `text` are not accepted.
    public static func parseFunctionType(
        _ text: String, structs: [String: CStruct] = [:]
    ) throws(DeclarationError) -> CFunctionType {
        var parser = try Parser(text: text, structs: structs, typedefs: [:])
        return try parser.parseSingleFunctionType()
    }

    /// Parses one function type in manifest form (see ``parseFunctionType(_:structs:)``) where the struct
    /// definitions and typedef names of `declarations` are visible, e.g. `"uLong (const Bytef *buf, uLong
    /// len)"` after `typedef unsigned long uLong; typedef unsigned char Bytef;`. Only `structs` and
    /// `typedefs` of `declarations` are used.
    public static func parseFunctionType(
        _ text: String, declarations: CDeclarations
    ) throws(DeclarationError) -> CFunctionType {
        var parser = try Parser(text: text, structs: declarations.structs, typedefs: declarations.typedefs)
        return try parser.parseSingleFunctionType()
    }
}

// MARK: - Lexer

/// One token: its kind and where it is.
private struct Token {
    enum Kind: Equatable {
        case identifier
        case number
        /// A single ASCII punctuation character.
        case punct(UInt8)
        /// `...`
        case ellipsis
        case endOfInput
    }

    var kind: Kind
    /// Byte range in the text.
    var start: Int
    var end: Int
    /// 1-based line and column (in characters).
    var line: Int
    var column: Int

    func isPunct(_ character: Character) -> Bool {
        kind == .punct(character.asciiValue ?? 0)
    }
}

/// Turns UTF-8 bytes into tokens on demand, skipping whitespace, comments and preprocessor lines.
private struct Lexer {
    let bytes: [UInt8]
    private var position = 0
    private var line = 1
    private var column = 1
    /// True until the first token of the current line: a `#` here starts a preprocessor line.
    private var atLineStart = true

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    func text(of token: Token) -> String {
        String(decoding: bytes[token.start..<token.end], as: UTF8.self)
    }

    /// Advances one byte, keeping line and column current.
    private mutating func bump() {
        let byte = bytes[position]
        position += 1
        if byte == UInt8(ascii: "\n") {
            line += 1
            column = 1
            atLineStart = true
        } else if byte & 0xC0 != 0x80 {
            // Count characters, not bytes: UTF-8 continuation bytes do not start a column.
            column += 1
        }
    }

    /// The byte `ahead` bytes past the current position, if any.
    private func peekByte(_ ahead: Int = 0) -> UInt8? {
        let index = position + ahead
        return index < bytes.count ? bytes[index] : nil
    }

    private func error(_ message: String, line: Int, column: Int, offset: Int) -> DeclarationError {
        DeclarationError(message: message, line: line, column: column, offset: offset)
    }

    mutating func next() throws(DeclarationError) -> Token {
        try skipTrivia()
        let start = position
        let startLine = line
        let startColumn = column
        func token(_ kind: Token.Kind) -> Token {
            Token(kind: kind, start: start, end: position, line: startLine, column: startColumn)
        }
        guard let byte = peekByte() else {
            return token(.endOfInput)
        }
        atLineStart = false
        if isIdentifierStart(byte) {
            while let next = peekByte(), isIdentifierContinue(next) { bump() }
            // A dotted name (`math.add`) is one token; only function names may use it.
            while peekByte() == UInt8(ascii: "."), let after = peekByte(1), isIdentifierStart(after) {
                bump()
                while let next = peekByte(), isIdentifierContinue(next) { bump() }
            }
            return token(.identifier)
        }
        if isDigit(byte) {
            while let next = peekByte(), isIdentifierContinue(next) { bump() }
            return token(.number)
        }
        if byte == UInt8(ascii: "."), peekByte(1) == UInt8(ascii: "."), peekByte(2) == UInt8(ascii: ".") {
            bump(); bump(); bump()
            return token(.ellipsis)
        }
        if byte > 0x20 && byte < 0x7F {
            bump()
            return token(.punct(byte))
        }
        let message: String
        if byte >= 0x80 {
            message = "unexpected non-ASCII character (byte 0x\(hex(byte)))"
        } else {
            message = "unexpected control character (byte 0x\(hex(byte)))"
        }
        throw error(message, line: startLine, column: startColumn, offset: start)
    }

    private mutating func skipTrivia() throws(DeclarationError) {
        while let byte = peekByte() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0x0B, 0x0C:
                bump()
            case UInt8(ascii: "/") where peekByte(1) == UInt8(ascii: "/"):
                while let next = peekByte(), next != UInt8(ascii: "\n") { bump() }
            case UInt8(ascii: "/") where peekByte(1) == UInt8(ascii: "*"):
                let startLine = line
                let startColumn = column
                let start = position
                bump(); bump()
                var closed = false
                while let next = peekByte() {
                    if next == UInt8(ascii: "*"), peekByte(1) == UInt8(ascii: "/") {
                        bump(); bump()
                        closed = true
                        break
                    }
                    bump()
                }
                if !closed {
                    throw error(
                        "unterminated comment: expected '*/' before end of input",
                        line: startLine, column: startColumn, offset: start)
                }
            case UInt8(ascii: "#") where atLineStart:
                // A preprocessor line (`#include`, `#ifndef`, ...): skipped, with `\` continuations.
                while let next = peekByte(), next != UInt8(ascii: "\n") {
                    if next == UInt8(ascii: "\\") {
                        bump()
                        if peekByte() == UInt8(ascii: "\r") { bump() }
                        if peekByte() == UInt8(ascii: "\n") { bump() }
                        continue
                    }
                    bump()
                }
            default:
                return
            }
        }
    }

    private func isIdentifierStart(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || byte == UInt8(ascii: "_")
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private func isIdentifierContinue(_ byte: UInt8) -> Bool {
        isIdentifierStart(byte) || isDigit(byte)
    }
}

private func hex(_ byte: UInt8) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F"]
    return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0F)])
}

// MARK: - Parser

/// The words of the type-specifier grammar.
private enum TypeWord: String {
    case void, bool, _Bool, char, short, int, long, signed, unsigned, float, double

    /// `bool` and `_Bool` are the same specifier.
    var canonical: TypeWord { self == ._Bool ? .bool : self }

    /// Whether `self` may appear in one specifier list with `other` (both canonical, different).
    func combines(with other: TypeWord) -> Bool {
        switch (self, other) {
        case (.char, .signed), (.char, .unsigned), (.signed, .char), (.unsigned, .char): return true
        case (.short, .signed), (.short, .unsigned), (.short, .int),
            (.signed, .short), (.unsigned, .short), (.int, .short):
            return true
        case (.int, .signed), (.int, .unsigned), (.int, .long),
            (.signed, .int), (.unsigned, .int), (.long, .int):
            return true
        case (.long, .signed), (.long, .unsigned), (.signed, .long), (.unsigned, .long): return true
        default: return false
        }
    }
}

/// The annotation words (empty macros in the plugin SDK header).
private enum Annotation: String {
    case inDirection = "SPACE_IN"
    case outDirection = "SPACE_OUT"
    case inoutDirection = "SPACE_INOUT"
    case length = "SPACE_LEN"
    case release = "SPACE_RELEASE"
    case scoped = "SPACE_SCOPED"
    case errno = "SPACE_ERRNO"
    case free = "SPACE_FREE"

    /// True for the annotations that describe a parameter; the others describe a function.
    var isParameterAnnotation: Bool {
        switch self {
        case .errno, .free: return false
        default: return true
        }
    }
}

private let qualifierWords: Set<String> = ["const", "volatile", "restrict", "__restrict", "__restrict__"]
private let storageWords: Set<String> = ["extern", "static", "inline", "__inline", "__inline__", "_Noreturn"]
private let otherReservedWords: Set<String> = ["struct", "union", "enum", "typedef"]

/// Where a specifier list appears; decides which words are allowed.
private enum SpecifierContext {
    case topLevel
    case functionType
    case parameter
    case field
    case typedef

    var allowsStorageWords: Bool { self == .topLevel || self == .functionType }
    var allowsStructDefinitions: Bool { self == .topLevel || self == .typedef }
    var allowsFunctionAnnotations: Bool { self == .topLevel || self == .functionType }

    /// `"a parameter"`, `"a field"`, ... for messages.
    var noun: String {
        switch self {
        case .topLevel: return "a declaration"
        case .functionType: return "a function type"
        case .parameter: return "a parameter"
        case .field: return "a struct field"
        case .typedef: return "a typedef"
        }
    }
}

/// A `SPACE_LEN(…)` argument before it is resolved.
private enum LengthSpec {
    /// A parameter name, resolved to an index once the parameter list is closed.
    case name(String)
    case fixed(Int)
}

/// The annotations found in one specifier list, each with the token that wrote it.
private struct Annotations {
    var direction: (value: CDirection, token: Token)?
    var length: (value: LengthSpec, token: Token)?
    var release: Token?
    var scoped: Token?
    var errno: Token?
    var free: (name: String, token: Token)?
}

/// The result of a specifier list: the base type and whether it is const.
private struct Specifiers {
    var type: CType
    var isConst: Bool
    /// Nesting depth of `type` (non-zero for a typedef name that stands for a pointer).
    var depth: Int
    /// First token of the list, annotations aside (for error positions).
    var start: Token
    /// True when the list was only `struct NAME` (possibly with a body) — may stand alone before `;`.
    var isStructTag: Bool
    var annotations: Annotations
}

/// One step of a declarator, in the order it is applied to the base type.
private enum Derivation {
    /// `*`, with `isConst` the qualifier on the pointer itself.
    case pointer(isConst: Bool)
    /// `( parameters )`; `depth` is the deepest parameter type.
    /// `hasPrototype` is false for an empty list `()`, which in a function pointer type means "no
    /// prototype" (the caller's `cb:N` gives the arity).
    case function(parameters: [CParameter], isVariadic: Bool, hasPrototype: Bool, depth: Int)
    /// `[ size ]`, with the size when one was written.
    case array(count: Int?)
}

private struct Declarator {
    var name: Token?
    /// Where a name would have been (for "expected a name" errors).
    var nameSlot: Token
    var derivations: [Derivation]
}

/// An intermediate type while applying derivations.
private enum Derived {
    /// A value type, whether it is const-qualified, and its nesting depth.
    case value(CType, isConst: Bool, depth: Int)
    case function(CFunctionType, depth: Int)
    /// An array of the element (only legal as a parameter, where it decays to a pointer), with its size.
    case array(CType, isConst: Bool, depth: Int, count: Int?)
}

/// A by-value struct use in a function signature, checked once all definitions are known.
private struct StructUse {
    var name: String
    var token: Token
}

/// A `SPACE_LEN(name)` waiting for its parameter list to close.
private struct PendingLength {
    /// Index of the annotated parameter.
    var index: Int
    var name: String
    /// The `SPACE_LEN` token.
    var token: Token
}

/// Nesting depth of a type as `Parser.apply` counts it: one per pointer or function-pointer level.
private func nestingDepth(of type: CType) -> Int {
    switch type {
    case .pointer(let pointee, _):
        return nestingDepth(of: pointee) + 1
    case .functionPointer(let function):
        var deepest = nestingDepth(of: function.returnType)
        for parameter in function.parameters {
            deepest = max(deepest, nestingDepth(of: parameter.type))
        }
        return deepest + 1
    default:
        return 0
    }
}

private struct Parser {
    var lexer: Lexer
    var token: Token
    var lookahead: Token?
    /// Current parenthesis nesting.
    var depth = 0
    /// Definitions visible so far (given ones plus those parsed).
    var structs: [String: CStruct]
    /// Definitions parsed from this text (the `structs` of the result).
    var definedStructs: [String: CStruct] = [:]
    var structUses: [StructUse] = []
    var declarationCount = 0
    /// Typedef names visible so far (given ones plus those parsed), with the nesting depth of each type.
    var typedefs: [String: (type: CType, depth: Int)]
    /// Typedefs parsed from this text (the `typedefs` of the result).
    var definedTypedefs: [String: CType] = [:]
    /// Names of the functions declared so far.
    var functionNames: Set<String> = []

    init(text: String, structs: [String: CStruct], typedefs: [String: CType]) throws(DeclarationError) {
        let count = text.utf8.count
        if count > DeclarationParser.maxTextBytes {
            throw DeclarationError(
                message: "declaration text is too long: \(count) bytes (limit \(DeclarationParser.maxTextBytes))",
                line: 1, column: 1, offset: 0)
        }
        lexer = Lexer(bytes: Array(text.utf8))
        token = Token(kind: .endOfInput, start: 0, end: 0, line: 1, column: 1)
        self.structs = structs
        var visible: [String: (type: CType, depth: Int)] = [:]
        for (name, type) in typedefs {
            visible[name] = (type, nestingDepth(of: type))
        }
        self.typedefs = visible
        token = try lexer.next()
    }

    // MARK: Token helpers

    mutating func advance() throws(DeclarationError) {
        if let next = lookahead {
            token = next
            lookahead = nil
        } else {
            token = try lexer.next()
        }
    }

    mutating func peek() throws(DeclarationError) -> Token {
        if let next = lookahead { return next }
        let next = try lexer.next()
        lookahead = next
        return next
    }

    func text(_ token: Token) -> String { lexer.text(of: token) }

    /// `'x'` quoted for messages (shortened when long), or `end of input`.
    func describe(_ token: Token) -> String {
        if token.kind == .endOfInput { return "end of input" }
        return quote(text(token))
    }

    func quote(_ text: String) -> String {
        if text.count > 40 { return "'" + String(text.prefix(40)) + "…'" }
        return "'" + text + "'"
    }

    func error(_ message: String, at token: Token) -> DeclarationError {
        DeclarationError(message: message, line: token.line, column: token.column, offset: token.start)
    }

    func expected(_ what: String, at token: Token) -> DeclarationError {
        error("expected \(what), found \(describe(token))", at: token)
    }

    mutating func expect(_ character: Character, _ context: String) throws(DeclarationError) {
        guard token.isPunct(character) else {
            throw expected("'\(character)' \(context)", at: token)
        }
        try advance()
    }

    func isWord(_ token: Token, _ word: String) -> Bool {
        token.kind == .identifier && text(token) == word
    }

    /// Identifiers that are part of the type grammar and so cannot be names.
    func isReserved(_ word: String) -> Bool {
        TypeWord(rawValue: word) != nil || CInteger.typedefs[word] != nil || qualifierWords.contains(word)
            || storageWords.contains(word) || otherReservedWords.contains(word) || Annotation(rawValue: word) != nil
    }

    func isName(_ token: Token) -> Bool {
        token.kind == .identifier && !isReserved(text(token))
    }

    /// Dotted names (`math.add`) are function names only.
    func rejectDotted(_ token: Token, _ role: String) throws(DeclarationError) {
        if text(token).contains(".") {
            throw error("\(quote(text(token))) cannot be \(role): dotted names are only allowed for functions", at: token)
        }
    }

    mutating func enterParenthesis() throws(DeclarationError) {
        depth += 1
        if depth > DeclarationParser.maxNestingDepth {
            throw error("nesting is too deep (limit \(DeclarationParser.maxNestingDepth))", at: token)
        }
    }

    mutating func countDeclaration(at token: Token) throws(DeclarationError) {
        declarationCount += 1
        if declarationCount > DeclarationParser.maxDeclarations {
            throw error("too many declarations (limit \(DeclarationParser.maxDeclarations))", at: token)
        }
    }

    // MARK: Entry points

    mutating func parseDeclarations() throws(DeclarationError) -> CDeclarations {
        var functions: [CFunction] = []
        while token.kind != .endOfInput {
            if token.isPunct(";") {  // stray empty declaration
                try advance()
                continue
            }
            if isWord(token, "typedef") {
                try parseTypedef()
                if token.kind == .endOfInput { break }  // the last ';' may be omitted
                try expect(";", "after typedef")
                continue
            }
            let specifiers = try parseSpecifiers(.topLevel)
            if specifiers.isStructTag && token.isPunct(";") {
                // `struct point { ... };` or a forward declaration `struct db;`.
                if let annotation = firstFunctionAnnotation(specifiers.annotations) {
                    throw error(
                        "\(text(annotation)) is only valid on a function declaration, not on a struct declaration",
                        at: annotation)
                }
                try countDeclaration(at: specifiers.start)
                try advance()
                continue
            }
            while true {
                let declaratorStart = token
                let declarator = try parseDeclarator()
                try countDeclaration(at: declaratorStart)
                guard let nameToken = declarator.name else {
                    throw expected("a function name", at: declarator.nameSlot)
                }
                let name = text(nameToken)
                let built = try apply(declarator.derivations, to: specifiers, at: declaratorStart)
                guard case .function(var function, _) = built else {
                    throw notAFunction(built, named: name, at: nameToken)
                }
                // A declared function's `()` means no parameters (C23); only a callback slot's
                // `()` leaves the arity to the caller.
                function.hasPrototype = true
                if token.isPunct("{") {
                    throw error(
                        "function definitions are not supported; end the declaration of '\(name)' with ';'",
                        at: token)
                }
                if functionNames.contains(name) {
                    throw error("duplicate declaration of function '\(name)'", at: nameToken)
                }
                if typedefs[name] != nil {
                    throw error("'\(name)' is a typedef name; it cannot also name a function", at: nameToken)
                }
                try applyFunctionAnnotations(specifiers.annotations, to: &function, named: name)
                functionNames.insert(name)
                functions.append(CFunction(name: name, type: function))
                guard token.isPunct(",") else { break }
                try advance()
            }
            if token.kind == .endOfInput { break }  // the last ';' may be omitted
            try expect(";", "after declaration")
        }
        try checkStructUses()
        return CDeclarations(functions: functions, structs: definedStructs, typedefs: definedTypedefs)
    }

    /// Parses `typedef specifiers declarator, ...` (the current token is `typedef`), up to the `;`.
    mutating func parseTypedef() throws(DeclarationError) {
        try advance()
        let specifiers = try parseSpecifiers(.typedef)
        while true {
            let declaratorStart = token
            let declarator = try parseDeclarator()
            try countDeclaration(at: declaratorStart)
            guard let nameToken = declarator.name else {
                let slot = declarator.nameSlot
                if slot.kind == .identifier, isReserved(text(slot)) {
                    throw error(
                        "\(quote(text(slot))) is a builtin type name; a typedef cannot redefine it", at: slot)
                }
                throw expected("a typedef name", at: slot)
            }
            let name = text(nameToken)
            try rejectDotted(nameToken, "a typedef name")
            let built = try apply(declarator.derivations, to: specifiers, at: declaratorStart)
            let type: CType
            let typeDepth: Int
            switch built {
            case .value(let value, let isConst, let valueDepth):
                if isConst {
                    throw error(
                        "typedef '\(name)' of a const-qualified type is not supported; write 'const' where '\(name)' is used",
                        at: nameToken)
                }
                type = value
                typeDepth = valueDepth
            case .array:
                throw error("array typedefs are not supported (typedef '\(name)')", at: nameToken)
            case .function(let function, _):
                throw error(
                    "typedef '\(name)' names a function type, which is not supported; use a function pointer: "
                        + function.returnType.declaration(named: "(*\(name))(...)"),
                    at: nameToken)
            }
            if let existing = typedefs[name], existing.type != type {
                throw error("typedef '\(name)' is already defined as '\(existing.type)'", at: nameToken)
            }
            if functionNames.contains(name) {
                throw error("'\(name)' is already declared as a function; it cannot also be a typedef name", at: nameToken)
            }
            typedefs[name] = (type, typeDepth)
            definedTypedefs[name] = type
            guard token.isPunct(",") else { break }
            try advance()
        }
    }

    mutating func parseSingleFunctionType() throws(DeclarationError) -> CFunctionType {
        if token.kind == .endOfInput {
            throw expected("a function type like 'int (int a)'", at: token)
        }
        let specifiers = try parseSpecifiers(.functionType)
        let declaratorStart = token
        let declarator = try parseDeclarator()
        if declarator.derivations.isEmpty {
            throw expected("a parameter list '(...)' after the return type", at: token)
        }
        let built = try apply(declarator.derivations, to: specifiers, at: declaratorStart)
        guard case .function(var function, _) = built else {
            let what: String
            switch built {
            case .value(let type, _, _): what = "'\(type)'"
            case .array: what = "an array"
            case .function: what = ""
            }
            throw error("expected a function type, found \(what)", at: declaratorStart)
        }
        function.hasPrototype = true
        try applyFunctionAnnotations(
            specifiers.annotations, to: &function, named: declarator.name.map { text($0) })
        if token.isPunct(";") { try advance() }
        if token.kind != .endOfInput {
            throw expected("end of input after the function type", at: token)
        }
        try checkStructUses()
        return function
    }

    func notAFunction(_ built: Derived, named name: String, at token: Token) -> DeclarationError {
        let what: String
        switch built {
        case .value(let type, _, _): what = "a variable of type '\(type)'"
        case .array: what = "an array"
        case .function: what = "a function"
        }
        return error("'\(name)' is declared as \(what); only function declarations are supported", at: token)
    }

    mutating func checkStructUses() throws(DeclarationError) {
        for use in structUses where structs[use.name] == nil {
            throw error(
                "struct '\(use.name)' is used by value but not defined; define it or pass a pointer",
                at: use.token)
        }
    }

    // MARK: Annotations

    /// The first `SPACE_ERRNO` / `SPACE_FREE` token of a list, if any.
    func firstFunctionAnnotation(_ annotations: Annotations) -> Token? {
        let tokens = [annotations.errno, annotations.free?.token].compactMap { $0 }
        return tokens.min { $0.start < $1.start }
    }

    /// Sets `SPACE_ERRNO` / `SPACE_FREE` on the function being declared.
    func applyFunctionAnnotations(
        _ annotations: Annotations, to function: inout CFunctionType, named name: String?
    ) throws(DeclarationError) {
        if annotations.errno != nil { function.capturesErrno = true }
        if let free = annotations.free {
            guard case .pointer = function.returnType else {
                let label = name.map { "function '\($0)'" } ?? "the function"
                throw error(
                    "SPACE_FREE(\(free.name)) needs a function that returns a pointer; \(label) returns '\(function.returnType)'",
                    at: free.token)
            }
            function.freeFunction = free.name
        }
    }

    /// Parses one annotation word (the current token) into `annotations`, checking it is allowed here.
    mutating func parseAnnotation(
        _ annotation: Annotation, context: SpecifierContext, into annotations: inout Annotations
    ) throws(DeclarationError) {
        let annotationToken = token
        let word = annotation.rawValue
        if annotation.isParameterAnnotation {
            guard context == .parameter else {
                throw error("\(word) is only valid on a parameter", at: annotationToken)
            }
        } else if !context.allowsFunctionAnnotations {
            throw error(
                "\(word) is only valid at the start of a function declaration, not on \(context.noun)",
                at: annotationToken)
        }
        try advance()
        switch annotation {
        case .inDirection, .outDirection, .inoutDirection:
            let direction: CDirection =
                annotation == .inDirection ? .in : annotation == .outDirection ? .out : .inout
            if let existing = annotations.direction, existing.value != direction {
                throw error(
                    "\(word) conflicts with \(text(existing.token)): a parameter has one direction",
                    at: annotationToken)
            }
            annotations.direction = (direction, annotationToken)
        case .release:
            annotations.release = annotationToken
        case .scoped:
            annotations.scoped = annotationToken
        case .errno:
            annotations.errno = annotationToken
        case .length:
            if annotations.length != nil {
                throw error("duplicate SPACE_LEN on one parameter", at: annotationToken)
            }
            try expect("(", "after SPACE_LEN")
            let argument = token
            let value: LengthSpec
            if argument.kind == .number {
                guard let count = decimalCount(argument) else {
                    throw error(
                        "SPACE_LEN(\(text(argument))): a count must be a decimal number from 1 to \(DeclarationParser.maxFixedLength)",
                        at: argument)
                }
                value = .fixed(count)
            } else if isName(argument) {
                try rejectDotted(argument, "a parameter name")
                value = .name(text(argument))
            } else {
                throw expected("a parameter name or a count in SPACE_LEN(...)", at: argument)
            }
            try advance()
            try expect(")", "after the SPACE_LEN argument")
            annotations.length = (value, annotationToken)
        case .free:
            if annotations.free != nil {
                throw error("duplicate SPACE_FREE on one function", at: annotationToken)
            }
            try expect("(", "after SPACE_FREE")
            let argument = token
            guard isName(argument) else {
                throw expected("the name of a free function in SPACE_FREE(...)", at: argument)
            }
            if text(argument).contains(".") {
                throw error(
                    "SPACE_FREE(\(text(argument))): the free function must be a plain C identifier", at: argument)
            }
            try advance()
            try expect(")", "after the SPACE_FREE argument")
            annotations.free = (text(argument), annotationToken)
        }
    }

    /// The value of a decimal literal from 1 to `maxFixedLength` (no suffix, no leading zero), or nil.
    func decimalCount(_ token: Token) -> Int? {
        let digits = text(token)
        guard let first = digits.first, first != "0", digits.count <= 10 else { return nil }
        var value = 0
        for character in digits {
            guard character.isASCII, let digit = character.wholeNumberValue else { return nil }
            value = value * 10 + digit
        }
        return value <= DeclarationParser.maxFixedLength ? value : nil
    }

    /// Checks a parameter's annotations against its type and sets them on `parameter`. A `SPACE_LEN`
    /// naming another parameter is queued in `pending` until the list closes.
    func annotate(
        _ parameter: inout CParameter, index: Int, arrayCount: Int?, annotations: Annotations,
        pending: inout [PendingLength]
    ) throws(DeclarationError) {
        let label = parameter.name.map { "'\($0)'" } ?? "an unnamed parameter"
        var isDataPointer = false
        var isFunctionPointer = false
        switch parameter.type {
        case .pointer: isDataPointer = true
        case .functionPointer: isFunctionPointer = true
        default: break
        }
        func check(_ token: Token, _ what: String) throws(DeclarationError) {
            if isFunctionPointer {
                throw error("\(what) cannot be used on function pointer parameter \(label)", at: token)
            }
            if !isDataPointer {
                throw error("\(what) on \(label) needs a pointer parameter, not '\(parameter.type)'", at: token)
            }
        }
        if let direction = annotations.direction {
            try check(direction.token, text(direction.token))
            parameter.direction = direction.value
        }
        if let length = annotations.length {
            try check(length.token, "SPACE_LEN")
            switch length.value {
            case .fixed(let count):
                parameter.length = .fixed(count)
            case .name(let name):
                pending.append(PendingLength(index: index, name: name, token: length.token))
            }
        } else if let arrayCount {
            parameter.length = .fixed(arrayCount)
        }
        if let release = annotations.release {
            if !isDataPointer {
                throw error(
                    "SPACE_RELEASE on \(label) needs a pointer parameter (the handle), not '\(parameter.type)'",
                    at: release)
            }
            parameter.releasesHandle = true
        }
        if let scoped = annotations.scoped {
            if !isFunctionPointer {
                throw error("SPACE_SCOPED on \(label) needs a function pointer parameter (a callback), not '\(parameter.type)'", at: scoped)
            }
            parameter.isScoped = true
        }
    }

    /// Resolves `SPACE_LEN(name)` once every parameter of the list is known.
    func resolveLengths(_ pending: [PendingLength], in parameters: inout [CParameter]) throws(DeclarationError) {
        for length in pending {
            guard let target = parameters.firstIndex(where: { $0.name == length.name }) else {
                throw error("SPACE_LEN(\(length.name)): no parameter named '\(length.name)'", at: length.token)
            }
            if target == length.index {
                throw error(
                    "SPACE_LEN(\(length.name)) on '\(length.name)' names the parameter itself; name the parameter holding the count",
                    at: length.token)
            }
            let type = parameters[target].type
            var isCount = type.isInteger
            if case .pointer(to: .integer, _) = type { isCount = true }
            if !isCount {
                throw error(
                    "SPACE_LEN(\(length.name)): parameter '\(length.name)' must be an integer or a pointer to an integer, not '\(type)'",
                    at: length.token)
            }
            parameters[length.index].length = .parameter(target)
        }
    }

    // MARK: Specifiers

    mutating func parseSpecifiers(_ context: SpecifierContext) throws(DeclarationError) -> Specifiers {
        var start: Token? = nil
        var isConst = false
        /// Type words in the order written (each canonical word once; `long` once even for `long long`).
        var words: [(word: TypeWord, token: Token)] = []
        var longCount = 0
        var named: (type: CType, token: Token)? = nil
        var namedDepth = 0
        var structTag = false
        var annotations = Annotations()

        while token.kind == .identifier {
            let word = text(token)
            if let annotation = Annotation(rawValue: word) {
                try parseAnnotation(annotation, context: context, into: &annotations)
                continue  // parseAnnotation already advanced
            }
            if start == nil { start = token }
            if word == "const" {
                isConst = true
            } else if qualifierWords.contains(word) {
                // volatile / restrict: irrelevant to calls.
            } else if storageWords.contains(word) {
                guard context.allowsStorageWords else {
                    throw error("'\(word)' is not allowed in \(context == .field ? "a field" : context.noun)", at: token)
                }
            } else if word == "typedef" {
                switch context {
                case .topLevel:
                    throw error("'typedef' must come first in a declaration", at: token)
                case .functionType:
                    throw error("typedef is not allowed in a function type; define it with the declarations", at: token)
                default:
                    throw error("typedef is only allowed at the top level", at: token)
                }
            } else if word == "union" {
                throw error("union types are not supported", at: token)
            } else if word == "enum" {
                throw error("enum types are not supported; use int (or the enum's integer type)", at: token)
            } else if word == "struct" {
                if let other = named?.token ?? words.first?.token {
                    throw error("'struct' cannot be combined with '\(text(other))'", at: token)
                }
                let keyword = token
                let type = try parseStructSpecifier(context)
                named = (type, keyword)
                structTag = true
                continue  // parseStructSpecifier already advanced
            } else if context == .typedef, named != nil || !words.isEmpty,
                TypeWord(rawValue: word) != nil || CInteger.typedefs[word] != nil, try nextEndsDeclarator()
            {
                break  // `typedef int int;`: the typedef's name, which parseTypedef rejects
            } else if let typeWord = TypeWord(rawValue: word) {
                let canonical = typeWord.canonical
                if let other = named {
                    throw error("'\(word)' cannot be combined with '\(text(other.token))'", at: token)
                }
                if canonical == .long, longCount > 0 {
                    longCount += 1
                    if longCount > 2 {
                        throw error("'long long long' is too long", at: token)
                    }
                } else if words.contains(where: { $0.word == canonical }) {
                    throw error("duplicate '\(word)'", at: token)
                } else {
                    for other in words {
                        if (canonical == .double && other.word == .long)
                            || (canonical == .long && other.word == .double)
                        {
                            throw error("long double is not supported", at: token)
                        }
                        if !canonical.combines(with: other.word) {
                            throw error("'\(word)' cannot be combined with '\(text(other.token))'", at: token)
                        }
                    }
                    words.append((canonical, token))
                    if canonical == .long { longCount = 1 }
                }
            } else if let integer = CInteger.typedefs[word] {
                if let other = named?.token ?? words.first?.token {
                    throw error("'\(word)' cannot be combined with '\(text(other))'", at: token)
                }
                named = (.integer(integer), token)
            } else if !words.isEmpty || named != nil {
                break  // the declarator's name
            } else if let alias = typedefs[word] {
                named = (alias.type, token)
                namedDepth = alias.depth
            } else {
                throw error("unknown type \(quote(word))", at: token)
            }
            try advance()
        }

        let type: CType
        if let named {
            type = named.type
        } else if words.isEmpty {
            throw expected("a type", at: token)
        } else {
            type = Self.resolve(Set(words.map(\.word)), longCount: longCount)
        }
        return Specifiers(
            type: type, isConst: isConst, depth: namedDepth, start: start ?? token, isStructTag: structTag,
            annotations: annotations)
    }

    /// Whether the token after the current one is `;` or `,`.
    mutating func nextEndsDeclarator() throws(DeclarationError) -> Bool {
        let next = try peek()
        return next.isPunct(";") || next.isPunct(",")
    }

    /// The type named by a valid combination of type words.
    static func resolve(_ words: Set<TypeWord>, longCount: Int) -> CType {
        let isUnsigned = words.contains(.unsigned)
        if words.contains(.void) { return .void }
        if words.contains(.bool) { return .bool }
        if words.contains(.float) { return .float }
        if words.contains(.double) { return .double }
        if words.contains(.char) {
            if isUnsigned { return .integer(.unsignedChar) }
            if words.contains(.signed) { return .integer(.signedChar) }
            return .integer(.char)
        }
        if words.contains(.short) { return .integer(isUnsigned ? .unsignedShort : .short) }
        if longCount == 2 { return .integer(isUnsigned ? .unsignedLongLong : .longLong) }
        if longCount == 1 { return .integer(isUnsigned ? .unsignedLong : .long) }
        return .integer(isUnsigned ? .unsignedInt : .int)
    }

    /// Parses `struct NAME` or `struct NAME { fields }` (the current token is `struct`).
    mutating func parseStructSpecifier(_ context: SpecifierContext) throws(DeclarationError) -> CType {
        try advance()
        if token.isPunct("{") {
            throw error("anonymous structs are not supported; give the struct a name", at: token)
        }
        guard isName(token) else {
            throw expected("a struct name after 'struct'", at: token)
        }
        let nameToken = token
        let name = text(nameToken)
        try rejectDotted(nameToken, "a struct name")
        try advance()
        guard token.isPunct("{") else { return .structure(name) }

        guard context.allowsStructDefinitions else {
            throw error(
                "struct definitions are only allowed at the top level; define 'struct \(name)' separately",
                at: token)
        }
        if structs[name] != nil {
            throw error("struct '\(name)' is already defined", at: nameToken)
        }
        let brace = token
        try advance()
        var fields: [CField] = []
        var fieldNames: Set<String> = []
        while !token.isPunct("}") {
            if token.kind == .endOfInput {
                throw expected("'}' to end struct '\(name)'", at: token)
            }
            let specifiers = try parseSpecifiers(.field)
            while true {
                let declaratorStart = token
                let declarator = try parseDeclarator()
                guard let fieldToken = declarator.name else {
                    throw expected("a field name", at: declarator.nameSlot)
                }
                let fieldName = text(fieldToken)
                try rejectDotted(fieldToken, "a field name")
                let built = try apply(declarator.derivations, to: specifiers, at: declaratorStart)
                let type = try fieldType(built, name: fieldName, at: fieldToken)
                if fieldNames.contains(fieldName) {
                    throw error("duplicate field '\(fieldName)' in struct '\(name)'", at: fieldToken)
                }
                fieldNames.insert(fieldName)
                fields.append(CField(name: fieldName, type: type))
                guard token.isPunct(",") else { break }
                try advance()
            }
            try expect(";", "after field declaration")
        }
        if fields.isEmpty {
            throw error("struct '\(name)' has no fields", at: brace)
        }
        try advance()  // '}'
        let definition = CStruct(name: name, fields: fields)
        structs[name] = definition
        definedStructs[name] = definition
        return .structure(name)
    }

    func fieldType(_ built: Derived, name: String, at token: Token) throws(DeclarationError) -> CType {
        switch built {
        case .value(.void, _, _):
            throw error("field '\(name)' cannot have type void", at: token)
        case .value(.structure(let tag), _, _):
            if structs[tag] == nil {
                throw error(
                    "field '\(name)' has incomplete type 'struct \(tag)'; define the struct earlier or use a pointer",
                    at: token)
            }
            return .structure(tag)
        case .value(let type, _, _):
            return type
        case .array:
            throw error("array fields are not supported yet (field '\(name)')", at: token)
        case .function:
            throw error("field '\(name)' has a function type; use a function pointer '(*\(name))'", at: token)
        }
    }

    // MARK: Declarators

    /// Parses a declarator, named or abstract. Recursion happens only through parentheses, which
    /// `enterParenthesis` bounds.
    mutating func parseDeclarator() throws(DeclarationError) -> Declarator {
        var pointers: [Derivation] = []
        while token.isPunct("*") {
            try advance()
            var isConst = false
            while token.kind == .identifier {
                let word = text(token)
                if Annotation(rawValue: word) != nil {
                    throw error("\(word) must come before the type, with the declaration specifiers", at: token)
                }
                guard qualifierWords.contains(word) else { break }
                if word == "const" { isConst = true }
                try advance()
            }
            pointers.append(.pointer(isConst: isConst))
            if pointers.count > DeclarationParser.maxNestingDepth {
                throw error("too many pointer levels (limit \(DeclarationParser.maxNestingDepth))", at: token)
            }
        }

        var name: Token? = nil
        var nameSlot = token
        var inner: [Derivation] = []
        if isName(token) {
            name = token
            try advance()
        } else if token.isPunct("("), try isGroupingParenthesis() {
            try enterParenthesis()
            try advance()
            let nested = try parseDeclarator()
            try expect(")", "after declarator")
            depth -= 1
            name = nested.name
            nameSlot = nested.nameSlot
            inner = nested.derivations
        }

        var suffixes: [Derivation] = []
        while true {
            if token.isPunct("(") {
                try enterParenthesis()
                try advance()
                suffixes.append(try parseParameterList())
                depth -= 1
            } else if token.isPunct("[") {
                try advance()
                while token.kind == .identifier,
                    qualifierWords.contains(text(token)) || isWord(token, "static")
                {
                    try advance()
                }
                var count: Int? = nil
                if token.kind == .number {
                    count = try arraySize(token)
                    try advance()
                }
                try expect("]", "after array size")
                suffixes.append(.array(count: count))
            } else {
                break
            }
            if suffixes.count > DeclarationParser.maxNestingDepth {
                throw error("too many declarator suffixes (limit \(DeclarationParser.maxNestingDepth))", at: token)
            }
        }
        return Declarator(name: name, nameSlot: nameSlot, derivations: pointers + suffixes.reversed() + inner)
    }

    /// At a `(` after the pointers of a declarator: does it group a nested declarator (`(*cb)`, `(name)`)
    /// rather than open a parameter list? A typedef name after `(` starts a parameter list, as in C.
    mutating func isGroupingParenthesis() throws(DeclarationError) -> Bool {
        let next = try peek()
        if next.isPunct("*") || next.isPunct("(") { return true }
        return isName(next) && typedefs[text(next)] == nil
    }

    /// The value of an array size literal (decimal, octal or hex, with optional `u`/`l` suffixes), which
    /// must be from 1 to `maxFixedLength`.
    func arraySize(_ token: Token) throws(DeclarationError) -> Int {
        var digits = Substring(text(token))
        while let last = digits.last, last == "u" || last == "U" || last == "l" || last == "L" {
            digits.removeLast()
        }
        var radix = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            radix = 16
            digits = digits.dropFirst(2)
        } else if digits.count > 1 && digits.hasPrefix("0") {
            radix = 8
            digits = digits.dropFirst()
        }
        var value = 0
        var isValid = !digits.isEmpty
        for character in digits {
            guard character.isASCII, let digit = character.hexDigitValue, digit < radix else {
                isValid = false
                break
            }
            if value <= DeclarationParser.maxFixedLength {
                value = value * radix + digit
            }
        }
        if !isValid {
            throw error("invalid array size \(quote(text(token)))", at: token)
        }
        if value < 1 || value > DeclarationParser.maxFixedLength {
            throw error(
                "array size \(quote(text(token))) is out of range (1 to \(DeclarationParser.maxFixedLength))", at: token)
        }
        return value
    }

    /// Parses parameters after `(` through `)`, with their annotations.
    mutating func parseParameterList() throws(DeclarationError) -> Derivation {
        var parameters: [CParameter] = []
        var names: Set<String> = []
        var maxDepth = 0
        var pending: [PendingLength] = []
        var isVariadic = false
        if token.isPunct(")") {
            try advance()
            return .function(parameters: [], isVariadic: false, hasPrototype: false, depth: 0)
        }
        if isWord(token, "void"), try peek().isPunct(")") {
            try advance()
            try advance()
            return .function(parameters: [], isVariadic: false, hasPrototype: true, depth: 0)
        }
        while true {
            if token.kind == .ellipsis {
                try advance()
                try expect(")", "after '...'")
                isVariadic = true
                break
            }
            let specifiers = try parseSpecifiers(.parameter)
            let declaratorStart = token
            let declarator = try parseDeclarator()
            let built = try apply(declarator.derivations, to: specifiers, at: declaratorStart)
            let name = declarator.name.map { text($0) }
            if let nameToken = declarator.name { try rejectDotted(nameToken, "a parameter name") }
            let (type, typeDepth) = try parameterType(built, name: name, specifiers: specifiers)
            if let name {
                if names.contains(name) {
                    throw error("duplicate parameter name '\(name)'", at: declarator.name ?? declaratorStart)
                }
                names.insert(name)
            }
            var parameter = CParameter(name: name, type: type)
            var arrayCount: Int? = nil
            if case .array(_, _, _, let count) = built { arrayCount = count }
            try annotate(
                &parameter, index: parameters.count, arrayCount: arrayCount, annotations: specifiers.annotations,
                pending: &pending)
            parameters.append(parameter)
            maxDepth = max(maxDepth, typeDepth)
            guard token.isPunct(",") else {
                try expect(")", "after parameter list")
                break
            }
            try advance()
        }
        try resolveLengths(pending, in: &parameters)
        return .function(parameters: parameters, isVariadic: isVariadic, hasPrototype: true, depth: maxDepth)
    }

    /// The adjusted type of a parameter: arrays decay to pointers, functions to function pointers.
    mutating func parameterType(
        _ built: Derived, name: String?, specifiers: Specifiers
    ) throws(DeclarationError) -> (CType, Int) {
        switch built {
        case .value(.void, _, _):
            let label = name.map { "parameter '\($0)'" } ?? "a parameter"
            throw error("\(label) cannot have type void; only '(void)' alone means no parameters", at: specifiers.start)
        case .value(let type, _, let depth):
            if case .structure(let tag) = type {
                structUses.append(StructUse(name: tag, token: specifiers.start))
            }
            return (type, depth)
        case .array(.void, _, _, _):
            throw error("array of void is not a valid type", at: specifiers.start)
        case .array(let element, let isConst, let depth, _):
            try checkDepth(depth + 1, at: specifiers.start)
            return (.pointer(to: element, isConst: isConst), depth + 1)
        case .function(let function, let depth):
            try checkDepth(depth + 1, at: specifiers.start)
            return (.functionPointer(function), depth + 1)
        }
    }

    func checkDepth(_ depth: Int, at token: Token) throws(DeclarationError) {
        if depth > DeclarationParser.maxNestingDepth {
            throw error("type is nested too deeply (limit \(DeclarationParser.maxNestingDepth))", at: token)
        }
    }

    /// Applies a declarator's derivations to the base type, innermost-last as C reads them.
    mutating func apply(
        _ derivations: [Derivation], to specifiers: Specifiers, at start: Token
    ) throws(DeclarationError) -> Derived {
        var current = Derived.value(specifiers.type, isConst: specifiers.isConst, depth: specifiers.depth)
        for derivation in derivations {
            switch (derivation, current) {
            case (.pointer(let pointerConst), .value(let type, let isConst, let depth)):
                try checkDepth(depth + 1, at: start)
                current = .value(.pointer(to: type, isConst: isConst), isConst: pointerConst, depth: depth + 1)
            case (.pointer(let pointerConst), .function(let function, let depth)):
                try checkDepth(depth + 1, at: start)
                current = .value(.functionPointer(function), isConst: pointerConst, depth: depth + 1)
            case (.pointer, .array):
                throw error("pointers to arrays are not supported", at: start)
            case (.function(let parameters, let isVariadic, let hasPrototype, let parameterDepth), .value(let type, _, let depth)):
                if case .structure(let tag) = type {
                    structUses.append(StructUse(name: tag, token: specifiers.start))
                }
                let combined = max(depth, parameterDepth)
                try checkDepth(combined, at: start)
                current = .function(
                    CFunctionType(returnType: type, parameters: parameters, isVariadic: isVariadic,
                                  hasPrototype: hasPrototype),
                    depth: combined)
            case (.function, .function):
                throw error("a function cannot return a function; return a function pointer instead", at: start)
            case (.function, .array):
                throw error("a function cannot return an array", at: start)
            case (.array(let count), .value(let type, let isConst, let depth)):
                current = .array(type, isConst: isConst, depth: depth, count: count)
            case (.array, .function):
                throw error("arrays of functions are not valid; use an array of function pointers", at: start)
            case (.array, .array):
                throw error("multidimensional arrays are not supported", at: start)
            }
        }
        return current
    }
}
