#if canImport(Glibc)
import Glibc
#endif
import GWPluginState
import GWSystem

func nowNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Single-process ns per call (uncontended lock), printed one line per case.
func bench(_ state: PluginState) {
    let n = 2_000_000
    let keys = (0..<6).map { RateLimitKey(hi: UInt64($0), lo: UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }
    let limits = [Int64](repeating: Int64.max, count: 6)
    let ends: [Int64] = [101, 160, 3700, 86500, 2_592_100, 31_536_100]
    var usages = [Int64](repeating: 0, count: 6)
    for w in [1, 2, 6] {
        let t0 = nowNs()
        keys.withUnsafeBufferPointer { k in limits.withUnsafeBufferPointer { l in ends.withUnsafeBufferPointer { e in
            usages.withUnsafeMutableBufferPointer { u in
                for i in 0..<n {
                    // 1000 distinct identifiers: different slots, like different clients.
                    let kk = UnsafeBufferPointer(rebasing: k[0..<w])
                    _ = i
                    _ = state.counters.consume(keys: kk, limits: l, windowEnds: e, now: 100,
                                               usagesOut: UnsafeMutableBufferPointer(rebasing: u[0..<w]))
                }
            }
        } } }
        say("consume \(w) window(s): \((nowNs() - t0) / Int64(n)) ns")
    }
    let buffer = CacheBuffer(capacity: 1 << 20)
    for size in [1024, 8 << 10, 1 << 20] {
        let blob = [UInt8](repeating: 7, count: size)
        let key = CacheKey(1, 2, 3, UInt64(size))
        _ = blob.withUnsafeBytes { state.cache.store(key, storedAt: 100, ttl: 60, expiresAt: 0, plugin: Hash128(hi: 1, lo: 1), blob: $0, now: 100) }
        let m = size >= 1 << 20 ? 2000 : 1_000_000
        let t0 = nowNs()
        for _ in 0..<m { _ = state.cache.lookup(key, now: 100, into: buffer) }
        say("lookup hit \(size) B: \((nowNs() - t0) / Int64(m)) ns")
    }
    let miss = CacheKey(9, 9, 9, 9)
    let t0 = nowNs()
    for _ in 0..<n { _ = state.cache.lookup(miss, now: 100, into: buffer) }
    say("lookup miss: \((nowNs() - t0) / Int64(n)) ns")
}
