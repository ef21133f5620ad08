import CSpaceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One thread per process that watches what no call is waiting on: it drains every host's stderr
/// pipe into a bounded tail (so a plugin that floods its stderr never blocks, and a crash can quote
/// its last lines), and fires call deadlines.
///
/// One thread serves every space and every host: a deadline costs a heap entry, not a timer task
/// per call, and a host's output costs an epoll registration, not a thread.
final class Monitor: @unchecked Sendable {
    static let shared = Monitor()

    private let epoll: Int32
    /// Wakes the loop when an earlier deadline is scheduled.
    private let wakeFD: Int32
    private let state = Mutex(State())

    private struct State {
        var tails: [Int32: OutputTail] = [:]
        var deadlines = DeadlineHeap()
        var actions: [UInt64: @Sendable () -> Void] = [:]
        var nextToken: UInt64 = 1
        /// The deadline the loop sleeps until (monotonic ns), or UInt64.max.
        var sleepsUntil: UInt64 = .max
        var started = false
    }

    private init() {
        epoll = cs_epoll_create()
        wakeFD = cs_eventfd()
        _ = cs_epoll_add(epoll, wakeFD, CS_EPOLLIN, UInt64(UInt32(bitPattern: wakeFD)))
    }

    private func startIfNeeded() {
        let start = state.withLock { s -> Bool in
            if s.started { return false }
            s.started = true
            return true
        }
        guard start else { return }
        var tid = pthread_t()
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&tid, nil, { arg in
            let monitor = Unmanaged<Monitor>.fromOpaque(arg!).takeRetainedValue()
            monitor.loop()
            return nil
        }, box.toOpaque())
        if rc == 0 {
            pthread_detach(tid)
        } else {
            box.release()
            state.withLock { $0.started = false }
        }
    }

    // MARK: Output

    /// Drains `tail`'s pipe until it reaches end of file or ``unwatch(_:)``.
    func watch(_ tail: OutputTail) {
        startIfNeeded()
        state.withLock { $0.tails[tail.fd] = tail }
        if cs_epoll_add(epoll, tail.fd, CS_EPOLLIN, UInt64(UInt32(bitPattern: tail.fd))) != 0 {
            state.withLock { _ = $0.tails.removeValue(forKey: tail.fd) }
        }
    }

    /// Stops draining `tail` and closes its pipe.
    func unwatch(_ tail: OutputTail) {
        let known = state.withLock { s -> Bool in
            guard s.tails[tail.fd] === tail else { return false }
            s.tails[tail.fd] = nil
            return true
        }
        if known { _ = cs_epoll_del(epoll, tail.fd) }
        tail.close()
    }

    // MARK: Deadlines

    /// Runs `action` on the monitor thread at `deadline` (monotonic ns) unless cancelled first.
    /// `action` must be quick: it delays every other deadline and every host's output.
    func schedule(at deadline: UInt64, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        startIfNeeded()
        let (token, wake) = state.withLock { s -> (UInt64, Bool) in
            let token = s.nextToken
            s.nextToken += 1
            s.actions[token] = action
            s.deadlines.push(deadline, token)
            return (token, deadline < s.sleepsUntil)
        }
        if wake {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
        return token
    }

    /// Cancels a scheduled action; harmless after it ran.
    func cancel(_ token: UInt64) {
        _ = state.withLock { $0.actions.removeValue(forKey: token) }
    }

    // MARK: The loop

    private func loop() {
        var events = [UInt32](repeating: 0, count: 32)
        var tags = [UInt64](repeating: 0, count: 32)
        while true {
            // Fire what is due, then sleep until the next deadline.
            var due: [@Sendable () -> Void] = []
            let now = monotonicNanoseconds()
            let next: UInt64 = state.withLock { s in
                while let (deadline, token) = s.deadlines.peek() {
                    if s.actions[token] == nil { s.deadlines.pop(); continue }  // cancelled
                    if deadline > now { break }
                    s.deadlines.pop()
                    if let a = s.actions.removeValue(forKey: token) { due.append(a) }
                }
                s.sleepsUntil = s.deadlines.peek()?.0 ?? .max
                return s.sleepsUntil
            }
            for action in due { action() }
            if !due.isEmpty { continue }
            let timeout: Int32 = next == .max ? -1 : Int32(min((next - now) / 1_000_000 + 1, 60_000))
            let n = cs_epoll_wait(epoll, &events, &tags, 32, timeout)
            guard n > 0 else { continue }
            for i in 0..<Int(n) {
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: tags[i]))
                if fd == wakeFD {
                    var v: UInt64 = 0
                    _ = read(wakeFD, &v, 8)
                    continue
                }
                guard let tail = state.withLock({ $0.tails[fd] }) else { continue }
                if !tail.drain() {
                    // End of file: the host and everything that shared its stderr are gone.
                    unwatch(tail)
                }
            }
        }
    }
}

/// A min-heap of (deadline, token).
struct DeadlineHeap {
    private var items: [(UInt64, UInt64)] = []

    func peek() -> (UInt64, UInt64)? { items.first }

    mutating func push(_ deadline: UInt64, _ token: UInt64) {
        items.append((deadline, token))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent].0 <= items[i].0 { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l].0 < items[m].0 { m = l }
            if r < items.count && items[r].0 < items[m].0 { m = r }
            if m == i { return }
            items.swapAt(i, m)
            i = m
        }
    }
}

/// The read end of a host's stderr pipe and the last lines read from it: at most `maxLines` lines
/// and `maxBytes` bytes are kept, older ones are dropped (and counted).
final class OutputTail: Sendable {
    /// The pipe's read end (non-blocking). Owned: closed by ``close()``.
    let fd: Int32
    private let state = Mutex(State())
    static let maxLines = 32
    static let maxBytes = 8 * 1024
    /// The longest line kept; the rest of a longer line is cut.
    static let maxLineBytes = 1024

    private struct State {
        var lines: [String] = []
        var bytes = 0
        /// The unfinished last line.
        var partial: [UInt8] = []
        var total: UInt64 = 0
        var closed = false
    }

    init(fd: Int32) { self.fd = fd }

    /// Reads what the pipe holds, at most `limit` bytes (a flooding plugin refills the pipe as fast
    /// as it is read: the monitor thread must get back to its deadlines and other pipes; epoll
    /// reports the rest again). Returns false at end of file (or on an error).
    @discardableResult
    func drain(limit: Int = 256 * 1024) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        return state.withLock { s in
            if s.closed { return false }
            var taken = 0
            while taken < limit {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    s.total += UInt64(n)
                    taken += n
                    absorb(buffer[0..<n], &s)
                    continue
                }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
                return false
            }
            return true
        }
    }

    /// Takes a chunk into the tail. Only the lines that can survive are made into strings: a
    /// flood of short lines costs a backward scan per chunk, not a String per line.
    private func absorb(_ chunk: ArraySlice<UInt8>, _ s: inout State) {
        guard let lastNL = chunk.lastIndex(of: 0x0A) else {
            if s.partial.count < Self.maxLineBytes { s.partial += chunk.prefix(Self.maxLineBytes - s.partial.count) }
            return
        }
        // The ends of the last `maxLines` complete lines, latest first.
        var ends = [lastNL]
        var cursor = lastNL
        while ends.count < Self.maxLines, let nl = chunk[chunk.startIndex..<cursor].lastIndex(of: 0x0A) {
            ends.append(nl)
            cursor = nl
        }
        var start = chunk.startIndex
        if let earlier = chunk[chunk.startIndex..<cursor].lastIndex(of: 0x0A) {
            // Everything before that newline, and every line kept before this chunk, is pushed out.
            s.lines.removeAll()
            s.bytes = 0
            s.partial = []
            start = earlier + 1
        }
        for end in ends.reversed() {
            appendLine(&s, chunk[start..<end])
            start = end + 1
        }
        let rest = chunk[(lastNL + 1)...]
        s.partial = Array(rest.prefix(Self.maxLineBytes))
    }

    private func appendLine(_ s: inout State, _ piece: ArraySlice<UInt8>) {
        var bytes = s.partial
        s.partial = []
        if bytes.count < Self.maxLineBytes { bytes += piece.prefix(Self.maxLineBytes - bytes.count) }
        let line = String(decoding: bytes, as: UTF8.self)
        s.lines.append(line)
        s.bytes += line.utf8.count
        while s.lines.count > Self.maxLines || (s.bytes > Self.maxBytes && s.lines.count > 1) {
            s.bytes -= s.lines.removeFirst().utf8.count
        }
    }

    /// The last lines written (reading what is still in the pipe first), the unfinished one last.
    func lines() -> [String] {
        drain(limit: 1 << 20)
        return state.withLock { s in
            var out = s.lines
            if !s.partial.isEmpty { out.append(String(decoding: s.partial, as: UTF8.self)) }
            return out
        }
    }

    /// Bytes written to the pipe so far.
    var totalBytes: UInt64 { state.withLock { $0.total } }

    func close() {
        let first = state.withLock { s -> Bool in
            if s.closed { return false }
            s.closed = true
            return true
        }
        if first { Glibc.close(fd) }
    }
}
