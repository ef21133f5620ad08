import CFFI
import CSpace
import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// How one parameter or return value is marshaled between a wire value and C storage.
@usableFromInline
enum Marshal: Sendable {
    case void
    case bool
    case int8, uint8, int16, uint16, int32, uint32, int64, uint64
    case float, double
    /// `const char *` in: a string (copied, NUL-terminated) or null.
    case stringIn
    /// `char *` / `const char *` returned: copied into the reply; NULL becomes null.
    case stringOut

    var ffiType: UnsafeMutablePointer<ffi_type> {
        switch self {
        case .void: return cs_ffi_type_void()
        case .bool, .uint8: return cs_ffi_type_uint8()
        case .int8: return cs_ffi_type_sint8()
        case .int16: return cs_ffi_type_sint16()
        case .uint16: return cs_ffi_type_uint16()
        case .int32: return cs_ffi_type_sint32()
        case .uint32: return cs_ffi_type_uint32()
        case .int64: return cs_ffi_type_sint64()
        case .uint64: return cs_ffi_type_uint64()
        case .float: return cs_ffi_type_float()
        case .double: return cs_ffi_type_double()
        case .stringIn, .stringOut: return cs_ffi_type_pointer()
        }
    }

    /// The integer range a parameter accepts.
    var integerRange: (min: Int64, max: UInt64)? {
        switch self {
        case .int8: return (Int64(Int8.min), UInt64(Int8.max))
        case .uint8: return (0, UInt64(UInt8.max))
        case .int16: return (Int64(Int16.min), UInt64(Int16.max))
        case .uint16: return (0, UInt64(UInt16.max))
        case .int32: return (Int64(Int32.min), UInt64(Int32.max))
        case .uint32: return (0, UInt64(UInt32.max))
        case .int64: return (Int64.min, UInt64(Int64.max))
        case .uint64: return (0, UInt64.max)
        default: return nil
        }
    }

    static func parameter(_ type: CType) -> Marshal? {
        switch type {
        case .bool: return .bool
        case .integer(let i): return integer(i)
        case .float: return .float
        case .double: return .double
        case .pointer(let pointee, let isConst) where isConst && type.isString:
            _ = pointee
            return .stringIn
        default: return nil
        }
    }

    static func result(_ type: CType) -> Marshal? {
        switch type {
        case .void: return .void
        case .bool: return .bool
        case .integer(let i): return integer(i)
        case .float: return .float
        case .double: return .double
        case .pointer where type.isString: return .stringOut
        default: return nil
        }
    }

    private static func integer(_ i: CInteger) -> Marshal {
        switch (i.bits, i.isSigned) {
        case (8, true): return .int8
        case (8, false): return .uint8
        case (16, true): return .int16
        case (16, false): return .uint16
        case (32, true): return .int32
        case (32, false): return .uint32
        case (64, true): return .int64
        default: return .uint64
        }
    }
}

/// A native function ready to be called through libffi: its declaration, its code pointer and a call
/// interface (`ffi_cif`) prepared once. It owns the cif and its type array and frees them in `deinit`.
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
    private let parameters: [Marshal]
    private let result: Marshal
    private let cif: UnsafeMutablePointer<ffi_cif>
    private let argTypes: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>

    /// Prepares `code` as a function of `type`.
    ///
    /// A declaration with types not marshaled yet still loads; calling it gives
    /// ``SpaceError/Code/unsupportedType`` naming the parameter.
    public init(name: String, type: CFunctionType, code: UnsafeMutableRawPointer) throws(SpaceError) {
        self.name = name
        self.type = type
        self.code = code
        var unsupported: String?
        var params: [Marshal] = []
        for (i, p) in type.parameters.enumerated() {
            if let m = Marshal.parameter(p.type) {
                params.append(m)
            } else {
                unsupported = unsupported ?? "parameter \(i) (\(p.name ?? "unnamed")) of type \(p.type) is not supported yet"
                params.append(.int64)
            }
        }
        var result = Marshal.result(type.returnType)
        if result == nil {
            unsupported = unsupported ?? "return type \(type.returnType) is not supported yet"
            result = .void
        }
        if type.isVariadic {
            unsupported = unsupported ?? "variadic functions are not supported yet"
        }
        self.unsupported = unsupported
        self.parameters = params
        self.result = result!
        self.cif = .allocate(capacity: 1)
        self.argTypes = .allocate(capacity: max(params.count, 1))
        for (i, p) in params.enumerated() { argTypes[i] = p.ffiType }
        let status = cs_ffi_prep_cif(cif, UInt32(params.count), self.result.ffiType, argTypes)
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

    /// The number of parameters.
    public var arity: Int { parameters.count }

    /// Calls the function with `count` tagged arguments read from `args`, and appends the tagged
    /// result to `out`. Arguments are checked against the declaration before anything runs.
    public func call(arguments args: inout WireReader, count: Int, into out: inout WireWriter) throws(SpaceError) {
        if let unsupported {
            throw SpaceError(.unsupportedType, "\(name) cannot be called: \(unsupported)")
        }
        guard count == parameters.count else {
            throw SpaceError(.arityMismatch, "\(name) takes \(parameters.count) argument\(parameters.count == 1 ? "" : "s") (\(type)), got \(count)")
        }
        let n = parameters.count
        // One 16-byte slot per argument, then the argument pointer array, then the return slot.
        try withUnsafeTemporaryAllocation(byteCount: (n + 1) * 16 + n * 8, alignment: 16) { (raw) throws(SpaceError) in
            let base = raw.baseAddress!
            let values = (base + (n + 1) * 16).bindMemory(to: UnsafeMutableRawPointer?.self, capacity: n)
            let rvalue = base + n * 16
            var owned: [UnsafeMutablePointer<CChar>] = []
            defer { for p in owned { free(p) } }
            for i in 0..<n {
                let slot = base + i * 16
                values[i] = slot
                try store(parameters[i], index: i, from: &args, into: slot, owned: &owned)
            }
            try args.expectEnd("the arguments of \(name)")
            cs_ffi_call(cif, code, rvalue, values)
            encodeResult(rvalue, into: &out)
        }
    }

    private func badArgument(_ index: Int, _ got: String, _ detail: String? = nil) -> SpaceError {
        let expected = type.parameters[index].type.description
        let name = type.parameters[index].name.map { " (\($0))" } ?? ""
        return SpaceError(
            .badArgument,
            "argument \(index)\(name) of \(self.name): expected \(expected), got \(got)\(detail.map { ": " + $0 } ?? "")",
            argument: SpaceError.Argument(index: index, expected: expected, got: got))
    }

    @inline(__always)
    private func store(_ kind: Marshal, index: Int, from args: inout WireReader,
                       into slot: UnsafeMutableRawPointer, owned: inout [UnsafeMutablePointer<CChar>]) throws(SpaceError) {
        let tag = try args.readTag()
        switch kind {
        case .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64, .uint64:
            let range = kind.integerRange!
            let bits: UInt64
            switch tag {
            case .int:
                let v = try args.readI64()
                guard v >= range.min && (v < 0 || UInt64(v) <= range.max) else {
                    throw badArgument(index, "integer \(v)", "out of range")
                }
                bits = UInt64(bitPattern: v)
            case .uint:
                let v = try args.readU64()
                guard v <= range.max else { throw badArgument(index, "integer \(v)", "out of range") }
                bits = v
            default:
                throw badArgument(index, try describe(tag, &args))
            }
            switch kind {
            case .int8, .uint8: slot.storeBytes(of: UInt8(truncatingIfNeeded: bits), as: UInt8.self)
            case .int16, .uint16: slot.storeBytes(of: UInt16(truncatingIfNeeded: bits), as: UInt16.self)
            case .int32, .uint32: slot.storeBytes(of: UInt32(truncatingIfNeeded: bits), as: UInt32.self)
            default: slot.storeBytes(of: bits, as: UInt64.self)
            }
        case .double, .float:
            let d: Double
            switch tag {
            case .double: d = Double(bitPattern: try args.readU64())
            case .int: d = Double(try args.readI64())
            case .uint: d = Double(try args.readU64())
            default: throw badArgument(index, try describe(tag, &args))
            }
            if case .float = kind {
                slot.storeBytes(of: Float(d), as: Float.self)
            } else {
                slot.storeBytes(of: d, as: Double.self)
            }
        case .bool:
            switch tag {
            case .true: slot.storeBytes(of: 1, as: UInt8.self)
            case .false: slot.storeBytes(of: 0, as: UInt8.self)
            default: throw badArgument(index, try describe(tag, &args))
            }
        case .stringIn:
            switch tag {
            case .null:
                slot.storeBytes(of: nil, as: UnsafeMutablePointer<CChar>?.self)
            case .string:
                let bytes = try args.readSlice()
                if bytes.contains(0) {
                    throw badArgument(index, "a string with an embedded NUL byte", "a C string ends at its first NUL; pass bytes instead")
                }
                let p = malloc(bytes.count + 1)!.assumingMemoryBound(to: CChar.self)
                if bytes.count > 0 { memcpy(p, bytes.baseAddress!, bytes.count) }
                p[bytes.count] = 0
                owned.append(p)
                slot.storeBytes(of: p, as: UnsafeMutablePointer<CChar>?.self)
            default:
                throw badArgument(index, try describe(tag, &args))
            }
        case .void, .stringOut:
            preconditionFailure("not a parameter kind")
        }
    }

    /// Reads the rest of a value of kind `tag` and describes it for an error message.
    private func describe(_ tag: ValueTag, _ args: inout WireReader) throws(SpaceError) -> String {
        // Re-read the whole value for an exact description (the tag was consumed already).
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
        case .bytes, .array, .object:
            return tag == .bytes ? "bytes" : tag == .array ? "an array" : "an object"
        }
        var text = "\(value.kindName) \(value)"
        if text.utf8.count > 80 { text = String(text.prefix(77)) + "..." }
        return text
    }

    private func encodeResult(_ rvalue: UnsafeMutableRawPointer, into out: inout WireWriter) {
        // libffi widens integer results narrower than a register to a full ffi_arg.
        let word = rvalue.load(as: UInt64.self)
        switch result {
        case .void: out.writeValue(.null)
        case .bool: out.writeBool(UInt8(truncatingIfNeeded: word) != 0)
        case .int8: out.writeInt(Int64(Int8(truncatingIfNeeded: word)))
        case .uint8: out.writeInt(Int64(UInt8(truncatingIfNeeded: word)))
        case .int16: out.writeInt(Int64(Int16(truncatingIfNeeded: word)))
        case .uint16: out.writeInt(Int64(UInt16(truncatingIfNeeded: word)))
        case .int32: out.writeInt(Int64(Int32(truncatingIfNeeded: word)))
        case .uint32: out.writeInt(Int64(UInt32(truncatingIfNeeded: word)))
        case .int64: out.writeInt(Int64(bitPattern: word))
        case .uint64: out.writeUInt(word)
        case .float: out.writeDouble(Double(rvalue.load(as: Float.self)))
        case .double: out.writeDouble(rvalue.load(as: Double.self))
        case .stringOut:
            if let p = rvalue.load(as: UnsafePointer<CChar>?.self) {
                let raw = UnsafeRawBufferPointer(start: p, count: strlen(p))
                if String(validating: raw, as: UTF8.self) != nil {
                    out.writeStringValue(bytes: raw)
                } else {
                    // Not UTF-8: hand the caller the exact bytes rather than a mangled string.
                    out.writeValue(.bytes(Array(raw)))
                }
            } else {
                out.writeValue(.null)
            }
        case .stringIn:
            preconditionFailure("not a result kind")
        }
    }
}
