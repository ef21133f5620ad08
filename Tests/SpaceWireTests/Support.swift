// Shared helpers for the SpaceWire tests: a seeded RNG, bit-exact value comparison, random value
// trees, decoding helpers with typed errors, and a socketpair that feeds a FrameInput.
import Testing
@testable import SpaceWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Deterministic randomness

/// SplitMix64: tiny, fast, and the same sequence on every platform and run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A value in `0..<n` (n > 0).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// True with probability 1/n.
    mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 }
    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

// MARK: - Bit-exact comparison

/// `==` on `Value` follows `Double ==` (NaN != NaN, -0.0 == 0.0); the wire must preserve bits.
func identical(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.double(let x), .double(let y)): return x.bitPattern == y.bitPattern
    case (.array(let xs), .array(let ys)):
        return xs.count == ys.count && zip(xs, ys).allSatisfy { identical($0, $1) }
    case (.object(let xs), .object(let ys)):
        return xs.count == ys.count && zip(xs, ys).allSatisfy { $0.name == $1.name && identical($0.value, $1.value) }
    default: return a == b
    }
}

// MARK: - Random values

/// Interesting doubles: specials plus random bit patterns (which include NaN payloads).
func randomDouble(_ rng: inout SplitMix64) -> Double {
    let specials: [Double] = [0, -0.0, 1, -1, .nan, -.nan, .infinity, -.infinity, .ulpOfOne,
                              .leastNonzeroMagnitude, .greatestFiniteMagnitude, .pi]
    if rng.oneIn(3) { return specials[rng.below(specials.count)] }
    return Double(bitPattern: rng.next())
}

func randomString(_ rng: inout SplitMix64, maxScalars: Int = 12) -> String {
    let pool: [Unicode.Scalar] = ["a", "z", "\0", "\n", "\"", "\\", "é", "ß", "€", "中", "😀", "\u{7F}", "\u{FFFD}", "\u{10FFFF}"]
    var s = String.UnicodeScalarView()
    for _ in 0..<rng.below(maxScalars + 1) {
        if rng.oneIn(2) {
            s.append(pool[rng.below(pool.count)])
        } else {
            // Any valid scalar: skip the surrogate range.
            var v = UInt32(truncatingIfNeeded: rng.next()) % 0x11_0000
            if (0xD800...0xDFFF).contains(v) { v -= 0x800 }
            s.append(Unicode.Scalar(v)!)
        }
    }
    return String(s)
}

func randomInt(_ rng: inout SplitMix64) -> Int64 {
    let specials: [Int64] = [0, 1, -1, .min, .max, Int64(Int32.min), Int64(Int32.max), 255, 256]
    if rng.oneIn(3) { return specials[rng.below(specials.count)] }
    return Int64(bitPattern: rng.next()) >> UInt64(rng.below(64))
}

/// A random value tree no deeper than `depth` containers.
func randomValue(_ rng: inout SplitMix64, depth: Int) -> Value {
    let leafKinds = 9
    let kind = depth > 0 ? rng.below(leafKinds + 2) : rng.below(leafKinds)
    switch kind {
    case 0: return .null
    case 1: return .bool(rng.oneIn(2))
    case 2: return .int(randomInt(&rng))
    case 3: return .uint(UInt64(Int64.max) + 1 + rng.next() % UInt64(Int64.max))
    case 4: return .double(randomDouble(&rng))
    case 5: return .string(randomString(&rng))
    case 6: return .bytes(rng.bytes(rng.below(24)))
    case 7: return .handle(rng.next())
    case 8: return .callback(arity: rng.below(256))
    case 9: return .array((0..<rng.below(5)).map { _ in randomValue(&rng, depth: depth - 1) })
    default:
        return .object((0..<rng.below(5)).map { _ in
            Value.Field(randomString(&rng, maxScalars: 6), randomValue(&rng, depth: depth - 1))
        })
    }
}

// MARK: - Encoding and decoding helpers

func encode(_ value: Value) -> [UInt8] {
    var w = WireWriter()
    w.writeValue(value)
    return w.bytes
}

/// Runs `body` on a reader over `bytes`; the result, or the typed error it threw.
func read<T>(_ bytes: [UInt8], limits: WireLimits = .default,
             _ body: (inout WireReader) throws(SpaceError) -> T) -> Result<T, SpaceError> {
    bytes.withUnsafeBytes { raw in
        var r = WireReader(raw, limits: limits)
        do throws(SpaceError) { return .success(try body(&r)) } catch { return .failure(error) }
    }
}

/// Decodes one value that must span all of `bytes`.
func decodeValue(_ bytes: [UInt8], limits: WireLimits = .default) -> Result<Value, SpaceError> {
    read(bytes, limits: limits) { (r: inout WireReader) throws(SpaceError) -> Value in
        let v = try r.readValue()
        try r.expectEnd("value")
        return v
    }
}

/// Decodes the payload of a call frame the way the host does: package, function, argc, values.
struct DecodedCall: Equatable {
    var package: String
    var function: String
    var arguments: [Value]
}

func decodeCall(_ r: inout WireReader) throws(SpaceError) -> DecodedCall {
    let package = try r.readString()
    let function = try r.readString()
    let argc = try r.readArgumentCount()
    var args: [Value] = []
    for _ in 0..<argc { args.append(try r.readValue()) }
    try r.expectEnd("call")
    return DecodedCall(package: package, function: function, arguments: args)
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { b in
        let s = String(b, radix: 16)
        return b < 16 ? "0" + s : s
    }.joined(separator: " ")
}

/// Parses "0a 0b ..." (whitespace ignored).
func unhex(_ s: String) -> [UInt8] {
    let digits = s.filter { !$0.isWhitespace }
    var out: [UInt8] = []
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// Expects `result` to be a failure with one of `codes`.
func expectFailure<T>(_ result: Result<T, SpaceError>, _ codes: SpaceError.Code...,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    switch result {
    case .success(let v):
        Issue.record("expected an error \(codes), got \(v)", sourceLocation: sourceLocation)
    case .failure(let e):
        #expect(codes.contains(e.code), "unexpected \(e)", sourceLocation: sourceLocation)
    }
}

// MARK: - Sockets

/// An AF_UNIX stream socketpair: `writer` feeds `reader`. Closed on deinit.
final class SocketPair {
    let reader: Int32
    private(set) var writer: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        #if canImport(Glibc)
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
        #else
        let rc = socketpair(AF_UNIX, SOCK_STREAM, 0, &fds)
        #endif
        precondition(rc == 0, "socketpair failed: errno \(errno)")
        reader = fds[0]
        writer = fds[1]
    }

    /// Half-closes the writing side: the reader then sees EOF after the buffered bytes.
    func finishWriting() {
        if writer >= 0 { close(writer); writer = -1 }
    }

    deinit {
        close(reader)
        if writer >= 0 { close(writer) }
    }
}

/// A frame copied out of the input buffer (a `Frame` payload dies at the next fill).
struct OwnedFrame: Equatable {
    var kind: MessageKind
    var id: UInt32
    var payload: [UInt8]
}

/// Writes `bytes` into a fresh socketpair in writes of at most `chunk` bytes, interleaved with
/// reads, then closes the writer and reads to EOF. Returns every frame, or the first error of
/// `FrameInput` (plus the frames before it).
func transfer(_ bytes: [UInt8], input: FrameInput, chunk: Int = .max,
              onFrame: (Frame) -> Void = { _ in }) -> (frames: [OwnedFrame], error: SpaceError?) {
    let pair = SocketPair()
    var frames: [OwnedFrame] = []
    func drain() throws(SpaceError) {
        while let f = try input.next() {
            onFrame(f)
            frames.append(OwnedFrame(kind: f.kind, id: f.id, payload: Array(f.payload)))
        }
    }
    do throws(SpaceError) {
        var offset = 0
        while offset < bytes.count {
            let n = min(chunk, bytes.count - offset)
            let sent = bytes.withUnsafeBytes { raw in
                send(pair.writer, raw.baseAddress! + offset, n, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if sent > 0 { offset += sent } else {
                precondition(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, "send: errno \(errno)")
            }
            // Something is buffered in the socket now (we just sent, or it is full): read never blocks.
            _ = try input.fill(from: pair.reader)
            try drain()
        }
        pair.finishWriting()
        while try input.fill(from: pair.reader) > 0 { try drain() }
        try drain()
        return (frames, nil)
    } catch {
        return (frames, error)
    }
}

func frameBytes(_ kind: MessageKind, id: UInt32, _ payload: (inout WireWriter) -> Void = { _ in }) -> [UInt8] {
    var w = WireWriter()
    w.beginFrame(kind, id: id)
    payload(&w)
    w.endFrame()
    return w.bytes
}
