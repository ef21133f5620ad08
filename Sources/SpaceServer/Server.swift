import CSpaceSystem
import Space
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension SpaceError.Code {
    /// Another daemon holds the runtime directory's lock.
    public static let alreadyRunning = SpaceError.Code(rawValue: "alreadyRunning")
}

/// The daemon: named spaces served to this user's processes over a unix socket.
///
/// - The runtime directory is 0700 and the socket 0600; on top of that every connection's peer uid
///   (SO_PEERCRED) must be the daemon's own, or it gets a `permissionDenied` error frame and is closed.
/// - One daemon per runtime directory: it holds `daemon.lock` (flock) for its whole life. A second
///   one started meanwhile exits (`alreadyRunning`) as soon as the first answers; the lock holder
///   replaces a socket file left by a daemon that died.
/// - Clients speak the host protocol (docs/protocol.md) plus `control` frames. One thread runs an
///   epoll loop over every client socket; each request runs as a task against its `Space`, whose
///   replies (and relayed callbacks) are written back from whichever thread has them.
/// - SIGTERM, SIGINT, SIGHUP or a `shutdown` request stop it gracefully: every space's host gets a
///   shutdown (SIGKILL after `control.stopTimeout`), then the socket is removed.
public final class DaemonServer: @unchecked Sendable {
    /// The configuration every space is created with.
    public let configuration: SpaceConfiguration
    /// The configuration file read, if any (reported by `info`).
    public let configPath: String?
    /// Where the socket, lock and log live.
    public let runtimeDirectory: String
    var socketPath: String { runtimeDirectory + "/daemon.sock" }

    private let started = wallClockMilliseconds()
    private let startedMonotonic = monotonicNanoseconds()
    private var epoll: Int32 = -1
    private var listenFD: Int32 = -1
    private var signalPipe: (read: Int32, write: Int32) = (-1, -1)
    private var wakeFD: Int32 = -1
    private var lockFD: Int32 = -1
    private let stopping = Atomic<Bool>(false)
    private let shutdownSignal = Mutex<(requested: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    private let spaces = Mutex<[String: ManagedSpace]>([:])
    private let connections = Mutex<[UInt64: Connection]>([:])
    private let events = EventLog()
    /// Loop thread only.
    private var nextTag: UInt64 = 16
    private var idleSince = monotonicNanoseconds()

    private static let listenTag: UInt64 = 1
    private static let signalTag: UInt64 = 2
    private static let wakeTag: UInt64 = 3

    /// Creates a server; nothing happens until ``run()``.
    public init(configuration: SpaceConfiguration, configPath: String?, runtimeDirectory: String = SpaceDaemon.runtimeDirectory) {
        self.configuration = configuration
        self.configPath = configPath
        self.runtimeDirectory = runtimeDirectory
    }

    // MARK: Running

    /// Takes the lock, listens, serves until asked to stop, then stops every space and removes the
    /// socket. `ready` runs once the socket accepts connections.
    ///
    /// - Throws: ``SpaceError/Code/alreadyRunning`` when another daemon serves this runtime
    ///   directory; ``SpaceError/Code/systemError`` when the socket cannot be set up.
    public func run(ready: @Sendable () -> Void = {}) async throws(SpaceError) {
        try SpaceDaemon.makeRuntimeDirectory(runtimeDirectory)
        _ = cs_raise_open_file_limit()
        try takeLock()
        defer { Glibc.close(lockFD) }
        try listen()
        try startLoop()
        events.append(space: nil, "daemonStarted", ["pid": .int(Int64(getpid())), "socket": .string(socketPath)])
        ready()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = shutdownSignal.withLock { s in
                if s.requested { return true }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }
        await shutDown()
    }

    /// Asks the daemon to stop (as SIGTERM does).
    public func requestShutdown() {
        let waiter: CheckedContinuation<Void, Never>? = shutdownSignal.withLock { s in
            guard !s.requested else { return nil }
            s.requested = true
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    private func takeLock() throws(SpaceError) {
        let path = runtimeDirectory + "/daemon.lock"
        lockFD = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw SpaceError(.systemError, "could not open \(path)", errno: errno) }
        // Held by a daemon that is starting (it will answer soon: we are not needed) or stopping
        // (it lets go soon: we take over). Wait for whichever comes first.
        let deadline = monotonicNanoseconds() + UInt64(max(configuration.control.forkTimeout, 1)) * 1_000_000
        while flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw SpaceError(.systemError, "could not lock \(path)", errno: errno)
            }
            if SpaceDaemon.isRunning(in: runtimeDirectory) || monotonicNanoseconds() > deadline {
                Glibc.close(lockFD)
                var pid = ""
                if let text = readSmallFile(path) { pid = " (pid \(text))" }
                throw SpaceError(.alreadyRunning, "a space daemon is already running for \(runtimeDirectory)\(pid)")
            }
            usleep(5_000)
        }
        let text = "\(getpid())\n"
        _ = ftruncate(lockFD, 0)
        _ = text.withCString { pwrite(lockFD, $0, strlen($0), 0) }
    }

    private func listen() throws(SpaceError) {
        // We hold the lock: a socket file here was left by a daemon that died.
        unlink(socketPath)
        let old = umask(0o077)
        listenFD = cs_unix_listen(socketPath, 1024)
        let e = errno
        umask(old)
        guard listenFD >= 0 else {
            throw SpaceError(.systemError, "could not listen on \(socketPath)", errno: e)
        }
        _ = chmod(socketPath, 0o600)
        _ = cs_set_nonblocking(listenFD, 1)
    }

    private func startLoop() throws(SpaceError) {
        epoll = cs_epoll_create()
        guard epoll >= 0 else { throw SpaceError(.systemError, "epoll_create1 failed", errno: errno) }
        var p: [Int32] = [-1, -1]
        guard cs_pipe(&p) == 0 else { throw SpaceError(.systemError, "pipe2 failed", errno: errno) }
        signalPipe = (p[0], p[1])
        wakeFD = cs_eventfd()
        for sig in [SIGTERM, SIGINT, SIGHUP] { _ = cs_signal_to_pipe(sig, signalPipe.write) }
        signal(SIGPIPE, SIG_IGN)
        let input = CS_EPOLLIN
        _ = cs_epoll_add(epoll, listenFD, input, Self.listenTag)
        _ = cs_epoll_add(epoll, signalPipe.read, input, Self.signalTag)
        _ = cs_epoll_add(epoll, wakeFD, input, Self.wakeTag)

        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let server = Unmanaged<DaemonServer>.fromOpaque(arg!).takeRetainedValue()
            server.loop()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw SpaceError(.systemError, "could not start the daemon's loop thread", errno: rc)
        }
        pthread_detach(tid)
    }

    /// The event loop: accepts, reads and dispatches, finishes writes, notices signals and idleness.
    private func loop() {
        var kinds = [UInt32](repeating: 0, count: 64)
        var tags = [UInt64](repeating: 0, count: 64)
        while !stopping.load(ordering: .relaxed) {
            let n = cs_epoll_wait(epoll, &kinds, &tags, 64, 1_000)
            if n < 0 && errno != EINTR { break }
            for i in 0..<Int(max(n, 0)) {
                switch tags[i] {
                case Self.listenTag: accept()
                case Self.signalTag:
                    var b: UInt8 = 0
                    while read(signalPipe.read, &b, 1) == 1 {
                        events.append(space: nil, "signal", ["signal": .int(Int64(b))])
                        requestShutdown()
                    }
                case Self.wakeTag:
                    var v: UInt64 = 0
                    _ = read(wakeFD, &v, 8)
                default:
                    guard let c = connections.withLock({ $0[tags[i]] }) else { continue }
                    let k = kinds[i]
                    if k & CS_EPOLLOUT != 0 { c.flush() }
                    if k & (CS_EPOLLIN | CS_EPOLLHUP | CS_EPOLLERR) != 0 { readFrom(c) }
                }
            }
            checkIdle()
        }
    }

    private func accept() {
        while true {
            let fd = cs_accept(listenFD)
            if fd < 0 {
                if errno == EINTR { continue }
                return  // EAGAIN, or out of fds (the client sees its connection fail)
            }
            var uid: uid_t = 0
            var pid: pid_t = 0
            let me = geteuid()
            if cs_peer_credentials(fd, &uid, &pid) != 0 || uid != me {
                // Refuse with a reason the client can show; blocking for this one small write.
                let who = cs_peer_credentials(fd, &uid, &pid) == 0 ? "uid \(uid)" : "an unknown user"
                var w = WireWriter(capacity: 128)
                w.beginFrame(.error, id: 0)
                w.writeError(SpaceError(.permissionDenied, "the space daemon serves only uid \(me); refused \(who)"))
                w.endFrame()
                _ = w.bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                Glibc.close(fd)
                events.append(space: nil, "refused", ["uid": .int(Int64(uid)), "pid": .int(Int64(pid))])
                continue
            }
            let tag = nextTag
            nextTag += 1
            let c = Connection(fd: fd, tag: tag, peerPID: pid, epoll: epoll, limits: configuration.limits) { [weak self] c in
                self?.connections.withLock { _ = $0.removeValue(forKey: c.tag) }
            }
            connections.withLock { $0[tag] = c }
            _ = cs_epoll_add(epoll, fd, CS_EPOLLIN, tag)
            var w = WireWriter(capacity: 64)
            w.beginFrame(.hello, id: 0)
            Hello(pid: getpid(), maxFrameSize: UInt32(configuration.limits.maxFrameSize),
                  hostVersion: "space-daemon").encode(into: &w)
            w.endFrame()
            c.send(w.bytes)
        }
    }

    /// Reads what the client sent and dispatches every complete frame.
    private func readFrom(_ c: Connection) {
        do throws(SpaceError) {
            let n = try c.input.fill(from: c.fd)
            if n == 0 {
                c.close()
                return
            }
            if n < 0 { return }
            while let frame = try c.input.next() {
                try dispatch(c, frame)
            }
        } catch {
            // The client broke the protocol (or the socket broke): say why, then hang up.
            c.sendError(0, SpaceError(error.code == .tooLarge ? .tooLarge : .protocolError,
                                      "the daemon closed this connection: \(error.message)"))
            c.close()
        }
    }

    /// Decodes one request (its payload is only valid until the next frame) and starts it.
    private func dispatch(_ c: Connection, _ frame: Frame) throws(SpaceError) {
        var r = WireReader(frame.payload, limits: configuration.limits)
        try dispatch(c, frame.kind, frame.id, &r, timeout: nil)
    }

    /// Starts one request; `timeout` (ms) came with a ``MessageKind/deadline`` frame around it.
    private func dispatch(_ c: Connection, _ kind: MessageKind, _ id: UInt32, _ r: inout WireReader,
                          timeout: Int?) throws(SpaceError) {
        switch kind {
        case .deadline where timeout == nil:
            let ms = Int(try r.readU32())
            let inner = MessageKind(rawValue: try r.readU8())
            guard inner == .call || inner == .add else {
                throw SpaceError(.protocolError, "a deadline frame may wrap a call or an add, not \(inner)")
            }
            try dispatch(c, inner, id, &r, timeout: ms)
        case .call:
            let package = try r.readString()
            let function = try r.readString()
            let count = try r.readArgumentCount()
            var arguments: [Value] = []
            arguments.reserveCapacity(count)
            for _ in 0..<count { arguments.append(try r.readValue()) }
            try r.expectEnd("call")
            let name = c.space
            Task { await self.call(c, id, name, package, function, arguments, timeout: timeout) }
        case .add:
            let request = try AddRequest.decode(&r)
            let name = c.space
            Task { await self.add(c, id, name, request, timeout: timeout) }
        case .remove:
            let package = try r.readString()
            try r.expectEnd("remove")
            let name = c.space
            Task { await self.remove(c, id, name, package) }
        case .ping:
            try r.expectEnd("ping")
            let name = c.space
            Task {
                do throws(SpaceError) {
                    try await self.space(name).space.ping()
                    c.sendResult(id, .null)
                } catch {
                    c.sendError(id, error)
                }
            }
        case .callbackReturn:
            let value = try r.readValue()
            try r.expectEnd("callbackReturn")
            c.answer(id, value)
        case .callbackCancel:
            try r.expectEnd("callbackCancel")
            let (subscription, follower) = c.cancel(id)
            subscription?.cancel()
            if follower {
                var w = WireWriter(capacity: 24)
                w.beginFrame(.callbackRelease, id: id)
                w.write(UInt64(0))
                w.endFrame()
                c.send(w.bytes)
            }
        case .control:
            let request = try ControlRequest.decode(&r)
            if request.operation == "shutdown" {
                // Answer before anything closes: then stop.
                events.append(space: nil, "shutdownRequested", ["pid": .int(Int64(c.peerPID))])
                c.sendResult(id, info())
                return requestShutdown()
            }
            Task {
                do throws(SpaceError) {
                    c.sendResult(id, try await self.control(c, id, request))
                } catch {
                    c.sendError(id, error)
                }
            }
        default:
            throw SpaceError(.protocolError, "unexpected \(kind) frame from a client")
        }
    }

    // MARK: Requests

    /// The space named `name`; with `create`, made when missing.
    private func space(_ name: String, create: Bool = false) throws(SpaceError) -> ManagedSpace {
        let (space, made): (ManagedSpace?, Bool) = spaces.withLock { s in
            if let m = s[name] { return (m, false) }
            guard create else { return (nil, false) }
            let m = ManagedSpace(name: name, configuration: configuration)
            s[name] = m
            return (m, true)
        }
        guard let space else {
            let known = spaces.withLock { $0.keys.sorted() }
            throw SpaceError(.unknownSpace, "no space named '\(name)'" +
                             (known.isEmpty ? " (add a library first: space add LIB --space \(name))" : " (spaces: \(known.joined(separator: ", ")))"))
        }
        if made {
            events.append(space: name, "created", [:])
            space.space.observe { [weak self] event in self?.lifecycle(name, event) }
        }
        return space
    }

    private func lifecycle(_ name: String, _ event: SpaceEvent) {
        var details: [String: Value] = ["worker": .int(Int64(event.worker))]
        if let pid = event.pid { details["pid"] = .int(Int64(pid)) }
        if !event.detail.isEmpty { details["detail"] = .string(event.detail) }
        if let e = event.error {
            details["code"] = .string(e.code.rawValue)
            details["message"] = .string(e.message)
        }
        events.append(space: name, event.kind.rawValue, details)
    }

    private func call(_ c: Connection, _ id: UInt32, _ name: String, _ package: String, _ function: String,
                      _ arguments: [Value], timeout: Int?) async {
        let managed: ManagedSpace
        do throws(SpaceError) { managed = try space(name) } catch { return c.sendError(id, error) }
        var subscription: CallbackSubscription?
        if arguments.contains(where: { if case .callback = $0 { return true } else { return false } }) {
            let box = SubscriptionBox()
            let sub = CallbackSubscription(forward: { [weak c] event in
                guard let s = box.subscription else { return }
                guard let c else {
                    // The client is gone: nobody will answer, so the plugin gets the zero value now.
                    if case .event(let e) = event, e.reply != 0 { s.answer(e.reply, .null) }
                    return
                }
                c.relay(id, event, from: s)
            })
            box.subscription = sub
            guard c.addSubscription(id, sub) else { return }
            subscription = sub
        }
        do throws(SpaceError) {
            let result = try await managed.space.relay(package, function, arguments, subscription: subscription,
                                                       timeout: timeout)
            managed.touch()
            c.sendResult(id, result)
        } catch {
            managed.touch()
            c.sendError(id, error)
        }
    }

    private func add(_ c: Connection, _ id: UInt32, _ name: String, _ request: AddRequest, timeout: Int?) async {
        do throws(SpaceError) {
            let managed = try space(name, create: true)
            managed.touch()
            let info = try await managed.space.add(request.library, as: request.alias.isEmpty ? nil : request.alias,
                                                   declarations: request.declarations.isEmpty ? nil : request.declarations,
                                                   initArguments: request.initArguments,
                                                   timeout: timeout.map { .milliseconds($0) })
            managed.added(info)
            events.append(space: name, "added", ["package": info[field: "name"] ?? .null, "path": info[field: "path"] ?? .null])
            c.sendResult(id, info)
        } catch {
            c.sendError(id, error)
        }
    }

    private func remove(_ c: Connection, _ id: UInt32, _ name: String, _ package: String) async {
        do throws(SpaceError) {
            let managed = try space(name)
            try await managed.space.remove(package)
            managed.removed(package)
            events.append(space: name, "removed", ["package": .string(package)])
            c.sendResult(id, .null)
        } catch {
            c.sendError(id, error)
        }
    }

    /// A control request (docs/protocol.md, "The daemon").
    private func control(_ c: Connection, _ id: UInt32, _ request: ControlRequest) async throws(SpaceError) -> Value {
        let args = request.arguments
        func spaceArgument() throws(SpaceError) -> String {
            let name = args[field: "space"]?.string ?? c.space
            try SpaceDaemon.validateSpaceName(name)
            return name
        }
        switch request.operation {
        case "attach":
            let name = try spaceArgument()
            c.space = name
            let exists = spaces.withLock { $0[name] != nil }
            return .object([.init("space", .string(name)), .init("exists", .bool(exists))])
        case "ls":
            let all = spaces.withLock { Array($0.values) }.sorted { $0.name < $1.name }
            return .array(all.map { $0.summary() })
        case "status":
            let managed = try space(try spaceArgument())
            return managed.status(sandboxReport: await managed.space.sandboxReport())
        case "describe":
            guard let package = args[field: "package"]?.string, let function = args[field: "function"]?.string else {
                throw SpaceError(.badArgument, "describe needs {\"package\", \"function\"}")
            }
            return try space(try spaceArgument()).describe(package, function)
        case "stats":
            let managed = try space(try spaceArgument())
            let stats = managed.space.statistics
            guard case .object(var fields) = stats.value else { return stats.value }
            fields.insert(.init("space", .string(managed.name)), at: 0)
            fields.insert(.init("state", .string(managed.space.stateName)), at: 1)
            fields.append(.init("clients", .int(Int64(connections.withLock { $0.count }))))
            // The host's own counters, without starting a stopped host just to ask.
            fields.append(.init("host", await managed.space.hostCounters() ?? .null))
            return .object(fields)
        case "events":
            let name = args[field: "space"]?.string
            if let name { try SpaceDaemon.validateSpaceName(name) }
            let backlog = events.recent(space: name)
            if args[field: "follow"]?.bool == true {
                c.addFollower(id)
                events.follow(c, id, space: name)
            }
            return .array(backlog)
        case "kill":
            let managed = try space(try spaceArgument())
            let pid = managed.space.pid
            await managed.space.kill(force: args[field: "force"]?.bool ?? false)
            events.append(space: managed.name, "killed", ["pid": pid.map { .int(Int64($0)) } ?? .null])
            return .object([.init("space", .string(managed.name)), .init("pid", pid.map { .int(Int64($0)) } ?? .null)])
        case "reload":
            let managed = try space(try spaceArgument())
            try await managed.space.reload()
            return .object([.init("space", .string(managed.name)),
                            .init("pids", .array(managed.space.workerPIDs.map { $0.map { .int(Int64($0)) } ?? .null }))])
        case "info":
            return info()
        default:
            throw SpaceError(.badArgument, "unknown control operation '\(request.operation)'")
        }
    }

    private func info() -> Value {
        .object([
            .init("pid", .int(Int64(getpid()))),
            .init("socket", .string(socketPath)),
            .init("runtimeDirectory", .string(runtimeDirectory)),
            .init("config", configPath.map { .string($0) } ?? .null),
            .init("started", .string(isoTime(started))),
            .init("uptimeMs", .uint((monotonicNanoseconds() - startedMonotonic) / 1_000_000)),
            .init("spaces", .int(Int64(spaces.withLock { $0.count }))),
            .init("clients", .int(Int64(connections.withLock { $0.count }))),
            .init("idleTimeout", .int(Int64(configuration.daemonIdleTimeout))),
        ])
    }

    // MARK: Idle exit and shutdown

    /// Loop thread: exits after `daemon.idleTimeout` ms with no client and no running space.
    private func checkIdle() {
        let timeout = configuration.daemonIdleTimeout
        guard timeout > 0 else { return }
        let busy = connections.withLock { !$0.isEmpty } || spaces.withLock { $0.values.contains { !$0.space.isKilled } }
        let now = monotonicNanoseconds()
        if busy {
            idleSince = now
        } else if now - idleSince >= UInt64(timeout) * 1_000_000 {
            events.append(space: nil, "idleExit", ["idleMs": .int(Int64(timeout))])
            requestShutdown()
        }
    }

    private func shutDown() async {
        events.append(space: nil, "daemonStopping", [:])
        // No new clients: the socket goes first, so a CLI started now starts a new daemon, which
        // waits for our lock.
        unlink(socketPath)
        Glibc.close(listenFD)
        let all = spaces.withLock { Array($0.values) }
        await withTaskGroup(of: Void.self) { group in
            for m in all { group.addTask { await m.space.destroy() } }
        }
        events.endFollowers()
        stopping.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
        for c in connections.withLock({ Array($0.values) }) { c.close() }
    }
}

/// Lets a relaying subscription's forward function reach the subscription it belongs to (set once,
/// before the call goes out; weak, since the subscription owns the function).
private final class SubscriptionBox: @unchecked Sendable {
    weak var subscription: CallbackSubscription?
}

/// Reads a small text file (the lock's pid), trimmed.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 64)
    let n = read(fd, &buf, 64)
    guard n > 0 else { return nil }
    let text = String(decoding: buf[0..<n], as: UTF8.self).filter { !$0.isWhitespace }
    return text.isEmpty ? nil : text
}
