/// The payload of a hello frame: the host's first words after it starts.
public struct Hello: Sendable, Hashable {
    /// The protocol version the host speaks (``Wire/protocolVersion``).
    public var protocolVersion: UInt16
    /// The host's process id.
    public var pid: Int32
    /// The largest frame body the host accepts.
    public var maxFrameSize: UInt32
    /// Sandbox layers in force, as a bit set (``SandboxLayers``).
    public var sandboxLayers: UInt64
    /// The host's build version.
    public var hostVersion: String

    /// Creates a hello.
    public init(protocolVersion: UInt16 = Wire.protocolVersion, pid: Int32, maxFrameSize: UInt32,
                sandboxLayers: UInt64 = 0, hostVersion: String) {
        self.protocolVersion = protocolVersion
        self.pid = pid
        self.maxFrameSize = maxFrameSize
        self.sandboxLayers = sandboxLayers
        self.hostVersion = hostVersion
    }

    /// The sandbox layers in force.
    public var layers: SandboxLayers { SandboxLayers(rawValue: sandboxLayers) }

    /// Appends the payload.
    public func encode(into w: inout WireWriter) {
        w.write(protocolVersion)
        w.write(pid)
        w.write(maxFrameSize)
        w.write(sandboxLayers)
        w.writeString(hostVersion)
    }

    /// Reads the payload. The version comes first so that any later layout can still be refused cleanly.
    public static func decode(_ r: inout WireReader) throws(SpaceError) -> Hello {
        let version = try r.readU16()
        guard version == Wire.protocolVersion else {
            throw SpaceError(.protocolError, "host speaks protocol version \(version), this client speaks \(Wire.protocolVersion)")
        }
        let hello = Hello(protocolVersion: version, pid: try r.readI32(), maxFrameSize: try r.readU32(),
                          sandboxLayers: try r.readU64(), hostVersion: try r.readString())
        try r.expectEnd("hello")
        return hello
    }
}

/// The payload of an add frame.
public struct AddRequest: Sendable, Hashable {
    /// What to load: a path (contains `/`) or a name to search for.
    public var library: String
    /// The package name calls will use; empty means the manifest's name, else the library name.
    public var alias: String
    /// C declarations for a library without a manifest (may be empty).
    public var declarations: String
    /// Arguments for the plugin's init hook.
    public var initArguments: [String]
    /// A replay: the client restarting a host sends an add it already made once, whose answer it
    /// has. The host answers with the package name only and reads the manifest's declarations when
    /// each function is first called, so a respawn does not pay for parsing what it already checked.
    public var isReplay: Bool

    /// Creates an add request.
    public init(library: String, alias: String = "", declarations: String = "", initArguments: [String] = [],
                isReplay: Bool = false) {
        self.library = library
        self.alias = alias
        self.declarations = declarations
        self.initArguments = initArguments
        self.isReplay = isReplay
    }

    /// Appends the payload.
    public func encode(into w: inout WireWriter) {
        w.writeString(library)
        w.writeString(alias)
        w.writeString(declarations)
        w.write(UInt16(truncatingIfNeeded: initArguments.count))
        for a in initArguments { w.writeString(a) }
        w.write(UInt8(isReplay ? 1 : 0))
    }

    /// Reads the payload.
    public static func decode(_ r: inout WireReader) throws(SpaceError) -> AddRequest {
        let library = try r.readString()
        let alias = try r.readString()
        let declarations = try r.readString()
        let n = try r.readArgumentCount()
        var args: [String] = []
        args.reserveCapacity(n)
        for _ in 0..<n { args.append(try r.readString()) }
        let flags = try r.readU8()
        guard flags & ~1 == 0 else {
            throw SpaceError(.protocolError, "add: unknown flags 0x\(String(flags, radix: 16))")
        }
        try r.expectEnd("add")
        return AddRequest(library: library, alias: alias, declarations: declarations, initArguments: args,
                          isReplay: flags & 1 != 0)
    }
}

extension WireWriter {
    /// Appends a whole call frame: package, function, argument count, tagged arguments.
    public mutating func writeCall(id: UInt32, package: String, function: String, arguments: [Value]) {
        // One allocation of the right size: a buffer argument must not be copied on every doubling.
        var size = Wire.headerSize + 10 + package.utf8.count + function.utf8.count
        for a in arguments { size += a.encodedSize }
        reserveCapacity(bytes.count + size)
        beginFrame(.call, id: id)
        writeString(package)
        writeString(function)
        write(UInt16(truncatingIfNeeded: arguments.count))
        for a in arguments { writeValue(a) }
        endFrame()
    }
}

/// The payload of a ``MessageKind/callbackEvent`` frame: one invocation of a callback.
///
/// ```
/// u16  slot       which cb: argument of the call, from 0 (in argument order)
/// u64  sequence   per slot, from 0: the order the plugin's invocations were relayed in
/// u32  reply      0 = the callback returns void, no answer; else the id the answer frame carries
/// u16  argc
/// argc × value    the callback's arguments, as declared
/// ```
public struct CallbackEvent: Sendable, Hashable {
    /// The index of the `cb:` placeholder among the call's callback arguments, from 0.
    public var slot: Int
    /// The invocation's number within its slot, from 0.
    public var sequence: UInt64
    /// The id a ``MessageKind/callbackReturn`` must carry, or 0 when no answer is expected.
    public var reply: UInt32
    /// The callback's arguments.
    public var arguments: [Value]

    /// Creates an event.
    public init(slot: Int, sequence: UInt64, reply: UInt32 = 0, arguments: [Value]) {
        self.slot = slot
        self.sequence = sequence
        self.reply = reply
        self.arguments = arguments
    }

    /// Appends the payload.
    public func encode(into w: inout WireWriter) {
        w.write(UInt16(truncatingIfNeeded: slot))
        w.write(sequence)
        w.write(reply)
        w.write(UInt16(truncatingIfNeeded: arguments.count))
        for a in arguments { w.writeValue(a) }
    }

    /// Reads the payload.
    public static func decode(_ r: inout WireReader) throws(SpaceError) -> CallbackEvent {
        let slot = Int(try r.readU16())
        let sequence = try r.readU64()
        let reply = try r.readU32()
        let n = try r.readArgumentCount()
        var args: [Value] = []
        args.reserveCapacity(n)
        for _ in 0..<n { args.append(try r.readValue()) }
        try r.expectEnd("callbackEvent")
        return CallbackEvent(slot: slot, sequence: sequence, reply: reply, arguments: args)
    }
}

/// The payload of a ``MessageKind/callbackFault`` frame.
public struct CallbackFault: Sendable, Hashable {
    /// The slot of the invocation that failed.
    public var slot: Int
    /// Its sequence number.
    public var sequence: UInt64
    /// What went wrong, for a person.
    public var message: String

    /// Creates a fault.
    public init(slot: Int, sequence: UInt64, message: String) {
        self.slot = slot
        self.sequence = sequence
        self.message = message
    }

    /// Appends the payload.
    public func encode(into w: inout WireWriter) {
        w.write(UInt16(truncatingIfNeeded: slot))
        w.write(sequence)
        w.writeString(message)
    }

    /// Reads the payload.
    public static func decode(_ r: inout WireReader) throws(SpaceError) -> CallbackFault {
        let fault = CallbackFault(slot: Int(try r.readU16()), sequence: try r.readU64(), message: try r.readString())
        try r.expectEnd("callbackFault")
        return fault
    }
}

/// The payload of a ``MessageKind/control`` frame: a request to the daemon.
///
/// ```
/// str    operation   "attach", "ls", "status", "stats", "events", "kill", "reload", "info", "shutdown", ...
/// value  arguments   an object (e.g. {"space": "default"}), or null
/// ```
public struct ControlRequest: Sendable, Hashable {
    /// What to do.
    public var operation: String
    /// Its arguments.
    public var arguments: Value

    /// Creates a control request.
    public init(_ operation: String, _ arguments: Value = .null) {
        self.operation = operation
        self.arguments = arguments
    }

    /// Appends the payload.
    public func encode(into w: inout WireWriter) {
        w.writeString(operation)
        w.writeValue(arguments)
    }

    /// Reads the payload.
    public static func decode(_ r: inout WireReader) throws(SpaceError) -> ControlRequest {
        let request = ControlRequest(try r.readString(), try r.readValue())
        try r.expectEnd("control")
        return request
    }
}
