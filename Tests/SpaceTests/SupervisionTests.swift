import Space
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Worker pools, rolling reloads, call deadlines, quotas, statistics and events, through real hosts.
@Suite("Supervision of the real host")
struct SupervisionTests {
    // MARK: Pools

    @Test func aPoolRunsOneHostPerWorkerAndSpreadsCallsToTheLeastLoaded() async throws {
        let space = try await launch { $0.workers = 2 }
        try await space.add("faults")
        let pids = space.workerPIDs.compactMap { $0 }
        #expect(pids.count == 2 && Set(pids).count == 2)
        // Four slow calls at once: least-loaded puts two on each worker.
        async let a = space.call("faults", "fault.sleep", 400)
        async let b = space.call("faults", "fault.sleep", 400)
        async let c = space.call("faults", "fault.sleep", 400)
        async let d = space.call("faults", "fault.sleep", 400)
        #expect(await eventually(2) { space.statistics.inFlight == 4 })
        #expect(space.statistics.workers.map(\.inFlight) == [2, 2])
        _ = try await (a, b, c, d)
        #expect(space.statistics.workers.map(\.inFlight) == [0, 0])
        await space.destroy()
    }

    @Test func oneWorkersCrashFailsOnlyItsOwnCallsAndItComesBack() async throws {
        let space = try await launch { $0.workers = 2 }
        try await space.add("faults")
        let before = space.workerPIDs.compactMap { $0 }
        // One call on each worker; then worker 0's host dies.
        async let first = space.call("faults", "fault.sleep", 600)
        async let second = space.call("faults", "fault.sleep", 600)
        #expect(await eventually(2) { space.statistics.workers.map(\.inFlight) == [1, 1] })
        kill(before[0], SIGKILL)
        var failures: [SpaceError] = []
        do { _ = try await first } catch let e as SpaceError { failures.append(e) }
        do { _ = try await second } catch let e as SpaceError { failures.append(e) }
        #expect(failures.count == 1)
        #expect(failures.first?.code == .crashed)
        #expect(failures.first?.message.contains("SIGKILL") == true)
        // The other worker served on, and the dead one is started again in the background.
        #expect(await eventually(5) { space.workerPIDs.allSatisfy { $0 != nil } })
        let after = space.workerPIDs.compactMap { $0 }
        #expect(after[1] == before[1] && after[0] != before[0])
        #expect(try await space.call("faults", "fault.alive", 1) == 2)
        await space.destroy()
    }

    @Test func aRollingReloadFailsNoCall() async throws {
        let space = try await launch { $0.workers = 2 }
        try await space.add("calc")
        let before = Set(space.workerPIDs.compactMap { $0 })
        let failures = Counter()
        let done = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<16 {
                group.addTask {
                    for i in 0..<625 {
                        do {
                            let r = try await space.call("calc", "math.add", .int(Int64(t)), .int(Int64(i)))
                            if r != .int(Int64(t + i)) { failures.increment() }
                        } catch {
                            failures.increment()
                        }
                        done.increment()
                    }
                }
            }
            group.addTask {
                // Reload while the calls are flowing.
                while done.value < 500 { try await Task.sleep(for: .milliseconds(1)) }
                try await space.reload()
            }
            try await group.waitForAll()
        }
        #expect(done.value == 10_000)
        #expect(failures.value == 0)
        let after = Set(space.workerPIDs.compactMap { $0 })
        #expect(after.count == 2 && after.isDisjoint(with: before))
        for pid in before { #expect(await eventually(5) { !processExists(pid) }) }
        await space.destroy()
    }

    // MARK: Deadlines

    @Test func callTimeoutIsTheDefaultDeadlineAndACallsOwnOverridesIt() async throws {
        let space = try await launch { $0.callTimeout = 300 }
        try await space.add("faults")
        let pid = try #require(space.pid)
        let e = await spaceError { try await space.call("faults", "fault.sleep", 5_000) }
        #expect(e?.code == .timedOut)
        #expect(e?.message.contains("fault.sleep did not return within 300 ms") == true)
        #expect(await eventually(2) { !processExists(pid) })
        // A call's own, longer timeout wins; the host that serves it is a new one.
        #expect(try await space.call("faults", "fault.sleep", arguments: [500], timeout: .seconds(5)) == 500)
        #expect(space.pid != pid)
        #expect(space.statistics.timedOut == 1)
        await space.destroy()
    }

    @Test func aCallThatReturnsInTimeLeavesTheHostAlone() async throws {
        let space = try await launch()
        try await space.add("calc")
        let pid = try #require(space.pid)
        for _ in 0..<200 {
            _ = try await space.call("calc", "math.add", arguments: [1, 2], timeout: .milliseconds(500))
        }
        #expect(space.pid == pid)
        await space.destroy()
    }

    // MARK: Quotas

    @Test func argumentBytesAreRefusedBeforeAnythingIsSent() async throws {
        let space = try await launch { $0.quotas.maxArgumentBytes = 64 }
        try await space.add("text")
        let e = await spaceError { try await space.call("text", "bytes.checksum", .bytes(Array(repeating: 7, count: 1000))) }
        #expect(e?.code == .tooLarge)
        #expect(e?.message.contains("limits.maxArgumentBytes (64)") == true)
        #expect(space.statistics.rejected == 1)
        #expect(try await space.call("text", "bytes.checksum", .bytes([1, 2, 3])) != .null)
        await space.destroy()
    }

    @Test func callsPerSecondAreLimited() async throws {
        let space = try await launch { $0.quotas.maxCallsPerSecond = 5 }
        try await space.add("calc")
        var limited: SpaceError?
        for _ in 0..<20 {
            do { _ = try await space.call("calc", "math.add", 1, 1) } catch let e as SpaceError { limited = e; break }
        }
        #expect(limited?.code == .rateLimited)
        #expect(limited?.message.contains("limits.maxCallsPerSecond") == true)
        // The bucket refills.
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await space.call("calc", "math.add", 1, 1) == 2)
        await space.destroy()
    }

    @Test func inFlightCallsWaitForASlotAndAFullQueueIsBusy() async throws {
        let space = try await launch { $0.quotas.maxInFlight = 1; $0.quotas.maxQueued = 1 }
        try await space.add("faults")
        // Long enough that the two calls below are made while it runs, on a loaded machine too.
        async let running = space.call("faults", "fault.sleep", 3000)
        #expect(await eventually(2) { space.statistics.inFlight == 1 })
        async let queued = space.call("faults", "fault.sleep", 10)
        #expect(await eventually(2) { space.statistics.queued == 1 })
        let e = await spaceError { try await space.call("faults", "fault.alive", 1) }
        #expect(e?.code == .busy)
        #expect(space.statistics.queued == 1)
        #expect(try await running == 3000)
        #expect(try await queued == 10)
        #expect(try await space.call("faults", "fault.alive", 1) == 2)
        await space.destroy()
    }

    // MARK: Observability

    @Test func statisticsCountCallsAndMeasureTheirLatency() async throws {
        let space = try await launch()
        try await space.add("calc")
        for i in 0..<100 { _ = try await space.call("calc", "math.add", .int(Int64(i)), 1) }
        _ = try? await space.call("calc", "math.nope")
        let s = space.statistics
        #expect(s.succeeded == 100)
        #expect(s.failed == 1)
        #expect(s.latency.count == 100)
        #expect(s.latency.p50 > 0 && s.latency.p50 <= s.latency.p90 && s.latency.p90 <= s.latency.p99 && s.latency.p99 <= s.latency.max)
        #expect(s.starts == 1 && s.crashes == 0)
        #expect(s.value[field: "latencyNs"]?[field: "count"] == .uint(100))
        await space.destroy()
    }

    @Test func idleStopAndRespawnAreEvents() async throws {
        let space = try await launch { $0.inactivityTimeout = 300 }
        let events = space.events()
        try await space.add("calc")
        var kinds: [SpaceEvent.Kind] = []
        var iterator = events.makeAsyncIterator()
        while let e = await iterator.next() {
            kinds.append(e.kind)
            if e.kind == .idleStopped { break }
        }
        #expect(space.isKilled)
        #expect(try await space.call("calc", "math.add", 1, 2) == 3)
        while let e = await iterator.next() {
            kinds.append(e.kind)
            if e.kind == .respawned {
                #expect(e.detail.contains("replayed 1 add"))
                break
            }
        }
        #expect(kinds == [.idleStopped, .spawned, .respawned])
        await space.destroy()
    }
}

/// A counter shared by tasks.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
