import CFFI
import CSpace
import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// A native function ready to be called through libffi: its declaration, its code pointer, a plan for
/// every parameter and the result, and a call interface (`ffi_cif`) prepared once. It owns the cif
/// and its type array and frees them in `deinit`.
///
/// Not `Sendable` by design: a function belongs to the plugin that loaded it, inside one host.
public final class FFIFunction {
    /// The name callers use.
    public let name: String
    /// The C type it was declared with.
    public let type: CFunctionType
    /// Why it cannot be called yet (a type this build does not marshal), or nil.
    public let unsupported: String?
    /// Set when a call took long enough that replies to others should not wait behind the next one.
    public var isSlow = false

    private let code: UnsafeMutableRawPointer
    private let plan: CallPlan
    /// The plugin that owns the handles this function creates.
    private let owner: Int
    private let cif: UnsafeMutablePointer<ffi_cif>
    private let argTypes: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>
    /// Fields of an object result: return value, outputs, errno.
    private let resultFieldCount: Int

    /// Prepares `code` as a function of `type`.
    ///
    /// - Parameters:
    ///   - structs: struct definitions the declaration may use by value or by pointer.
    ///   - owner: the plugin whose handles this function creates (released with the plugin).
    ///   - resolve: finds a `SPACE_FREE` function by name (the library first, then the process).
    ///
    /// A declaration with a type this host does not marshal still loads; calling it gives
    /// ``SpaceError/Code/unsupportedType`` naming the parameter. A declaration whose annotations
    /// contradict each other is a ``SpaceError/Code/declarationError``.
    public init(
        name: String, type: CFunctionType, code: UnsafeMutableRawPointer,
        structs: [String: CStruct] = [:], owner: Int = 0,
        resolve: (String) -> UnsafeMutableRawPointer? = { _ in nil }
    ) throws(SpaceError) {
        self.name = name
        self.type = type
        self.code = code
        self.owner = owner
        let plan = try CallPlan(type, name: name, structs: structs, resolve: resolve)
        self.plan = plan
        self.unsupported = plan.unsupported
        takesCallbacks = plan.parameters.contains { $0.isCallback }
        resultFieldCount = (plan.result.returnsValue ? 1 : 0) + plan.outputs.count + (type.capturesErrno ? 1 : 0)
        let n = plan.parameters.count
        cif = .allocate(capacity: 1)
        argTypes = .allocate(capacity: max(n, 1))
        for (i, p) in plan.parameters.enumerated() { argTypes[i] = Self.ffiType(p) }
        let status: ffi_status
        if type.isVariadic {
            status = FFI_OK  // prepared per call, with the types of that call's extra arguments
        } else {
            status = cs_ffi_prep_cif(cif, UInt32(n), plan.result.ffiType, argTypes)
        }
        if status != FFI_OK {
            cif.deallocate()
            argTypes.deallocate()
            throw SpaceError(.declarationError, "libffi could not prepare \(name): \(type) (status \(status.rawValue))")
        }
    }

    deinit {
        cif.deallocate()
        argTypes.deallocate()
    }

    private static func ffiType(_ p: ParameterPlan) -> UnsafeMutablePointer<ffi_type> {
        switch p {
        case .scalar(let s), .length(_, let s): return s.ffiType
        case .structValue(let l): return l.ffiType
        case .string, .handle, .pointer, .callback: return cs_ffi_type_pointer()
        }
    }

    /// Whether a parameter is a callback slot (`cb:N`).
    public let takesCallbacks: Bool

    /// The number of arguments a caller passes (out-parameters and lengths the host fills are not
    /// passed; a variadic function takes at least this many).
    public var arity: Int { plan.visible.count }

    /// The names of the arguments a caller passes, in order (`argN` for unnamed parameters).
    public var argumentNames: [String] { plan.visible.map { parameterName($0) } }

    /// The parameters a caller passes, in order, each with its declared name and C type and the
    /// kind of value that goes there (what ``call(arguments:count:handles:callbacks:into:)`` accepts
    /// for it). Lengths the host fills in and pure out-parameters are not listed; a variadic function
    /// (``CFunctionType/isVariadic``) takes extra arguments after these.
    public var visibleParameters: [ParameterSummary] { plan.visibleParameters(of: type) }

    private func parameterName(_ i: Int) -> String { type.parameters[i].name ?? "arg\(i)" }

    // MARK: Calling

    /// Per-call state that lives until the reply is written: memory to free, per-parameter buffers.
    private struct CallState {
        var owned: [UnsafeMutableRawPointer] = []
        /// For pointer parameters: the buffer and its element count.
        var buffers: [(pointer: UnsafeMutableRawPointer?, count: Int)] = []
        /// Handles passed to `SPACE_RELEASE` parameters.
        var released: [UInt64] = []
        /// `cb:` placeholders seen so far.
        var callbacks = 0
        /// Makes the closures for `cb:` arguments.
        unowned(unsafe) var factory: CallbackFactory?

        /// Memory the call owns until its reply is written. Refuses more than `CallState.maxBytes`
        /// in one piece, and reports an allocation failure instead of trapping.
        mutating func allocate(_ bytes: Int, zeroed: Bool = true) throws(SpaceError) -> UnsafeMutableRawPointer {
            guard bytes <= CallState.maxBytes,
                  let p = zeroed ? calloc(1, max(bytes, 1)) : malloc(max(bytes, 1)) else {
                throw SpaceError(.tooLarge, "an argument needs \(bytes) bytes of memory in the host, more than it can have (at most \(CallState.maxBytes))")
            }
            owned.append(p)
            return p
        }

        /// The most memory one argument may take once laid out in C (structs can be larger in
        /// memory than on the wire).
        static let maxBytes = 256 << 20

        func free() { for p in owned { Glibc.free(p) } }
    }

    /// Calls the function with `count` tagged arguments read from `args`, and appends the tagged
    /// result to `out`. Arguments are checked against the declaration before anything runs; handles
    /// are looked up in and added to `handles`; closures for `cb:` arguments come from `callbacks`
    /// (without one, a `cb:` argument is refused).
    public func call(
        arguments args: inout WireReader, count: Int, handles: HandleTable, callbacks: CallbackFactory? = nil,
        into out: inout WireWriter
    ) throws(SpaceError) {
        if let unsupported {
            throw SpaceError(.unsupportedType, "\(name) cannot be called: \(unsupported)")
        }
        let fixed = plan.visible.count
        guard count == fixed || (type.isVariadic && count > fixed) else {
            let names = argumentNames.joined(separator: ", ")
            let takes = type.isVariadic ? "at least \(fixed)" : "\(fixed)"
            throw SpaceError(.arityMismatch, "\(name) takes \(takes) argument\(fixed == 1 ? "" : "s")\(names.isEmpty ? "" : " (\(names))"), got \(count); declared as \(type)")
        }
        let n = plan.parameters.count
        let total = n + (count - fixed)
        // One 16-byte slot per argument, the return slot (big enough for a returned struct), the
        // argument pointer array, and for a variadic call its own cif and type array.
        let returnBytes = max(16, (resultLayoutSize + 15) & ~15)
        let cifBytes = (MemoryLayout<ffi_cif>.size + 15) & ~15
        let bytes = total * 16 + returnBytes + total * 8 + (type.isVariadic ? cifBytes + total * 8 : 0)
        try withUnsafeTemporaryAllocation(byteCount: bytes, alignment: 16) { (raw) throws(SpaceError) in
            let base = raw.baseAddress!
            let rvalue = base + total * 16
            let values = (rvalue + returnBytes).bindMemory(to: UnsafeMutableRawPointer?.self, capacity: max(total, 1))
            var state = CallState()
            state.factory = callbacks
            defer { state.free() }
            if !plan.isSimple { state.buffers = Array(repeating: (nil, 0), count: n) }
            for i in 0..<total { values[i] = base + i * 16 }

            // 1. The arguments the caller passed, in order.
            for (k, i) in plan.visible.enumerated() {
                do throws(SpaceError) {
                    try store(i, from: &args, into: base + i * 16, values: values, state: &state, handles: handles)
                } catch {
                    throw located(error, parameter: i, argument: k)
                }
            }
            // Variadic extras, each typed by its value.
            var cif = self.cif
            if type.isVariadic {
                let cifMemory = UnsafeMutableRawPointer(values + total)
                cif = cifMemory.bindMemory(to: ffi_cif.self, capacity: 1)
                let types = (cifMemory + cifBytes).bindMemory(to: UnsafeMutablePointer<ffi_type>?.self, capacity: total)
                for i in 0..<n { types[i] = argTypes[i] }
                for j in n..<total {
                    do throws(SpaceError) {
                        types[j] = try storeVariadic(from: &args, into: base + j * 16, state: &state, handles: handles)
                    } catch {
                        throw located(error, parameter: nil, argument: fixed + j - n)
                    }
                }
                let status = cs_ffi_prep_cif_var(cif, UInt32(n), UInt32(total), plan.result.ffiType, types)
                guard status == FFI_OK else {
                    throw SpaceError(.badArgument, "libffi could not prepare this call of \(name) (status \(status.rawValue))")
                }
            }
            try args.expectEnd("the arguments of \(name)")

            if !plan.isSimple {
                // 2. Lengths the host fills in, then 3. out buffers.
                try fillLengths(base, state: &state)
                try allocateOutputs(base, limit: args.limits.maxFrameSize, state: &state)
            }

            // 4. The call.
            if state.callbacks > 0 { callbacks?.willCall() }
            var error: Int32 = 0
            if type.capturesErrno {
                cs_ffi_call_errno(cif, code, rvalue, values, &error)
            } else {
                cs_ffi_call(cif, code, rvalue, values)
            }
            for id in state.released { handles.forget(id) }

            // 5. The reply.
            if resultFieldCount > 0 && (!plan.outputs.isEmpty || type.capturesErrno) {
                out.write(ValueTag.object.rawValue)
                out.write(UInt32(resultFieldCount))
                if plan.result.returnsValue {
                    out.writeString("return")
                    try encodeResult(rvalue, into: &out, handles: handles)
                }
                for i in plan.outputs {
                    out.writeString(parameterName(i))
                    try encodeOutput(i, base: base, state: state, into: &out, handles: handles)
                }
                if type.capturesErrno {
                    out.writeString("errno")
                    out.writeInt(Int64(error))
                }
            } else {
                try encodeResult(rvalue, into: &out, handles: handles)
            }
        }
    }

    private var resultLayoutSize: Int {
        if case .structValue(let l) = plan.result { return l.size }
        return 16
    }

    /// Adds the argument's place to an error about it.
    private func located(_ error: SpaceError, parameter: Int?, argument: Int) -> SpaceError {
        guard error.code == .badArgument || error.code == .tooLarge else { return error }
        var e = error
        let label = parameter.flatMap { type.parameters[$0].name }.map { " (\($0))" } ?? ""
        e.message = "argument \(argument)\(label) of \(name): " + error.message
        if var a = e.argument {
            a.index = argument
            e.argument = a
        } else if error.code == .badArgument {
            e.argument = SpaceError.Argument(index: argument, expected: "", got: "")
        }
        return e
    }

    private static func mismatch(_ expected: String, _ got: String, _ detail: String? = nil) -> SpaceError {
        SpaceError(.badArgument, "expected \(expected), got \(got)\(detail.map { ": " + $0 } ?? "")",
                   argument: SpaceError.Argument(index: -1, expected: expected, got: got))
    }

    private static func within(_ place: String, _ error: SpaceError) -> SpaceError {
        guard error.code == .badArgument else { return error }
        var e = error
        e.message = place + ": " + error.message
        return e
    }

    /// Fills the parameter `i` from the next value in `args`.
    @inline(__always)
    private func store(
        _ i: Int, from args: inout WireReader, into slot: UnsafeMutableRawPointer,
        values: UnsafeMutablePointer<UnsafeMutableRawPointer?>, state: inout CallState, handles: HandleTable
    ) throws(SpaceError) {
        let tag = try args.readTag()
        if tag == .callback, !plan.parameters[i].isCallback {
            let arity = try args.readU8()
            throw Self.mismatch(type.parameters[i].type.description, "cb:\(arity)",
                                "a cb: placeholder goes where the declaration has a function pointer")
        }
        switch plan.parameters[i] {
        case .callback(let signature):
            switch tag {
            case .null:
                slot.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
            case .callback:
                let arity = Int(try args.readU8())
                let label = "parameter \(i)\(type.parameters[i].name.map { " (\($0))" } ?? "")"
                guard let factory = state.factory else {
                    throw SpaceError(.unsupportedType, "\(name): callbacks cannot be made here")
                }
                let shape = try signature.shape(arity: arity, label: label)
                let closure = try factory.makeCallback(CallbackShapeReference(shape: shape), slot: state.callbacks,
                                                       scoped: signature.isScoped, owner: owner)
                state.callbacks += 1
                slot.storeBytes(of: closure.code, as: UnsafeMutableRawPointer?.self)
            default:
                throw Self.mismatch("cb:N (\(type.parameters[i].type))", try Self.describe(tag, &args),
                                    "a function pointer takes a cb:N placeholder (or null)")
            }
        case .scalar(let s):
            try Self.storeScalar(s, tag: tag, from: &args, into: slot, declared: type.parameters[i].type.description)
        case .string:
            switch tag {
            case .null: slot.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
            case .string:
                slot.storeBytes(of: try Self.copyString(from: &args, state: &state), as: UnsafeMutableRawPointer?.self)
            default:
                throw Self.mismatch(type.parameters[i].type.description, try Self.describe(tag, &args))
            }
        case .structValue(let layout):
            let memory = try state.allocate(layout.size)
            try storeElement(.structure(layout), tag: tag, from: &args, into: memory, state: &state, handles: handles)
            values[i] = memory
        case .handle(let tag_, let releases):
            let p = try handle(tag, from: &args, expecting: tag_, handles: handles, declared: type.parameters[i].type.description)
            slot.storeBytes(of: p.pointer, as: UnsafeMutableRawPointer?.self)
            if releases, let id = p.id { state.released.append(id) }
        case .pointer(let p):
            let (buffer, count) = try storePointer(p, tag: tag, from: &args, state: &state, handles: handles,
                                                   declared: type.parameters[i].type.description)
            slot.storeBytes(of: buffer, as: UnsafeMutableRawPointer?.self)
            state.buffers[i] = (buffer, count)
        case .length:
            preconditionFailure("a length parameter is not passed by the caller")
        }
    }

    /// Reads an in or in-out pointer argument into memory the call can use.
    private func storePointer(
        _ p: PointerPlan, tag: ValueTag, from args: inout WireReader, state: inout CallState,
        handles: HandleTable, declared: String
    ) throws(SpaceError) -> (UnsafeMutableRawPointer?, Int) {
        if tag == .null { return (nil, 0) }
        let size = p.element.size
        if p.count == .one {
            let memory = try state.allocate(size)
            try storeElement(p.element, tag: tag, from: &args, into: memory, state: &state, handles: handles)
            return (memory, 1)
        }
        var count: Int
        var memory: UnsafeMutableRawPointer
        switch tag {
        case .bytes where p.isBytes, .string where p.isBytes:
            let slice = try args.readSlice()
            count = slice.count
            if !p.isText && slice.count > 0 {
                // The frame outlives the call and nothing reads these bytes of it again: pass the
                // caller's bytes in place, for in-out buffers too (the result is encoded from them).
                memory = UnsafeMutableRawPointer(mutating: slice.baseAddress!)
            } else {
                memory = try state.allocate(slice.count + (p.isText ? 1 : 0), zeroed: false)
                if slice.count > 0 { memcpy(memory, slice.baseAddress!, slice.count) }
                if p.isText { memory.storeBytes(of: 0, toByteOffset: slice.count, as: UInt8.self) }
            }
        case .array:
            count = Int(try args.readU32())
            guard count <= args.remaining else {
                throw SpaceError(.protocolError, "array count \(count) exceeds the bytes left (\(args.remaining))")
            }
            let bytes = count.multipliedReportingOverflow(by: size)
            memory = try state.allocate(bytes.overflow ? Int.max : bytes.partialValue)
            for k in 0..<count {
                do throws(SpaceError) {
                    let t = try args.readTag()
                    try storeElement(p.element, tag: t, from: &args, into: memory + k * size, state: &state, handles: handles)
                } catch {
                    throw Self.within("element \(k)", error)
                }
            }
        default:
            let expected = p.isBytes ? "bytes or an array of integers (\(declared))" : "an array (\(declared))"
            throw Self.mismatch(expected, try Self.describe(tag, &args))
        }
        if case .fixed(let n) = p.count, count != n {
            throw Self.mismatch("\(n) elements (\(declared))", "\(count)")
        }
        return (memory, count)
    }

    /// Stores a value of element type `e` at `dst`.
    private func storeElement(
        _ e: Element, tag: ValueTag, from args: inout WireReader, into dst: UnsafeMutableRawPointer,
        state: inout CallState, handles: HandleTable
    ) throws(SpaceError) {
        switch e {
        case .scalar(let s):
            try Self.storeScalar(s, tag: tag, from: &args, into: dst, declared: e.description)
        case .string:
            switch tag {
            case .null: dst.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
            case .string: dst.storeBytes(of: try Self.copyString(from: &args, state: &state), as: UnsafeMutableRawPointer?.self)
            default: throw Self.mismatch("a string", try Self.describe(tag, &args))
            }
        case .handle(let expected):
            let p = try handle(tag, from: &args, expecting: expected, handles: handles, declared: e.description)
            dst.storeBytes(of: p.pointer, as: UnsafeMutableRawPointer?.self)
        case .structure(let layout):
            guard tag == .object else {
                throw Self.mismatch("an object with the fields of struct \(layout.name)", try Self.describe(tag, &args))
            }
            let n = Int(try args.readU32())
            guard n <= args.remaining / 5 else {
                throw SpaceError(.protocolError, "field count \(n) exceeds the bytes left (\(args.remaining))")
            }
            // Every field must be given exactly once: a missing field is an error, not a silent zero.
            var seen = 0 as UInt64
            var seenMore = Set<Int>()
            for _ in 0..<n {
                let key = try args.readSlice()
                guard let index = layout.fields.firstIndex(where: { Self.equal($0.name, key) }) else {
                    let keyName = String(decoding: key, as: UTF8.self)
                    throw Self.mismatch(
                        "the fields of struct \(layout.name) (\(layout.fields.map(\.name).joined(separator: ", ")))",
                        "a field '\(keyName)'", "struct \(layout.name) has no field '\(keyName)'")
                }
                let duplicate = index < 64 ? seen & (1 << index) != 0 : seenMore.contains(index)
                if duplicate {
                    throw Self.mismatch("each field once", "field '\(layout.fields[index].name)' twice")
                }
                if index < 64 { seen |= 1 << index } else { seenMore.insert(index) }
                let field = layout.fields[index]
                do throws(SpaceError) {
                    let t = try args.readTag()
                    try storeElement(field.element, tag: t, from: &args, into: dst + field.offset, state: &state, handles: handles)
                } catch {
                    throw Self.within("field '\(field.name)'", error)
                }
            }
            if n != layout.fields.count {
                let missing = layout.fields.indices.filter { $0 < 64 ? seen & (1 << $0) == 0 : !seenMore.contains($0) }
                    .map { "'\(layout.fields[$0].name)'" }
                throw Self.mismatch("all fields of struct \(layout.name)", "an object without \(missing.joined(separator: ", "))")
            }
        }
    }

    private static func equal(_ name: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var name = name
        return name.withUTF8 { $0.count == bytes.count && ($0.count == 0 || memcmp($0.baseAddress!, bytes.baseAddress!, $0.count) == 0) }
    }

    /// A handle argument (or null) as a pointer.
    private func handle(
        _ tag: ValueTag, from args: inout WireReader, expecting expected: String?, handles: HandleTable, declared: String
    ) throws(SpaceError) -> (pointer: UnsafeMutableRawPointer?, id: UInt64?) {
        switch tag {
        case .null: return (nil, nil)
        case .handle:
            let id = try args.readU64()
            switch handles.pointer(id, expecting: expected) {
            case .success(let p): return (p, id)
            case .failure(.unknown):
                throw Self.mismatch("a live handle (\(declared))", "handle \(id)",
                                    "no such handle in this space: it was released, its plugin was removed, or the space restarted since it was made")
            case .failure(.mistyped(let have)):
                throw Self.mismatch("a handle to struct \(expected ?? "?")", "a handle to struct \(have)")
            }
        default:
            throw Self.mismatch("a handle (\(declared))", try Self.describe(tag, &args))
        }
    }

    /// A variadic argument, typed by its value: integers that fit an `int` go as `int` (what C's
    /// default promotions make of small integers), others as 64-bit; floats as `double`; strings,
    /// bytes and handles as pointers.
    private func storeVariadic(
        from args: inout WireReader, into slot: UnsafeMutableRawPointer, state: inout CallState, handles: HandleTable
    ) throws(SpaceError) -> UnsafeMutablePointer<ffi_type> {
        let tag = try args.readTag()
        switch tag {
        case .int:
            let v = try args.readI64()
            if let small = Int32(exactly: v) {
                slot.storeBytes(of: small, as: Int32.self)
                return cs_ffi_type_sint32()
            }
            slot.storeBytes(of: v, as: Int64.self)
            return cs_ffi_type_sint64()
        case .uint:
            slot.storeBytes(of: try args.readU64(), as: UInt64.self)
            return cs_ffi_type_uint64()
        case .double:
            slot.storeBytes(of: try args.readU64(), as: UInt64.self)
            return cs_ffi_type_double()
        case .true, .false:
            slot.storeBytes(of: tag == .true ? 1 : 0, as: Int32.self)
            return cs_ffi_type_sint32()
        case .null:
            slot.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
            return cs_ffi_type_pointer()
        case .string:
            slot.storeBytes(of: try Self.copyString(from: &args, state: &state), as: UnsafeMutableRawPointer?.self)
            return cs_ffi_type_pointer()
        case .bytes:
            let slice = try args.readSlice()
            let memory = try state.allocate(slice.count, zeroed: false)
            if slice.count > 0 { memcpy(memory, slice.baseAddress!, slice.count) }
            slot.storeBytes(of: memory, as: UnsafeMutableRawPointer?.self)
            return cs_ffi_type_pointer()
        case .handle:
            let p = try handle(tag, from: &args, expecting: nil, handles: handles, declared: "void *")
            slot.storeBytes(of: p.pointer, as: UnsafeMutableRawPointer?.self)
            return cs_ffi_type_pointer()
        case .array, .object, .callback:
            throw Self.mismatch("a number, bool, string, bytes, null or handle (a variadic argument)", try Self.describe(tag, &args))
        }
    }

    /// Copies a string argument into NUL-terminated memory the call owns.
    private static func copyString(from args: inout WireReader, state: inout CallState) throws(SpaceError) -> UnsafeMutableRawPointer {
        let bytes = try args.readSlice()
        if bytes.count > 0 && memchr(bytes.baseAddress!, 0, bytes.count) != nil {
            throw mismatch("a C string", "a string with an embedded NUL byte", "a C string ends at its first NUL; pass bytes instead")
        }
        let p = try state.allocate(bytes.count + 1, zeroed: false)
        if bytes.count > 0 { memcpy(p, bytes.baseAddress!, bytes.count) }
        p.storeBytes(of: 0, toByteOffset: bytes.count, as: UInt8.self)
        return p
    }

    /// Stores a number or bool into a scalar, range-checked.
    @inline(__always)
    private static func storeScalar(
        _ s: Scalar, tag: ValueTag, from args: inout WireReader, into slot: UnsafeMutableRawPointer, declared: String
    ) throws(SpaceError) {
        switch s {
        case .bool:
            switch tag {
            case .true: slot.storeBytes(of: 1, as: UInt8.self)
            case .false: slot.storeBytes(of: 0, as: UInt8.self)
            default: throw mismatch(declared, try describe(tag, &args))
            }
        case .float, .double:
            let d: Double
            switch tag {
            case .double: d = Double(bitPattern: try args.readU64())
            case .int: d = Double(try args.readI64())
            case .uint: d = Double(try args.readU64())
            default: throw mismatch(declared, try describe(tag, &args))
            }
            if s == .float {
                slot.storeBytes(of: Float(d), toByteOffset: 0, as: Float.self)
            } else {
                slot.storeBytes(of: d, toByteOffset: 0, as: Double.self)
            }
        default:
            let range = s.integerRange
            let bits: UInt64
            switch tag {
            case .int:
                let v = try args.readI64()
                guard v >= range.min && (v < 0 || UInt64(v) <= range.max) else {
                    throw mismatch(declared, "integer \(v)", "out of range")
                }
                bits = UInt64(bitPattern: v)
            case .uint:
                let v = try args.readU64()
                guard v <= range.max else { throw mismatch(declared, "integer \(v)", "out of range") }
                bits = v
            default:
                throw mismatch(declared, try describe(tag, &args))
            }
            s.storeInteger(bits, slot)
        }
    }

    /// Describes the rest of a value whose tag was read, for an error message.
    private static func describe(_ tag: ValueTag, _ args: inout WireReader) throws(SpaceError) -> String {
        let value: Value
        switch tag {
        case .null: value = .null
        case .false: value = .bool(false)
        case .true: value = .bool(true)
        case .int: value = .int(try args.readI64())
        case .uint: value = .uint(try args.readU64())
        case .double: value = .double(Double(bitPattern: try args.readU64()))
        case .string: value = .string(try args.readString())
        case .handle: value = .handle(try args.readU64())
        case .callback: value = .callback(arity: Int(try args.readU8()))
        case .bytes: return "bytes (\(try args.readSlice().count) bytes)"
        case .array: return "an array"
        case .object: return "an object"
        }
        var text = "\(value.kindName) \(value)"
        if text.utf8.count > 80 { text = String(text.prefix(77)) + "..." }
        return text
    }

    // MARK: Lengths and out buffers

    private func fillLengths(_ base: UnsafeMutableRawPointer, state: inout CallState) throws(SpaceError) {
        for (i, p) in plan.parameters.enumerated() {
            guard case .length(let arrays, let s) = p else { continue }
            let count = state.buffers[arrays[0]].count
            for a in arrays.dropFirst() where state.buffers[a].count != count {
                let names = arrays.map { parameterName($0) }.joined(separator: " and ")
                throw SpaceError(.badArgument, "\(name): \(names) share the length \(parameterName(i)), so they must have the same number of elements (got \(count) and \(state.buffers[a].count))")
            }
            guard UInt64(count) <= s.integerRange.max else {
                throw SpaceError(.tooLarge, "\(name): \(parameterName(arrays[0])) has \(count) elements, more than its length \(parameterName(i)) can hold")
            }
            s.storeInteger(UInt64(count), base + i * 16)
        }
    }

    private func allocateOutputs(_ base: UnsafeMutableRawPointer, limit: Int, state: inout CallState) throws(SpaceError) {
        for i in plan.outputs {
            guard case .pointer(let p) = plan.parameters[i], p.direction == .out else { continue }
            let capacity: Int
            switch p.count {
            case .one: capacity = 1
            case .fixed(let n): capacity = n
            case .parameter(let j):
                capacity = try self.capacity(j, base + j * 16, as: plan.parameters[j].integer ?? .uint64, for: i)
            case .pointerParameter(let j):
                guard let q = state.buffers[j].pointer, case .pointer(let qp) = plan.parameters[j],
                      case .scalar(let s) = qp.element else {
                    throw SpaceError(.badArgument, "\(name): \(parameterName(j)) gives the capacity of \(parameterName(i)); it cannot be null")
                }
                capacity = try self.capacity(j, q, as: s, for: i)
            }
            let bytes = capacity.multipliedReportingOverflow(by: p.element.size)
            guard !bytes.overflow, bytes.partialValue <= limit else {
                throw SpaceError(.tooLarge, "\(name): \(parameterName(i)) would take \(capacity) elements of \(p.element.size) bytes, over the frame limit of \(limit) bytes it has to come back in")
            }
            let memory = try state.allocate(bytes.partialValue)
            base.advanced(by: i * 16).storeBytes(of: memory, as: UnsafeMutableRawPointer?.self)
            state.buffers[i] = (memory, capacity)
        }
    }

    /// The capacity held by parameter `j` (at `p`, of integer type `s`) for the out array `i`.
    private func capacity(_ j: Int, _ p: UnsafeRawPointer, as s: Scalar, for i: Int) throws(SpaceError) -> Int {
        let v = s.loadInteger(p)
        guard !(v.isSigned && v.signed < 0), let n = Int(exactly: v.unsigned) else {
            throw SpaceError(.badArgument, "\(name): the capacity \(parameterName(j)) of \(parameterName(i)) must not be negative, got \(v.signed)")
        }
        return n
    }

    // MARK: Results

    private func encodeOutput(
        _ i: Int, base: UnsafeMutableRawPointer, state: CallState, into out: inout WireWriter, handles: HandleTable
    ) throws(SpaceError) {
        guard case .pointer(let p) = plan.parameters[i] else { return }
        guard let memory = state.buffers[i].pointer else {
            out.writeValue(.null)
            return
        }
        var count = state.buffers[i].count
        if case .pointerParameter(let j) = p.count, let q = state.buffers[j].pointer,
           case .pointer(let qp) = plan.parameters[j], case .scalar(let s) = qp.element {
            // The function wrote how much it used; never read past what was allocated.
            count = Self.clamp(s.loadInteger(q), to: count)
        }
        if p.count == .one {
            try encodeElement(p.element, memory, into: &out, handles: handles)
            return
        }
        if p.isText {
            let used = memchr(memory, 0, count).map { UnsafeRawPointer($0) - UnsafeRawPointer(memory) } ?? count
            Self.encodeText(UnsafeRawBufferPointer(start: memory, count: used), into: &out)
            return
        }
        if p.isBytes {
            out.write(ValueTag.bytes.rawValue)
            out.writeString(bytes: UnsafeRawBufferPointer(start: memory, count: count))
            return
        }
        out.write(ValueTag.array.rawValue)
        out.write(UInt32(count))
        let size = p.element.size
        for k in 0..<count {
            try encodeElement(p.element, memory + k * size, into: &out, handles: handles)
        }
    }

    /// A length a function wrote, kept within the capacity it was given.
    private static func clamp(_ written: (signed: Int64, unsigned: UInt64, isSigned: Bool), to capacity: Int) -> Int {
        if written.isSigned && written.signed < 0 { return 0 }
        return written.unsigned > UInt64(capacity) ? capacity : Int(written.unsigned)
    }

    /// Appends the element at `p` as a tagged value.
    private func encodeElement(_ e: Element, _ p: UnsafeRawPointer, into out: inout WireWriter, handles: HandleTable) throws(SpaceError) {
        switch e {
        case .scalar(let s): s.encode(p, into: &out)
        case .string: Self.encodeString(p.loadUnaligned(as: UnsafePointer<CChar>?.self), into: &out)
        case .handle(let tag):
            if let pointer = p.loadUnaligned(as: UnsafeMutableRawPointer?.self) {
                out.write(ValueTag.handle.rawValue)
                out.write(try handles.insert(pointer, tag: tag, owner: owner, release: nil))
            } else {
                out.writeValue(.null)
            }
        case .structure(let layout):
            out.write(ValueTag.object.rawValue)
            out.write(UInt32(layout.fields.count))
            for f in layout.fields {
                out.writeString(f.name)
                try encodeElement(f.element, p + f.offset, into: &out, handles: handles)
            }
        }
    }

    static func encodeString(_ p: UnsafePointer<CChar>?, into out: inout WireWriter) {
        guard let p else {
            out.writeValue(.null)
            return
        }
        encodeText(UnsafeRawBufferPointer(start: p, count: strlen(p)), into: &out)
    }

    /// C text as a string, or as the exact bytes when it is not UTF-8 (never a mangled string).
    static func encodeText(_ raw: UnsafeRawBufferPointer, into out: inout WireWriter) {
        if String(validating: raw, as: UTF8.self) != nil {
            out.writeStringValue(bytes: raw)
        } else {
            out.write(ValueTag.bytes.rawValue)
            out.writeString(bytes: raw)
        }
    }

    private func encodeResult(_ rvalue: UnsafeMutableRawPointer, into out: inout WireWriter, handles: HandleTable) throws(SpaceError) {
        switch plan.result {
        case .void: out.writeValue(.null)
        case .scalar(let s):
            // libffi widens integer results narrower than a register to a full ffi_arg; on the
            // little-endian targets space supports, the value's own bytes come first in it.
            s.encode(rvalue, into: &out)
        case .string(let free):
            let p = rvalue.load(as: UnsafeMutablePointer<CChar>?.self)
            Self.encodeString(p, into: &out)
            if let free, let p { free(p) }
        case .structValue(let layout):
            try encodeElement(.structure(layout), rvalue, into: &out, handles: handles)
        case .structPointer(let layout, let free):
            if let p = rvalue.load(as: UnsafeMutableRawPointer?.self) {
                try encodeElement(.structure(layout), p, into: &out, handles: handles)
                free?(p)
            } else {
                out.writeValue(.null)
            }
        case .handle(let tag, let free):
            if let p = rvalue.load(as: UnsafeMutableRawPointer?.self) {
                out.write(ValueTag.handle.rawValue)
                out.write(try handles.insert(p, tag: tag, owner: owner, release: free))
            } else {
                out.writeValue(.null)
            }
        }
    }
}
