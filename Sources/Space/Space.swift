@_exported import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A space: a sandboxable child process (`space-host`) that loads native plugins and runs their
/// functions on behalf of this process. This process owns the child.
///
/// ```swift
/// let space = try await Space.launch()
/// try await space.add("calc")
/// let sum = try await space.call("calc", "math.add", 2, 3)   // .int(5)
/// ```
///
/// Calls may come from many tasks at once; replies are matched to callers by request id. After
/// `inactivityTimeout` ms without a call the child is stopped; the next call starts it again and
/// replays every ``add(_:as:declarations:initArguments:)`` first. A crashed child fails the calls in
/// flight with ``SpaceError/Code/crashed`` and is restarted by the next call the same way.
public final class Space: Sendable {
    /// The configuration the space runs with.
    public let configuration: SpaceConfiguration
    private let state = Mutex(State())
    private let lastActivity = Atomic<UInt64>(0)
    private let watchdog = Mutex<Task<Void, Never>?>(nil)
    /// Where the space runs: a child of this process, or in the daemon.
    let backend: Backend
    private let observers = Mutex<[@Sendable (SpaceLifecycleEvent) -> Void]>([])

    /// Where a space runs.
    enum Backend: Sendable {
        /// A `space-host` child of this process.
        case embedded
        /// A named space of the daemon listening on `socket`; `start` launches the daemon when it
        /// is not running.
        case daemon(socket: String, space: String, start: (@Sendable () throws(SpaceError) -> Void)?)
    }

    private enum Phase {
        case running(HostProcess)
        case starting(Task<HostProcess, any Error>)
        /// Not running; the next call starts it (after inactivity or a crash).
        case stopped(SpaceError)
        /// Destroyed by its owner: calls fail until ``build()``.
        case destroyed
    }

    private struct State {
        var phase: Phase = .destroyed
        /// Every add in force with the package name the host gave it, in order, replayed on restart.
        var adds: [(package: String, request: AddRequest)] = []
        /// Bumped on every start, so stale callbacks of an old host change nothing.
        var generation = 0
    }

    init(configuration: SpaceConfiguration, backend: Backend = .embedded) {
        self.configuration = configuration
        self.backend = backend
    }

    /// A space whose host starts with its first request, then stops after inactivity and comes
    /// back like any other (the daemon's spaces).
    package convenience init(lazy configuration: SpaceConfiguration) {
        self.init(configuration: configuration)
        state.withLock { $0.phase = .stopped(SpaceError(.notRunning, "the space has not started yet")) }
        startWatchdog()
    }

    /// True when the space is served by the daemon (``SpaceDaemon/connect(space:configuration:autoStart:executable:configPath:)``).
    public var isDaemonConnection: Bool {
        if case .daemon = backend { return true }
        return false
    }

    deinit {
        watchdog.withLock { $0?.cancel() }
        if case .running(let host) = state.withLock({ $0.phase }) {
            host.channel.close(with: SpaceError(.notRunning, "the space was released"))
            host.kill()
            host.channel.stopThread()
        }
    }

    /// Starts a space and waits until its host has said hello.
    public static func launch(_ configuration: SpaceConfiguration = SpaceConfiguration()) async throws(SpaceError) -> Space {
        let space = Space(configuration: configuration)
        try await space.build()
        return space
    }

    // MARK: Lifecycle

    /// Starts the host if it is not running (after ``destroy()``, an idle stop or a crash), replaying
    /// every add. Does nothing when it is running.
    public func build() async throws(SpaceError) {
        _ = try await host(starting: true)
        if case .embedded = backend { startWatchdog() }
    }

    /// Stops the host gracefully (plugins' deinit hooks run; SIGKILL after `control.stopTimeout`).
    /// Calls, adds and removes fail with ``SpaceError/Code/notRunning`` until ``build()``. Added
    /// plugins are kept and replayed by ``build()``. (An idle stop or a crash is different: the next
    /// call restarts the host by itself.)
    public func destroy() async {
        watchdog.withLock { $0?.cancel(); $0 = nil }
        let old = state.withLock { s -> Phase in
            let p = s.phase
            s.phase = .destroyed
            s.generation += 1
            return p
        }
        await stop(old, reason: "destroyed")
    }

    /// Stops the host now, gracefully (SIGKILL after `control.stopTimeout`), as an idle stop does:
    /// the next call starts it again and replays every add. Does nothing when it is not running.
    ///
    /// - Parameter force: SIGKILL at once, without the graceful shutdown (which waits for a call in
    ///   progress: use it for a plugin stuck in native code). Calls in flight fail with `notRunning`.
    public func kill(force: Bool = false) async {
        let old = state.withLock { s -> Phase in
            let p = s.phase
            switch p {
            case .running, .starting:
                s.phase = .stopped(SpaceError(.notRunning, "the space was killed"))
                s.generation += 1
            case .stopped, .destroyed:
                break
            }
            return p
        }
        await stop(old, reason: "killed", force: force)
    }

    /// Stops the host of a phase just left.
    private func stop(_ old: Phase, reason: String, force: Bool = false) async {
        let host: HostProcess?
        switch old {
        case .running(let h): host = h
        case .starting(let task): host = try? await task.value
        case .stopped, .destroyed: host = nil
        }
        guard let host else { return }
        if force {
            host.kill()
            host.channel.close(with: SpaceError(.notRunning, "the space was killed"))
        } else {
            await host.stop(timeoutMilliseconds: configuration.control.stopTimeout)
        }
        host.channel.stopThread()
        if !host.isConnection { emit(.stopped(pid: host.pid, reason: reason)) }
    }

    // MARK: Lifecycle events

    /// Calls `observer` for every start, stop and crash of the host, on whichever thread saw it.
    package func observe(_ observer: @escaping @Sendable (SpaceLifecycleEvent) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    private func emit(_ event: SpaceLifecycleEvent) {
        for o in observers.withLock({ $0 }) { o(event) }
    }

    /// The phase's name: `running`, `starting`, `stopped` (the next call starts it) or `destroyed`.
    package var phaseName: String {
        state.withLock { s in
            switch s.phase {
            case .running: return "running"
            case .starting: return "starting"
            case .stopped: return "stopped"
            case .destroyed: return "destroyed"
            }
        }
    }

    /// Why the host is not running, when it stopped or crashed.
    package var stopReason: SpaceError? {
        state.withLock { s in
            if case .stopped(let e) = s.phase { return e }
            return nil
        }
    }

    /// The packages added, in order (replayed on restart), with their add requests.
    package var addedPackages: [(package: String, request: AddRequest)] {
        state.withLock { $0.adds }
    }

    /// True while no host is running: before ``build()``, after ``destroy()``, an idle stop or a crash.
    public var isKilled: Bool {
        state.withLock { s in
            if case .running = s.phase { return false }
            return true
        }
    }

    /// The host's process id while it runs.
    public var pid: Int32? {
        state.withLock { s in
            if case .running(let h) = s.phase { return h.pid }
            return nil
        }
    }

    /// The host's hello (protocol version, limits) while it runs.
    public var hostInfo: Hello? {
        state.withLock { s in
            if case .running(let h) = s.phase { return h.hello }
            return nil
        }
    }

    /// Counts as a call for the inactivity timeout.
    public func resetInactivity() {
        lastActivity.store(monotonicNanoseconds(), ordering: .relaxed)
    }

    // MARK: Plugins and calls

    /// Loads a library into the space.
    ///
    /// - Parameters:
    ///   - library: a path (contains `/`), or a name looked up as `lib<NAME>.so`, then `NAME.so`, in
    ///     `paths`, `SPACE_PATH`, the host's directory, then by the system loader.
    ///   - name: the package name for calls; default: the manifest's name, else `library`.
    ///   - declarations: C declarations, for libraries without a manifest.
    ///   - initArguments: passed to the plugin's init hook.
    /// - Returns: what was loaded: `{"name", "version", "path", "functions": [{"name", "declaration"}]}`.
    @discardableResult
    public func add(_ library: String, as name: String? = nil, declarations: String? = nil,
                    initArguments: [String] = []) async throws(SpaceError) -> Value {
        let request = AddRequest(library: library, alias: name ?? "", declarations: declarations ?? "",
                                 initArguments: initArguments)
        let host = try await host(starting: false)
        let info = try await host.channel.request { w, id in
            w.beginFrame(.add, id: id)
            request.encode(into: &w)
            w.endFrame()
        }
        // The daemon keeps (and replays) the adds of its spaces; only an embedded space keeps its own.
        if case .embedded = backend {
            let package = info[field: "name"]?.string ?? request.alias
            state.withLock { $0.adds.append((package, request)) }
        }
        return info
    }

    /// Unloads a package: its deinit hook runs, the library is closed, and restarts no longer replay it.
    public func remove(_ package: String) async throws(SpaceError) {
        let host = try await host(starting: false)
        _ = try await host.channel.request { w, id in
            w.beginFrame(.remove, id: id)
            w.writeString(package)
            w.endFrame()
        }
        state.withLock { s in s.adds.removeAll { $0.package == package } }
    }

    /// Calls `function` of `package` with `arguments`, typed by the function's C declaration.
    @discardableResult
    public func call(_ package: String, _ function: String, _ arguments: Value...) async throws(SpaceError) -> Value {
        try await call(package, function, arguments: arguments)
    }

    /// Calls `function` of `package` with `arguments`, typed by the function's C declaration.
    @discardableResult
    public func call(_ package: String, _ function: String, arguments: [Value]) async throws(SpaceError) -> Value {
        if arguments.count > configuration.limits.maxArguments {
            throw SpaceError(.tooLarge, "\(arguments.count) arguments exceed the limit of \(configuration.limits.maxArguments)")
        }
        // A `cb:N` without a handler still needs its invocations read (and answered) until released.
        let takesCallbacks = arguments.contains { if case .callback = $0 { return true } else { return false } }
        return try await relay(package, function, arguments,
                               subscription: takesCallbacks ? CallbackSubscription(handlers: [], continuation: nil) : nil)
    }

    /// Calls `function` with callback handlers in place of `cb:N` (`.callback { args in ... }`).
    ///
    /// Handlers run for every invocation, during the call and after it returned, from whichever
    /// plugin thread, until the plugin releases the callback, the space stops, or — for a
    /// `SPACE_SCOPED` callback — the call returns. If a handler throws during the call, the call
    /// fails with that error (``SpaceError/Code/callbackFailed``) after the function returned; the
    /// plugin got the zero value for it. To see later errors, or to cancel, use ``stream(_:_:_:)``.
    @_disfavoredOverload
    @discardableResult
    public func call(_ package: String, _ function: String, _ arguments: Argument...) async throws(SpaceError) -> Value {
        try await call(package, function, arguments: arguments)
    }

    /// Calls `function` with callback handlers in place of `cb:N` (see ``call(_:_:_:)-(_,_,Argument...)``).
    @_disfavoredOverload
    @discardableResult
    public func call(_ package: String, _ function: String, arguments: [Argument]) async throws(SpaceError) -> Value {
        let (result, subscription) = try await start(package, function, arguments, continuation: nil)
        if let e = subscription.firstError { throw e }
        return result
    }

    /// Calls `function` and returns its result together with the stream of its callbacks'
    /// invocations, which goes on after the call returned (a timer, a feed) until the plugin releases
    /// the callbacks, ``CallbackCall/cancel()`` is called, the stream's consumer stops, or the space
    /// stops (then the stream fails with the reason).
    public func stream(_ package: String, _ function: String, _ arguments: Argument...) async throws(SpaceError) -> CallbackCall {
        try await stream(package, function, arguments: arguments)
    }

    /// See ``stream(_:_:_:)``.
    public func stream(_ package: String, _ function: String, arguments: [Argument]) async throws(SpaceError) -> CallbackCall {
        let (invocations, continuation) = AsyncThrowingStream<CallbackInvocation, any Error>.makeStream()
        let (result, subscription) = try await start(package, function, arguments, continuation: continuation)
        return CallbackCall(result: result, invocations: invocations, cancelAction: { subscription.cancel() })
    }

    private func start(
        _ package: String, _ function: String, _ arguments: [Argument],
        continuation: AsyncThrowingStream<CallbackInvocation, any Error>.Continuation?
    ) async throws(SpaceError) -> (Value, CallbackSubscription) {
        if arguments.count > configuration.limits.maxArguments {
            throw SpaceError(.tooLarge, "\(arguments.count) arguments exceed the limit of \(configuration.limits.maxArguments)")
        }
        var handlers: [CallbackHandler?] = []
        var values: [Value] = []
        values.reserveCapacity(arguments.count)
        for a in arguments {
            if case .callback(_, let handler) = a.kind { handlers.append(handler) }
            values.append(a.wire)
        }
        let subscription = CallbackSubscription(handlers: handlers, continuation: continuation)
        let result = try await relay(package, function, values, subscription: subscription)
        return (result, subscription)
    }

    /// Asks the host to answer; proves it is alive and responsive.
    public func ping() async throws(SpaceError) {
        let host = try await host(starting: false)
        _ = try await host.channel.request { w, id in
            w.beginFrame(.ping, id: id)
            w.endFrame()
        }
    }

    // MARK: Starting and stopping

    /// The running host. Starts one (replaying adds) after an idle stop or a crash; after
    /// ``destroy()`` only when `starting` (that is, from ``build()``).
    private func host(starting: Bool) async throws(SpaceError) -> HostProcess {
        enum Next { case ready(HostProcess), wait(Task<HostProcess, any Error>), fail(SpaceError) }
        let next: Next = state.withLock { s in
            switch s.phase {
            case .running(let h):
                return .ready(h)
            case .starting(let t):
                return .wait(t)
            case .destroyed where !starting:
                return .fail(SpaceError(.notRunning, "the space was destroyed; call build() to start it again"))
            case .stopped, .destroyed:
                s.generation += 1
                let generation = s.generation
                let adds = s.adds.map(\.request)
                let task = Task { [self] () async throws -> HostProcess in
                    try await self.start(generation: generation, replaying: adds)
                }
                s.phase = .starting(task)
                return .wait(task)
            }
        }
        switch next {
        case .ready(let h): return h
        case .fail(let e): throw e
        case .wait(let task):
            do {
                return try await task.value
            } catch let e as SpaceError {
                throw e
            } catch {
                throw SpaceError(.spawnFailed, "\(error)")
            }
        }
    }

    private func start(generation: Int, replaying adds: [AddRequest]) async throws(SpaceError) -> HostProcess {
        var spawned: HostProcess?
        do throws(SpaceError) {
            let onClose: @Sendable (HostProcess, SpaceError) -> Void = { [weak self] host, error in
                self?.hostClosed(host, error)
            }
            let host: HostProcess
            switch backend {
            case .embedded:
                host = try HostProcess.spawn(configuration, onClose: onClose)
                spawned = host
            case .daemon(let socket, let name, let startDaemon):
                do throws(SpaceError) {
                    host = try HostProcess.connect(path: socket, configuration, onClose: onClose)
                } catch where error.code == .daemonNotRunning && startDaemon != nil {
                    try startDaemon!()
                    host = try HostProcess.connect(path: socket, configuration, onClose: onClose)
                }
                spawned = host
                _ = try await host.channel.request { w, id in
                    w.beginFrame(.control, id: id)
                    ControlRequest("attach", .object([.init("space", .string(name))])).encode(into: &w)
                    w.endFrame()
                }
            }
            for add in adds {
                _ = try await host.channel.request { w, id in
                    w.beginFrame(.add, id: id)
                    add.encode(into: &w)
                    w.endFrame()
                }
            }
        } catch {
            if let half = spawned {
                // A replayed add failed: this host is not the space the caller had. Do not leave it running.
                half.kill()
                half.channel.close(with: error)
                half.channel.stopThread()
            }
            state.withLock { s in
                if s.generation == generation { s.phase = .stopped(error) }
            }
            // Only a replay makes this a restart; a first start or a daemon connection fails as itself.
            if adds.isEmpty { throw error }
            throw SpaceError(error.code, "the space could not be restarted: \(error.message)", errno: error.errno)
        }
        let host = spawned!
        let current = state.withLock { s -> Bool in
            guard s.generation == generation else { return false }
            s.phase = .running(host)
            return true
        }
        if !current {
            // Destroyed while starting.
            host.kill()
            host.channel.close(with: SpaceError(.notRunning, "the space was destroyed while starting"))
            host.channel.stopThread()
            throw SpaceError(.notRunning, "the space was destroyed while starting")
        }
        resetInactivity()
        if !host.isConnection { emit(.started(pid: host.pid)) }
        return host
    }

    /// The channel of `host` closed: a crash, a kill, the end of a stop, or a broken protocol.
    /// A host that is still running behind a closed channel (it broke the protocol, or a plugin
    /// closed fd 3) can never be talked to again: it is killed, not left behind.
    private func hostClosed(_ host: HostProcess, _ error: SpaceError) {
        let unexpected: Bool = state.withLock { s in
            if case .running(let h) = s.phase, h === host {
                s.phase = .stopped(error)
                return true
            }
            return false
        }
        host.kill()
        host.channel.stopThread()
        if unexpected && !host.isConnection { emit(.crashed(pid: host.pid, error: error)) }
    }

    /// Stops the host after `inactivityTimeout` ms without a call.
    private func startWatchdog() {
        let timeout = configuration.inactivityTimeout
        guard timeout > 0 else { return }
        watchdog.withLock { task in
            guard task == nil else { return }
            task = Task { [weak self] in
                let timeoutNs = UInt64(timeout) * 1_000_000
                var wait = timeoutNs
                while !Task.isCancelled {
                    try? await Task.sleep(for: .nanoseconds(Int64(min(wait, UInt64(Int64.max)))))
                    guard let self, !Task.isCancelled else { return }
                    let idleFor = monotonicNanoseconds() &- self.lastActivity.load(ordering: .relaxed)
                    if idleFor >= timeoutNs {
                        await self.stopIfIdle()
                        wait = timeoutNs
                    } else {
                        wait = timeoutNs - idleFor
                    }
                }
            }
        }
    }

    private func stopIfIdle() async {
        let host: HostProcess? = state.withLock { s in
            guard case .running(let h) = s.phase, h.channel.outstanding == 0 else { return nil }
            s.phase = .stopped(SpaceError(.notRunning, "the space was stopped after \(configuration.inactivityTimeout) ms without a call"))
            s.generation += 1
            return h
        }
        if let host {
            await host.stop(timeoutMilliseconds: configuration.control.stopTimeout)
            host.channel.stopThread()
            emit(.stopped(pid: host.pid, reason: "idle for \(configuration.inactivityTimeout) ms"))
        }
    }
}

/// A change in a space's host process.
package enum SpaceLifecycleEvent: Sendable {
    /// A host started (and replayed the adds).
    case started(pid: Int32)
    /// A host was stopped on purpose: `reason` is "idle for N ms", "killed" or "destroyed".
    case stopped(pid: Int32, reason: String)
    /// A host died unexpectedly (or broke the protocol); `error` says how.
    case crashed(pid: Int32, error: SpaceError)
}

// MARK: Relaying (the daemon) and daemon requests

extension Space {
    /// Sends a call of wire values and returns the host's answer; `subscription` receives its
    /// callbacks (handlers and a stream, or relaying for the daemon: ``CallbackSubscription/init(forward:)``).
    package func relay(_ package: String, _ function: String, _ arguments: [Value],
                       subscription: CallbackSubscription?) async throws(SpaceError) -> Value {
        let host = try await host(starting: false)
        resetInactivity()
        defer { resetInactivity() }
        return try await host.channel.request(subscription: subscription) { w, id in
            w.writeCall(id: id, package: package, function: function, arguments: arguments)
        }
    }

    /// Sends a control request to the daemon (`ls`, `status`, `kill`, ...; see docs/protocol.md).
    /// Only for a space connected with ``SpaceDaemon/connect(space:configuration:autoStart:executable:configPath:runtimeDirectory:)``.
    public func daemonRequest(_ operation: String, _ arguments: Value = .null) async throws(SpaceError) -> Value {
        try await control(operation, arguments, subscription: nil)
    }

    /// A control request whose answer goes on as a stream (`events` with `follow`): each event is
    /// one invocation with one argument, until ``CallbackCall/cancel()`` or the daemon stops.
    public func daemonStream(_ operation: String, _ arguments: Value = .null) async throws(SpaceError) -> CallbackCall {
        let (invocations, continuation) = AsyncThrowingStream<CallbackInvocation, any Error>.makeStream()
        let subscription = CallbackSubscription(handlers: [], continuation: continuation)
        let result = try await control(operation, arguments, subscription: subscription)
        return CallbackCall(result: result, invocations: invocations, cancelAction: { subscription.cancel() })
    }

    private func control(_ operation: String, _ arguments: Value,
                         subscription: CallbackSubscription?) async throws(SpaceError) -> Value {
        guard isDaemonConnection else {
            throw SpaceError(.notRunning, "\(operation): this space is not connected to the daemon")
        }
        let host = try await host(starting: false)
        return try await host.channel.request(subscription: subscription) { w, id in
            w.beginFrame(.control, id: id)
            ControlRequest(operation, arguments).encode(into: &w)
            w.endFrame()
        }
    }
}
