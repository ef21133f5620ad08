// Message payloads (hello, add, error, call) and the byte-exact examples of docs/protocol.md.
import Testing
@testable import SpaceWire

@Suite("Messages")
struct MessagesTests {
    @Test func kindAndTagBytesAreStable() {
        let kinds: [(MessageKind, UInt8, String)] = [
            (.hello, 0x01, "hello"), (.add, 0x02, "add"), (.call, 0x03, "call"), (.result, 0x04, "result"),
            (.error, 0x05, "error"), (.remove, 0x06, "remove"), (.ping, 0x07, "ping"), (.shutdown, 0x08, "shutdown"),
            (.callbackEvent, 0x10, "callbackEvent"), (.callbackReturn, 0x11, "callbackReturn"),
            (.callbackRelease, 0x12, "callbackRelease"), (.callbackCancel, 0x13, "callbackCancel"),
            (.callbackFault, 0x14, "callbackFault"),
        ]
        for (kind, byte, name) in kinds {
            #expect(kind.rawValue == byte)
            #expect(kind.description == name)
        }
        #expect(MessageKind(rawValue: 0x15).description == "kind(0x15)")
        let tags: [(ValueTag, UInt8)] = [
            (.null, 0), (.false, 1), (.true, 2), (.int, 3), (.uint, 4), (.double, 5), (.string, 6),
            (.bytes, 7), (.array, 8), (.object, 9), (.handle, 0x0A), (.callback, 0x0B),
        ]
        for (tag, byte) in tags { #expect(tag.rawValue == byte) }
        #expect(ValueTag(rawValue: 0x0C) == nil)
        #expect(Wire.protocolVersion == 1)
        #expect(Wire.headerSize == 9)
    }

    @Test func defaultLimits() {
        let d = WireLimits.default
        #expect(d.maxFrameSize == 16 * 1024 * 1024)
        #expect(d.maxArguments == 255)
        #expect(d.maxDepth == 32)
        #expect(d.maxStringLength == 16 * 1024 * 1024)
    }

    @Test func helloRoundTrip() throws {
        let hello = Hello(pid: 4242, maxFrameSize: 16 << 20, sandboxLayers: 0x8000_0000_0000_0005, hostVersion: "0.1.0-ü")
        var w = WireWriter()
        hello.encode(into: &w)
        #expect(try read(w.bytes) { (r: inout WireReader) throws(SpaceError) in try Hello.decode(&r) }.get() == hello)
    }

    @Test func helloLayoutAndVersionCheck() throws {
        var w = WireWriter()
        w.beginFrame(.hello, id: 0)
        Hello(pid: 0x0102_0304, maxFrameSize: 0x0100_0000, sandboxLayers: 0, hostVersion: "0.1.0").encode(into: &w)
        w.endFrame()
        #expect(hex(w.bytes) == """
            20 00 00 00 01 00 00 00 00 \
            01 00 04 03 02 01 00 00 00 01 00 00 00 00 00 00 00 00 \
            05 00 00 00 30 2e 31 2e 30
            """)
        // Another version is refused before anything else is read (the rest may have another layout).
        var other = Array(w.bytes[9...])
        other[0] = 2
        let r = read(other) { (r: inout WireReader) throws(SpaceError) in try Hello.decode(&r) }
        expectFailure(r, .protocolError)
        #expect((try? r.get()) == nil)
        if case .failure(let e) = r { #expect(e.message.contains("version 2")) }
        // Trailing bytes are refused.
        expectFailure(read(Array(w.bytes[9...]) + [0]) { (r: inout WireReader) throws(SpaceError) in try Hello.decode(&r) }, .protocolError)
    }

    @Test func addRequestRoundTrip() throws {
        let requests = [
            AddRequest(library: "calc"),
            AddRequest(library: "/opt/lib/libz.so", alias: "z", declarations: "int f(int);\nvoid g(void);",
                       initArguments: ["--x", "", "ünï"]),
            AddRequest(library: "x", initArguments: Array(repeating: "a", count: 255)),
            AddRequest(library: "calc", alias: "c", isReplay: true),
        ]
        for req in requests {
            var w = WireWriter()
            req.encode(into: &w)
            #expect(try read(w.bytes) { (r: inout WireReader) throws(SpaceError) in try AddRequest.decode(&r) }.get() == req)
        }
        var w = WireWriter()
        AddRequest(library: "calc", alias: "c", initArguments: ["1"]).encode(into: &w)
        #expect(hex(w.bytes) == "04 00 00 00 63 61 6c 63 01 00 00 00 63 00 00 00 00 01 00 01 00 00 00 31 00")
        // The replay flag is bit 0 of the last byte; other bits are refused.
        w = WireWriter()
        AddRequest(library: "calc", isReplay: true).encode(into: &w)
        #expect(w.bytes.last == 1)
        expectFailure(read(Array(w.bytes.dropLast()) + [2]) { (r: inout WireReader) throws(SpaceError) in try AddRequest.decode(&r) }, .protocolError)
    }

    @Test func addRequestWithTooManyInitArguments() {
        var w = WireWriter()
        AddRequest(library: "x", initArguments: Array(repeating: "", count: 256)).encode(into: &w)
        expectFailure(read(w.bytes) { (r: inout WireReader) throws(SpaceError) in try AddRequest.decode(&r) }, .tooLarge)
    }

    @Test func errorRoundTrip() throws {
        let errors = [
            SpaceError(.unknownFunction, "package 'calc' has no function 'nope'"),
            SpaceError(.systemError, "read failed", errno: 32),
            SpaceError(.systemError, "negative errno survives", errno: -5),
            SpaceError(.badArgument, "argument 1: expected int32_t",
                       argument: SpaceError.Argument(index: 1, expected: "int32_t", got: "string \"abc\"")),
            SpaceError(.badArgument, "both", errno: 22, argument: SpaceError.Argument(index: 0, expected: "", got: "")),
            SpaceError(SpaceError.Code(rawValue: "someFutureCode"), "unknown codes pass through"),
            SpaceError(.protocolError, ""),
        ]
        for e in errors {
            var w = WireWriter()
            w.writeError(e)
            let back = try read(w.bytes) { (r: inout WireReader) throws(SpaceError) -> SpaceError in
                let e = try r.readError()
                try r.expectEnd("error")
                return e
            }.get()
            #expect(back == e)
        }
    }

    @Test func errorLayout() {
        var w = WireWriter()
        w.writeError(SpaceError(.badArgument, "m", argument: SpaceError.Argument(index: 2, expected: "int", got: "s")))
        #expect(hex(w.bytes) == """
            0b 00 00 00 62 61 64 41 72 67 75 6d 65 6e 74 \
            01 00 00 00 6d \
            00 00 00 00 \
            02 00 00 00 \
            03 00 00 00 69 6e 74 \
            01 00 00 00 73
            """)
        // No errno is 0; no argument is index -1 with empty strings.
        var plain = WireWriter()
        plain.writeError(SpaceError(.timedOut, ""))
        #expect(hex(plain.bytes) == "08 00 00 00 74 69 6d 65 64 4f 75 74 00 00 00 00 00 00 00 00 ff ff ff ff 00 00 00 00 00 00 00 00")
    }

    @Test func callLayoutIsByteExact() throws {
        var w = WireWriter()
        w.writeCall(id: 0x0A0B_0C0D, package: "p", function: "fn", arguments: [true, "é"])
        // len=26 | kind=03 | id (LE) | "p" | "fn" | argc=2 | true | string "é"
        #expect(hex(w.bytes) == """
            1a 00 00 00 03 0d 0c 0b 0a \
            01 00 00 00 70 \
            02 00 00 00 66 6e \
            02 00 \
            02 \
            06 02 00 00 00 c3 a9
            """)
        let call = try read(Array(w.bytes[9...])) { (r: inout WireReader) throws(SpaceError) in try decodeCall(&r) }.get()
        #expect(call == DecodedCall(package: "p", function: "fn", arguments: [true, "é"]))
    }

    /// The worked example of docs/protocol.md: `space call calc math.add 2 3`.
    static let exampleRequest = """
        2d 00 00 00 03 02 00 00 00
        04 00 00 00 63 61 6c 63
        08 00 00 00 6d 61 74 68 2e 61 64 64
        02 00
        03 02 00 00 00 00 00 00 00
        03 03 00 00 00 00 00 00 00
        """
    static let exampleReply = """
        0e 00 00 00 04 02 00 00 00
        03 05 00 00 00 00 00 00 00
        """
    static let exampleError = """
        2c 00 00 00 05 02 00 00 00
        0e 00 00 00 75 6e 6b 6e 6f 77 6e 50 61 63 6b 61 67 65
        01 00 00 00 3f
        00 00 00 00
        ff ff ff ff
        00 00 00 00
        00 00 00 00
        """

    @Test func workedExampleFromTheSpec() throws {
        var w = WireWriter()
        w.writeCall(id: 2, package: "calc", function: "math.add", arguments: [2, 3])
        #expect(w.bytes == unhex(Self.exampleRequest), "\(hex(w.bytes))")
        #expect(w.bytes.count == 49)

        var reply = WireWriter()
        reply.beginFrame(.result, id: 2)
        reply.writeInt(5)  // an int32_t return is encoded as a tagged int
        reply.endFrame()
        #expect(reply.bytes == unhex(Self.exampleReply), "\(hex(reply.bytes))")

        var error = WireWriter()
        error.beginFrame(.error, id: 2)
        error.writeError(SpaceError(.unknownPackage, "?"))
        error.endFrame()
        #expect(error.bytes == unhex(Self.exampleError), "\(hex(error.bytes))")

        // And the reading side gets them back through a socket.
        let input = FrameInput(capacity: 64)
        let out = transfer(unhex(Self.exampleRequest) + unhex(Self.exampleReply) + unhex(Self.exampleError), input: input)
        #expect(out.error == nil)
        try #require(out.frames.count == 3)
        #expect(out.frames[0].kind == .call && out.frames[0].id == 2)
        #expect(try read(out.frames[0].payload) { (r: inout WireReader) throws(SpaceError) in try decodeCall(&r) }.get()
                == DecodedCall(package: "calc", function: "math.add", arguments: [2, 3]))
        #expect(out.frames[1].kind == .result && out.frames[1].id == 2)
        #expect(try decodeValue(out.frames[1].payload).get() == .int(5))
        #expect(out.frames[2].kind == .error && out.frames[2].id == 2)
        #expect(try read(out.frames[2].payload) { (r: inout WireReader) throws(SpaceError) in try r.readError() }.get()
                == SpaceError(.unknownPackage, "?"))
    }

    @Test func emptyPayloadFrames() {
        // ping, shutdown: header only. remove: one string body.
        #expect(hex(frameBytes(.ping, id: 7)) == "05 00 00 00 07 07 00 00 00")
        #expect(hex(frameBytes(.shutdown, id: 1)) == "05 00 00 00 08 01 00 00 00")
        #expect(hex(frameBytes(.remove, id: 3) { $0.writeString("calc") }) == "0d 00 00 00 06 03 00 00 00 04 00 00 00 63 61 6c 63")
    }

    @Test func writerFrameBookkeeping() {
        var w = WireWriter()
        w.beginFrame(.result, id: 1)
        #expect(w.currentFrameSize == 5)
        w.writeValue(.null)
        #expect(w.currentFrameSize == 6)
        w.endFrame()
        #expect(w.currentFrameSize == 0)
        let kept = w.bytes
        w.beginFrame(.result, id: 2)
        w.writeValue("half-written")
        w.abandonFrame()
        #expect(w.bytes == kept)
        w.removeAll()
        #expect(w.bytes.isEmpty)
    }

    @Test func readerPrimitives() throws {
        var w = WireWriter()
        w.write(UInt8(0xAB))
        w.write(UInt16(0xBEEF))
        w.write(UInt32(0xDEAD_BEEF))
        w.write(UInt64(0x0123_4567_89AB_CDEF))
        w.write(Int32(-2))
        w.write(Int64(-3))
        let bytes = w.bytes
        #expect(bytes.count == 1 + 2 + 4 + 8 + 4 + 8)
        try read(bytes) { (r: inout WireReader) throws(SpaceError) in
            #expect(try r.readU8() == 0xAB)
            #expect(try r.readU16() == 0xBEEF)
            #expect(try r.readU32() == 0xDEAD_BEEF)
            #expect(try r.readU64() == 0x0123_4567_89AB_CDEF)
            #expect(try r.readI32() == -2)
            #expect(r.remaining == 8)
            #expect(try r.readI64() == -3)
            #expect(r.isAtEnd)
            try r.expectEnd("primitives")
        }.get()
        // Every primitive refuses to read past the end.
        for n in 0..<bytes.count {
            let r = read(Array(bytes[..<n])) { (r: inout WireReader) throws(SpaceError) in
                _ = try r.readU8(); _ = try r.readU16(); _ = try r.readU32(); _ = try r.readU64()
                _ = try r.readI32(); _ = try r.readI64()
            }
            expectFailure(r, .protocolError)
        }
    }

    @Test func invalidUTF8IsAProtocolError() throws {
        expectFailure(decodeValue([0x06, 2, 0, 0, 0, 0xC3, 0x28]), .protocolError)
        expectFailure(decodeValue([0x06, 3, 0, 0, 0, 0xED, 0xA0, 0x80]), .protocolError)  // a surrogate
        // Bytes are not UTF-8 checked.
        #expect(try decodeValue([0x07, 2, 0, 0, 0, 0xC3, 0x28]).get() == .bytes([0xC3, 0x28]))
    }

    @Test func aDeadlineFrameWrapsARequest() throws {
        var plain = WireWriter()
        plain.writeCall(id: 5, package: "calc", function: "math.add", arguments: [1, 2])
        var timed = plain
        timed.wrapLastFrameWithTimeout(milliseconds: 2000)
        let p = plain.bytes, t = timed.bytes
        #expect(t.count == p.count + 5)
        #expect(t[4] == MessageKind.deadline.rawValue)
        #expect(Array(t[5..<9]) == Array(p[5..<9]))  // the same id
        #expect(Array(t[9..<14]) == [0xd0, 0x07, 0x00, 0x00, MessageKind.call.rawValue])
        #expect(Array(t[14...]) == Array(p[9...]))
        let length = UInt32(t[0]) | UInt32(t[1]) << 8 | UInt32(t[2]) << 16 | UInt32(t[3]) << 24
        #expect(Int(length) == t.count - 4)
        #expect(MessageKind.deadline.description == "deadline")
    }
}
