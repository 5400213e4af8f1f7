#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWPluginState
import GWSystem
import Testing

/// consume() over arrays (the tests' convenience; the worker passes its own buffers).
func consume(_ t: RateLimitTable, _ keys: [RateLimitKey], _ limits: [Int64], _ ends: [Int64], now: Int64) -> (RateLimitResult, [Int64]) {
    var usages = [Int64](repeating: -1, count: keys.count)
    let r = keys.withUnsafeBufferPointer { k in
        limits.withUnsafeBufferPointer { l in
            ends.withUnsafeBufferPointer { e in
                usages.withUnsafeMutableBufferPointer { u in
                    t.consume(keys: k, limits: l, windowEnds: e, now: now, usagesOut: u)
                }
            }
        }
    }
    return (r, usages)
}

func usage(_ t: RateLimitTable, _ keys: [RateLimitKey], now: Int64) -> [Int64] {
    var usages = [Int64](repeating: -1, count: keys.count)
    keys.withUnsafeBufferPointer { k in usages.withUnsafeMutableBufferPointer { t.usage(keys: k, now: now, usagesOut: $0) } }
    return usages
}

@Suite struct RateLimitTableTests {
    let k1 = RateLimitKey(hi: 1, lo: 11), k2 = RateLimitKey(hi: 2, lo: 22), k3 = RateLimitKey(hi: 3, lo: 33)

    @Test func singleWindowAllowsExactlyLimit() throws {
        let f = try makeState()
        let t = f.state.counters
        for i in 0..<5 {
            let (r, u) = consume(t, [k1], [5], [200], now: 100)
            #expect(r == .allowed)
            #expect(u == [Int64(i)])
        }
        let (r, u) = consume(t, [k1], [5], [200], now: 100)
        #expect(r == .limited(0))
        #expect(u == [5])
        #expect(usage(t, [k1], now: 150) == [5])
    }

    @Test func multiWindowLimitedIncrementsNothing() throws {
        let f = try makeState()
        let t = f.state.counters
        // second: 10, minute: 3, hour: 100
        let keys = [k1, k2, k3], limits: [Int64] = [10, 3, 100], ends: [Int64] = [101, 160, 3700]
        for i in 0..<3 {
            let (r, u) = consume(t, keys, limits, ends, now: 100)
            #expect(r == .allowed)
            #expect(u == [Int64(i), Int64(i), Int64(i)])
        }
        let (r, u) = consume(t, keys, limits, ends, now: 100)
        #expect(r == .limited(1))
        #expect(u == [3, 3, 3])
        #expect(usage(t, keys, now: 100) == [3, 3, 3])   // nothing incremented
        // The first limited window is reported, not a later one.
        let (r2, _) = consume(t, [k3, k1, k2], [1, 1, 1], [3700, 101, 160], now: 100)
        #expect(r2 == .limited(0))
    }

    @Test func expiredWindowsAreReclaimed() throws {
        let f = try makeState(countersSize: 128 + 32 * 8)   // 8 slots
        let t = f.state.counters
        #expect(t.stats.capacity == 8)
        for i in 0..<8 {
            #expect(consume(t, [RateLimitKey(hi: 9, lo: UInt64(i) &* 0x1234_5678_9abc_def1)], [10], [101], now: 100).0 == .allowed)
        }
        #expect(t.liveCount(now: 100) == 8)
        // Full while they live...
        #expect(consume(t, [k1], [10], [200], now: 100).0 == .full)
        #expect(t.stats.full == 1)
        // ...reused once their window ended; an expired key reads 0.
        #expect(usage(t, [RateLimitKey(hi: 9, lo: 0)], now: 101) == [0])
        for i in 0..<8 {
            #expect(consume(t, [RateLimitKey(hi: 10, lo: UInt64(i) &* 0x1111_2222_3333_4445)], [10], [200], now: 101).0 == .allowed)
        }
        #expect(t.liveCount(now: 101) == 8)
        #expect(consume(t, [k1], [10], [200], now: 150).0 == .full)
        #expect(t.stats.full == 2)
    }

    @Test func fullTableNeverIncrementsHalfAConsume() throws {
        let f = try makeState(countersSize: 128 + 32 * 4)
        let t = f.state.counters
        for i in 0..<3 { _ = consume(t, [RateLimitKey(hi: 5, lo: UInt64(i) << 62)], [10], [200], now: 100) }
        // Needs two new slots; one is free.
        let (r, u) = consume(t, [k1, k2], [10, 10], [200, 200], now: 100)
        #expect(r == .full)
        #expect(u == [0, 0])
        #expect(usage(t, [k1, k2], now: 100) == [0, 0])
        #expect(consume(t, [k1], [10], [200], now: 100).0 == .allowed)
    }

    @Test func sameKeyAfterItsWindowEndsStartsAtZero() throws {
        let f = try makeState()
        let t = f.state.counters
        _ = consume(t, [k1], [2], [101], now: 100)
        _ = consume(t, [k1], [2], [101], now: 100)
        #expect(consume(t, [k1], [2], [101], now: 100).0 == .limited(0))
        let (r, u) = consume(t, [k1], [2], [102], now: 101)
        #expect(r == .allowed)
        #expect(u == [0])
    }

    @Test func exactAcrossProcesses() throws {
        let f = try makeState()
        let limit = 300_000, perChild = 200_000, children = 4   // long enough to overlap
        let probes = (0..<children).map { _ in
            Probe.start(f.shm, ["consume", String(perChild), String(limit), "1000", "100"])
        }
        var total = 0
        for p in probes {
            total += Int(p.line()) ?? -1_000_000
            #expect(p.wait() == 0)
        }
        #expect(total == limit)
        #expect(usage(f.state.counters, [RateLimitKey(hi: 7, lo: 9)], now: 100) == [Int64(limit)])
    }

    @Test func processKilledHoldingTheLockDoesNotWedge() throws {
        let f = try makeState()
        let p = Probe.start(f.shm, ["hold-counters"])
        #expect(p.line() == "held")
        kill(p.pid, SIGKILL)
        #expect(p.wait() == 128 + SIGKILL)
        #expect(consume(f.state.counters, [k1], [5], [200], now: 100).0 == .allowed)
        #expect(f.state.counters.stats.recoveries == 1)
        #expect(consume(f.state.counters, [k1], [5], [200], now: 100).1 == [1])
    }

    @Test func attachSeesTheSameTable() throws {
        let f = try makeState()
        _ = consume(f.state.counters, [k1], [5], [200], now: 100)
        let other = try PluginState(attaching: f.shm)
        #expect(usage(other.counters, [k1], now: 100) == [1])
    }
}
