// rate-limiting `policy = cluster` on the data path: the handler decides from the node's ClusterCounterTable
// (a real shared segment here), writes the identity Kong's ratelimiting_metrics row needs, sees other
// nodes' counts once the master settled them, and maps a stale sync to fault_tolerant.
import Testing
import GWHTTP
import GWJSON
import GWStore
import GWSystem
import GWPluginState
@testable import GWPlugins

final class ClusterStore: PluginSharedStore {
    let shm: SharedMemory
    let state: PluginState
    init(now: Int64) throws {
        shm = try SharedMemory(peerAreaSize: 4096, pluginAreaSize: PluginState.areaSize(countersSize: 64 << 10, cacheSize: 64 << 10,
                                                                                     clusterSize: 64 << 10))
        state = try PluginState(formatting: shm, countersSize: 64 << 10, cacheSize: 64 << 10, maxEntrySize: 16 << 10,
                                clusterSize: 64 << 10, now: now)
    }
    var rateLimitCounters: RateLimitCounterStore? { nil }
    var cacheStore: CacheStore? { nil }
    var clusterCounters: ClusterCounterTable? { state.cluster }
}

@Suite struct RateLimitingClusterTests {
    let now: Int64 = 1_699_999_990   // 10 s into a minute

    func set(_ config: JSON, shared: PluginSharedStore?) -> PluginSet {
        var c = config
        c["policy"] = "cluster"
        return PluginSet(snapshot: ConfigSnapshot(plugins: [plugin("rate-limiting", id: "rl", route: "6f1c0c3e-8a5e-4d1e-9b1a-3f2e1d0c9b8a", c)]),
                         previous: nil, shared: shared,
                         registry: PluginRegistry.implemented.map { ($0.key, $0.value.priority, $0.value.factory) })
    }

    @Test func countsInSharedMemoryWithKongsIdentity() throws {
        let store = try ClusterStore(now: now)
        let t = try #require(store.clusterCounters)
        let s = set(["minute": 3, "limit_by": "header", "header_name": "x-who"], shared: store)
        let route = "6f1c0c3e-8a5e-4d1e-9b1a-3f2e1d0c9b8a"
        for i in 1 ... 2 {
            let ctx = run(s, get("/", [("X-Who", "alice")]), route: route, now: now)
            #expect(ctx.exitStatus == 0)
            #expect(ctx.responseHeaders.value(of: "X-RateLimit-Remaining-Minute") == String(3 - i))
        }
        let rows = t.take(now: now, limit: 10, cursor: 0).rows
        #expect(rows.count == 1)
        let r = try #require(rows.first)
        #expect(r.identifier == "alice" && r.period == 1 && r.increment == 2)
        #expect(r.windowStart == 1_699_999_980 && r.windowEnd == 1_700_000_040)
        #expect(r.routeID == route && r.serviceID == "00000000-0000-0000-0000-000000000000")
        // Other nodes counted 1 more: the master settles 3, so this node's next request is refused.
        t.settle([(r, 3)])
        let ctx = run(s, get("/", [("X-Who", "alice")]), route: route, now: now)
        #expect(ctx.exitStatus == 429 && ctx.responseHeaders.value(of: "Retry-After") == "50")
        #expect(run(s, get("/", [("X-Who", "bob")]), route: route, now: now).exitStatus == 0)
    }

    @Test func staleSyncIsFaultTolerantUnlessAskedNot() throws {
        let store = try ClusterStore(now: now - 10)   // the master last synced 10 s ago
        let route = "6f1c0c3e-8a5e-4d1e-9b1a-3f2e1d0c9b8a"
        let tolerant = set(["minute": 3], shared: store)
        #expect(run(tolerant, get("/"), route: route, now: now).exitStatus == 0)
        let strict = set(["minute": 3, "fault_tolerant": false], shared: store)
        #expect(run(strict, get("/"), route: route, now: now).exitStatus == 500)
        store.clusterCounters!.syncedAt = now - 1
        #expect(run(strict, get("/"), route: route, now: now).exitStatus == 0)
    }

    @Test func noClusterTableProceedsWithoutHeaders() {
        let route = "6f1c0c3e-8a5e-4d1e-9b1a-3f2e1d0c9b8a"
        let s = set(["minute": 1], shared: nil)
        for _ in 0 ..< 2 {
            let ctx = run(s, get("/"), route: route, now: now)
            #expect(ctx.exitStatus == 0 && ctx.responseHeaders.isEmpty)
        }
        #expect(run(set(["minute": 1, "fault_tolerant": false], shared: nil), get("/"), route: route, now: now).exitStatus == 500)
    }
}
