// The sandbox phase: what the default sandbox costs a start and a call, beside the same space with
// profile `none`, measured in the same run and interleaved (this machine's noise moves both alike).
import Space

#if canImport(Glibc)
import Glibc
#endif

struct SandboxResults {
    var coldStrictP50: UInt64 = 0
    var coldNoneP50: UInt64 = 0
    var coldNoNamespacesP50: UInt64 = 0
    var callStrictP50: UInt64 = 0
    var callNoneP50: UInt64 = 0
    var layers: [String] = []
    var setupP50: UInt64 = 0
}

/// One cold start: launch → add calc → first result, in nanoseconds.
func coldStart(_ config: SpaceConfiguration = SpaceConfiguration()) async throws -> UInt64 {
    let t0 = monotonicNanoseconds()
    let s = try await Space.launch(config)
    try await s.add("calc")
    _ = try await s.call("calc", "math.add", 1, 2)
    let t = monotonicNanoseconds() - t0
    await s.destroy()
    return t
}

func sandboxBenchmarks(coldStarts: Int, rounds: Int, callsPerRound: Int) async throws -> SandboxResults {
    var none = SpaceConfiguration()
    none.sandbox.profile = .none
    let strict = SpaceConfiguration()
    var flat = SpaceConfiguration()
    flat.sandbox.namespaces = []
    var r = SandboxResults()

    // Cold starts, alternating the configurations.
    _ = try await coldStart(strict)  // the seccomp program is compiled per space; warm the rest once
    var colds: (strict: [UInt64], none: [UInt64], flat: [UInt64]) = ([], [], [])
    for _ in 0..<coldStarts {
        colds.strict.append(try await coldStart(strict))
        colds.none.append(try await coldStart(none))
        colds.flat.append(try await coldStart(flat))
    }
    r.coldNoNamespacesP50 = percentile(colds.flat.sorted(), 0.5)
    r.coldStrictP50 = percentile(colds.strict.sorted(), 0.5)
    r.coldNoneP50 = percentile(colds.none.sorted(), 0.5)

    // Round trips: one space of each kind, rounds alternating.
    let a = try await Space.launch(strict)
    let b = try await Space.launch(none)
    try await a.add("calc")
    try await b.add("calc")
    r.layers = a.hostInfo?.layers.names ?? []
    // What applying the layers takes inside the host, over a few fresh hosts.
    var setups: [UInt64] = []
    for _ in 0..<max(3, coldStarts) {
        let s = try await Space.launch(strict)
        setups.append(UInt64(await s.sandboxReport()?[field: "setupNs"]?.int ?? 0))
        await s.destroy()
    }
    r.setupP50 = percentile(setups.sorted(), 0.5)
    var samples: (strict: [UInt64], none: [UInt64]) = ([], [])
    for _ in 0..<rounds {
        for (space, isStrict) in [(a, true), (b, false)] {
            for _ in 0..<callsPerRound {
                let t0 = monotonicNanoseconds()
                _ = try await space.call("calc", "math.add", 1, 2)
                let t = monotonicNanoseconds() - t0
                if isStrict { samples.strict.append(t) } else { samples.none.append(t) }
            }
        }
    }
    r.callStrictP50 = percentile(samples.strict.sorted(), 0.5)
    r.callNoneP50 = percentile(samples.none.sorted(), 0.5)
    await a.destroy()
    await b.destroy()
    return r
}

func sandboxRows(_ r: SandboxResults) -> [(String, String, String)] {
    [
        ("cold_start_sandboxed_ms", fmt(Double(r.coldStrictP50) / 1e6, 3),
         "launch + add calc + first result, default sandbox (\(r.layers.count) layers), p50 (target <= 3)"),
        ("cold_start_sandboxed_no_ns_ms", fmt(Double(r.coldNoNamespacesP50) / 1e6, 3),
         "the same, default sandbox without namespaces, p50"),
        ("cold_start_unsandboxed_ms", fmt(Double(r.coldNoneP50) / 1e6, 3), "the same, sandbox.profile none, p50"),
        ("sandbox_setup_in_host_us", fmt(Double(r.setupP50) / 1e3, 1), "applying every layer inside the host (space.sandbox setupNs), p50"),
        ("call_rtt_sandboxed_p50_ns", "\(r.callStrictP50)", "space call calc math.add, default sandbox, p50"),
        ("call_rtt_unsandboxed_p50_ns", "\(r.callNoneP50)", "the same, sandbox.profile none, interleaved rounds, p50"),
        ("call_sandboxed_over_unsandboxed", fmt(Double(r.callStrictP50) / Double(max(r.callNoneP50, 1)), 3),
         "ratio (target: no measurable cost)"),
    ]
}
