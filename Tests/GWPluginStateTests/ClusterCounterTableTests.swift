// ClusterCounterTable (rate-limiting policy cluster): the workers' exact step (usage = synced + inflight +
// pending), the master's take / settle / restore protocol, refresh rows, the identity written for Kong's
// columns, bounds (full, batch limit) and exactness across processes.
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWPluginState
import GWSystem
import Testing

let zeroUUID = "00000000-0000-0000-0000-000000000000"
let routeUUID = "0c5ad9f4-1e7b-4a47-9d6c-51c1d1b4a0e2"

/// consume() over arrays, with an identity.
func consume(_ t: ClusterCounterTable, _ keys: [Hash128], _ limits: [Int64], _ starts: [Int64], _ ends: [Int64],
             now: Int64, identifier: String = "alice", hash: (UInt64, UInt64) = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
             service: String = zeroUUID, route: String = routeUUID) -> (RateLimitResult, [Int64]) {
    var usages = [Int64](repeating: -1, count: keys.count)
    let sv = Array(service.utf8), rt = Array(route.utf8), id = Array(identifier.utf8)
    let r = keys.withUnsafeBufferPointer { k in
        limits.withUnsafeBufferPointer { l in
            starts.withUnsafeBufferPointer { s in
                ends.withUnsafeBufferPointer { e in
                    sv.withUnsafeBufferPointer { svb in
                        rt.withUnsafeBufferPointer { rtb in
                            id.withUnsafeBufferPointer { idb in
                                usages.withUnsafeMutableBufferPointer { u in
                                    t.consume(keys: k, limits: l, windowStarts: s, windowEnds: e, service: svb, route: rtb,
                                              identifier: idb, identifierHash: hash, now: now, usagesOut: u)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return (r, usages)
}

@Suite struct ClusterCounterTableTests {
    let k1 = Hash128(hi: 1, lo: 11), k2 = Hash128(hi: 2, lo: 22)

    func table(_ size: Int = 64 << 10, now: Int64 = 0) throws -> (PluginStateFixture, ClusterCounterTable) {
        let f = try makeState(clusterSize: size, now: now)
        return (f, try #require(f.state.cluster))
    }

    @Test func noTableUnlessAsked() throws {
        let f = try makeState()
        #expect(f.state.cluster == nil)
        #expect(try PluginState(attaching: f.shm).cluster == nil)
    }

    @Test func exactOnOneNodeAndRejectedNotCounted() throws {
        let (_, t) = try table(now: 42)
        #expect(t.syncedAt == 42)
        for i in 0..<3 {
            let (r, u) = consume(t, [k1], [3], [0], [86400], now: 100)
            #expect(r == .allowed)
            #expect(u == [Int64(i)])
        }
        #expect(consume(t, [k1], [3], [0], [86400], now: 100) == (.limited(0), [3]))
        #expect(t.usage(k1, now: 100) == 3)
        // Multi-window: the limited window stops the request; nothing is counted in the others.
        #expect(consume(t, [k2, k1], [10, 3], [0, 0], [60, 86400], now: 1) == (.limited(1), [0, 3]))
        #expect(t.usage(k2, now: 1) == 0)
    }

    @Test func takeSettleKeepsUsageAndSeesOtherNodes() throws {
        let (_, t) = try table()
        for _ in 0..<4 { _ = consume(t, [k1], [10], [0], [86400], now: 100) }
        let (rows, _) = t.take(now: 100, limit: 100, cursor: 0)
        #expect(rows.count == 1)
        let r = try #require(rows.first)
        #expect(r.increment == 4 && r.key == k1 && r.windowStart == 0 && r.windowEnd == 86400 && r.period == 3)
        #expect(r.identifier == "alice" && r.serviceID == zeroUUID && r.routeID == routeUUID)
        // While the statement is in flight the taken requests still count (inflight).
        #expect(t.usage(k1, now: 100) == 4)
        #expect(consume(t, [k1], [10], [0], [86400], now: 100).1 == [4])
        // A row with a statement in flight is not taken again.
        #expect(t.take(now: 100, limit: 100, cursor: 0).rows.isEmpty)
        // PostgreSQL answers 7: this node's 4 plus 3 from other nodes; the request counted meanwhile stays pending.
        t.settle([(r, 7)])
        #expect(t.usage(k1, now: 100) == 8)
        let (again, _) = t.take(now: 100, limit: 100, cursor: 0)
        #expect(again.count == 1 && again[0].increment == 1)
        t.settle([(again[0], 8)])
        #expect(t.usage(k1, now: 100) == 8)
        // Nothing pending: the live row is still named (increment 0), so other nodes' counts are read.
        let (refresh, _) = t.take(now: 100, limit: 100, cursor: 0)
        #expect(refresh.count == 1 && refresh[0].increment == 0)
        t.settle([(refresh[0], 10)])
        #expect(consume(t, [k1], [10], [0], [86400], now: 100) == (.limited(0), [10]))
    }

    @Test func failedStatementLosesNothing() throws {
        let (_, t) = try table()
        for _ in 0..<3 { _ = consume(t, [k1], [10], [0], [86400], now: 100) }
        let (rows, _) = t.take(now: 100, limit: 100, cursor: 0)
        _ = consume(t, [k1], [10], [0], [86400], now: 100)
        t.restore(rows)
        #expect(t.usage(k1, now: 100) == 4)
        let (again, _) = t.take(now: 100, limit: 100, cursor: 0)
        #expect(again.map(\.increment) == [4])
    }

    @Test func reusedSlotDropsALateAnswer() throws {
        let f = try makeState(clusterSize: 128 + 256 * 1)   // one slot
        let t = try #require(f.state.cluster)
        #expect(t.capacity == 1)
        _ = consume(t, [k1], [10], [0], [60], now: 10)
        let (rows, _) = t.take(now: 10, limit: 100, cursor: 0)
        // The window ends; another key takes the slot before PostgreSQL answers.
        #expect(consume(t, [k2], [10], [60], [120], now: 60).0 == .allowed)
        t.settle([(rows[0], 99)])
        t.restore(rows)
        #expect(t.usage(k2, now: 60) == 1)
        // A table with no reusable slot answers .full (fault_tolerant) and counts it.
        #expect(consume(t, [k1], [10], [60], [120], now: 61).0 == .full)
        #expect(t.stats.full == 1)
    }

    @Test func expiredRowsArePushedButNotRefreshed() throws {
        let (_, t) = try table()
        _ = consume(t, [k1], [10], [0], [60], now: 10)
        _ = consume(t, [k2], [10], [0], [60], now: 10)
        let (first, _) = t.take(now: 10, limit: 100, cursor: 0)
        t.settle(first.map { ($0, 1) })
        _ = consume(t, [k1], [10], [0], [60], now: 59)
        // At 61 the window is over: k1's last request still goes to PostgreSQL, k2 is not read again.
        let (rows, _) = t.take(now: 61, limit: 100, cursor: 0)
        #expect(rows.count == 1 && rows[0].key == k1 && rows[0].increment == 1)
    }

    @Test func batchLimitAndRoundRobin() throws {
        let (_, t) = try table()
        for i in 0..<10 { _ = consume(t, [Hash128(hi: 5, lo: UInt64(i) &* 0x9E37_79B9_7F4A_7C15)], [10], [0], [86400], now: 1) }
        let (a, c1) = t.take(now: 1, limit: 4, cursor: 0)
        #expect(a.count == 4 && a.allSatisfy { $0.increment == 1 })
        t.settle(a.map { ($0, 1) })
        let (b, _) = t.take(now: 1, limit: 4, cursor: c1)
        #expect(b.count == 4 && b.allSatisfy { $0.increment == 1 })
        t.settle(b.map { ($0, 1) })
        let (c, c3) = t.take(now: 1, limit: 4, cursor: c1)
        #expect(c.count == 4)
        #expect(c.filter { $0.increment == 1 }.count == 2)   // the last two pending rows, then two refreshes
        t.settle(c.map { ($0, 1) })
        // Refreshes go round: ten rows are all named within three batches.
        var seen = Set<Int>()
        var cursor = c3
        for _ in 0..<3 {
            let (r, next) = t.take(now: 1, limit: 4, cursor: cursor)
            cursor = next
            for x in r { seen.insert(x.slot) }
            t.settle(r.map { ($0, 1) })
        }
        #expect(seen.count == 10)
    }

    @Test func identityForKongsColumns() throws {
        let (_, t) = try table()
        let month = Hash128(hi: 3, lo: 33), year = Hash128(hi: 4, lo: 44), long = Hash128(hi: 6, lo: 66), odd = Hash128(hi: 8, lo: 88)
        // 2026-02-01 .. 2026-03-01 (28 days), 2026 (365 days).
        _ = consume(t, [month, year], [5, 5], [1_769_904_000, 1_767_225_600], [1_772_323_200, 1_798_761_600],
                    now: 1_770_000_000, identifier: "10.0.0.1", service: "2c1a2f6e-6e1b-4b8e-8d2a-6f0f1f6a9b11")
        _ = consume(t, [long], [5], [0], [86400], now: 1, identifier: String(repeating: "x", count: 113), hash: (0xab, 0xcd))
        _ = consume(t, [odd], [5], [0], [86400], now: 1, identifier: "caf\u{e9}", hash: (1, 2))
        let rows = t.take(now: 1, limit: 100, cursor: 0).rows
        let byKey = Dictionary(uniqueKeysWithValues: rows.map { ($0.key, $0) })
        #expect(byKey[month]?.period == 4 && byKey[year]?.period == 5)
        #expect(byKey[month]?.identifier == "10.0.0.1" && byKey[month]?.serviceID == "2c1a2f6e-6e1b-4b8e-8d2a-6f0f1f6a9b11")
        #expect(byKey[long]?.identifier == "h:00000000000000ab00000000000000cd")
        #expect(byKey[odd]?.identifier == "h:00000000000000010000000000000002")
        let exact = String(repeating: "y", count: ClusterCounterTable.identifierMax)
        let k = Hash128(hi: 9, lo: 99)
        _ = consume(t, [k], [5], [0], [86400], now: 1, identifier: exact)
        #expect(t.take(now: 1, limit: 100, cursor: 0).rows.first { $0.key == k }?.identifier == exact)
    }

    @Test func exactAcrossProcesses() throws {
        let (f, t) = try table()
        let limit = 150_000, perChild = 100_000, children = 4
        let probes = (0..<children).map { _ in
            Probe.start(f.shm, ["cluster-consume", String(perChild), String(limit), "0", "1000", "100"])
        }
        var total = 0
        for p in probes {
            total += Int(p.line()) ?? -1_000_000
            #expect(p.wait() == 0)
        }
        #expect(total == limit)
        #expect(t.usage(Hash128(hi: 7, lo: 9), now: 100) == Int64(limit))
    }

    @Test func processKilledHoldingTheLockDoesNotWedge() throws {
        let (f, t) = try table()
        let p = Probe.start(f.shm, ["hold-cluster"])
        #expect(p.line() == "held")
        kill(p.pid, SIGKILL)
        #expect(p.wait() == 128 + SIGKILL)
        #expect(consume(t, [k1], [5], [0], [200], now: 100).0 == .allowed)
        #expect(t.stats.recoveries == 1)
        #expect(try PluginState(attaching: f.shm).cluster?.usage(k1, now: 100) == 1)
    }
}
