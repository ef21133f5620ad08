@_exported import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A space: sandboxable child processes (`space-host`) that load native plugins and run their
/// functions on behalf of this process, under supervision. This process owns the children.
///
/// ```swift
/// let space = try await Space.launch()
/// try await space.add("calc")
/// let sum = try await space.call("calc", "math.add", 2, 3)   // .int(5)
/// ```
///
/// Calls may come from many tasks at once; replies are matched to callers by request id.
/// Supervision (docs/supervision.md):
/// - after `inactivityTimeout` ms without a call the hosts stop; the next call starts them again and
///   replays every ``add(_:as:declarations:initArguments:timeout:)`` first;
/// - a host that crashes fails its calls in flight with ``SpaceError/Code/crashed`` (naming the
///   signal or exit status and quoting its last stderr lines); the next call starts a new one;
/// - a call past its deadline (`callTimeout`, or its own `timeout`) kills its host and fails with
///   ``SpaceError/Code/timedOut``;
/// - too many deaths in a row soon after their start make the space ``SpaceError/Code/dead``;
/// - with `workers: N`, N hosts serve the calls, each call going to the least-loaded one.
public final class Space: Sendable {
    /// The configuration the space runs with.
    public let configuration: SpaceConfiguration
    let state: Mutex<State>
    /// Serializes what changes the plugin list or starts hosts: adds, removes, starts, reloads.
    let gate = AsyncGate()
    let lastActivity = Atomic<UInt64>(0)
    let watchdog = Mutex<Task<Void, Never>?>(nil)
    /// Where the space runs.
    let backend: Backend
    let hub = EventHub()
    let recorder = CallRecorder()
    let admission: Admission?

    /// Where a space runs.
    enum Backend: Sendable {
        /// `space-host` children of this process.
        case embedded
        /// A named space of the daemon listening on `socket`; `start` launches the daemon when it
        /// is not running.
        case daemon(socket: String, space: String, start: (@Sendable () throws(SpaceError) -> Void)?)
    }

    enum Mode {
        /// Hosts run or start on demand.
        case active
        /// Destroyed by its owner: calls fail until ``build()``.
        case destroyed
        /// Too many sequential deaths: calls fail fast with this until ``reload()`` or ``build()``.
        case dead(SpaceError)
    }

    /// One slot of the pool.
    struct Worker {
        /// The running host.
        var host: HostProcess?
        /// A host has run in this slot before (so the next start is a respawn).
        var hasRun = false
    }

    struct State {
        var mode: Mode = .destroyed
        var workers: [Worker]
        /// Every add in force with the package name the host gave it, in order, replayed on restart.
        var adds: [(package: String, request: AddRequest)] = []
        /// Bumped when every host is stopped on purpose (kill, destroy, idle): a start that began
        /// before does not install its host.
        var epoch = 0
        /// Hosts spawned and still replaying adds, so a kill can reach them too.
        var starting: [HostProcess] = []
        /// A background restart of missing workers is under way.
        var restarting = false
        var sequentialDeaths = 0
        /// Why the last host stopped or died.
        var lastStop: SpaceError?
        /// Directories of libraries added by path that the sandbox did not cover when they were
        /// added: every later host may read them too.
        var extraReadPaths: [String] = []
    }

    /// The sandbox, compiled at the first spawn.
    private let compiledSandbox = Mutex<SandboxPlan?>(nil)

    /// The space's sandbox, compiled once (the seccomp program is built here, not at each spawn).
    func sandboxPlan() throws(SpaceError) -> SandboxPlan {
        if let plan = compiledSandbox.withLock({ $0 }) { return plan }
        let plan = try SandboxPlan(configuration)
        let first = compiledSandbox.withLock { p -> Bool in
            defer { if p == nil { p = plan } }
            return p == nil
        }
        if first && configuration.sandbox.profile == .none {
            writeStandardError("space: sandbox profile 'none': this space's plugins run with all of this user's rights (debugging only)\n")
        }
        return plan
    }

    init(configuration: SpaceConfiguration, backend: Backend = .embedded) {
        self.configuration = configuration
        self.backend = backend
        let count: Int
        if case .embedded = backend { count = max(1, configuration.workers) } else { count = 1 }
        state = Mutex(State(workers: Array(repeating: Worker(), count: count)))
        let admission = Admission(configuration.quotas)
        // The daemon enforces its own quotas; a connection to it would only count twice.
        if case .embedded = backend, admission.isActive { self.admission = admission } else { self.admission = nil }
    }

    /// A space whose hosts start with its first request, then stop after inactivity and come
    /// back like any other (the daemon's spaces).
    package convenience init(lazy configuration: SpaceConfiguration) {
        self.init(configuration: configuration)
        state.withLock { $0.mode = .active }
        startWatchdog()
    }

    /// True when the space is served by the daemon (``SpaceDaemon/connect(space:configuration:autoStart:executable:configPath:runtimeDirectory:)``).
    public var isDaemonConnection: Bool {
        if case .daemon = backend { return true }
        return false
    }

    deinit {
        watchdog.withLock { $0?.cancel() }
        let hosts = state.withLock { s in s.workers.compactMap(\.host) + s.starting }
        for host in hosts {
            host.channel.close(with: SpaceError(.notRunning, "the space was released"))
            host.kill()
            host.channel.stopThread()
        }
    }

    /// Starts a space and waits until its hosts have said hello.
    public static func launch(_ configuration: SpaceConfiguration = SpaceConfiguration()) async throws(SpaceError) -> Space {
        let space = Space(configuration: configuration)
        try await space.build()
        return space
    }

    // MARK: Lifecycle

    /// Starts every worker that is not running (after ``destroy()``, an idle stop or a crash),
    /// replaying every add, and brings a `dead` space back. Does nothing when all run.
    public func build() async throws(SpaceError) {
        state.withLock { s in
            if case .active = s.mode {} else { s.mode = .active }
            s.sequentialDeaths = 0
        }
        try await startMissing()
        if case .embedded = backend { startWatchdog() }
    }

    /// Stops the hosts gracefully (plugins' deinit hooks run; SIGKILL after `control.stopTimeout`).
    /// Calls, adds and removes fail with ``SpaceError/Code/notRunning`` until ``build()``. Added
    /// plugins are kept and replayed by ``build()``. (An idle stop or a crash is different: the next
    /// call restarts the hosts by themselves.)
    public func destroy() async {
        watchdog.withLock { $0?.cancel(); $0 = nil }
        let hosts = takeAll(SpaceError(.notRunning, "the space was destroyed; call build() to start it again")) { $0.mode = .destroyed }
        await stop(hosts, kind: .stopped, detail: "destroyed")
    }

    /// Stops the hosts now, gracefully (SIGKILL after `control.stopTimeout`), as an idle stop does:
    /// the next call starts them again and replays every add. Does nothing when none runs.
    ///
    /// - Parameter force: SIGKILL at once, without the graceful shutdown (which waits for a call in
    ///   progress: use it for a plugin stuck in native code). Calls in flight fail with `notRunning`.
    public func kill(force: Bool = false) async {
        let hosts = takeAll(SpaceError(.notRunning, "the space was killed")) { _ in }
        await stop(hosts, kind: .stopped, detail: "killed", force: force)
    }

    /// Replaces every worker's host with a fresh one, one worker at a time: a new host is started
    /// and loads every plugin, takes the worker's new calls, and only then is the old one stopped,
    /// after its calls in flight are answered — so no call fails. (A call's callbacks that are
    /// still live on an old host end with `notRunning` when it stops.) Brings a `dead` space back.
    public func reload() async throws(SpaceError) {
        try await gate.withLock { () async throws(SpaceError) in
            state.withLock { s in
                if case .active = s.mode {} else { s.mode = .active }
                s.sequentialDeaths = 0
            }
            let count = state.withLock { $0.workers.count }
            for index in 0..<count {
                let (adds, epoch) = state.withLock { s in (s.adds.map(\.request), s.epoch) }
                let fresh = try await startHost(worker: index, replaying: adds)
                let (old, installed) = state.withLock { s -> (HostProcess?, Bool) in
                    guard s.epoch == epoch, case .active = s.mode else { return (nil, false) }
                    let old = s.workers[index].host
                    s.workers[index].host = fresh
                    s.workers[index].hasRun = true
                    return (old, true)
                }
                guard installed else {
                    discard(fresh, SpaceError(.notRunning, "the space was stopped during the reload"))
                    throw SpaceError(.notRunning, "the space was stopped during the reload")
                }
                resetInactivity()
                emit(SpaceEvent(.respawned, worker: index, pid: fresh.pid, detail: "reload"))
                if let old {
                    await drain(old)
                    await old.stop(timeoutMilliseconds: configuration.control.stopTimeout)
                    old.channel.stopThread()
                    if !old.isConnection { emit(SpaceEvent(.stopped, worker: index, pid: old.pid, detail: "replaced by reload")) }
                }
            }
            emit(SpaceEvent(.reloaded, detail: "\(count) worker\(count == 1 ? "" : "s")"))
        }
        if case .embedded = backend { startWatchdog() }
    }

    /// Waits until the calls sent to `host` are answered (at most `control.stopTimeout`).
    private func drain(_ host: HostProcess) async {
        let deadline = monotonicNanoseconds() + UInt64(configuration.control.stopTimeout) * 1_000_000
        while host.load.load(ordering: .acquiring) > 0 && monotonicNanoseconds() < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Takes every host out of the pool (and kills the ones still starting), with `reason` as the
    /// last stop, when `condition` holds; `change` adjusts the mode.
    func takeAll(_ reason: SpaceError, if condition: (State) -> Bool = { _ in true },
                 _ change: (inout State) -> Void) -> [(Int, HostProcess)] {
        let (hosts, starting) = state.withLock { s -> ([(Int, HostProcess)], [HostProcess]) in
            guard condition(s) else { return ([], []) }
            var out: [(Int, HostProcess)] = []
            for i in s.workers.indices {
                if let h = s.workers[i].host { out.append((i, h)) }
                s.workers[i].host = nil
            }
            let starting = s.starting
            s.epoch += 1
            if !out.isEmpty { s.lastStop = reason }
            change(&s)
            return (out, starting)
        }
        for h in starting {
            h.channel.close(with: reason)
            h.kill()
        }
        return hosts
    }

    /// Stops hosts just taken out of the pool, in parallel. The events go out first, when the stop
    /// is decided, so they come before those of a call that arrives meanwhile and starts new hosts.
    func stop(_ hosts: [(Int, HostProcess)], kind: SpaceEvent.Kind, detail: String, force: Bool = false) async {
        for (index, host) in hosts where !host.isConnection {
            emit(SpaceEvent(kind, worker: index, pid: host.pid, detail: detail))
        }
        @Sendable func end(_ host: HostProcess) async {
            if force {
                host.channel.close(with: SpaceError(.notRunning, "the space was killed"))
                host.kill()
            } else {
                await host.stop(timeoutMilliseconds: configuration.control.stopTimeout)
            }
            host.channel.stopThread()
        }
        // One host (the common case) is stopped right here: its shutdown goes out at once instead
        // of waiting for a child task to be scheduled.
        if hosts.count == 1 { return await end(hosts[0].1) }
        await withTaskGroup(of: Void.self) { group in
            for (_, host) in hosts { group.addTask { await end(host) } }
        }
    }

    // MARK: Observing

    /// The space's lifecycle events from now on (spawned, ready, respawned, idleStopped, stopped,
    /// crashed, timedOut, dead, reloaded): a new stream per call, keeping the newest 1,000 events
    /// if the consumer falls behind. It ends when the space is released.
    public func events() -> AsyncStream<SpaceEvent> {
        hub.stream(buffering: 1000)
    }

    /// Calls `observer` for every event, on whichever thread saw it (the daemon's event log).
    package func observe(_ observer: @escaping @Sendable (SpaceEvent) -> Void) {
        hub.observe(observer)
    }

    func emit(_ event: SpaceEvent) { hub.emit(event) }

    /// Counters, call latency percentiles and the pool's workers.
    public var statistics: SpaceStatistics {
        var s = recorder.snapshot
        s.queued = admission?.waiting ?? 0
        state.withLock { st in
            s.sequentialDeaths = st.sequentialDeaths
            s.workers = st.workers.enumerated().map { i, w in
                .init(index: i, pid: w.host?.pid, inFlight: w.host?.load.load(ordering: .relaxed) ?? 0)
            }
        }
        return s
    }

    /// The space's state: `running` (some host serves calls), `starting`, `stopped` (the next
    /// call starts it), `dead` or `destroyed`.
    public var stateName: String {
        state.withLock { s in
            switch s.mode {
            case .destroyed: return "destroyed"
            case .dead: return "dead"
            case .active:
                if s.workers.contains(where: { $0.host != nil }) { return "running" }
                return s.starting.isEmpty ? "stopped" : "starting"
            }
        }
    }

    /// Why the host last stopped or died, if it did.
    public var stopReason: SpaceError? {
        state.withLock { s in
            if case .dead(let e) = s.mode { return e }
            return s.lastStop
        }
    }

    /// The packages added, in order (replayed on restart), with their add requests.
    package var addedPackages: [(package: String, request: AddRequest)] {
        state.withLock { $0.adds }
    }

    /// True while no host is running: before ``build()``, after ``destroy()``, an idle stop or a crash.
    public var isKilled: Bool {
        state.withLock { s in !s.workers.contains { $0.host != nil } }
    }

    /// The pid of the first running worker's host.
    public var pid: Int32? {
        state.withLock { s in s.workers.lazy.compactMap(\.host).first?.pid }
    }

    /// The pids of the workers' hosts (nil where none runs).
    public var workerPIDs: [Int32?] {
        state.withLock { s in s.workers.map { $0.host?.pid } }
    }

    /// The first running host's hello (protocol version, limits).
    public var hostInfo: Hello? {
        state.withLock { s in s.workers.lazy.compactMap(\.host).first?.hello }
    }

    /// The last lines the first running host (or, while none runs, none) wrote to stderr.
    public var recentOutput: [String] {
        let host = state.withLock { s in s.workers.lazy.compactMap(\.host).first }
        return host?.recentOutput ?? []
    }

    /// Counts as a call for the inactivity timeout.
    public func resetInactivity() {
        lastActivity.store(monotonicNanoseconds(), ordering: .relaxed)
    }

    // MARK: Plugins and calls

    /// Loads a library into the space (into every worker).
    ///
    /// - Parameters:
    ///   - library: a path (contains `/`), or a name looked up as `lib<NAME>.so`, then `NAME.so`, in
    ///     `paths`, `SPACE_PATH`, the host's directory, then by the system loader.
    ///   - name: the package name for calls; default: the manifest's name, else `library`.
    ///   - declarations: C declarations, for libraries without a manifest.
    ///   - initArguments: passed to the plugin's init hook.
    ///   - timeout: how long the init hook may take (default `callTimeout`); past it the host is
    ///     killed and the add fails with ``SpaceError/Code/timedOut``.
    /// - Returns: what was loaded: `{"name", "version", "path", "functions": [{"name", "declaration"}]}`.
    @discardableResult
    public func add(_ library: String, as name: String? = nil, declarations: String? = nil,
                    initArguments: [String] = [], timeout: Duration? = nil) async throws(SpaceError) -> Value {
        let request = AddRequest(library: library, alias: name ?? "", declarations: declarations ?? "",
                                 initArguments: initArguments)
        let ms = timeout.map(milliseconds) ?? configuration.callTimeout
        return try await gate.withLock { () async throws(SpaceError) -> Value in
            await widenSandbox(for: library)
            let hosts = try await runningHostsLocked()
            let results = await everyHost(hosts) { [self] index, host async throws(SpaceError) -> Value in
                try await send(host, worker: index, what: "add \(library)", timeoutMilliseconds: ms) { w, id in
                    w.beginFrame(.add, id: id)
                    request.encode(into: &w)
                    w.endFrame()
                }
            }
            var info: Value?
            var failure: SpaceError?
            for r in results {
                switch r.1 {
                case .success(let v): info = info ?? v
                case .failure(let e): failure = failure ?? e
                }
            }
            if let failure {
                // All or nothing: take it back out of the workers that loaded it.
                if let package = info?[field: "name"]?.string {
                    for (i, r) in results {
                        if case .success = r, let host = hosts.first(where: { $0.0 == i })?.1 {
                            _ = try? await host.channel.request { w, id in
                                w.beginFrame(.remove, id: id)
                                w.writeString(package)
                                w.endFrame()
                            }
                        }
                    }
                }
                throw failure
            }
            let loaded = info ?? .null
            // The daemon keeps (and replays) the adds of its spaces; only an embedded space keeps its own.
            if case .embedded = backend {
                let package = loaded[field: "name"]?.string ?? request.alias
                state.withLock { $0.adds.append((package, request)) }
            }
            return loaded
        }
    }

    /// A library added by path from a directory the running hosts may not read (Landlock is fixed
    /// before a host's first request): the directory joins the readable ones and the hosts restart
    /// (gracefully, their adds replayed) so the add can load it.
    private func widenSandbox(for library: String) async {
        guard case .embedded = backend, configuration.sandbox.profile != .none,
              let slash = library.lastIndex(of: "/") else { return }
        let dir = slash == library.startIndex ? "/" : String(library[..<slash])
        guard access(dir, R_OK) == 0 else { return }  // nothing there to read: the add fails as usual
        func covered(_ paths: [String]) -> Bool {
            paths.contains { dir == $0 || dir.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
        }
        let stale = state.withLock { s -> Bool in
            if !s.extraReadPaths.contains(dir) { s.extraReadPaths.append(dir) }
            return s.workers.contains { $0.host.map { !covered($0.readPaths) } ?? false }
        }
        guard stale else { return }
        let hosts = takeAll(SpaceError(.notRunning, "restarted so that the sandbox lets it read \(dir)")) { _ in }
        await stop(hosts, kind: .stopped, detail: "restarted so that the sandbox lets it read \(dir)")
    }

    /// Unloads a package from every worker: its deinit hook runs, the library is closed, and
    /// restarts no longer replay it.
    public func remove(_ package: String) async throws(SpaceError) {
        try await gate.withLock { () async throws(SpaceError) in
            let hosts = try await runningHostsLocked()
            let results = await everyHost(hosts) { _, host async throws(SpaceError) -> Value in
                try await host.channel.request { w, id in
                    w.beginFrame(.remove, id: id)
                    w.writeString(package)
                    w.endFrame()
                }
            }
            state.withLock { s in s.adds.removeAll { $0.package == package } }
            for (_, r) in results { if case .failure(let e) = r { throw e } }
        }
    }

    /// Runs `body` on every host at once; results by worker index.
    private func everyHost(_ hosts: [(Int, HostProcess)],
                           _ body: @escaping @Sendable (Int, HostProcess) async throws(SpaceError) -> Value) async -> [(Int, Result<Value, SpaceError>)] {
        // (The typed-throws do/catch lives in a function, not in the task group's closure: the
        // release build of the latter returned a garbage index with Swift 6.3.)
        @Sendable func run(_ i: Int, _ h: HostProcess) async -> (Int, Result<Value, SpaceError>) {
            do throws(SpaceError) { return (i, .success(try await body(i, h))) } catch { return (i, .failure(error)) }
        }
        if hosts.count == 1 { return [await run(hosts[0].0, hosts[0].1)] }
        return await withTaskGroup(of: (Int, Result<Value, SpaceError>).self) { group in
            for (i, h) in hosts { group.addTask { await run(i, h) } }
            var out: [(Int, Result<Value, SpaceError>)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }
        }
    }

    /// Calls `function` of `package` with `arguments`, typed by the function's C declaration.
    @discardableResult
    public func call(_ package: String, _ function: String, _ arguments: Value...) async throws(SpaceError) -> Value {
        try await call(package, function, arguments: arguments)
    }

    /// Calls `function` of `package` with `arguments`, typed by the function's C declaration.
    ///
    /// - Parameter timeout: how long the call may take (default `callTimeout`); past it the host
    ///   running it is killed (native code cannot be cancelled) and the call fails with
    ///   ``SpaceError/Code/timedOut``; the host's other calls in flight fail with
    ///   ``SpaceError/Code/interrupted``; the next call starts a new host.
    @discardableResult
    public func call(_ package: String, _ function: String, arguments: [Value], timeout: Duration? = nil) async throws(SpaceError) -> Value {
        if arguments.count > configuration.limits.maxArguments {
            throw SpaceError(.tooLarge, "\(arguments.count) arguments exceed the limit of \(configuration.limits.maxArguments)")
        }
        // A `cb:N` without a handler still needs its invocations read (and answered) until released.
        let takesCallbacks = arguments.contains { if case .callback = $0 { return true } else { return false } }
        return try await relay(package, function, arguments,
                               subscription: takesCallbacks ? CallbackSubscription(handlers: [], continuation: nil) : nil,
                               timeout: timeout.map(milliseconds))
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

    /// Calls `function` with callback handlers in place of `cb:N` (see ``call(_:_:_:)-(_,_,Argument...)``);
    /// `timeout` as for ``call(_:_:arguments:timeout:)-(_,_,[Value],_)``.
    @_disfavoredOverload
    @discardableResult
    public func call(_ package: String, _ function: String, arguments: [Argument], timeout: Duration? = nil) async throws(SpaceError) -> Value {
        let (result, subscription) = try await start(package, function, arguments, continuation: nil, timeout: timeout)
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

    /// See ``stream(_:_:_:)``; `timeout` bounds the call (not the stream after it returned).
    public func stream(_ package: String, _ function: String, arguments: [Argument], timeout: Duration? = nil) async throws(SpaceError) -> CallbackCall {
        let (invocations, continuation) = AsyncThrowingStream<CallbackInvocation, any Error>.makeStream()
        let (result, subscription) = try await start(package, function, arguments, continuation: continuation, timeout: timeout)
        return CallbackCall(result: result, invocations: invocations, cancelAction: { subscription.cancel() })
    }

    private func start(
        _ package: String, _ function: String, _ arguments: [Argument],
        continuation: AsyncThrowingStream<CallbackInvocation, any Error>.Continuation?, timeout: Duration?
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
        let result = try await relay(package, function, values, subscription: subscription,
                                     timeout: timeout.map(milliseconds))
        return (result, subscription)
    }

    /// Asks a host to answer; proves it is alive and responsive.
    public func ping() async throws(SpaceError) {
        let host = try await lease()
        defer { host.load.subtract(1, ordering: .releasing) }
        _ = try await host.channel.request { w, id in
            w.beginFrame(.ping, id: id)
            w.endFrame()
        }
    }
}

/// Whole milliseconds of a duration, at least 1 for a positive one.
func milliseconds(_ d: Duration) -> Int {
    let (seconds, attoseconds) = d.components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
    let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    return Int(max(1, min(ms, Int64(Int32.max))))
}
