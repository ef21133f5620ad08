import CSpaceSystem
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The client end of one host's socket: sends requests, matches replies to callers by id.
///
/// The latency budget is the raw socket round trip, and waking a sleeping thread costs about as much
/// as the round trip itself on these machines, so the common call must neither hand off to another
/// thread nor sleep. Reading is a *role*, held by at most one thread at a time:
/// - A caller that finds the role free after queueing its request takes it and reads the socket on
///   its own thread until its reply arrives (the uncontended call: no handoff). Replies for others
///   that it reads on the way are handed to them.
/// - The role holder *polls* (non-blocking reads, yielding the CPU in between) for a short while
///   before it sleeps in `poll(2)`; a reply that lands meanwhile costs no wake-up at all.
/// - While it polls, it also sends what other callers queued: a busy channel sends many requests
///   per system call instead of one each. Its sends never block (a full socket is retried while it
///   keeps reading), so the one thread that drains replies can never be stuck behind them.
/// - When its own reply is in and replies are still owed to others, or when its reply takes longer
///   than a couple of milliseconds, a caller hands the role to the channel's reader thread and
///   suspends like everyone else; so a slow plugin never pins a cooperative thread for long.
/// - The reader thread reads while replies are owed, then gives the role back. While idle it waits
///   on the host's pidfd too, so a host that dies between calls is noticed at once.
///
/// A caller that finds no polling reader sends its own frame (blocking on a full socket is safe for
/// it: it does not hold the read role while it sends).
final class Channel: @unchecked Sendable {
    /// The socket (non-blocking). Owned: closed in `deinit`.
    let fd: Int32
    /// The host's pidfd, watched by the reader thread while it is idle (-1 if none). Owned.
    let pidfd: Int32
    /// Wakes the reader thread.
    private let wakeFD: Int32
    /// Owned by whoever holds the read role.
    private let input: FrameInput
    private let ids = Atomic<UInt32>(1)
    /// Mirrors of `State.outstanding` and `State.outbox.count`, written under the lock and read
    /// without it by the polling reader, which would otherwise contend with every caller.
    private let owed = Atomic<Int>(0)
    private let queuedBytes = Atomic<Int>(0)
    /// Set once by ``close(with:)``: the polling loop stops at once instead of waiting out a timeout.
    private let isClosed = Atomic<Bool>(false)
    private let state = Mutex(State())
    /// Called once, on the reader thread, when the channel closes.
    private let onClose: @Sendable (SpaceError) -> Void
    /// Builds the error for callers when the peer hangs up (e.g. naming the signal that killed it).
    private let closeReason: @Sendable () -> SpaceError

    private enum Waiter {
        /// Registered; the reply has not arrived and nobody has suspended for it yet.
        case pending
        /// A suspended caller.
        case suspended(UnsafeContinuation<Result<Value, SpaceError>, Never>)
        /// The reply arrived before its caller suspended.
        case finished(Result<Value, SpaceError>)
    }

    private struct State {
        var waiters: [UInt32: Waiter] = [:]
        /// Calls whose callbacks may still fire, by call id.
        var subscriptions: [UInt32: CallbackSubscription] = [:]
        /// Replies owed by the host.
        var outstanding = 0
        /// Someone holds the read role.
        var readerBusy = false
        /// The role holder is polling and will send whatever is queued in `outbox`.
        var readerPolling = false
        /// The role was handed to the reader thread.
        var threadReads = false
        /// Frames queued for sending, in order.
        var outbox: [UInt8] = []
        /// Someone is sending; frames queued meanwhile are theirs to send.
        var flushing = false
        var closed: SpaceError?
        var stopThread = false
    }

    /// How long the role holder polls after the last thing it read before it sleeps.
    static let pollNanoseconds: UInt64 = 20_000
    /// How long a caller waits for its reply on its own thread before handing the role over.
    static let callerWaitMilliseconds: Int32 = 2

    /// Takes ownership of `fd` and `pidfd` (also when it throws).
    init(fd: Int32, pidfd: Int32, limits: WireLimits,
         closeReason: @escaping @Sendable () -> SpaceError,
         onClose: @escaping @Sendable (SpaceError) -> Void) throws(SpaceError) {
        let efd = cs_eventfd()
        guard efd >= 0 else {
            let e = errno
            Glibc.close(fd)
            if pidfd >= 0 { Glibc.close(pidfd) }
            throw SpaceError(.systemError, "eventfd failed", errno: e)
        }
        self.fd = fd
        self.pidfd = pidfd
        self.wakeFD = efd
        self.input = FrameInput(limits: limits)
        self.closeReason = closeReason
        self.onClose = onClose
        _ = cs_set_nonblocking(fd, 1)
    }

    /// The reader thread keeps the channel alive until it has stopped, so nothing closes an fd
    /// it is still polling.
    deinit {
        Glibc.close(wakeFD)
        Glibc.close(fd)
        if pidfd >= 0 { Glibc.close(pidfd) }
    }

    /// Starts the reader thread. Call once, after the hello was read.
    func startReaderThread() throws(SpaceError) {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let channel = Unmanaged<Channel>.fromOpaque(arg!).takeRetainedValue()
            channel.readerThreadMain()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw SpaceError(.systemError, "could not start the channel reader thread", errno: rc)
        }
        pthread_detach(tid)
    }

    /// Reads the host's hello synchronously (before any request is sent).
    func readHello(timeoutMilliseconds: Int) throws(SpaceError) -> Hello {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var remaining = timeoutMilliseconds
        while true {
            if let frame = try input.next() {
                if frame.kind == .error {
                    // A peer that refuses us says why (the daemon: another user's connection).
                    var r = WireReader(frame.payload, limits: input.limits)
                    throw try r.readError()
                }
                guard frame.kind == .hello else {
                    throw SpaceError(.protocolError, "expected a hello frame from the host, got \(frame.kind)")
                }
                var r = WireReader(frame.payload, limits: input.limits)
                return try Hello.decode(&r)
            }
            let started = monotonicNanoseconds()
            let rc = poll(&pfd, 1, Int32(max(remaining, 0)))
            if rc == 0 {
                throw SpaceError(.timedOut, "the host did not say hello within \(timeoutMilliseconds) ms (control.forkTimeout)")
            }
            if rc < 0 && errno != EINTR { throw SpaceError(.systemError, "poll failed", errno: errno) }
            if rc > 0 {
                let n = try input.fill(from: fd)
                if n == 0 { throw closeReason() }
            }
            remaining -= Int((monotonicNanoseconds() - started) / 1_000_000)
            if remaining <= 0 && input.buffered == 0 {
                throw SpaceError(.timedOut, "the host did not say hello within \(timeoutMilliseconds) ms (control.forkTimeout)")
            }
        }
    }

    /// Replies owed by the host right now, plus calls whose callbacks may still fire.
    var outstanding: Int { state.withLock { $0.outstanding + $0.subscriptions.count } }

    // MARK: Requests

    /// Sends one request built by `encode` and waits for its reply. `subscription` receives the
    /// call's callback invocations, from before the request is sent until the host releases them.
    func request(subscription: CallbackSubscription? = nil,
                 _ encode: (inout WireWriter, UInt32) -> Void) async throws(SpaceError) -> Value {
        try await request(id: nextID(), subscription: subscription, encode)
    }

    /// A fresh request id (never 0: the hello's and fatal errors' id).
    func nextID() -> UInt32 {
        var id = ids.wrappingAdd(1, ordering: .relaxed).oldValue
        if id == 0 { id = ids.wrappingAdd(1, ordering: .relaxed).oldValue }
        return id
    }

    /// ``request(subscription:_:)`` with an id from ``nextID()`` (known before the request is sent,
    /// e.g. to arm its deadline).
    func request(id: UInt32, subscription: CallbackSubscription? = nil,
                 _ encode: (inout WireWriter, UInt32) -> Void) async throws(SpaceError) -> Value {
        var writer = WireWriter(capacity: 128)
        encode(&writer, id)
        if writer.bytes.count - 4 > input.limits.maxFrameSize {
            throw SpaceError(.tooLarge, "request of \(writer.bytes.count - 4) bytes exceeds the frame limit of \(input.limits.maxFrameSize) (limits.maxFrameSize)")
        }

        // Register before sending (the reply may be read by someone else before send returns), and
        // queue the frame behind anything queued before it. A polling reader or a sender already at
        // work will send it; otherwise this caller sends the queue itself.
        enum Next { case closed(SpaceError), queued, send }
        let next: Next = state.withLock { s in
            if let c = s.closed { return .closed(c) }
            s.waiters[id] = .pending
            s.outstanding += 1
            if let subscription {
                subscription.id = id
                subscription.channel = self
                s.subscriptions[id] = subscription
            }
            owed.store(s.outstanding + s.subscriptions.count, ordering: .relaxed)
            return enqueue(writer.bytes, &s) ? .send : .queued
        }
        switch next {
        case .closed(let c):
            subscription?.finish(throwing: c)
            throw c
        case .queued: break
        case .send:
            do throws(SpaceError) {
                try sendQueued()
            } catch {
                // The host hung up (EPIPE, ECONNRESET): fail everyone with the reason, e.g. the
                // signal that killed it, as a reader seeing EOF would.
                close(with: closeReason())
            }
        }

        if becomeReader(for: id) {
            readUntilReply(id)
            if let r = takeFinished(id) { return try r.get() }
        }
        // Unsafe, not checked: each waiter is resumed exactly once, under the state lock's bookkeeping.
        let result = await withUnsafeContinuation { (c: UnsafeContinuation<Result<Value, SpaceError>, Never>) in
            let ready: Result<Value, SpaceError>? = state.withLock { s in
                if case .finished(let r) = s.waiters[id] {
                    s.waiters[id] = nil
                    return r
                }
                s.waiters[id] = .suspended(c)
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
        return try result.get()
    }

    /// Sends the queue until it is empty; the caller set `flushing`. Blocks on a full socket, which
    /// is safe: the sender does not hold the read role.
    private func sendQueued() throws(SpaceError) {
        var failure: SpaceError?
        while true {
            let batch: [UInt8]? = state.withLock { s in
                if s.outbox.isEmpty {
                    s.flushing = false
                    return nil
                }
                let b = s.outbox
                s.outbox.removeAll(keepingCapacity: true)
                queuedBytes.store(0, ordering: .relaxed)
                return b
            }
            guard let batch else { break }
            if failure == nil {
                do throws(SpaceError) { try writeAll(fd, batch) } catch { failure = error }
            }
        }
        if let failure {
            // The host is gone or the socket broke; the reader will see EOF and fail everyone.
            throw SpaceError(.crashed, "could not send to the host: \(failure.message)", errno: failure.errno)
        }
    }

    /// Sends what is queued without blocking; what the socket cannot take now stays queued.
    /// Only the role holder calls it. Returns true while bytes remain queued.
    @discardableResult
    private func flushQueued() -> Bool {
        if queuedBytes.load(ordering: .relaxed) == 0 { return false }
        var batch: [UInt8] = state.withLock { s in
            if s.flushing || s.outbox.isEmpty { return [] }
            s.flushing = true
            let b = s.outbox
            s.outbox.removeAll(keepingCapacity: true)
            queuedBytes.store(0, ordering: .relaxed)
            return b
        }
        guard !batch.isEmpty else { return state.withLock { !$0.outbox.isEmpty } }
        var sent = 0
        var broken = false
        batch.withUnsafeBytes { raw in
            while sent < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                if n > 0 { sent += n; continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
                broken = true
                break
            }
        }
        let remaining: Bool = state.withLock { s in
            if sent < batch.count && !broken {
                batch.removeFirst(sent)
                batch.append(contentsOf: s.outbox)
                s.outbox = batch
                queuedBytes.store(s.outbox.count, ordering: .relaxed)
            }
            s.flushing = false
            return !s.outbox.isEmpty
        }
        if broken {
            // Those frames are lost: fail every caller now rather than let them wait for replies
            // to requests the host never got.
            close(with: closeReason())
        }
        return remaining && !broken
    }

    /// Takes the read role if nobody holds it, `id`'s reply is still owed, and it is the only reply
    /// owed. When others are owed too, the channel is busy: the role goes to the reader thread, so the
    /// cooperative threads only run callers and one thread does the I/O for all of them.
    private func becomeReader(for id: UInt32) -> Bool {
        let (mine, wake): (Bool, Bool) = state.withLock { s in
            if s.readerBusy || s.closed != nil { return (false, false) }
            if case .finished = s.waiters[id] { return (false, false) }
            s.readerBusy = true
            s.readerPolling = true
            if s.outstanding > 1 {
                s.threadReads = true
                return (false, true)
            }
            return (true, false)
        }
        if wake { wakeThread() }
        return mine
    }

    /// Removes and returns `id`'s reply if it has arrived.
    private func takeFinished(_ id: UInt32) -> Result<Value, SpaceError>? {
        state.withLock { s in
            guard case .finished(let r) = s.waiters[id] else { return nil }
            s.waiters[id] = nil
            return r
        }
    }

    /// The caller's read loop: read until `id`'s reply is in, then give the role back or hand it on.
    private func readUntilReply(_ id: UInt32) {
        switch pump(until: id, waitMilliseconds: Self.callerWaitMilliseconds) {
        case .done:
            releaseRole()
        case .waitedTooLong:
            // Our reply is slow: let the reader thread wait for it, and suspend.
            state.withLock { s in
                s.threadReads = true
                s.readerPolling = true
            }
            wakeThread()
        case .closed:
            return
        }
    }

    private enum PumpOutcome { case done, waitedTooLong, closed }

    /// Reads (and sends what others queue) until `id`'s reply is in — or, for the reader thread
    /// (`id` nil), until no reply is owed. Polls for `pollNanoseconds` after the last activity, then
    /// sleeps in poll(2), at most `waitMilliseconds` (-1: no limit) at a time.
    private func pump(until id: UInt32?, waitMilliseconds: Int32) -> PumpOutcome {
        var idleSince = monotonicNanoseconds()
        // Only the role holder delivers replies, so it learns of its own from readOnce, lock-free.
        var mine = false
        if let id, isFinished(id) { return .done }
        while true {
            if isClosed.load(ordering: .relaxed) { return .closed }
            let pendingSend = flushQueued()
            switch readOnce(watching: id ?? 0, found: &mine) {
            case .closed:
                return .closed
            case .frames:
                idleSince = monotonicNanoseconds()
            case .wouldBlock:
                break
            }
            if id != nil {
                if mine { return .done }
            } else if owed.load(ordering: .relaxed) == 0 && queuedBytes.load(ordering: .relaxed) == 0 {
                return .done
            }
            if monotonicNanoseconds() &- idleSince < Self.pollNanoseconds {
                sched_yield()
                continue
            }
            // Quiet for a while: sleep until the socket is readable (or writable, if we still
            // have bytes to send). Senders send for themselves while we sleep.
            let stillQueued: Bool = state.withLock { s in
                s.readerPolling = false
                return pendingSend || !s.outbox.isEmpty || s.flushing
            }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (stillQueued ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, id == nil ? 2 : 1, waitMilliseconds)
            state.withLock { $0.readerPolling = true }
            if id == nil && fds[1].revents != 0 {
                var v: UInt64 = 0
                _ = read(wakeFD, &v, 8)
                if state.withLock({ $0.stopThread || $0.closed != nil }) { return .closed }
            }
            if rc == 0 && id != nil {
                return .waitedTooLong
            }
            idleSince = monotonicNanoseconds()
        }
    }

    private func isFinished(_ id: UInt32) -> Bool {
        state.withLock { s in
            if case .finished = s.waiters[id] { return true }
            return false
        }
    }

    private enum ReadOutcome { case frames, wouldBlock, closed }

    /// One non-blocking read from the socket and delivery of every complete frame. Only the role
    /// holder calls it.
    private func readOnce() -> ReadOutcome {
        var ignored = false
        return readOnce(watching: 0, found: &ignored)
    }

    /// `readOnce`, also setting `found` when the reply for `watching` (non-zero) was among those read.
    private func readOnce(watching: UInt32, found: inout Bool) -> ReadOutcome {
        do throws(SpaceError) {
            let n: Int
            do throws(SpaceError) {
                n = try input.fill(from: fd)
            } catch {
                // ECONNRESET and friends: the host is gone; say why, as for a clean EOF.
                n = 0
            }
            if n == 0 {
                close(with: closeReason())
                return .closed
            }
            if n < 0 { return .wouldBlock }
            var replies: [(UInt32, Result<Value, SpaceError>)] = []
            var answered = false
            // Replies read before a broken frame still reach their callers; answers to callbacks
            // go out at once (a plugin thread is waiting for them).
            defer {
                deliver(replies)
                if answered { flushQueued() }
            }
            while let frame = try input.next() {
                if frame.id == watching && watching != 0 { found = true }
                var r = WireReader(frame.payload, limits: input.limits)
                switch frame.kind {
                case .result:
                    let v: Result<Value, SpaceError>
                    do throws(SpaceError) { v = .success(try r.readValue()) } catch { v = .failure(error) }
                    replies.append((frame.id, v))
                case .error:
                    do throws(SpaceError) { replies.append((frame.id, .failure(try r.readError()))) } catch { replies.append((frame.id, .failure(error))) }
                case .callbackEvent:
                    let event = try CallbackEvent.decode(&r)
                    let subscription = state.withLock { $0.subscriptions[frame.id] }
                    // No subscription (cancelled, or the call already failed): the zero value.
                    let answer = subscription == nil ? .null : subscription!.deliver(event)
                    if event.reply != 0, let answer { answered = true; queueAnswer(event.reply, answer) }
                case .callbackRelease:
                    _ = try r.readU64()
                    let subscription: CallbackSubscription? = state.withLock { s in
                        let sub = s.subscriptions.removeValue(forKey: frame.id)
                        owed.store(s.outstanding + s.subscriptions.count, ordering: .relaxed)
                        return sub
                    }
                    subscription?.finish(throwing: nil)
                case .callbackFault:
                    let fault = try CallbackFault.decode(&r)
                    let subscription = state.withLock { $0.subscriptions[frame.id] }
                    subscription?.fault(fault)
                default:
                    throw SpaceError(.protocolError, "unexpected \(frame.kind) frame from the host")
                }
            }
            return .frames
        } catch {
            close(with: SpaceError(.protocolError, "the host broke the protocol: \(error.message)"))
            return .closed
        }
    }

    private func deliver(_ replies: [(UInt32, Result<Value, SpaceError>)]) {
        guard !replies.isEmpty else { return }
        var resumes: [(UnsafeContinuation<Result<Value, SpaceError>, Never>, Result<Value, SpaceError>)] = []
        var ended: [(CallbackSubscription, SpaceError)] = []
        state.withLock { s in
            for (id, r) in replies {
                if case .failure(let e) = r, let sub = s.subscriptions.removeValue(forKey: id) {
                    // A failed call's callbacks are over (the host revoked them).
                    ended.append((sub, e))
                }
                switch s.waiters[id] {
                case .pending:
                    s.waiters[id] = .finished(r)
                    s.outstanding -= 1
                case .suspended(let c):
                    s.waiters[id] = nil
                    s.outstanding -= 1
                    resumes.append((c, r))
                case .finished, nil:
                    break  // a reply for a request already failed locally: drop it
                }
            }
            owed.store(s.outstanding + s.subscriptions.count, ordering: .relaxed)
        }
        for (sub, e) in ended { sub.finish(throwing: e) }
        for (c, r) in resumes { c.resume(returning: r) }
    }

    /// Gives the role back; hands it to the reader thread when replies are still owed or frames
    /// are still queued.
    private func releaseRole() {
        let wake: Bool = state.withLock { s in
            if (s.outstanding > 0 || !s.subscriptions.isEmpty || !s.outbox.isEmpty) && s.closed == nil {
                s.threadReads = true
                return true
            }
            s.readerBusy = false
            s.readerPolling = false
            return false
        }
        if wake { wakeThread() }
    }

    private func wakeThread() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Queues the answer to a returning callback; the role holder sends it right after reading.
    private func queueAnswer(_ token: UInt32, _ value: Value) {
        var w = WireWriter(capacity: 16 + value.encodedSize)
        w.beginFrame(.callbackReturn, id: token)
        w.writeValue(value)
        w.endFrame()
        // The role holder flushes right after reading, so this never sends by itself.
        state.withLock { s in _ = enqueue(w.bytes, &s, sendsLater: true) }
    }

    /// Sends the answer to a returning callback from outside the read loop (a relayed answer).
    func sendAnswer(_ token: UInt32, _ value: Value) {
        var w = WireWriter(capacity: 16 + value.encodedSize)
        w.beginFrame(.callbackReturn, id: token)
        w.writeValue(value)
        w.endFrame()
        let send: Bool = state.withLock { s in
            guard s.closed == nil else { return false }
            return enqueue(w.bytes, &s)
        }
        if send {
            do throws(SpaceError) { try sendQueued() } catch { close(with: closeReason()) }
        }
    }

    /// Queues `bytes` behind everything queued before (lock held). Returns true when the caller
    /// must send the queue itself (`flushing` is then set for it): nobody polling or sending will.
    private func enqueue(_ bytes: [UInt8], _ s: inout State, sendsLater: Bool = false) -> Bool {
        s.outbox.append(contentsOf: bytes)
        queuedBytes.store(s.outbox.count, ordering: .relaxed)
        if sendsLater || s.readerPolling || s.flushing { return false }
        s.flushing = true
        return true
    }

    /// Asks the host to stop relaying call `id`'s callbacks. Their stream ends when the host
    /// confirms with a release (or at once, when nothing was live any more).
    func cancelCallbacks(_ id: UInt32) {
        var w = WireWriter(capacity: 16)
        w.beginFrame(.callbackCancel, id: id)
        w.endFrame()
        let send: Bool = state.withLock { s in
            guard s.closed == nil, s.subscriptions[id] != nil else { return false }
            return enqueue(w.bytes, &s)
        }
        if send {
            do throws(SpaceError) { try sendQueued() } catch { close(with: closeReason()) }
        }
    }

    // MARK: Reader thread

    private func readerThreadMain() {
        while true {
            let shouldRead: Bool? = state.withLock { s in
                if s.stopThread || s.closed != nil { return nil }
                return s.threadReads
            }
            guard let shouldRead else { return }
            if shouldRead {
                // Holding the role: read while replies are owed.
                switch pump(until: nil, waitMilliseconds: -1) {
                case .closed:
                    if state.withLock({ $0.closed != nil || $0.stopThread }) { return }
                case .done, .waitedTooLong:
                    let released: Bool = state.withLock { s in
                        guard s.outstanding == 0 && s.subscriptions.isEmpty && s.outbox.isEmpty else { return false }
                        s.readerBusy = false
                        s.readerPolling = false
                        s.threadReads = false
                        return true
                    }
                    _ = released
                }
                continue
            }
            // Idle: wait for the role, or for the host to die.
            var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, pidfd >= 0 ? 2 : 1, -1)
            if rc < 0 { continue }
            if fds[0].revents != 0 {
                var v: UInt64 = 0
                _ = read(wakeFD, &v, 8)
            }
            if pidfd >= 0 && fds[1].revents != 0 {
                // The host exited. Drain what it wrote before dying, then close.
                let claimed: Bool = state.withLock { s in
                    if s.readerBusy { return false }
                    s.readerBusy = true
                    return true
                }
                if claimed {
                    while case .frames = readOnce() {}
                    close(with: closeReason())
                    return
                }
                // A caller is reading; it will see EOF. Let it, then look again.
                usleep(1_000)
            }
        }
    }

    // MARK: Closing

    /// Fails every waiter with `error`, once; later requests fail with it too.
    func close(with error: SpaceError) {
        var resumes: [UnsafeContinuation<Result<Value, SpaceError>, Never>] = []
        var subscriptions: [CallbackSubscription] = []
        let first: Bool = state.withLock { s in
            guard s.closed == nil else { return false }
            s.closed = error
            subscriptions = Array(s.subscriptions.values)
            s.subscriptions.removeAll()
            for (id, w) in s.waiters {
                switch w {
                case .pending: s.waiters[id] = .finished(.failure(error))
                case .suspended(let c):
                    resumes.append(c)
                    s.waiters[id] = nil
                case .finished: break
                }
            }
            s.outstanding = 0
            owed.store(0, ordering: .relaxed)
            s.readerBusy = false
            return true
        }
        guard first else { return }
        isClosed.store(true, ordering: .relaxed)
        // The owner first (the space takes the host out of its pool and counts the death), so a
        // caller that sees the error and calls again never gets this channel back.
        onClose(error)
        for sub in subscriptions { sub.finish(throwing: error) }
        for c in resumes { c.resume(returning: .failure(error)) }
        wakeThread()
    }

    /// True while request `id` waits for its reply.
    func isPending(_ id: UInt32) -> Bool {
        state.withLock { s in
            switch s.waiters[id] {
            case .pending, .suspended: return true
            case .finished, nil: return false
            }
        }
    }

    /// Fails request `id` with `error` now, if its reply has not arrived; a reply that comes later
    /// is dropped. Returns false when it had already finished.
    @discardableResult
    func fail(_ id: UInt32, with error: SpaceError) -> Bool {
        var resume: UnsafeContinuation<Result<Value, SpaceError>, Never>?
        var subscription: CallbackSubscription?
        let failed: Bool = state.withLock { s in
            switch s.waiters[id] {
            case .pending:
                s.waiters[id] = .finished(.failure(error))
            case .suspended(let c):
                s.waiters[id] = nil
                resume = c
            case .finished, nil:
                return false
            }
            s.outstanding -= 1
            subscription = s.subscriptions.removeValue(forKey: id)
            owed.store(s.outstanding + s.subscriptions.count, ordering: .relaxed)
            return true
        }
        subscription?.finish(throwing: error)
        resume?.resume(returning: .failure(error))
        return failed
    }

    /// Stops the reader thread (after ``close(with:)``).
    func stopThread() {
        state.withLock { $0.stopThread = true }
        wakeThread()
    }
}
