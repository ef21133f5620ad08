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
/// abstract); array and function parameters (decayed to pointers); variadic functions; `struct` references
/// and definitions. `extern`/`static`/`inline` are ignored, as are comments and preprocessor lines
/// (`#include`, include guards). Not supported, with a clear error: `typedef`, `union`, `enum`,
/// `long double`, array fields, function definitions, variables.
///
/// Limits: text at most ``maxTextBytes`` bytes, nesting (parentheses, pointers, nested function types) at
/// most ``maxNestingDepth``, at most ``maxDeclarations`` declarations.
public enum DeclarationParser {
    /// Longest accepted text, in UTF-8 bytes (1 MiB).
    public static let maxTextBytes = 1 << 20
    /// Deepest accepted nesting of parentheses and of type derivations (pointer levels, function types).
    public static let maxNestingDepth = 64
    /// Most declarations (functions, struct definitions, forward declarations) in one text.
    public static let maxDeclarations = 4096

    /// Parses several declarations in one text, e.g.
    /// `double cos(double); int32_t add(int32_t a, int32_t b); struct point { double x; double y; };`.
    ///
    /// Every declaration must be a named function prototype, a struct definition, or a struct forward
    /// declaration (`struct db;`). Function names must be unique; they may be dotted (`double m.cos(double);`,
    /// kept as written in `CFunction.name` — mapping `.` to `_` for the symbol is the caller's job). The `;` after the last declaration may
    /// be omitted. A struct used by value in a function (parameter or return, including inside callback
    /// types) must be defined somewhere in the text; a struct used by value as a field must be defined
    /// before that field.
    public static func parse(_ text: String) throws(DeclarationError) -> CDeclarations {
        var parser = try Parser(text: text, structs: [:])
        return try parser.parseDeclarations()
    }

    /// Parses one function type in manifest form, name optional: `"int32_t (int32_t a, int32_t b)"`,
    /// `"void (void)"`, `"double hypot(double, double)"`, optionally ending in `;`.
    ///
    /// `structs` are the struct definitions visible to it (may be empty); a struct used by value must be
    /// one of them. Struct definitions inside `text` are not accepted.
    public static func parseFunctionType(
        _ text: String, structs: [String: CStruct] = [:]
    ) throws(DeclarationError) -> CFunctionType {
        var parser = try Parser(text: text, structs: structs)
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

private let qualifierWords: Set<String> = ["const", "volatile", "restrict", "__restrict", "__restrict__"]
private let storageWords: Set<String> = ["extern", "static", "inline", "__inline", "__inline__", "_Noreturn"]
private let otherReservedWords: Set<String> = ["struct", "union", "enum", "typedef"]

/// Where a specifier list appears; decides which words are allowed.
private enum SpecifierContext {
    case topLevel
    case functionType
    case parameter
    case field

    var allowsStorageWords: Bool { self == .topLevel || self == .functionType }
    var allowsStructDefinitions: Bool { self == .topLevel }
}

/// The result of a specifier list: the base type and whether it is const.
private struct Specifiers {
    var type: CType
    var isConst: Bool
    /// First token of the list (for error positions).
    var start: Token
    /// True when the list was only `struct NAME` (possibly with a body) — may stand alone before `;`.
    var isStructTag: Bool
}

/// One step of a declarator, in the order it is applied to the base type.
private enum Derivation {
    /// `*`, with `isConst` the qualifier on the pointer itself.
    case pointer(isConst: Bool)
    /// `( parameters )`; `depth` is the deepest parameter type.
    case function(parameters: [CParameter], isVariadic: Bool, depth: Int)
    /// `[ size ]`.
    case array
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
    /// An array of the element (only legal as a parameter, where it decays to a pointer).
    case array(CType, isConst: Bool, depth: Int)
}

/// A by-value struct use in a function signature, checked once all definitions are known.
private struct StructUse {
    var name: String
    var token: Token
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

    init(text: String, structs: [String: CStruct]) throws(DeclarationError) {
        let count = text.utf8.count
        if count > DeclarationParser.maxTextBytes {
            throw DeclarationError(
                message: "declaration text is too long: \(count) bytes (limit \(DeclarationParser.maxTextBytes))",
                line: 1, column: 1, offset: 0)
        }
        lexer = Lexer(bytes: Array(text.utf8))
        token = Token(kind: .endOfInput, start: 0, end: 0, line: 1, column: 1)
        self.structs = structs
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
            || storageWords.contains(word) || otherReservedWords.contains(word)
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
        var functionNames: Set<String> = []
        while token.kind != .endOfInput {
            if token.isPunct(";") {  // stray empty declaration
                try advance()
                continue
            }
            let specifiers = try parseSpecifiers(.topLevel)
            if specifiers.isStructTag && token.isPunct(";") {
                // `struct point { ... };` or a forward declaration `struct db;`.
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
                guard case .function(let function, _) = built else {
                    throw notAFunction(built, named: name, at: nameToken)
                }
                if token.isPunct("{") {
                    throw error(
                        "function definitions are not supported; end the declaration of '\(name)' with ';'",
                        at: token)
                }
                if functionNames.contains(name) {
                    throw error("duplicate declaration of function '\(name)'", at: nameToken)
                }
                functionNames.insert(name)
                functions.append(CFunction(name: name, type: function))
                guard token.isPunct(",") else { break }
                try advance()
            }
            if token.kind == .endOfInput { break }  // the last ';' may be omitted
            try expect(";", "after declaration")
        }
        try checkStructUses()
        return CDeclarations(functions: functions, structs: definedStructs)
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
        guard case .function(let function, _) = built else {
            let what: String
            switch built {
            case .value(let type, _, _): what = "'\(type)'"
            case .array: what = "an array"
            case .function: what = ""
            }
            throw error("expected a function type, found \(what)", at: declaratorStart)
        }
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

    // MARK: Specifiers

    mutating func parseSpecifiers(_ context: SpecifierContext) throws(DeclarationError) -> Specifiers {
        let start = token
        var isConst = false
        /// Type words in the order written (each canonical word once; `long` once even for `long long`).
        var words: [(word: TypeWord, token: Token)] = []
        var longCount = 0
        var named: (type: CType, token: Token)? = nil
        var structTag = false

        while token.kind == .identifier {
            let word = text(token)
            if word == "const" {
                isConst = true
            } else if qualifierWords.contains(word) {
                // volatile / restrict: irrelevant to calls.
            } else if storageWords.contains(word) {
                guard context.allowsStorageWords else {
                    throw error("'\(word)' is not allowed in a \(context == .field ? "field" : "parameter")", at: token)
                }
            } else if word == "typedef" {
                throw error("typedef is not supported; write the underlying type", at: token)
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
        return Specifiers(type: type, isConst: isConst, start: start, isStructTag: structTag)
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
            while token.kind == .identifier, qualifierWords.contains(text(token)) {
                if isWord(token, "const") { isConst = true }
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
                if token.kind == .number {
                    try validateArraySize(token)
                    try advance()
                }
                try expect("]", "after array size")
                suffixes.append(.array)
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
    /// rather than open a parameter list?
    mutating func isGroupingParenthesis() throws(DeclarationError) -> Bool {
        let next = try peek()
        if next.isPunct("*") || next.isPunct("(") { return true }
        return isName(next)
    }

    func validateArraySize(_ token: Token) throws(DeclarationError) {
        var digits = Substring(text(token))
        while let last = digits.last, last == "u" || last == "U" || last == "l" || last == "L" {
            digits.removeLast()
        }
        var isValid = !digits.isEmpty
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            let hexDigits = digits.dropFirst(2)
            isValid = !hexDigits.isEmpty && hexDigits.allSatisfy { $0.isHexDigit }
        } else {
            isValid = isValid && digits.allSatisfy { $0.isASCII && $0.isNumber }
        }
        if !isValid {
            throw error("invalid array size \(quote(text(token)))", at: token)
        }
    }

    /// Parses parameters after `(` through `)`.
    mutating func parseParameterList() throws(DeclarationError) -> Derivation {
        var parameters: [CParameter] = []
        var names: Set<String> = []
        var maxDepth = 0
        if token.isPunct(")") {
            try advance()
            return .function(parameters: [], isVariadic: false, depth: 0)
        }
        if isWord(token, "void"), try peek().isPunct(")") {
            try advance()
            try advance()
            return .function(parameters: [], isVariadic: false, depth: 0)
        }
        while true {
            if token.kind == .ellipsis {
                try advance()
                try expect(")", "after '...'")
                return .function(parameters: parameters, isVariadic: true, depth: maxDepth)
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
            parameters.append(CParameter(name: name, type: type))
            maxDepth = max(maxDepth, typeDepth)
            guard token.isPunct(",") else { break }
            try advance()
        }
        try expect(")", "after parameter list")
        return .function(parameters: parameters, isVariadic: false, depth: maxDepth)
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
        case .array(.void, _, _):
            throw error("array of void is not a valid type", at: specifiers.start)
        case .array(let element, let isConst, let depth):
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
        var current = Derived.value(specifiers.type, isConst: specifiers.isConst, depth: 0)
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
            case (.function(let parameters, let isVariadic, let parameterDepth), .value(let type, _, let depth)):
                if case .structure(let tag) = type {
                    structUses.append(StructUse(name: tag, token: specifiers.start))
                }
                let combined = max(depth, parameterDepth)
                try checkDepth(combined, at: start)
                current = .function(
                    CFunctionType(returnType: type, parameters: parameters, isVariadic: isVariadic),
                    depth: combined)
            case (.function, .function):
                throw error("a function cannot return a function; return a function pointer instead", at: start)
            case (.function, .array):
                throw error("a function cannot return an array", at: start)
            case (.array, .value(let type, let isConst, let depth)):
                current = .array(type, isConst: isConst, depth: depth)
            case (.array, .function):
                throw error("arrays of functions are not valid; use an array of function pointers", at: start)
            case (.array, .array):
                throw error("multidimensional arrays are not supported", at: start)
            }
        }
        return current
    }
}
