@testable import Space
import Testing

/// The latency histogram behind `Space.statistics` against exact percentiles.
@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test func everyValueLandsInABucketWithinASixteenth() {
        var v: UInt64 = 1
        while v < UInt64.max / 8 {
            for x in [v, v + 1, v * 3 / 2] {
                let i = LatencyHistogram.index(x)
                let upper = LatencyHistogram.upperBound(i)
                #expect(upper >= x)
                #expect(Double(upper - x) <= Double(x) / 16 + 1, "value \(x) bucket \(i) upper \(upper)")
                #expect(i < 1024)
            }
            v = v * 7 / 3 + 1
        }
        #expect(LatencyHistogram.index(UInt64.max) < 1024)
    }

    @Test func percentilesMatchTheExactOnes() {
        var h = LatencyHistogram()
        var values: [UInt64] = []
        var x: UInt64 = 88172645463325252
        for _ in 0..<10_000 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            let v = 1_000 + x % 5_000_000
            values.append(v)
            h.record(v)
        }
        values.sort()
        for p in [50.0, 90.0, 99.0] {
            let exact = values[Int((Double(values.count) * p / 100).rounded(.up)) - 1]
            let got = h.percentile(p)
            #expect(got >= exact && Double(got - exact) <= Double(exact) / 16 + 1, "p\(p): \(got) vs \(exact)")
        }
        let s = h.summary
        #expect(s.count == 10_000)
        #expect(s.max == values.last)
        #expect(s.mean == values.reduce(0, +) / 10_000)
    }

    @Test func anEmptyHistogramSaysZero() {
        let s = LatencyHistogram().summary
        #expect(s.count == 0 && s.p50 == 0 && s.p99 == 0 && s.max == 0)
    }
}
