import CSpaceSystem
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One running `space-host` child: its pid and its channel (which owns the socket and the pidfd).
/// The process is reaped exactly once.
///
/// Or, for a space served by the daemon, a connection to the daemon: `pid` is the daemon's, and
/// "killing" it hangs up (the daemon's spaces live on).
final class HostProcess: Sendable {
    let pid: pid_t
    let channel: Channel
    /// A connection to the daemon rather than a child of this process.
    let isConnection: Bool
    var pidfd: Int32 { channel.pidfd }
    let hello: Hello
    /// The host's stderr, drained by the ``Monitor`` (nil for a daemon connection).
    let output: OutputTail?
    /// Calls sent through this host and not yet answered: the pool's measure of load, and what a
    /// rolling reload waits for before it stops the host.
    let load = Atomic<Int>(0)
    /// When it was spawned (monotonic ns): a death soon after counts as sequential.
    let startedAt: UInt64
    private let status = Mutex(Status())

    private struct Status {
        /// Set once the process was reaped: how it ended.
        var exit: String?
        /// A stop was requested: the hang-up is expected.
        var stopping = false
        /// The raw wait status, once reaped here.
        var waitStatus: Int32?
    }

    /// Where the host may read (Landlock), as it was spawned.
    let readPaths: [String]
    /// What the spawn could not give the sandbox (namespaces the kernel refused), if anything.
    let spawnNote: String?

    private init(pid: pid_t, channel: Channel, hello: Hello, isConnection: Bool = false,
                 output: OutputTail? = nil, startedAt: UInt64 = monotonicNanoseconds(),
                 readPaths: [String] = [], spawnNote: String? = nil) {
        self.readPaths = readPaths
        self.spawnNote = spawnNote
        self.pid = pid
        self.channel = channel
        self.hello = hello
        self.isConnection = isConnection
        self.output = output
        self.startedAt = startedAt
    }

    deinit {
        if let output { Monitor.shared.unwatch(output) }
    }

    /// The last lines the host wrote to stderr.
    var recentOutput: [String] { output?.lines() ?? [] }

    /// Connects to the daemon's socket at `path` and reads its hello (or its refusal).
    static func connect(path: String, _ config: SpaceConfiguration,
                        onClose: @escaping @Sendable (HostProcess, SpaceError) -> Void) throws(SpaceError) -> HostProcess {
        let fd = cs_unix_connect(path)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT || e == ECONNREFUSED {
                throw SpaceError(.daemonNotRunning, "the space daemon is not running (no one listens on \(path))", errno: e)
            }
            throw SpaceError(.systemError, "could not connect to the space daemon at \(path)", errno: e)
        }
        let box = Mutex(WeakHost())
        let channel = try Channel(fd: fd, pidfd: -1, limits: config.limits, closeReason: {
            SpaceError(.crashed, "the space daemon closed the connection")
        }) { error in
            if let host = box.withLock({ $0.host }) { onClose(host, error) }
        }
        let hello = try channel.readHello(timeoutMilliseconds: config.control.forkTimeout)
        let host = HostProcess(pid: hello.pid, channel: channel, hello: hello, isConnection: true)
        box.withLock { $0.host = host }
        try channel.startReaderThread()
        return host
    }

    /// Starts a host and waits for its hello (at most `control.forkTimeout`).
    ///
    /// `onClose` runs once when the channel closes (stop, crash, protocol error).
    /// `sandbox` is the space's compiled sandbox; `libraries` the adds it will replay (their
    /// directories are readable) and `readPaths` any more directories to let the host read.
    static func spawn(_ config: SpaceConfiguration, sandbox: SandboxPlan, libraries: [String], readPaths: [String],
                      onClose: @escaping @Sendable (HostProcess, SpaceError) -> Void) throws(SpaceError) -> HostProcess {
        let executable = try locateHost(config)
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SpaceError(.spawnFailed, "socketpair failed", errno: errno)
        }
        let parentFD = fds[0], childFD = fds[1]
        defer { close(childFD) }
        // The host's stderr: a pipe the Monitor drains into a bounded tail, so a crash can quote the
        // plugin's last words and a flood costs the plugin nothing but CPU.
        var errs: [Int32] = [-1, -1]
        guard cs_pipe(&errs) == 0 else {
            let e = errno
            close(parentFD)
            throw SpaceError(.spawnFailed, "pipe failed", errno: e)
        }
        _ = cs_set_nonblocking(errs[1], 0)  // the plugin's writes block (briefly) rather than fail
        let output = OutputTail(fd: errs[0])
        Monitor.shared.watch(output)
        defer { close(errs[1]) }
        let startedAt = monotonicNanoseconds()

        let l = config.limits
        var argv = [executable, "--channel-fd", "3", "--parent-pid", String(getpid()),
                    "--max-frame-size", String(l.maxFrameSize), "--max-arguments", String(l.maxArguments),
                    "--max-depth", String(l.maxDepth), "--max-string-length", String(l.maxStringLength),
                    "--max-callbacks", String(config.maxCallbacks)]
        if config.quotas.maxMemoryMB > 0 {
            argv += ["--max-address-space", String(UInt64(config.quotas.maxMemoryMB) << 20)]
        }
        let search = searchPaths(config, executable: executable)
        for dir in search {
            argv += ["--path", dir]
        }
        let request = sandbox.request(searchPaths: search + readPaths, libraries: libraries)
        argv += request.arguments
        let digitIndex = argv.firstIndex(of: "--namespaces").map { $0 + 1 }
        var env: [String]
        if let e = config.environment {
            env = e.map { "\($0.key)=\($0.value)" }
        } else {
            env = currentEnvironment()
        }
        // The Swift runtime's crash backtracer would catch a plugin's SIGSEGV, print for seconds,
        // and may even resume after a signal sent with kill(2). A crashing plugin must end the host
        // at once with the signal, so the parent can report it.
        env.removeAll { $0.hasPrefix("SWIFT_BACKTRACE=") }
        env.append("SWIFT_BACKTRACE=enable=no")

        var pid: pid_t = 0
        var made: Int32 = 0
        var refusal: Int32 = 0
        let rc = withCStrings(argv) { cargv in
            withCStrings(env) { cenv in
                cs_spawn_in(executable, cargv, cenv, childFD, errs[1], 1, sandbox.namespaceBits,
                            digitIndex.flatMap { cargv[$0] }, &made, &refusal, &pid)
            }
        }
        guard rc == 0 else {
            close(parentFD)
            Monitor.shared.unwatch(output)
            throw SpaceError(.spawnFailed, "could not start \(executable)", errno: rc)
        }
        let pidfd = cs_pidfd_open(pid)

        // The channel's callbacks need the process and the process owns the channel: a weak
        // reference breaks the cycle, so the fds are closed when the last owner lets go.
        let box = Mutex(WeakHost())
        let closeReason: @Sendable () -> SpaceError = {
            box.withLock { $0.host }?.hangUpReason() ?? SpaceError(.crashed, "the space host hung up")
        }
        let channel: Channel
        do {
            channel = try Channel(fd: parentFD, pidfd: pidfd, limits: config.limits, closeReason: closeReason) { error in
                if let host = box.withLock({ $0.host }) { onClose(host, error) }
            }
        } catch {
            killAndReap(pid: pid, pidfd: -1)
            Monitor.shared.unwatch(output)
            throw error
        }
        let hello: Hello
        do {
            hello = try channel.readHello(timeoutMilliseconds: config.control.forkTimeout)
        } catch {
            killAndReap(pid: pid, pidfd: pidfd)
            let said = stderrExcerpt(output.lines())
            Monitor.shared.unwatch(output)
            throw SpaceError(.spawnFailed, "the space host (\(executable)) did not start: \(error.message)\(said)")
        }
        let host = HostProcess(pid: pid, channel: channel, hello: hello, output: output, startedAt: startedAt,
                               readPaths: request.readPaths,
                               spawnNote: refusal != 0 ? "namespaces: clone refused some (\(String(cString: strerror(refusal))))" : nil)
        box.withLock { $0.host = host }
        let missing = sandbox.configuration.require.subtracting(hello.layers)
        if !missing.isEmpty {
            host.kill()
            _ = output.drain()  // the host wrote why before its hello
            var why = output.lines().filter { $0.hasPrefix("space-host: sandbox: ") }.map { String($0.dropFirst(21)) }
            if let n = host.spawnNote { why.append(n) }
            throw SpaceError(.sandboxUnavailable,
                             "the host could not apply the sandbox layers sandbox.require names: \(missing.names.joined(separator: ", "))" +
                             (why.isEmpty ? "" : " (\(why.joined(separator: "; ")))"))
        }
        do {
            try channel.startReaderThread()
        } catch {
            host.kill()
            throw error
        }
        return host
    }

    /// Why the channel hung up: the exit status or signal, reaped here.
    private func hangUpReason() -> SpaceError {
        if isConnection { return SpaceError(.crashed, "the space daemon closed the connection") }
        let exit = reap(waitMilliseconds: 200)
        let stopping = status.withLock { $0.stopping }
        if stopping {
            return SpaceError(.notRunning, "the space was stopped")
        }
        let lines = recentOutput
        let status = self.status.withLock { $0.waitStatus }
        if let st = status, let sig = endingSignal(st), sig == SIGSYS,
           let line = lines.last(where: { $0.hasPrefix(violationPrefix) }),
           let number = Int32(line.dropFirst(violationPrefix.count)) {
            let name = SandboxPlan.syscallName(number)
            return SpaceError(.sandboxViolation, "the plugin called \(name) (system call \(number)), which the sandbox forbids; " +
                              "the space host (pid \(pid)) was killed (sandbox.onViolation: kill)" +
                              stderrExcerpt(lines.filter { !$0.hasPrefix(violationPrefix) }))
        }
        var text = exit ?? "hung up without exiting"
        if let st = status, let sig = endingSignal(st) {
            text = "was killed by signal \(sig) (\(signalName(sig)))"
            if st & 0x7f == 0 { text += " (as pid 1 of its pid namespace it exits with status \(128 + sig) instead)" }
            if sig == SIGXCPU { text += ": it used up limits.maxCpuSeconds" }
            if sig == SIGXFSZ { text += ": a file it wrote grew past limits.maxFileSizeMB" }
        }
        return SpaceError(.crashed, "the space host (pid \(pid)) \(text)" + stderrExcerpt(lines))
    }

    /// The signal that ended the host, from its wait status: the signal itself, or, for a host that
    /// is pid 1 of its pid namespace (which ends itself with status 128 + the signal, having no
    /// other way), that status.
    private func endingSignal(_ st: Int32) -> Int32? {
        let sig = st & 0x7f
        if sig != 0 { return sig }
        let code = (st >> 8) & 0xff
        if hello.layers.contains(.pidNamespace) && code > 128 && code < 128 + 32 { return code - 128 }
        return nil
    }

    /// Reaps the process if it has exited (waiting up to `waitMilliseconds`); returns how it ended.
    @discardableResult
    func reap(waitMilliseconds: Int) -> String? {
        if isConnection { return "hung up" }
        if let done = status.withLock({ $0.exit }) { return done }
        if pidfd >= 0 {
            var pfd = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, Int32(waitMilliseconds))
        }
        var st: Int32 = 0
        let r = waitpid(pid, &st, WNOHANG)
        guard r == pid else {
            return status.withLock { $0.exit }  // reaped concurrently, or still running
        }
        let text = describeWaitStatus(st)
        status.withLock {
            $0.exit = text
            $0.waitStatus = st
        }
        return text
    }

    /// Sends SIGKILL (through the pidfd, so a recycled pid is never hit) and reaps.
    func kill() {
        if isConnection {
            // Wakes whoever reads the socket with EOF; the channel closes and the fd with it.
            _ = shutdown(channel.fd, Int32(SHUT_RDWR))
            return
        }
        if pidfd >= 0 {
            _ = cs_pidfd_send_signal(pidfd, SIGKILL)
        } else if status.withLock({ $0.exit }) == nil {
            _ = Glibc.kill(pid, SIGKILL)
        }
        reap(waitMilliseconds: 1_000)
    }

    /// Stops the host: a shutdown request (plugins' deinit runs), then SIGKILL after `timeout` ms.
    func stop(timeoutMilliseconds: Int) async {
        if isConnection {
            status.withLock { $0.stopping = true }
            channel.close(with: SpaceError(.notRunning, "the space was disconnected from the daemon"))
            _ = shutdown(channel.fd, Int32(SHUT_RDWR))
            return
        }
        let started = monotonicNanoseconds()
        status.withLock { $0.stopping = true }
        let killer = Task { [self] in
            try await Task.sleep(for: .milliseconds(timeoutMilliseconds))
            self.kill()
        }
        _ = try? await channel.request { w, id in
            w.beginFrame(.shutdown, id: id)
            w.endFrame()
        }
        // The host exits right after answering; give it what is left of the timeout.
        let left = timeoutMilliseconds - Int((monotonicNanoseconds() - started) / 1_000_000)
        if reap(waitMilliseconds: max(left, 0)) == nil {
            kill()
        }
        killer.cancel()
        channel.close(with: SpaceError(.notRunning, "the space was stopped"))
    }

    private static func killAndReap(pid: pid_t, pidfd: Int32) {
        if pidfd >= 0 {
            _ = cs_pidfd_send_signal(pidfd, SIGKILL)
        } else {
            _ = Glibc.kill(pid, SIGKILL)
        }
        var st: Int32 = 0
        _ = waitpid(pid, &st, 0)
    }

    /// The host executable: configured, `SPACE_HOST`, or `space-host` beside the running executable.
    static func locateHost(_ config: SpaceConfiguration) throws(SpaceError) -> String {
        if let path = config.hostExecutable { return path }
        if let env = getenv("SPACE_HOST") { return String(cString: env) }
        let dir = executableDirectory()
        let candidate = dir + "/space-host"
        if access(candidate, X_OK) == 0 { return candidate }
        throw SpaceError(.spawnFailed, "space-host not found beside \(dir); set SPACE_HOST or hostExecutable")
    }

    /// Library search directories, in order: config `paths`, `SPACE_PATH`, the host's own directory
    /// (where SwiftPM puts the example plugins). The system loader's search comes after these.
    static func searchPaths(_ config: SpaceConfiguration, executable: String) -> [String] {
        var dirs = config.paths
        if let env = getenv("SPACE_PATH") {
            dirs += String(cString: env).split(separator: ":").map(String.init)
        }
        if let slash = executable.lastIndex(of: "/") {
            dirs.append(String(executable[..<slash]))
        }
        return dirs
    }
}

/// How the host's SIGSYS handler names a denied call before it dies (CSpaceSandbox.c).
private let violationPrefix = "space-host: sandbox violation: system call "

/// The last lines of a host's stderr as the tail of an error message ("" when it wrote none).
func stderrExcerpt(_ lines: [String], count: Int = 8) -> String {
    let shown = lines.suffix(count)
    guard !shown.isEmpty else { return "" }
    return "; its last stderr line\(shown.count == 1 ? "" : "s"):\n  " + shown.joined(separator: "\n  ")
}

/// A weak reference that can live in a `Mutex`.
struct WeakHost {
    weak var host: HostProcess?
}

/// The directory of the running executable (`/proc/self/exe`).
func executableDirectory() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buf, Int(PATH_MAX))
    guard n > 0 else { return "." }
    let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return String(path[..<slash])
}

/// This process's environment as `KEY=VALUE` strings.
func currentEnvironment() -> [String] {
    var out: [String] = []
    var p = environ
    while let entry = p.pointee {
        out.append(String(cString: entry))
        p += 1
    }
    return out
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let cstrings = strings.map { strdup($0) }
    defer { cstrings.forEach { free($0) } }
    return (cstrings + [nil]).withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// "exited with status 3" or "was killed by signal 11 (SIGSEGV)".
func describeWaitStatus(_ st: Int32) -> String {
    let sig = st & 0x7f
    if sig == 0 {
        return "exited with status \((st >> 8) & 0xff)"
    }
    return "was killed by signal \(sig) (\(signalName(sig)))"
}

/// The conventional name of a signal.
func signalName(_ sig: Int32) -> String {
    switch sig {
    case SIGHUP: return "SIGHUP"
    case SIGINT: return "SIGINT"
    case SIGQUIT: return "SIGQUIT"
    case SIGILL: return "SIGILL"
    case SIGTRAP: return "SIGTRAP"
    case SIGABRT: return "SIGABRT"
    case SIGBUS: return "SIGBUS"
    case SIGFPE: return "SIGFPE"
    case SIGKILL: return "SIGKILL"
    case SIGSEGV: return "SIGSEGV"
    case SIGPIPE: return "SIGPIPE"
    case SIGALRM: return "SIGALRM"
    case SIGTERM: return "SIGTERM"
    case SIGXCPU: return "SIGXCPU"
    case SIGXFSZ: return "SIGXFSZ"
    case SIGSYS: return "SIGSYS"
    default: return "signal \(sig)"
    }
}
