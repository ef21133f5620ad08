// Callbacks: a function-pointer parameter is a slot the caller fills with `cb:N`. The host makes a
// libffi closure of exactly the declared signature; the plugin gets its code pointer and may call it
// from any thread, any number of times. Each invocation is marshaled here (C arguments → tagged
// values) and handed to a `CallbackSink`, which relays it to the caller. Rules: docs/callbacks.md.
import CFFI
import CSpace
import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// How one argument of a callback reaches the caller.
enum CallbackArgument {
    case scalar(Scalar)
    /// `char *`: the text (bytes if it is not UTF-8); NULL is null.
    case string
    case structValue(StructLayout)
    /// A pointer to one element (a struct or a scalar); NULL is null.
    case pointee(Element)
    /// A pointer to as many elements as the integer argument `length` says; one-byte elements travel
    /// as bytes. NULL is null.
    case array(Element, length: Int, count: Scalar, isBytes: Bool)
    /// The length of an array argument: folded into that argument, not passed on.
    case length
}

/// One arity of a callback slot: how its arguments are marshaled, what it returns, and the `ffi_cif`
/// its closures are made with. Immutable once built; owns the cif and its type array.
final class CallbackShape: @unchecked Sendable {
    let arguments: [CallbackArgument]
    let returns: Scalar?
    /// Arguments the caller sees (lengths folded into their arrays).
    let visibleCount: Int
    let cif: UnsafeMutablePointer<ffi_cif>
    private let types: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>

    init(arguments: [CallbackArgument], types argumentTypes: [UnsafeMutablePointer<ffi_type>], returns: Scalar?,
         describing: String) throws(SpaceError) {
        self.arguments = arguments
        self.returns = returns
        visibleCount = arguments.count { if case .length = $0 { false } else { true } }
        cif = .allocate(capacity: 1)
        types = .allocate(capacity: max(argumentTypes.count, 1))
        for (i, t) in argumentTypes.enumerated() { types[i] = t }
        let status = cs_ffi_prep_cif(cif, UInt32(argumentTypes.count), returns?.ffiType ?? cs_ffi_type_void(), types)
        guard status == FFI_OK else {
            cif.deallocate()
            types.deallocate()
            throw SpaceError(.declarationError, "libffi could not prepare the callback \(describing) (status \(status.rawValue))")
        }
    }

    deinit {
        cif.deallocate()
        types.deallocate()
    }
}

/// The signature of one callback slot (a function-pointer parameter), planned once when the function
/// is loaded.
public final class CallbackSignature: @unchecked Sendable {
    /// The declared function type of the callback.
    public let type: CFunctionType
    /// `SPACE_SCOPED`: the callback dies when the call returns.
    public let isScoped: Bool
    /// Why a callback of this type cannot be made, or nil.
    let unsupported: String?
    /// The shape of a prototyped callback.
    private let declared: CallbackShape?
    /// Shapes of an unprototyped callback (`void (*)()`), by arity; only the calling thread makes
    /// closures, so only it touches this.
    private var byArity: [Int: CallbackShape] = [:]

    /// The most arguments an unprototyped callback (`cb:N` with `void (*)()`) may take.
    public static let maxUndeclaredArity = 16

    init(_ type: CFunctionType, scoped: Bool, label: String, layouts: inout LayoutBuilder) throws(SpaceError) {
        self.type = type
        self.isScoped = scoped
        guard type.hasPrototype else {
            declared = nil
            unsupported = nil
            return
        }
        var why: String?
        if type.isVariadic { why = "a variadic callback (\(type)) cannot be made" }
        var returns: Scalar?
        switch type.returnType {
        case .void: returns = nil
        case .bool: returns = .bool
        case .integer(let i): returns = Scalar(i)
        case .float: returns = .float
        case .double: returns = .double
        default: why = why ?? "a callback returning \(type.returnType) cannot be answered (it may return void, bool, an integer, float or double)"
        }
        let params = type.parameters
        var arguments: [CallbackArgument] = []
        var types: [UnsafeMutablePointer<ffi_type>] = []
        var lengths: Set<Int> = []
        for (i, p) in params.enumerated() {
            let name = p.name.map { " (\($0))" } ?? ""
            func unsupported(_ text: String) { why = why ?? "argument \(i)\(name) of the callback: \(text)" }
            switch p.type {
            case .bool: arguments.append(.scalar(.bool)); types.append(cs_ffi_type_uint8())
            case .integer(let integer):
                let s = Scalar(integer)
                arguments.append(.scalar(s)); types.append(s.ffiType)
            case .float: arguments.append(.scalar(.float)); types.append(cs_ffi_type_float())
            case .double: arguments.append(.scalar(.double)); types.append(cs_ffi_type_double())
            case .structure:
                if let e = try layouts.element(p.type), case .structure(let layout) = e, Self.plain(e) {
                    arguments.append(.structValue(layout)); types.append(layout.ffiType)
                } else {
                    unsupported("struct \(p.type) must be defined and hold only scalars, strings and structs")
                    arguments.append(.length); types.append(cs_ffi_type_pointer())
                }
            case .pointer(let pointee, _):
                types.append(cs_ffi_type_pointer())
                if p.type.isString && p.length == nil {
                    arguments.append(.string)
                    continue
                }
                guard let e = try layouts.element(pointee), Self.plain(e) else {
                    unsupported("\(p.type) has no size the host can read (a pointer argument may point at scalars or defined structs, or be a string)")
                    arguments.append(.length)
                    continue
                }
                var length: Int?
                switch p.length {
                case .parameter(let j)?: length = j
                case .fixed?: unsupported("SPACE_LEN with a number is not supported on callback arguments")
                case nil:
                    if i + 1 < params.count, case .integer = params[i + 1].type { length = i + 1 }
                }
                if let j = length, params.indices.contains(j), case .integer(let c) = params[j].type {
                    let isBytes: Bool
                    if case .scalar(let s) = e, s.size == 1, s != .bool { isBytes = true } else { isBytes = false }
                    arguments.append(.array(e, length: j, count: Scalar(c), isBytes: isBytes))
                    lengths.insert(j)
                } else if length != nil {
                    unsupported("its length must be an integer argument")
                    arguments.append(.length)
                } else {
                    arguments.append(.pointee(e))
                }
            case .void:
                unsupported("void is not an argument type"); arguments.append(.length); types.append(cs_ffi_type_pointer())
            case .functionPointer:
                unsupported("a callback cannot receive a function pointer"); arguments.append(.length); types.append(cs_ffi_type_pointer())
            }
        }
        for j in lengths { arguments[j] = .length }
        unsupported = why.map { "\(label) is a callback \(type): \($0)" }
        if unsupported == nil {
            declared = try CallbackShape(arguments: arguments, types: types, returns: returns, describing: "\(label) \(type)")
        } else {
            declared = nil
        }
    }

    /// Whether values of this element can be read in a callback (no handles: those belong to calls).
    private static func plain(_ e: Element) -> Bool {
        switch e {
        case .scalar, .string: return true
        case .handle: return false
        case .structure(let layout): return layout.fields.allSatisfy { plain($0.element) }
        }
    }

    /// The number of parameters in the declaration (what `cb:N` is checked against), or nil when the
    /// callback has no prototype.
    public var arity: Int? { type.hasPrototype ? type.parameters.count : nil }

    /// The shape for a `cb:N` placeholder with `arity` (``Value/declaredArity`` for "as declared").
    func shape(arity: Int, label: String) throws(SpaceError) -> CallbackShape {
        if let declared {
            let n = type.parameters.count
            guard arity == n || arity == Value.declaredArity else {
                throw SpaceError(.badArgument, "\(label) is a callback taking \(n) argument\(n == 1 ? "" : "s") (\(type)), got cb:\(arity)",
                                 argument: SpaceError.Argument(index: -1, expected: "cb:\(n)", got: "cb:\(arity)"))
            }
            return declared
        }
        if let unsupported { throw SpaceError(.unsupportedType, unsupported) }
        guard arity != Value.declaredArity else {
            throw SpaceError(.badArgument, "\(label) is a callback without a prototype (\(type)); say how many intptr_t arguments it takes with cb:N",
                             argument: SpaceError.Argument(index: -1, expected: "cb:N", got: "a callback of unspecified arity"))
        }
        guard arity <= Self.maxUndeclaredArity else {
            throw SpaceError(.badArgument, "\(label): an undeclared callback takes at most \(Self.maxUndeclaredArity) arguments, got cb:\(arity)",
                             argument: SpaceError.Argument(index: -1, expected: "cb:0...cb:\(Self.maxUndeclaredArity)", got: "cb:\(arity)"))
        }
        if let s = byArity[arity] { return s }
        let s = try CallbackShape(arguments: Array(repeating: .scalar(.int64), count: arity),
                                  types: Array(repeating: cs_ffi_type_sint64(), count: arity),
                                  returns: nil, describing: "\(label) cb:\(arity)")
        byArity[arity] = s
        return s
    }
}

/// Receives the invocations of closures. The host implements it: it relays each one to the caller
/// and, for a callback that returns a value, waits for the answer.
public protocol CallbackSink: AnyObject, Sendable {
    /// Runs on the plugin's thread for every invocation of `closure`. `result` is the return slot
    /// (nil for void); the sink must fill it, with ``CallbackClosure/storeZero(_:)`` at least.
    func invoke(_ closure: CallbackClosure, result: UnsafeMutableRawPointer?,
                arguments: UnsafeMutablePointer<UnsafeMutableRawPointer?>)
}

/// Makes the closures of the call being marshaled. The host implements it, per call.
public protocol CallbackFactory: AnyObject {
    /// A closure for the `slot`-th `cb:` argument of the current call, owned by plugin `owner`.
    func makeCallback(_ shape: CallbackShapeReference, slot: Int, scoped: Bool, owner: Int) throws(SpaceError) -> CallbackClosure
    /// Every argument is in place and the function is about to run with the closures made so far.
    func willCall()
}

/// An opaque reference to a callback shape, for ``CallbackFactory``.
public struct CallbackShapeReference: @unchecked Sendable {
    let shape: CallbackShape
}

/// One libffi closure: a C function pointer that relays every call to its sink. Created by the
/// host's ``CallbackFactory``; the host's registry owns it and decides when it dies. The ffi closure
/// is freed in `deinit`, so the code pointer is valid exactly as long as this object lives.
public final class CallbackClosure: @unchecked Sendable {
    /// The id of the call that made it.
    public let call: UInt32
    /// Its index among the call's `cb:` arguments.
    public let slot: Int
    /// The plugin it was given to.
    public let owner: Int
    /// `SPACE_SCOPED`: released when its call returns.
    public let isScoped: Bool
    /// The C function pointer the plugin received.
    public let code: UnsafeMutableRawPointer
    let shape: CallbackShape
    private let closure: UnsafeMutableRawPointer
    private unowned(unsafe) let sink: CallbackSink

    /// Host state, guarded by the host's lock: 0 live, 1 revoked (invocations return zero), 2 freed.
    public var state = 0
    /// The next invocation's sequence number (host lock).
    public var sequence: UInt64 = 0

    /// Makes the closure. `sink` must outlive it.
    public init(_ shape: CallbackShapeReference, call: UInt32, slot: Int, owner: Int, scoped: Bool,
                sink: CallbackSink) throws(SpaceError) {
        self.shape = shape.shape
        self.call = call
        self.slot = slot
        self.owner = owner
        self.isScoped = scoped
        self.sink = sink
        var code: UnsafeMutableRawPointer?
        // The closure's user data is this object, unretained: the registry keeps it alive for as
        // long as the code pointer may be called.
        let placeholder = UnsafeMutableRawPointer(bitPattern: 1)!
        guard let closure = cs_closure_new(shape.shape.cif, callbackEntry, placeholder, &code), let code else {
            throw SpaceError(.systemError, "libffi could not make a closure", errno: errno)
        }
        self.closure = closure
        self.code = code
        // Now that self is complete, point the closure at it.
        cs_closure_set_user_data(closure, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { cs_closure_free(closure) }

    /// Whether the callback returns a value (and so waits for the caller's answer).
    public var returnsValue: Bool { shape.returns != nil }

    /// The number of arguments the caller receives.
    public var argumentCount: Int { shape.visibleCount }

    fileprivate func invoked(_ ret: UnsafeMutableRawPointer?, _ args: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) {
        let args = args ?? UnsafeMutablePointer(bitPattern: 8)!
        sink.invoke(self, result: shape.returns == nil ? nil : ret, arguments: args)
    }

    /// Appends the argument count and the tagged arguments read from the C values at `args`.
    /// Throws ``SpaceError/Code/tooLarge`` when an array argument would not fit in `limit` bytes.
    public func encodeArguments(_ args: UnsafeMutablePointer<UnsafeMutableRawPointer?>, limit: Int,
                                into out: inout WireWriter) throws(SpaceError) {
        out.write(UInt16(shape.visibleCount))
        for (i, a) in shape.arguments.enumerated() {
            guard let p = args[i] else { continue }
            switch a {
            case .length: continue
            case .scalar(let s): s.encode(p, into: &out)
            case .string: FFIFunction.encodeString(p.load(as: UnsafePointer<CChar>?.self), into: &out)
            case .structValue(let layout): Self.encode(.structure(layout), p, into: &out)
            case .pointee(let e):
                if let q = p.load(as: UnsafeRawPointer?.self) { Self.encode(e, q, into: &out) } else { out.writeValue(.null) }
            case .array(let e, let j, let countType, let isBytes):
                guard let q = p.load(as: UnsafeRawPointer?.self) else {
                    out.writeValue(.null)
                    continue
                }
                let c = args[j].map { countType.loadInteger($0) } ?? (signed: 0, unsigned: 0, isSigned: false)
                let count = c.isSigned && c.signed < 0 ? 0 : Int(clamping: c.unsigned)
                let bytes = count.multipliedReportingOverflow(by: e.size)
                guard !bytes.overflow, bytes.partialValue <= limit else {
                    throw SpaceError(.tooLarge, "argument \(i) of callback \(slot) has \(count) elements, over the frame limit of \(limit) bytes")
                }
                if isBytes {
                    out.write(ValueTag.bytes.rawValue)
                    out.writeString(bytes: UnsafeRawBufferPointer(start: q, count: count))
                } else {
                    out.write(ValueTag.array.rawValue)
                    out.write(UInt32(count))
                    for k in 0..<count { Self.encode(e, q + k * e.size, into: &out) }
                }
            }
        }
    }

    private static func encode(_ e: Element, _ p: UnsafeRawPointer, into out: inout WireWriter) {
        switch e {
        case .scalar(let s): s.encode(p, into: &out)
        case .string: FFIFunction.encodeString(p.loadUnaligned(as: UnsafePointer<CChar>?.self), into: &out)
        case .handle: out.writeValue(.null)  // not reachable: signatures with handles are refused
        case .structure(let layout):
            out.write(ValueTag.object.rawValue)
            out.write(UInt32(layout.fields.count))
            for f in layout.fields {
                out.writeString(f.name)
                encode(f.element, p + f.offset, into: &out)
            }
        }
    }

    /// Stores the caller's answer in the return slot. Throws ``SpaceError/Code/badArgument`` (and
    /// stores zero) when it does not fit the declared return type; `null` is the zero value.
    public func storeReturn(_ value: Value, into ret: UnsafeMutableRawPointer) throws(SpaceError) {
        guard let s = shape.returns else { return }
        storeZero(ret)
        func wrong(_ why: String) -> SpaceError {
            SpaceError(.badArgument, "the answer to callback \(slot) must be \(Element.scalar(s).description): \(why); the plugin got 0")
        }
        switch (s, value) {
        case (_, .null): return
        case (.bool, .bool(let b)): ret.storeBytes(of: b ? 1 : 0, as: UInt64.self)
        case (.bool, _): throw wrong("got \(value.kindName) \(value)")
        case (.float, _), (.double, _):
            let d: Double
            switch value {
            case .double(let x): d = x
            case .int(let x): d = Double(x)
            case .uint(let x): d = Double(x)
            default: throw wrong("got \(value.kindName) \(value)")
            }
            if s == .float { ret.storeBytes(of: Float(d), as: Float.self) } else { ret.storeBytes(of: d, as: Double.self) }
        default:
            let range = s.integerRange
            let bits: UInt64
            switch value {
            case .int(let v):
                guard v >= range.min && (v < 0 || UInt64(v) <= range.max) else { throw wrong("\(v) is out of range") }
                bits = UInt64(bitPattern: v)
            case .uint(let v):
                guard v <= range.max else { throw wrong("\(v) is out of range") }
                bits = v
            case .bool(let b): bits = b ? 1 : 0
            default: throw wrong("got \(value.kindName) \(value)")
            }
            // libffi reads a narrow integer result as a whole ffi_arg, widened by its signedness.
            if range.min < 0 {
                let signed: Int64
                switch s.size {
                case 1: signed = Int64(Int8(truncatingIfNeeded: bits))
                case 2: signed = Int64(Int16(truncatingIfNeeded: bits))
                case 4: signed = Int64(Int32(truncatingIfNeeded: bits))
                default: signed = Int64(bitPattern: bits)
                }
                ret.storeBytes(of: signed, as: Int64.self)
            } else {
                ret.storeBytes(of: bits, as: UInt64.self)
            }
        }
    }

    /// Stores the zero value of the return type (what an unanswered or revoked callback returns).
    public func storeZero(_ ret: UnsafeMutableRawPointer) {
        ret.storeBytes(of: 0, as: UInt64.self)
    }
}

/// The C entry point of every closure: finds the `CallbackClosure` in the user data and runs it.
private let callbackEntry: cs_closure_fn = { _, ret, args, userData in
    guard let userData else { return }
    let closure = Unmanaged<CallbackClosure>.fromOpaque(userData).takeUnretainedValue()
    closure.invoked(ret, args)
}
