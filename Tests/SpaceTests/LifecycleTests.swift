import Space
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The life of a host process: launch, destroy, build, idle teardown, crash, replay.
@Suite("Lifecycle of the real host")
struct LifecycleTests {
    @Test func launchSpawnsAHostThatSaysHello() async throws {
        let space = try await launch()
        let pid = try #require(space.pid)
        #expect(processExists(pid))
        #expect(!space.isKilled)
        try await space.ping()
        await space.destroy()
        #expect(space.isKilled)
        #expect(space.pid == nil)
        #expect(await eventually(2) { !processExists(pid) })
    }

    @Test func destroyedSpaceFailsUntilBuild() async throws {
        let space = try await launch()
        try await space.add("calc")
        await space.destroy()
        let e = await spaceError { try await space.ping() }
        #expect(e?.code == .notRunning)
        // A call starts it again (as the design's "brought back on demand"), replaying the add.
        try await space.build()
        #expect(!space.isKilled)
        #expect(try await space.call("calc", "math.add", 20, 22) == 42)
        await space.destroy()
    }

    @Test func inactivityTimeoutStopsTheHostAndTheNextCallBringsItBack() async throws {
        let space = try await launch { $0.inactivityTimeout = 1_000 }
        try await space.add("calc", as: "c", initArguments: ["scale=5"])
        let first = try #require(space.pid)
        #expect(try await space.call("c", "math.scaled", 2) == 10)
        // Calls keep it alive...
        for _ in 0..<4 {
            try await Task.sleep(for: .milliseconds(100))
            space.resetInactivity()
        }
        #expect(!space.isKilled)
        // ...and silence stops it.
        #expect(await eventually(5) { space.isKilled })
        #expect(await eventually(2) { !processExists(first) })
        // The next call starts a new host and replays the add with its init arguments.
        #expect(try await space.call("c", "math.scaled", 3) == 15)
        let second = try #require(space.pid)
        #expect(second != first)
        await space.destroy()
    }

    @Test func aCrashedHostFailsItsCallsAndTheNextCallWorks() async throws {
        let space = try await launch()
        try await space.add("calc")
        let pid = try #require(space.pid)
        kill(pid, SIGSEGV)
        // The reader thread notices the death through the pidfd even though no call is in flight.
        #expect(await eventually(5) { space.isKilled })
        // The next call respawns and replays.
        #expect(try await space.call("calc", "math.add", 1, 2) == 3)
        #expect(space.pid != pid)
        await space.destroy()
    }

    @Test func aCrashNamesTheSignal() async throws {
        let space = try await launch()
        try await space.add("calc")
        let pid = try #require(space.pid)
        // A call in flight while the host dies: its caller gets the crash, not a hang.
        async let pending: Void = {
            for _ in 0..<2_000 { _ = try await space.call("calc", "math.add", 1, 2) }
        }()
        try await Task.sleep(for: .milliseconds(5))
        kill(pid, SIGKILL)
        do {
            try await pending
            // Fast machines may finish all calls before the kill lands; then the next call sees it.
        } catch let e as SpaceError {
            #expect(e.code == .crashed || e.code == .notRunning)
            if e.code == .crashed { #expect(e.message.contains("SIGKILL")) }
        }
        await space.destroy()
    }

    @Test func theHostDiesWithItsOwner() async throws {
        // The owner (an exit-test child process) launches a space and exits without destroying it.
        let record = "/tmp/space-pdeath-\(getpid())"
        unlink(record)
        await #expect(processExitsWith: .success) {
            let space = try await Space.launch()
            let pid = space.pid ?? 0
            let line = "\(pid)\n"
            let f = fopen("/tmp/space-pdeath-\(getppid())", "w")
            fputs(line, f)
            fclose(f)
            exit(0)
        }
        let text = shell("cat \(record)").filter { $0.isNumber }
        unlink(record)
        let pid = try #require(Int32(text))
        #expect(pid > 0)
        // PR_SET_PDEATHSIG: the host is killed with its owner (reaped by init, so it vanishes).
        #expect(await eventually(5) { !processExists(pid) })
    }

    @Test func aPluginThatClosesTheChannelFailsItsCallAndLeavesNoHost() async throws {
        let space = try await launch()
        try await space.add("c", declarations: "int close(int fd);")
        let pid = try #require(space.pid)
        // The plugin closes fd 3, the host's end of the channel: the reply can never arrive.
        let e = await spaceError { try await space.call("c", "close", 3) }
        #expect(e?.code == .crashed)
        #expect(await eventually(5) { !processExists(pid) })
        // The next call starts a new host and replays the add.
        #expect(try await space.call("c", "close", -1) == -1)
        #expect(space.pid != pid)
        await space.destroy()
    }

    @Test func launchAndDestroyLeakNoFileDescriptors() async throws {
        // In a process of its own (an exit test): the suites running beside it in this process open
        // and close descriptors of their own, which made a process-wide count flaky.
        await #expect(processExitsWith: .success) {
            func openFDs() -> Int {
                guard let d = opendir("/proc/self/fd") else { return -1 }
                defer { closedir(d) }
                var n = 0
                while readdir(d) != nil { n += 1 }
                return n
            }
            // Warm up once (the runtime opens a few descriptors of its own on first use).
            let first = try await Space.launch()
            await first.destroy()
            let before = openFDs()
            for _ in 0..<10 {
                let space = try await Space.launch()
                try await space.add("calc")
                _ = try await space.call("calc", "math.add", 1, 2)
                await space.destroy()
            }
            // Reader threads release their channel (and its fds) just after destroy returns.
            for _ in 0..<300 {
                if openFDs() <= before { exit(0) }
                try await Task.sleep(for: .milliseconds(10))
            }
            let message = "descriptors: \(before) before, \(openFDs()) after 10 launches\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            exit(1)
        }
    }

    @Test func aFailedReplayDoesNotLeaveAHostBehind() async throws {
        let dir = buildDirectory()
        let copy = temporaryFile("libvanishing.so", "")
        #expect(shell("cp \(dir)/libcalc.so \(copy) && echo ok").contains("ok"))
        let space = try await launch { $0.inactivityTimeout = 200 }
        try await space.add(copy, as: "v")
        let first = try #require(space.pid)
        #expect(await eventually(5) { space.isKilled })
        unlink(copy)
        // The restart cannot replay the add: the call fails with the reason, and no host lingers.
        let e = await spaceError { try await space.call("v", "math.add", 1, 2) }
        #expect(e?.code == .libraryNotFound)
        #expect(e?.message.contains("could not be restarted") == true)
        // (The idle-stopped host exits on its own after its shutdown; under load that can lag.)
        #expect(await eventually(5) { !processExists(first) })
        #expect(space.isKilled)
        await space.destroy()
    }

    @Test func missingHostExecutableIsATypedError() async throws {
        let e = await spaceError {
            _ = try await launch { $0.hostExecutable = "/nonexistent/space-host" }
        }
        #expect(e?.code == .spawnFailed)
    }

    @Test func aHostThatNeverSaysHelloTimesOut() async throws {
        // /bin/sleep never writes a hello: launch gives up after control.forkTimeout.
        let script = temporaryFile("silent-host", "#!/bin/sh\nexec sleep 30\n")
        chmod(script, 0o755)
        let e = await spaceError {
            _ = try await launch {
                $0.hostExecutable = script
                $0.control.forkTimeout = 200
            }
        }
        #expect(e?.code == .spawnFailed)
        #expect(e?.message.contains("hello") == true)
    }

    @Test func cPluginsDoNotNeedTheSwiftRuntime() {
        for plugin in ["calc", "text", "events", "sort"] {
            let needed = shell("readelf -d \(buildDirectory())/lib\(plugin).so")
            #expect(needed.contains("NEEDED"), "readelf output for \(plugin): \(needed)")
            #expect(!needed.contains("libswift"), "lib\(plugin).so links the Swift runtime:\n\(needed)")
            #expect(!needed.contains("libstdc++"), "lib\(plugin).so loads libstdc++ when added:\n\(needed)")
        }
    }

    /// Loading and binding libstdc++.so.6 is ~0.5 ms of every start: the host links it statically
    /// (Package.swift, Sources/space-host/link).
    @Test func theHostDoesNotLoadTheCxxRuntime() {
        let needed = shell("readelf -d \(buildDirectory())/space-host")
        #expect(needed.contains("libffi"), "readelf output for space-host: \(needed)")
        #expect(!needed.contains("libstdc++"), "space-host loads libstdc++ at every start:\n\(needed)")
    }
}
