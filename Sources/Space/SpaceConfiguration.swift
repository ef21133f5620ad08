import SpaceWire

/// How a space is run. Key names follow node-package-api's and luster's (`inactivityTimeout`,
/// `paths`, `control.forkTimeout`, ...); docs/configuration.md lists them with defaults.
public struct SpaceConfiguration: Sendable, Hashable {
    /// Milliseconds without a call after which the host is stopped; 0 never stops it.
    /// The next call starts it again and replays every `add`. Default 3,600,000 (one hour).
    public var inactivityTimeout: Int
    /// Directories searched for `lib<NAME>.so` and `NAME.so` by `add`, before `SPACE_PATH`.
    public var paths: [String]
    /// Process-control timeouts.
    public var control: Control
    /// Wire limits enforced by both ends.
    public var limits: WireLimits
    /// The `space-host` executable; nil looks for `SPACE_HOST`, then beside the running executable.
    public var hostExecutable: String?
    /// Environment variables for the host; nil passes this process's environment.
    public var environment: [String: String]?
    /// Most callbacks (closures made for `cb:` arguments, live or revoked) a host holds at once; a
    /// call that would make more fails with ``SpaceError/Code/tooLarge`` before the plugin runs.
    /// Default 4,096.
    public var maxCallbacks: Int
    /// The daemon only: milliseconds it lives on with no space running and no client connected;
    /// 0 (the default) never exits by itself. Config key `daemon.idleTimeout`.
    public var daemonIdleTimeout: Int = 0
    /// Host processes serving the space, each with every plugin added; calls go to the least-loaded.
    /// Default 1. Config key `workers`.
    public var workers: Int = 1
    /// Milliseconds a call (or an add, whose init hook runs) may take before the space's host is
    /// killed and the call fails with ``SpaceError/Code/timedOut``; 0 (the default) waits for ever.
    /// A call's own timeout overrides it. Config key `callTimeout`.
    public var callTimeout: Int = 0
    /// Admission limits per space, checked before anything is sent. Config keys `limits.*`.
    public var quotas = Quotas()
    /// The walls around each host. Config key `sandbox` (and `limits.maxCpuSeconds`,
    /// `limits.maxOpenFiles`, `limits.maxFileSizeMB`).
    public var sandbox = Sandbox()

    /// Admission limits of a space (config keys `limits.*`); 0 turns each off.
    public struct Quotas: Sendable, Hashable {
        /// Calls admitted per second (a token bucket holding one second's worth); more fail with
        /// ``SpaceError/Code/rateLimited``. Config key `limits.maxCallsPerSecond`.
        public var maxCallsPerSecond: Int
        /// Encoded bytes of a call's arguments; more fail with ``SpaceError/Code/tooLarge`` before
        /// anything is sent. Config key `limits.maxArgumentBytes`.
        public var maxArgumentBytes: Int
        /// Calls in flight at once; more wait for a slot (backpressure), in arrival order. Config key
        /// `limits.maxInFlight`.
        public var maxInFlight: Int
        /// Calls waiting for a slot at once; more fail with ``SpaceError/Code/busy``. 0: no bound.
        /// Config key `limits.maxQueued`.
        public var maxQueued: Int
        /// Address space of each host process in MiB (RLIMIT_AS): a plugin that allocates past it
        /// gets NULL from malloc (and usually crashes, which is reported), instead of exhausting
        /// the machine. Config key `limits.maxMemoryMB`.
        public var maxMemoryMB: Int

        /// Creates quotas; 0 turns a limit off.
        public init(maxCallsPerSecond: Int = 0, maxArgumentBytes: Int = 0, maxInFlight: Int = 0,
                    maxQueued: Int = 0, maxMemoryMB: Int = 0) {
            self.maxCallsPerSecond = maxCallsPerSecond
            self.maxArgumentBytes = maxArgumentBytes
            self.maxInFlight = maxInFlight
            self.maxQueued = maxQueued
            self.maxMemoryMB = maxMemoryMB
        }
    }

    /// Timeouts of the process lifecycle, in milliseconds.
    public struct Control: Sendable, Hashable {
        /// How long a new host may take to say hello. Default 10,000.
        public var forkTimeout: Int
        /// How long a graceful stop may take before the host is killed. Default 5,000.
        public var stopTimeout: Int
        /// A host that dies (crashes, or fails to start) within this many milliseconds of its start
        /// died *sequentially*; a later death resets the count. Default 5,000.
        public var exitThreshold: Int
        /// Sequential deaths tolerated: one more makes the space ``SpaceState/dead`` and its calls
        /// fail fast with ``SpaceError/Code/dead`` until ``Space/reload()`` or ``Space/build()``.
        /// Default 3.
        public var allowedSequentialDeaths: Int

        /// Creates control settings.
        public init(forkTimeout: Int = 10_000, stopTimeout: Int = 5_000, exitThreshold: Int = 5_000,
                    allowedSequentialDeaths: Int = 3) {
            self.forkTimeout = forkTimeout
            self.stopTimeout = stopTimeout
            self.exitThreshold = exitThreshold
            self.allowedSequentialDeaths = allowedSequentialDeaths
        }
    }

    /// Creates a configuration; every parameter has the documented default.
    public init(inactivityTimeout: Int = 3_600_000, paths: [String] = [], control: Control = Control(),
                limits: WireLimits = .default, hostExecutable: String? = nil,
                environment: [String: String]? = nil, maxCallbacks: Int = 4096) {
        self.maxCallbacks = maxCallbacks
        self.inactivityTimeout = inactivityTimeout
        self.paths = paths
        self.control = control
        self.limits = limits
        self.hostExecutable = hostExecutable
        self.environment = environment
    }
}
