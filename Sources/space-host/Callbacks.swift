// The host's callbacks: every closure made for a `cb:` argument, from the call that made it until it
// is freed. Lifetimes (docs/callbacks.md):
// - live: invocations are relayed to the caller as callbackEvent frames, in order per slot;
// - revoked (the caller cancelled, or the call failed after the plugin got them): invocations return
//   the zero value and are counted; the memory stays, since the plugin may still hold the pointer;
// - freed: the plugin released it (space_callback_release), its call returned (SPACE_SCOPED), its
//   plugin was removed, or the space stops.
// A call's callbackRelease frame goes out when its last live closure goes; no event for the call
// follows it. All of this is guarded by the outbox lock, which is also what orders the frames.
import CSpaceSystem
import SpaceFFI
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

final class Callbacks: CallbackSink, CallbackFactory, @unchecked Sendable {
    let outbox: Outbox
    let inbound: Inbound
    let limits: WireLimits
    /// Most closures alive (live or revoked) at once.
    let maxCallbacks: Int

    private struct CallRecord {
        var closures: [CallbackClosure] = []
        var live = 0
        var dropped: UInt64 = 0
    }

    // Guarded by outbox.lock.
    private var byCode: [UInt: CallbackClosure] = [:]
    private var calls: [UInt32: CallRecord] = [:]
    private var nextToken: UInt32 = 1
    private(set) var made: UInt64 = 0
    private(set) var freed: UInt64 = 0
    private(set) var dropped: UInt64 = 0
    private(set) var events: UInt64 = 0
    private(set) var faults: UInt64 = 0
    /// Invocations of closures after they were freed (a plugin bug: a use after release).
    private(set) var late: UInt64 = 0
    /// Freed closures, kept allocated a while: a plugin that calls a callback after releasing it
    /// (a use-after-free in C terms) reaches a closure that returns the zero value and is counted,
    /// instead of a trampoline libffi may have handed to another callback. Oldest first.
    private var quarantine: [CallbackClosure] = []
    private var quarantineNext = 0
    static let quarantineSize = 1024

    // The call being marshaled; only the call thread touches these.
    private var current: UInt32 = 0
    private var fresh: [CallbackClosure] = []
    private var committed = false

    init(outbox: Outbox, inbound: Inbound, limits: WireLimits, maxCallbacks: Int) {
        self.outbox = outbox
        self.inbound = inbound
        self.limits = limits
        self.maxCallbacks = maxCallbacks
    }

    /// Closures alive (live or revoked). Guarded by outbox.lock.
    private var allocated = 0 {
        didSet { anyAllocated.store(allocated > 0, ordering: .relaxed) }
    }
    private let anyAllocated = Atomic<Bool>(false)

    /// Whether any closure is alive: a call may then wait for a callback's answer (lock-free).
    var holdsAny: Bool { anyAllocated.load(ordering: .relaxed) }

    // MARK: Making closures (call thread)

    /// Starts marshaling call `id`.
    func begin(_ id: UInt32) {
        current = id
        committed = false
    }

    func makeCallback(_ shape: CallbackShapeReference, slot: Int, scoped: Bool, owner: Int) throws(SpaceError) -> CallbackClosure {
        let total = outbox.lock.withLock { allocated } + fresh.count
        guard total < maxCallbacks else {
            throw SpaceError(.tooLarge, "the space holds \(total) callbacks already, its limit (maxCallbacks \(maxCallbacks)); let calls release theirs, cancel them, or raise the limit")
        }
        let c = try CallbackClosure(shape, call: current, slot: slot, owner: owner, scoped: scoped, sink: self)
        fresh.append(c)
        return c
    }

    func willCall() {
        guard !fresh.isEmpty else { return }
        outbox.lock.lock()
        var record = calls[current] ?? CallRecord()
        for c in fresh {
            byCode[UInt(bitPattern: c.code)] = c
            record.closures.append(c)
            record.live += 1
        }
        calls[current] = record
        allocated += fresh.count
        made += UInt64(fresh.count)
        outbox.lock.unlock()
        committed = true
    }

    /// The call finished (`failed`: with an error frame). Closures the plugin never got are freed;
    /// scoped ones are freed; after a failure the rest are revoked. Sends the call's release frame
    /// when nothing live is left.
    func end(_ id: UInt32, failed: Bool) {
        defer { current = 0 }
        guard !fresh.isEmpty else { return }
        let closures = fresh
        fresh.removeAll()
        outbox.lock.lock()
        if !committed {
            // The call failed before the plugin ran: nobody has these pointers. No release frame:
            // the call's error ends its callbacks for the caller.
            made += UInt64(closures.count)
            freed += UInt64(closures.count)
            outbox.lock.unlock()
            return
        }
        guard var record = calls[id] else {
            outbox.lock.unlock()
            return
        }
        let hadLive = record.live > 0
        for c in record.closures where c.state != 2 {
            if c.isScoped {
                if c.state == 0 { record.live -= 1 }
                free(c)
            } else if failed && c.state == 0 {
                c.state = 1
                record.live -= 1
            }
        }
        record.closures.removeAll { $0.state == 2 }
        finish(id, record, hadLive: hadLive)
        outbox.scheduleAndUnlock()
    }

    // MARK: Releasing (any thread)

    /// `space_callback_release(fn)` from a plugin.
    func release(code: UnsafeRawPointer) {
        outbox.lock.lock()
        guard let c = byCode[UInt(bitPattern: code)], var record = calls[c.call] else {
            outbox.lock.unlock()
            return  // not ours, or released already
        }
        let hadLive = record.live > 0
        if c.state == 0 { record.live -= 1 }
        free(c)
        record.closures.removeAll { $0 === c }
        finish(c.call, record, hadLive: hadLive)
        outbox.scheduleAndUnlock()
    }

    /// The caller cancelled call `id`'s callbacks: revoke the live ones.
    func cancel(_ id: UInt32) {
        outbox.lock.lock()
        guard var record = calls[id] else {
            outbox.lock.unlock()
            return
        }
        let hadLive = record.live > 0
        for c in record.closures where c.state == 0 { c.state = 1 }
        record.live = 0
        finish(id, record, hadLive: hadLive)
        outbox.scheduleAndUnlock()
    }

    /// Frees every closure given to plugin `owner` (it is being removed, or the space stops).
    func releaseAll(owner: Int) {
        outbox.lock.lock()
        for (id, var record) in calls {
            guard record.closures.contains(where: { $0.owner == owner }) else { continue }
            let hadLive = record.live > 0
            for c in record.closures where c.owner == owner {
                if c.state == 0 { record.live -= 1 }
                free(c)
            }
            record.closures.removeAll { $0.owner == owner }
            finish(id, record, hadLive: hadLive)
        }
        outbox.lock.unlock()
        outbox.flushNow()
    }

    /// Lock held.
    private func free(_ c: CallbackClosure) {
        c.state = 2
        byCode[UInt(bitPattern: c.code)] = nil
        if quarantine.count < Self.quarantineSize {
            quarantine.append(c)
        } else {
            quarantine[quarantineNext] = c  // the oldest goes: its closure is freed now
            quarantineNext = (quarantineNext + 1) % Self.quarantineSize
        }
        allocated -= 1
        freed += 1
    }

    /// Stores `record`, dropping it once empty; sends the release frame when the last live closure
    /// went. Lock held.
    private func finish(_ id: UInt32, _ record: CallRecord, hadLive: Bool) {
        if hadLive && record.live == 0 { appendRelease(id, dropped: record.dropped) }
        calls[id] = record.closures.isEmpty ? nil : record
    }

    private func appendRelease(_ id: UInt32, dropped: UInt64) {
        outbox.pending.beginFrame(.callbackRelease, id: id)
        outbox.pending.write(dropped)
        outbox.pending.endFrame()
    }

    // MARK: Invocations (plugin threads)

    func invoke(_ closure: CallbackClosure, result: UnsafeMutableRawPointer?,
                arguments: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        if let result { closure.storeZero(result) }
        outbox.lock.lock()
        guard closure.state == 0 else {
            if closure.state == 2 {
                late += 1
                if late <= 10 {
                    writeStandardError("space-host: callback \(closure.slot) of call \(closure.call) was invoked after it was released (space_callback_release); the plugin got the zero value\n")
                }
            }
            dropped += 1
            if var record = calls[closure.call] {
                record.dropped += 1
                calls[closure.call] = record
            }
            outbox.lock.unlock()
            return
        }
        let sequence = closure.sequence
        closure.sequence += 1
        var token: UInt32 = 0
        if result != nil {
            token = nextToken
            nextToken = nextToken == UInt32.max ? 1 : nextToken + 1
        }
        events += 1
        outbox.pending.beginFrame(.callbackEvent, id: closure.call)
        outbox.pending.write(UInt16(truncatingIfNeeded: closure.slot))
        outbox.pending.write(sequence)
        outbox.pending.write(token)
        var failure: SpaceError?
        do throws(SpaceError) {
            try closure.encodeArguments(arguments, limit: limits.maxFrameSize, into: &outbox.pending)
            if outbox.pending.currentFrameSize > limits.maxFrameSize {
                throw SpaceError(.tooLarge, "the invocation takes \(outbox.pending.currentFrameSize) bytes, over the frame limit of \(limits.maxFrameSize)")
            }
        } catch {
            failure = error
        }
        if let failure {
            outbox.pending.abandonFrame()
            appendFault(closure, sequence, "invocation \(sequence) of callback \(closure.slot) could not be relayed: \(failure.message); the plugin got the zero value")
            outbox.scheduleAndUnlock()
            return
        }
        outbox.pending.endFrame()
        guard let result else {
            outbox.scheduleAndUnlock()
            return
        }
        // A returning callback: wait for the answer, registered before the event can be read.
        let waiter = inbound.register(token)
        outbox.lock.unlock()
        // (The call thread holds no finished replies here: a call that may wait for an answer is
        // preceded by a flush.)
        outbox.flushNow()
        let answer = inbound.wait(for: token, waiter)
        do throws(SpaceError) {
            try closure.storeReturn(answer, into: result)
        } catch {
            outbox.lock.lock()
            appendFault(closure, sequence, error.message)
            outbox.scheduleAndUnlock()
        }
    }

    /// Lock held.
    private func appendFault(_ c: CallbackClosure, _ sequence: UInt64, _ message: String) {
        faults += 1
        outbox.pending.beginFrame(.callbackFault, id: c.call)
        CallbackFault(slot: c.slot, sequence: sequence, message: message).encode(into: &outbox.pending)
        outbox.pending.endFrame()
    }

    /// Counters for `space.stats`.
    var stats: Value {
        outbox.lock.withLock {
            let revoked = byCode.values.count { $0.state == 1 }
            return [
                "live": .int(Int64(allocated - revoked)), "revoked": .int(Int64(revoked)),
                "made": .int(Int64(made)), "freed": .int(Int64(freed)), "events": .int(Int64(events)),
                "dropped": .int(Int64(dropped)), "faults": .int(Int64(faults)), "max": .int(Int64(maxCallbacks)),
                "afterRelease": .int(Int64(late)),
            ]
        }
    }
}

/// The host's callback registry, for `space_host_callback_release` (set once at start).
nonisolated(unsafe) var hostCallbacks: Callbacks?

/// `space_callback_release(fn)` in space_plugin.h calls this (the host exports its symbols).
@_cdecl("space_host_callback_release")
public func space_host_callback_release(_ fn: UnsafeRawPointer?) {
    guard let fn, let callbacks = hostCallbacks else { return }
    callbacks.release(code: fn)
}
