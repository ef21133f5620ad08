// The supervision phase: what an idle teardown costs the next call (respawn + replay of the adds),
// and what a pool of two workers buys on a CPU-bound plugin function.
import CSpaceSystem
import Space

#if canImport(Glibc)
import Glibc
#endif

struct SupervisionResults {
    /// A warm call, p50 (ns).
    var warmP50: UInt64
    /// The first call after a graceful stop (what an idle teardown does), p50 (ns): spawn, hello,
    /// replay of `add calc`, then the call.
    var firstAfterIdleP50: UInt64
    /// The same, with the machine left idle for 20 ms after the stop (its threads asleep), p50.
    var firstAfterIdleSettledP50: UInt64
    /// The same without the add replay (a space with nothing added, answering `ping`).
    var respawnOnlyP50: UInt64
    /// `add calc` into a running host (load + declarations), p50.
    var addWarmP50: UInt64
    /// `add calc` as the first request after a fresh host's hello, p50: what a replay pays.
    var addColdP50: UInt64
    /// Calls per second of `math.spin` (about 1 ms of CPU each) with 1 and with 2 workers.
    var spinSingle: Double
    var spinPool: Double
    var spinIterations: UInt64
    /// The machine's own floor: two processes spinning in parallel against one doing both shares.
    var parallelFloor: Double
}

/// The spin of calc's `math.spin`, for the floor's child processes.
@inline(never)
func spin(_ iterations: UInt64) -> UInt64 {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    var i: UInt64 = 0
    while i < iterations {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        x &+= i
        i += 1
    }
    return x
}

/// `space-bench --spin-child N ITERATIONS`: spins N times and exits.
func spinChild(_ count: Int, _ iterations: UInt64) -> Never {
    var sink: UInt64 = 0
    for _ in 0..<count { sink &+= spin(iterations) }
    exit(sink == 42 ? 1 : 0)
}

/// Wall time of `children` processes each spinning `count` times at once.
func spinProcesses(_ children: Int, count: Int, iterations: UInt64) -> UInt64 {
    let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)  // cs_spawn gives every child an fd 3
    defer { close(devNull) }
    let t0 = monotonicNanoseconds()
    var pids: [pid_t] = []
    for _ in 0..<children {
        let argv = [selfPath(), "--spin-child", "\(count)", "\(iterations)"]
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = cargs.withUnsafeBufferPointer { a in cs_spawn(argv[0], a.baseAddress!, environ, devNull, -1, 1, &pid) }
        precondition(rc == 0, "spawn failed: \(rc)")
        pids.append(pid)
    }
    for pid in pids {
        var st: Int32 = 0
        _ = waitpid(pid, &st, 0)
    }
    return monotonicNanoseconds() - t0
}

/// How long `measured` takes, `rounds` times, sorted (ns); `before` and `after` run untimed around
/// each round.
func timings(_ rounds: Int, before: () async throws -> Void = {}, after: () async throws -> Void = {},
             _ measured: () async throws -> Void) async throws -> [UInt64] {
    var samples: [UInt64] = []
    samples.reserveCapacity(rounds)
    for _ in 0..<rounds {
        try await before()
        let t0 = monotonicNanoseconds()
        try await measured()
        samples.append(monotonicNanoseconds() - t0)
        try await after()
    }
    return samples.sorted()
}

func supervisionBenchmarks(respawns: Int, spinCalls: Int) async throws -> SupervisionResults {
    // Respawn + replay: stop the host as the inactivity watchdog does, then time the next call.
    let space = try await Space.launch()
    try await space.add("calc")
    let warm = try await timings(2_000) { _ = try await space.call("calc", "math.add", 1, 2) }
    let first = try await timings(respawns, before: { await space.kill() }) {
        _ = try await space.call("calc", "math.add", 1, 2)
    }
    // Then the same with 20 ms between the stop and the call, as a real idle stop long before the
    // call would leave it: the old host's namespaces torn down, this process's threads asleep. (A
    // separate loop: interleaved, the sleeps would also cool the back-to-back rounds.)
    let settled = try await timings(respawns, before: {
        await space.kill()
        try await Task.sleep(for: .milliseconds(20))
    }) { _ = try await space.call("calc", "math.add", 1, 2) }
    var round = 0
    let adds = try await timings(respawns, after: { try await space.remove("c\(round)"); round += 1 }) {
        try await space.add("calc", as: "c\(round)")
    }
    await space.destroy()
    let bare = try await Space.launch()
    let respawnOnly = try await timings(respawns, before: { await bare.kill() }) { try await bare.ping() }
    // The first add into a host that has just said hello (the replay's share of a respawn).
    let addsCold = try await timings(respawns, before: {
        await bare.kill()
        try await bare.ping()
    }, after: { try await bare.remove("calc") }) { try await bare.add("calc") }
    await bare.destroy()

    // Pool throughput: the same CPU-bound calls from 8 tasks, with 1 worker and with 2.
    let iterations: UInt64 = 400_000  // about 1 ms on this machine (docs/benchmarks.md)
    func throughput(workers: Int) async throws -> Double {
        var config = SpaceConfiguration()
        config.workers = workers
        let s = try await Space.launch(config)
        try await s.add("calc")
        _ = try await s.call("calc", "math.spin", .uint(iterations))
        let t0 = monotonicNanoseconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<(spinCalls / 8) { _ = try await s.call("calc", "math.spin", .uint(iterations)) }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(monotonicNanoseconds() - t0) / 1e9
        await s.destroy()
        return Double(spinCalls / 8 * 8) / seconds
    }
    // The floor first: one process doing all the spins, then two doing half each, at once.
    let one = spinProcesses(1, count: spinCalls, iterations: iterations)
    let two = spinProcesses(2, count: spinCalls / 2, iterations: iterations)
    let single = try await throughput(workers: 1)
    let pool = try await throughput(workers: 2)
    return SupervisionResults(warmP50: percentile(warm, 0.5), firstAfterIdleP50: percentile(first, 0.5),
                              firstAfterIdleSettledP50: percentile(settled, 0.5),
                              respawnOnlyP50: percentile(respawnOnly, 0.5), addWarmP50: percentile(adds, 0.5),
                              addColdP50: percentile(addsCold, 0.5), spinSingle: single, spinPool: pool,
                              spinIterations: iterations, parallelFloor: Double(one) / Double(max(two, 1)))
}

func supervisionRows(_ r: SupervisionResults) -> [(String, String, String)] {
    let added = r.firstAfterIdleP50 > r.warmP50 ? r.firstAfterIdleP50 - r.warmP50 : 0
    return [
        ("first_call_after_idle_ms", fmt(Double(r.firstAfterIdleP50) / 1e6, 3), "first call after an idle stop: respawn + replay of add calc + the call, p50"),
        ("respawn_replay_added_ms", fmt(Double(added) / 1e6, 3), "what that adds to a warm call, p50 (target <= 3)"),
        ("first_call_after_idle_settled_ms", fmt(Double(r.firstAfterIdleSettledP50) / 1e6, 3), "the same call, the stop 20 ms before it (threads asleep, vCPUs idle), p50"),
        ("respawn_only_ms", fmt(Double(r.respawnOnlyP50) / 1e6, 3), "first ping after a stop with nothing to replay, p50"),
        ("add_calc_warm_ms", fmt(Double(r.addWarmP50) / 1e6, 3), "add calc into a running host (dlopen + 39 declarations), p50"),
        ("add_calc_cold_ms", fmt(Double(r.addColdP50) / 1e6, 3), "the same as the first request of a fresh host (what a replay pays), p50"),
        ("spin_calls_per_s_1_worker", "\(Int(r.spinSingle))", "calc math.spin \(r.spinIterations) (~1 ms CPU) from 8 tasks, workers 1"),
        ("spin_calls_per_s_2_workers", "\(Int(r.spinPool))", "the same, workers 2"),
        ("parallel_floor_speedup", fmt(r.parallelFloor, 3), "floor: 2 processes spinning at once against 1 doing both shares"),
        ("pool_speedup_2_workers", fmt(r.spinPool / max(r.spinSingle, 1), 3), "pool of 2 against 1 worker (target >= 1.8; cannot beat the floor above)"),
    ]
}
