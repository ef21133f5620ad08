import CSpaceSeccomp
import CSpaceSystem
import SpaceSandbox
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension SpaceConfiguration {
    /// The walls around each host (config key `sandbox`; docs/sandbox.md). The host applies every
    /// layer the kernel allows before it reads its first request and reports which hold.
    public struct Sandbox: Sendable, Hashable {
        /// What the host may do, broadly.
        public enum Profile: String, Sendable, Hashable, CaseIterable {
            /// Every layer; no sockets (unless ``unixSockets``), no new processes, no exec, the
            /// filesystem read-only and limited to the plugins, libraries and ``readPaths``.
            case strict
            /// As strict, but sockets of any family are allowed and TCP is not walled off.
            case network
            /// No sandbox at all, for debugging: reported loudly.
            case none
        }

        /// What a denied system call does.
        public enum Violation: String, Sendable, Hashable, CaseIterable {
            /// The call fails with EPERM and the plugin goes on (the default).
            case errno
            /// The host names the call on stderr and is killed; the call in flight fails with
            /// ``SpaceError/Code/sandboxViolation`` naming it.
            case kill
        }

        /// A namespace the host can be put in when it is spawned.
        public enum Namespace: String, Sendable, Hashable, CaseIterable {
            case user, mount, pid, network
        }

        /// Default `strict`. Config key `sandbox.profile`.
        public var profile: Profile = .strict
        /// Default user, mount and pid (network costs about 0.3 ms per start). Config key
        /// `sandbox.namespaces`.
        public var namespaces: Set<Namespace> = [.user, .mount, .pid]
        /// Paths the host may read beneath, besides the plugin and library directories. Config
        /// key `sandbox.readPaths`.
        public var readPaths: [String] = []
        /// Paths the host may read and write beneath (nothing by default). Config key
        /// `sandbox.writePaths`.
        public var writePaths: [String] = []
        /// System call names taken out of the profile's deny set. Config key `sandbox.allow`.
        public var allow: [String] = []
        /// System call names denied on top of the profile's. Config key `sandbox.deny`.
        public var deny: [String] = []
        /// Default `errno`. Config key `sandbox.onViolation`.
        public var onViolation: Violation = .errno
        /// `strict` only: AF_UNIX sockets and socketpairs are allowed. Config key `sandbox.unixSockets`.
        public var unixSockets = false
        /// Layers without which a host must not start (a start fails with
        /// ``SpaceError/Code/sandboxUnavailable``); any other missing layer is only reported.
        /// Config key `sandbox.require`, by layer name.
        public var require: SandboxLayers = []
        /// Environment variables passed through to the host (every other is dropped), besides the
        /// ones ``SpaceConfiguration/environment`` names. Config key `sandbox.environment`.
        public var environment: [String] = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"]
        /// CPU seconds a host may use in all (RLIMIT_CPU; it is killed with SIGXCPU past them); 0,
        /// the default, is no limit: a host serves many calls. Config key `limits.maxCpuSeconds`.
        public var maxCpuSeconds: Int = 0
        /// Files a host may have open at once (RLIMIT_NOFILE). Default 1,024. Config key
        /// `limits.maxOpenFiles`.
        public var maxOpenFiles: Int = 1024
        /// Largest file a host may write, in MiB (RLIMIT_FSIZE); 0 is no limit. Default 0 (the
        /// filesystem is read-only unless ``writePaths`` says otherwise). Config key `limits.maxFileSizeMB`.
        public var maxFileSizeMB: Int = 0

        /// Creates the default sandbox (`strict`).
        public init() {}

        /// The layers this configuration asks the host for.
        public var layers: SandboxLayers {
            if profile == .none { return [] }
            var l: SandboxLayers = [.session, .closeFDs, .environment, .noNewPrivs, .rlimits, .landlock,
                                    .seccomp, .capabilities]
            if namespaces.contains(.user) { l.insert(.userNamespace) }
            if namespaces.contains(.mount) { l.insert(.mountNamespace) }
            if namespaces.contains(.pid) { l.insert(.pidNamespace) }
            if namespaces.contains(.network) && profile == .strict { l.insert(.networkNamespace) }
            return l
        }
    }
}

/// A space's sandbox, compiled once: the seccomp program and everything in the host's command line
/// that does not change from one spawn to the next.
struct SandboxPlan: Sendable {
    let configuration: SpaceConfiguration.Sandbox
    /// The host's request without the per-spawn parts (read paths of this spawn, namespaces made).
    let template: SandboxRequest
    /// The `CS_NS_*` bits to ask cs_spawn_in for.
    let namespaceBits: Int32

    /// Compiles `configuration`'s seccomp program. Throws ``SpaceError/Code/invalidConfiguration``
    /// naming an unknown system call in `allow` or `deny`.
    init(_ config: SpaceConfiguration) throws(SpaceError) {
        let s = config.sandbox
        configuration = s
        var r = SandboxRequest()
        r.layers = s.layers
        var bits: Int32 = 0
        if r.layers.contains(.userNamespace) { bits |= Int32(CS_NS_USER) }
        if r.layers.contains(.mountNamespace) { bits |= Int32(CS_NS_MOUNT) }
        if r.layers.contains(.pidNamespace) { bits |= Int32(CS_NS_PID) }
        if r.layers.contains(.networkNamespace) { bits |= Int32(CS_NS_NET) }
        namespaceBits = bits
        guard s.profile != .none else {
            template = r
            return
        }
        r.cpuSeconds = UInt64(s.maxCpuSeconds)
        r.openFiles = UInt64(s.maxOpenFiles)
        r.fileSize = UInt64(s.maxFileSizeMB) << 20
        r.network = s.profile == .network
        var keep = s.environment + ["SWIFT_BACKTRACE"]
        if let env = config.environment { keep += env.keys }
        r.keepEnvironment = keep
        r.writePaths = ["/dev/null"] + s.writePaths
        r.seccompProgram = try Self.compile(s)
        if s.onViolation == .kill {
            r.killOnViolation = true
            r.killSyscall = css_kill_syscall()
        }
        template = r
    }

    /// Programs compiled so far in this process, by the settings they depend on: a space that
    /// restarts, or the next space with the same sandbox, reuses its program.
    private static let compiled = Mutex<[ProgramKey: [UInt8]]>([:])

    private struct ProgramKey: Hashable {
        var profile: SpaceConfiguration.Sandbox.Profile
        var unix: Bool
        var kill: Bool
        var allow: [String]
        var deny: [String]
    }

    /// The seccomp program for `sandbox`, compiled by libseccomp once per process and setting.
    static func compile(_ sandbox: SpaceConfiguration.Sandbox) throws(SpaceError) -> [UInt8] {
        let key = ProgramKey(profile: sandbox.profile, unix: sandbox.unixSockets, kill: sandbox.onViolation == .kill,
                             allow: sandbox.allow, deny: sandbox.deny)
        if let program = compiled.withLock({ $0[key] }) { return program }
        let program = try build(sandbox)
        compiled.withLock { $0[key] = program }
        return program
    }

    private static func build(_ sandbox: SpaceConfiguration.Sandbox) throws(SpaceError) -> [UInt8] {
        var message = [CChar](repeating: 0, count: 256)
        var program: UnsafeMutableRawPointer?
        var length = 0
        let rc = withCStringArray(sandbox.deny) { deny in
            withCStringArray(sandbox.allow) { allow in
                var policy = css_policy(allow_network: sandbox.profile == .network ? 1 : 0,
                                        allow_unix: sandbox.unixSockets ? 1 : 0,
                                        kill_on_violation: sandbox.onViolation == .kill ? 1 : 0,
                                        deny: deny, deny_count: sandbox.deny.count,
                                        allow: allow, allow_count: sandbox.allow.count)
                return css_build(&policy, &program, &length, &message, message.count)
            }
        }
        guard rc == 0, let program else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw SpaceError(.invalidConfiguration, "sandbox: \(text)", errno: -rc)
        }
        defer { free(program) }
        return Array(UnsafeRawBufferPointer(start: program, count: length))
    }

    /// The request for one spawn: the template, with what this host may read.
    func request(searchPaths: [String], libraries: [String]) -> SandboxRequest {
        var r = template
        guard configuration.profile != .none else { return r }
        var read = searchPaths
        for lib in libraries where lib.contains("/") {
            if let slash = lib.lastIndex(of: "/") { read.append(slash == lib.startIndex ? "/" : String(lib[..<slash])) }
        }
        read += Self.systemReadPaths
        read += configuration.readPaths
        var seen = Set<String>()
        r.readPaths = read.filter { seen.insert($0).inserted }
        return r
    }

    /// What every host reads: the loader's cache and system libraries (a plugin's dependencies and
    /// libraries added by name), the Swift runtime (a Swift plugin's), a few devices, its own /proc
    /// entry and the CPU list (sysconf).
    static let systemReadPaths: [String] = {
        var paths = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                     "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib",
                     "/dev/zero", "/dev/urandom", "/dev/random", "/proc/self", "/sys/devices/system/cpu"]
        paths += swiftRuntimeDirectories()
        return paths
    }()

    /// Where a Swift plugin's runtime libraries may be: beside the `swift` on PATH, and the usual
    /// install locations (only those that exist).
    static func swiftRuntimeDirectories() -> [String] {
        var candidates: [String] = []
        if let path = getenv("PATH") {
            for dir in String(cString: path).split(separator: ":") where access("\(dir)/swift", X_OK) == 0 {
                var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                if realpath("\(dir)/swift", &resolved) != nil {
                    let real = resolved.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                    if let bin = real.lastIndex(of: "/") {
                        candidates.append(String(real[..<bin]) + "/../lib/swift/linux")
                    }
                }
                break
            }
        }
        candidates += ["/usr/lib/swift/linux", "/usr/share/swift/usr/lib/swift/linux", "/opt/swift/usr/lib/swift/linux"]
        return candidates.filter { access($0, R_OK) == 0 }
    }

    /// The name of system call `number`, or its number as text.
    static func syscallName(_ number: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        guard css_syscall_name(number, &buffer, buffer.count) == 0 else { return "system call \(number)" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Whether `name` is a system call on this machine.
    static func isSyscall(_ name: String) -> Bool { css_syscall_number(name) >= 0 }
}
