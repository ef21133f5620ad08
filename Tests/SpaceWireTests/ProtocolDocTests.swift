// docs/protocol.md is checked against the code: every ```hex NAME block in it must match the bytes
// the writer produces for that example.
import Testing
@testable import SpaceWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("docs/protocol.md")
struct ProtocolDocTests {
    /// The spec's text, found relative to this source file (Tests/SpaceWireTests → docs).
    static func specText() throws -> String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        let path = parts.joined(separator: "/") + "/docs/protocol.md"
        guard let f = fopen(path, "r") else {
            throw SpaceError(.systemError, "cannot open \(path)", errno: errno)
        }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The ```hex NAME blocks of the spec, comments (`# ...`) removed.
    static func hexBlocks() throws -> [String: [UInt8]] {
        var blocks: [String: [UInt8]] = [:]
        var current: String?
        var text = ""
        for line in try specText().split(separator: "\n", omittingEmptySubsequences: false) {
            if let name = current {
                if line.hasPrefix("```") {
                    blocks[name] = unhex(text)
                    current = nil
                } else {
                    text += line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0] + " "
                }
            } else if line.hasPrefix("```hex ") {
                current = String(line.dropFirst("```hex ".count)).trimmingSpaces()
                text = ""
            }
        }
        return blocks
    }

    @Test func hexExamplesMatchTheCode() throws {
        let blocks = try Self.hexBlocks()
        #expect(Set(blocks.keys) == ["call-request", "call-reply", "call-error", "hello"])

        var request = WireWriter()
        request.writeCall(id: 2, package: "calc", function: "math.add", arguments: [2, 3])
        #expect(blocks["call-request"] == request.bytes, "\(hex(request.bytes))")
        #expect(request.bytes.count == 49)

        var reply = WireWriter()
        reply.beginFrame(.result, id: 2)
        reply.writeInt(5)
        reply.endFrame()
        #expect(blocks["call-reply"] == reply.bytes, "\(hex(reply.bytes))")
        #expect(reply.bytes.count == 18)

        var error = WireWriter()
        error.beginFrame(.error, id: 2)
        error.writeError(SpaceError(.unknownPackage, "?"))
        error.endFrame()
        #expect(blocks["call-error"] == error.bytes, "\(hex(error.bytes))")

        var hello = WireWriter()
        hello.beginFrame(.hello, id: 0)
        Hello(pid: 0x0102_0304, maxFrameSize: 16 << 20, sandboxLayers: 0, hostVersion: "0.1.0").encode(into: &hello)
        hello.endFrame()
        #expect(blocks["hello"] == hello.bytes, "\(hex(hello.bytes))")
    }

    @Test func inlineExamplesMatchTheCode() throws {
        let spec = try Self.specText()
        var pingReply = WireWriter()
        pingReply.beginFrame(.result, id: 7)
        pingReply.writeValue(.null)
        pingReply.endFrame()
        let examples: [String] = [
            hex(frameBytes(.ping, id: 7)),
            hex(pingReply.bytes),
            hex(encode(-2)),
            hex(encode("hé")),
            hex(encode([1, nil])),
            hex(encode(.object([Value.Field("a", true)]))),
        ]
        for example in examples {
            #expect(spec.contains("`\(example)`"), "docs/protocol.md lacks `\(example)`")
        }
    }
}

private extension String {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
