// Planning a call: how each declared parameter is filled and what comes back, decided once per
// function from its declaration and the annotation defaults documented in docs/plugin-abi.md.
import CFFI
import CSpace
import SpaceWire

/// Where an array parameter's element count comes from.
enum Count: Equatable {
    /// One element, not an array.
    case one
    /// A fixed count (`SPACE_LEN(16)`, `uint8_t digest[16]`).
    case fixed(Int)
    /// An integer parameter: the array's length for in/in-out arrays (filled by the host), the
    /// capacity for out arrays (given by the caller).
    case parameter(Int)
    /// A pointer-to-integer parameter: capacity before the call, count written after it.
    case pointerParameter(Int)
}

/// A pointer parameter that carries data (not a handle, not a string).
struct PointerPlan {
    var element: Element
    var direction: CDirection
    var count: Count
    /// One-byte elements (or `void`): the data travels as `bytes`.
    var isBytes: Bool
    /// `char` elements: an out buffer comes back as a string (up to its first NUL).
    var isText: Bool
}

/// How one declared parameter is filled.
enum ParameterPlan {
    case scalar(Scalar)
    /// `const char *` (or unannotated `char *`): a copy of the string, NUL-terminated; null is NULL.
    case string
    case structValue(StructLayout)
    /// An opaque pointer the caller passes as a handle (or null).
    case handle(tag: String?, releases: Bool)
    case pointer(PointerPlan)
    /// Filled by the host: the element count of the in/in-out arrays at these parameter indices.
    case length(of: [Int], Scalar)
    /// A function pointer: the caller passes `cb:N` and the host passes a closure.
    case callback(CallbackSignature)

    /// The integer type of a parameter that can hold a length or capacity.
    var integer: Scalar? {
        switch self {
        case .scalar(let s) where s.isInteger, .length(_, let s): return s
        default: return nil
        }
    }

    var isCallback: Bool {
        if case .callback = self { return true }
        return false
    }

    var isVisible: Bool {
        switch self {
        case .length: return false
        case .pointer(let p): return p.direction != .out
        default: return true
        }
    }
}

/// What the function returns, and what the host does with it.
enum ResultPlan {
    case void
    case scalar(Scalar)
    /// `char *`: copied; released with the free function when one is declared.
    case string(free: HandleTable.Release?)
    case structValue(StructLayout)
    /// A pointer to a defined struct: the struct is copied (NULL is null), then released if declared.
    case structPointer(StructLayout, free: HandleTable.Release?)
    /// A pointer to an incomplete struct or `void`: a new handle (NULL is null).
    case handle(tag: String?, free: HandleTable.Release?)

    var ffiType: UnsafeMutablePointer<ffi_type> {
        switch self {
        case .void: return cs_ffi_type_void()
        case .scalar(let s): return s.ffiType
        case .structValue(let l): return l.ffiType
        case .string, .structPointer, .handle: return cs_ffi_type_pointer()
        }
    }

    var returnsValue: Bool {
        if case .void = self { return false }
        return true
    }
}

/// The complete plan for one function.
struct CallPlan {
    var parameters: [ParameterPlan] = []
    var result: ResultPlan = .void
    /// Indices of the parameters the caller passes, in order.
    var visible: [Int] = []
    /// Indices of out and in-out pointer parameters, whose values come back in the result.
    var outputs: [Int] = []
    /// Only scalars and strings in, one value out: the fast path.
    var isSimple = true
    /// Why the function cannot be called, or nil.
    var unsupported: String?

    init(_ type: CFunctionType, name: String, structs: [String: CStruct],
         resolve: (String) -> UnsafeMutableRawPointer?) throws(SpaceError) {
        var layouts = LayoutBuilder(structs: structs)
        let params = type.parameters
        func label(_ i: Int) -> String {
            "parameter \(i)\(params[i].name.map { " (\($0))" } ?? "")"
        }
        func fail(_ i: Int, _ why: String) -> SpaceError {
            SpaceError(.declarationError, "\(name): \(label(i)) of type \(params[i].type): \(why)")
        }

        for (i, p) in params.enumerated() {
            if p.releasesHandle && !p.type.isPointer {
                throw fail(i, "SPACE_RELEASE is only for handle (opaque pointer) parameters")
            }
            switch p.type {
            case .bool: parameters.append(.scalar(.bool))
            case .integer(let integer): parameters.append(.scalar(Scalar(integer)))
            case .float: parameters.append(.scalar(.float))
            case .double: parameters.append(.scalar(.double))
            case .void:
                throw fail(i, "a parameter cannot be void")
            case .structure:
                guard let e = try layouts.element(p.type), case .structure(let layout) = e else {
                    throw fail(i, "the struct is not defined")
                }
                parameters.append(.structValue(layout))
            case .functionPointer(let f):
                let signature = try CallbackSignature(f, scoped: p.isScoped, label: label(i), layouts: &layouts)
                if let why = signature.unsupported { unsupported = unsupported ?? why }
                parameters.append(.callback(signature))
            case .pointer(let pointee, let isConst):
                parameters.append(try pointerPlan(i, p, pointee: pointee, isConst: isConst, params: params,
                                                  layouts: &layouts, fail: fail))
            }
        }

        // Lengths the host fills in, and capacities read through pointers.
        for (i, plan) in parameters.enumerated() {
            guard case .pointer(let p) = plan else { continue }
            switch p.count {
            case .parameter(let j):
                // An in or in-out array's length is filled by the host; an out array's is its capacity,
                // passed by the caller (or filled from an in array that shares it).
                switch parameters[j] {
                case .scalar(let s) where s.isInteger:
                    if p.direction != .out { parameters[j] = .length(of: [i], s) }
                case .length(let arrays, let s):
                    if p.direction != .out { parameters[j] = .length(of: arrays + [i], s) }
                default:
                    throw fail(i, "its length \(label(j)) must be an integer")
                }
            case .pointerParameter(let j):
                guard p.direction == .out else {
                    throw fail(i, "a length behind a pointer (\(label(j))) only sizes an out buffer")
                }
                guard case .pointer(var q) = parameters[j], case .scalar(let s) = q.element, s.isInteger,
                      q.count == .one else {
                    throw fail(i, "its length \(label(j)) must be an integer or a pointer to one")
                }
                if params[j].direction == .out || params[j].direction == .in {
                    throw fail(j, "it holds the capacity of \(label(i)) before the call and its length after, so it is SPACE_INOUT")
                }
                q.direction = .inout
                parameters[j] = .pointer(q)
            case .one, .fixed: break
            }
        }

        for (i, plan) in parameters.enumerated() {
            if plan.isVisible { visible.append(i) }
            switch plan {
            case .scalar, .string: break
            case .pointer(let p):
                isSimple = false
                if p.direction != .in { outputs.append(i) }
            default: isSimple = false
            }
        }

        // The result.
        var free: HandleTable.Release?
        if let freeName = type.freeFunction {
            guard let sym = resolve(freeName) else {
                throw SpaceError(.declarationError, "\(name): SPACE_FREE(\(freeName)): no function \(freeName) in the library or the process")
            }
            free = unsafeBitCast(sym, to: HandleTable.Release.self)
        }
        let r = type.returnType
        switch r {
        case .void: result = .void
        case .bool: result = .scalar(.bool)
        case .integer(let integer): result = .scalar(Scalar(integer))
        case .float: result = .scalar(.float)
        case .double: result = .scalar(.double)
        case .structure:
            guard let e = try layouts.element(r), case .structure(let layout) = e else {
                throw SpaceError(.declarationError, "\(name): the returned struct is not defined")
            }
            result = .structValue(layout)
            isSimple = false
        case .pointer(let pointee, _):
            if r.isString {
                result = .string(free: free)
                if free != nil { isSimple = false }
            } else if case .structure(let tag) = pointee, let layout = try layouts.layout(tag) {
                result = .structPointer(layout, free: free)
                isSimple = false
            } else if case .structure(let tag) = pointee {
                result = .handle(tag: tag, free: free)
                isSimple = false
            } else if case .void = pointee {
                result = .handle(tag: nil, free: free)
                isSimple = false
            } else {
                unsupported = unsupported ?? "it returns \(r); a returned pointer must be a string, a struct or an opaque handle"
            }
        case .functionPointer:
            unsupported = unsupported ?? "it returns a function pointer (\(r)), which cannot leave the space"
        }
        if free != nil {
            switch result {
            case .string, .structPointer, .handle: break
            default:
                throw SpaceError(.declarationError, "\(name): SPACE_FREE(\(type.freeFunction!)) needs a function that returns a pointer")
            }
        }
        if type.capturesErrno || type.isVariadic || !outputs.isEmpty { isSimple = false }
    }

    /// The plan for a pointer parameter, by its annotations or the defaults.
    private func pointerPlan(
        _ i: Int, _ p: CParameter, pointee: CType, isConst: Bool, params: [CParameter],
        layouts: inout LayoutBuilder, fail: (Int, String) -> SpaceError
    ) throws(SpaceError) -> ParameterPlan {
        // An unannotated data pointer followed by an integer is an array and its length: always for
        // a const pointer, and for a non-const one when the integer is a size_t (a capacity).
        var length = p.length
        if length == nil, i + 1 < params.count, case .integer(let next) = params[i + 1].type, !p.type.isString {
            let pairs: Bool
            switch pointee {
            case .bool, .integer, .float, .double, .structure, .void, .pointer: pairs = isConst || next.name == "size_t"
            default: pairs = false
            }
            let opaque: Bool
            if case .structure(let tag) = pointee, layouts.structs[tag] == nil { opaque = true } else { opaque = false }
            if pairs && !opaque { length = .parameter(i + 1) }
        }
        let direction = p.direction ?? (isConst ? .in : .out)

        // Strings.
        // Opaque pointers are handles; only they can be released by a call.
        let isOpaque: Bool
        let tag: String?
        switch pointee {
        case .void: isOpaque = length == nil; tag = nil
        case .structure(let name) where layouts.structs[name] == nil: isOpaque = true; tag = name
        default: isOpaque = false; tag = nil
        }
        if p.releasesHandle && !isOpaque {
            throw fail(i, "SPACE_RELEASE is only for handle (opaque pointer) parameters")
        }
        if p.type.isString && length == nil {
            if p.direction == nil || p.direction == .in { return .string }
            throw fail(i, "an out or in-out char buffer needs its capacity: SPACE_LEN(cap)")
        }
        if isOpaque {
            if let d = p.direction, d != .in {
                throw fail(i, "an opaque pointer is passed in as a handle; to get one back through a parameter declare a pointer to it (struct \(tag ?? "x") **out)")
            }
            if length != nil { throw fail(i, "an incomplete struct has no size, so it cannot be an array") }
            return .handle(tag: tag, releases: p.releasesHandle)
        }
        let element: Element
        var isBytes = false
        switch pointee {
        case .void:
            element = .scalar(.uint8)
            isBytes = true
        case .functionPointer:
            throw fail(i, "pointers to callbacks are not supported")
        default:
            guard let e = try layouts.element(pointee) else {
                throw fail(i, "a pointer to \(pointee) is not supported (pointers may point at scalars, structs, strings or handles)")
            }
            element = e
            if case .scalar(let s) = e, s.size == 1, s != .bool { isBytes = true }
        }
        let isText: Bool
        if case .integer(let c) = pointee, c.name == "char" { isText = true } else { isText = false }

        var count = Count.one
        switch length {
        case nil: break
        case .fixed(let n)?:
            guard n > 0 && n <= 1 << 30 else { throw fail(i, "SPACE_LEN(\(n)) is out of range") }
            count = .fixed(n)
        case .parameter(let j)?:
            guard j != i, params.indices.contains(j) else { throw fail(i, "SPACE_LEN names no other parameter") }
            switch params[j].type {
            case .integer: count = .parameter(j)
            case .pointer(.integer, _): count = .pointerParameter(j)
            default: throw fail(i, "its length \(params[j].name ?? "parameter \(j)") must be an integer or a pointer to one")
            }
        }
        return .pointer(PointerPlan(element: element, direction: direction, count: count, isBytes: isBytes, isText: isText))
    }
}

// MARK: - What the caller passes

/// One parameter as a caller sees it: a parameter the caller passes (lengths the host fills in and
/// pure out-parameters are not callers' parameters), and what kind of value goes there. The host
/// reports these in its `add` reply, so a client (the CLI) can type each argument by its declaration.
public struct ParameterSummary: Sendable, Hashable {
    /// What kind of value a caller passes for a parameter.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// An integer (any width; the host checks the range).
        case integer
        /// `float` or `double`: a number.
        case float
        /// `bool`: `true` or `false`.
        case bool
        /// A `char *` string, or an in-out `char` text buffer the caller fills with a string.
        case string
        /// A buffer of one-byte elements (or `void`) with a length: bytes.
        case bytes
        /// An array of non-byte elements (scalars, strings, handles or structs).
        case array
        /// A struct by value, or a pointer to one struct the caller passes as an object.
        case `struct`
        /// A pointer to one scalar (in or in-out): the caller passes the scalar.
        case pointer
        /// An opaque pointer the caller passes as a handle (or null).
        case handle
        /// A function pointer: a `cb:N` placeholder (or null).
        case callback
        /// Anything else: the value is taken as given.
        case value
    }

    /// The declared name, or `argN` (N the parameter's index in the declaration) when unnamed.
    public var name: String
    /// The declared C type, as ``CType/description`` writes it (`"const char *"`).
    public var type: String
    /// What kind of value the caller passes.
    public var kind: Kind
    /// For callbacks: the number of arguments the callback is declared with, which the caller's
    /// `cb:N` must give; nil for an unprototyped `void (*)()` slot and for other kinds.
    public var arity: Int?

    /// Creates a summary.
    public init(name: String, type: String, kind: Kind, arity: Int? = nil) {
        self.name = name
        self.type = type
        self.kind = kind
        self.arity = arity
    }
}

extension CallPlan {
    /// The parameters a caller passes (``visible``), in order, described for callers of `type`.
    func visibleParameters(of type: CFunctionType) -> [ParameterSummary] {
        visible.map { i in
            let p = type.parameters[i]
            var arity: Int?
            let kind: ParameterSummary.Kind
            switch parameters[i] {
            case .scalar(let s):
                switch s {
                case .bool: kind = .bool
                case .float, .double: kind = .float
                default: kind = .integer
                }
            case .string: kind = .string
            case .structValue: kind = .struct
            case .handle: kind = .handle
            case .callback(let signature):
                kind = .callback
                arity = signature.arity
            case .pointer(let plan): kind = Self.kind(of: plan)
            case .length: kind = .value  // never visible; here for completeness
            }
            return ParameterSummary(name: p.name ?? "arg\(i)", type: p.type.description, kind: kind, arity: arity)
        }
    }

    /// What a caller passes for an in or in-out data pointer (see `FFIFunction.storePointer`).
    private static func kind(of p: PointerPlan) -> ParameterSummary.Kind {
        if p.count == .one {
            // One element: the caller passes the element itself.
            switch p.element {
            case .scalar: return .pointer
            case .string: return .string
            case .handle: return .handle
            case .structure: return .struct
            }
        }
        // An array: text comes as a string, other one-byte data as bytes.
        if p.isText { return .string }
        if p.isBytes { return .bytes }
        return .array
    }
}
