// SpaceConfiguration(json:) and SpaceConfiguration.load(path:): the repository's config.json, each key,
// relative paths, type errors naming their key, warnings for unknown and not-yet-implemented keys,
// and file errors.
import Space
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Helpers

/// Parses `text`, returning the configuration and the warnings, or the typed error.
private func configuration(_ text: String, baseDirectory: String? = nil)
    -> Result<(SpaceConfiguration, [String]), SpaceError> {
    var warnings: [String] = []
    do throws(SpaceError) {
        let c = try SpaceConfiguration(json: text, baseDirectory: baseDirectory, warnings: &warnings)
        return .success((c, warnings))
    } catch {
        return .failure(error)
    }
}

/// A configuration `text` must produce, with its warnings.
private func valid(_ text: String, baseDirectory: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) -> (SpaceConfiguration, [String])? {
    switch configuration(text, baseDirectory: baseDirectory) {
    case .success(let r): return r
    case .failure(let e):
        Issue.record("\(text) failed: \(e)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The error `text` must produce.
private func invalid(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> SpaceError? {
    switch configuration(text) {
    case .success(let r):
        Issue.record("\(text) loaded as \(r.0), expected an error", sourceLocation: sourceLocation)
        return nil
    case .failure(let e): return e
    }
}

private func load(_ path: String) -> Result<(SpaceConfiguration, [String]), SpaceError> {
    var warnings: [String] = []
    do throws(SpaceError) {
        let c = try SpaceConfiguration.load(path: path, warnings: &warnings)
        return .success((c, warnings))
    } catch {
        return .failure(error)
    }
}

/// A fresh directory under /tmp, removed (with the files written into it) by `remove()`.
private final class TemporaryDirectory {
    let path: String
    private var files: [String] = []

    init() {
        var template = Array("/tmp/space-config-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Writes `bytes` to `name` inside the directory and returns the full path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "open \(file) failed: errno \(errno)")
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(n == bytes.count)
        close(fd)
        files.append(file)
        return file
    }

    @discardableResult
    func write(_ name: String, _ text: String) -> String { write(name, Array(text.utf8)) }

    func remove() {
        for f in files { unlink(f) }
        rmdir(path)
    }
}

/// The repository's config.json: this file is Tests/SpaceTests/ConfigurationFileTests.swift.
private func repositoryConfigPath(_ file: String = #filePath) -> String {
    var parts = file.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // ConfigurationFileTests.swift, SpaceTests, Tests
    return parts.joined(separator: "/") + "/config.json"
}

// MARK: - Tests

@Suite struct ConfigurationFileTests {
    @Test func repositoryConfigIsTheDefaults() throws {
        let path = repositoryConfigPath()
        let (config, warnings) = try load(path).get()
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(config == SpaceConfiguration())
        // And it documents exactly the implemented keys.
        let document = try Value(json: String(decoding: try readAll(path), as: UTF8.self))
        #expect(document.fields?.map(\.name) == ["inactivityTimeout", "paths", "workers", "callTimeout", "control", "limits", "sandbox"])
        #expect(document[field: "control"]?.fields?.map(\.name) == ["forkTimeout", "stopTimeout", "exitThreshold", "allowedSequentialDeaths"])
        #expect(document[field: "limits"]?.fields?.map(\.name) == ["maxCallsPerSecond", "maxArgumentBytes", "maxInFlight", "maxQueued", "maxMemoryMB",
                                                                      "maxCpuSeconds", "maxOpenFiles", "maxFileSizeMB"])
        #expect(document[field: "sandbox"]?.fields?.map(\.name) == ["profile", "namespaces", "readPaths", "writePaths", "allow", "deny",
                                                                     "onViolation", "unixSockets", "require", "environment"])
    }

    @Test func emptyObjectKeepsDefaults() throws {
        let (config, warnings) = try #require(valid("{}"))
        #expect(config == SpaceConfiguration())
        #expect(warnings.isEmpty)
        #expect(valid(" { } \n")?.0 == SpaceConfiguration())
    }

    @Test func everyImplementedKeyIsRead() throws {
        let (config, warnings) = try #require(valid("""
            {
              "inactivityTimeout": 0,
              "paths": ["/opt/space/plugins", "/usr/lib/space"],
              "control": {"forkTimeout": 250, "stopTimeout": 1}
            }
            """))
        #expect(warnings.isEmpty)
        var expected = SpaceConfiguration()
        expected.inactivityTimeout = 0
        expected.paths = ["/opt/space/plugins", "/usr/lib/space"]
        expected.control = .init(forkTimeout: 250, stopTimeout: 1)
        #expect(config == expected)
    }

    @Test func unspecifiedKeysKeepTheirDefaults() throws {
        let defaults = SpaceConfiguration()
        let a = try #require(valid(#"{"control": {"stopTimeout": 7}}"#)).0
        #expect(a.control.stopTimeout == 7)
        #expect(a.control.forkTimeout == defaults.control.forkTimeout)
        #expect(a.inactivityTimeout == defaults.inactivityTimeout)
        #expect(a.paths == defaults.paths)
        let b = try #require(valid(#"{"inactivityTimeout": 60000}"#)).0
        #expect(b.inactivityTimeout == 60_000)
        #expect(b.control == defaults.control)
        #expect(b.limits == defaults.limits)
        let c = try #require(valid(#"{"control": {}}"#)).0
        #expect(c == defaults)
    }

    @Test func largeIntegersAreAccepted() throws {
        let c = try #require(valid(#"{"inactivityTimeout": 9223372036854775807}"#)).0
        #expect(c.inactivityTimeout == Int.max)
    }

    @Test func relativePathsAreResolvedAgainstTheBaseDirectory() throws {
        let text = #"{"paths": ["plugins", "./lib", ".", "/abs/dir", "../shared", "a/b/"]}"#
        let resolved = try #require(valid(text, baseDirectory: "/etc/space")).0.paths
        #expect(resolved == ["/etc/space/plugins", "/etc/space/lib", "/etc/space", "/abs/dir", "/etc/space/../shared", "/etc/space/a/b/"])
        #expect(try #require(valid(text, baseDirectory: "/etc/space/")).0.paths.first == "/etc/space/plugins")
        // Without a base directory they stay as written.
        #expect(try #require(valid(text)).0.paths == ["plugins", "./lib", ".", "/abs/dir", "../shared", "a/b/"])
    }

    @Test func loadResolvesPathsAgainstTheFilesDirectory() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.write("config.json", #"{"paths": ["plugins", "/usr/lib"], "control": {"forkTimeout": 3000}}"#)
        let (config, warnings) = try load(file).get()
        #expect(warnings.isEmpty)
        #expect(config.paths == [dir.path + "/plugins", "/usr/lib"])
        #expect(config.control.forkTimeout == 3000)
        #expect(config.control.stopTimeout == 5000)
    }

    @Test func loadWithARelativePathResolvesAgainstTheCurrentDirectory() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("config.json", #"{"paths": ["plugins"]}"#)
        // A relative path to the file, made with ../ from the current directory (no chdir: tests
        // run in parallel).
        var buffer = [CChar](repeating: 0, count: 4096)
        let cwd = try #require(buffer.withUnsafeMutableBufferPointer { b in
            getcwd(b.baseAddress, b.count).map { String(cString: $0) }
        })
        let up = String(repeating: "../", count: cwd.split(separator: "/").count)
        let relativeDir = up + dir.path.dropFirst()
        let config = try load(relativeDir + "/config.json").get().0
        #expect(config.paths == [(cwd == "/" ? "/" : cwd + "/") + relativeDir + "/plugins"])
    }

    // MARK: Errors

    @Test func wrongValueNamesTheKey() throws {
        let e = try #require(invalid(#"{"control": {"stopTimeout": "5s"}}"#))
        #expect(e.code == .invalidConfiguration)
        #expect(e.message == #"config.json: 'control.stopTimeout' must be a positive integer (milliseconds), got "5s""#)
    }

    /// Bad documents, each with the key its error must name and what it must say was given.
    static let wrongValues: [(String, String, String)] = [
        (#"{"inactivityTimeout": "1h"}"#, "'inactivityTimeout' must be a non-negative integer (milliseconds)", #"got "1h""#),
        (#"{"inactivityTimeout": -1}"#, "'inactivityTimeout' must be a non-negative integer (milliseconds)", "got -1"),
        (#"{"inactivityTimeout": 1.5}"#, "'inactivityTimeout'", "got 1.5"),
        (#"{"inactivityTimeout": 1000.0}"#, "'inactivityTimeout'", "got 1000.0"),
        (#"{"inactivityTimeout": 18446744073709551615}"#, "'inactivityTimeout'", "got 18446744073709551615"),
        (#"{"inactivityTimeout": null}"#, "'inactivityTimeout'", "got null"),
        (#"{"paths": "/usr/lib"}"#, "'paths' must be an array of strings", #"got "/usr/lib""#),
        (#"{"paths": {"a": "/x"}}"#, "'paths' must be an array of strings", #"got {"a":"/x"}"#),
        (#"{"paths": ["/a", 3]}"#, "'paths[1]' must be a non-empty string", "got 3"),
        (#"{"paths": [""]}"#, "'paths[0]' must be a non-empty string", #"got """#),
        (#"{"paths": ["a\u0000b"]}"#, "'paths[0]' must be a non-empty string", #"got "a\u0000b""#),
        (#"{"control": 5}"#, "'control' must be an object", "got 5"),
        (#"{"control": []}"#, "'control' must be an object", "got []"),
        (#"{"control": {"forkTimeout": 0}}"#, "'control.forkTimeout' must be a positive integer (milliseconds)", "got 0"),
        (#"{"control": {"forkTimeout": true}}"#, "'control.forkTimeout'", "got true"),
        (#"{"control": {"stopTimeout": -5}}"#, "'control.stopTimeout' must be a positive integer (milliseconds)", "got -5"),
        (#"{"control": {"exitThreshold": -1}}"#, "'control.exitThreshold' must be a non-negative integer", "got -1"),
        (#"{"control": {"allowedSequentialDeaths": "3"}}"#, "'control.allowedSequentialDeaths' must be a non-negative integer", #"got "3""#),
        (#"{"workers": 0}"#, "'workers' must be a positive integer", "got 0"),
        (#"{"workers": "auto"}"#, "'workers' must be a positive integer", #"got "auto""#),
        (#"{"callTimeout": 2.5}"#, "'callTimeout' must be a non-negative integer (milliseconds; 0 = none)", "got 2.5"),
        (#"{"sandbox": true}"#, "'sandbox' must be an object", "got true"),
        (#"{"limits": [1]}"#, "'limits' must be an object", "got [1]"),
    ]

    @Test(arguments: wrongValues)
    func wrongTypeNamesItsKey(_ text: String, _ requirement: String, _ got: String) throws {
        let e = try #require(invalid(text))
        #expect(e.code == .invalidConfiguration)
        #expect(e.message.hasPrefix("config.json: " + requirement), "\(e.message)")
        #expect(e.message.hasSuffix(got), "\(e.message)")
    }

    @Test func longValuesAreShortenedInMessages() throws {
        let long = String(repeating: "x", count: 500)
        let e = try #require(invalid(#"{"paths": ""# + long + #""}"#))
        #expect(e.message.hasSuffix("..."))
        #expect(e.message.count < 200)
    }

    @Test func topLevelMustBeAnObject() throws {
        for (text, kind) in [("[]", "array"), ("3", "integer"), ("null", "null"), (#""x""#, "string")] {
            let e = try #require(invalid(text))
            #expect(e.code == .invalidConfiguration)
            #expect(e.message == "config.json: the configuration must be a JSON object, got \(kind)")
        }
    }

    @Test func syntaxErrorsAreConfigurationErrorsWithLineAndColumn() throws {
        let e = try #require(invalid("{\n  \"paths\": [],\n  \"control\": {\"forkTimeout\": 10 \"stopTimeout\": 5}\n}"))
        #expect(e.code == .invalidConfiguration)
        #expect(e.message == "config.json: line 3, column 33: expected ',' or '}' after object member, found '\"'")
        let dup = try #require(invalid(#"{"paths": [], "paths": ["/x"]}"#))
        #expect(dup.message == #"config.json: line 1, column 15: duplicate key "paths" in object"#)
    }

    // MARK: Warnings

    @Test func unknownKeysWarnWithTheirFullDottedName() throws {
        let (config, warnings) = try #require(valid("""
            {"inactivityTimout": 5, "control": {"forkTimout": 1, "stopTimeout": 9}, "plugins": {"x": 1}}
            """))
        #expect(warnings == [
            "unknown key 'inactivityTimout' ignored",
            "unknown key 'control.forkTimout' ignored",
            "unknown key 'plugins' ignored",
        ])
        #expect(config.inactivityTimeout == SpaceConfiguration().inactivityTimeout)
        #expect(config.control.stopTimeout == 9)
        #expect(config.control.forkTimeout == 10_000)
    }

    @Test func supervisionAndLimitKeysAreRead() throws {
        let (config, warnings) = try #require(valid("""
            {
              "workers": 4,
              "inactivityTimeout": 1000,
              "callTimeout": 30000,
              "control": {"forkTimeout": 2000, "exitThreshold": 3000, "allowedSequentialDeaths": 0},
              "sandbox": {"network": false, "filesystem": ["/tmp"]},
              "limits": {"maxDepth": 8, "maxCallsPerSecond": 100, "maxArgumentBytes": 4096,
                         "maxInFlight": 8, "maxQueued": 16, "maxMemoryMB": 512, "maxCookies": 1}
            }
            """))
        #expect(warnings == [
            "unknown key 'sandbox.network' ignored",
            "unknown key 'sandbox.filesystem' ignored",
            "unknown key 'limits.maxCookies' ignored",
        ])
        var expected = SpaceConfiguration()
        expected.inactivityTimeout = 1000
        expected.control.forkTimeout = 2000
        expected.control.exitThreshold = 3000
        expected.control.allowedSequentialDeaths = 0
        expected.workers = 4
        expected.callTimeout = 30000
        expected.limits.maxDepth = 8
        expected.quotas = .init(maxCallsPerSecond: 100, maxArgumentBytes: 4096, maxInFlight: 8, maxQueued: 16, maxMemoryMB: 512)
        #expect(config == expected)
    }

    @Test func supervisionKeysAreChecked() throws {
        #expect(invalid(#"{"workers": 0}"#)?.message.contains("'workers' must be a positive integer") == true)
        #expect(invalid(#"{"workers": 1000}"#)?.message.contains("'workers' must be at most 256") == true)
        #expect(invalid(#"{"limits": {"maxInFlight": -1}}"#)?.message.contains("'limits.maxInFlight' must be a non-negative integer") == true)
        #expect(invalid(#"{"limits": {"maxFrameSize": 0}}"#)?.message.contains("'limits.maxFrameSize' must be a positive integer") == true)
        #expect(invalid(#"{"control": {"allowedSequentialDeaths": "3"}}"#)?.message.contains("'control.allowedSequentialDeaths'") == true)
    }

    @Test func warningsAreAppendedOnlyOnSuccess() throws {
        var warnings = ["earlier"]
        _ = try SpaceConfiguration(json: #"{"x": 1}"#, warnings: &warnings)
        #expect(warnings == ["earlier", "unknown key 'x' ignored"])
        #expect(throws: SpaceError.self) {
            _ = try SpaceConfiguration(json: #"{"y": 1, "workers": 0}"#, warnings: &warnings)
        }
        #expect(warnings == ["earlier", "unknown key 'x' ignored"])
    }

    // MARK: Files

    @Test func missingFileNamesThePath() throws {
        let path = "/nonexistent-space-dir/config.json"
        guard case .failure(let e) = load(path) else { Issue.record("loaded a missing file"); return }
        #expect(e.code == .invalidConfiguration)
        #expect(e.message.contains(path))
        #expect(e.message.contains("not found"))
        #expect(e.errno == ENOENT)
    }

    @Test func errorsInAFileNameTheFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let bad = dir.write("bad.json", #"{"control": {"stopTimeout": "5s"}}"#)
        guard case .failure(let e) = load(bad) else { Issue.record("loaded a bad file"); return }
        #expect(e.message == bad + #": 'control.stopTimeout' must be a positive integer (milliseconds), got "5s""#)

        let broken = dir.write("broken.json", "{\n  \"paths\": [\n}")
        guard case .failure(let s) = load(broken) else { Issue.record("loaded a broken file"); return }
        #expect(s.code == .invalidConfiguration)
        #expect(s.message == broken + ": line 3, column 1: expected a JSON value, found '}'")

        let binary = dir.write("binary.json", [0x7B, 0xFF, 0xFE, 0x7D])
        guard case .failure(let u) = load(binary) else { Issue.record("loaded a non-UTF-8 file"); return }
        #expect(u.code == .invalidConfiguration)
        #expect(u.message == binary + ": the configuration file is not valid UTF-8")

        let empty = dir.write("empty.json", "")
        guard case .failure(let m) = load(empty) else { Issue.record("loaded an empty file"); return }
        #expect(m.message == empty + ": line 1, column 1: expected a JSON value, found end of input")
    }

    @Test func directoryIsNotAConfigurationFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        guard case .failure(let e) = load(dir.path) else { Issue.record("loaded a directory"); return }
        #expect(e.code == .invalidConfiguration)
        #expect(e.message.contains(dir.path))
        #expect(e.errno == EISDIR)
    }

    @Test func fileWithUnknownKeysWarns() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.write("config.json", "\u{FEFF}{\"workers\": 2, \"extra\": {\"deep\": 1}}\n")
        let (config, warnings) = try load(file).get()
        var expected = SpaceConfiguration()
        expected.workers = 2
        #expect(config == expected)
        #expect(warnings == ["unknown key 'extra' ignored"])
    }
}

/// Reads a whole file (for checking the repository's config.json text).
private func readAll(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw SpaceError(.systemError, "open \(path)", errno: errno) }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return out }
        out += buf[0..<n]
    }
}
