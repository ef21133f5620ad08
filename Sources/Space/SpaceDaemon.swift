import CSpaceSystem
import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// The daemon (`spaced`, run as `space daemon run`): named spaces shared by every process of this
/// user, over an owner-only unix socket.
///
/// ```swift
/// let space = try await SpaceDaemon.connect()            // the "default" space; starts the daemon
/// try await space.add("calc")
/// let sum = try await space.call("calc", "math.add", 2, 3)   // .int(5)
/// ```
///
/// A space connected this way has the same `add`/`call`/`stream` surface as an embedded one; the
/// daemon owns its host (inactivity stop, respawn with replayed adds), so the CLI and Swift programs
/// share it. If the connection is lost, the next call reconnects (and starts the daemon again when
/// `autoStart` was set).
public enum SpaceDaemon {
    /// Where the daemon's socket, lock and log live: `SPACE_RUNTIME_DIR`, else
    /// `$XDG_RUNTIME_DIR/space`, else `/tmp/space-$UID`.
    public static var runtimeDirectory: String {
        if let dir = environment("SPACE_RUNTIME_DIR"), !dir.isEmpty { return dir }
        if let xdg = environment("XDG_RUNTIME_DIR"), !xdg.isEmpty { return xdg + "/space" }
        return "/tmp/space-\(getuid())"
    }

    /// The daemon's socket: `daemon.sock` in ``runtimeDirectory``.
    public static var socketPath: String { runtimeDirectory + "/daemon.sock" }

    /// The daemon's log (its stdout and stderr when the CLI starts it): `daemon.log` in ``runtimeDirectory``.
    public static var logPath: String { runtimeDirectory + "/daemon.log" }

    /// Connects to the daemon's space named `space` (made by its first `add`).
    ///
    /// - Parameters:
    ///   - space: the space's name (letters, digits, `_`, `-`, `.`; at most 64 bytes).
    ///   - configuration: limits and timeouts of this connection (`control.forkTimeout` bounds the
    ///     wait for the daemon's hello and for a daemon being started).
    ///   - autoStart: start the daemon when it is not running.
    ///   - executable: the `space` CLI used to start it; default: `SPACE_CLI`, else `space` beside
    ///     the running executable, else `space` on `PATH`.
    ///   - configPath: the configuration file a started daemon reads (`--config`).
    ///   - runtimeDirectory: where the daemon's socket is; default ``runtimeDirectory``. (A daemon
    ///     started for another directory gets it as `SPACE_RUNTIME_DIR`.)
    /// - Throws: ``SpaceError/Code/daemonNotRunning`` (when not `autoStart`), ``SpaceError/Code/permissionDenied``
    ///   (the socket belongs to another user), ``SpaceError/Code/spawnFailed`` (the daemon did not start).
    public static func connect(space: String = "default", configuration: SpaceConfiguration = SpaceConfiguration(),
                               autoStart: Bool = true, executable: String? = nil,
                               configPath: String? = nil, runtimeDirectory: String? = nil) async throws(SpaceError) -> Space {
        try validateSpaceName(space)
        let timeout = configuration.control.forkTimeout
        let directory = runtimeDirectory ?? Self.runtimeDirectory
        var start: (@Sendable () throws(SpaceError) -> Void)?
        if autoStart {
            start = { @Sendable () throws(SpaceError) in
                try SpaceDaemon.start(executable: executable, configPath: configPath, timeoutMilliseconds: timeout,
                                      runtimeDirectory: directory)
            }
        }
        let s = Space(configuration: configuration, backend: .daemon(socket: directory + "/daemon.sock", space: space, start: start))
        try await s.build()
        return s
    }

    /// True when a daemon answers on ``socketPath``.
    public static var isRunning: Bool { isRunning(in: runtimeDirectory) }

    /// True when a daemon answers on the socket in `runtimeDirectory`.
    public static func isRunning(in runtimeDirectory: String) -> Bool {
        let fd = cs_unix_connect(runtimeDirectory + "/daemon.sock")
        if fd < 0 { return false }
        close(fd)
        return true
    }

    /// Starts the daemon in the background (`space daemon run`, in its own session, output appended
    /// to ``logPath``) unless one is running, and waits until it accepts connections. Two processes
    /// starting it at once get one daemon: the daemon holds a lock, and the loser exits.
    public static func start(executable: String? = nil, configPath: String? = nil,
                             timeoutMilliseconds: Int = 10_000, runtimeDirectory: String? = nil) throws(SpaceError) {
        let directory = runtimeDirectory ?? Self.runtimeDirectory
        if isRunning(in: directory) { return }
        let cli = try locateCLI(executable)
        try makeRuntimeDirectory(directory)
        let logPath = directory + "/daemon.log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { if log >= 0 { close(log) } }
        var argv = [cli, "daemon", "run"]
        if let configPath { argv += ["--config", configPath] }
        var env = currentEnvironment().filter { !$0.hasPrefix("SPACE_RUNTIME_DIR=") }
        env.append("SPACE_RUNTIME_DIR=" + directory)
        var pid: pid_t = 0
        let rc = withCStrings(argv) { a in
            withCStrings(env) { e in cs_spawn_detached(cli, a, e, log, &pid) }
        }
        guard rc == 0 else { throw SpaceError(.spawnFailed, "could not start the space daemon (\(cli))", errno: rc) }
        let deadline = monotonicNanoseconds() + UInt64(max(timeoutMilliseconds, 1)) * 1_000_000
        var exited = false
        while monotonicNanoseconds() < deadline {
            if isRunning(in: directory) { return }
            if !exited {
                // It exits at once when it lost the race to another starter; keep waiting for that one.
                var st: Int32 = 0
                if waitpid(pid, &st, WNOHANG) == pid { exited = true }
            }
            usleep(2_000)
        }
        throw SpaceError(.spawnFailed, "the space daemon did not start within \(timeoutMilliseconds) ms (control.forkTimeout); see \(logPath)")
    }

    /// Waits until no daemon holds the lock of `runtimeDirectory` (it has exited, even if its parent
    /// has not reaped it yet). Returns false after `timeoutMilliseconds`.
    public static func waitUntilStopped(runtimeDirectory: String? = nil, timeoutMilliseconds: Int) -> Bool {
        let path = (runtimeDirectory ?? Self.runtimeDirectory) + "/daemon.lock"
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return true }
        defer { close(fd) }
        let deadline = monotonicNanoseconds() + UInt64(max(timeoutMilliseconds, 0)) * 1_000_000
        while true {
            if flock(fd, LOCK_SH | LOCK_NB) == 0 {
                _ = flock(fd, LOCK_UN)
                return true
            }
            if monotonicNanoseconds() >= deadline { return false }
            usleep(2_000)
        }
    }

    /// Checks a space name: 1–64 bytes of letters, digits, `_`, `-` and `.`.
    public static func validateSpaceName(_ name: String) throws(SpaceError) {
        let ok = !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2D || b == 0x2E
        }
        guard ok else {
            throw SpaceError(.badArgument, "'\(name)' is not a valid space name (1-64 letters, digits, '_', '-', '.')")
        }
    }

    /// Creates `path` (and parents) with mode 0700 if missing; refuses a directory owned by another
    /// user or open to others, since the socket in it is the daemon's only access control after uid.
    public static func makeRuntimeDirectory(_ path: String) throws(SpaceError) {
        var st = stat()
        if stat(path, &st) != 0 {
            if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                let parent = String(path[..<slash])
                var pst = stat()
                if stat(parent, &pst) != 0 { try makeRuntimeDirectory(parent) }
            }
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw SpaceError(.systemError, "could not create the runtime directory \(path)", errno: errno)
            }
            guard stat(path, &st) == 0 else {
                throw SpaceError(.systemError, "could not create the runtime directory \(path)", errno: errno)
            }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw SpaceError(.invalidConfiguration, "the runtime directory \(path) is not a directory")
        }
        guard st.st_uid == getuid() else {
            throw SpaceError(.permissionDenied, "the runtime directory \(path) belongs to uid \(st.st_uid), not to this user (uid \(getuid())); set SPACE_RUNTIME_DIR")
        }
        if st.st_mode & 0o077 != 0 {
            guard chmod(path, 0o700) == 0 else {
                throw SpaceError(.systemError, "could not make the runtime directory \(path) private (chmod 0700)", errno: errno)
            }
        }
    }

    /// The `space` executable that can run `space daemon run`.
    static func locateCLI(_ explicit: String?) throws(SpaceError) -> String {
        if let explicit { return explicit }
        if let env = environment("SPACE_CLI"), !env.isEmpty { return env }
        let beside = executableDirectory() + "/space"
        if access(beside, X_OK) == 0 { return beside }
        for dir in (environment("PATH") ?? "").split(separator: ":") {
            let candidate = String(dir) + "/space"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw SpaceError(.spawnFailed, "the space CLI was not found (beside \(executableDirectory()) or on PATH) to start the daemon; set SPACE_CLI")
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
