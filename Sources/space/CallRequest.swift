// `space call`: the request, its parsing for the fast path, and running it.
import Space
import SpaceCLI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One `space call`, from ArgumentParser's `Call` or from ``init(commandLine:)``.
struct CallRequest {
    var package: String
    var function: String
    var arguments: [String]
    var space = "default"
    var timeout: Double?
    var follow: Double?
    var json = false
    var config: String?

    init(package: String, function: String, arguments: [String], space: String, timeout: Double?,
         follow: Double?, json: Bool, config: String?) {
        self.package = package
        self.function = function
        self.arguments = arguments
        self.space = space
        self.timeout = timeout
        self.follow = follow
        self.json = json
        self.config = config
    }

    /// Parses `call PKG FN ARGS… [--space S] [--timeout SECONDS] [--follow SECONDS] [--json]
    /// [--config FILE]` (options anywhere after `call`, `--opt value` or `--opt=value`) the way
    /// ArgumentParser's `Call` does. Nil for anything else — help, version, an unknown option, a
    /// missing or bad value, fewer than two positionals — which ArgumentParser then handles.
    init?(commandLine args: [String]) {
        guard args.first == "call" else { return nil }
        var positional: [String] = []
        var i = 1
        var space: String?, timeout: Double?, follow: Double?, config: String?, json = false
        while i < args.count {
            let a = args[i]
            i += 1
            guard a.hasPrefix("--"), a.count > 2 else {
                if a == "-h" || a == "--" { return nil }
                positional.append(a)
                continue
            }
            var name = a
            var value: String?
            if let eq = a.firstIndex(of: "=") {
                name = String(a[..<eq])
                value = String(a[a.index(after: eq)...])
            }
            func take() -> String? {
                if let value { return value }
                guard i < args.count else { return nil }
                i += 1
                return args[i - 1]
            }
            switch name {
            case "--json" where value == nil: json = true
            case "--space": guard let v = take() else { return nil }; space = v
            case "--config": guard let v = take() else { return nil }; config = v
            case "--timeout":
                guard let v = take().flatMap(Double.init), v > 0 else { return nil }
                timeout = v
            case "--follow":
                guard let v = take().flatMap(Double.init), v >= 0 else { return nil }
                follow = v
            default: return nil
            }
        }
        guard positional.count >= 2 else { return nil }
        self.init(package: positional[0], function: positional[1], arguments: Array(positional.dropFirst(2)),
                  space: space ?? "default", timeout: timeout, follow: follow, json: json, config: config)
    }

    /// Runs the call and prints as `space call` does; exits the process on failure.
    func execute() async {
        await perform(json: json) { () throws(SpaceError) in
            // With --follow, Ctrl-C is routed from the start, so none arriving around the result is lost.
            let interrupted = (follow ?? 0) > 0 ? InterruptFlag() : nil
            let s = try await connectDaemon(space, config: config, autoStart: true)
            let summary = try await s.daemonRequest("describe", .object([
                .init("space", .string(space)), .init("package", .string(package)), .init("function", .string(function)),
            ]))
            let values = try CLIArguments.convert(arguments, for: try CLISignature(function: function, summary: summary))
            var slot = 0
            let callArguments: [CallArgument] = values.map { v in
                guard case .callback(let arity) = v else { return .value(v) }
                let k = slot
                slot += 1
                return .callback(arity: arity) { (args: [Value]) -> Value in
                    Output.line(json ? CLIOutput.callbackLine(slot: k, arguments: args)
                                     : "callback \(k): \(CLIOutput.json(.array(args)))")
                    return .null
                }
            }
            // The daemon enforces the deadline: past it the space's host is killed (native code
            // cannot be cancelled) and the call fails with timedOut; the next call starts a new host.
            let call = try await s.stream(package, function, arguments: callArguments,
                                          timeout: timeout.map { .milliseconds(Int64(($0 * 1000).rounded(.up))) })
            Output.line(json ? CLIOutput.resultLine(call.result) : CLIOutput.json(call.result))
            if let follow, let interrupted, slot > 0 {
                await followCallbacks(call, seconds: follow, interrupted: interrupted)
            }
            call.cancel()
        }
    }

    /// Waits while invocations keep coming: until the stream ends, `seconds` pass, or Ctrl-C.
    private func followCallbacks(_ call: CallbackCall, seconds: Double, interrupted: InterruptFlag) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await _ in call.invocations {}
                } catch {
                    let e = (error as? SpaceError) ?? SpaceError(.callbackFailed, "\(error)")
                    writeStandardError("space: the callbacks ended: \(e.code): \(e.message)\n")
                }
            }
            group.addTask {
                let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
                while monotonicNanoseconds() < deadline && !interrupted.isSet && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}

/// The configuration: `path` (`--config`), else the documented lookup.
func loadConfiguration(_ path: String?) throws(SpaceError) -> (SpaceConfiguration, String?) {
    var warnings: [String] = []
    return try SpaceConfiguration.find(explicit: path, warnings: &warnings)
}

/// A connection to the daemon's space `name`; starts the daemon first when `autoStart`.
func connectDaemon(_ name: String, config: String?, autoStart: Bool) async throws(SpaceError) -> Space {
    let (configuration, path) = try loadConfiguration(config)
    return try await SpaceDaemon.connect(space: name, configuration: configuration, autoStart: autoStart,
                                         configPath: path)
}
