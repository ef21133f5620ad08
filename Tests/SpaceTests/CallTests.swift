import Space
import Testing

/// Calls through the real space-host into the example plugins: every scalar kind, strings, and
/// every bad-input path, each followed by a call that still works.
@Suite("Calls through the real host")
struct CallTests {
    @Test func addReportsTheManifest() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let info = try await space.add("calc")
        #expect(info[field: "name"] == "calc")
        #expect(info[field: "version"] == "1.0.0")
        #expect(info[field: "threadSafe"] == true)
        let functions = info[field: "functions"]?.array ?? []
        #expect(functions.contains { $0[field: "name"] == "math.add" && $0[field: "declaration"] == "int32_t (int32_t a, int32_t b)" })
        #expect(space.hostInfo?.protocolVersion == Wire.protocolVersion)
    }

    @Test func integersOfEveryWidth() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        #expect(try await space.call("calc", "math.add", 2, 3) == 5)
        #expect(try await space.call("calc", "math.add", .int(Int64(Int32.max)), 0) == .int(Int64(Int32.max)))
        #expect(try await space.call("calc", "math.add", .int(Int64(Int32.min)), 0) == .int(Int64(Int32.min)))
        #expect(try await space.call("calc", "math.sub", 2, 5) == -3)
        #expect(try await space.call("calc", "math.mul", .int(1 << 31), 4) == .int(1 << 33))
        #expect(try await space.call("calc", "math.mul", .int(Int64.min), 1) == .int(Int64.min))
        #expect(try await space.call("calc", "math.negate8", -128) == -128)  // wraps, as C does
        #expect(try await space.call("calc", "math.negate8", 5) == -5)
        #expect(try await space.call("calc", "math.shl8", 0xFF, 1) == 0xFE)
        #expect(try await space.call("calc", "math.clamp16", 100_000) == .int(Int64(Int16.max)))
        #expect(try await space.call("calc", "math.clamp16", -100_000) == .int(Int64(Int16.min)))
        #expect(try await space.call("calc", "math.swap16", 0x1234) == 0x3412)
        #expect(try await space.call("calc", "math.umax32", .int(Int64(UInt32.max)), 1) == .int(Int64(UInt32.max)))
        #expect(try await space.call("calc", "math.umax64", .uint(UInt64.max), 1) == .uint(UInt64.max))
        #expect(try await space.call("calc", "math.umax64", 7, 9) == 9)
        #expect(try await space.call("calc", "math.ulong_id", .uint(1 << 63)) == .uint(1 << 63))
        #expect(try await space.call("calc", "math.count_bits", .uint(UInt64.max)) == 64)
        #expect(try await space.call("calc", "math.ptr_diff", 10, 30) == -20)
        #expect(try await space.call("calc", "math.sum6", 1, 2, 3, 4, 5, 6) == 21)
    }

    @Test func floatsBoolsAndVoid() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        #expect(try await space.call("calc", "math.hypot", 3, 4) == 5.0)
        #expect(try await space.call("calc", "math.div", 1, 4) == 0.25)
        #expect(try await space.call("calc", "math.div", 1, 0) == .double(.infinity))
        let nan = try await space.call("calc", "math.div", 0, 0)
        #expect(nan.double?.isNaN == true)
        #expect(try await space.call("calc", "math.avgf", 1.5, 2.5) == 2.0)
        #expect(try await space.call("calc", "math.is_even", 4) == true)
        #expect(try await space.call("calc", "math.is_even", 7) == false)
        #expect(try await space.call("calc", "math.both", true, false) == false)
        #expect(try await space.call("calc", "math.both", true, true) == true)
        #expect(try await space.call("calc", "math.noop") == .null)
        // Eight parameters of eight different kinds: each lands in the right register or stack slot.
        let mixed = try await space.call("calc", "math.mix", -1, 2, -3, 4, 0.5, 0.25, -7, 200)
        let expected: Double = 195.75  // -1 + 2 - 3 + 4 + 0.5 + 0.25 - 7 + 200
        #expect(mixed == .double(expected))
    }

    @Test func stringsInAndOut() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("text")
        #expect(try await space.call("text", "upper", "hello") == "HELLO")
        #expect(try await space.call("text", "upper", "") == "")
        #expect(try await space.call("text", "length", "héllo") == 6)  // bytes, as strlen counts
        #expect(try await space.call("text", "concat", "foo", "bar") == "foobar")
        #expect(try await space.call("text", "repeat", "ab", 3) == "ababab")
        let big = String(repeating: "x", count: 100_000)
        #expect(try await space.call("text", "repeat", .string(big), 10).string?.utf8.count == 1_000_000)
        #expect(try await space.call("text", "nonempty", "") == .null)  // NULL result
        #expect(try await space.call("text", "is_null", nil) == true)  // null argument → NULL
        #expect(try await space.call("text", "is_null", "x") == false)
        #expect(try await space.call("text", "upper", nil) == .null)
    }

    @Test func swiftPluginWithCdecl() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let info = try await space.add("greeter")
        #expect(info[field: "threadSafe"] == false)
        #expect(try await space.call("greeter", "greet.hello", "space") == "Hello, space!")
        #expect(try await space.call("greeter", "greet.vowels", "Sandboxed plugin host") == 6)
        #expect(try await space.call("greeter", "greet.fib", 90) == .int(2_880_067_194_370_816_120))
    }

    @Test func initArgumentsReachTheInitHook() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc", as: "triple", initArguments: ["scale=3"])
        #expect(try await space.call("triple", "math.scaled", 7) == 21)
        let refused = await spaceError { try await space.add("calc", as: "bad", initArguments: ["scale=x"]) }
        #expect(refused?.code == .initFailed)
        #expect(refused?.message.contains("scale must be an integer, got 'x'") == true)
        let unknown = await spaceError { try await space.add("calc", as: "bad2", initArguments: ["nope"]) }
        #expect(unknown?.code == .initFailed)
        #expect(unknown?.message.contains("unknown init argument 'nope'") == true)
        // The refused adds left nothing behind.
        let gone = await spaceError { try await space.call("bad", "math.add", 1, 2) }
        #expect(gone?.code == .unknownPackage)
        #expect(try await space.call("triple", "math.scaled", 2) == 6)
    }

    @Test func aliasesAndDuplicates() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        try await space.add("calc", as: "calc2")
        #expect(try await space.call("calc2", "math.add", 1, 1) == 2)
        let dup = await spaceError { try await space.add("calc") }
        #expect(dup?.code == .alreadyAdded)
        #expect(try await space.call("calc", "math.add", 1, 2) == 3)
    }

    @Test func removeUnloadsAPackage() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        try await space.remove("calc")
        let gone = await spaceError { try await space.call("calc", "math.add", 1, 2) }
        #expect(gone?.code == .unknownPackage)
        let again = await spaceError { try await space.remove("calc") }
        #expect(again?.code == .unknownPackage)
        try await space.add("calc")
        #expect(try await space.call("calc", "math.add", 1, 2) == 3)
    }

    @Test func badInputGetsTypedErrorsAndTheHostKeepsServing() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        try await space.add("text")

        let noLib = await spaceError { try await space.add("no-such-library-xyz") }
        #expect(noLib?.code == .libraryNotFound)
        #expect(noLib?.message.contains("no-such-library-xyz") == true)

        let noPath = await spaceError { try await space.add("/nonexistent/libnothing.so") }
        #expect(noPath?.code == .libraryNotFound)

        let notELF = temporaryFile("libjunk.so", "this is not an ELF file")
        let junk = await spaceError { try await space.add(notELF) }
        #expect(junk?.code == .loadFailed)
        // (An add from a directory the sandbox did not cover restarts the host so it may read it.)
        let pid = space.pid

        let noPackage = await spaceError { try await space.call("nope", "math.add", 1, 2) }
        #expect(noPackage?.code == .unknownPackage)

        let noFunction = await spaceError { try await space.call("calc", "math.nope", 1, 2) }
        #expect(noFunction?.code == .unknownFunction)
        #expect(noFunction?.message.contains("math.nope") == true)

        let arity = await spaceError { try await space.call("calc", "math.add", 1) }
        #expect(arity?.code == .arityMismatch)
        #expect(arity?.message.contains("takes 2 arguments") == true)

        let tooMany = await spaceError { try await space.call("calc", "math.add", 1, 2, 3) }
        #expect(tooMany?.code == .arityMismatch)

        let wrongType = await spaceError { try await space.call("calc", "math.add", 1, "two") }
        #expect(wrongType?.code == .badArgument)
        #expect(wrongType?.argument == SpaceError.Argument(index: 1, expected: "int32_t", got: "string \"two\""))

        let overflow = await spaceError { try await space.call("calc", "math.add", .int(1 << 40), 1) }
        #expect(overflow?.code == .badArgument)
        #expect(overflow?.argument?.index == 0)
        #expect(overflow?.message.contains("out of range") == true)

        let negativeUnsigned = await spaceError { try await space.call("calc", "math.umax32", -1, 1) }
        #expect(negativeUnsigned?.code == .badArgument)

        let uint8 = await spaceError { try await space.call("calc", "math.shl8", 256, 1) }
        #expect(uint8?.argument?.expected == "uint8_t")

        let boolFromInt = await spaceError { try await space.call("calc", "math.both", 1, true) }
        #expect(boolFromInt?.code == .badArgument)

        let floatForInt = await spaceError { try await space.call("calc", "math.add", 1.5, 1) }
        #expect(floatForInt?.code == .badArgument)

        let stringForDouble = await spaceError { try await space.call("calc", "math.hypot", "3", 4) }
        #expect(stringForDouble?.code == .badArgument)

        let embeddedNUL = await spaceError { try await space.call("text", "upper", "a\u{0}b") }
        #expect(embeddedNUL?.code == .badArgument)
        #expect(embeddedNUL?.message.contains("NUL") == true)

        let arrayForString = await spaceError { try await space.call("text", "upper", [1, 2]) }
        #expect(arrayForString?.code == .badArgument)

        // The same host served all of it and still answers.
        #expect(space.pid == pid)
        #expect(try await space.call("calc", "math.add", 2, 3) == 5)
        #expect(try await space.call("text", "upper", "ok") == "OK")
    }

    @Test func argumentLimitIsCheckedBeforeSending() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        let args = [Value](repeating: 1, count: 300)
        let e = await spaceError { try await space.call("calc", "math.add", arguments: args) }
        #expect(e?.code == .tooLarge)
        #expect(try await space.call("calc", "math.add", 1, 1) == 2)
    }

    @Test func oversizedRequestsAreRefusedBeforeSending() async throws {
        let space = try await launch {
            $0.limits = WireLimits(maxFrameSize: 4096, maxArguments: 16, maxDepth: 8, maxStringLength: 4096)
        }
        defer { Task { await space.destroy() } }
        try await space.add("text")
        let pid = space.pid
        let big = String(repeating: "z", count: 5000)
        let e = await spaceError { try await space.call("text", "upper", .string(big)) }
        #expect(e?.code == .tooLarge)
        #expect(e?.message.contains("frame limit of 4096") == true)
        // Nothing reached the host: same process, still serving, within the limit.
        #expect(space.pid == pid)
        #expect(try await space.call("text", "upper", .string(String(repeating: "z", count: 1000))).string?.count == 1000)
        // The host enforces the configured limits too: a result over the limit becomes an error
        // reply, and the channel (and the host) carry on.
        let reply = await spaceError { try await space.call("text", "repeat", "abcd", 2000) }
        #expect(reply?.code == .tooLarge)
        #expect(reply?.message.contains("repeat") == true)
        #expect(try await space.call("text", "upper", "ok") == "OK")
        #expect(space.pid == pid)
    }

    @Test func manyConcurrentCallersGetTheirOwnReplies() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("calc")
        try await space.add("text")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<32 {
                group.addTask {
                    for i in 0..<300 {
                        if i % 3 == 0 {
                            let s = "t\(t)i\(i)"
                            let r = try await space.call("text", "upper", .string(s))
                            #expect(r == .string(s.uppercased()))
                        } else {
                            let r = try await space.call("calc", "math.add", .int(Int64(t)), .int(Int64(i)))
                            #expect(r == .int(Int64(t + i)))
                        }
                        if i % 50 == 0 {
                            // Errors interleaved with successes are matched to the right caller too.
                            let e = await spaceError { try await space.call("calc", "math.add", 1) }
                            #expect(e?.code == .arityMismatch)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func slowCallsDoNotStallOthers() async throws {
        // greet.fib is fast, but a 1 MB string round trip is comparatively slow; mixing them checks
        // that replies keep flowing when the caller's read times out and the reader thread takes over.
        let space = try await launch()
        defer { Task { await space.destroy() } }
        try await space.add("text")
        try await space.add("greeter")
        let big = String(repeating: "y", count: 200_000)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<20 {
                        let r = try await space.call("text", "repeat", .string(big), 5)
                        #expect(r.string?.utf8.count == 1_000_000)
                    }
                }
                group.addTask {
                    for n in 0..<200 {
                        _ = try await space.call("greeter", "greet.fib", .int(Int64(n % 90)))
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
