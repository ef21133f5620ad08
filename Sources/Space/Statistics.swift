import SpaceWire
import Synchronization

/// A space's counters and call latencies since it was created (``Space/statistics``).
public struct SpaceStatistics: Sendable, Hashable {
    /// Calls that returned a result.
    public var succeeded: UInt64 = 0
    /// Calls that failed, for any reason (including the three below).
    public var failed: UInt64 = 0
    /// Calls that ran past their deadline.
    public var timedOut: UInt64 = 0
    /// Calls refused before anything was sent (`rateLimited`, `busy`, `tooLarge` by a quota).
    public var rejected: UInt64 = 0
    /// Calls in flight now.
    public var inFlight: Int = 0
    /// Calls waiting for an in-flight slot (`limits.maxInFlight`).
    public var queued: Int = 0
    /// Host processes started (first starts and restarts).
    public var starts: UInt64 = 0
    /// Host processes that died unexpectedly (crashes, failed starts).
    public var crashes: UInt64 = 0
    /// Deaths in a row within `control.exitThreshold` of their start.
    public var sequentialDeaths: Int = 0
    /// Latency of the calls that returned (sent to answered, as the caller saw it).
    public var latency = LatencySummary()
    /// The pool's workers.
    public var workers: [WorkerStatus] = []

    /// One worker of the pool.
    public struct WorkerStatus: Sendable, Hashable {
        /// Its index, from 0.
        public var index: Int
        /// Its host's pid while one runs.
        public var pid: Int32?
        /// Calls in flight on it.
        public var inFlight: Int
    }

    /// Creates empty statistics.
    public init() {}

    /// As a JSON-able value (what `space stats` shows).
    public var value: Value {
        .object([
            .init("calls", .uint(succeeded + failed)),
            .init("succeeded", .uint(succeeded)),
            .init("failed", .uint(failed)),
            .init("timedOut", .uint(timedOut)),
            .init("rejected", .uint(rejected)),
            .init("inFlight", .int(Int64(inFlight))),
            .init("queued", .int(Int64(queued))),
            .init("starts", .uint(starts)),
            .init("crashes", .uint(crashes)),
            .init("sequentialDeaths", .int(Int64(sequentialDeaths))),
            .init("latencyNs", latency.value),
            .init("workers", .array(workers.map { w in
                .object([.init("worker", .int(Int64(w.index))),
                         .init("pid", w.pid.map { .int(Int64($0)) } ?? .null),
                         .init("inFlight", .int(Int64(w.inFlight)))])
            })),
        ])
    }
}

/// Percentiles of call latency, in nanoseconds (each within 1/16 of the true value).
public struct LatencySummary: Sendable, Hashable {
    /// Calls measured.
    public var count: UInt64 = 0
    /// The median.
    public var p50: UInt64 = 0
    /// 90 % of the calls took at most this long.
    public var p90: UInt64 = 0
    /// 99 % of the calls took at most this long.
    public var p99: UInt64 = 0
    /// The slowest call (exact).
    public var max: UInt64 = 0
    /// The mean (exact).
    public var mean: UInt64 = 0

    /// Creates an empty summary.
    public init() {}

    var value: Value {
        .object([.init("count", .uint(count)), .init("p50", .uint(p50)), .init("p90", .uint(p90)),
                 .init("p99", .uint(p99)), .init("max", .uint(max)), .init("mean", .uint(mean))])
    }
}

/// A log-linear histogram (HdrHistogram's layout with 16 sub-buckets per power of two): 1,024
/// counters cover every `UInt64` with a relative error under 1/16, and recording is a shift and an
/// add. Not synchronized: ``CallRecorder`` keeps the same layout in atomic counters.
struct LatencyHistogram {
    static let bucketCount = 1024
    private var counts = [UInt64](repeating: 0, count: bucketCount)
    private(set) var total: UInt64 = 0
    private(set) var max: UInt64 = 0
    private var sum: UInt64 = 0

    init() {}

    /// A histogram of counts read elsewhere (``CallRecorder``'s atomic buckets).
    init(counts: [UInt64], sum: UInt64, max: UInt64) {
        self.counts = counts
        self.total = counts.reduce(0, +)
        self.sum = sum
        self.max = max
    }

    static func index(_ v: UInt64) -> Int {
        if v < 16 { return Int(v) }
        let octave = 63 - v.leadingZeroBitCount          // >= 4
        let sub = Int((v >> UInt64(octave - 4)) & 15)
        return (octave - 3) * 16 + sub
    }

    /// The largest value that lands in bucket `i`.
    static func upperBound(_ i: Int) -> UInt64 {
        if i < 16 { return UInt64(i) }
        let octave = i / 16 + 3
        let sub = UInt64(i % 16)
        let next = (16 + sub + 1) << UInt64(octave - 4)
        return next &- 1
    }

    mutating func record(_ v: UInt64) {
        counts[Self.index(v)] += 1
        total += 1
        sum &+= v
        if v > max { max = v }
    }

    func percentile(_ p: Double) -> UInt64 {
        guard total > 0 else { return 0 }
        let rank = Swift.max(1, UInt64((Double(total) * p / 100).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank { return Swift.min(Self.upperBound(i), max) }
        }
        return max
    }

    var summary: LatencySummary {
        var s = LatencySummary()
        s.count = total
        s.p50 = percentile(50)
        s.p90 = percentile(90)
        s.p99 = percentile(99)
        s.max = max
        s.mean = total == 0 ? 0 : sum / total
        return s
    }
}

/// The counters behind ``SpaceStatistics``, updated once per call without a lock: every call of
/// every task goes through here, and a contended mutex would cost more than the histogram.
final class CallRecorder: @unchecked Sendable {
    let inFlight = Atomic<Int>(0)
    private let succeededCount = Atomic<UInt64>(0)
    private let failedCount = Atomic<UInt64>(0)
    private let timedOutCount = Atomic<UInt64>(0)
    private let rejectedCount = Atomic<UInt64>(0)
    private let startCount = Atomic<UInt64>(0)
    private let crashCount = Atomic<UInt64>(0)
    private let sum = Atomic<UInt64>(0)
    private let maximum = Atomic<UInt64>(0)
    /// The histogram's 1,024 counters (``LatencyHistogram``'s layout). Owned; freed in deinit.
    private let buckets: UnsafeMutablePointer<Atomic<UInt64>>

    init() {
        buckets = .allocate(capacity: LatencyHistogram.bucketCount)
        for i in 0..<LatencyHistogram.bucketCount { (buckets + i).initialize(to: Atomic(0)) }
    }

    deinit {
        buckets.deinitialize(count: LatencyHistogram.bucketCount)
        buckets.deallocate()
    }

    func succeeded(nanoseconds: UInt64) {
        succeededCount.add(1, ordering: .relaxed)
        buckets[LatencyHistogram.index(nanoseconds)].add(1, ordering: .relaxed)
        sum.add(nanoseconds, ordering: .relaxed)
        var seen = maximum.load(ordering: .relaxed)
        while nanoseconds > seen {
            let (exchanged, now) = maximum.compareExchange(expected: seen, desired: nanoseconds, ordering: .relaxed)
            if exchanged { break }
            seen = now
        }
    }

    func failed(_ error: SpaceError) {
        failedCount.add(1, ordering: .relaxed)
        if error.code == .timedOut { timedOutCount.add(1, ordering: .relaxed) }
    }

    func rejected() {
        failedCount.add(1, ordering: .relaxed)
        rejectedCount.add(1, ordering: .relaxed)
    }

    func started() { startCount.add(1, ordering: .relaxed) }
    func crashed() { crashCount.add(1, ordering: .relaxed) }

    var snapshot: SpaceStatistics {
        var counts = [UInt64](repeating: 0, count: LatencyHistogram.bucketCount)
        for i in counts.indices { counts[i] = buckets[i].load(ordering: .relaxed) }
        let histogram = LatencyHistogram(counts: counts, sum: sum.load(ordering: .relaxed),
                                         max: maximum.load(ordering: .relaxed))
        var s = SpaceStatistics()
        s.succeeded = succeededCount.load(ordering: .relaxed)
        s.failed = failedCount.load(ordering: .relaxed)
        s.timedOut = timedOutCount.load(ordering: .relaxed)
        s.rejected = rejectedCount.load(ordering: .relaxed)
        s.starts = startCount.load(ordering: .relaxed)
        s.crashes = crashCount.load(ordering: .relaxed)
        s.inFlight = inFlight.load(ordering: .relaxed)
        s.latency = histogram.summary
        return s
    }
}
