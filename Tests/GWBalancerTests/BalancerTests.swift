import Glibc
import Testing
import GWStore
@testable import GWBalancer

@Suite struct RoundRobinTests {
    @Test func exactWeightedDistributionAndSmoothness() {
        let t = makeSharedTable()
        let b = UpstreamBalancer(upstream: upstream(), addresses: addresses([1, 3], table: t), table: t)
        let picks = pickMany(b, 400)
        #expect(counts(picks, 2) == [100, 300])
        // No longer runs than nginx smooth WRR produces for the same weights (over several cycles).
        let ref = longestRun(nginxSmooth([1, 3], count: 400))
        let got = longestRun(picks)
        #expect(got[0]! <= ref[0]! && got[1]! <= ref[1]!)
    }

    @Test func unevenWeightsMatchNginxOrderExactly() {
        let t = makeSharedTable()
        let weights = [5, 1, 1]
        let b = UpstreamBalancer(upstream: upstream(), addresses: addresses(weights, table: t), table: t)
        let seq = b.pick().map { first -> [Int] in
            b.release(first, latencyMicros: nil, outcome: nil)
            return [first.index] + pickMany(b, 6)
        }!
        // nginx order for {5,1,1} is a a b a c a a; the balancer starts at a per-worker offset of the same cycle.
        let ref = nginxSmooth(weights, count: 7)
        let doubled = ref + ref
        #expect((0..<7).contains { doubled[$0..<($0 + 7)].elementsEqual(seq) })
        #expect(counts(pickMany(b, 700), 3) == [500, 100, 100])
    }

    @Test func gcdAndLargeWeights() {
        let t = makeSharedTable()
        let b = UpstreamBalancer(upstream: upstream(), addresses: addresses([100, 200, 300], table: t), table: t)
        #expect(counts(pickMany(b, 600), 3) == [100, 200, 300])
        let big = UpstreamBalancer(upstream: upstream(), addresses: addresses([65535, 1, 30000], table: t), table: t)
        let c = counts(pickMany(big, 100_000), 3)
        #expect(c[1] >= 1)                                       // the tiny weight still gets its share
        #expect(abs(Double(c[0]) / Double(c[2]) - 65535.0 / 30000.0) < 0.01)
    }

    @Test func largeUpstreamsUseTheStrideScheduleWithExactCycles() {
        let t = makeSharedTable(capacity: 8192)
        let weights = (0..<3000).map { 1 + $0 % 3 }          // n · Σw = 18 M > 4 M ⇒ heap schedule
        let b = UpstreamBalancer(upstream: upstream(), addresses: addresses(weights, table: t), table: t)
        let picks = pickMany(b, 6000)                          // exactly one cycle
        #expect(counts(picks, 3000) == weights)
        #expect(longestRun(picks).values.max() == 1)           // no bursts
        // The heaviest entries are spread: weight-3 entries come back only after ≥ 1000 other picks on average.
        var last = [Int: Int](), minGap = Int.max
        for (i, a) in picks.enumerated() where weights[a] == 3 {
            if let l = last[a] { minGap = min(minGap, i - l) }
            last[a] = i
        }
        #expect(minGap >= 1000)
    }

    @Test func weightZeroIsNeverPicked() {
        let t = makeSharedTable()
        let b = UpstreamBalancer(upstream: upstream(), addresses: addresses([0, 10, 0], table: t), table: t)
        #expect(counts(pickMany(b, 50), 3) == [0, 50, 0])
        let none = UpstreamBalancer(upstream: upstream(), addresses: addresses([0, 0], table: t), table: t)
        #expect(!none.isHealthy)
        #expect(none.pick() == nil)
        let empty = UpstreamBalancer(upstream: upstream(), addresses: [], table: t)
        #expect(!empty.isHealthy && empty.pick() == nil)
    }

    @Test func unhealthyAddressesAreSkippedImmediatelyInEveryView() {
        let t = makeSharedTable()
        let up = upstream(configure: passiveHC(http: 1))
        let addrs = addresses([1, 1, 1], table: t)
        let w1 = UpstreamBalancer(upstream: up, addresses: addrs, table: t, seed: 1)
        let w2 = UpstreamBalancer(upstream: up, addresses: addrs, table: PeerStateTable(base: t.base, size: t.size),
                                  seed: 2)
        let p = w1.pick()!
        #expect(w1.release(p, latencyMicros: 100, outcome: .httpStatus(500))?.isHealthy == false)
        #expect(!pickMany(w1, 30).contains(p.index))
        #expect(!pickMany(w2, 30).contains(p.index))
        #expect(counts(pickMany(w2, 30), 3).filter { $0 == 15 }.count == 2)
        // Rebuilding keeps the shared state.
        let rebuilt = UpstreamBalancer(upstream: up, addresses: addrs, table: t)
        #expect(!pickMany(rebuilt, 30).contains(p.index))
        // Health checks off for the upstream ⇒ health not consulted (Kong HEALTHCHECKS_OFF).
        let off = UpstreamBalancer(upstream: upstream(), addresses: addrs, table: t)
        #expect(counts(pickMany(off, 30), 3) == [10, 10, 10])
    }

    @Test func retriesAvoidTriedPeers() {
        let t = makeSharedTable()
        let b = UpstreamBalancer(upstream: upstream(), addresses: addresses([1, 1, 1], table: t), table: t)
        var tried = TriedPeers()
        var seen = Set<Int>()
        for _ in 0..<3 {
            let p = b.pick(excluding: tried)!
            seen.insert(p.index)
            tried.insert(p)
            b.release(p, latencyMicros: nil, outcome: .tcpFailure)
        }
        #expect(seen.count == 3)
        // All tried: falls back to a tried one rather than failing.
        #expect(b.pick(excluding: tried) != nil)
    }

    @Test func thresholdRule() {
        let t = makeSharedTable()
        let up = upstream { hc in hc.passive.unhealthyTCPFailures = 1; hc.threshold = 75 }
        let addrs = addresses([25, 25, 25, 25], table: t)
        let b = UpstreamBalancer(upstream: up, addresses: addrs, table: t)
        #expect(b.isHealthy)                                     // 100 % > 75
        t.setHealthy(addrs[0].slot, false, now: 1)
        #expect(b.availableWeight == 75)
        #expect(!b.isHealthy)                                    // 75 % is not > 75 (strict)
        #expect(b.pick() == nil)                                 // unhealthy balancer ⇒ 503
        #expect(b.isHealthy(threshold: 74.9))
        #expect(!b.isHealthy(threshold: 100))
        t.setHealthy(addrs[0].slot, true, now: 2)
        #expect(b.isHealthy && b.pick() != nil)
        // threshold 0: needs any available weight.
        let zero = UpstreamBalancer(upstream: upstream(configure: passiveHC(tcp: 1)), addresses: addrs, table: t)
        for a in addrs { t.setHealthy(a.slot, false, now: 3) }
        #expect(!zero.isHealthy && zero.pick() == nil)
    }

    @Test func tenThousandTargets() {
        let t = makeSharedTable(capacity: 32768)
        let weights = (0..<10_000).map { 1 + ($0 % 7) * 100 }
        let addrs = addresses(weights, table: t)
        for algo in BalancingAlgorithm.allCases {
            let b = UpstreamBalancer(upstream: upstream(algorithm: algo.rawValue, configure: passiveHC(tcp: 1)),
                                     addresses: addrs, table: t, seed: 42)
            var hits = 0
            for k in 0..<20_000 {
                guard let p = b.pick(hash: UInt32(truncatingIfNeeded: k &* 2_654_435_761)) else { continue }
                hits += 1
                b.release(p, latencyMicros: 100 + k % 50, outcome: nil)
            }
            #expect(hits == 20_000)
        }
        // Equal weights at scale: one full RR cycle visits every address exactly once.
        let eq = UpstreamBalancer(upstream: upstream(), addresses: addresses([Int](repeating: 5, count: 10_000),
                                  table: t, base: 20_000), table: t)
        #expect(Set(pickMany(eq, 10_000)).count == 10_000)
    }
}

@Suite struct ConsistentHashingTests {
    func ring(_ addrs: [ResolvedAddress], _ t: PeerStateTable, seed: UInt64 = 0) -> UpstreamBalancer {
        UpstreamBalancer(upstream: upstream(algorithm: "consistent-hashing", configure: passiveHC(tcp: 1)),
                         addresses: addrs, table: t, seed: seed)
    }

    func mapping(_ b: UpstreamBalancer, keys: Int) -> [PeerAddress] {
        (0..<keys).map { k in
            let p = b.pick(hash: UpstreamBalancer.hashKey("user-\(k)"))!
            b.release(p, latencyMicros: nil, outcome: nil)
            return p.address
        }
    }

    @Test func sameKeySameTargetInEveryWorkerRegardlessOfOrder() {
        let t = makeSharedTable()
        let addrs = addresses([100, 100, 100, 100, 100], table: t)
        let a = mapping(ring(addrs, t, seed: 1), keys: 2000)
        let b = mapping(ring(addrs.reversed(), PeerStateTable(base: t.base, size: t.size), seed: 99), keys: 2000)
        #expect(a == b)
        #expect(Set(a).count == 5)
    }

    @Test func addingOneTargetMovesAboutOneOverNPlusOne() {
        let t = makeSharedTable()
        let n = 10
        let addrs = addresses([Int](repeating: 100, count: n + 1), table: t)
        let before = mapping(ring(Array(addrs.prefix(n)), t), keys: 10_000)
        let after = mapping(ring(addrs, t), keys: 10_000)
        let moved = zip(before, after).filter { $0 != $1 }
        let fraction = Double(moved.count) / 10_000
        #expect(fraction > 0.03 && fraction < 1.6 / Double(n + 1))
        #expect(moved.allSatisfy { $0.1 == addrs[n].address })   // only onto the new target
        // Removing a target moves only that target's keys.
        let removed = mapping(ring(Array(addrs.dropFirst()), t), keys: 10_000)
        for (x, y) in zip(after, removed) where x != addrs[0].address { #expect(x == y) }
    }

    @Test func unhealthyTargetRemapsOnlyItsKeys() {
        let t = makeSharedTable()
        let addrs = addresses([100, 100, 100, 100], table: t)
        let b = ring(addrs, t)
        let before = mapping(b, keys: 4000)
        t.setHealthy(addrs[2].slot, false, now: 1)
        let after = mapping(b, keys: 4000)
        for (x, y) in zip(before, after) {
            if x == addrs[2].address { #expect(y != x) } else { #expect(x == y) }
        }
        // Retries skip tried peers but stay deterministic.
        var tried = TriedPeers()
        let h = UpstreamBalancer.hashKey("k")
        let first = b.pick(hash: h, excluding: tried)!
        tried.insert(first)
        let second = b.pick(hash: h, excluding: tried)!
        #expect(second.index != first.index)
        b.release(first, latencyMicros: nil, outcome: nil); b.release(second, latencyMicros: nil, outcome: nil)
    }

    @Test func weightsShapeTheRing() {
        let t = makeSharedTable()
        let addrs = addresses([100, 300], table: t)
        let m = mapping(ring(addrs, t), keys: 20_000)
        let heavy = Double(m.filter { $0 == addrs[1].address }.count) / 20_000
        #expect(heavy > 0.65 && heavy < 0.85)
        // No hash (hash_on none): every request lands on one target.
        let b = ring(addrs, t)
        #expect(Set(pickMany(b, 20)).count == 1)
    }
}

@Suite struct LeastConnectionsAndLatencyTests {
    @Test func prefersIdlePeersAcrossWorkers() {
        let t = makeSharedTable()
        let up = upstream(algorithm: "least-connections")
        let addrs = addresses([1, 1, 1], table: t)
        let w1 = UpstreamBalancer(upstream: up, addresses: addrs, table: t, seed: 1)
        let w2 = UpstreamBalancer(upstream: up, addresses: addrs, table: PeerStateTable(base: t.base, size: t.size),
                                  seed: 2)
        // Worker 1 holds two connections open on two distinct peers; worker 2 must choose the third.
        let a = w1.pick()!, b = w1.pick()!
        #expect(a.index != b.index)
        let c = w2.pick()!
        #expect(Set([a.index, b.index, c.index]).count == 3)
        #expect(t.activeConnections(c.slot) == 1)
        w1.release(a, latencyMicros: nil, outcome: nil)
        #expect(w2.pick()!.index == a.index)                     // the only idle one again
    }

    @Test func weightedScore() {
        let t = makeSharedTable()
        let addrs = addresses([1, 3], table: t)
        let b = UpstreamBalancer(upstream: upstream(algorithm: "least-connections"), addresses: addrs, table: t)
        var held: [PeerPick] = []
        for _ in 0..<8 { held.append(b.pick()!) }               // no releases: (active+1)/weight balances 1:3
        #expect(counts(held.map(\.index), 2) == [2, 6])
    }

    @Test func countsFromAnotherProcess() {
        let t = makeSharedTable()
        let up = upstream(algorithm: "least-connections")
        let addrs = addresses([1, 1], table: t)
        let pid = fork()
        if pid == 0 {
            // Child "worker": opens 5 connections to address 0 and keeps them (exits without releasing).
            for _ in 0..<5 { t.incrementActive(addrs[0].slot) }
            _exit(0)
        }
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        let b = UpstreamBalancer(upstream: up, addresses: addrs, table: t)
        var picks: [Int] = []
        for _ in 0..<5 { picks.append(b.pick()!.index) }
        #expect(picks == [1, 1, 1, 1, 1])
    }

    @Test func crashedWorkerConnectionsAreReclaimed() {
        let t = makeSharedTable()
        let up = upstream(algorithm: "least-connections")
        let addrs = addresses([1, 1], table: t)
        // Built (and warmed) before fork: the child only does raw shared-memory work, no allocation.
        let b = UpstreamBalancer(upstream: up, addresses: addrs, table: t.forWorker(3))
        if let warm = b.pick() { b.release(warm, latencyMicros: nil, outcome: nil) }
        let pid = fork()
        if pid == 0 {
            // Worker in segment slot 3 picks 4 times (LC spreads 2/2), releases one, then "crashes".
            var first: PeerPick? = nil
            var n: Int32 = 0
            for _ in 0..<4 { if let p = b.pick() { n += 1; if first == nil { first = p } } }
            if let p = first { b.release(p, latencyMicros: nil, outcome: nil) }
            _exit(n == 4 ? 0 : 1)
        }
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        #expect(st == 0)
        // Another live worker holds one connection on address 0.
        let live = UpstreamBalancer(upstream: upstream(), addresses: [addrs[0]], table: t.forWorker(0))
        let mine = live.pick()!
        let before = addrs.map { t.activeConnections($0.slot) }
        #expect(before.reduce(0, +) == 4)
        #expect(t.inFlight(worker: 3, addrs[0].slot) + t.inFlight(worker: 3, addrs[1].slot) == 3)
        #expect(t.inFlight(worker: 0, addrs[0].slot) == 1)
        #expect(t.reclaimWorker(3) == 3)
        #expect(t.activeConnections(addrs[0].slot) == 1 && t.activeConnections(addrs[1].slot) == 0)
        live.release(mine, latencyMicros: nil, outcome: nil)
        #expect(t.activeConnections(addrs[0].slot) == 0)
    }

    @Test func concurrentPicksFromTwoProcessesKeepCountsExact() {
        let t = makeSharedTable()
        // passive healthy.successes = 1 so that successes reset the HTTP failure counter (with 0 they would not,
        // as in Kong, and a 10 % error rate would eventually eject every address).
        let up = upstream(algorithm: "least-connections", configure: passiveHC(http: 250, successes: 1))
        let addrs = addresses([1, 2, 3], table: t)
        let views = [UpstreamBalancer(upstream: up, addresses: addrs, table: t.forWorker(0), seed: 1),
                     UpstreamBalancer(upstream: up, addresses: addrs, table: t.forWorker(1), seed: 2)]
        for b in views { if let p = b.pick() { b.release(p, latencyMicros: 10, outcome: .httpStatus(200)) } }
        var pids: [pid_t] = []
        for b in views {
            let pid = fork()
            if pid == 0 {
                var ok: Int32 = 0
                for k in 0..<20_000 {
                    guard let p = b.pick() else { continue }
                    ok += 1
                    b.release(p, latencyMicros: 100 + k % 7, outcome: k % 10 == 0 ? .httpStatus(500) : .httpStatus(200),
                              nowMillis: UInt64(k))
                }
                _exit(ok == 20_000 ? 0 : 1)
            }
            pids.append(pid)
        }
        for pid in pids { var st: Int32 = 0; waitpid(pid, &st, 0); #expect(st == 0) }
        let states = addrs.map { t.healthState($0.slot) }
        #expect(states.allSatisfy { $0.activeConnections == 0 })
        #expect(states.reduce(0) { $0 + $1.requests } == 40_002)
        #expect(states.reduce(0) { $0 + $1.failures } == 4_000)
        #expect(states.allSatisfy { $0.healthy })
        #expect(t.inFlight(worker: 0, addrs[0].slot) == 0 && t.inFlight(worker: 1, addrs[2].slot) == 0)
    }

    @Test func skipsTriedAndUnhealthy() {
        let t = makeSharedTable()
        let addrs = addresses([1, 1, 1], table: t)
        let b = UpstreamBalancer(upstream: upstream(algorithm: "least-connections", configure: passiveHC(tcp: 1)),
                                 addresses: addrs, table: t)
        t.setHealthy(addrs[0].slot, false, now: 1)
        var tried = TriedPeers()
        let p1 = b.pick(excluding: tried)!
        #expect(p1.index != 0)
        tried.insert(p1)
        b.release(p1, latencyMicros: nil, outcome: nil)
        let p2 = b.pick(excluding: tried)!
        #expect(p2.index != 0 && p2.index != p1.index)
    }

    @Test func samplingAtScaleStillPrefersIdle() {
        let t = makeSharedTable(capacity: 1024)
        let addrs = addresses([Int](repeating: 1, count: 200), table: t)
        let b = UpstreamBalancer(upstream: upstream(algorithm: "least-connections"), addresses: addrs, table: t, seed: 7)
        // Load half of the peers heavily.
        for a in addrs.prefix(100) { for _ in 0..<50 { t.incrementActive(a.slot) } }
        let picks = pickMany(b, 1000)
        #expect(picks.filter { $0 < 100 }.count < 10)            // 8 samples all loaded: (1/2)^8 per pick
    }

    @Test func latencyPrefersFastPeersAndSeedsNewOnes() {
        let t = makeSharedTable()
        let addrs = addresses([1, 1, 1], table: t)
        let up = upstream(algorithm: "latency")
        let now: UInt64 = 1_000_000
        t.recordLatency(addrs[0].slot, micros: 50_000, nowMillis: now)
        t.recordLatency(addrs[1].slot, micros: 5_000, nowMillis: now)
        // addrs[2] has no sample: seeded with the average (27 500) when the balancer is built.
        let b = UpstreamBalancer(upstream: up, addresses: addrs, table: t)
        #expect(t.ewmaMicros(addrs[2].slot) == 27_500)
        let picks = pickMany(b, 20)
        #expect(picks.allSatisfy { $0 == 1 })
        // The fast one becomes slow: traffic moves.
        for k in 1...5 { t.recordLatency(addrs[1].slot, micros: 500_000, nowMillis: now + UInt64(k) * 10_000) }
        #expect(pickMany(b, 5).allSatisfy { $0 == 2 })
        // Tried peers are skipped.
        var tried = TriedPeers()
        tried.insert(addrs[2].slot)
        let p = b.pick(excluding: tried)!
        #expect(p.index == 0)
        b.release(p, latencyMicros: nil, outcome: nil)
    }

    @Test func releaseCountsRequestsAndFailures() {
        let t = makeSharedTable()
        let addrs = addresses([1], table: t)
        let b = UpstreamBalancer(upstream: upstream(algorithm: "least-connections"), addresses: addrs, table: t)
        let p = b.pick()!
        #expect(t.healthState(p.slot).activeConnections == 1)
        b.release(p, latencyMicros: 1200, outcome: .httpStatus(502))
        let s = t.healthState(p.slot)
        #expect(s.activeConnections == 0 && s.requests == 1 && s.failures == 1 && s.ewmaMicros == 1200)
    }

    @Test func registryMapsKongNames() {
        #expect(BalancingAlgorithm(kongName: "round-robin") == .roundRobin)
        #expect(BalancingAlgorithm(kongName: "consistent-hashing") == .consistentHashing)
        #expect(BalancingAlgorithm(kongName: "least-connections") == .leastConnections)
        #expect(BalancingAlgorithm(kongName: "latency") == .latency)
        #expect(BalancingAlgorithm(kongName: "random") == nil)
    }
}
