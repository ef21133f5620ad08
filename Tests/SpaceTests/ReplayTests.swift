@testable import Space
import SpaceWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The replayed add of a respawn: the host answers with the name only and makes each manifest
/// entry into a function when it is first called (protocol.md, `add` flags).
@Suite("Replayed adds")
struct ReplayTests {
    /// A bare host of `config`, spoken to over its channel.
    func spawnHost(_ config: SpaceConfiguration = SpaceConfiguration()) throws -> HostProcess {
        try HostProcess.spawn(config, sandbox: try SandboxPlan(config), libraries: [], readPaths: []) { _, _ in }
    }

    func add(_ host: HostProcess, _ request: AddRequest) async throws -> Value {
        try await host.channel.request { w, id in
            w.beginFrame(.add, id: id)
            request.encode(into: &w)
            w.endFrame()
        }
    }

    func call(_ host: HostProcess, _ package: String, _ function: String, _ arguments: [Value]) async throws -> Value {
        try await host.channel.request { w, id in
            w.writeCall(id: id, package: package, function: function, arguments: arguments)
        }
    }

    func stop(_ host: HostProcess) {
        host.channel.close(with: SpaceError(.notRunning, "test over"))
        host.kill()
        host.channel.stopThread()
    }

    @Test func aReplayAnswersWithTheNameAndEachFunctionWorksOnItsFirstCall() async throws {
        let host = try spawnHost()
        defer { stop(host) }
        let first = try await add(host, AddRequest(library: "calc"))
        #expect((first[field: "functions"]?.array?.count ?? 0) > 30)
        let replay = try await add(host, AddRequest(library: "calc", alias: "again", isReplay: true))
        #expect(replay == .object([.init("name", .string("again"))]))
        // Scalars, structs from the manifest's shared types, a variadic function and an allocation
        // freed by its SPACE_FREE function: each made on its first call, the same on the second.
        for _ in 0..<2 {
            #expect(try await call(host, "again", "math.add", [2, 3]) == 5)
            let mid = try await call(host, "again", "geo.midpoint", [["x": 0.0, "y": 0.0], ["x": 4.0, "y": 2.0]])
            #expect(mid == ["x": 2.0, "y": 1.0])
            #expect(try await call(host, "again", "math.sum_ints", [3, 1, 2, 3]) == 6)
            let counter = try await call(host, "again", "counter.new", [40])
            #expect(try await call(host, "again", "counter.add", [counter, 2]) == 42)
        }
        // What the manifest does not declare is still unknown, and the host serves on.
        await #expect(throws: SpaceError.self) { _ = try await call(host, "again", "math.nope", []) }
        #expect(try await call(host, "calc", "math.add", [1, 1]) == 2)
    }

    @Test func aRespawnedSpaceServesEveryKindOfFunctionFromItsReplayedAdds() async throws {
        let space = try await launch()
        defer { Task { await space.destroy() } }
        let info = try await space.add("calc")
        try await space.add("text")
        await space.kill()
        #expect(space.isKilled)
        // The first call respawns and replays both adds; the rest run on the new host.
        #expect(try await space.call("calc", "math.add", 20, 22) == 42)
        #expect(!space.isKilled)
        #expect(try await space.call("calc", "geo.midpoint", ["x": 0.0, "y": 0.0], ["x": 2.0, "y": 2.0]) == ["x": 1.0, "y": 1.0])
        #expect(try await space.call("text", "upper", "abc") == "ABC")
        // The package's description is the first add's, kept by the client.
        #expect(space.addedPackages.map(\.package) == ["calc", "text"])
        #expect((info[field: "functions"]?.array?.count ?? 0) > 30)
    }
}
