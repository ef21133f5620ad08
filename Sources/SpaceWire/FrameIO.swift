#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One frame read from a channel. Its payload borrows the ``FrameInput`` buffer and stays valid
/// until that input's next ``FrameInput/fill(from:)`` or ``FrameInput/next()`` (which may grow,
/// and so move, the buffer).
public struct Frame {
    /// The message kind.
    public var kind: MessageKind
    /// The request id the frame belongs to.
    public var id: UInt32
    /// The payload after the header.
    public var payload: UnsafeRawBufferPointer

    /// Creates a frame over `payload` (which must outlive it).
    public init(kind: MessageKind, id: UInt32, payload: UnsafeRawBufferPointer) {
        self.kind = kind
        self.id = id
        self.payload = payload
    }
}

/// A buffered reader that cuts a byte stream into frames.
///
/// One reader at a time: the owner of the channel's read side (a thread, or a caller holding the
/// reader role) is the only one that touches it. `@unchecked Sendable` so that role can move between
/// threads; the role protocol, not the type system, keeps it exclusive.
public final class FrameInput: @unchecked Sendable {
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    private var start = 0
    private var end = 0
    /// The limits enforced on every frame.
    public let limits: WireLimits
    /// While positive, frames already returned must stay where they are (see ``pin()``).
    private var pins = 0
    /// Buffers replaced while pinned, freed by the last ``unpin()``.
    private var retired: [UnsafeMutableRawPointer] = []

    /// Creates an input with an initial buffer of `capacity` bytes (it grows up to the frame limit).
    public init(capacity: Int = 64 << 10, limits: WireLimits = .default) {
        precondition(capacity > 0, "a FrameInput needs a buffer")
        self.capacity = capacity
        self.buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        self.limits = limits
    }

    deinit {
        buffer.deallocate()
        for b in retired { b.deallocate() }
    }

    /// Keeps the payloads of frames returned so far valid across later ``fill(from:spinNanoseconds:)``
    /// and ``next()`` calls, until the matching ``unpin()``: new bytes go after them, or into a new
    /// buffer while the old one is kept. (A host thread reads the channel while a call still uses
    /// its request frame's bytes.)
    public func pin() { pins += 1 }

    /// Ends a ``pin()``; the last one frees the buffers kept meanwhile.
    public func unpin() {
        precondition(pins > 0, "unpin without pin")
        pins -= 1
        if pins == 0 && !retired.isEmpty {
            for b in retired { b.deallocate() }
            retired.removeAll()
        }
    }

    /// Bytes buffered but not yet returned as frames.
    public var buffered: Int { end - start }

    /// Reads once from `fd` into the buffer, invalidating the payloads of frames returned before.
    ///
    /// - Parameter spinNanoseconds: keep polling the socket without sleeping for up to this long
    ///   before blocking, yielding the CPU between polls (so a peer on the same CPU still runs).
    ///   A reply that lands within it costs this thread no wake-up from idle.
    /// - Returns: the number of bytes read; 0 at end of file; -1 when the read timed out or would block.
    public func fill(from fd: Int32, spinNanoseconds: UInt64 = 0) throws(SpaceError) -> Int {
        if pins > 0 {
            // Frames handed out must not move: append, or continue in a new buffer.
            if end == capacity { try replace(capacity: max(capacity, pendingFrameSize())) }
        } else if start == end {
            start = 0
            end = 0
        } else if start > 0 {
            (buffer + 0).copyMemory(from: buffer + start, byteCount: end - start)
            end -= start
            start = 0
        }
        if end == capacity {
            // Only a frame larger than the buffer gets here; next() already checked its length.
            let need = pendingFrameSize()
            try grow(to: max(capacity * 2, need))
        }
        if spinNanoseconds > 0 {
            let deadline = monotonicNanoseconds() &+ spinNanoseconds
            repeat {
                let n = recv(fd, buffer + end, capacity - end, Int32(MSG_DONTWAIT))
                if n > 0 {
                    end += n
                    return n
                }
                if n == 0 { return 0 }
                let e = errno
                if e != EAGAIN && e != EWOULDBLOCK && e != EINTR { break }
                sched_yield()
            } while monotonicNanoseconds() < deadline
        }
        while true {
            let n = read(fd, buffer + end, capacity - end)
            if n > 0 {
                end += n
                return n
            }
            if n == 0 { return 0 }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return -1 }
            throw SpaceError(.systemError, "read from channel failed", errno: e)
        }
    }

    private func pendingFrameSize() -> Int {
        guard end - start >= 4 else { return 0 }
        return 4 + Int(UInt32(littleEndian: UnsafeRawPointer(buffer + start).loadUnaligned(as: UInt32.self)))
    }

    private func grow(to newCapacity: Int) throws(SpaceError) {
        let limit = limits.maxFrameSize + 4
        let target = min(newCapacity, limit)
        guard target > capacity else { return }
        try replace(capacity: target)
    }

    /// Moves the unread bytes into a new buffer of `newCapacity`; the old one is freed, or kept
    /// until the last ``unpin()`` while pinned.
    private func replace(capacity newCapacity: Int) throws(SpaceError) {
        let target = max(newCapacity, end - start, 1)
        let newBuffer = UnsafeMutableRawPointer.allocate(byteCount: target, alignment: 16)
        newBuffer.copyMemory(from: buffer + start, byteCount: end - start)
        if pins > 0 { retired.append(buffer) } else { buffer.deallocate() }
        buffer = newBuffer
        end -= start
        start = 0
        capacity = target
    }

    /// The next complete frame in the buffer, or nil when more bytes are needed.
    ///
    /// Throws when the stream cannot be trusted any more (a length outside the limits): the channel
    /// must then be closed, since frame boundaries are lost.
    public func next() throws(SpaceError) -> Frame? {
        let avail = end - start
        guard avail >= 4 else { return nil }
        let length = Int(UInt32(littleEndian: UnsafeRawPointer(buffer + start).loadUnaligned(as: UInt32.self)))
        if length < Wire.headerSize - 4 {
            throw SpaceError(.protocolError, "frame length \(length) is shorter than a frame header")
        }
        if length > limits.maxFrameSize {
            throw SpaceError(.tooLarge, "frame of \(length) bytes exceeds the limit of \(limits.maxFrameSize)")
        }
        guard avail >= 4 + length else {
            if 4 + length > capacity { try grow(to: 4 + length) }
            return nil
        }
        let p = UnsafeRawPointer(buffer + start)
        let kind = MessageKind(rawValue: p.load(fromByteOffset: 4, as: UInt8.self))
        let id = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 5, as: UInt32.self))
        let payload = UnsafeRawBufferPointer(start: p + Wire.headerSize, count: length - (Wire.headerSize - 4))
        start += 4 + length
        return Frame(kind: kind, id: id, payload: payload)
    }
}

/// Writes all of `bytes` to the socket `fd`, retrying on short writes and `EINTR`, and waiting for
/// room when a non-blocking socket is full.
///
/// Uses `send(MSG_NOSIGNAL)`: a peer that died gives `EPIPE` here instead of a process-killing SIGPIPE.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SpaceError) {
    var offset = 0
    while offset < bytes.count {
        let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
        if n > 0 {
            offset += n
            continue
        }
        let e = errno
        if n < 0 && e == EINTR { continue }
        if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, -1)
            continue
        }
        throw SpaceError(.systemError, "write to channel failed", errno: n < 0 ? e : EPIPE)
    }
}

/// Writes all of `bytes` to the socket `fd` (see the raw-buffer overload).
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SpaceError) {
    let r: Result<Void, SpaceError> = bytes.withUnsafeBytes { raw in
        do throws(SpaceError) { try writeAll(fd, raw); return .success(()) } catch { return .failure(error) }
    }
    try r.get()
}
