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

    /// Timeouts of the process lifecycle, in milliseconds.
    public struct Control: Sendable, Hashable {
        /// How long a new host may take to say hello. Default 10,000.
        public var forkTimeout: Int
        /// How long a graceful stop may take before the host is killed. Default 5,000.
        public var stopTimeout: Int

        /// Creates control settings.
        public init(forkTimeout: Int = 10_000, stopTimeout: Int = 5_000) {
            self.forkTimeout = forkTimeout
            self.stopTimeout = stopTimeout
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
