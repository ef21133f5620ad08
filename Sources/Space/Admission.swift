import SpaceWire
import Synchronization

/// The space's quotas (`limits.*`), checked before a call is sent: arguments' size, a token bucket
/// for calls per second, and a bound on calls in flight (with a bounded queue behind it).
final class Admission: Sendable {
    let quotas: SpaceConfiguration.Quotas
    private let bucket: Mutex<(tokens: Double, refilled: UInt64)>
    private let slots = Mutex(Slots())

    private struct Slots {
        var running = 0
        var waiters: [UnsafeContinuation<Void, Never>] = []
        var head = 0
        var waiting: Int { waiters.count - head }
    }

    init(_ quotas: SpaceConfiguration.Quotas) {
        self.quotas = quotas
        bucket = Mutex((Double(quotas.maxCallsPerSecond), monotonicNanoseconds()))
    }

    /// True when any quota is on (otherwise the call path skips admission entirely).
    var isActive: Bool {
        quotas.maxCallsPerSecond > 0 || quotas.maxArgumentBytes > 0 || quotas.maxInFlight > 0
    }

    /// Calls waiting for a slot now.
    var waiting: Int { slots.withLock { $0.waiting } }

    /// Checks size and rate, then waits for an in-flight slot. Balance with ``leave()`` when it
    /// returns true (a slot was taken).
    func enter(_ what: @autoclosure () -> String, _ arguments: [Value]) async throws(SpaceError) -> Bool {
        if quotas.maxArgumentBytes > 0 {
            var size = 0
            for a in arguments { size += a.encodedSize }
            if size > quotas.maxArgumentBytes {
                throw SpaceError(.tooLarge, "\(what()): arguments of \(size) bytes exceed limits.maxArgumentBytes (\(quotas.maxArgumentBytes))")
            }
        }
        if quotas.maxCallsPerSecond > 0 {
            let rate = Double(quotas.maxCallsPerSecond)
            let admitted = bucket.withLock { b -> Bool in
                let now = monotonicNanoseconds()
                b.tokens = min(rate, b.tokens + Double(now &- b.refilled) * rate / 1e9)
                b.refilled = now
                guard b.tokens >= 1 else { return false }
                b.tokens -= 1
                return true
            }
            if !admitted {
                throw SpaceError(.rateLimited, "\(what()): more than \(quotas.maxCallsPerSecond) calls per second (limits.maxCallsPerSecond)")
            }
        }
        guard quotas.maxInFlight > 0 else { return false }
        enum Next { case go, wait, full }
        let next: Next = slots.withLock { s in
            if s.running < quotas.maxInFlight && s.waiting == 0 {
                s.running += 1
                return .go
            }
            if quotas.maxQueued > 0 && s.waiting >= quotas.maxQueued { return .full }
            return .wait
        }
        switch next {
        case .go: return true
        case .full:
            throw SpaceError(.busy, "\(what()): \(quotas.maxInFlight) calls in flight and \(quotas.maxQueued) waiting (limits.maxInFlight, limits.maxQueued)")
        case .wait:
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let now: Bool = slots.withLock { s in
                    if s.running < quotas.maxInFlight && s.waiting == 0 {
                        s.running += 1
                        return true
                    }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
            return true
        }
    }

    /// Gives a slot back: to the longest waiter, if any.
    func leave() {
        let next: UnsafeContinuation<Void, Never>? = slots.withLock { s in
            if s.waiting > 0 {
                let c = s.waiters[s.head]
                s.head += 1
                if s.head > 64 && s.head * 2 > s.waiters.count {
                    s.waiters.removeFirst(s.head)
                    s.head = 0
                }
                return c  // the slot passes to it: `running` stays
            }
            s.running -= 1
            return nil
        }
        next?.resume()
    }
}

/// An async mutex, first come first served: adds, removes, starts and reloads of a space's hosts
/// take it, so a host never starts with a stale list of plugins. Calls never take it.
final class AsyncGate: Sendable {
    private let state = Mutex<(locked: Bool, waiters: [UnsafeContinuation<Void, Never>])>((false, []))

    var isLocked: Bool { state.withLock { $0.locked } }

    func withLock<R>(_ body: () async throws(SpaceError) -> R) async throws(SpaceError) -> R {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if state.withLock({ s -> Bool in
            if s.locked { return false }
            s.locked = true
            return true
        }) { return }
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if !s.locked {
                    s.locked = true
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    private func release() {
        let next: UnsafeContinuation<Void, Never>? = state.withLock { s in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst()  // ownership passes straight to it
        }
        next?.resume()
    }
}
