import CSpaceSystem
import Space
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One client of the daemon: its socket, the frames it has sent but not finished reading, what is
/// queued for it, and the callbacks relayed to it.
///
/// Reading happens on the daemon's loop thread only. Writing happens from any thread: a reply from
/// a call's task, an event from a host channel's reader. A write first tries the socket directly;
/// what it cannot take waits in `outbox` and the loop thread finishes it when the socket is
/// writable, so no thread ever blocks on a slow client.
final class Connection: @unchecked Sendable {
    /// The socket. Closed under `state`'s lock, so no writer uses a recycled descriptor.
    let fd: Int32
    /// Its tag in the loop's epoll set.
    let tag: UInt64
    /// The peer's process id, for the log.
    let peerPID: pid_t
    /// Owned by the loop thread.
    let input: FrameInput
    private let epoll: Int32
    private let state = Mutex(State())
    /// Called once, after the connection closed (the server forgets it).
    private let onClose: @Sendable (Connection) -> Void
    /// Bytes queued beyond which the client is cut off: it sends requests but does not read replies.
    static let maxQueuedBytes = 64 << 20

    struct State {
        var outbox: [UInt8] = []
        var closed = false
        /// EPOLLOUT is armed.
        var wantsWrite = false
        /// The space this client's add/call/remove/ping requests go to.
        var space = "default"
        /// Calls whose callbacks are relayed to this client, by the client's call id.
        var subscriptions: [UInt32: CallbackSubscription] = [:]
        /// Returning invocations waiting for this client's answer, by reply token.
        var tokens: [UInt32: CallbackSubscription] = [:]
        /// Event streams (`events --follow`) by the client's request id.
        var followers: Set<UInt32> = []
    }

    init(fd: Int32, tag: UInt64, peerPID: pid_t, epoll: Int32, limits: WireLimits,
         onClose: @escaping @Sendable (Connection) -> Void) {
        self.onClose = onClose
        self.fd = fd
        self.tag = tag
        self.peerPID = peerPID
        self.epoll = epoll
        self.input = FrameInput(capacity: 16 << 10, limits: limits)
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// The space this client talks to.
    var space: String {
        get { state.withLock { $0.space } }
        set { state.withLock { $0.space = newValue } }
    }

    // MARK: Writing

    /// Sends `bytes` (whole frames) now, or queues what the socket cannot take. Drops them when
    /// the connection is closed; cuts the client off when too much is queued.
    func send(_ bytes: [UInt8]) {
        var overflow = false
        var broken = false
        state.withLock { s in
            guard !s.closed else { return }
            if s.outbox.isEmpty {
                let sent = trySend(bytes, from: 0)
                if sent < 0 {
                    broken = closeLocked(&s)
                    return
                }
                if sent == bytes.count { return }
                s.outbox.append(contentsOf: bytes[sent...])
            } else {
                s.outbox.append(contentsOf: bytes)
            }
            if s.outbox.count > Self.maxQueuedBytes {
                overflow = true
                broken = closeLocked(&s)
                return
            }
            if !s.wantsWrite {
                s.wantsWrite = true
                _ = cs_epoll_mod(epoll, fd, CS_EPOLLIN | CS_EPOLLOUT, tag)
            }
        }
        if overflow {
            writeStandardError("space daemon: client pid \(peerPID) does not read its replies (over \(Self.maxQueuedBytes >> 20) MiB queued); disconnected\n")
        }
        if broken { cleanUp() }
    }

    /// The socket is writable: sends what is queued. Loop thread.
    func flush() {
        var broken = false
        defer { if broken { cleanUp() } }
        state.withLock { s in
            guard !s.closed else { return }
            if !s.outbox.isEmpty {
                let sent = trySend(s.outbox, from: 0)
                if sent < 0 {
                    broken = closeLocked(&s)
                    return
                }
                s.outbox.removeFirst(sent)
            }
            if s.outbox.isEmpty && s.wantsWrite {
                s.wantsWrite = false
                _ = cs_epoll_mod(epoll, fd, CS_EPOLLIN, tag)
            }
        }
    }

    /// Non-blocking send; the number of bytes taken, or -1 when the socket is broken.
    private func trySend(_ bytes: [UInt8], from offset: Int) -> Int {
        var sent = offset
        bytes.withUnsafeBytes { raw in
            while sent < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                if n > 0 { sent += n; continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
                sent = -1
                return
            }
        }
        return sent < 0 ? -1 : sent - offset
    }

    func sendResult(_ id: UInt32, _ value: Value) {
        var w = WireWriter(capacity: 16 + value.encodedSize)
        w.beginFrame(.result, id: id)
        w.writeValue(value)
        w.endFrame()
        send(w.bytes)
    }

    func sendError(_ id: UInt32, _ error: SpaceError) {
        var w = WireWriter(capacity: 64 + error.message.utf8.count)
        w.beginFrame(.error, id: id)
        w.writeError(error)
        w.endFrame()
        send(w.bytes)
    }

    // MARK: Callbacks relayed to this client

    /// Registers a call's relaying subscription before the call goes out.
    func addSubscription(_ id: UInt32, _ subscription: CallbackSubscription) -> Bool {
        state.withLock { s in
            guard !s.closed else { return false }
            s.subscriptions[id] = subscription
            return true
        }
    }

    /// Passes on what the host relayed for the client's call `id`.
    func relay(_ id: UInt32, _ event: RelayedCallback, from subscription: CallbackSubscription) {
        var w = WireWriter(capacity: 64)
        switch event {
        case .event(let e):
            if e.reply != 0 {
                let open: Bool = state.withLock { s in
                    guard !s.closed else { return false }
                    s.tokens[e.reply] = subscription
                    return true
                }
                // Nobody will answer: the plugin thread must not wait forever.
                if !open { return subscription.answer(e.reply, .null) }
            }
            w.beginFrame(.callbackEvent, id: id)
            e.encode(into: &w)
            w.endFrame()
        case .fault(let f):
            w.beginFrame(.callbackFault, id: id)
            f.encode(into: &w)
            w.endFrame()
        case .released:
            state.withLock { _ = $0.subscriptions.removeValue(forKey: id) }
            w.beginFrame(.callbackRelease, id: id)
            w.write(UInt64(0))
            w.endFrame()
        case .ended(let error):
            // After the call's result, an error frame with its id ends the client's stream.
            state.withLock { _ = $0.subscriptions.removeValue(forKey: id) }
            w.beginFrame(.error, id: id)
            w.writeError(error)
            w.endFrame()
        }
        send(w.bytes)
    }

    /// The client answered a returning invocation.
    func answer(_ token: UInt32, _ value: Value) {
        let subscription = state.withLock { $0.tokens.removeValue(forKey: token) }
        subscription?.answer(token, value)
    }

    /// The client cancelled call `id`'s callbacks (or stopped following events).
    func cancel(_ id: UInt32) -> (subscription: CallbackSubscription?, follower: Bool) {
        state.withLock { s in
            (s.subscriptions[id], s.followers.remove(id) != nil)
        }
    }

    func addFollower(_ id: UInt32) {
        state.withLock { s in _ = s.followers.insert(id) }
    }

    func isFollowing(_ id: UInt32) -> Bool {
        state.withLock { $0.followers.contains(id) }
    }

    // MARK: Closing

    /// Closes the socket (once), answers every invocation still waiting for this client with the
    /// zero value and cancels its calls' callbacks. Returns false when it was closed already.
    @discardableResult
    func close() -> Bool {
        let first: Bool = state.withLock { closeLocked(&$0) }
        if first { cleanUp() }
        return first
    }

    /// After the socket closed: nobody will answer or read for this client any more.
    private func cleanUp() {
        var tokens: [UInt32: CallbackSubscription] = [:]
        var subscriptions: [CallbackSubscription] = []
        state.withLock { s in
            tokens = s.tokens
            subscriptions = Array(s.subscriptions.values)
            s.tokens.removeAll()
            s.subscriptions.removeAll()
            s.followers.removeAll()
        }
        for (token, sub) in tokens { sub.answer(token, .null) }
        for sub in subscriptions { sub.cancel() }
        onClose(self)
    }

    /// Closes the socket; false when it was closed already.
    private func closeLocked(_ s: inout State) -> Bool {
        guard !s.closed else { return false }
        s.closed = true
        s.outbox = []
        // Leaving the epoll set before the close keeps a recycled fd number out of it.
        _ = cs_epoll_del(epoll, fd)
        Glibc.close(fd)
        return true
    }
}
