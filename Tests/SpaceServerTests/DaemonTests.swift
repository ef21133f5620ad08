import CSpaceSystem
import Space
import SpaceServer
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A daemon served from this test process, in its own runtime directory, and stopped at the end.
final class TestDaemon: Sendable {
    let directory: String
    let server: DaemonServer
    private let finished: Task<Result<Void, SpaceError>, Never>

    init(_ configure: (inout SpaceConfiguration) -> Void = { _ in }) async throws {
        var template = Array("/tmp/space-daemon-test-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        var config = SpaceConfiguration()
        configure(&config)
        let server = DaemonServer(configuration: config, configPath: nil, runtimeDirectory: directory)
        self.server = server
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        finished = Task {
            do throws(SpaceError) {
                try await server.run { readyContinuation.yield() }
                readyContinuation.finish()
                return .success(())
            } catch {
                readyContinuation.finish()
                return .failure(error)
            }
        }
        for await _ in ready { break }
        if case .failure(let e) = await peekFailure() { throw e }
    }

    private func peekFailure() async -> Result<Void, SpaceError>? {
        SpaceDaemon.isRunning(in: directory) ? nil : await finished.value
    }

    /// A client of space `name` (no auto-start: this daemon is in-process).
    func connect(_ name: String = "default") async throws -> Space {
        try await SpaceDaemon.connect(space: name, autoStart: false, runtimeDirectory: directory)
    }

    /// Stops the daemon and waits until it has.
    func stop() async {
        server.requestShutdown()
        _ = await finished.value
    }
}

/// Runs `body` and returns the SpaceError it throws.
func spaceError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> SpaceError? {
    do {
        try await body()
        Issue.record("expected a SpaceError, got success", sourceLocation: sourceLocation)
        return nil
    } catch let e as SpaceError {
        return e
    } catch {
        Issue.record("expected a SpaceError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite("The daemon, through the Swift API")
struct DaemonTests {
    @Test("Two clients share a space: one adds, the other calls")
    func sharedSpace() async throws {
        let daemon = try await TestDaemon()
        let a = try await daemon.connect()
        let b = try await daemon.connect()
        let info = try await a.add("calc")
        #expect(info[field: "name"] == "calc")
        #expect(try await b.call("calc", "math.add", 2, 3) == .int(5))
        #expect(try await a.call("calc", "geo.midpoint", ["x": 0, "y": 0], ["x": 4, "y": 2])
                == ["x": 2.0, "y": 1.0])
        let list = try await b.daemonRequest("ls")
        #expect(list.array?.count == 1)
        #expect(list.array?.first?[field: "plugins"] == ["calc"])
        #expect(list.array?.first?[field: "calls"]?.int == 2)
        await daemon.stop()
    }

    @Test("Named spaces are separate; a missing one is unknownSpace")
    func namedSpaces() async throws {
        let daemon = try await TestDaemon()
        let one = try await daemon.connect("one")
        let two = try await daemon.connect("two")
        try await one.add("calc")
        try await two.add("text")
        let e = await spaceError { try await two.call("calc", "math.add", 1, 2) }
        #expect(e?.code == .unknownPackage)
        #expect(try await one.call("calc", "math.add", 1, 2) == .int(3))
        let ghost = try await daemon.connect("ghost")
        let g = await spaceError { try await ghost.call("calc", "math.add", 1, 2) }
        #expect(g?.code == .unknownSpace)
        #expect(g?.message.contains("ghost") == true)
        let bad = await spaceError { _ = try await daemon.connect("no/slash") }
        #expect(bad?.code == .badArgument)
        await daemon.stop()
    }

    @Test("Callbacks relayed through the daemon: answered comparators, and a stream after the return")
    func callbacks() async throws {
        let daemon = try await TestDaemon()
        let s = try await daemon.connect()
        try await s.add("sort")
        try await s.add("events")
        let sorted = try await s.call("sort", "array.sort", [3, 1, 2], .callback { args -> Value in
            .int(args[0].int64! < args[1].int64! ? -1 : args[0] == args[1] ? 0 : 1)
        })
        #expect(sorted[field: "xs"] == [1, 2, 3])
        // Ticks from a plugin thread after the call returned, then a release ends the stream.
        let timer = try await s.stream("events", "timer.start", 1, 3, .callback(arity: 1))
        var ticks: [Value] = []
        for try await i in timer.invocations { ticks.append(i.arguments[0]) }
        #expect(ticks == [1, 2, 3])
        let stats = try await s.daemonRequest("stats")
        let host = try #require(stats[field: "host"])
        #expect(host[field: "callbacks"]?[field: "made"] == host[field: "callbacks"]?[field: "freed"])
        await daemon.stop()
    }

    @Test("A client that disconnects while a plugin thread waits for its answer does not hang the plugin")
    func disconnectWhileAnswerPending() async throws {
        let daemon = try await TestDaemon()
        let owner = try await daemon.connect()
        try await owner.add("sort")
        let leaver = try await daemon.connect()
        let started = Atomic<Bool>(false)
        let call = Task {
            try await leaver.call("sort", "array.sort", [3, 1, 2], .callback { args -> Value in
                started.store(true, ordering: .relaxed)
                // Hang up instead of answering (destroy closes the connection).
                Task { await leaver.destroy() }
                usleep(200_000)
                return .int(0)
            })
        }
        _ = try? await call.value
        let handlerRan = started.load(ordering: .relaxed)
        #expect(handlerRan)
        // The space still works for everyone else, and nothing leaked.
        #expect(try await owner.call("sort", "array.sort", [2, 1], .callback { args -> Value in
            .int(args[0].int64! < args[1].int64! ? -1 : 1)
        })[field: "xs"] == [1, 2])
        await daemon.stop()
    }

    @Test("A crash fails the call with the signal; the next call restarts the space with its adds")
    func crashAndRespawn() async throws {
        let daemon = try await TestDaemon()
        let s = try await daemon.connect()
        try await s.add("calc")
        try await s.add("c", declarations: "void abort(void);")
        let e = await spaceError { try await s.call("c", "abort") }
        #expect(e?.code == .crashed)
        #expect(e?.message.contains("SIGABRT") == true)
        #expect(try await s.call("calc", "math.add", 20, 22) == .int(42))
        let events = try await s.daemonRequest("events", ["space": "default"])
        let names = (events.array ?? []).compactMap { $0[field: "event"]?.string }
        #expect(names.contains("crashed"))
        #expect(names.filter { $0 == "spawned" }.count == 2)
        #expect(names.contains("ready") && names.contains("respawned"))
        // The crash quotes what the host wrote to stderr last (abort's own message, if any, or nothing),
        // and names the signal.
        let crash = try #require((events.array ?? []).first { $0[field: "event"]?.string == "crashed" })
        #expect(crash[field: "message"]?.string?.contains("SIGABRT") == true)
        await daemon.stop()
    }

    @Test("kill stops the host, the next call brings it back; reload gives a new host at once")
    func killAndReload() async throws {
        let daemon = try await TestDaemon()
        let s = try await daemon.connect()
        try await s.add("calc")
        let status = try await s.daemonRequest("status")
        let pid = try #require(status[field: "pid"]?.int)
        let killed = try await s.daemonRequest("kill")
        #expect(killed[field: "pid"]?.int == pid)
        #expect(try await s.daemonRequest("status")[field: "state"] == "stopped")
        #expect(try await s.call("calc", "math.add", 1, 1) == .int(2))
        let after = try await s.daemonRequest("status")
        #expect(after[field: "state"] == "running")
        #expect(after[field: "pid"]?.int != pid)
        let reloaded = try await s.daemonRequest("reload")
        let pids = try #require(reloaded[field: "pids"]?.array)
        #expect(pids.count == 1 && pids[0].int != nil && pids[0].int != after[field: "pid"]?.int)
        #expect(try await s.call("calc", "math.add", 2, 2) == .int(4))
        await daemon.stop()
    }

    @Test("A call's deadline travels to the daemon, which kills the host and answers timedOut")
    func deadlines() async throws {
        let daemon = try await TestDaemon { $0.workers = 2 }
        let s = try await daemon.connect()
        try await s.add("faults")
        // A slow init past the add's deadline.
        let slowInit = await spaceError { try await s.add("faults", as: "slow", initArguments: ["initDelay=3000"], timeout: .milliseconds(300)) }
        #expect(slowInit?.code == .timedOut)
        #expect(try await s.call("faults", "fault.alive", 1) == .int(2))
        let e = await spaceError { try await s.call("faults", "fault.sleep", arguments: [5_000], timeout: .milliseconds(300)) }
        #expect(e?.code == .timedOut)
        #expect(e?.message.contains("faults fault.sleep did not return within 300 ms") == true)
        #expect(try await s.call("faults", "fault.sleep", arguments: [10], timeout: .seconds(10)) == .int(10))
        let stats = try await s.daemonRequest("stats")
        #expect(stats[field: "timedOut"]?.int == 1)
        let events = (try await s.daemonRequest("events", ["space": "default"]).array ?? []).compactMap { $0[field: "event"]?.string }
        #expect(events.filter { $0 == "timedOut" }.count == 3)  // the add on both workers, then the call
        await daemon.stop()
    }

    @Test("events --follow streams new events until cancelled")
    func followEvents() async throws {
        let daemon = try await TestDaemon()
        let s = try await daemon.connect()
        let follow = try await s.daemonStream("events", ["follow": true])
        try await s.add("calc")
        var seen: [String] = []
        for try await i in follow.invocations {
            if let name = i.arguments.first?[field: "event"]?.string { seen.append(name) }
            if seen.contains("added") { break }
        }
        #expect(seen.contains("created"))
        #expect(seen.contains("added"))
        follow.cancel()
        await daemon.stop()
    }

    @Test("A broken frame closes only that connection, with a reason; others go on")
    func protocolViolation() async throws {
        let daemon = try await TestDaemon()
        let good = try await daemon.connect()
        try await good.add("calc")
        let fd = cs_unix_connect(daemon.directory + "/daemon.sock")
        #expect(fd >= 0)
        // A length of 4 GiB: over every limit.
        var garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x03, 0, 0, 0, 1]
        _ = write(fd, &garbage, garbage.count)
        var buf = [UInt8](repeating: 0, count: 4096)
        var total = 0
        while true {
            let n = read(fd, &buf[total], buf.count - total)
            if n <= 0 { break }
            total += n
        }
        close(fd)
        // hello, then an error frame (kind 5, id 0), then EOF.
        let text = String(decoding: buf[0..<total], as: UTF8.self)
        #expect(text.contains("the daemon closed this connection"))
        #expect(try await good.call("calc", "math.add", 1, 2) == .int(3))
        await daemon.stop()
    }

    @Test("Many clients at once, every reply correct")
    func manyClients() async throws {
        let daemon = try await TestDaemon()
        let setup = try await daemon.connect()
        try await setup.add("calc")
        try await withThrowingTaskGroup(of: Int.self) { group in
            for c in 0..<50 {
                group.addTask {
                    let s = try await daemon.connect()
                    var ok = 0
                    for i in 0..<20 where try await s.call("calc", "math.add", .int(Int64(c)), .int(Int64(i))) == .int(Int64(c + i)) {
                        ok += 1
                    }
                    await s.destroy()
                    return ok
                }
            }
            var total = 0
            for try await n in group { total += n }
            #expect(total == 50 * 20)
        }
        await daemon.stop()
    }

    @Test("A second daemon for the same directory refuses to run")
    func secondDaemonRefused() async throws {
        let daemon = try await TestDaemon()
        let other = DaemonServer(configuration: SpaceConfiguration(), configPath: nil, runtimeDirectory: daemon.directory)
        let e = await spaceError { try await other.run() }
        #expect(e?.code == .alreadyRunning)
        #expect(SpaceDaemon.isRunning(in: daemon.directory))
        await daemon.stop()
        #expect(!SpaceDaemon.isRunning(in: daemon.directory))
        #expect(access(daemon.directory + "/daemon.sock", F_OK) != 0)
    }

    @Test("A host outlives the thread that spawned it (PR_SET_PDEATHSIG follows the spawning thread)")
    func hostSurvivesIdlePoolThreads() async throws {
        let daemon = try await TestDaemon()
        let s = try await daemon.connect()
        try await s.add("calc")
        let pid = try #require(try await s.daemonRequest("status")[field: "pid"]?.int)
        // The runtime retires idle pool threads after a few seconds; the host must not die with one.
        try await Task.sleep(for: .seconds(7))
        let status = try await s.daemonRequest("status")
        #expect(status[field: "state"] == "running")
        #expect(status[field: "pid"]?.int == pid)
        #expect(try await s.call("calc", "math.add", 1, 2) == .int(3))
        let events = try await s.daemonRequest("events", ["space": "default"])
        #expect(!(events.array ?? []).contains { $0[field: "event"] == "crashed" })
        await daemon.stop()
    }

    @Test("Shutdown stops every host")
    func shutdownStopsHosts() async throws {
        let daemon = try await TestDaemon()
        let s = try await daemon.connect()
        try await s.add("calc")
        let pid = try #require(try await s.daemonRequest("status")[field: "pid"]?.int)
        await daemon.stop()
        var gone = false
        for _ in 0..<200 where !gone {
            gone = kill(Int32(pid), 0) != 0
            usleep(10_000)
        }
        #expect(gone)
        let e = await spaceError { try await s.call("calc", "math.add", 1, 2) }
        #expect(e?.code == .daemonNotRunning || e?.code == .crashed)
    }
}
