import Space
import SpaceWire
import Synchronization

/// What happened in the daemon, newest last: spaces made, plugins added, hosts started, stopped
/// and crashed, kills and reloads. `space events` shows it; `--follow` streams new entries.
final class EventLog: Sendable {
    /// Entries kept.
    static let capacity = 1000
    private let state = Mutex(State())

    private struct State {
        var entries: [Value] = []
        var sequence: UInt64 = 0
        var followers: [(connection: Connection, id: UInt32, space: String?)] = []
    }

    /// Records an event: `{"time", "space", "event", ...details}`; streams it to followers.
    func append(space: String?, _ event: String, _ details: [String: Value]) {
        var fields: [Value.Field] = [
            .init("time", .string(isoTime(wallClockMilliseconds()))),
            .init("space", space.map { .string($0) } ?? .null),
            .init("event", .string(event)),
        ]
        for key in details.keys.sorted() { fields.append(.init(key, details[key]!)) }
        let entry = Value.object(fields)
        let (targets, sequence): ([(Connection, UInt32)], UInt64) = state.withLock { s in
            s.entries.append(entry)
            if s.entries.count > Self.capacity { s.entries.removeFirst(s.entries.count - Self.capacity) }
            s.sequence += 1
            s.followers.removeAll { $0.connection.isClosed || !$0.connection.isFollowing($0.id) }
            let targets = s.followers.filter { $0.space == nil || $0.space == space }.map { ($0.connection, $0.id) }
            return (targets, s.sequence)
        }
        for (c, id) in targets {
            var w = WireWriter(capacity: 64 + entry.encodedSize)
            w.beginFrame(.callbackEvent, id: id)
            CallbackEvent(slot: 0, sequence: sequence, arguments: [entry]).encode(into: &w)
            w.endFrame()
            c.send(w.bytes)
        }
    }

    /// The entries kept, of one space or all.
    func recent(space: String?) -> [Value] {
        let all = state.withLock { $0.entries }
        guard let space else { return all }
        return all.filter { $0[field: "space"]?.string == space }
    }

    /// Streams new entries (of `space`, or all) to request `id` of `connection` until it cancels.
    func follow(_ connection: Connection, _ id: UInt32, space: String?) {
        state.withLock { $0.followers.append((connection, id, space)) }
    }

    /// The daemon stops: every stream ends.
    func endFollowers() {
        let all = state.withLock { s in
            let f = s.followers
            s.followers.removeAll()
            return f
        }
        for f in all where f.connection.isFollowing(f.id) {
            var w = WireWriter(capacity: 24)
            w.beginFrame(.callbackRelease, id: f.id)
            w.write(UInt64(0))
            w.endFrame()
            f.connection.send(w.bytes)
        }
    }
}
