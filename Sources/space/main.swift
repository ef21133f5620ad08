// The `space` command line. Each command's help text is its manual (`space help call`).
//
// Exit status: 0 on success; 1 when a request failed (the call, the add, the daemon); 2 for usage
// errors, including an argument that does not fit the function's declaration.
import ArgumentParser
import CSpaceSystem
import Space
import SpaceCLI
import SpaceServer

#if canImport(Glibc)
import Glibc
#endif

struct SpaceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "space",
        abstract: "Run native plugins in sandboxed child processes (spaces) and call their functions.",
        discussion: """
            Commands talk to the space daemon, which `add` and `call` start when it is not running. The \
            daemon's socket is in SPACE_RUNTIME_DIR (default $XDG_RUNTIME_DIR/space, else /tmp/space-$UID). \
            Configuration: --config FILE, else SPACE_CONFIG, else ./config.json, else \
            ~/.config/space/config.json, else built-in defaults (docs/configuration.md).

            Exit status: 0 success, 1 the request failed, 2 usage error (including an argument that does not \
            fit the declaration).
            """,
        version: "0.5.0",
        subcommands: [Add.self, Call.self, List.self, Status.self, Stats.self, Events.self, Kill.self,
                      Reload.self, Daemon.self]
    )
}

/// Options every command that talks to the daemon takes.
struct Common: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The configuration file (else SPACE_CONFIG, ./config.json, ~/.config/space/config.json).", valueName: "FILE"))
    var config: String?

    @Flag(name: .long, help: "Print every result as one JSON object per line.")
    var json = false

    /// The configuration, and the file it came from.
    func load() throws(SpaceError) -> (SpaceConfiguration, String?) { try loadConfiguration(config) }

    /// A connection to space `name`; starts the daemon first when `autoStart`.
    func connect(_ name: String, autoStart: Bool) async throws(SpaceError) -> Space {
        try await connectDaemon(name, config: config, autoStart: autoStart)
    }

    /// The daemon's answer to control `operation` about `space` (without starting the daemon).
    func request(_ operation: String, space: String) async throws(SpaceError) -> Value {
        try await connect(space, autoStart: false).daemonRequest(operation, .object([.init("space", .string(space))]))
    }
}

// MARK: add

struct Add: CLICommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a library into a space (made by its first add).",
        discussion: """
            LIB is a path (it contains '/') or a name looked up as lib<NAME>.so, then NAME.so, in the \
            config's `paths`, SPACE_PATH, then by the system loader. A library without a space manifest \
            needs C declarations: --decl, --decl-file, or a sidecar lib<NAME>.space.h. Arguments after `--` \
            go to the plugin's init hook. The space replays its adds whenever its host restarts. Prints what \
            was loaded, as JSON.

              space add calc
              space add m --decl 'double cos(double); double pow(double, double);'
            """)

    @ArgumentParser.Argument(help: ArgumentHelp("The library: a path, or a name to look up.", valueName: "lib"))
    var library: String

    @Option(name: .customLong("as"), help: ArgumentHelp("The package name for calls (default: the manifest's name, else LIB).", valueName: "NAME"))
    var alias: String?

    @Option(name: .customLong("decl"), help: ArgumentHelp("C declarations of the functions to use (repeatable).", valueName: "TEXT"))
    var declarations: [String] = []

    @Option(name: .customLong("decl-file"), help: ArgumentHelp("A file of C declarations (repeatable).", valueName: "FILE"))
    var declarationFiles: [String] = []

    @Option(name: .long, help: ArgumentHelp("The space to add to.", valueName: "S"))
    var space = "default"

    @OptionGroup var common: Common

    @ArgumentParser.Argument(parsing: .postTerminator, help: ArgumentHelp("Arguments for the plugin's init hook, after `--`.", valueName: "init-args"))
    var initArguments: [String] = []

    func execute() async throws {
        await perform(common) { () throws(SpaceError) in
            var text = declarations
            for file in declarationFiles { text.append(try readTextFile(file, what: "--decl-file")) }
            let s = try await common.connect(space, autoStart: true)
            let info = try await s.add(library, as: alias, declarations: text.isEmpty ? nil : text.joined(separator: "\n"),
                                       initArguments: initArguments)
            if common.json {
                Output.line(CLIOutput.resultLine(info))
            } else {
                let count = info[field: "functions"]?.array?.count ?? 0
                Output.line("added \(info[field: "name"]?.string ?? library) to space '\(space)' (\(count) functions) from \(info[field: "path"]?.string ?? "?")")
                Output.line(CLIOutput.json(info))
            }
        }
    }
}

// MARK: call

struct Call: CLICommand {
    static let configuration = CommandConfiguration(
        abstract: "Call a function of an added package; prints the result as JSON on the last line.",
        discussion: """
            Arguments are typed by the function's C declaration: integers, floats, true/false, null, strings \
            (bare, or JSON-quoted), cb:N (a callback taking N arguments), hex:… and b64:… bytes, JSON arrays \
            (arrays) and JSON objects (structs, by field name).

            Each callback invocation is printed as it arrives (`callback K: [args]`, K the index of the cb: \
            among the call's cb: arguments, from 0); returning callbacks get the zero value. With --json \
            every line is a JSON object: {"callback": K, "args": [...]} per invocation, then {"result": \
            VALUE}, or {"error": {"code": "...", "message": "..."}}.

              space call calc math.add 2 3
              space call events timer.every 10 3 cb:1 --follow 1
            """)

    @ArgumentParser.Argument(help: ArgumentHelp("The package (as added).", valueName: "pkg"))
    var package: String

    @ArgumentParser.Argument(help: ArgumentHelp("The function's dotted name (math.add).", valueName: "fn"))
    var function: String

    @ArgumentParser.Argument(parsing: .allUnrecognized, help: ArgumentHelp("The function's arguments.", valueName: "args"))
    var arguments: [String] = []

    @Option(name: .long, help: ArgumentHelp("The space to call in.", valueName: "S"))
    var space = "default"

    @Option(name: .long, help: ArgumentHelp("Fail with timedOut after SECONDS; the space is killed, since native code cannot be cancelled.", valueName: "SECONDS"))
    var timeout: Double?

    @Option(name: .long, help: ArgumentHelp("After the result, keep printing callback invocations for up to SECONDS (ends early when the plugin releases the callbacks or the space stops; Ctrl-C ends it cleanly).", valueName: "SECONDS"))
    var follow: Double?

    @OptionGroup var common: Common

    func validate() throws {
        if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
        if let follow, !(follow >= 0) { throw ValidationError("--follow must be a non-negative number of seconds") }
    }

    func execute() async throws {
        await CallRequest(package: package, function: function, arguments: arguments, space: space,
                          timeout: timeout, follow: follow, json: common.json, config: common.config).execute()
    }
}

// MARK: ls, status, stats, events, kill, reload

struct List: CLICommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List the daemon's spaces: state, host pid, plugins, calls, last use.")

    @OptionGroup var common: Common

    func execute() async throws {
        await perform(common) { () throws(SpaceError) in
            let list: Value
            do throws(SpaceError) {
                list = try await common.connect("default", autoStart: false).daemonRequest("ls")
            } catch where error.code == .daemonNotRunning {
                list = .array([])
            }
            if common.json { return Output.line(CLIOutput.json(list)) }
            let rows = (list.array ?? []).map { e -> [String] in
                [e[field: "space"]?.string ?? "?", e[field: "state"]?.string ?? "?",
                 e[field: "pid"]?.int.map(String.init) ?? "-",
                 (e[field: "plugins"]?.array ?? []).compactMap(\.string).joined(separator: ","),
                 e[field: "calls"].map { CLIOutput.json($0) } ?? "0", e[field: "lastUse"]?.string ?? "-"]
            }
            Output.table(["SPACE", "STATE", "PID", "PLUGINS", "CALLS", "LAST USE"], rows)
        }
    }
}

struct Status: CLICommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one space in detail: state, pid, plugins, counters, last stop, sandbox layers.")

    @ArgumentParser.Argument(help: ArgumentHelp("The space.", valueName: "S"))
    var space = "default"

    @OptionGroup var common: Common

    func execute() async throws {
        await perform(common) { () throws(SpaceError) in
            let status = try await common.request("status", space: space)
            if common.json { return Output.line(CLIOutput.json(status)) }
            Output.fields(status)
        }
    }
}

struct Stats: CLICommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a space's counters as JSON: calls, failures, timeouts, starts, crashes, latency percentiles, workers.",
        discussion: "latencyNs holds count, p50, p90, p99, max and mean of the calls that returned, in nanoseconds (within 1/16). host holds the first running host's own counters (callbacks, handles), or null while none runs.")

    @ArgumentParser.Argument(help: ArgumentHelp("The space.", valueName: "S"))
    var space = "default"

    @OptionGroup var common: Common

    func execute() async throws {
        await perform(common) { () throws(SpaceError) in
            Output.line(CLIOutput.json(try await common.request("stats", space: space)))
        }
    }
}

struct Events: CLICommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what happened: spaces made, adds, hosts spawned/ready/respawned, idle stops, crashes, timeouts, dead spaces, reloads.",
        discussion: "Without S, the events of every space and of the daemon. --follow keeps printing new events until Ctrl-C.")

    @ArgumentParser.Argument(help: ArgumentHelp("Only this space's events.", valueName: "S"))
    var space: String?

    @Flag(name: .long, help: "Keep printing new events until Ctrl-C.")
    var follow = false

    @OptionGroup var common: Common

    func execute() async throws {
        await perform(common) { () throws(SpaceError) in
            let s = try await common.connect(space ?? "default", autoStart: false)
            var args: [Value.Field] = [.init("follow", .bool(follow))]
            if let space { args.append(.init("space", .string(space))) }
            let json = common.json
            let print: @Sendable (Value) -> Void = { e in
                if json { return Output.line(CLIOutput.json(e)) }
                var rest = e.fields ?? []
                rest.removeAll { ["time", "space", "event"].contains($0.name) }
                Output.line("\(e[field: "time"]?.string ?? "") \(e[field: "space"]?.string ?? "-") \(e[field: "event"]?.string ?? "")" +
                            (rest.isEmpty ? "" : " " + CLIOutput.json(.object(rest))))
            }
            if !follow {
                for e in try await s.daemonRequest("events", .object(args)).array ?? [] { print(e) }
                return
            }
            let stream = try await s.daemonStream("events", .object(args))
            for e in stream.result.array ?? [] { print(e) }
            let interrupted = InterruptFlag()
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await i in stream.invocations { if let e = i.arguments.first { print(e) } }
                    } catch {}
                }
                group.addTask {
                    while !interrupted.isSet && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
                }
                await group.next()
                group.cancelAll()
            }
            stream.cancel()
        }
    }
}

struct Kill: CLICommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a space's host now (gracefully, then SIGKILL after control.stopTimeout).",
        discussion: "The space keeps its adds: the next call starts a new host and replays them.")

    @ArgumentParser.Argument(help: ArgumentHelp("The space.", valueName: "S"))
    var space = "default"

    @OptionGroup var common: Common

    func execute() async throws {
        await perform(common) { () throws(SpaceError) in
            let r = try await common.request("kill", space: space)
            if common.json { return Output.line(CLIOutput.resultLine(r)) }
            Output.line(r[field: "pid"]?.int.map { "killed space '\(space)' (pid \($0))" } ?? "space '\(space)' was not running")
        }
    }
}

struct Reload: CLICommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace a space's hosts with fresh ones, one worker at a time, so no call fails.",
        discussion: "Each worker gets a new host that replays every add (picking up rebuilt libraries) before it takes calls; the old host stops after answering the calls it had. Also brings a dead space back.")

    @ArgumentParser.Argument(help: ArgumentHelp("The space.", valueName: "S"))
    var space = "default"

    @OptionGroup var common: Common

    func execute() async throws {
        await perform(common) { () throws(SpaceError) in
            let r = try await common.request("reload", space: space)
            if common.json { return Output.line(CLIOutput.resultLine(r)) }
            let pids = (r[field: "pids"]?.array ?? []).map { $0.int.map(String.init) ?? "-" }
            Output.line("reloaded space '\(space)' (pid\(pids.count == 1 ? "" : "s") \(pids.joined(separator: ", ")))")
        }
    }
}

// MARK: daemon

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run, start, stop or query the space daemon.",
        subcommands: [Run.self, Start.self, Stop.self, DaemonStatus.self])

    struct Run: CLICommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the daemon in the foreground (what `start` and auto-start run in the background).",
            discussion: "Stops gracefully on SIGTERM, SIGINT or SIGHUP. Exits 1 when another daemon serves the same SPACE_RUNTIME_DIR.")

        @OptionGroup var common: Common

        func execute() async throws {
            await perform(common) { () throws(SpaceError) in
                var warnings: [String] = []
                let (configuration, path) = try SpaceConfiguration.find(explicit: common.config, warnings: &warnings)
                for w in warnings { writeStandardError("space daemon: config: \(w)\n") }
                let server = DaemonServer(configuration: configuration, configPath: path)
                try await server.run {
                    writeStandardError("space daemon: pid \(getpid()) listening on \(SpaceDaemon.socketPath)\n")
                }
                writeStandardError("space daemon: pid \(getpid()) stopped\n")
            }
        }
    }

    struct Start: CLICommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the daemon in the background unless it is running; prints its pid.")

        @OptionGroup var common: Common

        func execute() async throws {
            await perform(common) { () throws(SpaceError) in
                let (configuration, path) = try common.load()
                try SpaceDaemon.start(configPath: path, timeoutMilliseconds: configuration.control.forkTimeout)
                let info = try await common.connect("default", autoStart: false).daemonRequest("info")
                if common.json { return Output.line(CLIOutput.json(info)) }
                Output.line("space daemon running (pid \(info[field: "pid"]?.int ?? 0), socket \(SpaceDaemon.socketPath))")
            }
        }
    }

    struct Stop: CLICommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop the daemon gracefully: every space's host is stopped, then the socket removed.")

        @OptionGroup var common: Common

        func execute() async throws {
            await perform(common) { () throws(SpaceError) in
                let (configuration, _) = try common.load()
                let s: Space
                do throws(SpaceError) {
                    s = try await common.connect("default", autoStart: false)
                } catch where error.code == .daemonNotRunning {
                    return Output.line(common.json ? CLIOutput.resultLine(.null) : "space daemon is not running")
                }
                let info = try await s.daemonRequest("shutdown")
                let pid = info[field: "pid"]?.int ?? 0
                // It is gone when it lets go of its lock: its hosts get stopTimeout each, in parallel.
                guard SpaceDaemon.waitUntilStopped(timeoutMilliseconds: configuration.control.stopTimeout + 5_000) else {
                    throw SpaceError(.timedOut, "the space daemon (pid \(pid)) did not stop in time")
                }
                Output.line(common.json ? CLIOutput.resultLine(info) : "space daemon stopped (pid \(pid))")
            }
        }
    }

    struct DaemonStatus: CLICommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Say whether the daemon runs (exit 0) or not (exit 1): pid, socket, spaces, clients.")

        @OptionGroup var common: Common

        func execute() async throws {
            await perform(common) { () throws(SpaceError) in
                let info = try await common.connect("default", autoStart: false).daemonRequest("info")
                if common.json { return Output.line(CLIOutput.json(info)) }
                Output.line("space daemon running (pid \(info[field: "pid"]?.int ?? 0), socket \(info[field: "socket"]?.string ?? ""), " +
                            "\(info[field: "spaces"]?.int ?? 0) spaces, \(info[field: "clients"]?.int ?? 0) clients, up \((info[field: "uptimeMs"]?.int ?? 0) / 1000) s)")
            }
        }
    }
}

// MARK: Running a command

/// Runs `body`; prints a failure (as a JSON error line with --json) and exits with its status.
func perform(_ common: Common, _ body: () async throws(SpaceError) -> Void) async {
    await perform(json: common.json, body)
}

/// See ``perform(_:_:)``.
func perform(json: Bool, _ body: () async throws(SpaceError) -> Void) async {
    do throws(SpaceError) {
        try await body()
    } catch {
        if json {
            Output.line(CLIOutput.errorLine(error))
        } else {
            writeStandardError("space: \(error.code): \(error.message)\n")
        }
        exit(exitStatus(for: error))
    }
}

/// 2 for what the user typed wrong, 1 for everything else.
func exitStatus(for error: SpaceError) -> Int32 {
    switch error.code {
    case .badArgument, .arityMismatch: return 2
    default: return 1
    }
}

/// Reads a whole text file (a --decl-file).
func readTextFile(_ path: String, what: String) throws(SpaceError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SpaceError(.badArgument, "\(what) \(path): cannot open it", errno: errno) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw SpaceError(.badArgument, "\(what) \(path): cannot read it", errno: errno) }
        if n == 0 { break }
        bytes += buf[0..<n]
        if bytes.count > 1 << 20 { throw SpaceError(.tooLarge, "\(what) \(path) is larger than 1 MiB") }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw SpaceError(.badArgument, "\(what) \(path) is not UTF-8 text")
    }
    return text
}

/// Set once SIGINT arrives (after it is created): Ctrl-C ends a --follow cleanly.
final class InterruptFlag: Sendable {
    private let readFD: Int32

    init() {
        var p: [Int32] = [-1, -1]
        if cs_pipe(&p) == 0 {
            readFD = p[0]
            _ = cs_signal_to_pipe(SIGINT, p[1])
        } else {
            readFD = -1
        }
    }

    var isSet: Bool {
        var b: UInt8 = 0
        return readFD >= 0 && read(readFD, &b, 1) == 1
    }
}

// MARK: Entry point

/// A command that runs asynchronously. (Not AsyncParsableCommand: from top-level code, a call to
/// its `run()` through the existential resolves to ParsableCommand's synchronous default, which
/// prints the help.)
protocol CLICommand: ParsableCommand {
    func execute() async throws
}

// `space call` is the command run most, and ArgumentParser's reflection costs milliseconds at every
// start: a plain `call` is parsed by hand. Anything unusual (help, an unknown option, a bad number)
// goes to ArgumentParser, which stays the manual and the source of usage errors.
if let call = CallRequest(commandLine: Array(CommandLine.arguments.dropFirst())) {
    await call.execute()
    exit(0)
}

do {
    var command = try SpaceCommand.parseAsRoot()
    if let c = command as? CLICommand {
        try await c.execute()
    } else {
        try command.run()
    }
} catch {
    let code = SpaceCommand.exitCode(for: error)
    let message = SpaceCommand.fullMessage(for: error)
    if code == .success {
        Output.line(message)
        exit(0)
    }
    writeStandardError(message + "\n")
    // ArgumentParser says 64 (EX_USAGE) for usage errors; the contract says 2.
    exit(code == .validationFailure ? 2 : code.rawValue)
}
