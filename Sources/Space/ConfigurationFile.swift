// The JSON configuration file (config.json): reading it into a `SpaceConfiguration`.
//
// Key names follow node-package-api's and luster's. Keys that later milestones implement are accepted
// and type-checked today, with a warning, so a configuration written for the full product loads.

import SpaceWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SpaceConfiguration {
    /// Reads a configuration from JSON text. Unspecified keys keep the defaults of ``init(inactivityTimeout:paths:control:limits:hostExecutable:environment:)``.
    ///
    /// Keys read today (all times in milliseconds):
    /// - `inactivityTimeout`: integer ≥ 0 (0 never stops an idle host).
    /// - `paths`: array of non-empty strings; relative entries are resolved against `baseDirectory`.
    /// - `control.forkTimeout`, `control.stopTimeout`: integers > 0.
    /// - `maxCallbacks`: integer > 0, the most callbacks a host holds at once.
    /// - `daemon.idleTimeout`: integer ≥ 0, how long the daemon lives with no space running and no
    ///   client connected (0, the default: forever).
    ///
    /// `sandbox.*` (docs/sandbox.md) and `limits.*` are checked key by key. Any other key is ignored with a warning naming its
    /// full dotted path (`"unknown key 'control.forkTimout' ignored"`).
    ///
    /// - Parameters:
    ///   - text: the JSON document; its top level must be an object.
    ///   - baseDirectory: the directory relative `paths` entries are resolved against (the configuration
    ///     file's directory); nil leaves them as written.
    ///   - warnings: receives one message per ignored key, in document order (only on success).
    /// - Throws: ``SpaceError/Code/invalidConfiguration`` naming the key and what was wrong with it
    ///   (`"config.json: 'control.stopTimeout' must be a positive integer (milliseconds), got \"5s\""`),
    ///   or the JSON syntax error with its line and column.
    public init(json text: String, baseDirectory: String? = nil, warnings: inout [String]) throws(SpaceError) {
        try self.init(json: text, baseDirectory: baseDirectory, source: "config.json", warnings: &warnings)
    }

    /// Reads the configuration file at `path` (see ``init(json:baseDirectory:warnings:)`` for the keys).
    ///
    /// Relative `paths` entries are resolved against the file's directory (made absolute with the
    /// current directory when `path` is relative). Error messages name `path`.
    ///
    /// - Throws: ``SpaceError/Code/invalidConfiguration`` when the file does not exist or cannot be read
    ///   (with ``SpaceError/errno``), is larger than `WireLimits.default.maxFrameSize`, is not UTF-8,
    ///   is not valid JSON, or holds a wrong value.
    public static func load(path: String, warnings: inout [String]) throws(SpaceError) -> SpaceConfiguration {
        let bytes = try readConfigurationFile(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SpaceError(.invalidConfiguration, "\(path): the configuration file is not valid UTF-8")
        }
        return try SpaceConfiguration(json: text, baseDirectory: directory(of: path), source: path,
                                      warnings: &warnings)
    }

    /// The configuration file to read, in the documented order: `explicit` (`--config`; it must
    /// exist), `SPACE_CONFIG` (it must exist), `./config.json`, `~/.config/space/config.json`; nil
    /// when none of the optional ones exists (the built-in defaults apply).
    public static func locate(explicit: String? = nil) throws(SpaceError) -> String? {
        func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
        if let explicit {
            guard exists(explicit) else {
                throw SpaceError(.invalidConfiguration, "\(explicit): the configuration file does not exist (--config)", errno: ENOENT)
            }
            return explicit
        }
        if let env = getenv("SPACE_CONFIG").map({ String(cString: $0) }), !env.isEmpty {
            guard exists(env) else {
                throw SpaceError(.invalidConfiguration, "\(env): the configuration file does not exist (SPACE_CONFIG)", errno: ENOENT)
            }
            return env
        }
        if exists("config.json") { return absolutePath("config.json") }
        if let home = getenv("HOME").map({ String(cString: $0) }), !home.isEmpty {
            let path = home + "/.config/space/config.json"
            if exists(path) { return path }
        }
        return nil
    }

    /// Locates (``locate(explicit:)``) and loads the configuration; the defaults when there is none.
    /// Returns the path read, if any.
    public static func find(explicit: String? = nil, warnings: inout [String]) throws(SpaceError) -> (SpaceConfiguration, path: String?) {
        guard let path = try locate(explicit: explicit) else { return (SpaceConfiguration(), nil) }
        return (try load(path: absolutePath(path), warnings: &warnings), absolutePath(path))
    }

    /// `path` made absolute against the current directory.
    static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return path }
        let cwd = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return cwd + "/" + path
    }

    /// The parser behind both public entry points; `source` prefixes every error message.
    init(json text: String, baseDirectory: String?, source: String, warnings: inout [String]) throws(SpaceError) {
        self.init()
        let document: Value
        do throws(SpaceError) {
            document = try Value(json: text)
        } catch {
            throw SpaceError(.invalidConfiguration, "\(source): \(error.message)")
        }
        guard case .object(let members) = document else {
            throw SpaceError(.invalidConfiguration,
                             "\(source): the configuration must be a JSON object, got \(document.kindName)")
        }
        var check = ConfigurationChecker(source: source)
        for member in members {
            let key = member.name
            let value = member.value
            switch key {
            case "inactivityTimeout":
                inactivityTimeout = try check.integer(value, key, minimum: 0, "a non-negative integer (milliseconds)")
            case "paths":
                paths = try check.paths(value, key).map { resolve($0, against: baseDirectory) }
            case "control":
                for sub in try check.object(value, key) {
                    let subKey = "control." + sub.name
                    switch sub.name {
                    case "forkTimeout":
                        control.forkTimeout = try check.integer(sub.value, subKey, minimum: 1,
                                                                "a positive integer (milliseconds)")
                    case "stopTimeout":
                        control.stopTimeout = try check.integer(sub.value, subKey, minimum: 1,
                                                                "a positive integer (milliseconds)")
                    case "exitThreshold":
                        control.exitThreshold = try check.integer(sub.value, subKey, minimum: 0,
                                                                  "a non-negative integer (milliseconds)")
                    case "allowedSequentialDeaths":
                        control.allowedSequentialDeaths = try check.integer(sub.value, subKey, minimum: 0,
                                                                            "a non-negative integer")
                    default:
                        check.unknown(subKey)
                    }
                }
            case "daemon":
                for sub in try check.object(value, key) {
                    let subKey = "daemon." + sub.name
                    switch sub.name {
                    case "idleTimeout":
                        daemonIdleTimeout = try check.integer(sub.value, subKey, minimum: 0,
                                                              "a non-negative integer (milliseconds; 0 = never)")
                    default:
                        check.unknown(subKey)
                    }
                }
            case "maxCallbacks":
                maxCallbacks = try check.integer(value, key, minimum: 1, "a positive integer")
            case "workers":
                workers = try check.integer(value, key, minimum: 1, "a positive integer")
                if workers > 256 { throw check.invalid(key, "at most 256", value) }
            case "callTimeout":
                callTimeout = try check.integer(value, key, minimum: 0, "a non-negative integer (milliseconds; 0 = none)")
            case "limits":
                for sub in try check.object(value, key) {
                    let subKey = "limits." + sub.name
                    func count(_ what: String) throws(SpaceError) -> Int {
                        try check.integer(sub.value, subKey, minimum: 0, "a non-negative integer (\(what); 0 = no limit)")
                    }
                    func positive() throws(SpaceError) -> Int {
                        try check.integer(sub.value, subKey, minimum: 1, "a positive integer")
                    }
                    switch sub.name {
                    case "maxCallsPerSecond": quotas.maxCallsPerSecond = try count("calls per second")
                    case "maxArgumentBytes": quotas.maxArgumentBytes = try count("bytes")
                    case "maxInFlight": quotas.maxInFlight = try count("calls")
                    case "maxQueued": quotas.maxQueued = try count("calls")
                    case "maxMemoryMB": quotas.maxMemoryMB = try count("MiB")
                    case "maxCpuSeconds": sandbox.maxCpuSeconds = try count("seconds")
                    case "maxOpenFiles": sandbox.maxOpenFiles = try count("files")
                    case "maxFileSizeMB": sandbox.maxFileSizeMB = try count("MiB")
                    case "maxFrameSize": limits.maxFrameSize = try positive()
                    case "maxArguments": limits.maxArguments = try positive()
                    case "maxDepth": limits.maxDepth = try positive()
                    case "maxStringLength": limits.maxStringLength = try positive()
                    default: check.unknown(subKey)
                    }
                }
            case "sandbox":
                for sub in try check.object(value, key) {
                    let subKey = "sandbox." + sub.name
                    func oneOf<E: RawRepresentable & CaseIterable>(_ type: E.Type) throws(SpaceError) -> E where E.RawValue == String {
                        let names = E.allCases.map(\.rawValue)
                        guard let s = sub.value.string, let v = E(rawValue: s) else {
                            throw check.invalid(subKey, "one of " + names.map { "\"\($0)\"" }.joined(separator: ", "), sub.value)
                        }
                        return v
                    }
                    func syscalls() throws(SpaceError) -> [String] {
                        let names = try check.strings(sub.value, subKey, "a system call name")
                        for (i, n) in names.enumerated() where !SandboxPlan.isSyscall(n) {
                            throw check.invalid("\(subKey)[\(i)]", "a system call of this machine", sub.value.array?[i] ?? sub.value)
                        }
                        return names
                    }
                    switch sub.name {
                    case "profile": sandbox.profile = try oneOf(Sandbox.Profile.self)
                    case "onViolation": sandbox.onViolation = try oneOf(Sandbox.Violation.self)
                    case "namespaces":
                        var set: Set<Sandbox.Namespace> = []
                        for (i, n) in try check.strings(sub.value, subKey, "a namespace").enumerated() {
                            guard let ns = Sandbox.Namespace(rawValue: n) else {
                                throw check.invalid("\(subKey)[\(i)]", "one of \"user\", \"mount\", \"pid\", \"network\"", .string(n))
                            }
                            set.insert(ns)
                        }
                        sandbox.namespaces = set
                    case "readPaths":
                        sandbox.readPaths = try check.paths(sub.value, subKey).map { resolve($0, against: baseDirectory) }
                    case "writePaths":
                        sandbox.writePaths = try check.paths(sub.value, subKey).map { resolve($0, against: baseDirectory) }
                    case "allow": sandbox.allow = try syscalls()
                    case "deny": sandbox.deny = try syscalls()
                    case "environment": sandbox.environment = try check.strings(sub.value, subKey, "a variable name")
                    case "unixSockets":
                        guard case .bool(let b) = sub.value else { throw check.invalid(subKey, "true or false", sub.value) }
                        sandbox.unixSockets = b
                    case "require":
                        var layers: SandboxLayers = []
                        for (i, n) in try check.strings(sub.value, subKey, "a layer name").enumerated() {
                            guard let layer = SandboxLayers(name: n) else {
                                throw check.invalid("\(subKey)[\(i)]", "a layer name (" +
                                                    SandboxLayers.named.map(\.name).joined(separator: ", ") + ")", .string(n))
                            }
                            layers.insert(layer)
                        }
                        sandbox.require = layers
                    default: check.unknown(subKey)
                    }
                }
            default:
                check.unknown(key)
            }
        }
        warnings += check.warnings
    }
}

/// Type checks with messages that name the key, plus the warnings collected on the way.
private struct ConfigurationChecker {
    let source: String
    var warnings: [String] = []

    func invalid(_ key: String, _ expectation: String, _ value: Value) -> SpaceError {
        SpaceError(.invalidConfiguration, "\(source): '\(key)' must be \(expectation), got \(excerpt(value))")
    }

    func integer(_ value: Value, _ key: String, minimum: Int, _ expectation: String) throws(SpaceError) -> Int {
        guard let n = value.int, n >= minimum else { throw invalid(key, expectation, value) }
        return n
    }

    func object(_ value: Value, _ key: String) throws(SpaceError) -> [Value.Field] {
        guard case .object(let fields) = value else { throw invalid(key, "an object", value) }
        return fields
    }

    func paths(_ value: Value, _ key: String) throws(SpaceError) -> [String] {
        guard case .array(let elements) = value else { throw invalid(key, "an array of strings", value) }
        var out: [String] = []
        for (i, element) in elements.enumerated() {
            guard case .string(let s) = element, !s.isEmpty, !s.utf8.contains(0) else {
                throw invalid("\(key)[\(i)]", "a non-empty string (a directory)", element)
            }
            out.append(s)
        }
        return out
    }

    func strings(_ value: Value, _ key: String, _ what: String) throws(SpaceError) -> [String] {
        guard case .array(let elements) = value else { throw invalid(key, "an array of strings", value) }
        var out: [String] = []
        for (i, element) in elements.enumerated() {
            guard case .string(let s) = element, !s.isEmpty, !s.utf8.contains(0) else {
                throw invalid("\(key)[\(i)]", "a non-empty string (\(what))", element)
            }
            out.append(s)
        }
        return out
    }

    mutating func unknown(_ key: String) {
        warnings.append("unknown key '\(key)' ignored")
    }

    /// The value as JSON, shortened for a message.
    func excerpt(_ value: Value) -> String {
        let json = value.json
        guard json.count > 60 else { return json }
        return String(json.prefix(57)) + "..."
    }
}

/// `path` if absolute (or no base is known), else `base/path`, without a leading `./`.
private func resolve(_ path: String, against base: String?) -> String {
    guard let base, !path.hasPrefix("/") else { return path }
    var rest = Substring(path)
    while rest.hasPrefix("./") {
        rest = rest.dropFirst(2)
        while rest.hasPrefix("/") { rest = rest.dropFirst() }
    }
    if rest.isEmpty || rest == "." { return base }
    return (base.hasSuffix("/") ? base : base + "/") + rest
}

/// The directory holding the file at `path`, absolute when the current directory can be found.
private func directory(of path: String) -> String {
    var dir: String
    if let slash = path.lastIndex(of: "/") {
        dir = String(path[..<slash])
        if dir.isEmpty { return "/" }
    } else {
        dir = "."
    }
    if dir.hasPrefix("/") { return dir }
    guard let cwd = currentDirectory() else { return dir }
    return resolve(dir, against: cwd)
}

private func currentDirectory() -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return nil }
    let bytes = buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// The whole file, read with open/read; errors name `path`.
private func readConfigurationFile(_ path: String) throws(SpaceError) -> [UInt8] {
    let limit = WireLimits.default.maxFrameSize
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        let e = errno
        if e == ENOENT || e == ENOTDIR {
            throw SpaceError(.invalidConfiguration, "configuration file '\(path)' not found", errno: e)
        }
        throw SpaceError(.invalidConfiguration, "cannot open configuration file '\(path)': \(describeErrno(e))",
                         errno: e)
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            let e = errno
            if e == EINTR { continue }
            throw SpaceError(.invalidConfiguration, "cannot read configuration file '\(path)': \(describeErrno(e))",
                             errno: e)
        }
        if n == 0 { return bytes }
        bytes += chunk[0..<n]
        if bytes.count > limit {
            throw SpaceError(.invalidConfiguration,
                             "configuration file '\(path)' is larger than the limit of \(limit) bytes")
        }
    }
}

private func describeErrno(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return String(cString: s)
}
