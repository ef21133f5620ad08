// The daemon and the CLI: a whole `space call` process (start, connect, call, print, exit) against
// a warm daemon, beside the cost of starting any process at all; and many clients at once.
import CSpaceSystem
import Space

#if canImport(Glibc)
import Glibc
#endif

struct DaemonResults {
    /// `/bin/true` spawned and reaped: the floor under any CLI command.
    var spawnFloorP50: UInt64
    var cliP50: UInt64
    var cliP99: UInt64
    var clients: Int
    var callsPerClient: Int
    var correct: Int
    var callsPerSecond: Double
}

/// Starts a daemon in a private runtime directory, measures, stops it.
func daemonBenchmarks(cliRuns: Int, clients: Int, callsPerClient: Int) async throws -> DaemonResults {
    var template = Array("/tmp/space-bench-XXXXXX".utf8CString)
    let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    let cli = executableDirectory() + "/space"
    _ = cs_raise_open_file_limit()
    try SpaceDaemon.start(executable: cli, runtimeDirectory: directory)
    let admin = try await SpaceDaemon.connect(autoStart: false, runtimeDirectory: directory)
    try await admin.add("calc")
    defer { _ = try? spawnAndWait(cli, ["daemon", "stop"], directory: directory) }

    let env = ["SPACE_RUNTIME_DIR=" + directory]
    var floor: [UInt64] = []
    var calls: [UInt64] = []
    for i in 0..<(cliRuns + 5) {
        let f0 = monotonicNanoseconds()
        _ = try spawnAndWait("/bin/true", [], directory: directory)
        let f1 = monotonicNanoseconds()
        let out = try spawnAndWait(cli, ["call", "calc", "math.add", "2", "3"], directory: directory, extraEnvironment: env)
        let f2 = monotonicNanoseconds()
        guard out == "5\n" else { throw SpaceError(.protocolError, "space call printed \(out.debugDescription)") }
        if i >= 5 {  // the first runs warm the page cache
            floor.append(f1 - f0)
            calls.append(f2 - f1)
        }
    }
    floor.sort()
    calls.sort()

    let (correct, seconds) = try manyClients(directory + "/daemon.sock", clients: clients, calls: callsPerClient)
    await admin.destroy()
    return DaemonResults(spawnFloorP50: percentile(floor, 0.5), cliP50: percentile(calls, 0.5),
                         cliP99: percentile(calls, 0.99), clients: clients, callsPerClient: callsPerClient,
                         correct: correct, callsPerSecond: Double(correct) / seconds)
}

/// `clients` raw connections, each making `calls` sequential math.add calls, all at once from one
/// poll loop; returns how many replies were right and how long it took.
func manyClients(_ socket: String, clients: Int, calls: Int) throws -> (correct: Int, seconds: Double) {
    struct Client {
        var fd: Int32
        var input = FrameInput(capacity: 4096)
        var sent = 0
        var done = 0
    }
    func call(_ c: Int, _ i: Int) -> [UInt8] {
        var w = WireWriter(capacity: 64)
        w.writeCall(id: UInt32(i + 2), package: "calc", function: "math.add", arguments: [.int(Int64(c)), .int(Int64(i))])
        return w.bytes
    }
    func readFrame(_ client: inout Client) throws -> Frame {
        while true {
            if let f = try client.input.next() { return f }
            let n = try client.input.fill(from: client.fd)
            if n == 0 { throw SpaceError(.crashed, "the daemon hung up") }
        }
    }
    var all: [Client] = []
    for _ in 0..<clients {
        let fd = cs_unix_connect(socket)
        guard fd >= 0 else { throw SpaceError(.systemError, "connect failed", errno: errno) }
        all.append(Client(fd: fd))
    }
    // Hello, then attach to "default" (blocking; setup is not measured).
    for k in all.indices {
        _ = try readFrame(&all[k])
        var w = WireWriter(capacity: 64)
        w.beginFrame(.control, id: 1)
        ControlRequest("attach", .object([.init("space", .string("default"))])).encode(into: &w)
        w.endFrame()
        try writeAll(all[k].fd, w.bytes)
        let reply = try readFrame(&all[k])
        guard reply.kind == .result else { throw SpaceError(.protocolError, "attach failed") }
    }
    var correct = 0
    let start = monotonicNanoseconds()
    for k in all.indices {
        _ = cs_set_nonblocking(all[k].fd, 1)
        try writeAll(all[k].fd, call(k, 0))
        all[k].sent = 1
    }
    var open = clients
    var fds = all.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
    while open > 0 {
        let n = poll(&fds, nfds_t(fds.count), 10_000)
        guard n > 0 else { throw SpaceError(.timedOut, "no reply for 10 s with \(open) clients open") }
        for k in fds.indices where fds[k].revents != 0 {
            let got = try all[k].input.fill(from: all[k].fd)
            if got == 0 { throw SpaceError(.crashed, "the daemon hung up on client \(k)") }
            while let f = try all[k].input.next() {
                var r = WireReader(f.payload)
                let i = Int(f.id) - 2
                if f.kind == .result, try r.readValue() == .int(Int64(k + i)) { correct += 1 }
                all[k].done += 1
            }
            if all[k].sent < calls && all[k].sent == all[k].done {
                try writeAll(all[k].fd, call(k, all[k].sent))
                all[k].sent += 1
            } else if all[k].done == calls {
                fds[k].events = 0
                fds[k].fd = -1
                open -= 1
            }
        }
    }
    let seconds = Double(monotonicNanoseconds() - start) / 1e9
    for c in all { close(c.fd) }
    return (correct, seconds)
}

/// Spawns `path args…` with stdout on a pipe, waits, returns what it printed.
func spawnAndWait(_ path: String, _ args: [String], directory: String, extraEnvironment: [String] = []) throws -> String {
    var p: [Int32] = [-1, -1]
    guard pipe(&p) == 0 else { throw SpaceError(.systemError, "pipe failed", errno: errno) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, p[1], 1)
    posix_spawn_file_actions_addclose(&actions, p[0])
    var env: [String] = []
    var e = environ
    while let entry = e.pointee {
        let s = String(cString: entry)
        if !s.hasPrefix("SPACE_RUNTIME_DIR=") { env.append(s) }
        e += 1
    }
    env += ["SPACE_RUNTIME_DIR=" + directory] + extraEnvironment
    let argv = ([path] + args).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    close(p[1])
    guard rc == 0 else {
        close(p[0])
        throw SpaceError(.spawnFailed, "could not run \(path)", errno: rc)
    }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(p[0], &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    close(p[0])
    var st: Int32 = 0
    while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
    return String(decoding: out, as: UTF8.self)
}

/// Writes everything (the socket may be non-blocking: waits for room).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var off = 0
    try bytes.withUnsafeBytes { raw in
        while off < raw.count {
            let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
            if n > 0 { off += n; continue }
            if n < 0 && (errno == EINTR || errno == EAGAIN) {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 100)
                continue
            }
            throw SpaceError(.systemError, "send failed", errno: errno)
        }
    }
}

/// The directory of this executable (space, space-host and the plugins are beside it).
func executableDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4097)
    let n = readlink("/proc/self/exe", &buf, 4096)
    let path = String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
}
