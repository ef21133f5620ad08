// How C values sit in memory: scalars, strings, handles and structs, with libffi types and byte
// layouts computed by libffi itself. The call machinery (FFIFunction) reads wire values into this
// memory and writes results out of it.
import CFFI
import CSpace
import SpaceWire

// Scalars are read from memory by their own bytes, also from a libffi return slot that holds them
// widened to a full register: that is only right on little-endian targets.
#if _endian(big)
#error("space marshals values for little-endian targets only")
#endif

/// A C scalar: how many bytes it takes and how libffi passes it.
enum Scalar: Sendable, Equatable {
    case bool
    case int8, uint8, int16, uint16, int32, uint32, int64, uint64
    case float, double

    init(_ integer: CInteger) {
        switch (integer.bits, integer.isSigned) {
        case (8, true): self = .int8
        case (8, false): self = .uint8
        case (16, true): self = .int16
        case (16, false): self = .uint16
        case (32, true): self = .int32
        case (32, false): self = .uint32
        case (64, true): self = .int64
        default: self = .uint64
        }
    }

    var size: Int {
        switch self {
        case .bool, .int8, .uint8: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float: return 4
        case .int64, .uint64, .double: return 8
        }
    }

    var isInteger: Bool {
        switch self {
        case .bool, .float, .double: return false
        default: return true
        }
    }

    var ffiType: UnsafeMutablePointer<ffi_type> {
        switch self {
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
        }
    }

    /// The integer range an integer scalar accepts.
    var integerRange: (min: Int64, max: UInt64) {
        switch self {
        case .int8: return (Int64(Int8.min), UInt64(Int8.max))
        case .uint8: return (0, UInt64(UInt8.max))
        case .int16: return (Int64(Int16.min), UInt64(Int16.max))
        case .uint16: return (0, UInt64(UInt16.max))
        case .int32: return (Int64(Int32.min), UInt64(Int32.max))
        case .uint32: return (0, UInt64(UInt32.max))
        case .int64: return (Int64.min, UInt64(Int64.max))
        case .uint64: return (0, UInt64.max)
        case .bool: return (0, 1)
        case .float, .double: return (0, 0)
        }
    }

    /// Reads an integer scalar from memory as a signed or unsigned 64-bit value.
    func loadInteger(_ p: UnsafeRawPointer) -> (signed: Int64, unsigned: UInt64, isSigned: Bool) {
        switch self {
        case .int8: let v = Int64(p.loadUnaligned(as: Int8.self)); return (v, UInt64(bitPattern: v), true)
        case .int16: let v = Int64(p.loadUnaligned(as: Int16.self)); return (v, UInt64(bitPattern: v), true)
        case .int32: let v = Int64(p.loadUnaligned(as: Int32.self)); return (v, UInt64(bitPattern: v), true)
        case .int64: let v = p.loadUnaligned(as: Int64.self); return (v, UInt64(bitPattern: v), true)
        case .uint8, .bool: let v = UInt64(p.loadUnaligned(as: UInt8.self)); return (Int64(v), v, false)
        case .uint16: let v = UInt64(p.loadUnaligned(as: UInt16.self)); return (Int64(v), v, false)
        case .uint32: let v = UInt64(p.loadUnaligned(as: UInt32.self)); return (Int64(v), v, false)
        case .uint64: let v = p.loadUnaligned(as: UInt64.self); return (Int64(bitPattern: v), v, false)
        case .float, .double: return (0, 0, true)
        }
    }

    /// Writes an integer to memory, truncated to the scalar's width.
    func storeInteger(_ bits: UInt64, _ p: UnsafeMutableRawPointer) {
        switch size {
        case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: bits), as: UInt8.self)
        case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: bits), toByteOffset: 0, as: UInt16.self)
        case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: bits), toByteOffset: 0, as: UInt32.self)
        default: p.storeBytes(of: bits, toByteOffset: 0, as: UInt64.self)
        }
    }

    /// Appends the scalar at `p` to `out` as a tagged value.
    func encode(_ p: UnsafeRawPointer, into out: inout WireWriter) {
        switch self {
        case .bool: out.writeBool(p.load(as: UInt8.self) != 0)
        case .float: out.writeDouble(Double(p.loadUnaligned(as: Float.self)))
        case .double: out.writeDouble(p.loadUnaligned(as: Double.self))
        case .uint64: out.writeUInt(p.loadUnaligned(as: UInt64.self))
        default: out.writeInt(loadInteger(p).signed)
        }
    }
}

/// One C value in memory: a scalar, a `char *` string, an opaque pointer held as a handle, or a struct.
indirect enum Element {
    case scalar(Scalar)
    /// `char *` inside a struct or an array: in, a copy the call owns; out, copied into the result.
    case string
    /// A pointer to an incomplete struct (`tag`) or to `void` (nil): a handle in the space's table.
    case handle(tag: String?)
    case structure(StructLayout)

    var size: Int {
        switch self {
        case .scalar(let s): return s.size
        case .string, .handle: return 8
        case .structure(let layout): return layout.size
        }
    }

    var alignment: Int {
        switch self {
        case .scalar(let s): return s.size
        case .string, .handle: return 8
        case .structure(let layout): return layout.alignment
        }
    }

    var ffiType: UnsafeMutablePointer<ffi_type> {
        switch self {
        case .scalar(let s): return s.ffiType
        case .string, .handle: return cs_ffi_type_pointer()
        case .structure(let layout): return layout.ffiType
        }
    }

    /// How the element is named in an error message.
    var description: String {
        switch self {
        case .scalar(let s):
            switch s {
            case .bool: return "bool"
            case .float: return "float"
            case .double: return "double"
            default: return s.integerRange.min < 0 ? "int\(s.size * 8)_t" : "uint\(s.size * 8)_t"
            }
        case .string: return "char *"
        case .handle(let tag): return tag.map { "struct \($0) *" } ?? "void *"
        case .structure(let layout): return "struct \(layout.name)"
        }
    }
}

/// A struct's layout: fields with byte offsets, its size and alignment, and the `ffi_type` libffi
/// passes it by value with. It owns the `ffi_type` and its element array and frees them in `deinit`.
final class StructLayout {
    struct Field {
        let name: String
        let offset: Int
        let element: Element
    }

    let name: String
    let fields: [Field]
    let size: Int
    let alignment: Int
    let ffiType: UnsafeMutablePointer<ffi_type>
    private let elements: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>
    /// The layouts of nested structs, kept alive as long as this one points at their types.
    private let nested: [StructLayout]

    /// Lays out `definition`; nested structs are built (once each) through `build`.
    init(_ definition: CStruct, fieldElements: [Element]) throws(SpaceError) {
        name = definition.name
        let n = fieldElements.count
        elements = .allocate(capacity: n + 1)
        for (i, e) in fieldElements.enumerated() { elements[i] = e.ffiType }
        elements[n] = nil
        ffiType = .allocate(capacity: 1)
        ffiType.initialize(to: ffi_type())
        ffiType.pointee.type = cs_ffi_type_struct_tag()
        ffiType.pointee.elements = elements
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
        defer { offsets.deallocate() }
        let status = cs_ffi_struct_offsets(ffiType, offsets)
        guard status == FFI_OK else {
            elements.deallocate()
            ffiType.deallocate()
            throw SpaceError(.declarationError, "libffi could not lay out struct \(definition.name) (status \(status.rawValue))")
        }
        size = Int(ffiType.pointee.size)
        alignment = Int(ffiType.pointee.alignment)
        var fields: [Field] = []
        var nested: [StructLayout] = []
        for (i, f) in definition.fields.enumerated() {
            fields.append(Field(name: f.name, offset: offsets[i], element: fieldElements[i]))
            if case .structure(let inner) = fieldElements[i] { nested.append(inner) }
        }
        self.fields = fields
        self.nested = nested
    }

    deinit {
        elements.deallocate()
        ffiType.deallocate()
    }
}

/// Builds elements and struct layouts for one function's declarations, sharing each struct's layout.
struct LayoutBuilder {
    let structs: [String: CStruct]
    private var built: [String: StructLayout] = [:]

    init(structs: [String: CStruct]) {
        self.structs = structs
    }

    /// The layout of `struct name`, or nil if it is not defined (an incomplete type).
    mutating func layout(_ name: String, depth: Int = 0) throws(SpaceError) -> StructLayout? {
        if let l = built[name] { return l }
        guard let definition = structs[name] else { return nil }
        guard depth < 32 else {
            throw SpaceError(.declarationError, "struct \(name) nests more than 32 levels deep")
        }
        var elements: [Element] = []
        for field in definition.fields {
            guard let e = try element(field.type, depth: depth + 1) else {
                throw SpaceError(.unsupportedType, "field '\(field.name)' of struct \(name) has type \(field.type), which a struct field cannot have (scalars, char *, opaque pointers and structs can)")
            }
            elements.append(e)
        }
        let layout = try StructLayout(definition, fieldElements: elements)
        built[name] = layout
        return layout
    }

    /// The element for a value of `type` stored in memory (a struct field or an array element).
    mutating func element(_ type: CType, depth: Int = 0) throws(SpaceError) -> Element? {
        switch type {
        case .bool: return .scalar(.bool)
        case .integer(let i): return .scalar(Scalar(i))
        case .float: return .scalar(.float)
        case .double: return .scalar(.double)
        case .structure(let name):
            guard let l = try layout(name, depth: depth) else {
                throw SpaceError(.declarationError, "struct \(name) is used by value but not defined")
            }
            return .structure(l)
        case .pointer(let pointee, _):
            if type.isString { return .string }
            switch pointee {
            case .void: return .handle(tag: nil)
            case .structure(let name) where structs[name] == nil: return .handle(tag: name)
            default: return nil
            }
        case .void, .functionPointer: return nil
        }
    }
}
