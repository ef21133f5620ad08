#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Small OS helpers shared by the host, the client and the tools, so each has one definition.

/// Nanoseconds on the monotonic clock (vDSO: no system call).
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Calls `body` with a NULL-terminated C array (`const char *const *`) of copies of the strings.
package func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let cstrings = strings.map { UnsafePointer(strdup($0)) }
    defer { cstrings.forEach { free(UnsafeMutableRawPointer(mutating: $0)) } }
    return (cstrings + [nil]).withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Writes `text` to fd 2 without touching C's `stderr` global (not concurrency-safe in Swift 6).
public func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
