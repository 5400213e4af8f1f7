import Testing
import GWHTTP
import GWJSON
import GWStore
import GWPluginState
@testable import GWPlugins

/// An in-process counter store with the shared table's semantics (check all, then count in all).
final class MemoryCounters: RateLimitCounterStore, PluginSharedStore {
    var counts: [RateLimitKey: Int64] = [:]
    var capacity = Int.max
    var rateLimitCounters: RateLimitCounterStore? { self }
    var cacheStore: CacheStore? { nil }
    func consume(keys: UnsafeBufferPointer<RateLimitKey>, limits: UnsafeBufferPointer<Int64>, windowEnds: UnsafeBufferPointer<Int64>,
                 now: Int64, usagesOut usages: UnsafeMutableBufferPointer<Int64>) -> RateLimitResult {
        for i in 0 ..< keys.count { usages[i] = counts[keys[i]] ?? 0 }
        if keys.contains(where: { counts[$0] == nil }) && counts.count + keys.count > capacity { return .full }
        for i in 0 ..< keys.count where usages[i] >= limits[i] { return .limited(i) }
        for k in keys { counts[k, default: 0] += 1 }
        return .allowed
    }
}


/// Scenarios of Kong's spec/03-plugins/23-rate-limiting/04-access_spec.lua, without sockets.
@Suite struct RateLimitingTests {
    func set(_ config: JSON, store: MemoryCounters = MemoryCounters(), route: String? = "r1", consumers: [Consumer] = [],
             extra: [Plugin] = []) -> PluginSet {
        PluginSet(snapshot: ConfigSnapshot(consumers: consumers, plugins: [plugin("rate-limiting", id: "rl", route: route, config)] + extra,
                                           keyauthCredentials: consumers.map { KeyAuthCredential(id: "k-\($0.id)", consumerID: $0.id, key: $0.id) }),
                  previous: nil, shared: store,
                  registry: PluginRegistry.implemented.map { ($0.key, $0.value.priority, $0.value.factory) })
    }

    @Test func minuteSixThen429() {
        let s = set(["minute": 6])
        let now: Int64 = 1_699_999_990   // 10 s into a minute (1_699_999_980 is a multiple of 60)
        for i in 1 ... 6 {
            let ctx = run(s, get("/"), now: now)
            #expect(ctx.exitStatus == 0)
            #expect(ctx.responseHeaders.value(of: "X-RateLimit-Limit-Minute") == "6")
            #expect(ctx.responseHeaders.value(of: "X-RateLimit-Remaining-Minute") == String(6 - i))
            #expect(ctx.responseHeaders.value(of: "RateLimit-Limit") == "6")
            #expect(ctx.responseHeaders.value(of: "RateLimit-Remaining") == String(6 - i))
            #expect(ctx.responseHeaders.value(of: "RateLimit-Reset") == "50")
            #expect(ctx.responseHeaders.value(of: "Retry-After") == nil)
        }
        let ctx = run(s, get("/"), now: now)
        #expect(ctx.exitStatus == 429 && ctx.exitMessage == "API rate limit exceeded")
        #expect(ctx.responseHeaders.value(of: "X-RateLimit-Remaining-Minute") == "0")
        #expect(ctx.responseHeaders.value(of: "Retry-After") == "50")
        // The next minute starts afresh (windows are aligned to UTC minutes).
        #expect(run(s, get("/"), now: now + 50).exitStatus == 0)
    }

    @Test func aggregateFollowsTheMostRestrictiveWindow() {
        let s = set(["minute": 6, "hour": 99999])
        let ctx = run(s, get("/"), now: 1_700_000_000)
        #expect(ctx.responseHeaders.value(of: "RateLimit-Limit") == "6")
        #expect(ctx.responseHeaders.value(of: "X-RateLimit-Limit-Hour") == "99999")
        #expect(ctx.responseHeaders.value(of: "X-RateLimit-Remaining-Hour") == "99998")
    }

    @Test func errorCodeMessageAndHiddenHeaders() {
        let s = set(["second": 1, "error_code": 404, "error_message": "Fake Not Found", "hide_client_headers": true])
        #expect(run(s, get("/"), now: 5).exitStatus == 0)
        let ctx = run(s, get("/"), now: 5)
        #expect(ctx.exitStatus == 404 && ctx.exitMessage == "Fake Not Found")
        #expect(ctx.responseHeaders.isEmpty)
        #expect(run(s, get("/"), now: 6).exitStatus == 0)
    }

    @Test func limitByIdentifiers() {
        let store = MemoryCounters()
        let s = set(["minute": 1, "limit_by": "header", "header_name": "x_tenant"], store: store)
        #expect(run(s, get("/", [("X-Tenant", "a")]), now: 60).exitStatus == 0)
        #expect(run(s, get("/", [("X-Tenant", "a")]), now: 60).exitStatus == 429)
        #expect(run(s, get("/", [("X-Tenant", "b")]), now: 60).exitStatus == 0)
        let ip = set(["minute": 1, "limit_by": "ip"])
        #expect(run(ip, get("/"), now: 60, ctx: PluginContext(clientIP: "10.0.0.1")).exitStatus == 0)
        #expect(run(ip, get("/"), now: 60, ctx: PluginContext(clientIP: "10.0.0.2")).exitStatus == 0)
        #expect(run(ip, get("/"), now: 60, ctx: PluginContext(clientIP: "10.0.0.1")).exitStatus == 429)
        // consumer: the authenticated consumer (key-auth runs first, priority 1250 > 910).
        let alice = Consumer(id: "alice"), bob = Consumer(id: "bob")
        let c = set(["minute": 1], consumers: [alice, bob], extra: [plugin("key-auth", route: "r1")])
        #expect(run(c, get("/?apikey=alice"), now: 60).exitStatus == 0)
        #expect(run(c, get("/?apikey=bob"), now: 60).exitStatus == 0)
        #expect(run(c, get("/?apikey=alice"), now: 60).exitStatus == 429)
        // path: only the configured path is its own identifier.
        let p = set(["minute": 1, "limit_by": "path", "path": "/a"])
        #expect(run(p, get("/a"), now: 60).exitStatus == 0)
        #expect(run(p, get("/a"), now: 60).exitStatus == 429)
    }

    @Test func fullTableFollowsFaultTolerant() {
        let store = MemoryCounters(); store.capacity = 0
        #expect(run(set(["minute": 1], store: store), get("/"), now: 60).exitStatus == 0)
        let ctx = run(set(["minute": 1], store: store), get("/"), now: 60)
        #expect(ctx.responseHeaders.isEmpty)
        let strict = run(set(["minute": 1, "fault_tolerant": false], store: store), get("/"), now: 60)
        #expect(strict.exitStatus == 500 && strict.exitMessage == "An unexpected error occurred")
    }

    @Test func calendarWindows() {
        // 2024-02-29 12:34:56 UTC
        let t: Int64 = 1_709_210_096
        #expect(RateLimitPeriod.day.windowStart(t) == 1_709_164_800)
        #expect(RateLimitPeriod.month.windowStart(t) == 1_706_745_600)     // 2024-02-01
        #expect(RateLimitPeriod.month.windowEnd(1_706_745_600) == 1_709_251_200)   // 2024-03-01
        #expect(RateLimitPeriod.year.windowStart(t) == 1_704_067_200)      // 2024-01-01
        #expect(RateLimitPeriod.year.windowEnd(1_704_067_200) == 1_735_689_600)    // 2025-01-01
    }

    /// policy = redis with a host name: only Redis-backed instances ask the master for their name; the
    /// handler takes the first address of its generation's answer; no answer is Redis down (500 without
    /// fault_tolerant, proxied with it).
    @Test func redisHostNamesResolvedPerGeneration() {
        let snap = ConfigSnapshot(plugins: [
            plugin("rate-limiting", id: "a", route: "r1", ["minute": 1, "policy": "redis", "redis": ["host": "Redis.Test", "port": 6380],
                                                           "fault_tolerant": false]),
            plugin("rate-limiting", id: "b", route: "r2", ["minute": 1, "policy": "local", "redis": ["host": "local.test"]]),
            plugin("rate-limiting", id: "c", route: "r3", ["minute": 1, "policy": "redis", "redis": ["host": "localhost"]]),
        ])
        #expect(LogHosts.names(in: snap) == ["redis.test"])
        let registry = PluginRegistry.implemented.map { ($0.key, $0.value.priority, $0.value.factory) }
        let answered = PluginSet(snapshot: snap, previous: nil, shared: nil, hosts: ["redis.test": ["127.0.0.9", "127.0.0.10"]],
                                 registry: registry)
        let e = (answered.handlers["a"] as? RateLimiting)?.redis?.endpoint
        #expect(e?.ip == "127.0.0.9" && e?.port == 6380)
        #expect((answered.handlers["c"] as? RateLimiting)?.redis?.endpoint?.ip == "127.0.0.1")
        let waiting = PluginSet(snapshot: snap, previous: nil, shared: nil, hosts: ["redis.test": []], registry: registry)
        #expect(waiting.errors.isEmpty)
        #expect((waiting.handlers["a"] as? RateLimiting)?.redis != nil && (waiting.handlers["a"] as? RateLimiting)?.redis?.endpoint == nil)
        let ctx = run(waiting, get("/"), route: "r1", service: nil)
        #expect(ctx.exitStatus == 500 && ctx.exitMessage == "An unexpected error occurred")
    }
}
