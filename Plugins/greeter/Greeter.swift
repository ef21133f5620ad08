// greeter: an example plugin written in Swift. Functions are exported with `@_cdecl` so they have
// C calling conventions, and the manifest is built once from static strings.
import SpacePlugin

#if canImport(Glibc)
import Glibc
#endif

/// The last greeting; the host copies it right after the call. The plugin is not flagged
/// thread-safe, so the host never runs two calls into it at once.
nonisolated(unsafe) private var lastGreeting: UnsafeMutablePointer<CChar>? = nil

@_cdecl("greeter_hello")
public func hello(_ name: UnsafePointer<CChar>?) -> UnsafePointer<CChar>? {
    let who = name.map { String(cString: $0) } ?? "world"
    free(lastGreeting)
    lastGreeting = strdup("Hello, \(who)!")
    return UnsafePointer(lastGreeting)
}

@_cdecl("greeter_vowels")
public func vowels(_ text: UnsafePointer<CChar>?) -> Int32 {
    guard let text else { return 0 }
    return Int32(String(cString: text).lowercased().filter { "aeiou".contains($0) }.count)
}

@_cdecl("greeter_fib")
public func fib(_ n: UInt32) -> UInt64 {
    var (a, b): (UInt64, UInt64) = (0, 1)
    for _ in 0..<min(n, 93) { (a, b) = (b, a &+ b) }
    return a
}

private func entry(_ name: StaticString, _ fn: space_fn, _ decl: StaticString) -> space_entry {
    space_entry(
        name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self),
        fn: fn,
        decl: UnsafeRawPointer(decl.utf8Start).assumingMemoryBound(to: CChar.self))
}

private typealias StringToString = @convention(c) (UnsafePointer<CChar>?) -> UnsafePointer<CChar>?
private typealias StringToInt = @convention(c) (UnsafePointer<CChar>?) -> Int32
private typealias UIntToUInt64 = @convention(c) (UInt32) -> UInt64

/// Built on first use and never freed: the manifest lives as long as the library.
nonisolated(unsafe) private let manifest: UnsafeMutablePointer<space_plugin> = {
    let entries = UnsafeMutablePointer<space_entry>.allocate(capacity: 4)
    entries[0] = entry("greet.hello", unsafeBitCast(hello as StringToString, to: space_fn.self),
                       "const char *(const char *name)")
    entries[1] = entry("greet.vowels", unsafeBitCast(vowels as StringToInt, to: space_fn.self),
                       "int32_t (const char *text)")
    entries[2] = entry("greet.fib", unsafeBitCast(fib as UIntToUInt64, to: space_fn.self),
                       "uint64_t (uint32_t n)")
    entries[3] = space_entry(name: nil, fn: nil, decl: nil)
    let m = UnsafeMutablePointer<space_plugin>.allocate(capacity: 1)
    m.initialize(to: space_plugin(
        abi: UInt32(SPACE_PLUGIN_ABI), flags: 0,
        name: UnsafeRawPointer(("greeter" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self),
        version: UnsafeRawPointer(("1.0.0" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self),
        entries: UnsafePointer(entries), init: nil, deinit: nil, types: nil))
    return m
}()

@_cdecl("space_plugin_v1")
public func spacePluginManifest() -> UnsafePointer<space_plugin> {
    UnsafePointer(manifest)
}
