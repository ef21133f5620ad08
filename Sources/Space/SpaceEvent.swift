import SpaceWire
import Synchronization

/// Something that happened to a space's host processes: what `space events --follow` prints and
/// ``Space/events()`` streams.
public struct SpaceEvent: Sendable, Hashable, CustomStringConvertible {
    /// What happened; extensible, compare with the static members.
    public struct Kind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The kind's name.
        public let rawValue: String
        /// Creates a kind from its name.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The kind's name, as in `space events`.
        public var description: String { rawValue }

        /// A host process was started (it has not said hello or loaded the plugins yet).
        public static let spawned = Kind(rawValue: "spawned")
        /// A worker's first host said hello and loaded every plugin added so far.
        public static let ready = Kind(rawValue: "ready")
        /// A worker's host was started again (after an idle stop, a crash, a timeout or a kill) and
        /// replayed every add; it serves calls now.
        public static let respawned = Kind(rawValue: "respawned")
        /// The host was stopped after `inactivityTimeout` ms without a call.
        public static let idleStopped = Kind(rawValue: "idleStopped")
        /// The host was stopped on request (``Space/kill(force:)``, ``Space/destroy()``, a reload).
        public static let stopped = Kind(rawValue: "stopped")
        /// The host died: a signal, an exit, a broken protocol, or a failed start. ``error`` says how,
        /// with the last lines the plugin wrote to stderr.
        public static let crashed = Kind(rawValue: "crashed")
        /// A call ran past its deadline and its host was killed.
        public static let timedOut = Kind(rawValue: "timedOut")
        /// Too many sequential deaths: the space is no longer restarted (``SpaceError/Code/dead``).
        public static let dead = Kind(rawValue: "dead")
        /// A rolling reload finished: every worker runs a fresh host.
        public static let reloaded = Kind(rawValue: "reloaded")
    }

    /// What happened.
    public var kind: Kind
    /// Which worker of the pool (from 0).
    public var worker: Int
    /// The host process it happened to, when there is one.
    public var pid: Int32?
    /// Why, for crashes, timeouts, failed starts and `dead`.
    public var error: SpaceError?
    /// A short human-readable detail ("replayed 2 adds in 1.9 ms", "idle for 60000 ms").
    public var detail: String

    /// Creates an event.
    public init(_ kind: Kind, worker: Int = 0, pid: Int32? = nil, error: SpaceError? = nil, detail: String = "") {
        self.kind = kind
        self.worker = worker
        self.pid = pid
        self.error = error
        self.detail = detail
    }

    /// One line: kind, worker, pid, detail and error.
    public var description: String {
        var s = "\(kind) worker \(worker)"
        if let pid { s += " pid \(pid)" }
        if !detail.isEmpty { s += ": \(detail)" }
        if let error { s += " (\(error.code): \(error.message))" }
        return s
    }
}

/// Fans events out to observers and streams.
final class EventHub: Sendable {
    private let state = Mutex(State())

    private struct State {
        var observers: [@Sendable (SpaceEvent) -> Void] = []
        var streams: [Int: AsyncStream<SpaceEvent>.Continuation] = [:]
        var next = 0
    }

    func observe(_ observer: @escaping @Sendable (SpaceEvent) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    func stream(buffering: Int) -> AsyncStream<SpaceEvent> {
        let (stream, continuation) = AsyncStream<SpaceEvent>.makeStream(bufferingPolicy: .bufferingNewest(buffering))
        let key = state.withLock { s -> Int in
            s.next += 1
            s.streams[s.next] = continuation
            return s.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: key) }
        }
        return stream
    }

    func emit(_ event: SpaceEvent) {
        let (observers, streams) = state.withLock { ($0.observers, Array($0.streams.values)) }
        for o in observers { o(event) }
        for c in streams { c.yield(event) }
    }

    deinit {
        for c in state.withLock({ Array($0.streams.values) }) { c.finish() }
    }
}
