import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// The supervision of a space's hosts: starting (and replaying adds), picking the least-loaded
// worker, deadlines, deaths and their intensity, idle stops. docs/supervision.md tells the story.
extension Space {
    // MARK: Picking a host

    /// The least-loaded running host, with one call counted on it (balance with `load.subtract`).
    /// Starts the hosts when none runs; restarts missing workers in the background when others run.
    func lease() async throws(SpaceError) -> HostProcess {
        enum Next { case host(HostProcess, restart: Bool), start, fail(SpaceError) }
        while true {
            let next: Next = state.withLock { s in
                switch s.mode {
                case .destroyed:
                    return .fail(SpaceError(.notRunning, "the space was destroyed; call build() to start it again"))
                case .dead(let e):
                    return .fail(e)
                case .active:
                    break
                }
                if s.workers.count == 1 {
                    if let h = s.workers[0].host {
                        h.load.add(1, ordering: .relaxed)
                        return .host(h, restart: false)
                    }
                    return .start
                }
                var best: HostProcess?
                var bestLoad = Int.max
                var missing = false
                for w in s.workers {
                    guard let h = w.host else { missing = true; continue }
                    let l = h.load.load(ordering: .relaxed)
                    if l < bestLoad { best = h; bestLoad = l }
                }
                guard let best else { return .start }
                best.load.add(1, ordering: .relaxed)
                let restart = missing && !s.restarting
                if restart { s.restarting = true }
                return .host(best, restart: restart)
            }
            switch next {
            case .host(let h, let restart):
                if restart {
                    Task { [weak self] in
                        guard let self else { return }
                        try? await self.startMissing()
                        self.state.withLock { $0.restarting = false }
                    }
                }
                return h
            case .fail(let e):
                throw e
            case .start:
                try await startMissing()
            }
        }
    }

    /// The running hosts by worker index, starting them first when none runs. Call with the gate held.
    func runningHostsLocked() async throws(SpaceError) -> [(Int, HostProcess)] {
        func running() throws(SpaceError) -> [(Int, HostProcess)] {
            try state.withLock { s throws(SpaceError) in
                switch s.mode {
                case .destroyed: throw SpaceError(.notRunning, "the space was destroyed; call build() to start it again")
                case .dead(let e): throw e
                case .active: break
                }
                return s.workers.enumerated().compactMap { i, w in w.host.map { (i, $0) } }
            }
        }
        let hosts = try running()
        if !hosts.isEmpty { return hosts }
        try await startMissingLocked()
        return try running()
    }

    /// Starts every worker that has no host, in parallel, replaying every add.
    func startMissing() async throws(SpaceError) {
        try await gate.withLock { () async throws(SpaceError) in try await startMissingLocked() }
    }

    /// ``startMissing()`` with the gate held. Throws when no worker runs afterwards.
    func startMissingLocked() async throws(SpaceError) {
        let (missing, adds, epoch) = try state.withLock { s throws(SpaceError) -> ([Int], [AddRequest], Int) in
            switch s.mode {
            case .destroyed: throw SpaceError(.notRunning, "the space was destroyed; call build() to start it again")
            case .dead(let e): throw e
            case .active: break
            }
            return (s.workers.indices.filter { s.workers[$0].host == nil }, s.adds.map(\.request), s.epoch)
        }
        if missing.isEmpty { return }
        var results: [(Int, Result<HostProcess, SpaceError>)] = []
        if missing.count == 1 {
            results = [(missing[0], await startResult(worker: missing[0], replaying: adds))]
        } else {
            results = await withTaskGroup(of: (Int, Result<HostProcess, SpaceError>).self) { group in
                for index in missing {
                    group.addTask { [self] in (index, await startResult(worker: index, replaying: adds)) }
                }
                var out: [(Int, Result<HostProcess, SpaceError>)] = []
                for await r in group { out.append(r) }
                return out
            }
        }
        var firstFailure: SpaceError?
        for (index, result) in results {
            switch result {
            case .success(let host):
                let installed = state.withLock { s -> Bool? in
                    guard s.epoch == epoch, case .active = s.mode else { return nil }
                    let respawn = s.workers[index].hasRun
                    s.workers[index].host = host
                    s.workers[index].hasRun = true
                    return respawn
                }
                guard let respawn = installed else {
                    discard(host, SpaceError(.notRunning, "the space was stopped while starting"))
                    firstFailure = firstFailure ?? SpaceError(.notRunning, "the space was stopped while starting")
                    continue
                }
                resetInactivity()
                let detail = "replayed \(adds.count) add\(adds.count == 1 ? "" : "s") in \(formatMilliseconds(monotonicNanoseconds() - host.startedAt)) ms"
                if !host.isConnection { emit(SpaceEvent(respawn ? .respawned : .ready, worker: index, pid: host.pid, detail: detail)) }
            case .failure(let error):
                firstFailure = firstFailure ?? error
                if case .embedded = backend { died(worker: index, pid: nil, startedAt: monotonicNanoseconds(), error) }
            }
        }
        let anyRunning = state.withLock { s in s.workers.contains { $0.host != nil } }
        if !anyRunning, let firstFailure { throw firstFailure }
    }

    /// ``startHost(worker:replaying:)`` as a Result. (A typed-throws do/catch inside the task
    /// group's closure itself returned a garbage index in the release build with Swift 6.3.)
    private func startResult(worker index: Int, replaying adds: [AddRequest]) async -> Result<HostProcess, SpaceError> {
        do throws(SpaceError) {
            return .success(try await startHost(worker: index, replaying: adds))
        } catch {
            return .failure(error)
        }
    }

    /// Spawns (or connects) one host and replays `adds` into it; nothing is installed.
    func startHost(worker index: Int, replaying adds: [AddRequest]) async throws(SpaceError) -> HostProcess {
        let onClose: @Sendable (HostProcess, SpaceError) -> Void = { [weak self] host, error in
            self?.hostClosed(host, error)
        }
        let host: HostProcess
        switch backend {
        case .embedded:
            let extra = state.withLock { $0.extraReadPaths }
            host = try HostProcess.spawn(configuration, sandbox: try sandboxPlan(), libraries: adds.map(\.library),
                                         readPaths: extra, onClose: onClose)
            recorder.started()
            emit(SpaceEvent(.spawned, worker: index, pid: host.pid))
        case .daemon(let socket, _, let startDaemon):
            do throws(SpaceError) {
                host = try HostProcess.connect(path: socket, configuration, onClose: onClose)
            } catch where error.code == .daemonNotRunning && startDaemon != nil {
                try startDaemon!()
                host = try HostProcess.connect(path: socket, configuration, onClose: onClose)
            }
        }
        state.withLock { $0.starting.append(host) }
        defer { state.withLock { s in s.starting.removeAll { $0 === host } } }
        do throws(SpaceError) {
            if case .daemon(_, let name, _) = backend {
                _ = try await host.channel.request { w, id in
                    w.beginFrame(.control, id: id)
                    ControlRequest("attach", .object([.init("space", .string(name))])).encode(into: &w)
                    w.endFrame()
                }
            }
            for var add in adds {
                add.isReplay = true  // the host answers with the name only and parses lazily
                _ = try await send(host, worker: index, what: "add \(add.library) (replayed)",
                                   timeoutMilliseconds: configuration.callTimeout, installed: false) { w, id in
                    w.beginFrame(.add, id: id)
                    add.encode(into: &w)
                    w.endFrame()
                }
            }
        } catch {
            // A replayed add failed: this host is not the space the caller had. Do not leave it running.
            discard(host, error)
            // Only a replay makes this a restart; a first start or a daemon connection fails as itself.
            if adds.isEmpty { throw error }
            throw SpaceError(error.code, "the space could not be restarted: \(error.message)", errno: error.errno)
        }
        return host
    }

    /// Kills a host that never joined the pool (or was stopped while starting).
    func discard(_ host: HostProcess, _ error: SpaceError) {
        host.channel.close(with: error)
        host.kill()
        host.channel.stopThread()
    }

    // MARK: Sending with a deadline

    /// Sends one request to `host` and waits for the reply; past `timeoutMilliseconds` (0: none)
    /// the host is killed and the request fails with `timedOut`.
    func send(_ host: HostProcess, worker: Int, what: @autoclosure () -> String, timeoutMilliseconds: Int,
              installed: Bool = true, subscription: CallbackSubscription? = nil,
              _ encode: (inout WireWriter, UInt32) -> Void) async throws(SpaceError) -> Value {
        let id = host.channel.nextID()
        guard timeoutMilliseconds > 0 else {
            return try await host.channel.request(id: id, subscription: subscription, encode)
        }
        if host.isConnection {
            // The daemon enforces it, on the host that runs the call.
            return try await host.channel.request(id: id, subscription: subscription) { w, id in
                encode(&w, id)
                w.wrapLastFrameWithTimeout(milliseconds: UInt32(clamping: timeoutMilliseconds))
            }
        }
        let name = what()
        let deadline = monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        let token = Monitor.shared.schedule(at: deadline) { [weak self, weak host] in
            guard let self, let host else { return }
            self.timedOut(host, worker: worker, id: id, name, timeoutMilliseconds, installed: installed)
        }
        defer { Monitor.shared.cancel(token) }
        return try await host.channel.request(id: id, subscription: subscription, encode)
    }

    /// Request `id` on `host` is past its deadline: fail it, take the host out of the pool and kill
    /// it; its other calls fail with `interrupted`. On the monitor thread: the kill's wait runs in a task.
    private func timedOut(_ host: HostProcess, worker: Int, id: UInt32, _ name: String, _ ms: Int, installed: Bool) {
        let error = SpaceError(.timedOut, "\(name) did not return within \(ms) ms; its host (pid \(host.pid)) was killed, since native code cannot be cancelled, and the next call starts a new one")
        guard host.channel.isPending(id) else { return }  // answered in time
        // Out of the pool before the caller hears of it, so a retry never leases this host.
        var index = worker
        var slot: Int?
        if installed {
            slot = state.withLock { s -> Int? in
                guard let i = s.workers.firstIndex(where: { $0.host === host }) else { return nil }
                s.workers[i].host = nil
                return i
            }
            index = slot ?? worker
        }
        guard host.channel.fail(id, with: error) else {
            // The reply won the race after all: the host is fine, put it back (or, if its slot was
            // refilled meanwhile, stop it rather than leave a process nobody owns).
            if let slot {
                let back = state.withLock { s -> Bool in
                    guard s.workers[slot].host == nil else { return false }
                    s.workers[slot].host = host
                    return true
                }
                if !back { Task.detached { [self] in await stop([(slot, host)], kind: .stopped, detail: "replaced") } }
            }
            return
        }
        if slot != nil { state.withLock { $0.lastStop = error } }
        emit(SpaceEvent(.timedOut, worker: index, pid: host.pid, error: error, detail: name))
        host.channel.close(with: SpaceError(.interrupted, "the space's host (pid \(host.pid)) was killed because \(name) ran past its \(ms) ms deadline while this request was in flight on it; retry it"))
        Task.detached {
            host.kill()
            host.channel.stopThread()
        }
    }

    // MARK: Calls

    /// Sends a call of wire values and returns the host's answer; `subscription` receives its
    /// callbacks (handlers and a stream, or relaying for the daemon: ``CallbackSubscription/init(forward:)``).
    /// `timeout` in ms overrides `callTimeout`.
    package func relay(_ package: String, _ function: String, _ arguments: [Value],
                       subscription: CallbackSubscription?, timeout: Int? = nil) async throws(SpaceError) -> Value {
        var admitted = false
        if let admission {
            do throws(SpaceError) {
                admitted = try await admission.enter("\(package) \(function)", arguments)
            } catch {
                recorder.rejected()
                subscription?.finish(throwing: error)
                throw error
            }
        }
        defer { if admitted { admission?.leave() } }
        let host: HostProcess
        do throws(SpaceError) { host = try await lease() } catch {
            recorder.failed(error)
            subscription?.finish(throwing: error)
            throw error
        }
        recorder.inFlight.add(1, ordering: .relaxed)
        let started = monotonicNanoseconds()
        lastActivity.store(started, ordering: .relaxed)
        defer {
            host.load.subtract(1, ordering: .releasing)
            recorder.inFlight.subtract(1, ordering: .relaxed)
        }
        do throws(SpaceError) {
            let value = try await send(host, worker: 0, what: "\(package) \(function)",
                                       timeoutMilliseconds: timeout ?? configuration.callTimeout,
                                       subscription: subscription) { w, id in
                w.writeCall(id: id, package: package, function: function, arguments: arguments)
            }
            let ended = monotonicNanoseconds()
            lastActivity.store(ended, ordering: .relaxed)
            recorder.succeeded(nanoseconds: ended - started)
            return value
        } catch {
            resetInactivity()
            recorder.failed(error)
            throw error
        }
    }

    // MARK: Deaths

    /// The channel of `host` closed: a crash, a kill, the end of a stop, or a broken protocol.
    /// A host that is still running behind a closed channel (it broke the protocol, or a plugin
    /// closed fd 3) can never be talked to again: it is killed, not left behind.
    func hostClosed(_ host: HostProcess, _ error: SpaceError) {
        let worker: Int? = state.withLock { s in
            guard let i = s.workers.firstIndex(where: { $0.host === host }) else { return nil }
            s.workers[i].host = nil
            s.lastStop = error
            return i
        }
        host.kill()
        host.channel.stopThread()
        guard let worker, !host.isConnection else { return }
        died(worker: worker, pid: host.pid, startedAt: host.startedAt, error)
    }

    /// Counts a death toward the restart intensity; past `allowedSequentialDeaths` the space is dead.
    func died(worker: Int, pid: Int32?, startedAt: UInt64, _ error: SpaceError) {
        recorder.crashed()
        let control = configuration.control
        let lived = monotonicNanoseconds() &- startedAt
        let (deadNow, restart): (SpaceError?, Bool) = state.withLock { s in
            guard case .active = s.mode else { return (nil, false) }
            if lived < UInt64(control.exitThreshold) * 1_000_000 {
                s.sequentialDeaths += 1
            } else {
                s.sequentialDeaths = 0
            }
            if s.sequentialDeaths > control.allowedSequentialDeaths {
                let dead = SpaceError(.dead, "the space is dead: its hosts died \(s.sequentialDeaths) times in a row, each within \(control.exitThreshold) ms of starting (control.allowedSequentialDeaths is \(control.allowedSequentialDeaths)); it is not restarted until it is reloaded (space reload, Space.reload()). Last death: \(error.message)")
                s.mode = .dead(dead)
                return (dead, false)
            }
            // Other workers still serve calls: bring this one back now rather than on a later call.
            let others = s.workers.contains { $0.host != nil }
            let restart = others && !s.restarting
            if restart { s.restarting = true }
            return (nil, restart)
        }
        emit(SpaceEvent(.crashed, worker: worker, pid: pid, error: error))
        if let deadNow {
            emit(SpaceEvent(.dead, worker: worker, pid: pid, error: deadNow))
            let hosts = takeAll(deadNow) { _ in }
            for (_, h) in hosts { discard(h, deadNow) }
        } else if restart {
            Task { [weak self] in
                guard let self else { return }
                try? await self.startMissing()
                self.state.withLock { $0.restarting = false }
            }
        }
    }

    // MARK: Inactivity

    /// Stops the hosts after `inactivityTimeout` ms without a call.
    func startWatchdog() {
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
        let reason = SpaceError(.notRunning, "the space was stopped after \(configuration.inactivityTimeout) ms without a call")
        let hosts = takeAll(reason, if: { s in
            let running = s.workers.compactMap(\.host)
            return !running.isEmpty && s.starting.isEmpty && !gate.isLocked &&
                running.allSatisfy { $0.channel.outstanding == 0 && $0.load.load(ordering: .relaxed) == 0 }
        }) { _ in }
        await stop(hosts, kind: .idleStopped, detail: "idle for \(configuration.inactivityTimeout) ms")
    }
}

// MARK: The host's own counters

extension Space {
    /// The first running host's `space.stats` (callbacks, handles), without starting a host and
    /// without counting as a call; nil while none runs.
    package func hostCounters() async -> Value? { await askRunningHost("stats") }

    /// What the first running host says of its sandbox (`space.sandbox`): `layers` in force, a
    /// `notes` line for each layer asked for and missing (why), and `setupNs`, how long applying
    /// them took. Nil while no host runs (none is started for this).
    public func sandboxReport() async -> Value? { await askRunningHost("sandbox") }

    /// Calls one of the host's own functions on the first running host, if any.
    private func askRunningHost(_ function: String) async -> Value? {
        let host: HostProcess? = state.withLock { s in
            guard let h = s.workers.lazy.compactMap(\.host).first else { return nil }
            h.load.add(1, ordering: .relaxed)
            return h
        }
        guard let host else { return nil }
        defer { host.load.subtract(1, ordering: .releasing) }
        return try? await host.channel.request { w, id in
            w.writeCall(id: id, package: "space", function: function, arguments: [])
        }
    }
}

// MARK: Daemon requests

extension Space {
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
        let host = try await lease()
        defer { host.load.subtract(1, ordering: .releasing) }
        return try await host.channel.request(subscription: subscription) { w, id in
            w.beginFrame(.control, id: id)
            ControlRequest(operation, arguments).encode(into: &w)
            w.endFrame()
        }
    }
}

/// "1.93" for 1,930,000 ns.
func formatMilliseconds(_ ns: UInt64) -> String {
    let hundredths = (ns + 5_000) / 10_000
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
}
