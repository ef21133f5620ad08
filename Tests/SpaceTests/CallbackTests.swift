import Space
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Collects values from handlers running on the channel's thread.
final class Collector<T: Sendable>: Sendable {
    private let items = Mutex<[T]>([])
    func add(_ x: T) { items.withLock { $0.append(x) } }
    var all: [T] { items.withLock { $0 } }
    var count: Int { items.withLock { $0.count } }
}

/// The host's callback counters (`space.stats`).
func callbackStats(_ space: Space) async throws -> Value {
    try await space.call("space", "stats")[field: "callbacks"]!
}

@Suite("Callbacks through the real host")
struct CallbackTests {
    @Test func timerFiresFromABackgroundThreadBeforeTheResult() async throws {
        let space = try await launch()
        try await space.add("events")
        let ticks = Collector<Int64>()
        let r = try await space.call("events", "timer.every", 1, 3, .callback { args in ticks.add(args[0].int64!) })
        #expect(r == .int(3))
        #expect(ticks.all == [1, 2, 3])
        await space.destroy()
    }

    @Test func streamSeesInvocationsAfterTheCallReturned() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "timer.start", 2, 5, .callback(arity: 1))
        #expect(call.result == .int(0))
        var seen: [CallbackInvocation] = []
        for try await inv in call.invocations { seen.append(inv) }
        #expect(seen.map(\.arguments) == (1...5).map { [.int(Int64($0))] })
        #expect(seen.map(\.sequence) == [0, 1, 2, 3, 4])
        #expect(seen.allSatisfy { $0.slot == 0 })
        let stats = try await callbackStats(space)
        #expect(stats[field: "live"] == .int(0))
        #expect(stats[field: "made"] == stats[field: "freed"])
        await space.destroy()
    }

    @Test func qsortComparatorAnsweredBySwift() async throws {
        let space = try await launch()
        try await space.add("sort")
        let xs: [Value] = [5, -3, 9, 0, 2, 2, 100, -50]
        let r = try await space.call("sort", "array.sort", .value(.array(xs)), .callback { args -> Value in
            let a = args[0].int64!, b = args[1].int64!
            return .int(a < b ? -1 : a > b ? 1 : 0)
        })
        #expect(r[field: "xs"] == .array([-50, -3, 0, 2, 2, 5, 9, 100]))
        // Descending, the other way round.
        let d = try await space.call("sort", "array.sort", .value(.array(xs)), .callback { args -> Value in
            .int(args[1].int64! < args[0].int64! ? -1 : args[1].int64! > args[0].int64! ? 1 : 0)
        })
        #expect(d[field: "xs"] == .array([100, 9, 5, 2, 2, 0, -3, -50]))
        let stats = try await callbackStats(space)
        #expect(stats[field: "live"] == .int(0))
        #expect(stats[field: "made"] == .int(2))
        #expect(stats[field: "freed"] == .int(2))
        await space.destroy()
    }

    @Test func mapWithReturnedValues() async throws {
        let space = try await launch()
        try await space.add("sort")
        let r = try await space.call("sort", "array.map", [1.5, 2.0, -4.0], .callback { args -> Value in
            .double(args[0].double! * 10)
        })
        #expect(r[field: "out"] == .array([15.0, 20.0, -40.0]))
        await space.destroy()
    }

    @Test func everyArgumentTypeIsMarshaled() async throws {
        let space = try await launch()
        try await space.add("events")
        let seen = Collector<[Value]>()
        let r = try await space.call("events", "probe.types", .callback { args in seen.add(args) })
        #expect(r == .int(2))
        let all = seen.all
        try #require(all.count == 2)
        #expect(all[0] == [-5, .uint(UInt64.max), 1.5, -2.25, true, "héllo", ["a": 7, "b": 0.5], ["a": -1, "b": 3.0],
                           .bytes([0, 1, 2, 255])])
        #expect(all[1] == [-5, .uint(UInt64.max), 1.5, -2.25, true, nil, ["a": 7, "b": 0.5], nil, nil])
        await space.destroy()
    }

    @Test func returningCallbacksOfEveryScalarType() async throws {
        let space = try await launch()
        try await space.add("events")
        #expect(try await space.call("events", "probe.ask_double", 2.5, .callback { args -> Value in .double(args[0].double! * 2) }) == .double(5))
        #expect(try await space.call("events", "probe.ask_bool", 4, .callback { args -> Value in .bool(args[0].int64! % 2 == 0) }) == .bool(true))
        #expect(try await space.call("events", "probe.ask_bool", 3, .callback { args -> Value in .bool(args[0].int64! % 2 == 0) }) == .bool(false))
        #expect(try await space.call("events", "probe.ask_u8", .callback { _ -> Value in 255 }) == .int(255))
        #expect(try await space.call("events", "probe.ask_i64", 10, .callback { args -> Value in .int(args[0].int64! * args[1].int64!) }) == .int(110))
        #expect(try await space.call("events", "probe.ask_i64", -3, .callback { args -> Value in .int(args[0].int64! * args[1].int64!) }) == .int(6))
        await space.destroy()
    }

    @Test func aWrongAnswerGivesTheZeroValueAndAFault() async throws {
        let space = try await launch()
        try await space.add("events")
        // Out of range for uint8_t: the plugin gets 0, the call reports the fault.
        let e = await spaceError {
            _ = try await space.call("events", "probe.ask_u8", .callback { _ -> Value in 300 })
        }
        #expect(e?.code == .callbackFailed)
        #expect(e?.message.contains("out of range") == true)
        // Through a stream: the result is the zero value and the stream fails with the fault.
        let call = try await space.stream("events", "probe.ask_double", 1.0, .callback { _ -> Value in "nope" })
        #expect(call.result == .double(0))
        let failure = await spaceError { for try await _ in call.invocations {} }
        #expect(failure?.code == .callbackFailed)
        #expect(failure?.message.contains("must be double") == true)
        // A handler that throws: zero for the plugin, the error for the caller.
        struct Nope: Error {}
        let thrown = await spaceError {
            _ = try await space.call("events", "probe.ask_i64", 1, .callback { _ -> Value in throw Nope() })
        }
        #expect(thrown?.code == .callbackFailed)
        #expect(thrown?.message.contains("Nope") == true)
        // Nothing is stuck: the next call works.
        #expect(try await space.call("events", "probe.ask_u8", .callback { _ -> Value in 7 }) == .int(7))
        await space.destroy()
    }

    @Test func twoSlotsAreNumberedInArgumentOrder() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "probe.twice", .callback(arity: 1), .callback(arity: 1))
        #expect(call.result == .int(3))
        var seen: [CallbackInvocation] = []
        for try await inv in call.invocations { seen.append(inv) }
        #expect(seen == [CallbackInvocation(slot: 0, sequence: 0, arguments: [1]),
                         CallbackInvocation(slot: 1, sequence: 0, arguments: [2]),
                         CallbackInvocation(slot: 0, sequence: 1, arguments: [3])])
        await space.destroy()
    }

    @Test func feedStreamsLikeAWebSocket() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "feed.open", "news", .callback(arity: 2))
        guard case .handle = call.result else {
            Issue.record("feed.open should return a handle, got \(call.result)")
            return
        }
        var events: [[Value]] = []
        var iterator = call.invocations.makeAsyncIterator()
        while events.count < 3, let inv = try await iterator.next() { events.append(inv.arguments) }
        #expect(events[0] == ["open", "news"])
        #expect(events[1] == ["message", "news #1"])
        #expect(events[2] == ["message", "news #2"])
        // A callback on the calling thread, during another call.
        #expect(try await space.call("events", "feed.send", .value(call.result), "hi") == .int(2))
        let sent = try await space.call("events", "feed.close", .value(call.result))
        var rest: [[Value]] = []
        while let inv = try await iterator.next() { rest.append(inv.arguments) }
        #expect(rest.contains(["echo", "hi"]))
        #expect(rest.last == ["close", "news"])
        let messages = (events + rest).filter { $0.first == "message" }.count
        #expect(sent == .int(Int64(messages)))
        let stats = try await callbackStats(space)
        #expect(stats[field: "live"] == .int(0))
        await space.destroy()
    }

    @Test func eightThreadsTimesTenThousandDeliveredExactlyOnce() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "storm.run", 8, 10_000, .callback(arity: 2))
        #expect(call.result == .int(80_000))
        var seen = [[Bool]](repeating: [Bool](repeating: false, count: 10_000), count: 8)
        var count = 0
        var sequence: UInt64 = 0
        var lastPerThread = [Int64](repeating: -1, count: 8)
        for try await inv in call.invocations {
            #expect(inv.sequence == sequence, "sequence numbers are dense and in order")
            sequence += 1
            let t = Int(inv.arguments[0].int64!), i = Int(inv.arguments[1].int64!)
            #expect(!seen[t][i], "invocation (\(t), \(i)) delivered twice")
            #expect(Int64(i) > lastPerThread[t], "a thread's invocations arrive in its order")
            lastPerThread[t] = Int64(i)
            seen[t][i] = true
            count += 1
        }
        #expect(count == 80_000)
        #expect(seen.allSatisfy { $0.allSatisfy { $0 } })
        let stats = try await callbackStats(space)
        #expect(stats[field: "live"] == .int(0))
        #expect(stats[field: "made"] == stats[field: "freed"])
        await space.destroy()
    }

    @Test func returningCallbacksFromEightThreadsAtOnce() async throws {
        let space = try await launch()
        try await space.add("events")
        let r = try await space.call("events", "storm.ask", 8, 500, .callback { args -> Value in
            .int(args[0].int64! * 1000 + args[1].int64!)
        })
        // Σ over t < 8, i < 500 of (1000 t + i)
        let expected = (0..<8).reduce(Int64(0)) { acc, t in acc + (0..<500).reduce(Int64(0)) { $0 + Int64(t) * 1000 + Int64($1) } }
        #expect(r == .int(expected))
        await space.destroy()
    }

    @Test func waitingCallbackThreadsDoNotBlockOtherCalls() async throws {
        let space = try await launch()
        try await space.add("events")
        try await space.add("calc")
        let answered = Collector<Int64>()
        #expect(try await space.call("events", "storm.spawn", 4, 200, .callback { args -> Value in
            answered.add(args[1].int64!)
            return .int(1)
        }) == .int(0))
        // Calls keep being served while plugin threads wait for answers.
        for i in 0..<50 {
            #expect(try await space.call("calc", "math.add", .value(.int(Int64(i))), 1) == .int(Int64(i) + 1))
        }
        #expect(try await space.call("events", "storm.wait") == .int(800))
        #expect(answered.count == 800)
        #expect(await eventually(2) { true })
        let stats = try await callbackStats(space)
        #expect(stats[field: "live"] == .int(0))
        await space.destroy()
    }

    @Test func cancelledCallbacksReturnZeroAndAreCounted() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "later.keep", .callback { args -> Value in .int(args[0].int64! + 1) })
        #expect(try await space.call("events", "later.fire", 41) == .int(42))
        #expect(try await space.call("events", "later.fire_thread", 1) == .int(2))
        call.cancel()
        var seen = 0
        for try await _ in call.invocations { seen += 1 }
        #expect(seen == 2)
        // The plugin still holds the pointer: calling it returns the zero value, without a crash.
        #expect(try await space.call("events", "later.fire", 41) == .int(0))
        #expect(try await space.call("events", "later.fire_thread", 41) == .int(0))
        var stats = try await callbackStats(space)
        #expect(stats[field: "revoked"] == .int(1))
        #expect(stats[field: "dropped"] == .int(2))
        #expect(try await space.call("events", "later.release") == .int(1))
        stats = try await callbackStats(space)
        #expect(stats[field: "revoked"] == .int(0))
        #expect(stats[field: "live"] == .int(0))
        #expect(stats[field: "made"] == stats[field: "freed"])
        await space.destroy()
    }

    @Test func aConsumerThatStopsCancels() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "feed.open", "x", .callback(arity: 2))
        let first = Collector<Int>()
        let consumer = Task {
            for try await _ in call.invocations { first.add(1) }
        }
        #expect(await eventually(5) { first.count > 0 })
        consumer.cancel()  // a cancelled consumer cancels the call's callbacks
        var revoked = false
        for _ in 0..<200 where !revoked {
            revoked = try await callbackStats(space)[field: "revoked"] == .int(1)
            if !revoked { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(revoked)
        #expect(try await space.call("events", "feed.close", .value(call.result)) != .int(-1))
        await space.destroy()
    }

    @Test func unprototypedCallbackTakesIntptrArgumentsFromCbN() async throws {
        let space = try await launch()
        try await space.add("events")
        let seen = Collector<[Value]>()
        #expect(try await space.call("events", "later.unprototyped", 21, .callback(arity: 2) { args in seen.add(args) }) == .int(2))
        #expect(seen.all == [[21, 42]])
        let e = await spaceError { _ = try await space.call("events", "later.unprototyped", 1, .callback { _ in }) }
        #expect(e?.code == .badArgument)
        #expect(e?.message.contains("cb:N") == true)
        await space.destroy()
    }

    @Test func badCallbackArgumentsAreTypedErrorsBeforeThePluginRuns() async throws {
        let space = try await launch { $0.maxCallbacks = 3 }
        try await space.add("events")
        try await space.add("calc")
        // Wrong N.
        var e = await spaceError { _ = try await space.call("events", "timer.every", 1, 1, .callback(arity: 2) { _ in }) }
        #expect(e?.code == .badArgument)
        #expect(e?.message.contains("cb:2") == true)
        #expect(e?.argument?.index == 2)
        // cb: where no function pointer is declared.
        e = await spaceError { _ = try await space.call("calc", "math.add", 1, .value(.callback(arity: 1))) }
        #expect(e?.code == .badArgument)
        #expect(e?.message.contains("function pointer") == true)
        // A function pointer left without cb:.
        e = await spaceError { _ = try await space.call("events", "timer.every", 1, 1, 5) }
        #expect(e?.code == .badArgument)
        #expect(e?.message.contains("cb:N") == true)
        // Too many live callbacks.
        // (later.keep releases the callback it held before, so three keeps leave one.)
        for _ in 0..<3 { _ = try await space.stream("events", "later.keep", .callback(arity: 1)) }
        var stats = try await callbackStats(space)
        #expect(stats[field: "made"] == .int(3))
        #expect(stats[field: "freed"] == .int(2))
        let feeds = [try await space.stream("events", "feed.open", "a", .callback(arity: 2)),
                     try await space.stream("events", "feed.open", "b", .callback(arity: 2))]
        e = await spaceError { _ = try await space.stream("events", "feed.open", "c", .callback(arity: 2)) }
        #expect(e?.code == .tooLarge)
        #expect(e?.message.contains("maxCallbacks") == true)
        // Nothing was lost: the next call works, and closing frees room again.
        for f in feeds { _ = try await space.call("events", "feed.close", .value(f.result)) }
        #expect(try await space.call("calc", "math.add", 2, 2) == .int(4))
        stats = try await callbackStats(space)
        // The one later.keep still holds (its stream was dropped, so it is revoked).
        #expect(stats[field: "live"] == .int(0))
        #expect(stats[field: "revoked"] == .int(1))
        await space.destroy()
    }

    @Test func aCrashEndsLiveStreamsWithTheReason() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "feed.open", "z", .callback(arity: 2))
        var iterator = call.invocations.makeAsyncIterator()
        _ = try await iterator.next()
        kill(space.pid!, SIGKILL)
        let e = await spaceError { while try await iterator.next() != nil {} }
        #expect(e?.code == .crashed)
        // The next call respawns.
        try await space.add("calc")
        #expect(try await space.call("calc", "math.add", 1, 1) == .int(2))
        await space.destroy()
    }

    @Test func removingThePluginFreesItsCallbacks() async throws {
        let space = try await launch()
        try await space.add("events")
        let call = try await space.stream("events", "later.keep", .callback(arity: 1))
        try await space.remove("events")
        for try await _ in call.invocations {}
        let stats = try await callbackStats(space)
        #expect(stats[field: "live"] == .int(0))
        #expect(stats[field: "revoked"] == .int(0))
        #expect(stats[field: "made"] == stats[field: "freed"])
        await space.destroy()
    }
}
