import SpaceWire

#if canImport(Glibc)
import Glibc
#endif

/// The opaque pointers a space hands out as handles. A caller only ever sees an id; the pointer stays
/// in the host. An unknown, stale or mistyped id is a typed error, never a dereference.
///
/// Ids are unique for the life of the host process and carry a random prefix per process, so an id
/// kept across a respawn is reported as stale instead of reaching another object. Not `Sendable`:
/// the host owns one table and uses it from the thread that runs calls.
public final class HandleTable {
    /// A C function `void f(void *)` that releases one handle's pointer.
    public typealias Release = @convention(c) (UnsafeMutableRawPointer?) -> Void

    struct Entry {
        let pointer: UnsafeMutableRawPointer
        let tag: String?
        let owner: Int
        let release: Release?
    }

    private var entries: [UInt64: Entry] = [:]
    private var next: UInt64 = 1
    private let prefix: UInt64
    /// Most handles alive at once; one more is a ``SpaceError/Code/tooLarge`` error.
    public let limit: Int

    /// Creates an empty table that holds at most `limit` handles.
    public init(limit: Int = 1 << 20) {
        self.limit = limit
        var generator = SystemRandomNumberGenerator()
        let random = generator.next()
        // 24 random high bits (never zero) and a 40-bit counter: ids stay below 2^63, so they
        // travel as plain integers in JSON too.
        prefix = ((random & 0x7F_FFFF) | 1) << 40
    }

    /// How many handles are alive.
    public var count: Int { entries.count }

    /// Stores `pointer` and returns its new id.
    func insert(_ pointer: UnsafeMutableRawPointer, tag: String?, owner: Int, release: Release?) throws(SpaceError) -> UInt64 {
        guard entries.count < limit else {
            release?(pointer)
            throw SpaceError(.tooLarge, "the space holds \(limit) handles already; release some first")
        }
        let id = prefix | next
        next += 1
        entries[id] = Entry(pointer: pointer, tag: tag, owner: owner, release: release)
        return id
    }

    /// The pointer behind `id`, checked against the struct tag the parameter expects (nil: any).
    func pointer(_ id: UInt64, expecting tag: String?) -> Result<UnsafeMutableRawPointer, HandleProblem> {
        guard let entry = entries[id] else { return .failure(.unknown) }
        if let tag, let have = entry.tag, tag != have {
            return .failure(.mistyped(have))
        }
        return .success(entry.pointer)
    }

    /// Forgets `id` without releasing it (the function it was passed to released it).
    func forget(_ id: UInt64) {
        entries.removeValue(forKey: id)
    }

    /// Releases every handle created by `owner` (newest first) and forgets them.
    public func releaseAll(owner: Int) {
        let ids = entries.filter { $0.value.owner == owner }.keys.sorted(by: >)
        for id in ids {
            if let e = entries.removeValue(forKey: id) { e.release?(e.pointer) }
        }
    }
}

/// Why a handle id could not be used.
enum HandleProblem: Error {
    case unknown
    case mistyped(String)
}
