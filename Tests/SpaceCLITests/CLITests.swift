// The real `space` binary, end to end: it starts its own daemon in a private runtime directory.
import Foundation
import SpaceWire
import Testing

/// What one `space` run did.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// A private runtime directory (and so a private daemon) for one test.
final class Sandbox: @unchecked Sendable {
    let directory: String
    let config: String

    init(config text: String = #"{"daemon": {"idleTimeout": 60000}}"#) {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("space-cli-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        config = directory + "/config.json"
        FileManager.default.createFile(atPath: config, contents: Data(text.utf8))
    }

    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("space").path
    }

    /// Builds a `space` process (not started) with this sandbox's environment.
    func process(_ arguments: [String], environment extra: [String: String] = [:]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SPACE_RUNTIME_DIR"] = directory
        env["SPACE_CONFIG"] = config
        for (k, v) in extra { env[k] = v }
        p.environment = env
        return p
    }

    /// Runs `space ARGS...` to completion.
    @discardableResult
    func run(_ arguments: String..., environment: [String: String] = [:]) throws -> Run {
        try run(arguments, environment: environment)
    }

    func run(_ arguments: [String], environment: [String: String] = [:], prefix: [String] = []) throws -> Run {
        let p: Process
        if prefix.isEmpty {
            p = process(arguments, environment: environment)
        } else {
            p = process([], environment: environment)
            p.executableURL = URL(fileURLWithPath: prefix[0])
            p.arguments = Array(prefix.dropFirst()) + [Self.binary] + arguments
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                   stderr: String(decoding: e, as: UTF8.self))
    }

    /// The daemon's pid, from its lock file.
    var daemonPID: Int32? {
        (try? String(contentsOfFile: directory + "/daemon.lock", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Stops the daemon (if any) and removes the directory.
    func finish() {
        _ = try? run("daemon", "stop")
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func json(_ line: String) throws -> Value { try Value(json: line) }

/// True while `pid` runs (a zombie waiting for its reaper does not count).
func alive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}

/// Polls until `pid` no longer runs (at most `seconds`).
func waitGone(_ pid: Int32, _ seconds: Double = 5) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while alive(pid) && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    return !alive(pid)
}

/// The running `space daemon run` processes serving `directory`.
func daemons(serving directory: String) -> [Int32] {
    let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
    return pids.filter { pid in
        guard alive(pid),
              let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
              let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        let vars = env.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.contains("daemon") && args.contains("run") && vars.contains("SPACE_RUNTIME_DIR=" + directory)
    }
}

@Suite("The space CLI, end to end", .serialized)
struct CLITests {
    @Test("add, then call: the result is the last line; --json wraps it")
    func addAndCall() throws {
        let box = Sandbox()
        defer { box.finish() }
        let add = try box.run("add", "calc")
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.lines.first?.contains("added calc") == true)
        #expect(try json(add.lines.last!)[field: "name"] == "calc")

        let call = try box.run("call", "calc", "math.add", "2", "3")
        #expect(call.status == 0)
        #expect(call.lines.last == "5")
        let negative = try box.run("call", "calc", "math.add", "-2", "-3")
        #expect(negative.lines.last == "-5")
        let j = try box.run("call", "calc", "math.add", "2", "3", "--json")
        #expect(try json(j.lines.last!) == ["result": 5])
        // Options anywhere, and in --name=value form.
        let placed = try box.run("call", "--space=default", "calc", "--json", "math.add", "4", "--timeout", "30", "5")
        #expect(try json(placed.lines.last!) == ["result": 9])
        let midpoint = try box.run("call", "calc", "geo.midpoint", #"{"x":0,"y":0}"#, #"{"x":4,"y":2}"#)
        #expect(try json(midpoint.lines.last!) == ["x": 2.0, "y": 1.0])
        let sum = try box.run("call", "calc", "stats.sum", "[1.5, 2.5]")
        #expect(sum.lines.last == "4.0" || sum.lines.last == "4")

        try box.run("add", "text")
        let upper = try box.run("call", "text", "upper", "42abc")
        #expect(try json(upper.lines.last!) == "42ABC")
    }

    @Test("Errors: one line naming the problem; exit 2 for usage, 1 for failures; --json error objects")
    func errors() throws {
        let box = Sandbox()
        defer { box.finish() }
        try box.run("add", "calc")

        let bad = try box.run("call", "calc", "math.add", "2", "abc")
        #expect(bad.status == 2)
        #expect(bad.stdout.isEmpty)
        let message = bad.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!message.contains("\n"))
        #expect(message.contains("int32_t") && message.contains("abc") && message.contains("argument"))

        let arity = try box.run("call", "calc", "math.add", "1")
        #expect(arity.status == 2)
        #expect(arity.stderr.contains("arityMismatch"))

        let unknownFunction = try box.run("call", "calc", "math.nope", "1")
        #expect(unknownFunction.status == 1)
        #expect(unknownFunction.stderr.contains("math.nope"))

        let unknownPackage = try box.run("call", "nopkg", "f", "--json")
        #expect(unknownPackage.status == 1)
        let e = try json(unknownPackage.lines.last!)
        #expect(e[field: "error"]?[field: "code"] == "unknownPackage")
        #expect(e[field: "error"]?[field: "message"]?.string?.contains("nopkg") == true)

        let badJSON = try box.run("call", "calc", "math.add", "2", "x", "--json")
        #expect(badJSON.status == 2)
        #expect(try json(badJSON.lines.last!)[field: "error"]?[field: "code"] == "badArgument")

        let noSpace = try box.run("call", "calc", "math.add", "1", "2", "--space", "ghost")
        #expect(noSpace.status == 1)
        #expect(noSpace.stderr.contains("ghost"))

        let noLibrary = try box.run("add", "/nonexistent/libnothing.so")
        #expect(noLibrary.status == 1)
        #expect(noLibrary.stderr.contains("libraryNotFound"))

        let usage = try box.run("call")
        #expect(usage.status == 2)
        let badTimeout = try box.run("call", "calc", "math.add", "1", "2", "--timeout", "-1")
        #expect(badTimeout.status == 2)
        #expect(badTimeout.stderr.contains("--timeout"))
        let unknownOption = try box.run("ls", "--bogus")
        #expect(unknownOption.status == 2)

        // After all that, the space still answers.
        #expect(try box.run("call", "calc", "math.add", "1", "2").lines.last == "3")
    }

    @Test("ls, status, stats, kill, reload, events")
    func inspectAndControl() throws {
        let box = Sandbox()
        defer { box.finish() }
        try box.run("add", "calc")
        try box.run("call", "calc", "math.add", "1", "2")
        let ls = try box.run("ls")
        #expect(ls.lines.count == 2)
        #expect(ls.lines[1].hasPrefix("default") && ls.lines[1].contains("running") && ls.lines[1].contains("calc"))
        let list = try json(try box.run("ls", "--json").stdout)
        let pid = try #require(list.array?.first?[field: "pid"]?.int)

        let status = try json(try box.run("status", "--json").stdout)
        #expect(status[field: "state"] == "running")
        #expect(status[field: "sandbox"]?[field: "layers"]?.array?.contains(.string("seccomp")) == true)
        #expect(status[field: "sandbox"]?[field: "profile"] == "strict")
        let stats = try json(try box.run("stats").stdout)
        #expect(stats[field: "calls"]?.int == 1)

        let kill = try box.run("kill")
        #expect(kill.status == 0)
        #expect(kill.stdout.contains("\(pid)"))
        #expect(try json(try box.run("status", "--json").stdout)[field: "state"] == "stopped")
        #expect(try box.run("call", "calc", "math.add", "2", "2").lines.last == "4")
        let newPID = try json(try box.run("status", "--json").stdout)[field: "pid"]?.int
        #expect(newPID != nil && newPID != pid)

        let reload = try box.run("reload", "--json")
        #expect(reload.status == 0)
        let reloaded = try #require(try json(reload.lines.last!)[field: "result"]?[field: "pids"]?.array)
        #expect(reloaded.count == 1 && reloaded[0].int != nil && reloaded[0].int != newPID)

        let events = try box.run("events", "default", "--json")
        let names = events.lines.compactMap { try? json($0)[field: "event"]?.string }
        #expect(names.contains("added") && names.contains("killed") && names.contains("reloaded"))

        let missing = try box.run("status", "ghost")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("unknownSpace"))
    }

    @Test("Supervision through the CLI: a pool, a crash quoting stderr, events, stats, a dead space, reload")
    func supervision() throws {
        let box = Sandbox(config: #"{"daemon": {"idleTimeout": 60000}, "workers": 2, "control": {"allowedSequentialDeaths": 1, "exitThreshold": 60000}}"#)
        defer { box.finish() }
        try box.run("add", "faults")
        #expect(try box.run("call", "faults", "fault.alive", "41").lines.last == "42")
        let status = try json(try box.run("status", "--json").stdout)
        let workers = try #require(status[field: "workers"]?.array)
        #expect(workers.count == 2 && workers.allSatisfy { $0[field: "pid"]?.int != nil })

        let crash = try box.run("call", "faults", "fault.segv")
        #expect(crash.status == 1)
        #expect(crash.stderr.contains("crashed") && crash.stderr.contains("SIGSEGV"))
        #expect(crash.stderr.contains("faults: dereferencing NULL"))
        #expect(try box.run("call", "faults", "fault.alive", "1").lines.last == "2")

        let stats = try json(try box.run("stats").stdout)
        #expect(stats[field: "crashes"]?.int == 1)
        #expect(stats[field: "latencyNs"]?[field: "p50"]?.int ?? 0 > 0)
        #expect(stats[field: "workers"]?.array?.count == 2)

        // A second quick death is one more than allowedSequentialDeaths: the space is dead.
        _ = try box.run("call", "faults", "fault.abort")
        let dead = try box.run("call", "faults", "fault.alive", "1")
        #expect(dead.status == 1)
        #expect(dead.stderr.contains("dead") && dead.stderr.contains("allowedSequentialDeaths"))
        #expect(try json(try box.run("status", "--json").stdout)[field: "state"] == "dead")
        let events = try box.run("events", "default", "--json").lines.compactMap { try? json($0)[field: "event"]?.string }
        for kind in ["spawned", "ready", "crashed", "respawned", "dead"] { #expect(events.contains(kind), "\(kind)") }

        let reload = try box.run("reload")
        #expect(reload.status == 0)
        #expect(reload.stdout.contains("pids"))
        #expect(try box.run("call", "faults", "fault.alive", "2").lines.last == "3")
        #expect(try json(try box.run("status", "--json").stdout)[field: "state"] == "running")
    }

    @Test("Callbacks: printed as they arrive, --json lines, --follow after the result")
    func callbacks() throws {
        let box = Sandbox()
        defer { box.finish() }
        try box.run("add", "events")
        let during = try box.run("call", "events", "timer.every", "5", "3", "cb:1", "--json")
        #expect(during.status == 0)
        #expect(during.lines.count == 4)
        #expect(try json(during.lines[0]) == ["callback": 0, "args": [1]])
        #expect(try json(during.lines[2]) == ["callback": 0, "args": [3]])
        #expect(try json(during.lines[3]) == ["result": 3])

        // timer.start returns at once; its ticks come later, and the release ends --follow early.
        let start = Date()
        let after = try box.run("call", "events", "timer.start", "20", "3", "cb:1", "--json", "--follow", "30")
        #expect(after.status == 0)
        #expect(Date().timeIntervalSince(start) < 20)
        #expect(try json(after.lines[0])[field: "result"] != nil)
        #expect(after.lines.count == 4)
        #expect(try json(after.lines.last!) == ["callback": 0, "args": [3]])

        let wrongArity = try box.run("call", "events", "timer.every", "5", "3", "cb:2")
        #expect(wrongArity.status == 2)

        // --timeout cuts a slow call short (50 ticks of 100 ms) and kills the space; the next call works.
        let started = Date()
        let slow = try box.run("call", "events", "timer.every", "100", "50", "cb:1", "--timeout", "0.5")
        #expect(slow.status == 1)
        #expect(slow.stderr.contains("timedOut"))
        #expect(Date().timeIntervalSince(started) < 4)
        let quick = try box.run("call", "events", "timer.every", "1", "2", "cb:1", "--timeout", "30", "--json")
        #expect(quick.status == 0)
        #expect(try json(quick.lines.last!) == ["result": 2])
    }

    @Test("Ctrl-C ends --follow cleanly")
    func interruptFollow() throws {
        let box = Sandbox()
        defer { box.finish() }
        try box.run("add", "events")
        // 100 ticks 50 ms apart: the follow would take 5 s; SIGINT ends it.
        let p = box.process(["call", "events", "timer.start", "50", "100", "cb:1", "--json", "--follow", "30"])
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        try p.run()
        // Wait for the result and a first tick: --follow has begun (and Ctrl-C is its to handle).
        var data = Data()
        while String(decoding: data, as: UTF8.self).split(separator: "\n").count < 2 {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            data += chunk
        }
        let started = Date()
        kill(p.processIdentifier, SIGINT)
        data += out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(p.terminationStatus == 0)
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        #expect(lines.count >= 2 && lines.count < 100)
        // The space is fine afterwards, and the plugin's later ticks went nowhere.
        #expect(try box.run("call", "events", "timer.every", "1", "1", "cb:1", "--json").status == 0)
    }

    @Test("daemon start, status, stop; a graceful stop removes the socket and stops the hosts")
    func daemonLifecycle() throws {
        let box = Sandbox()
        defer { box.finish() }
        let before = try box.run("daemon", "status")
        #expect(before.status == 1)
        #expect(before.stderr.contains("not running"))
        let start = try box.run("daemon", "start")
        #expect(start.status == 0, "\(start.stderr)")
        let status = try box.run("daemon", "status", "--json")
        #expect(status.status == 0)
        let pid = try #require(try json(status.stdout)[field: "pid"]?.int)
        #expect(box.daemonPID == Int32(pid))
        try box.run("add", "calc")
        let host = try #require(try json(try box.run("status", "--json").stdout)[field: "pid"]?.int)
        #expect(try box.run("daemon", "stop").status == 0)
        #expect(!alive(Int32(pid)))
        #expect(waitGone(Int32(host)))
        #expect(!FileManager.default.fileExists(atPath: box.directory + "/daemon.sock"))
        #expect(try box.run("daemon", "status").status == 1)
        #expect(try box.run("daemon", "stop").status == 0)
    }

    @Test("SIGTERM stops the daemon gracefully")
    func sigterm() throws {
        let box = Sandbox()
        defer { box.finish() }
        try box.run("add", "calc")
        let pid = try #require(box.daemonPID)
        let host = try #require(try json(try box.run("status", "--json").stdout)[field: "pid"]?.int)
        kill(pid, SIGTERM)
        #expect(waitGone(pid))
        #expect(waitGone(Int32(host)))
        #expect(!FileManager.default.fileExists(atPath: box.directory + "/daemon.sock"))
        // The next command starts a new one, with a fresh space.
        #expect(try box.run("add", "calc").status == 0)
        #expect(box.daemonPID != pid)
    }

    @Test("Two CLIs racing to start the daemon get one daemon")
    func racingAutoStart() throws {
        let box = Sandbox()
        defer { box.finish() }
        let a = box.process(["add", "calc", "--space", "a"])
        let b = box.process(["add", "calc", "--space", "b"])
        for p in [a, b] { p.standardOutput = Pipe(); p.standardError = Pipe() }
        try a.run()
        try b.run()
        a.waitUntilExit()
        b.waitUntilExit()
        #expect(a.terminationStatus == 0)
        #expect(b.terminationStatus == 0)
        let list = try json(try box.run("ls", "--json").stdout)
        #expect(Set((list.array ?? []).compactMap { $0[field: "space"]?.string }) == ["a", "b"])
        // Exactly one `space daemon run` serves this directory: the lock holder.
        #expect(daemons(serving: box.directory) == [try #require(box.daemonPID)])
    }

    @Test("A stale socket left by a dead daemon is replaced")
    func staleSocket() throws {
        let box = Sandbox()
        defer { box.finish() }
        try box.run("daemon", "start")
        let pid = try #require(box.daemonPID)
        kill(pid, SIGKILL)
        #expect(waitGone(pid))
        #expect(FileManager.default.fileExists(atPath: box.directory + "/daemon.sock"))
        let call = try box.run("add", "calc")
        #expect(call.status == 0, "\(call.stderr)")
        #expect(box.daemonPID != pid)
    }

    @Test("A connection from another uid is refused with a clear error", .enabled(if: getuid() == 0, "needs root to switch uid"))
    func otherUserRefused() throws {
        let box = Sandbox()
        defer { box.finish() }
        try box.run("daemon", "start")
        // Let the other user reach the socket, so the daemon's own check (SO_PEERCRED) is what refuses.
        chmod(box.directory, 0o755)
        chmod(box.directory + "/daemon.sock", 0o666)
        chmod(box.config, 0o644)
        let r = try box.run(["ls"], prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("permissionDenied"), "\(r.stderr)")
        #expect(r.stderr.contains("uid 65534"))
        #expect(try box.run("ls").status == 0)
    }

    @Test("The daemon exits by itself after daemon.idleTimeout with nothing running")
    func idleExit() throws {
        let box = Sandbox(config: #"{"daemon": {"idleTimeout": 300}}"#)
        defer { box.finish() }
        try box.run("daemon", "start")
        let pid = try #require(box.daemonPID)
        #expect(waitGone(pid))
    }

    @Test("A wrong configuration names the key; every command has help")
    func configurationAndHelp() throws {
        let box = Sandbox(config: #"{"control": {"stopTimeout": "5s"}}"#)
        defer { box.finish() }
        let r = try box.run("add", "calc")
        #expect(r.status == 1)
        #expect(r.stderr.contains("control.stopTimeout"))
        for command in [["add"], ["call"], ["ls"], ["status"], ["stats"], ["events"], ["kill"], ["reload"],
                        ["daemon"], ["daemon", "run"], ["daemon", "start"], ["daemon", "stop"], ["daemon", "status"]] {
            let help = try box.run(command + ["--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("USAGE: space \(command.joined(separator: " "))"), "\(command)")
        }
    }
}
