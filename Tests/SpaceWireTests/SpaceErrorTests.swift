// SpaceError: the description format and the stable code names (public `--json` error codes).
import Testing
@testable import SpaceWire

@Suite("SpaceError")
struct SpaceErrorTests {
    @Test func codeRawValuesAreStable() {
        // These strings are a public contract: `--json` output and the error frame carry them.
        let codes: [(SpaceError.Code, String)] = [
            (.libraryNotFound, "libraryNotFound"),
            (.loadFailed, "loadFailed"),
            (.unknownPackage, "unknownPackage"),
            (.unknownFunction, "unknownFunction"),
            (.badArgument, "badArgument"),
            (.arityMismatch, "arityMismatch"),
            (.declarationError, "declarationError"),
            (.unsupportedType, "unsupportedType"),
            (.alreadyAdded, "alreadyAdded"),
            (.initFailed, "initFailed"),
            (.notRunning, "notRunning"),
            (.crashed, "crashed"),
            (.spawnFailed, "spawnFailed"),
            (.timedOut, "timedOut"),
            (.protocolError, "protocolError"),
            (.tooLarge, "tooLarge"),
            (.systemError, "systemError"),
            (.invalidConfiguration, "invalidConfiguration"),
            (.cancelled, "cancelled"),
        ]
        for (code, name) in codes {
            #expect(code.rawValue == name)
            #expect(code.description == name)
            #expect(SpaceError.Code(rawValue: name) == code)
        }
        #expect(Set(codes.map(\.1)).count == codes.count)
    }

    @Test func descriptionFormat() {
        #expect(SpaceError(.unknownFunction, "no f").description == "unknownFunction: no f")
        #expect(SpaceError(.systemError, "read failed", errno: 4).description == "systemError: read failed (errno 4)")
        #expect("\(SpaceError(.tooLarge, ""))" == "tooLarge: ")
        let withArg = SpaceError(.badArgument, "arg 0", argument: SpaceError.Argument(index: 0, expected: "int", got: "string"))
        #expect(withArg.description == "badArgument: arg 0")
    }

    @Test func fieldsAndEquality() {
        let arg = SpaceError.Argument(index: 3, expected: "double", got: "string \"x\"")
        let e = SpaceError(.badArgument, "m", errno: 1, argument: arg)
        #expect(e.code == .badArgument)
        #expect(e.message == "m")
        #expect(e.errno == 1)
        #expect(e.argument == arg)
        #expect(e.argument?.index == 3 && e.argument?.expected == "double" && e.argument?.got == "string \"x\"")
        #expect(e != SpaceError(.badArgument, "m", errno: 1))
        #expect(SpaceError(.crashed, "a") == SpaceError(.crashed, "a"))
        #expect(SpaceError(.crashed, "a").errno == nil)
        #expect(SpaceError(.crashed, "a").argument == nil)
        // A typed throw is catchable as SpaceError without casting.
        func fail() throws(SpaceError) { throw e }
        do { try fail() } catch { #expect(error.code == .badArgument) }
    }
}
