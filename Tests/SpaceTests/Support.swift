import Space
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Launches a space with the built `space-host` and example plugins (both beside the test binary).
func launch(_ configure: (inout SpaceConfiguration) -> Void = { _ in }) async throws -> Space {
    var config = SpaceConfiguration()
    configure(&config)
    return try await Space.launch(config)
}

/// The directory SwiftPM built into (where space-host and the plugin .so files are).
func buildDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4097)
    let n = readlink("/proc/self/exe", &buf, 4096)
    let path = String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path[..<path.lastIndex(of: "/")!])
}

/// Runs `body` and returns the SpaceError it throws, failing the test if it throws nothing.
func spaceError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> SpaceError? {
    do {
        try await body()
        Issue.record("expected a SpaceError, got success", sourceLocation: sourceLocation)
        return nil
    } catch let e as SpaceError {
        return e
    } catch {
        Issue.record("expected a SpaceError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Runs a shell command and returns its standard output.
func shell(_ command: String) -> String {
    guard let p = popen(command, "r") else { return "" }
    defer { pclose(p) }
    var out = ""
    var buf = [CChar](repeating: 0, count: 4096)
    while fgets(&buf, 4096, p) != nil {
        out += buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
    return out
}

/// True while a process with `pid` exists (and is not a zombie of ours).
func processExists(_ pid: Int32) -> Bool {
    kill(pid, 0) == 0
}

/// Polls `condition` every 10 ms for up to `seconds`.
func eventually(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Writes `text` to a new temporary file and returns its path.
func temporaryFile(_ name: String, _ text: String) -> String {
    var template = Array("/tmp/space-test-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    let path = dir + "/" + name
    let f = fopen(path, "w")!
    fputs(text, f)
    fclose(f)
    return path
}
