import CSpaceSystem
@testable import Space
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The bounded tail of a host's stderr.
@Suite("stderr tail")
struct OutputTailTests {
    /// A tail on a fresh pipe, and the pipe's write end.
    func pipeTail() -> (OutputTail, Int32) {
        var fds: [Int32] = [-1, -1]
        precondition(cs_pipe(&fds) == 0)
        return (OutputTail(fd: fds[0]), fds[1])
    }

    func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    @Test func linesSplitAcrossWritesAndTheUnfinishedLastOne() {
        let (tail, w) = pipeTail()
        defer { close(w); tail.close() }
        write(w, "one\ntw")
        tail.drain()
        write(w, "o\nthree")
        #expect(tail.lines() == ["one", "two", "three"])
        write(w, " and more\n")
        #expect(tail.lines() == ["one", "two", "three and more"])
    }

    @Test func onlyTheLastLinesAreKept() {
        let (tail, w) = pipeTail()
        defer { close(w); tail.close() }
        for i in 0..<100 { write(w, "line \(i)\n") }
        tail.drain()
        let kept = tail.lines()
        #expect(kept.count == OutputTail.maxLines)
        #expect(kept.last == "line 99")
        #expect(kept.first == "line \(100 - OutputTail.maxLines)")
        // One big chunk holding many lines is cut the same way.
        write(w, (0..<1000).map { "x\($0)" }.joined(separator: "\n") + "\n")
        let after = tail.lines()
        #expect(after.count == OutputTail.maxLines && after.last == "x999" && after.first == "x\(1000 - OutputTail.maxLines)")
        #expect(tail.totalBytes > 5000)
    }

    @Test func longLinesAreCutAndEndOfFileIsSeen() {
        let (tail, w) = pipeTail()
        write(w, String(repeating: "y", count: 5000) + "\nshort\n")
        close(w)
        #expect(tail.drain() == false)  // end of file
        let lines = tail.lines()
        #expect(lines.count == 2)
        #expect(lines[0].utf8.count == OutputTail.maxLineBytes)
        #expect(lines[1] == "short")
        tail.close()
    }
}
