// space-host: the child process of a space. It speaks the wire protocol on an inherited socket
// (fd 3), loads plugins and calls their functions through libffi. No Foundation: start time and
// memory are product features (docs/architecture.md).
import CSpaceSystem
import SpaceFFI
import SpaceSandbox
import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// Command-line options, set by the client that spawns the host.
struct Options {
    var channelFD: Int32 = 3
    var searchPaths: [String] = []
    var parentPID: pid_t = 0
    var limits = WireLimits.default
    var maxCallbacks = 4096
    /// RLIMIT_AS in bytes (0: unchanged), set before the first request is read.
    var maxAddressSpace: UInt64 = 0
    /// The sandbox to apply before the first request (docs/sandbox.md).
    var sandbox = SandboxRequest()

    static func parse(_ args: [String]) -> Options {
        var o = Options()
        var i = 1
        while i < args.count {
            let a = args[i]
            let next = i + 1 < args.count ? args[i + 1] : nil
            switch a {
            case "--channel-fd": o.channelFD = Int32(next ?? "") ?? 3; i += 1
            case "--path": if let n = next { o.searchPaths.append(n) }; i += 1
            case "--parent-pid": o.parentPID = pid_t(next ?? "") ?? 0; i += 1
            case "--max-frame-size": o.limits.maxFrameSize = Int(next ?? "") ?? o.limits.maxFrameSize; i += 1
            case "--max-arguments": o.limits.maxArguments = Int(next ?? "") ?? o.limits.maxArguments; i += 1
            case "--max-depth": o.limits.maxDepth = Int(next ?? "") ?? o.limits.maxDepth; i += 1
            case "--max-callbacks": o.maxCallbacks = Int(next ?? "") ?? o.maxCallbacks; i += 1
            case "--max-address-space": o.maxAddressSpace = UInt64(next ?? "") ?? 0; i += 1
            case "--max-string-length": o.limits.maxStringLength = Int(next ?? "") ?? o.limits.maxStringLength; i += 1
            case "--version":
                print("space-host \(hostVersion) (protocol \(Wire.protocolVersion))")
                exit(0)
            default:
                let used = o.sandbox.parse(a, next)
                if used > 0 {
                    i += used
                    continue
                }
                writeStandardError("space-host: unknown option \(a)\nspace-host is started by the space client; see docs/architecture.md\n")
                exit(2)
            }
            i += 1
        }
        return o
    }
}

let hostVersion = "0.1.0"

/// The host's state: the plugins it has loaded, and its reply buffer.
final class Host {
    let fd: Int32
    let options: Options
    let limits: WireLimits
    /// Loaded plugins by package name.
    /// Only the host thread touches these, so the runtime's exclusivity checks (a TLS lookup per
    /// access, on the hot path) buy nothing here.
    @exclusivity(unchecked) var plugins: [String: Plugin] = [:]
    /// Recently called functions by the raw bytes of their package and function names: a call
    /// resolves without building Strings or hashing them. Cleared when plugins change.
    @exclusivity(unchecked) var recent: [(package: [UInt8], function: [UInt8], target: FFIFunction)] = []
    var recentNext = 0
    /// Package names in add order, so shutdown runs deinit hooks in reverse.
    var addOrder: [String] = []
    /// Replies of the current batch of requests, sent together by ``flush()``.
    @exclusivity(unchecked) var out = WireWriter(capacity: 64 << 10)
    /// Opaque pointers handed to callers as handles; they die with their plugin or the space.
    let handles = HandleTable()
    /// The id the next plugin's handles are owned by.
    var nextPluginID = 1
    /// Everything written to the channel goes through here (replies, callback events).
    let outbox: Outbox
    /// The read side, shared with plugin threads waiting for callback answers.
    let inbound: Inbound
    /// The closures made for `cb:` arguments.
    let callbacks: Callbacks

    init(options: Options) {
        self.fd = options.channelFD
        self.options = options
        self.limits = options.limits
        outbox = Outbox(fd: options.channelFD)
        inbound = Inbound(fd: options.channelFD, limits: options.limits)
        callbacks = Callbacks(outbox: outbox, inbound: inbound, limits: options.limits, maxCallbacks: options.maxCallbacks)
        hostCallbacks = callbacks
    }

    /// Serves requests until the client hangs up or asks for a shutdown.
    ///
    /// The loop holds the read role while it reads and lets go of it while it runs a request, so a
    /// plugin thread waiting for a callback's answer can read meanwhile; frames such a thread reads
    /// are queued for this loop and handled before anything read after them.
    func run() -> Never {
        let input = inbound.input
        out.beginFrame(.hello, id: 0)
        Hello(pid: hostPID, maxFrameSize: UInt32(limits.maxFrameSize), sandboxLayers: sandbox.layers.rawValue,
              hostVersion: hostVersion).encode(into: &out)
        out.endFrame()
        flush()
        while true {
            if handleQueued() { flush() }
            if !inbound.acquireForCallThread() { continue }
            let n: Int
            do {
                n = try input.fill(from: fd, spinNanoseconds: 20_000)
            } catch {
                fail("reading the channel: \(error)")
            }
            if n == 0 { exit(0) }  // the client is gone
            if n < 0 {
                inbound.release()
                continue
            }
            do {
                while let frame = try input.next() {
                    if frame.kind == .callbackReturn {
                        inbound.deliverAnswer(frame)
                        continue
                    }
                    // Let callback threads read while this request runs; its bytes stay put.
                    input.pin()
                    inbound.release()
                    handle(frame)
                    // Frames read by others meanwhile came before anything still buffered.
                    while true {
                        _ = handleQueued()
                        if inbound.acquireForCallThread() { break }
                        flush()
                    }
                    input.unpin()
                }
            } catch {
                // Frame boundaries are lost; nothing after this can be trusted.
                out.beginFrame(.error, id: 0)
                out.writeError(error)
                out.endFrame()
                flush()
                fail("bad frame from the client: \(error)")
            }
            inbound.release()
            flush()
        }
    }

    /// Handles the frames callback threads read for this loop. Returns whether there were any.
    private func handleQueued() -> Bool {
        guard inbound.hasQueued.load(ordering: .relaxed) else { return false }
        let frames = inbound.takeQueued()
        for f in frames {
            f.payload.withUnsafeBytes { raw in
                handle(Frame(kind: f.kind, id: f.id, payload: raw))
            }
        }
        return !frames.isEmpty
    }

    /// Sends the replies of this batch, after every frame appended before them.
    func flush() {
        if out.bytes.isEmpty {
            if outbox.hasPending { outbox.flushNow() }
            return
        }
        out.bytes.withUnsafeBytes { outbox.flushNow(extra: $0) }
        out.removeAll()
    }

    private func fail(_ message: String) -> Never {
        fatal(message)
    }

    private func handle(_ frame: Frame) {
        var r = WireReader(frame.payload, limits: limits)
        do throws(SpaceError) {
            switch frame.kind {
            case .call:
                try call(frame.id, &r)
            case .add:
                let request = try AddRequest.decode(&r)
                try reply(frame.id, add(request))
            case .remove:
                let name = try r.readString()
                try r.expectEnd("remove")
                try remove(name)
                try reply(frame.id, .null)
            case .ping:
                try r.expectEnd("ping")
                try reply(frame.id, .null)
            case .callbackCancel:
                try r.expectEnd("callbackCancel")
                callbacks.cancel(frame.id)
            case .shutdown:
                for name in addOrder.reversed() {
                    guard let plugin = plugins[name] else { continue }
                    handles.releaseAll(owner: plugin.id)
                    plugin.runDeinit()
                    callbacks.releaseAll(owner: plugin.id)
                }
                try reply(frame.id, .null)
                flush()
                exit(0)
            default:
                throw SpaceError(.protocolError, "the host does not handle \(frame.kind) frames")
            }
        } catch {
            out.beginFrame(.error, id: frame.id)
            out.writeError(error)
            out.endFrame()
        }
    }

    private func reply(_ id: UInt32, _ value: Value) throws(SpaceError) {
        out.beginFrame(.result, id: id)
        out.writeValue(value)
        if out.currentFrameSize > limits.maxFrameSize {
            out.abandonFrame()
            throw SpaceError(.tooLarge, "the reply takes more than the frame limit of \(limits.maxFrameSize) bytes (limits.maxFrameSize)")
        }
        out.endFrame()
    }

    /// The hot path: look up, marshal, call, encode — straight from the frame bytes into C slots.
    @inline(__always)
    private func call(_ id: UInt32, _ r: inout WireReader) throws(SpaceError) {
        let pkg = try r.readSlice()
        let fn = try r.readSlice()
        let argc = try r.readArgumentCount()
        if Self.equal(Self.builtinPackage, pkg) {
            try builtin(id, String(decoding: fn, as: UTF8.self), argc, &r)
            return
        }
        let function = try resolve(pkg, fn)
        if function.isSlow || function.takesCallbacks || callbacks.holdsAny {
            // Do not keep replies already computed waiting behind a call known to be slow, or one
            // that may wait for a callback's answer.
            flush()
        }
        let started = function.isSlow ? 0 : monotonicNanoseconds()
        callbacks.begin(id)
        var failed = true
        defer { callbacks.end(id, failed: failed) }
        out.beginFrame(.result, id: id)
        do throws(SpaceError) {
            try function.call(arguments: &r, count: argc, handles: handles, callbacks: callbacks, into: &out)
            if out.currentFrameSize > limits.maxFrameSize {
                // The client would have to drop the channel over it; answer with an error instead.
                throw SpaceError(.tooLarge, "the result of \(function.name) takes \(out.currentFrameSize) bytes, over the frame limit of \(limits.maxFrameSize) (limits.maxFrameSize)")
            }
        } catch {
            out.abandonFrame()
            throw error
        }
        out.endFrame()
        failed = false
        if !function.isSlow && monotonicNanoseconds() - started > 20_000 {
            function.isSlow = true
        }
    }

    /// The function named by raw package and function bytes: from the recent cache, else by name.
    @inline(__always)
    private func resolve(_ pkg: UnsafeRawBufferPointer, _ fn: UnsafeRawBufferPointer) throws(SpaceError) -> FFIFunction {
        for entry in recent where Self.equal(entry.package, pkg) && Self.equal(entry.function, fn) {
            return entry.target
        }
        let pkgName = String(decoding: pkg, as: UTF8.self)
        guard let plugin = plugins[pkgName] else {
            throw SpaceError(.unknownPackage, "no package '\(pkgName)' in this space (added: \(addOrder.isEmpty ? "none" : addOrder.joined(separator: ", ")))")
        }
        let fnName = String(decoding: fn, as: UTF8.self)
        guard let function = try plugin.function(fnName) else {
            throw SpaceError(.unknownFunction, "package '\(pkgName)' has no function '\(fnName)'")
        }
        let entry = (package: Array(pkg), function: Array(fn), target: function)
        if recent.count < 8 {
            recent.append(entry)
        } else {
            recent[recentNext] = entry
            recentNext = (recentNext + 1) % 8
        }
        return function
    }

    /// The package of the host's own functions (`space.stats`); no plugin may take the name.
    static let builtinPackage = Array("space".utf8)

    /// The host's own functions.
    private func builtin(_ id: UInt32, _ name: String, _ argc: Int, _ r: inout WireReader) throws(SpaceError) {
        switch name {
        case "stats":
            guard argc == 0 else { throw SpaceError(.arityMismatch, "space.stats takes no arguments, got \(argc)") }
            try r.expectEnd("space.stats")
            let value: Value = [
                "pid": .int(Int64(hostPID)),
                "packages": .array(addOrder.map { .string($0) }),
                "handles": .int(Int64(handles.count)),
                "callbacks": callbacks.stats,
            ]
            try reply(id, value)
        case "sandbox":
            guard argc == 0 else { throw SpaceError(.arityMismatch, "space.sandbox takes no arguments, got \(argc)") }
            try r.expectEnd("space.sandbox")
            try reply(id, [
                "layers": .array(sandbox.layers.names.map { .string($0) }),
                "notes": .array(sandbox.notes.map { .string($0) }),
                "setupNs": .int(Int64(sandboxNanoseconds)),
            ])
        default:
            throw SpaceError(.unknownFunction, "the host's package 'space' has no function '\(name)' (it has: sandbox, stats)")
        }
    }

    @inline(__always)
    private static func equal(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && a.withUnsafeBytes { memcmp($0.baseAddress!, b.baseAddress!, b.count) == 0 }
    }

    private func add(_ request: AddRequest) throws(SpaceError) -> Value {
        let plugin = try Plugin.load(request, searchPaths: options.searchPaths, id: nextPluginID) { plugins[$0] != nil || $0 == "space" }
        nextPluginID += 1
        plugins[plugin.name] = plugin
        addOrder.append(plugin.name)
        recent.removeAll()
        // A replay's client has the summary from the first add.
        return request.isReplay ? .object([.init("name", .string(plugin.name))]) : plugin.summary
    }

    private func remove(_ name: String) throws(SpaceError) {
        guard let plugin = plugins.removeValue(forKey: name) else {
            throw SpaceError(.unknownPackage, "no package '\(name)' in this space")
        }
        addOrder.removeAll { $0 == name }
        recent.removeAll()
        handles.releaseAll(owner: plugin.id)
        plugin.runDeinit()
        // After deinit: the plugin's threads are stopped, so none is inside a closure.
        callbacks.releaseAll(owner: plugin.id)
    }
}


let options = Options.parse(CommandLine.arguments)
// Die with the parent: a space never outlives the process that owns it.
_ = cs_set_pdeathsig(SIGKILL)
// (In a pid namespace the parent is invisible, getppid() is 0: a parent already gone shows as the
// channel's end of file instead.)
if options.parentPID != 0 && getpid() != 1 && getppid() != options.parentPID { exit(0) }
// A client that hangs up must not kill us with SIGPIPE mid-write; writeAll reports EPIPE instead.
signal(SIGPIPE, SIG_IGN)
/// The host's pid as its client knows it (in a pid namespace the host is pid 1 of its own).
let hostPID = Sandbox.pidOutside()
let sandboxStart = monotonicNanoseconds()
/// The sandbox in force (for the hello) and why any layer asked for is missing.
let sandbox = Sandbox.apply(options.sandbox, channelFD: options.channelFD, maxAddressSpace: options.maxAddressSpace)
/// How long applying the sandbox took (`space.sandbox` reports it).
let sandboxNanoseconds = monotonicNanoseconds() - sandboxStart
// A layer asked for and missing is worth a line on stderr (the client quotes it if sandbox.require
// names that layer); `space.sandbox` answers the same.
for note in sandbox.notes { writeStandardError("space-host: sandbox: \(note)\n") }
Host(options: options).run()
