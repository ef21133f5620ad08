// space-bench: measures a space beside the raw floor of this machine, in the same run.
//
// The floor is two processes ping-ponging messages over a socketpair with blocking read/write — the
// least any cross-process call can cost: 64 bytes for a trivial call, 4 KiB and 1 MiB for calls that
// carry a buffer each way. Rounds alternate floor and space so both see the same machine noise.
// See docs/benchmarks.md.
import CSpaceSystem
import Space

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
    /// Only the sequential phase (for profiling).
    var sequentialOnly = false

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
            case "--rounds": o.rounds = Int(args.popFirst() ?? "") ?? o.rounds
            case "--calls": o.callsPerRound = Int(args.popFirst() ?? "") ?? o.callsPerRound
            case "--sequential-only": o.sequentialOnly = true
            case "-h", "--help":
                print("""
                USAGE: space-bench [--json] [--quick] [--rounds N] [--calls N] [--sequential-only]

                Measures the raw socket floor and a space side by side, in one run.
                  --json       one JSON object (keys: floor_rtt_p50_ns, call_rtt_p50_ns, call_rtt_p99_ns,
                               calls_per_s_sequential, calls_per_s_64_inflight, cold_start_ms, host_idle_rss_kb,
                               floor_4k_rtt_p50_ns, call_4k_rtt_p50_ns, floor_1m_rtt_p50_ns, call_1m_rtt_p50_ns, ...)
                  --quick      a short run (smoke test; numbers are rough)
                  --rounds N   alternating floor/space rounds (default 5)
                  --calls N    round trips per round (default 4000)
                  --sequential-only
                               only the floor and the sequential call phase (for profiling)
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

/// The echo child: read `size` bytes, write them back, until EOF.
func echoChild(_ size: Int) -> Never {
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

final class Floor {
    let fd: Int32
    let pid: pid_t
    let size: Int

    init(size: Int = 64) {
        self.size = size
        var fds: [Int32] = [-1, -1]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        var pid: pid_t = 0
        let argv = [selfPath(), "--echo-child", "\(size)"]
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

    func roundTrips(_ n: Int, into samples: inout [UInt64]) {
        var buf = [UInt8](repeating: 7, count: size)
        let size = self.size
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
    let floor = Floor()
    let space = try await Space.launch()
    try await space.add("calc")

    // Warm up both paths.
    var warm: [UInt64] = []
    floor.roundTrips(2_000, into: &warm)
    for _ in 0..<2_000 { _ = try await space.call("calc", "math.add", 2, 3) }

    var floorSamples: [UInt64] = []
    var callSamples: [UInt64] = []
    floorSamples.reserveCapacity(o.rounds * o.callsPerRound)
    callSamples.reserveCapacity(o.rounds * o.callsPerRound)
    var callNanos: UInt64 = 0
    for _ in 0..<o.rounds {
        floor.roundTrips(o.callsPerRound, into: &floorSamples)
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
    floorSamples.sort()
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

    // Buffers: bytes.reverse takes a buffer and gives it back (in-out), beside a floor that echoes
    // a message of the same size.
    try await space.add("text")
    let kib4 = try await buffers(space, size: 4096, rounds: o.rounds, perRound: o.callsPerRound / 2)
    let mib1 = try await buffers(space, size: 1 << 20, rounds: o.rounds, perRound: o.megabyteCalls)

    let rss = space.pid.map(rssKB) ?? -1
    await space.destroy()

    // Cold start: launch → add calc → first result.
    var colds: [UInt64] = []
    for _ in 0..<o.coldStarts {
        let c0 = monotonicNanoseconds()
        let s = try await Space.launch()
        try await s.add("calc")
        _ = try await s.call("calc", "math.add", 1, 2)
        colds.append(monotonicNanoseconds() - c0)
        await s.destroy()
    }
    colds.sort()

    let floorP50 = percentile(floorSamples, 0.5)
    let callP50 = percentile(callSamples, 0.5)
    let sequentialPerSecond = Double(o.rounds * o.callsPerRound) / (Double(callNanos) / 1e9)
    let rows: [(String, String, String)] = [
        ("floor_rtt_p50_ns", "\(floorP50)", "raw socketpair ping-pong, 64 B, p50"),
        ("floor_rtt_p90_ns", "\(percentile(floorSamples, 0.9))", "raw socketpair ping-pong, p90"),
        ("floor_rtt_p99_ns", "\(percentile(floorSamples, 0.99))", "raw socketpair ping-pong, p99"),
        ("call_rtt_p50_ns", "\(callP50)", "space call calc math.add, p50"),
        ("call_rtt_p90_ns", "\(percentile(callSamples, 0.9))", "space call, p90"),
        ("call_rtt_p99_ns", "\(percentile(callSamples, 0.99))", "space call, p99"),
        ("call_over_floor_p50", fmt(Double(callP50) / Double(max(floorP50, 1)), 3), "ratio (target <= 1.15)"),
        ("calls_per_s_sequential", "\(Int(sequentialPerSecond))", "one caller, one call at a time"),
        ("calls_per_s_64_inflight", "\(Int(inflightPerSecond))", "64 tasks calling at once (target >= 400000)"),
        ("floor_4k_rtt_p50_ns", "\(kib4.floor)", "raw socketpair ping-pong, 4 KiB each way, p50"),
        ("call_4k_rtt_p50_ns", "\(kib4.call)", "space call text bytes.reverse, 4 KiB in and out, p50"),
        ("call_4k_over_floor_p50", fmt(Double(kib4.call) / Double(max(kib4.floor, 1)), 3), "ratio (target <= 1.3)"),
        ("floor_1m_rtt_p50_ns", "\(mib1.floor)", "raw socketpair ping-pong, 1 MiB each way, p50"),
        ("call_1m_rtt_p50_ns", "\(mib1.call)", "space call text bytes.reverse, 1 MiB in and out, p50"),
        ("call_1m_over_floor_p50", fmt(Double(mib1.call) / Double(max(mib1.floor, 1)), 3), "ratio"),
        ("cold_start_ms", fmt(Double(percentile(colds, 0.5)) / 1e6, 3), "launch + add calc + first result, p50 (target <= 3)"),
        ("host_idle_rss_kb", "\(rss)", "host RSS with calc loaded (target <= 5120)"),
    ]
    if o.json {
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

/// p50 round trips of a `size`-byte floor echo and of `bytes.reverse` on `size` bytes, alternating.
func buffers(_ space: Space, size: Int, rounds: Int, perRound: Int) async throws -> (floor: UInt64, call: UInt64) {
    let floor = Floor(size: size)
    defer { floor.stop() }
    let data = Value.bytes((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    let reversed = Value.object([.init("data", .bytes((0..<size).reversed().map { UInt8(truncatingIfNeeded: $0 &* 31) }))])
    var floorSamples: [UInt64] = []
    var callSamples: [UInt64] = []
    floor.roundTrips(max(perRound / 4, 1), into: &floorSamples)
    for _ in 0..<max(perRound / 4, 1) { _ = try await space.call("text", "bytes.reverse", data) }
    floorSamples.removeAll()
    for _ in 0..<rounds {
        floor.roundTrips(perRound, into: &floorSamples)
        for _ in 0..<perRound {
            let t0 = monotonicNanoseconds()
            let r = try await space.call("text", "bytes.reverse", data)
            callSamples.append(monotonicNanoseconds() - t0)
            if r != reversed { fatalError("bytes.reverse gave a wrong result") }
        }
    }
    floorSamples.sort()
    callSamples.sort()
    return (percentile(floorSamples, 0.5), percentile(callSamples, 0.5))
}

func fmt(_ v: Double, _ places: Int) -> String {
    var p = 1.0
    for _ in 0..<places { p *= 10 }
    let scaled = (v * p).rounded() / p
    return "\(scaled)"
}

if CommandLine.arguments.dropFirst().first == "--echo-child" {
    echoChild(CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 64 : 64)
}
let options = Options.parse()
do {
    try await run(options)
} catch {
    writeStandardError("space-bench: \(error)\n")
    exit(1)
}
