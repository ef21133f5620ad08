/// The wire protocol between a client and a space host. Byte layout: docs/protocol.md.
///
/// A frame is `u32 length` (little-endian, counting the bytes after it), `u8 kind`, `u32 id`, then a
/// kind-specific payload. Values are tagged: one tag byte, then a little-endian payload.
public enum Wire {
    /// The protocol version this build speaks; the host announces it in its hello frame.
    public static let protocolVersion: UInt16 = 1
    /// Bytes before a frame's payload: length (4), kind (1), id (4).
    public static let headerSize = 9
}

/// The kind byte of a frame.
public struct MessageKind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The byte on the wire.
    public let rawValue: UInt8
    /// Creates a kind from its byte.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Host → client, first frame: protocol version, pid, limits.
    public static let hello = MessageKind(rawValue: 0x01)
    /// Client → host: load a library.
    public static let add = MessageKind(rawValue: 0x02)
    /// Client → host: call a function.
    public static let call = MessageKind(rawValue: 0x03)
    /// Host → client: a request succeeded; payload is one value.
    public static let result = MessageKind(rawValue: 0x04)
    /// Host → client: a request failed; payload is an encoded ``SpaceError``.
    public static let error = MessageKind(rawValue: 0x05)
    /// Client → host: run a plugin's deinit and unload it.
    public static let remove = MessageKind(rawValue: 0x06)
    /// Client → host: answer with an empty result.
    public static let ping = MessageKind(rawValue: 0x07)
    /// Client → host: unload everything, answer, exit.
    public static let shutdown = MessageKind(rawValue: 0x08)
    /// Host → client: a callback of a call was invoked; `id` is the call's request id. Payload:
    /// ``CallbackEvent``. The answer, when one is expected, is a ``callbackReturn``.
    public static let callbackEvent = MessageKind(rawValue: 0x10)
    /// Client → host: the answer to a returning callback; `id` is the event's reply token. Payload:
    /// one value (`null` gives the plugin the zero value).
    public static let callbackReturn = MessageKind(rawValue: 0x11)
    /// Host → client: a call's callbacks are all gone (released by the plugin, at the end of a
    /// scoped call, or after a cancel); no event for that call follows. `id` is the call's id.
    /// Payload: `u64` invocations dropped after a cancel.
    public static let callbackRelease = MessageKind(rawValue: 0x12)
    /// Client → host: stop relaying a call's callbacks (`id` is the call's id); empty payload. The
    /// plugin may still call them; they then return the zero value and are counted.
    public static let callbackCancel = MessageKind(rawValue: 0x13)
    /// Host → client: an invocation could not be relayed or answered as declared (e.g. an answer of
    /// the wrong type); the plugin got the zero value. `id` is the call's id. Payload: `u16` slot,
    /// `u64` sequence, `str` message.
    public static let callbackFault = MessageKind(rawValue: 0x14)
    // 0x15–0x1F stay reserved.
    /// Client → daemon: a control request (`ls`, `status`, `kill`, ...); payload ``ControlRequest``.
    /// Answered with a ``result`` or an ``error``; a following request (`events --follow`) may get a
    /// stream of ``callbackEvent`` frames with its id, ended by a ``callbackRelease``. Hosts refuse it.
    public static let control = MessageKind(rawValue: 0x20)
    /// Client → daemon: a request with a deadline. Payload: `u32` milliseconds, `u8` the wrapped
    /// request's kind (``call`` or ``add``), then the wrapped request's payload; `id` is its id. The
    /// daemon runs it with that timeout (past it the space's host is killed and the request fails
    /// with `timedOut`). Hosts refuse it.
    public static let deadline = MessageKind(rawValue: 0x21)

    /// The kind's name.
    public var description: String {
        switch self {
        case .hello: return "hello"
        case .add: return "add"
        case .call: return "call"
        case .result: return "result"
        case .error: return "error"
        case .remove: return "remove"
        case .ping: return "ping"
        case .shutdown: return "shutdown"
        case .callbackEvent: return "callbackEvent"
        case .callbackReturn: return "callbackReturn"
        case .callbackRelease: return "callbackRelease"
        case .callbackCancel: return "callbackCancel"
        case .callbackFault: return "callbackFault"
        case .control: return "control"
        case .deadline: return "deadline"
        default: return "kind(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// The tag byte in front of every encoded ``Value``.
public enum ValueTag: UInt8, Sendable {
    /// No payload.
    case null = 0x00
    /// No payload.
    case `false` = 0x01
    /// No payload.
    case `true` = 0x02
    /// `i64` little-endian.
    case int = 0x03
    /// `u64` little-endian.
    case uint = 0x04
    /// IEEE-754 binary64, little-endian.
    case double = 0x05
    /// `u32` byte count, then UTF-8 bytes (no terminator).
    case string = 0x06
    /// `u32` byte count, then the bytes.
    case bytes = 0x07
    /// `u32` element count, then that many values.
    case array = 0x08
    /// `u32` field count, then per field a string body (`u32` count + UTF-8) and a value.
    case object = 0x09
    /// `u64` handle id.
    case handle = 0x0A
    /// `u8` arity.
    case callback = 0x0B
}

/// The limits every decoder enforces. A violation is a ``SpaceError/Code/tooLarge`` error, never a
/// crash, an unbounded allocation or a hang.
public struct WireLimits: Sendable, Hashable {
    /// Largest frame body (bytes after the length field).
    public var maxFrameSize: Int
    /// Most arguments in one call (and init arguments in one add).
    public var maxArguments: Int
    /// Deepest nesting of arrays and objects.
    public var maxDepth: Int
    /// Longest string or byte buffer.
    public var maxStringLength: Int

    /// 16 MiB frames and strings, 255 arguments, depth 32.
    public static let `default` = WireLimits(
        maxFrameSize: 16 << 20, maxArguments: 255, maxDepth: 32, maxStringLength: 16 << 20)

    /// Creates limits.
    public init(maxFrameSize: Int, maxArguments: Int, maxDepth: Int, maxStringLength: Int) {
        self.maxFrameSize = maxFrameSize
        self.maxArguments = maxArguments
        self.maxDepth = maxDepth
        self.maxStringLength = maxStringLength
    }
}

// MARK: - Writing

/// Builds frames into a growable byte buffer.
public struct WireWriter: Sendable {
    /// The encoded bytes.
    public private(set) var bytes: [UInt8]
    private var frameStart = -1

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Makes room for at least `capacity` bytes in total.
    public mutating func reserveCapacity(_ capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// Forgets all bytes, keeping the storage.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        frameStart = -1
    }

    /// Starts a frame; finish it with ``endFrame()``.
    public mutating func beginFrame(_ kind: MessageKind, id: UInt32) {
        precondition(frameStart < 0, "beginFrame inside a frame")
        frameStart = bytes.count
        write(UInt32(0))
        write(kind.rawValue)
        write(id)
    }

    /// Patches the length of the frame begun last.
    public mutating func endFrame() {
        precondition(frameStart >= 0, "endFrame without beginFrame")
        let length = UInt32(truncatingIfNeeded: bytes.count - frameStart - 4)
        bytes[frameStart] = UInt8(truncatingIfNeeded: length)
        bytes[frameStart + 1] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[frameStart + 2] = UInt8(truncatingIfNeeded: length >> 16)
        bytes[frameStart + 3] = UInt8(truncatingIfNeeded: length >> 24)
        frameStart = -1
    }

    /// Drops the frame begun last, as if it had never been started (an error replaced it).
    public mutating func abandonFrame() {
        precondition(frameStart >= 0, "abandonFrame without beginFrame")
        bytes.removeSubrange(frameStart...)
        frameStart = -1
    }

    /// Rewrites the writer's only frame as a ``MessageKind/deadline`` frame wrapping it, with the
    /// same id.
    public mutating func wrapLastFrameWithTimeout(milliseconds: UInt32) {
        precondition(frameStart < 0 && bytes.count >= Wire.headerSize, "wrapLastFrameWithTimeout needs one finished frame")
        let kind = bytes[4]
        var wrapped: [UInt8] = []
        wrapped.reserveCapacity(bytes.count + 5)
        wrapped += bytes[0..<4]
        wrapped.append(MessageKind.deadline.rawValue)
        wrapped += bytes[5..<9]
        withUnsafeBytes(of: milliseconds.littleEndian) { wrapped.append(contentsOf: $0) }
        wrapped.append(kind)
        wrapped += bytes[9...]
        let length = UInt32(truncatingIfNeeded: wrapped.count - 4)
        withUnsafeBytes(of: length.littleEndian) { raw in
            for i in 0..<4 { wrapped[i] = raw[i] }
        }
        bytes = wrapped
    }

    /// Bytes in the frame begun last, after its length field.
    public var currentFrameSize: Int { frameStart < 0 ? 0 : bytes.count - frameStart - 4 }

    /// Appends one byte.
    public mutating func write(_ v: UInt8) { bytes.append(v) }
    /// Appends a little-endian `u16`.
    public mutating func write(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
    }
    /// Appends a little-endian `u32`.
    public mutating func write(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    /// Appends a little-endian `u64`.
    public mutating func write(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    /// Appends a little-endian `i32`.
    public mutating func write(_ v: Int32) { write(UInt32(bitPattern: v)) }
    /// Appends a little-endian `i64`.
    public mutating func write(_ v: Int64) { write(UInt64(bitPattern: v)) }

    /// Appends a string body: `u32` byte count, then UTF-8.
    public mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            write(UInt32(truncatingIfNeeded: utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// Appends a string body from raw bytes.
    public mutating func writeString(bytes raw: UnsafeRawBufferPointer) {
        write(UInt32(truncatingIfNeeded: raw.count))
        bytes.append(contentsOf: raw)
    }

    /// Appends a tagged value.
    public mutating func writeValue(_ value: Value) {
        switch value {
        case .null: write(ValueTag.null.rawValue)
        case .bool(let b): write(b ? ValueTag.true.rawValue : ValueTag.false.rawValue)
        case .int(let v): writeInt(v)
        case .uint(let v):
            write(ValueTag.uint.rawValue)
            write(v)
        case .double(let d): writeDouble(d)
        case .string(let s):
            write(ValueTag.string.rawValue)
            writeString(s)
        case .bytes(let b):
            write(ValueTag.bytes.rawValue)
            write(UInt32(truncatingIfNeeded: b.count))
            bytes.append(contentsOf: b)
        case .array(let xs):
            write(ValueTag.array.rawValue)
            write(UInt32(truncatingIfNeeded: xs.count))
            for x in xs { writeValue(x) }
        case .object(let fields):
            write(ValueTag.object.rawValue)
            write(UInt32(truncatingIfNeeded: fields.count))
            for f in fields {
                writeString(f.name)
                writeValue(f.value)
            }
        case .handle(let h):
            write(ValueTag.handle.rawValue)
            write(h)
        case .callback(let arity):
            precondition((0...255).contains(arity), "callback arity \(arity) is outside 0...255")
            write(ValueTag.callback.rawValue)
            write(UInt8(truncatingIfNeeded: arity))
        }
    }

    /// Appends a tagged `.int`.
    public mutating func writeInt(_ v: Int64) {
        write(ValueTag.int.rawValue)
        write(v)
    }

    /// Appends a tagged `.uint`, or `.int` when it fits (one canonical encoding per number).
    public mutating func writeUInt(_ v: UInt64) {
        if v <= UInt64(Int64.max) {
            writeInt(Int64(v))
        } else {
            write(ValueTag.uint.rawValue)
            write(v)
        }
    }

    /// Appends a tagged `.double`.
    public mutating func writeDouble(_ d: Double) {
        write(ValueTag.double.rawValue)
        write(d.bitPattern)
    }

    /// Appends a tagged `.bool`.
    public mutating func writeBool(_ b: Bool) {
        write(b ? ValueTag.true.rawValue : ValueTag.false.rawValue)
    }

    /// Appends a tagged `.string` from raw UTF-8 bytes.
    public mutating func writeStringValue(bytes raw: UnsafeRawBufferPointer) {
        write(ValueTag.string.rawValue)
        writeString(bytes: raw)
    }

    /// Appends an error payload (see ``WireReader/readError()``).
    public mutating func writeError(_ e: SpaceError) {
        writeString(e.code.rawValue)
        writeString(e.message)
        write(e.errno ?? 0)
        write(Int32(truncatingIfNeeded: e.argument?.index ?? -1))
        writeString(e.argument?.expected ?? "")
        writeString(e.argument?.got ?? "")
    }
}

// MARK: - Reading

/// Reads the payload of one frame. Every read is bounds-checked and throws a typed error.
///
/// It borrows the bytes it reads: use it only inside the scope that owns them.
public struct WireReader {
    @usableFromInline let base: UnsafeRawBufferPointer
    /// The read position.
    public private(set) var offset: Int
    /// The limits enforced.
    public let limits: WireLimits

    /// Reads `bytes` from the start.
    public init(_ bytes: UnsafeRawBufferPointer, limits: WireLimits = .default) {
        self.base = bytes
        self.offset = 0
        self.limits = limits
    }

    /// Bytes not read yet.
    public var remaining: Int { base.count - offset }
    /// True when everything was read.
    public var isAtEnd: Bool { offset == base.count }

    @inline(__always)
    mutating func need(_ n: Int) throws(SpaceError) {
        if n > base.count - offset {
            throw SpaceError(.protocolError, "truncated payload: needed \(n) bytes at offset \(offset), \(base.count - offset) left")
        }
    }

    /// Reads one byte.
    public mutating func readU8() throws(SpaceError) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return base[offset]
    }

    /// Reads a little-endian `u16`.
    public mutating func readU16() throws(SpaceError) -> UInt16 {
        try need(2)
        defer { offset += 2 }
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// Reads a little-endian `u32`.
    public mutating func readU32() throws(SpaceError) -> UInt32 {
        try need(4)
        defer { offset += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// Reads a little-endian `u64`.
    public mutating func readU64() throws(SpaceError) -> UInt64 {
        try need(8)
        defer { offset += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Reads a little-endian `i32`.
    public mutating func readI32() throws(SpaceError) -> Int32 { Int32(bitPattern: try readU32()) }
    /// Reads a little-endian `i64`.
    public mutating func readI64() throws(SpaceError) -> Int64 { Int64(bitPattern: try readU64()) }

    /// Reads a length-prefixed byte run without copying; the result borrows the frame.
    public mutating func readSlice() throws(SpaceError) -> UnsafeRawBufferPointer {
        let n = Int(try readU32())
        if n > limits.maxStringLength {
            throw SpaceError(.tooLarge, "string of \(n) bytes exceeds the limit of \(limits.maxStringLength)")
        }
        try need(n)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: base[offset..<offset + n])
    }

    /// Reads a string body (`u32` count + UTF-8), validating the UTF-8.
    public mutating func readString() throws(SpaceError) -> String {
        let start = offset
        let slice = try readSlice()
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw SpaceError(.protocolError, "invalid UTF-8 in string at offset \(start)")
        }
        return s
    }

    /// Reads one tag byte.
    public mutating func readTag() throws(SpaceError) -> ValueTag {
        let at = offset
        let b = try readU8()
        guard let tag = ValueTag(rawValue: b) else {
            throw SpaceError(.protocolError, "unknown value tag 0x\(String(b, radix: 16)) at offset \(at)")
        }
        return tag
    }

    /// Reads a count and checks that that many items of at least `minItemSize` bytes could follow,
    /// so a hostile count never causes a large allocation.
    mutating func readCount(minItemSize: Int) throws(SpaceError) -> Int {
        let n = Int(try readU32())
        if n > remaining / minItemSize {
            throw SpaceError(.protocolError, "count \(n) at offset \(offset - 4) exceeds the bytes left (\(remaining))")
        }
        return n
    }

    /// Reads a tagged value.
    public mutating func readValue() throws(SpaceError) -> Value {
        try readValue(depth: 0)
    }

    mutating func readValue(depth: Int) throws(SpaceError) -> Value {
        switch try readTag() {
        case .null: return .null
        case .false: return .bool(false)
        case .true: return .bool(true)
        case .int: return .int(try readI64())
        case .uint: return .uint(try readU64())
        case .double: return .double(Double(bitPattern: try readU64()))
        case .string: return .string(try readString())
        case .bytes: return .bytes(Array(try readSlice()))
        case .array:
            guard depth < limits.maxDepth else { throw depthError() }
            let n = try readCount(minItemSize: 1)
            var xs: [Value] = []
            // Reserve at most a little up front: nested counts that each claim "all the bytes left"
            // must not multiply into gigabytes of reservations.
            xs.reserveCapacity(Swift.min(n, 1024))
            for _ in 0..<n { xs.append(try readValue(depth: depth + 1)) }
            return .array(xs)
        case .object:
            guard depth < limits.maxDepth else { throw depthError() }
            let n = try readCount(minItemSize: 5)
            var fields: [Value.Field] = []
            fields.reserveCapacity(Swift.min(n, 1024))
            for _ in 0..<n {
                let name = try readString()
                fields.append(Value.Field(name, try readValue(depth: depth + 1)))
            }
            return .object(fields)
        case .handle: return .handle(try readU64())
        case .callback: return .callback(arity: Int(try readU8()))
        }
    }

    private func depthError() -> SpaceError {
        SpaceError(.tooLarge, "values nested deeper than the limit of \(limits.maxDepth)")
    }

    /// Reads an argument count (`u16`), enforcing ``WireLimits/maxArguments``.
    public mutating func readArgumentCount() throws(SpaceError) -> Int {
        let n = Int(try readU16())
        if n > limits.maxArguments {
            throw SpaceError(.tooLarge, "\(n) arguments exceed the limit of \(limits.maxArguments)")
        }
        if n > remaining {
            throw SpaceError(.protocolError, "argument count \(n) exceeds the bytes left (\(remaining))")
        }
        return n
    }

    /// Reads an error payload written by ``WireWriter/writeError(_:)``.
    public mutating func readError() throws(SpaceError) -> SpaceError {
        let code = try readString()
        let message = try readString()
        let errno = try readI32()
        let index = try readI32()
        let expected = try readString()
        let got = try readString()
        return SpaceError(
            SpaceError.Code(rawValue: code), message,
            errno: errno == 0 ? nil : errno,
            argument: index < 0 ? nil : SpaceError.Argument(index: Int(index), expected: expected, got: got))
    }

    /// Throws unless every byte was read.
    public func expectEnd(_ what: @autoclosure () -> String) throws(SpaceError) {
        if !isAtEnd {
            throw SpaceError(.protocolError, "\(remaining) unexpected bytes after \(what())")
        }
    }
}
