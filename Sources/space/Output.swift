import Space
import SpaceCLI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Standard output, one whole line per write, unbuffered: callback lines must appear as they
/// arrive even when stdout is a pipe, and lines from different threads never interleave.
enum Output {
    private static let lock = Mutex(())

    static func line(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.append(0x0A)
        lock.withLock { _ in
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + off, $0.count - off) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                off += n
            }
        }
    }

    /// Columns padded to their widest cell.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        for row in all {
            var text = ""
            for (i, cell) in row.enumerated() {
                text += i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }
            line(text)
        }
    }

    /// `key: value` lines of an object; nested values as JSON.
    static func fields(_ v: Value) {
        for f in v.fields ?? [] {
            let value: String
            switch f.value {
            case .string(let s): value = s
            case .null: value = "-"
            default: value = CLIOutput.json(f.value)
            }
            line("\(f.name): \(value)")
        }
    }
}

/// `Space.Argument` (a call argument), named apart from ArgumentParser's `@Argument`.
typealias CallArgument = Argument
