/// The one error type of `space`: every failure, in the host, the client, the daemon and the CLI.
///
/// A struct with an extensible ``Code`` (not a closed enum), so new failure kinds can be added without
/// breaking anyone who switches over codes: compare with `==` against the static codes.
public struct SpaceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. Its raw value is the stable name used on the wire and in
    /// `--json` output (`"unknownFunction"`).
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The stable name.
        public let rawValue: String
        /// Creates a code from its stable name.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The stable name.
        public var description: String { rawValue }

        /// No library file was found for the name given to `add`.
        public static let libraryNotFound = Code(rawValue: "libraryNotFound")
        /// `dlopen` found the file but could not load it.
        public static let loadFailed = Code(rawValue: "loadFailed")
        /// No plugin of that name has been added to the space.
        public static let unknownPackage = Code(rawValue: "unknownPackage")
        /// The package has no function of that name.
        public static let unknownFunction = Code(rawValue: "unknownFunction")
        /// An argument does not fit the declared C type.
        public static let badArgument = Code(rawValue: "badArgument")
        /// The number of arguments differs from the declaration.
        public static let arityMismatch = Code(rawValue: "arityMismatch")
        /// A C declaration (from a manifest or `add`) could not be parsed or resolved.
        public static let declarationError = Code(rawValue: "declarationError")
        /// A declared type is understood but cannot be marshaled yet.
        public static let unsupportedType = Code(rawValue: "unsupportedType")
        /// A package of that name is already added.
        public static let alreadyAdded = Code(rawValue: "alreadyAdded")
        /// The plugin's init hook refused to start.
        public static let initFailed = Code(rawValue: "initFailed")
        /// The space is not running (stopped, killed after inactivity, or destroyed).
        public static let notRunning = Code(rawValue: "notRunning")
        /// The host process died while the request was in flight.
        public static let crashed = Code(rawValue: "crashed")
        /// The host could not be started.
        public static let spawnFailed = Code(rawValue: "spawnFailed")
        /// A call or a handshake ran past its deadline.
        public static let timedOut = Code(rawValue: "timedOut")
        /// Bytes on the channel broke the protocol.
        public static let protocolError = Code(rawValue: "protocolError")
        /// A frame, string, argument list or nesting exceeded a limit.
        public static let tooLarge = Code(rawValue: "tooLarge")
        /// A system call failed; see ``SpaceError/errno``.
        public static let systemError = Code(rawValue: "systemError")
        /// A configuration value is wrong.
        public static let invalidConfiguration = Code(rawValue: "invalidConfiguration")
        /// The request was cancelled by its caller.
        public static let cancelled = Code(rawValue: "cancelled")
        /// A callback handler threw, or an invocation could not be relayed or answered as declared
        /// (the plugin got the zero value).
        public static let callbackFailed = Code(rawValue: "callbackFailed")
        /// The daemon has no space of that name (a space is made by its first `add`).
        public static let unknownSpace = Code(rawValue: "unknownSpace")
        /// The daemon refused the connection: it serves only its own user.
        public static let permissionDenied = Code(rawValue: "permissionDenied")
        /// The daemon is not running (and was not to be started).
        public static let daemonNotRunning = Code(rawValue: "daemonNotRunning")
        /// The call was in flight on a host that was killed because *another* call on it ran past
        /// its deadline (native code cannot be cancelled, so the whole host goes). Safe to retry.
        public static let interrupted = Code(rawValue: "interrupted")
        /// More calls per second than `limits.maxCallsPerSecond`; nothing was sent.
        public static let rateLimited = Code(rawValue: "rateLimited")
        /// `limits.maxInFlight` calls were running and `limits.maxQueued` were waiting; nothing was sent.
        public static let busy = Code(rawValue: "busy")
        /// The space died `control.allowedSequentialDeaths` + 1 times in a row, each within
        /// `control.exitThreshold` ms of its start, and is no longer restarted; calls fail fast until
        /// it is reloaded (`space reload`, `Space.reload()`, `Space.build()`).
        public static let dead = Code(rawValue: "dead")
        /// A sandbox layer that `sandbox.require` names could not be applied; the host was not started.
        public static let sandboxUnavailable = Code(rawValue: "sandboxUnavailable")
        /// The plugin made a system call the sandbox forbids, with `sandbox.onViolation: kill`: the
        /// host was killed. The message names the call.
        public static let sandboxViolation = Code(rawValue: "sandboxViolation")
    }

    /// Which argument a ``Code/badArgument`` error is about.
    public struct Argument: Sendable, Hashable {
        /// The argument's position, from 0.
        public var index: Int
        /// The declared C type, as C (`"int32_t"`).
        public var expected: String
        /// What was given, briefly (`"string \"abc\""`).
        public var got: String
        /// Creates an argument detail.
        public init(index: Int, expected: String, got: String) {
            self.index = index
            self.expected = expected
            self.got = got
        }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A message for a person: it names the library, function, argument or limit involved.
    public var message: String
    /// The underlying `errno`, when a system call failed.
    public var errno: Int32?
    /// For ``Code/badArgument``: which argument, what was expected, what was given.
    public var argument: Argument?

    /// Creates an error.
    public init(_ code: Code, _ message: String, errno: Int32? = nil, argument: Argument? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
        self.argument = argument
    }

    /// `code: message`, with the errno when there is one.
    public var description: String {
        var s = "\(code.rawValue): \(message)"
        if let errno { s += " (errno \(errno))" }
        return s
    }
}
