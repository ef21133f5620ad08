import Space
import SpaceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A named space of the daemon: the `Space` that supervises its host, what was added to it (for
/// `status` and for typing CLI arguments), and its counters.
final class ManagedSpace: Sendable {
    let name: String
    let space: Space
    let created: UInt64
    private let state = Mutex(Counters())

    struct Counters {
        /// Wall-clock milliseconds of the last request, or 0.
        var lastUse: UInt64 = 0
        /// The add replies, by package name, in add order.
        var packages: [(name: String, info: Value)] = []
    }

    init(name: String, configuration: SpaceConfiguration) {
        self.name = name
        self.space = Space(lazy: configuration)
        self.created = wallClockMilliseconds()
    }

    func touch() {
        let now = wallClockMilliseconds()
        state.withLock { $0.lastUse = now }
    }

    func added(_ info: Value) {
        guard let name = info[field: "name"]?.string else { return }
        state.withLock { c in
            c.packages.removeAll { $0.name == name }
            c.packages.append((name, info))
        }
    }

    func removed(_ package: String) {
        state.withLock { c in c.packages.removeAll { $0.name == package } }
    }

    var counters: Counters { state.withLock { $0 } }

    /// The add reply's entry for `function` of `package`.
    func describe(_ package: String, _ function: String) throws(SpaceError) -> Value {
        let packages = state.withLock { $0.packages }
        guard let info = packages.first(where: { $0.name == package })?.info else {
            let known = packages.map(\.name)
            throw SpaceError(.unknownPackage, "no package '\(package)' in space '\(name)'" +
                             (known.isEmpty ? " (nothing added yet: space add LIB)" : " (added: \(known.joined(separator: ", ")))"))
        }
        let functions = info[field: "functions"]?.array ?? []
        let underscored = String(function.map { $0 == "." ? "_" : $0 })
        if let f = functions.first(where: { $0[field: "name"]?.string == function })
            ?? functions.first(where: { $0[field: "name"]?.string == underscored }) {
            return f
        }
        throw SpaceError(.unknownFunction, "\(package) has no function '\(function)'")
    }

    /// One line of `ls`.
    func summary() -> Value {
        let c = counters
        let stats = space.statistics
        return .object([
            .init("space", .string(name)),
            .init("state", .string(space.stateName)),
            .init("pid", space.isKilled ? .null : space.pid.map { .int(Int64($0)) } ?? .null),
            .init("plugins", .array(c.packages.map { .string($0.name) })),
            .init("calls", .uint(stats.succeeded + stats.failed)),
            .init("failures", .uint(stats.failed)),
            .init("lastUse", c.lastUse == 0 ? .null : .string(isoTime(c.lastUse))),
        ])
    }

    /// `status`: the summary, what each plugin is, why it last stopped, the sandbox layers.
    /// `sandboxReport` is the running host's `space.sandbox` answer (why layers are missing).
    func status(sandboxReport: Value? = nil) -> Value {
        let c = counters
        guard case .object(var fields) = summary() else { return summary() }
        fields[3] = .init("plugins", .array(c.packages.map { p in
            .object([
                .init("name", .string(p.name)),
                .init("version", p.info[field: "version"] ?? .null),
                .init("path", p.info[field: "path"] ?? .null),
                .init("functions", .int(Int64(p.info[field: "functions"]?.array?.count ?? 0))),
            ])
        }))
        fields.append(.init("created", .string(isoTime(created))))
        if let reason = space.stopReason {
            fields.append(.init("lastStop", .object([.init("code", .string(reason.code.rawValue)),
                                                     .init("message", .string(reason.message))])))
        }
        // What the running host reported in its hello; nothing while no host runs.
        let running = space.hostInfo
        let sandbox = space.configuration.sandbox
        let held = running?.layers ?? []
        fields.append(.init("sandbox", .object([
            .init("profile", .string(sandbox.profile.rawValue)),
            .init("layers", .array(held.names.map { .string($0) })),
            // Asked for and not in force (known once a host has reported), and why.
            .init("missing", .array(running == nil ? [] : sandbox.layers.subtracting(held).names.map { .string($0) })),
            .init("notes", sandboxReport?[field: "notes"] ?? .array([])),
            .init("reported", .bool(running != nil)),
        ])))
        let config = space.configuration
        let stats = space.statistics
        fields.append(.init("workers", stats.value[field: "workers"] ?? .array([])))
        fields.append(.init("sequentialDeaths", .int(Int64(stats.sequentialDeaths))))
        fields.append(.init("inactivityTimeout", .int(Int64(config.inactivityTimeout))))
        fields.append(.init("callTimeout", .int(Int64(config.callTimeout))))
        return .object(fields)
    }
}

/// Milliseconds since the epoch.
func wallClockMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

/// `2026-11-21T10:04:05.123Z`.
func isoTime(_ milliseconds: UInt64) -> String {
    var t = time_t(milliseconds / 1000)
    var tm = tm()
    gmtime_r(&t, &tm)
    func pad(_ v: Int32, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T" +
        "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
}
