// space-bench: measures a space beside the raw floor of this machine, in the same run.
//
// The floor is two processes ping-ponging messages over a socketpair with blocking read/write — the
// least any cross-process call can cost: 64 bytes for a trivial call, 4 KiB and 1 MiB for calls that
// carry a buffer each way. Rounds alternate floor and space so both see the same machine noise.
// See docs/benchmarks.md.
import CSpaceSystem
import Space
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var json = false
    var rounds = 5
    var callsPerRound = 4_000
    var inflightCalls = 200_000
    var coldStarts = 15
    /// 1 MiB round trips per round.
    var megabyteCalls = 40
    var callbackEvents = 1_000_000
    /// `space call` processes against a warm daemon.
    var cliRuns = 200
    /// Concurrent daemon clients, and calls each.
    var daemonClients = 1_000
    var daemonCallsPerClient = 100
    /// Only the daemon and CLI phase.
    var daemonOnly = false
    /// Only the sequential phase (for profiling).
    var sequentialOnly = false
    /// Only the buffer phase (for profiling).
    var buffersOnly = false
    /// Only the supervision phase.
    var supervisionOnly = false
    /// Only the sandbox phase.
    var sandboxOnly = false
    /// Stops and first calls measured in the supervision phase.
    var respawns = 30
    /// `math.spin` calls per pool measurement.
    var spinCalls = 800

    static func parse() -> Options {
        var o = Options()
        var args = CommandLine.arguments.dropFirst()
        while let a = args.popFirst() {
            switch a {
            case "--json": o.json = true
            case "--quick":
                o.rounds = 2
                o.callsPerRound = 1_000
                o.inflightCalls = 20_000
                o.coldStarts = 3
                o.megabyteCalls = 5
                o.callbackEvents = 100_000
                o.cliRuns = 20
                o.daemonClients = 100
                o.daemonCallsPerClient = 20
                o.respawns = 5
                o.spinCalls = 160
            case "--rounds": o.rounds = Int(args.popFirst() ?? "") ?? o.rounds
            case "--calls": o.callsPerRound = Int(args.popFirst() ?? "") ?? o.callsPerRound
            case "--sequential-only": o.sequentialOnly = true
            case "--buffers-only": o.buffersOnly = true
            case "--daemon-only": o.daemonOnly = true
            case "--supervision-only": o.supervisionOnly = true
            case "--sandbox-only": o.sandboxOnly = true
            case "-h", "--help":
                print("""
                USAGE: space-bench [--json] [--quick] [--rounds N] [--calls N] [--sequential-only] [--buffers-only] [--daemon-only]
                                   [--supervision-only] [--sandbox-only]

                Measures the raw socket floor and a space side by side, in one run.
                  --json       one JSON object (keys: floor_rtt_p50_ns, call_rtt_p50_ns, call_rtt_p99_ns,
                               calls_per_s_sequential, calls_per_s_64_inflight, cold_start_ms, host_idle_rss_kb,
                               floor_4k_rtt_p50_ns, call_4k_rtt_p50_ns, floor_1m_rtt_p50_ns, call_1m_rtt_p50_ns, ...)
                  --quick      a short run (smoke test; numbers are rough)
                  --rounds N   alternating floor/space rounds (default 5)
                  --calls N    round trips per round (default 4000)
                  --sequential-only
                               only the floor and the sequential call phase (for profiling)
                  --buffers-only
                               only the 4 KiB and 1 MiB buffer phase (for profiling)
                  --daemon-only
                               only the daemon phase: `space call` processes against a warm daemon,
                               and 1,000 clients x 100 calls at once
                  --supervision-only
                               only the supervision phase: the first call after an idle stop (respawn +
                               replay), and a pool of 2 workers against 1 on a CPU-bound function
                """)
                exit(0)
            default:
                writeStandardError("space-bench: unknown option \(a) (see --help)\n")
                exit(2)
            }
        }
        return o
    }
}


func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    guard !sorted.isEmpty else { return 0 }
    let i = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
    return sorted[i]
}

func selfPath() -> String {
    var buf = [CChar](repeating: 0, count: 4097)
    let n = readlink("/proc/self/exe", &buf, 4096)
    return String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

// MARK: The floor

/// The echo child: read `size` bytes, write them back, until EOF. Pinned to `cpu` when it is >= 0.
func echoChild(_ size: Int, cpu: Int32) -> Never {
    if cpu >= 0 { _ = cs_pin_to_cpu(cpu) }
    var buf = [UInt8](repeating: 0, count: size)
    buf.withUnsafeMutableBytes { b in
        while true {
            var got = 0
            while got < size {
                let n = read(3, b.baseAddress! + got, size - got)
                if n <= 0 { exit(0) }
                got += n
            }
            var sent = 0
            while sent < size {
                let w = write(3, b.baseAddress! + sent, size - sent)
                if w <= 0 { exit(0) }
                sent += w
            }
        }
    }
    exit(0)
}

/// The CPUs the floor runs on: the measuring thread on the first, the echo child on the second
/// (the same one for the same-core floor). Pinned, so the floor does not depend on where the
/// scheduler happens to put the child: across cores is the placement a space runs in (client and
/// host each on their own core).
let onlineCPUs = Int32(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

final class Floor {
    let fd: Int32
    let pid: pid_t
    let size: Int
    let parentCPU: Int32 = 0

    init(size: Int = 64, sameCore: Bool = false) {
        self.size = size
        let childCPU: Int32 = sameCore || onlineCPUs < 2 ? 0 : 1
        var fds: [Int32] = [-1, -1]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        var pid: pid_t = 0
        let argv = [selfPath(), "--echo-child", "\(size)", "\(childCPU)"]
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        let rc = cargs.withUnsafeBufferPointer { a in
            cs_spawn(argv[0], a.baseAddress!, environ, fds[1], -1, 1, &pid)
        }
        precondition(rc == 0, "spawn failed: \(rc)")
        close(fds[1])
        self.fd = fds[0]
        self.pid = pid
    }

    /// `n` timed round trips, measured on a thread pinned to `parentCPU`.
    func roundTrips(_ n: Int, into samples: inout [UInt64]) {
        let run = PinnedRun(cpu: parentCPU) { [fd, size] in
            var samples: [UInt64] = []
            samples.reserveCapacity(n)
            Floor.roundTrips(fd: fd, size: size, n, into: &samples)
            return samples
        }
        samples += run.wait()
    }

    private static func roundTrips(fd: Int32, size: Int, _ n: Int, into samples: inout [UInt64]) {
        var buf = [UInt8](repeating: 7, count: size)
        buf.withUnsafeMutableBytes { b in
            for _ in 0..<n {
                let t0 = monotonicNanoseconds()
                var sent = 0
                while sent < size {
                    let w = write(fd, b.baseAddress! + sent, size - sent)
                    if w <= 0 { fatalError("echo child died") }
                    sent += w
                }
                var got = 0
                while got < size {
                    let r = read(fd, b.baseAddress! + got, size - got)
                    if r <= 0 { fatalError("echo child died") }
                    got += r
                }
                samples.append(monotonicNanoseconds() - t0)
            }
        }
    }

    func stop() {
        close(fd)
        var st: Int32 = 0
        waitpid(pid, &st, 0)
    }
}

// MARK: Measurements

func rssKB(_ pid: Int32) -> Int {
    guard let f = fopen("/proc/\(pid)/status", "r") else { return -1 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, f) != nil {
        let s = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        if s.hasPrefix("VmRSS:") {
            return Int(s.dropFirst(6).filter { $0.isNumber }) ?? -1
        }
    }
    return -1
}

func run(_ o: Options) async throws {
    if o.daemonOnly {
        let d = try await daemonBenchmarks(cliRuns: o.cliRuns, clients: o.daemonClients, callsPerClient: o.daemonCallsPerClient)
        return report(daemonRows(d), json: o.json)
    }
    if o.supervisionOnly {
        let r = try await supervisionBenchmarks(respawns: o.respawns, spinCalls: o.spinCalls)
        return report(supervisionRows(r), json: o.json)
    }
    if o.sandboxOnly {
        let r = try await sandboxBenchmarks(coldStarts: o.coldStarts, rounds: o.rounds, callsPerRound: o.callsPerRound)
        return report(sandboxRows(r), json: o.json)
    }
    let floor = Floor()
    let sameCoreFloor = Floor(sameCore: true)
    let space = try await Space.launch()
    try await space.add("calc")
    if o.buffersOnly {
        floor.stop()
        sameCoreFloor.stop()
        try await space.add("text")
        let kib4 = try await buffers(space, size: 4096, rounds: o.rounds, perRound: o.callsPerRound / 2)
        print("4 KiB: floor p50 \(kib4.floor) ns (same core \(kib4.sameCore) ns), call p50 \(kib4.call) ns")
        let mib1 = try await buffers(space, size: 1 << 20, rounds: o.rounds, perRound: o.megabyteCalls)
        print("1 MiB: floor p50 \(mib1.floor) ns (same core \(mib1.sameCore) ns), call p50 \(mib1.call) ns")
        return
    }

    // Warm up both paths.
    var warm: [UInt64] = []
    floor.roundTrips(2_000, into: &warm)
    sameCoreFloor.roundTrips(2_000, into: &warm)
    for _ in 0..<2_000 { _ = try await space.call("calc", "math.add", 2, 3) }

    var floorSamples: [UInt64] = []
    var sameCoreSamples: [UInt64] = []
    var callSamples: [UInt64] = []
    floorSamples.reserveCapacity(o.rounds * o.callsPerRound)
    callSamples.reserveCapacity(o.rounds * o.callsPerRound)
    var callNanos: UInt64 = 0
    for _ in 0..<o.rounds {
        floor.roundTrips(o.callsPerRound, into: &floorSamples)
        sameCoreFloor.roundTrips(o.callsPerRound, into: &sameCoreSamples)
        let start = monotonicNanoseconds()
        for i in 0..<o.callsPerRound {
            let t0 = monotonicNanoseconds()
            let r = try await space.call("calc", "math.add", .int(Int64(i)), 3)
            callSamples.append(monotonicNanoseconds() - t0)
            if r != .int(Int64(i) + 3) { fatalError("wrong result \(r)") }
        }
        callNanos += monotonicNanoseconds() - start
    }
    floor.stop()
    sameCoreFloor.stop()
    floorSamples.sort()
    sameCoreSamples.sort()
    callSamples.sort()
    if o.sequentialOnly {
        print("floor p50 \(percentile(floorSamples, 0.5)) ns, call p50 \(percentile(callSamples, 0.5)) ns")
        return
    }

    // 64 calls in flight from concurrent tasks.
    let perTask = o.inflightCalls / 64
    let t0 = monotonicNanoseconds()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for t in 0..<64 {
            group.addTask {
                for i in 0..<perTask {
                    let r = try await space.call("calc", "math.add", .int(Int64(t)), .int(Int64(i)))
                    if r != .int(Int64(t + i)) { fatalError("wrong result \(r)") }
                }
            }
        }
        try await group.waitForAll()
    }
    let inflightNanos = monotonicNanoseconds() - t0
    let inflightPerSecond = Double(perTask * 64) / (Double(inflightNanos) / 1e9)

    let rss = space.pid.map(rssKB) ?? -1

    // Callbacks (after the RSS reading: the events plugin starts threads).
    let cb = try await callbacks(space, events: o.callbackEvents, rounds: o.rounds, perRound: o.callsPerRound)

    // Buffers: bytes.copy takes a buffer and gives the same bytes back, beside a floor that echoes a
    // message of the same size. (After the RSS reading: a 1 MiB call grows the host's buffers.)
    try await space.add("text")
    let kib4 = try await buffers(space, size: 4096, rounds: o.rounds, perRound: o.callsPerRound / 2)
    let mib1 = try await buffers(space, size: 1 << 20, rounds: o.rounds, perRound: o.megabyteCalls)
    await space.destroy()

    // Cold start: launch → add calc → first result.
    var colds: [UInt64] = []
    for _ in 0..<o.coldStarts {
        colds.append(try await coldStart())
    }
    colds.sort()

    let daemon = try await daemonBenchmarks(cliRuns: o.cliRuns, clients: o.daemonClients,
                                            callsPerClient: o.daemonCallsPerClient)
    let supervision = try await supervisionBenchmarks(respawns: o.respawns, spinCalls: o.spinCalls)
    let sandbox = try await sandboxBenchmarks(coldStarts: o.coldStarts, rounds: o.rounds, callsPerRound: o.callsPerRound)

    let floorP50 = percentile(floorSamples, 0.5)
    let callP50 = percentile(callSamples, 0.5)
    let sequentialPerSecond = Double(o.rounds * o.callsPerRound) / (Double(callNanos) / 1e9)
    let rows: [(String, String, String)] = [
        ("floor_rtt_p50_ns", "\(floorP50)", "raw socketpair ping-pong, 64 B, across cores, p50"),
        ("floor_rtt_same_core_p50_ns", "\(percentile(sameCoreSamples, 0.5))", "the same, both processes on one core, p50"),
        ("floor_rtt_p90_ns", "\(percentile(floorSamples, 0.9))", "raw socketpair ping-pong, p90"),
        ("floor_rtt_p99_ns", "\(percentile(floorSamples, 0.99))", "raw socketpair ping-pong, p99"),
        ("call_rtt_p50_ns", "\(callP50)", "space call calc math.add, p50"),
        ("call_rtt_p90_ns", "\(percentile(callSamples, 0.9))", "space call, p90"),
        ("call_rtt_p99_ns", "\(percentile(callSamples, 0.99))", "space call, p99"),
        ("call_over_floor_p50", fmt(Double(callP50) / Double(max(floorP50, 1)), 3), "ratio (target <= 1.15)"),
        ("calls_per_s_sequential", "\(Int(sequentialPerSecond))", "one caller, one call at a time"),
        ("calls_per_s_64_inflight", "\(Int(inflightPerSecond))", "64 tasks calling at once (target >= 400000)"),
        ("floor_4k_rtt_p50_ns", "\(kib4.floor)", "raw ping-pong, 4 KiB each way, across cores, p50"),
        ("floor_4k_same_core_rtt_p50_ns", "\(kib4.sameCore)", "the same, both processes on one core, p50"),
        ("call_4k_rtt_p50_ns", "\(kib4.call)", "space call text bytes.copy, 4 KiB in and out, p50"),
        ("call_4k_over_floor_p50", fmt(Double(kib4.call) / Double(max(kib4.floor, 1)), 3), "ratio (target <= 1.3)"),
        ("floor_1m_rtt_p50_ns", "\(mib1.floor)", "raw ping-pong, 1 MiB each way, across cores, p50"),
        ("floor_1m_same_core_rtt_p50_ns", "\(mib1.sameCore)", "the same, both processes on one core, p50"),
        ("call_1m_rtt_p50_ns", "\(mib1.call)", "space call text bytes.copy, 1 MiB in and out, p50"),
        ("call_1m_over_floor_p50", fmt(Double(mib1.call) / Double(max(mib1.floor, 1)), 3), "ratio"),
        ("callbacks_per_s", "\(Int(cb.perSecond))", "events timer.every 0 N cb:1: events from a plugin thread to a handler (target >= 500000)"),
        ("callback_return_rtt_p50_ns", "\(cb.rttP50)", "events storm.ask 1 N: returning callback answered by the parent, p50"),
        ("callback_return_over_floor_p50", fmt(Double(cb.rttP50) / Double(max(floorP50, 1)), 3), "ratio (target <= 1.3)"),
        ("cold_start_ms", fmt(Double(percentile(colds, 0.5)) / 1e6, 3), "launch + add calc + first result, p50 (target <= 3)"),
        ("host_idle_rss_kb", "\(rss)", "host RSS with calc loaded (target <= 5120)"),
    ] + daemonRows(daemon) + supervisionRows(supervision) + sandboxRows(sandbox)
    report(rows, json: o.json)
}

/// The daemon phase's rows.
func daemonRows(_ d: DaemonResults) -> [(String, String, String)] {
    [
        ("process_spawn_floor_p50_ms", fmt(Double(d.spawnFloorP50) / 1e6, 3), "posix_spawn + wait of /bin/true, p50"),
        ("cli_call_p50_ms", fmt(Double(d.cliP50) / 1e6, 3), "`space call calc math.add 2 3` process, warm daemon, p50 (target <= 10)"),
        ("cli_call_p99_ms", fmt(Double(d.cliP99) / 1e6, 3), "the same, p99"),
        ("daemon_clients", "\(d.clients)", "concurrent client connections"),
        ("daemon_calls_correct", "\(d.correct)", "correct replies of \(d.clients * d.callsPerClient) (\(d.callsPerClient) sequential calls per client)"),
        ("daemon_calls_per_s", "\(Int(d.callsPerSecond))", "all clients at once, through the daemon"),
    ]
}

/// Prints rows as a table or one JSON object.
func report(_ rows: [(String, String, String)], json: Bool) {
    if json {
        print("{" + rows.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
    } else {
        let w = rows.map(\.0.count).max()!
        for r in rows {
            let pad = String(repeating: " ", count: w - r.0.count)
            let v = String(repeating: " ", count: max(0, 12 - r.1.count)) + r.1
            print("\(r.0)\(pad)  \(v)   \(r.2)")
        }
    }
}

/// Callback throughput (void events from a plugin thread, one call) and the round trip of a returning
/// callback: the time between consecutive invocations of a plugin loop that asks the parent each
/// time is one answer's round trip (event out, answer back, next event out).
func callbacks(_ space: Space, events: Int, rounds: Int, perRound: Int) async throws -> (perSecond: Double, rttP50: UInt64) {
    try await space.add("events")
    // Warm up.
    _ = try await space.call("events", "timer.every", 0, 10_000, .callback { _ in })
    var best = 0.0
    for _ in 0..<max(rounds / 2, 1) {
        let counter = Atomic<Int>(0)
        let t0 = monotonicNanoseconds()
        let r = try await space.call("events", "timer.every", 0, .value(.int(Int64(events))), .callback { _ in
            counter.add(1, ordering: .relaxed)
        })
        let dt = monotonicNanoseconds() - t0
        guard r == .int(Int64(events)), counter.load(ordering: .relaxed) == events else {
            fatalError("timer.every delivered \(counter.load(ordering: .relaxed)) of \(events) (\(r))")
        }
        best = max(best, Double(events) / (Double(dt) / 1e9))
    }
    let stamps = Mutex<[UInt64]>([])
    stamps.withLock { $0.reserveCapacity(rounds * perRound + 1) }
    for _ in 0..<rounds {
        stamps.withLock { $0.append(0) }  // round boundary
        _ = try await space.call("events", "storm.ask", 1, .value(.int(Int64(perRound))), .callback { _ -> Value in
            stamps.withLock { $0.append(monotonicNanoseconds()) }
            return .int(1)
        })
    }
    var deltas: [UInt64] = []
    stamps.withLock { s in
        for i in 1..<s.count where s[i] != 0 && s[i - 1] != 0 { deltas.append(s[i] - s[i - 1]) }
    }
    deltas.sort()
    return (best, percentile(deltas, 0.5))
}

/// Runs `body` on a new thread pinned to `cpu` and waits for its result.
final class PinnedRun: @unchecked Sendable {
    let cpu: Int32
    let body: () -> [UInt64]
    var result: [UInt64] = []
    private var thread = pthread_t()

    init(cpu: Int32, _ body: @escaping () -> [UInt64]) {
        self.cpu = cpu
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let run = Unmanaged<PinnedRun>.fromOpaque(arg!).takeRetainedValue()
            _ = cs_pin_to_cpu(run.cpu)
            run.result = run.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    func wait() -> [UInt64] {
        pthread_join(thread, nil)
        return result
    }
}

/// p50 round trips of a `size`-byte floor echo (across cores and on one core) and of `bytes.copy`
/// with `size` bytes in and the same bytes out, alternating rounds.
func buffers(_ space: Space, size: Int, rounds: Int, perRound: Int) async throws -> (floor: UInt64, sameCore: UInt64, call: UInt64) {
    let floor = Floor(size: size)
    let same = Floor(size: size, sameCore: true)
    defer {
        floor.stop()
        same.stop()
    }
    let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    let data = Value.bytes(bytes)
    var floorSamples: [UInt64] = []
    var sameSamples: [UInt64] = []
    var callSamples: [UInt64] = []
    let warm = max(perRound / 4, 1)
    floor.roundTrips(warm, into: &floorSamples)
    same.roundTrips(warm, into: &sameSamples)
    for _ in 0..<warm { _ = try await space.call("text", "bytes.copy", data) }
    floorSamples.removeAll()
    sameSamples.removeAll()
    for _ in 0..<rounds {
        floor.roundTrips(perRound, into: &floorSamples)
        same.roundTrips(perRound, into: &sameSamples)
        for _ in 0..<perRound {
            let t0 = monotonicNanoseconds()
            let r = try await space.call("text", "bytes.copy", data)
            callSamples.append(monotonicNanoseconds() - t0)
            // Check outside the timed part, and cheaply: the length and a few bytes.
            guard case .object(let fields) = r, fields.count == 2, case .bytes(let out) = fields[1].value,
                  out.count == size, out.first == bytes.first, out.last == bytes.last, out[size / 2] == bytes[size / 2]
            else { fatalError("bytes.copy gave a wrong result") }
        }
    }
    floorSamples.sort()
    sameSamples.sort()
    callSamples.sort()
    return (percentile(floorSamples, 0.5), percentile(sameSamples, 0.5), percentile(callSamples, 0.5))
}

func fmt(_ v: Double, _ places: Int) -> String {
    var p = 1.0
    for _ in 0..<places { p *= 10 }
    let scaled = (v * p).rounded() / p
    return "\(scaled)"
}

if CommandLine.arguments.dropFirst().first == "--echo-child" {
    let a = CommandLine.arguments
    echoChild(a.count > 2 ? Int(a[2]) ?? 64 : 64, cpu: a.count > 3 ? Int32(a[3]) ?? -1 : -1)
}
if CommandLine.arguments.dropFirst().first == "--spin-child" {
    let a = CommandLine.arguments
    spinChild(Int(a[2]) ?? 1, UInt64(a[3]) ?? 1)
}
let options = Options.parse()
do {
    try await run(options)
} catch {
    writeStandardError("space-bench: \(error)\n")
    exit(1)
}
