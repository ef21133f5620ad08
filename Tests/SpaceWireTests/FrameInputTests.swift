// FrameInput over a real AF_UNIX socketpair: reassembly, batching, growth, limits, EOF.
import Testing
@testable import SpaceWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("FrameInput")
struct FrameInputTests {
    /// A few frames of different kinds and sizes, and what FrameInput must return for them.
    static func sampleFrames() -> (bytes: [UInt8], frames: [OwnedFrame]) {
        var w = WireWriter()
        var expected: [OwnedFrame] = []
        func add(_ kind: MessageKind, _ id: UInt32, _ body: (inout WireWriter) -> Void) {
            let start = w.bytes.count
            w.beginFrame(kind, id: id)
            body(&w)
            w.endFrame()
            expected.append(OwnedFrame(kind: kind, id: id, payload: Array(w.bytes[(start + 9)...])))
        }
        add(.hello, 0) { Hello(pid: 1, maxFrameSize: 1 << 24, hostVersion: "t").encode(into: &$0) }
        add(.ping, 1) { _ in }
        add(.result, 2) { $0.writeValue(["a", 1, .bytes([1, 2, 3])]) }
        add(.error, 0xFFFF_FFFF) { $0.writeError(SpaceError(.crashed, "boom", errno: 9)) }
        add(MessageKind(rawValue: 0x10), 3) { $0.write(UInt8(0x42)) }  // unknown kinds are still framed
        w.writeCall(id: 4, package: "calc", function: "math.add", arguments: [2, 3])
        expected.append(OwnedFrame(kind: .call, id: 4, payload: Array(w.bytes[(w.bytes.count - 40)...])))
        return (w.bytes, expected)
    }

    @Test func framesSplitByteByByteArriveIntact() {
        let (bytes, expected) = Self.sampleFrames()
        let out = transfer(bytes, input: FrameInput(capacity: 16), chunk: 1)
        #expect(out.error == nil)
        #expect(out.frames == expected)
    }

    @Test func framesSplitAtEveryChunkSize() {
        let (bytes, expected) = Self.sampleFrames()
        for chunk in [2, 3, 4, 5, 7, 8, 9, 10, 13, 64] {
            let out = transfer(bytes, input: FrameInput(capacity: 32), chunk: chunk)
            #expect(out.error == nil, "chunk \(chunk)")
            #expect(out.frames == expected, "chunk \(chunk)")
        }
    }

    @Test func manyFramesInOneWrite() throws {
        var w = WireWriter()
        for i in 0..<1_000 {
            w.beginFrame(.result, id: UInt32(i))
            w.writeInt(Int64(i) * 3)
            w.endFrame()
        }
        let out = transfer(w.bytes, input: FrameInput())
        #expect(out.error == nil)
        #expect(out.frames.count == 1_000)
        for (i, f) in out.frames.enumerated() {
            #expect(f.kind == .result && f.id == UInt32(i))
            #expect(try decodeValue(f.payload).get() == .int(Int64(i) * 3))
        }
    }

    @Test func oneFillCanYieldManyFrames() throws {
        let pair = SocketPair()
        let (bytes, expected) = Self.sampleFrames()
        try writeAll(pair.writer, bytes)
        let input = FrameInput()
        #expect(try input.next() == nil)  // nothing read yet
        let n = try input.fill(from: pair.reader)
        #expect(n == bytes.count)
        #expect(input.buffered == bytes.count)
        var got: [OwnedFrame] = []
        while let f = try input.next() { got.append(OwnedFrame(kind: f.kind, id: f.id, payload: Array(f.payload))) }
        #expect(got == expected)
        #expect(input.buffered == 0)
    }

    @Test func frameLargerThanTheInitialBufferIsReassembled() throws {
        var rng = SplitMix64(seed: 42)
        let big = rng.bytes(1 << 20)
        var w = WireWriter()
        w.beginFrame(.result, id: 9)
        w.writeValue(.bytes(big))
        w.endFrame()
        w.beginFrame(.result, id: 10)
        w.writeValue(.null)
        w.endFrame()
        for chunk in [Int.max, 4093] {
            let out = transfer(w.bytes, input: FrameInput(capacity: 1024), chunk: chunk)
            #expect(out.error == nil)
            try #require(out.frames.count == 2)
            #expect(out.frames[0].id == 9)
            #expect(try decodeValue(out.frames[0].payload).get() == .bytes(big))
            #expect(out.frames[1].id == 10)
            #expect(out.frames[1].payload == [0x00])
        }
    }

    @Test func frameOfExactlyTheLimitIsAccepted() {
        let limits = WireLimits(maxFrameSize: 4096, maxArguments: 255, maxDepth: 32, maxStringLength: 4096)
        var w = WireWriter()
        w.beginFrame(.result, id: 1)
        w.writeValue(.bytes(Array(repeating: 7, count: 4096 - 5 - 5)))
        w.endFrame()
        #expect(w.bytes.count == 4 + 4096)
        let ok = transfer(w.bytes, input: FrameInput(capacity: 100, limits: limits))
        #expect(ok.error == nil)
        #expect(ok.frames.count == 1)

        var over = WireWriter()
        over.beginFrame(.result, id: 1)
        over.writeValue(.bytes(Array(repeating: 7, count: 4096 - 5 - 5 + 1)))
        over.endFrame()
        let bad = transfer(over.bytes, input: FrameInput(capacity: 100, limits: limits))
        #expect(bad.error?.code == .tooLarge)
        #expect(bad.frames.isEmpty)
    }

    @Test(arguments: [UInt32(16 << 20) + 1, 0x7FFF_FFFF, 0xFFFF_FFFF])
    func lengthAboveTheLimitIsTooLarge(_ length: UInt32) {
        var w = WireWriter()
        w.write(length)
        w.write(MessageKind.result.rawValue)
        w.write(UInt32(1))
        let out = transfer(w.bytes, input: FrameInput(capacity: 64))
        #expect(out.error?.code == .tooLarge)
        #expect(out.frames.isEmpty)
    }

    @Test(arguments: [UInt32(0), 1, 2, 3, 4])
    func lengthShorterThanAHeaderIsAProtocolError(_ length: UInt32) {
        var w = WireWriter()
        w.write(length)
        for _ in 0..<8 { w.write(UInt8(0)) }
        let out = transfer(w.bytes, input: FrameInput(capacity: 64))
        #expect(out.error?.code == .protocolError)
    }

    @Test func aGoodFrameBeforeABrokenOneIsStillDelivered() {
        let good = frameBytes(.ping, id: 5)
        let out = transfer(good + [0xFF, 0xFF, 0xFF, 0xFF, 0x04], input: FrameInput(capacity: 64))
        #expect(out.frames == [OwnedFrame(kind: .ping, id: 5, payload: [])])
        #expect(out.error?.code == .tooLarge)
    }

    @Test func endOfFileReturnsZero() throws {
        let pair = SocketPair()
        let input = FrameInput(capacity: 64)
        try writeAll(pair.writer, [0x05, 0x00])  // half a length field
        pair.finishWriting()
        #expect(try input.fill(from: pair.reader) == 2)
        #expect(try input.next() == nil)
        #expect(try input.fill(from: pair.reader) == 0)
        #expect(try input.fill(from: pair.reader) == 0)
        #expect(input.buffered == 2)  // the truncated frame stays buffered; the caller decides
    }

    @Test func readErrorsAreSystemErrors() {
        let input = FrameInput(capacity: 64)
        #expect(throws: SpaceError.self) { _ = try input.fill(from: -1) }
        do {
            _ = try input.fill(from: -1)
        } catch {
            #expect(error.code == .systemError)
            #expect(error.errno == EBADF)
        }
    }

    @Test func wouldBlockReturnsMinusOne() throws {
        let pair = SocketPair()
        let flags = fcntl(pair.reader, F_GETFL)
        _ = fcntl(pair.reader, F_SETFL, flags | O_NONBLOCK)
        #expect(try FrameInput(capacity: 64).fill(from: pair.reader) == -1)
    }

    @Test func writeAllToAClosedPeerIsEPIPE() {
        let pair = SocketPair()
        let w = pair.writer
        _ = shutdown(pair.reader, Int32(SHUT_RDWR))  // the peer is gone
        do {
            try writeAll(w, [1, 2, 3])
            Issue.record("writeAll to a closed peer succeeded")
        } catch {
            #expect(error.code == .systemError)
            #expect(error.errno == EPIPE)
        }
    }
}
