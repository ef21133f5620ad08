// The host's walls, applied to itself before it reads its first request (docs/sandbox.md).
import CSpaceSandbox
import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// What the client asks of the host's sandbox: the layers to apply and their settings. The host
/// gets it on its command line (``parse(_:_:)``); the client builds that line with ``arguments``.
public struct SandboxRequest: Sendable, Hashable {
    /// The layers to apply (the namespaces among them are made by the client when it spawns).
    public var layers: SandboxLayers = []
    /// The namespaces the host is in (read from its command line, where the spawn wrote them).
    public var namespaces: SandboxLayers = []
    /// Notes from the client on layers it could not provide.
    public var notes: [String] = []
    /// RLIMIT_CPU in seconds (0: unchanged).
    public var cpuSeconds: UInt64 = 0
    /// RLIMIT_NOFILE (0: unchanged).
    public var openFiles: UInt64 = 0
    /// RLIMIT_FSIZE in bytes (0: unchanged).
    public var fileSize: UInt64 = 0
    /// Paths Landlock lets the host read beneath.
    public var readPaths: [String] = []
    /// Paths Landlock lets the host read and write beneath.
    public var writePaths: [String] = []
    /// Environment variables kept when the environment is scrubbed.
    public var keepEnvironment: [String] = []
    /// Sockets of any family are allowed (profile `network`): Landlock leaves TCP alone.
    public var network = false
    /// The compiled seccomp program (an array of `struct sock_filter`).
    public var seccompProgram: [UInt8] = []
    /// A denied call kills the host (after it names the call on stderr) instead of failing with EPERM.
    public var killOnViolation = false
    /// In kill mode, the call the SIGSYS handler makes to die (the filter kills on it).
    public var killSyscall: Int32 = -1

    /// Creates an empty request (no layer).
    public init() {}

    /// The host's command-line options for this request.
    public var arguments: [String] {
        // The namespaces the child is in: one hex digit of bits user 1, mount 2, pid 4, network 8,
        // which the spawn writes over this "0" before each attempt (cs_spawn_in).
        var a = ["--sandbox", String(layers.rawValue), "--namespaces", "0"]
        for n in notes { a += ["--sandbox-note", n] }
        if cpuSeconds > 0 { a += ["--rlimit-cpu", String(cpuSeconds)] }
        if openFiles > 0 { a += ["--rlimit-nofile", String(openFiles)] }
        if fileSize > 0 { a += ["--rlimit-fsize", String(fileSize)] }
        for p in readPaths { a += ["--read-path", p] }
        for p in writePaths { a += ["--write-path", p] }
        for n in keepEnvironment { a += ["--keep-env", n] }
        if network { a.append("--network") }
        if !seccompProgram.isEmpty { a += ["--seccomp", hexEncoded(seccompProgram)] }
        if killOnViolation { a += ["--seccomp-kill", String(killSyscall)] }
        return a
    }

    /// Takes one option of ``arguments`` (`value` is the next argument). Returns how many arguments
    /// it used (0: not a sandbox option).
    public mutating func parse(_ option: String, _ value: String?) -> Int {
        let v = value ?? ""
        switch option {
        case "--sandbox": layers = SandboxLayers(rawValue: UInt64(v) ?? 0)
        case "--namespaces":
            let bits = Int(v, radix: 16) ?? 0
            namespaces = []
            if bits & 1 != 0 { namespaces.insert(.userNamespace) }
            if bits & 2 != 0 { namespaces.insert(.mountNamespace) }
            if bits & 4 != 0 { namespaces.insert(.pidNamespace) }
            if bits & 8 != 0 { namespaces.insert(.networkNamespace) }
        case "--sandbox-note": notes.append(v)
        case "--rlimit-cpu": cpuSeconds = UInt64(v) ?? 0
        case "--rlimit-nofile": openFiles = UInt64(v) ?? 0
        case "--rlimit-fsize": fileSize = UInt64(v) ?? 0
        case "--read-path": readPaths.append(v)
        case "--write-path": writePaths.append(v)
        case "--keep-env": keepEnvironment.append(v)
        case "--network": network = true; return 1
        case "--seccomp": seccompProgram = hexDecoded(v)
        case "--seccomp-kill": killOnViolation = true; killSyscall = Int32(v) ?? -1
        default: return 0
        }
        return 2
    }
}

/// Applying a ``SandboxRequest`` to this process.
public enum Sandbox {
    /// This process's pid as its client sees it: in a pid namespace of its own the host is pid 1,
    /// and its pid outside comes from /proc/self/status (read it before Landlock applies).
    public static func pidOutside() -> pid_t { getpid() == 1 ? csb_outer_pid() : getpid() }

    /// Applies each requested layer the kernel allows, in an order where each step still has what
    /// it needs (paths are opened before Landlock, no_new_privs precedes seccomp), and returns the
    /// layers in force with a note on each that is missing. Call it single-threaded, before the first
    /// request: Landlock binds the calling thread and the threads it starts later.
    ///
    /// - Parameters:
    ///   - request: what to apply.
    ///   - channelFD: the one descriptor (besides stdio) that survives.
    ///   - maxAddressSpace: RLIMIT_AS in bytes (0: unchanged): `limits.maxMemoryMB`, a quota set
    ///     even when the rlimits layer is not asked for (profile `none`).
    public static func apply(_ request: SandboxRequest, channelFD: Int32,
                             maxAddressSpace: UInt64) -> (layers: SandboxLayers, notes: [String]) {
        var held: SandboxLayers = []
        var notes = request.notes
        let want = request.layers
        func note(_ layer: String, _ why: String) { notes.append("\(layer): \(why)") }
        func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

        // The namespaces were made at spawn; the pid namespace shows (this is its pid 1).
        held.formUnion(request.namespaces.intersection(want))
        for (name, layer) in SandboxLayers.named
        where [.userNamespace, .mountNamespace, .pidNamespace, .networkNamespace].contains(layer)
            && want.contains(layer) && !request.namespaces.contains(layer) {
            note(name, "the kernel refused it when the host was spawned")
        }
        if want.contains(.pidNamespace) && request.namespaces.contains(.pidNamespace) && getpid() != 1 {
            held.remove(.pidNamespace)
            note("pidNamespace", "the host is not pid 1 of its namespace")
        }
        if held.contains(.pidNamespace) {
            // Pid 1 ignores signals it has no handler for: give the fatal ones a handler that exits.
            csb_install_init_signal_handlers()
        }

        if want.contains(.session) {
            if setsid() >= 0 || getsid(0) == getpid() { held.insert(.session) } else { note("session", "setsid: \(errnoText(errno))") }
        }
        if want.contains(.closeFDs) {
            let rc = csb_close_fds_except(channelFD)
            if rc == 0 { held.insert(.closeFDs) } else { note("closeFDs", "close_range: \(errnoText(-rc))") }
        }
        if want.contains(.environment) {
            withCStringArray(request.keepEnvironment) { csb_scrub_environment($0, request.keepEnvironment.count) }
            held.insert(.environment)
        }
        if maxAddressSpace > 0 && !want.contains(.rlimits) {
            // limits.maxMemoryMB: a runaway allocation fails here (malloc returns NULL) instead of
            // pushing the machine into its OOM killer.
            var l = rlimit(rlim_cur: rlim_t(maxAddressSpace), rlim_max: rlim_t(maxAddressSpace))
            if setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &l) != 0 {
                notes.append("limits.maxMemoryMB: setrlimit(RLIMIT_AS): \(errnoText(errno))")
            }
        }
        if want.contains(.rlimits) {
            var failed: [String] = []
            func limit(_ resource: __rlimit_resource, _ value: UInt64, _ name: String, soft: UInt64? = nil) {
                var l = rlimit(rlim_cur: rlim_t(soft ?? value), rlim_max: rlim_t(value))
                if setrlimit(__rlimit_resource_t(resource.rawValue), &l) != 0 { failed.append("\(name): \(errnoText(errno))") }
            }
            limit(RLIMIT_CORE, 0, "RLIMIT_CORE")
            if maxAddressSpace > 0 { limit(RLIMIT_AS, maxAddressSpace, "RLIMIT_AS") }
            // SIGXCPU at the soft limit (reported as such), SIGKILL a second later.
            if request.cpuSeconds > 0 { limit(RLIMIT_CPU, request.cpuSeconds + 1, "RLIMIT_CPU", soft: request.cpuSeconds) }
            if request.openFiles > 0 { limit(RLIMIT_NOFILE, request.openFiles, "RLIMIT_NOFILE") }
            if request.fileSize > 0 { limit(RLIMIT_FSIZE, request.fileSize, "RLIMIT_FSIZE") }
            if failed.isEmpty { held.insert(.rlimits) } else { note("rlimits", failed.joined(separator: ", ")) }
        }
        if want.contains(.noNewPrivs) {
            let rc = csb_no_new_privs()
            if rc == 0 { held.insert(.noNewPrivs) } else { note("noNewPrivs", errnoText(-rc)) }
        }
        if want.contains(.landlock) {
            var message = [CChar](repeating: 0, count: 256)
            let rc = withCStringArray(request.readPaths) { r in
                withCStringArray(request.writePaths) { w in
                    csb_landlock_apply(r, request.readPaths.count, w, request.writePaths.count,
                                       request.network ? 0 : 1, &message, message.count)
                }
            }
            if rc > 0 {
                held.insert(.landlock)
            } else {
                note("landlock", message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
            }
        }
        if want.contains(.capabilities) {
            let rc = csb_drop_capabilities()
            if rc >= 0 { held.insert(.capabilities) } else { note("capabilities", errnoText(-rc)) }
        }
        if want.contains(.seccomp) {
            if !held.contains(.noNewPrivs) {
                note("seccomp", "needs noNewPrivs")
            } else if request.seccompProgram.isEmpty {
                note("seccomp", "the client sent no program")
            } else {
                if request.killOnViolation { csb_install_violation_handler(request.killSyscall) }
                var rc = request.seccompProgram.withUnsafeBytes { csb_seccomp_load($0.baseAddress, $0.count) }
                if rc == 0 { rc = csb_seccomp_signals(getpid(), request.killOnViolation ? 1 : 0) }
                if rc == 0 { held.insert(.seccomp) } else { note("seccomp", errnoText(-rc)) }
            }
        }
        return (held, notes)
    }
}

private let hexDigits = Array("0123456789abcdef".utf8)

func hexEncoded(_ bytes: [UInt8]) -> String {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

func hexDecoded(_ text: String) -> [UInt8] {
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
    let u = Array(text.utf8)
    guard u.count % 2 == 0 else { return [] }
    var out = [UInt8]()
    out.reserveCapacity(u.count / 2)
    var i = 0
    while i < u.count {
        guard let h = nibble(u[i]), let l = nibble(u[i + 1]) else { return [] }
        out.append(h << 4 | l)
        i += 2
    }
    return out
}
