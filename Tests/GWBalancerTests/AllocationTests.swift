import Glibc
import Testing
import GWStore
@testable import GWBalancer

/// Proves the per-request path allocates nothing when the test binary runs with the interposer of
/// `alloc_counter.c` preloaded (see that file); without it the check is skipped (the picks still run).
@Suite struct AllocationTests {
    typealias StartFn = @convention(c) () -> Void
    typealias StopFn = @convention(c) () -> UInt64

    @Test func noAllocationPerPick() {
        let t = makeSharedTable(capacity: 32768)
        let addrs = addresses((0..<2000).map { 1 + $0 % 5 }, table: t)
        let small = addresses([1, 2, 3], table: t, base: 5000)
        var balancers: [UpstreamBalancer] = []
        for algo in BalancingAlgorithm.allCases {
            for list in [addrs, small] {
                balancers.append(UpstreamBalancer(upstream: upstream(algorithm: algo.rawValue,
                                                                     configure: passiveHC(http: 250, tcp: 250)),
                                                  addresses: list, table: t, seed: 3))
            }
        }
        t.setHealthy(addrs[1].slot, false, now: 1)
        let start = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gw_alloc_counter_start")   // RTLD_DEFAULT
        let stop = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gw_alloc_counter_stop")
        func run() {
            for b in balancers {
                for k in 0..<2000 {
                    var tried = TriedPeers()
                    guard let p = b.pick(hash: UInt32(truncatingIfNeeded: k &* 40503)) else { continue }
                    tried.insert(p)
                    b.release(p, latencyMicros: 300, outcome: .tcpFailure, nowMillis: UInt64(k))
                    if let q = b.pick(hash: UInt32(truncatingIfNeeded: k &* 40503), excluding: tried) {
                        b.release(q, latencyMicros: 200, outcome: .httpStatus(200), nowMillis: UInt64(k))
                    }
                }
            }
        }
        run()   // warm-up: lazy metadata, caches
        guard let start, let stop else { return }
        for (i, b) in balancers.enumerated() {
            unsafeBitCast(start, to: StartFn.self)()
            for k in 0..<100 {
                var tried = TriedPeers()
                guard let p = b.pick(hash: UInt32(truncatingIfNeeded: k &* 40503)) else { continue }
                tried.insert(p)
                b.release(p, latencyMicros: 300, outcome: .tcpFailure, nowMillis: UInt64(k))
                if let q = b.pick(hash: UInt32(truncatingIfNeeded: k &* 40503), excluding: tried) {
                    b.release(q, latencyMicros: 200, outcome: .httpStatus(200), nowMillis: UInt64(k))
                }
            }
            let n = unsafeBitCast(stop, to: StopFn.self)()
            #expect(n == 0, "balancer \(i) (\(b.algorithm), \(b.addresses.count) addresses): \(n) allocations in 100 requests")
        }
    }
}
