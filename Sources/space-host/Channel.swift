// The host's two directions of its channel, shared by the thread that runs calls and by plugin
// threads that invoke callbacks:
// - `Outbox`: every frame the host writes, in order, one writer at a time.
// - `Inbound`: the read side as a role (leader/follower): whichever thread needs a frame and finds
//   the role free reads; a callback answer goes to the thread waiting for it, everything else to the
//   thread that runs calls. No thread hands a frame to another unless it has to.
import CSpaceSystem
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with its condition variables (heap-allocated, so their addresses never move).
final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// A condition variable used with this lock.
    final class Condition: @unchecked Sendable {
        private let cond: UnsafeMutablePointer<pthread_cond_t>
        init() {
            cond = .allocate(capacity: 1)
            pthread_cond_init(cond, nil)
        }
        deinit {
            pthread_cond_destroy(cond)
            cond.deallocate()
        }
        /// Waits; the lock must be held.
        func wait(_ lock: Lock) { pthread_cond_wait(cond, lock.mutex) }
        func signal() { pthread_cond_signal(cond) }
        func broadcast() { pthread_cond_broadcast(cond) }
    }
}

/// Every frame the host sends. Frames are appended under the lock; one thread at a time writes
/// ("the flusher"), taking everything appended so far, so frames never interleave on the socket and
/// a sender never waits for more than the write in progress.
///
/// Replies are flushed by the call thread at the end of each batch of requests (as before callbacks
/// existed). Callback events that expect no answer are flushed by a writer thread, started on first
/// use, so a plugin thread firing events in a loop pays for encoding, not for a system call each; a
/// producer that gets more than `backlogLimit` ahead of the socket writes for itself (backpressure).
final class Outbox: @unchecked Sendable {
    let fd: Int32
    let lock = Lock()
    /// Frames appended and not yet taken by a flusher. Only touched under `lock`.
    var pending = WireWriter(capacity: 64 << 10)
    private var spare = WireWriter(capacity: 64 << 10)
    private var flushing = false
    private var flusherWaiters = 0
    private let flushed = Lock.Condition()
    private var writerStarted = false
    private var writerAsleep = false
    private var writerWanted = false
    private let writerWake = Lock.Condition()

    /// Whether frames wait to be sent.
    var hasPending: Bool { lock.withLock { !pending.bytes.isEmpty } }

    /// Queued bytes past which a producer flushes itself instead of leaving it to the writer thread.
    static let backlogLimit = 1 << 20

    init(fd: Int32) { self.fd = fd }

    /// Writes everything appended so far, then `extra` (frames the caller built on its own), and
    /// returns once they are on the socket. Waits for a write in progress first, so frames appended
    /// before this call never come after `extra`.
    func flushNow(extra: UnsafeRawBufferPointer? = nil) {
        lock.lock()
        while flushing {
            flusherWaiters += 1
            flushed.wait(lock)
            flusherWaiters -= 1
        }
        flushing = true
        var rounds = 0
        while true {
            swap(&pending, &spare)
            lock.unlock()
            if !spare.bytes.isEmpty { write(spare.bytes) }
            if rounds == 0, let extra, extra.count > 0 { write(extra) }
            lock.lock()
            spare.removeAll()
            rounds += 1
            // Others keep appending while we write; take a few more rounds, then let the writer
            // thread have the rest so this thread gets back to its own work.
            if pending.bytes.isEmpty || rounds >= 4 { break }
        }
        flushing = false
        if !pending.bytes.isEmpty { wakeWriterLocked() }
        if flusherWaiters > 0 { flushed.broadcast() }
        lock.unlock()
    }

    /// After appending under the lock: have the frames sent soon, without this thread writing them
    /// (unless the backlog is too large). Call with `lock` held; returns with it released.
    func scheduleAndUnlock() {
        if pending.bytes.count > Self.backlogLimit {
            lock.unlock()
            flushNow()
            return
        }
        wakeWriterLocked()
        lock.unlock()
    }

    private func wakeWriterLocked() {
        writerWanted = true
        // A flusher at work takes another round, or wakes the writer when it finishes.
        if flushing { return }
        if !writerStarted {
            writerStarted = true
            startWriter()
        } else if writerAsleep {
            writerWake.signal()
        }
    }

    private func startWriter() {
        var tid = pthread_t()
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&tid, nil, { arg in
            let outbox = Unmanaged<Outbox>.fromOpaque(arg!).takeRetainedValue()
            outbox.writerMain()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            writeStandardError("space-host: could not start the writer thread (error \(rc))\n")
            exit(3)
        }
        pthread_detach(tid)
    }

    private func writerMain() {
        lock.lock()
        while true {
            while !writerWanted {
                writerAsleep = true
                writerWake.wait(lock)
                writerAsleep = false
            }
            writerWanted = false
            if flushing || pending.bytes.isEmpty { continue }
            lock.unlock()
            flushNow()
            lock.lock()
        }
    }

    private func write(_ bytes: [UInt8]) {
        do {
            try writeAll(fd, bytes)
        } catch {
            exit(0)  // the client is gone
        }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) {
        do {
            try writeAll(fd, bytes)
        } catch {
            exit(0)
        }
    }
}

/// A frame copied out of the input buffer, for the call thread to handle later.
struct OwnedFrame {
    var kind: MessageKind
    var id: UInt32
    var payload: [UInt8]
}

/// The read side of the channel, as a role held by one thread at a time.
///
/// The call thread holds it while it reads requests, and lets go of it while it runs one. A thread
/// waiting for a callback's answer reads for itself when the role is free (no handoff: the answer
/// usually is the next frame), and otherwise sleeps until the reader passes the answer over. Frames
/// a callback thread reads that are not answers are queued, in order, for the call thread.
final class Inbound: @unchecked Sendable {
    let fd: Int32
    /// The channel's bytes; only the role holder touches it.
    let input: FrameInput
    let lock = Lock()
    /// Only touched under `lock`.
    private var roleHeld = false
    private var queued: [OwnedFrame] = []
    private var waiters: [UInt32: Waiter] = [:]
    /// Set while the call thread sleeps for the role or for queued frames.
    private var callThreadWaiting = false
    private let callThreadWake = Lock.Condition()
    /// True while queued frames wait for the call thread (read without the lock).
    let hasQueued = Atomic<Bool>(false)

    /// One thread waiting for a callback's answer.
    final class Waiter {
        let wake = Lock.Condition()
        var answer: Value?
        var answered = false
    }

    init(fd: Int32, limits: WireLimits) {
        self.fd = fd
        self.input = FrameInput(limits: limits)
    }

    // MARK: The call thread

    /// Takes the frames other threads read for the call thread.
    func takeQueued() -> [OwnedFrame] {
        lock.lock()
        defer { lock.unlock() }
        guard !queued.isEmpty else { return [] }
        let q = queued
        queued.removeAll()
        hasQueued.store(false, ordering: .relaxed)
        return q
    }

    /// Takes the role for the call thread. Returns false, without it, when frames were queued
    /// meanwhile (handle those first); sleeps while another thread reads.
    func acquireForCallThread() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while true {
            if !queued.isEmpty { return false }
            if !roleHeld {
                roleHeld = true
                return true
            }
            callThreadWaiting = true
            callThreadWake.wait(lock)
            callThreadWaiting = false
        }
    }

    /// Lets go of the role; a thread waiting for an answer that has not come may take it.
    func release() {
        lock.lock()
        roleHeld = false
        wakeOneReaderLocked()
        lock.unlock()
    }

    private func wakeOneReaderLocked() {
        // Someone who still needs frames must read: a callback waiter without its answer first
        // (it cannot make progress otherwise), else the call thread.
        for (_, w) in waiters where !w.answered {
            w.wake.signal()
            return
        }
        if callThreadWaiting { callThreadWake.signal() }
    }

    /// Hands a callback answer read by the call thread to the thread waiting for it.
    func deliverAnswer(_ frame: Frame) {
        var r = WireReader(frame.payload, limits: input.limits)
        let value: Value
        do throws(SpaceError) {
            value = try r.readValue()
            try r.expectEnd("callbackReturn")
        } catch {
            fatal("bad callbackReturn frame: \(error)")
        }
        lock.lock()
        if let w = waiters[frame.id] {
            w.answer = value
            w.answered = true
            w.wake.signal()
        }
        lock.unlock()
    }

    // MARK: Callback threads

    /// Registers a wait for the answer with `token`, before the event is sent.
    func register(_ token: UInt32) -> Waiter {
        let w = Waiter()
        lock.lock()
        waiters[token] = w
        lock.unlock()
        return w
    }

    /// Waits for the answer to `token`, reading the channel while nobody else does.
    func wait(for token: UInt32, _ w: Waiter) -> Value {
        lock.lock()
        while !w.answered {
            if roleHeld {
                w.wake.wait(lock)
                continue
            }
            roleHeld = true
            lock.unlock()
            readUntilAnswered(w)
            lock.lock()
            roleHeld = false
            if !w.answered { continue }
            // Someone else may still be waiting on the channel.
            waiters[token] = nil
            wakeOneReaderLocked()
            lock.unlock()
            return w.answer ?? .null
        }
        waiters[token] = nil
        lock.unlock()
        return w.answer ?? .null
    }

    /// Reads (holding the role) until `w` is answered, routing everything else.
    private func readUntilAnswered(_ w: Waiter) {
        while true {
            let n: Int
            do {
                n = try input.fill(from: fd, spinNanoseconds: 20_000)
            } catch {
                fatal("reading the channel: \(error)")
            }
            if n == 0 { exit(0) }  // the client is gone
            if n < 0 { continue }
            do throws(SpaceError) {
                while let frame = try input.next() {
                    if frame.kind == .callbackReturn {
                        deliverAnswer(frame)
                    } else {
                        let owned = OwnedFrame(kind: frame.kind, id: frame.id, payload: Array(frame.payload))
                        lock.lock()
                        queued.append(owned)
                        hasQueued.store(true, ordering: .relaxed)
                        if callThreadWaiting { callThreadWake.signal() }
                        lock.unlock()
                    }
                }
            } catch {
                fatal("bad frame from the client: \(error)")
            }
            lock.lock()
            let done = w.answered
            lock.unlock()
            if done { return }
        }
    }
}

/// Ends the host after a broken channel.
func fatal(_ message: String) -> Never {
    writeStandardError("space-host: \(message)\n")
    exit(3)
}
