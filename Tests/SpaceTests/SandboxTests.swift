import Space
import SpaceWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The sandbox, wall by wall: the `escape` plugin tries each way out from inside a real host and
/// reports the errno it got (0 would mean the wall did not hold).
@Suite("The sandbox of the real host")
struct SandboxTests {
    static let EPERM = Value.int(Int64(Glibc.EPERM))
    static let EACCES = Value.int(Int64(Glibc.EACCES))

    static func escape(_ configure: (inout SpaceConfiguration) -> Void = { _ in }) async throws -> Space {
        let space = try await launch(configure)
        try await space.add("escape")
        return space
    }

    @Test func everyDefaultLayerHoldsAndIsReported() async throws {
        let space = try await Self.escape()
        let layers = try #require(space.hostInfo).layers
        #expect(layers.isSuperset(of: [.session, .closeFDs, .environment, .noNewPrivs, .rlimits, .landlock, .seccomp, .capabilities]),
                "\(layers.names)")
        let report = try await space.call("space", "sandbox")
        #expect(report[field: "layers"] == .array(layers.names.map { .string($0) }))
        // What is missing is said, layer by layer (on this kind of machine: nothing).
        let missing = SpaceConfiguration.Sandbox().layers.subtracting(layers)
        #expect(report[field: "notes"]?.array?.count == missing.names.count, "\(report)")
        #expect(await space.sandboxReport()?[field: "layers"] == report[field: "layers"])
        #expect((report[field: "setupNs"]?.int ?? 0) > 0)

        #expect(try await space.call("escape", "escape.no_new_privs") == 1)
        #expect(try await space.call("escape", "escape.seccomp") == 2)
        #expect(try await space.call("escape", "escape.capabilities") == 0)
        #expect(try await space.call("escape", "escape.getsid") == space.call("escape", "escape.getpid"))
        // stdin, stdout, stderr and the channel; nothing of the parent's.
        #expect(try await space.call("escape", "escape.open_fds") == 4)
        // The environment holds only what sandbox.environment lets through.
        setenv("SPACE_TEST_SECRET", "hunter2", 1)
        await space.kill()
        #expect(try await space.call("escape", "escape.env", "SPACE_TEST_SECRET") == 0)
        #expect(try await space.call("escape", "escape.env", "PATH") == 1)
        unsetenv("SPACE_TEST_SECRET")
        if layers.contains(.pidNamespace) {
            #expect(try await space.call("escape", "escape.getpid") == 1)
            // Its stats still give the pid the client knows.
            #expect(try await space.call("space", "stats")[field: "pid"] == .int(Int64(space.pid ?? 0)))
        }
        await space.destroy()
    }

    @Test func noSocketsButAnExplicitUnixPair() async throws {
        let space = try await Self.escape()
        #expect(try await space.call("escape", "escape.socket", .int(Int64(AF_INET))) == Self.EPERM)
        #expect(try await space.call("escape", "escape.socket", .int(Int64(AF_INET6))) == Self.EPERM)
        #expect(try await space.call("escape", "escape.socket", .int(Int64(AF_UNIX))) == Self.EPERM)
        #expect(try await space.call("escape", "escape.socketpair") == Self.EPERM)
        await space.destroy()

        let unix = try await Self.escape { $0.sandbox.unixSockets = true }
        #expect(try await unix.call("escape", "escape.socketpair") == 0)
        #expect(try await unix.call("escape", "escape.socket", .int(Int64(AF_UNIX))) == 0)
        #expect(try await unix.call("escape", "escape.socket", .int(Int64(AF_INET))) == Self.EPERM)
        await unix.destroy()

        let network = try await Self.escape { $0.sandbox.profile = .network }
        #expect(try await network.call("escape", "escape.socket", .int(Int64(AF_INET))) == 0)
        #expect(network.hostInfo?.layers.contains(.seccomp) == true)
        await network.destroy()
    }

    @Test func threadsButNoProcessesAndNoExec() async throws {
        let space = try await Self.escape()
        #expect(try await space.call("escape", "escape.thread") == 0)
        #expect(try await space.call("escape", "escape.fork") == Self.EPERM)
        #expect(try await space.call("escape", "escape.clone3") == .int(Int64(ENOSYS)))
        #expect(try await space.call("escape", "escape.exec", "/bin/true") == Self.EPERM)
        #expect(try await space.call("escape", "escape.thread") == 0)
        await space.destroy()
    }

    @Test func theFilesystemIsReadOnlyAndLimitedToPluginsAndLibraries() async throws {
        let space = try await Self.escape()
        #expect(try await space.call("escape", "escape.read", "/etc/shadow") == Self.EACCES)
        #expect(try await space.call("escape", "escape.read", "/etc/passwd") == Self.EACCES)
        #expect(try await space.call("escape", "escape.list", "/tmp") == Self.EACCES)
        #expect(try await space.call("escape", "escape.list", "/") == Self.EACCES)
        #expect(try await space.call("escape", "escape.write", .string("/tmp/space-escape-\(getpid())")) == Self.EACCES)
        #expect(try await space.call("escape", "escape.write", .string(buildDirectory() + "/space-escape-\(getpid())")) == Self.EACCES)
        // Its own plugin directory and the system libraries stay readable.
        #expect(try await space.call("escape", "escape.read", .string(buildDirectory() + "/libescape.so")) == 0)
        #expect(try await space.call("escape", "escape.read", "/etc/ld.so.cache") == 0)
        #expect(try await space.call("escape", "escape.list", "/usr/lib") == 0)
        await space.destroy()
    }

    @Test func readPathsAndWritePathsOpenWhatTheySay() async throws {
        let readable = temporaryFile("data.txt", "hello")
        let readDir = String(readable[..<readable.lastIndex(of: "/")!])
        let writeDir = String(temporaryFile("x", "")[...].dropLast(2))
        let space = try await Self.escape {
            $0.sandbox.readPaths = [readDir]
            $0.sandbox.writePaths = [writeDir]
        }
        #expect(try await space.call("escape", "escape.read", .string(readable)) == 0)
        #expect(try await space.call("escape", "escape.write", .string(readDir + "/new")) == Self.EACCES)
        #expect(try await space.call("escape", "escape.write", .string(writeDir + "/new")) == 0)
        await space.destroy()
    }

    @Test func theParentIsOutOfReach() async throws {
        let space = try await Self.escape()
        let me = Int64(getpid())
        #expect(try await space.call("escape", "escape.ptrace", .int(me)) == Self.EPERM)
        #expect(try await space.call("escape", "escape.vm_read", .int(me)) == Self.EPERM)
        // Signal 0 only checks: if the wall fell, nothing would be hurt.
        let kill = try await space.call("escape", "escape.kill", .int(me), 0)
        #expect(kill == Self.EPERM || kill == .int(Int64(ESRCH)))
        #expect(try await space.call("escape", "escape.kill", -1, 0) == Self.EPERM)
        await space.destroy()
    }

    @Test func noNamespacesMountsOrKernelInterfaces() async throws {
        let space = try await Self.escape()
        #expect(try await space.call("escape", "escape.unshare", .int(0x1000_0000) /* CLONE_NEWUSER */) == Self.EPERM)
        #expect(try await space.call("escape", "escape.unshare", .int(0x0002_0000) /* CLONE_NEWNS */) == Self.EPERM)
        #expect(try await space.call("escape", "escape.setns", "/proc/self/ns/net") == Self.EPERM)
        #expect(try await space.call("escape", "escape.mount", "/tmp") == Self.EPERM)
        #expect(try await space.call("escape", "escape.chroot", "/") == Self.EPERM)
        for call in ["escape.bpf", "escape.perf", "escape.keyctl", "escape.io_uring"] {
            #expect(try await space.call("escape", call) == Self.EPERM, "\(call)")
        }
        await space.destroy()
    }

    @Test func rlimitsComeFromTheConfigurationAndCannotBeRaised() async throws {
        let space = try await Self.escape {
            $0.sandbox.maxOpenFiles = 64
            $0.sandbox.maxCpuSeconds = 30
            $0.sandbox.maxFileSizeMB = 1
            $0.quotas.maxMemoryMB = 512
        }
        #expect(try await space.call("escape", "escape.rlimit", .int(Int64(RLIMIT_NOFILE.rawValue))) == 64)
        #expect(try await space.call("escape", "escape.rlimit", .int(Int64(RLIMIT_CPU.rawValue))) == 30)
        #expect(try await space.call("escape", "escape.rlimit", .int(Int64(RLIMIT_FSIZE.rawValue))) == .int(1 << 20))
        #expect(try await space.call("escape", "escape.rlimit", .int(Int64(RLIMIT_CORE.rawValue))) == 0)
        #expect(try await space.call("escape", "escape.rlimit", .int(Int64(RLIMIT_AS.rawValue))) == .int(512 << 20))
        #expect(try await space.call("escape", "escape.raise_rlimit", .int(Int64(RLIMIT_CORE.rawValue))) == Self.EPERM)
        #expect(try await space.call("escape", "escape.raise_rlimit", .int(Int64(RLIMIT_AS.rawValue))) == Self.EPERM)
        // A memory bomb meets the address-space limit, not the machine's OOM killer.
        let got = try await space.call("escape", "escape.memory", 100_000).int ?? -1
        #expect(got > 0 && got < 512)
        #expect(try await space.call("escape", "escape.getuid") != nil)
        await space.destroy()
    }

    @Test func killOnViolationNamesTheSystemCallAndTheNextCallWorks() async throws {
        let space = try await Self.escape { $0.sandbox.onViolation = .kill }
        let pid = try #require(space.pid)
        let e = await spaceError { _ = try await space.call("escape", "escape.socket", .int(Int64(AF_INET))) }
        #expect(e?.code == .sandboxViolation)
        #expect(e?.message.contains("socket") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("sandbox.onViolation") == true)
        #expect(try await space.call("escape", "escape.thread") == 0)
        #expect(space.pid != pid)
        await space.destroy()
    }

    @Test func allowAndDenyListsAdjustTheProfile() async throws {
        let space = try await Self.escape {
            // fork(3) is clone(2) without CLONE_THREAD on Linux.
            $0.sandbox.allow = ["clone"]
            $0.sandbox.deny = ["getppid"]
        }
        #expect(try await space.call("escape", "escape.fork") == 0)
        #expect(try await space.call("escape", "escape.getppid") == -1)
        await space.destroy()
    }

    @Test func aRequiredLayerThatCannotHoldRefusesTheStart() async throws {
        // The network namespace is not asked for, so it cannot be in force: requiring it must fail.
        let e = await spaceError {
            _ = try await launch { $0.sandbox.require = [.seccomp, .networkNamespace] }
        }
        #expect(e?.code == .sandboxUnavailable)
        #expect(e?.message.contains("networkNamespace") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("seccomp") == false)
        // Layers that hold satisfy it.
        let space = try await launch { $0.sandbox.require = [.seccomp, .landlock, .noNewPrivs] }
        await space.destroy()
    }

    @Test func profileNoneAppliesNothing() async throws {
        let space = try await Self.escape { $0.sandbox.profile = .none }
        #expect(space.hostInfo?.layers == [])
        #expect(try await space.call("escape", "escape.socket", .int(Int64(AF_INET))) == 0)
        #expect(try await space.call("escape", "escape.seccomp") == 0)
        await space.destroy()
    }

    @Test func aLibraryFromANewDirectoryRestartsTheHostIntoAWiderSandbox() async throws {
        let dir = String(temporaryFile("x", "")[...].dropLast(2))
        let copy = dir + "/libcalc-copy.so"
        _ = shell("cp '\(buildDirectory())/libcalc.so' '\(copy)'")
        let space = try await Self.escape()
        let pid = space.pid
        try await space.add(copy, as: "c2")
        #expect(space.pid != pid)
        #expect(try await space.call("c2", "math.add", 2, 3) == 5)
        #expect(try await space.call("escape", "escape.thread") == 0)
        await space.destroy()
    }

    @Test(arguments: [
        (#"{"sandbox": {"deny": ["sokcet"]}}"#, "'sandbox.deny[0]' must be a system call of this machine"),
        (#"{"sandbox": {"profile": "lax"}}"#, #"'sandbox.profile' must be one of "strict", "network", "none""#),
        (#"{"sandbox": {"require": ["landlok"]}}"#, "'sandbox.require[0]' must be a layer name"),
        (#"{"sandbox": {"namespaces": ["ipc"]}}"#, "'sandbox.namespaces[0]' must be one of"),
        (#"{"sandbox": {"onViolation": "explode"}}"#, "'sandbox.onViolation' must be one of"),
        (#"{"limits": {"maxCpuSeconds": -1}}"#, "'limits.maxCpuSeconds' must be a non-negative integer"),
    ])
    func aWrongSandboxKeyIsNamed(_ json: String, _ expected: String) {
        var warnings: [String] = []
        let e = Result { () throws(SpaceError) in try SpaceConfiguration(json: json, warnings: &warnings) }
        guard case .failure(let error) = e else { Issue.record("accepted \(json)"); return }
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.contains(expected), "\(error.message)")
    }

    @Test func theSandboxKeysAreRead() throws {
        var warnings: [String] = []
        let c = try SpaceConfiguration(json: """
            {"sandbox": {"profile": "network", "namespaces": ["user", "pid"], "readPaths": ["/opt/data"],
                         "writePaths": ["/var/tmp/x"], "allow": ["fork"], "deny": ["getppid"],
                         "onViolation": "kill", "unixSockets": true, "require": ["seccomp", "landlock"],
                         "environment": ["PATH", "HOME"]},
             "limits": {"maxCpuSeconds": 60, "maxOpenFiles": 256, "maxFileSizeMB": 8}}
            """, warnings: &warnings)
        #expect(warnings.isEmpty, "\(warnings)")
        let s = c.sandbox
        #expect(s.profile == .network && s.namespaces == [.user, .pid] && s.onViolation == .kill && s.unixSockets)
        #expect(s.readPaths == ["/opt/data"] && s.writePaths == ["/var/tmp/x"])
        #expect(s.allow == ["fork"] && s.deny == ["getppid"] && s.environment == ["PATH", "HOME"])
        #expect(s.require == [.seccomp, .landlock])
        #expect(s.maxCpuSeconds == 60 && s.maxOpenFiles == 256 && s.maxFileSizeMB == 8)
    }
}
