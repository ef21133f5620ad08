import Space
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The fault matrix: every way the `faults` plugin (Plugins/faults/faults.c) misbehaves, through the
/// real host. For each fault: the parent survives and the faulty host is replaced, the caller gets
/// the right typed error within its deadline (no hang), and the next call works.
/// Serialized: the floods and bombs load the machine and the process-wide monitor thread (which
/// drains every host's stderr and fires every space's deadlines), so side by side one fault's test
/// would time the others. The cross-space effect has its own test,
/// `aStderrFloodDoesNotDelayAnotherSpacesDeadline`.
@Suite("Fault matrix through the real host", .serialized)
struct FaultMatrixTests {
    // MARK: Helpers

    /// A space for fault tests: no default deadline, a 1 GiB address-space cap on each host (so the
    /// memory and thread bombs stay far from the machine's limits), and room for many deaths.
    static func faultSpace(addFaults: Bool = true,
                           _ configure: (inout SpaceConfiguration) -> Void = { _ in }) async throws -> Space {
        let space = try await launch { config in
            config.callTimeout = 0
            config.quotas.maxMemoryMB = 1024
            config.control.allowedSequentialDeaths = 100
            configure(&config)
        }
        if addFaults { try await space.add("faults", timeout: .seconds(5)) }
        return space
    }

    /// The "no hang" bound on every failure: generous, the point is that it comes back at all.
    static let noHang: Duration = .seconds(5)

    /// Proves the space serves calls again (on a new host, if the last one died).
    static func expectAlive(_ space: Space, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            let r = try await space.call("faults", "fault.alive", arguments: [41], timeout: .seconds(5))
            #expect(r == 42, sourceLocation: sourceLocation)
        } catch {
            Issue.record("the next call (fault.alive) failed: \(error)", sourceLocation: sourceLocation)
        }
    }

    struct DeadlineExceeded: Error, CustomStringConvertible {
        let seconds: Double
        var description: String { "did not finish within \(seconds) s" }
    }

    /// Runs `body`, failing with ``DeadlineExceeded`` after `seconds` (for streams, which have no
    /// deadline of their own; `body` must end when cancelled).
    static func within<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let value = first else { throw DeadlineExceeded(seconds: seconds) }
            return value
        }
    }

    /// Reads `events` until `done` says the collected ones suffice (at most `seconds`).
    static func collect(_ events: AsyncStream<SpaceEvent>, seconds: Double = 5,
                        until done: @escaping @Sendable ([SpaceEvent]) -> Bool) async throws -> [SpaceEvent] {
        try await within(seconds) {
            var seen: [SpaceEvent] = []
            for await e in events {
                seen.append(e)
                if done(seen) { break }
            }
            return seen
        }
    }

    // MARK: Crashes

    /// A fault that kills its host while the call is in flight.
    struct CrashFault: Sendable, CustomTestStringConvertible {
        let name: String
        let function: String
        let arguments: [Value]
        /// What the crash error's message must contain (the death, then the stderr excerpt).
        let expected: [String]
        var testDescription: String { name }
    }

    static let crashFaults: [CrashFault] = [
        CrashFault(name: "segv", function: "fault.segv", arguments: [],
                   expected: ["SIGSEGV", "its last stderr line", "faults: dereferencing NULL"]),
        CrashFault(name: "abort", function: "fault.abort", arguments: [],
                   expected: ["SIGABRT", "its last stderr line", "faults: calling abort()"]),
        CrashFault(name: "exit(7)", function: "fault.exit", arguments: [7],
                   expected: ["exited with status 7", "its last stderr line", "faults: calling _exit(7)"]),
        // The memory bomb runs only under maxMemoryMB (faultSpace sets 1024): malloc fails, and the
        // plugin writes through the NULL.
        CrashFault(name: "memory bomb", function: "fault.memory", arguments: [0],
                   expected: ["SIGSEGV", "its last stderr line", "faults: out of memory after"]),
    ]

    @Test(arguments: crashFaults)
    func aCrashFailsTheCallWithCrashedAndTheNextCallGetsANewHost(_ fault: CrashFault) async throws {
        let space = try await Self.faultSpace { $0.quotas.maxMemoryMB = 1024 }
        #expect(space.configuration.quotas.maxMemoryMB == 1024)  // never a memory bomb without it
        let before = try #require(space.pid)
        let clock = ContinuousClock()
        let start = clock.now
        // The call's own deadline is only a safety net: a crash must be reported long before it.
        let e = await spaceError {
            _ = try await space.call("faults", fault.function, arguments: fault.arguments, timeout: .seconds(20))
        }
        let elapsed = clock.now - start
        #expect(elapsed < Self.noHang, "\(fault.name): the crash took \(elapsed) to be reported")
        #expect(e?.code == .crashed, "\(fault.name): \(String(describing: e))")
        for text in fault.expected {
            #expect(e?.message.contains(text) == true, "\(fault.name): \"\(text)\" missing from: \(e?.message ?? "nil")")
        }
        // The faulty host is gone (reaped), and the next call starts a new one.
        #expect(await eventually(5) { !processExists(before) })
        await Self.expectAlive(space)
        let after = space.pid
        #expect(after != nil && after != before)
        if let after { #expect(processExists(after)) }
        let stats = space.statistics
        #expect(stats.crashes == 1)
        #expect(stats.starts == 2)
        await space.destroy()
    }

    // MARK: Deadlines

    @Test func aHangTimesOutKillsItsHostAndInterruptsTheOtherCallInFlight() async throws {
        let space = try await Self.faultSpace()
        let before = try #require(space.pid)
        let clock = ContinuousClock()
        // A long call in flight on the same host (the plugin is thread-safe: both run at once)...
        async let sleeper = spaceError {
            _ = try await space.call("faults", "fault.sleep", arguments: [5000], timeout: .seconds(20))
        }
        #expect(await eventually(5) { space.recentOutput.contains("faults: sleeping 5000 ms") })
        // ...when another call hangs past its own deadline.
        let start = clock.now
        async let hanger = spaceError {
            _ = try await space.call("faults", "fault.hang", arguments: [], timeout: .milliseconds(300))
        }
        let hangError = await hanger
        let hangElapsed = clock.now - start
        let sleepError = await sleeper
        let sleepElapsed = clock.now - start

        #expect(hangError?.code == .timedOut, "\(String(describing: hangError))")
        #expect(hangError?.message.contains("300 ms") == true)
        #expect(hangElapsed >= .milliseconds(290))
        #expect(hangElapsed < Self.noHang, "the hang took \(hangElapsed) to time out")
        // The sleeper does not wait out its 5 s: its host was killed under it.
        #expect(sleepError?.code == .interrupted, "\(String(describing: sleepError))")
        #expect(sleepElapsed < .seconds(4), "the interrupted call took \(sleepElapsed)")

        #expect(await eventually(5) { !processExists(before) })
        #expect(space.statistics.timedOut == 1)
        await Self.expectAlive(space)
        #expect(space.pid != before)
        await space.destroy()
    }

    @Test func theCallRightAfterATimeoutGetsANewHost() async throws {
        let space = try await Self.faultSpace()
        // Load on the machine (the race below is widest when the monitor thread is preempted): a
        // second space floods its stderr meanwhile.
        let busy = try await Self.faultSpace()
        async let load = spaceError {
            _ = try await busy.call("faults", "fault.flood", arguments: [2, 4_000_000_000], timeout: .seconds(60))
        }
        for round in 1...20 {
            let before = space.pid  // (nothing in the loop throws: the load must be stopped below)
            let e = await spaceError {
                _ = try await space.call("faults", "fault.hang", arguments: [], timeout: .milliseconds(100))
            }
            #expect(e?.code == .timedOut, "round \(round): \(String(describing: e))")
            // At once, no waiting for the old host to go: the caller that saw the timeout retries.
            do {
                let r = try await space.call("faults", "fault.alive", arguments: [41], timeout: .seconds(5))
                #expect(r == 42)
            } catch {
                Issue.record("round \(round): the call right after the timeout failed: \(error)")
            }
            #expect(space.pid != nil && space.pid != before, "round \(round)")
        }
        await busy.kill(force: true)
        let loadEnd = await load
        #expect(loadEnd?.code == .notRunning, "the load flood should end with the kill: \(String(describing: loadEnd))")
        await space.destroy()
        await busy.destroy()
    }

    /// A fault in the init hook, during `add`.
    struct InitFault: Sendable, CustomTestStringConvertible {
        let name: String
        let initArguments: [String]
        let timeout: Duration
        let code: SpaceError.Code
        let expected: [String]
        /// The host survives the fault (a refused init is an answer, not a death).
        let hostSurvives: Bool
        var testDescription: String { name }
    }

    static let initFaults: [InitFault] = [
        InitFault(name: "slow init", initArguments: ["initDelay=3000"], timeout: .milliseconds(300),
                  code: .timedOut, expected: ["300 ms"], hostSurvives: false),
        InitFault(name: "refused init", initArguments: ["initFail=nope"], timeout: .seconds(20),
                  code: .initFailed, expected: ["nope"], hostSurvives: true),
        InitFault(name: "crashing init", initArguments: ["initCrash"], timeout: .seconds(20),
                  code: .crashed, expected: ["SIGABRT", "faults: init: calling abort()"], hostSurvives: false),
    ]

    @Test(arguments: initFaults)
    func aFaultyInitFailsTheAddAndTheNextAddWorks(_ fault: InitFault) async throws {
        let space = try await Self.faultSpace(addFaults: false)
        let before = try #require(space.pid)
        let clock = ContinuousClock()
        let start = clock.now
        let e = await spaceError {
            try await space.add("faults", initArguments: fault.initArguments, timeout: fault.timeout)
        }
        let elapsed = clock.now - start
        #expect(elapsed < Self.noHang, "\(fault.name): the add took \(elapsed) to fail")
        #expect(e?.code == fault.code, "\(fault.name): \(String(describing: e))")
        for text in fault.expected {
            #expect(e?.message.contains(text) == true, "\(fault.name): \"\(text)\" missing from: \(e?.message ?? "nil")")
        }
        if fault.hostSurvives {
            #expect(space.pid == before)
            #expect(processExists(before))
        } else {
            #expect(await eventually(5) { !processExists(before) })
        }
        // The failed add is not kept (nor replayed): a plain add works, on a new host if needed.
        try await space.add("faults", timeout: .seconds(5))
        await Self.expectAlive(space)
        if !fault.hostSurvives { #expect(space.pid != before) }
        await space.destroy()
    }

    // MARK: Resource exhaustion and floods

    @Test func aThreadBombIsBoundedAndTheHostStillServes() async throws {
        let space = try await Self.faultSpace { $0.quotas.maxMemoryMB = 1024 }
        #expect(space.configuration.quotas.maxMemoryMB == 1024)
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: Result<Value, SpaceError>
        do throws(SpaceError) {
            outcome = .success(try await space.call("faults", "fault.threads", arguments: [100_000], timeout: .seconds(20)))
        } catch {
            outcome = .failure(error)
        }
        switch outcome {
        case .success(let created):
            let n = try #require(created.int64)
            #expect(n > 0 && n < 100_000, "created \(n) threads")
        case .failure(let error):
            // A typed failure is acceptable too (the host may die of it).
            #expect(error.code == .crashed || error.code == .timedOut, "\(error)")
        }
        #expect(clock.now - start < Self.noHang)
        await Self.expectAlive(space)
        await space.destroy()
    }

    @Test func aStdoutFloodCompletesAndTheHostStillServes() async throws {
        let space = try await Self.faultSpace()
        let before = try #require(space.pid)
        let clock = ContinuousClock()
        let start = clock.now
        let written = try await space.call("faults", "fault.flood", arguments: [1, 50_000_000], timeout: .seconds(20))
        #expect(written == 50_000_000)
        #expect(clock.now - start < Self.noHang)
        await Self.expectAlive(space)
        #expect(space.pid == before)
        await space.destroy()
    }

    @Test func aStderrFloodIsDrainedByTheParentAndDoesNotBlockThePlugin() async throws {
        let space = try await Self.faultSpace()
        let before = try #require(space.pid)
        let clock = ContinuousClock()
        let start = clock.now
        let written = try await space.call("faults", "fault.flood", arguments: [2, 50_000_000], timeout: .seconds(20))
        let elapsed = clock.now - start
        #expect(written == 50_000_000)
        #expect(elapsed < Self.noHang, "50 MB of stderr took \(elapsed)")
        // The tail keeps the newest lines: after the flood, a marker is the last one.
        #expect(try await space.call("faults", "fault.stderr", arguments: ["marker"], timeout: .seconds(5)) == 6)
        #expect(await eventually(3) { space.recentOutput.last == "marker" }, "\(space.recentOutput.suffix(3))")
        await Self.expectAlive(space)
        #expect(space.pid == before)
        await space.destroy()
    }

    @Test func aStderrFloodDoesNotDelayAnotherSpacesDeadline() async throws {
        let flooded = try await Self.faultSpace()
        let other = try await Self.faultSpace()
        let clock = ContinuousClock()
        // A flood far longer than the test (4 GB); it is ended below by killing its host.
        async let flood = spaceError {
            _ = try await flooded.call("faults", "fault.flood", arguments: [2, 4_000_000_000], timeout: .seconds(60))
        }
        // (Not `recentOutput` to see it started: it would contend with the draining for the tail.)
        try await Task.sleep(for: .milliseconds(100))
        // Safety net: whatever happens, the flood ends after 2 s (a starved deadline then fires).
        let stopper = Task {
            try await Task.sleep(for: .seconds(2))
            await flooded.kill(force: true)
        }
        // A hang in another space must still time out at its own deadline, during the flood.
        let hangStart = clock.now
        let e = await spaceError {
            _ = try await other.call("faults", "fault.hang", arguments: [], timeout: .milliseconds(300))
        }
        let hangElapsed = clock.now - hangStart
        let floodStillRunning = !stopper.isCancelled && flooded.pid != nil
        stopper.cancel()
        await flooded.kill(force: true)
        #expect(e?.code == .timedOut, "\(String(describing: e))")
        #expect(hangElapsed < .milliseconds(1500),
                "a 300 ms deadline fired after \(hangElapsed) while another host flooded its stderr")
        #expect(floodStillRunning, "the flood ended before the deadline was due: the test proved nothing")
        let floodError = await flood
        #expect(floodError?.code == .notRunning, "\(String(describing: floodError))")
        await Self.expectAlive(other)
        await flooded.destroy()
        await other.destroy()
    }

    // MARK: Callbacks

    @Test func aCallbackCalledAfterItsReleaseIsDroppedAndTheHostSurvives() async throws {
        let space = try await Self.faultSpace()
        let before = try #require(space.pid)
        let call = try await space.stream("faults", "fault.late_callback", arguments: [.callback(arity: 1)],
                                          timeout: .seconds(5))
        #expect(call.result == .int(0))
        // cb(1), then the plugin releases it: the stream ends. The late cb(2) is not delivered.
        let seen = try await Self.within(5) {
            var seen: [CallbackInvocation] = []
            for try await inv in call.invocations { seen.append(inv) }
            return seen
        }
        #expect(seen.map(\.arguments) == [[.int(1)]])
        // The late call comes 50 ms after the release.
        try await Task.sleep(for: .milliseconds(200))
        #expect(space.pid == before)
        #expect(processExists(before))
        await Self.expectAlive(space)
        let stats = try await space.call("space", "stats")
        let callbacks = try #require(stats[field: "callbacks"])
        #expect(callbacks[field: "afterRelease"] == .int(1), "\(callbacks)")
        #expect(callbacks[field: "live"] == .int(0), "\(callbacks)")
        #expect(space.pid == before)
        await space.destroy()
    }

    // MARK: Events and restart intensity

    @Test func aCrashIsAnEventAndTheNextCallRespawns() async throws {
        let space = try await Self.faultSpace()
        let before = try #require(space.pid)
        let events = space.events()
        let e = await spaceError { _ = try await space.call("faults", "fault.segv", arguments: [], timeout: .seconds(20)) }
        #expect(e?.code == .crashed)
        await Self.expectAlive(space)
        let after = try #require(space.pid)
        #expect(after != before)
        let seen = try await Self.collect(events) { seen in seen.contains { $0.kind == .respawned } }
        let kinds = seen.map(\.kind)
        let crashed = try #require(seen.firstIndex { $0.kind == .crashed }, "\(seen)")
        let spawned = try #require(seen.firstIndex { $0.kind == .spawned }, "\(seen)")
        let respawned = try #require(seen.firstIndex { $0.kind == .respawned }, "\(seen)")
        #expect(crashed < spawned && spawned < respawned, "\(kinds)")
        #expect(seen[crashed].pid == before)
        #expect(seen[crashed].error?.code == .crashed)
        #expect(seen[crashed].error?.message.contains("SIGSEGV") == true)
        #expect(seen[crashed].error?.message.contains("faults: dereferencing NULL") == true)
        #expect(seen[spawned].pid == after)
        #expect(seen[respawned].pid == after)
        await space.destroy()
    }

    @Test func tooManySequentialDeathsMakeTheSpaceDeadUntilReload() async throws {
        let space = try await Self.faultSpace {
            $0.control.allowedSequentialDeaths = 2
            $0.control.exitThreshold = 60_000
        }
        let events = space.events()
        // Three crashes in a row, each on a fresh host (the call after a crash respawns).
        for i in 1...3 {
            let e = await spaceError {
                _ = try await space.call("faults", "fault.segv", arguments: [], timeout: .seconds(20))
            }
            #expect(e?.code == .crashed, "crash \(i): \(String(describing: e))")
        }
        #expect(space.statistics.crashes == 3)
        #expect(space.statistics.sequentialDeaths == 3)
        #expect(space.stateName == "dead")
        // Dead: calls fail fast, naming the setting, and start no host.
        let clock = ContinuousClock()
        let start = clock.now
        let e = await spaceError {
            _ = try await space.call("faults", "fault.alive", arguments: [41], timeout: .seconds(20))
        }
        #expect(clock.now - start < .seconds(2))
        #expect(e?.code == .dead, "\(String(describing: e))")
        #expect(e?.message.contains("allowedSequentialDeaths") == true, "\(e?.message ?? "nil")")
        #expect(space.isKilled)
        #expect(space.statistics.starts == 3)
        let seen = try await Self.collect(events) { seen in seen.contains { $0.kind == .dead } }
        let dead = try #require(seen.first { $0.kind == .dead }, "\(seen)")
        #expect(dead.error?.code == .dead)
        #expect(seen.filter { $0.kind == .crashed }.count == 3)
        // A reload brings it back.
        try await space.reload()
        #expect(space.stateName == "running")
        await Self.expectAlive(space)
        await space.destroy()
    }
}
