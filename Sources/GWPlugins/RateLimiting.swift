// rate-limiting, policy `local` (Kong 3.10 `kong/plugins/rate-limiting/handler.lua`, KONG-PLUGINS.md §4),
// priority 910 — but exact: the counters live in the node's shared memory and one atomic step checks
// every window and counts the request in all of them (Kong's local policy reads, then increments in a
// timer, and overshoots under concurrency: #2629, #5790). A rejected request is not counted (as Kong).
// Policy `redis` (RateLimitingRedis.swift) makes the same atomic step in Redis, shared by every node:
// access suspends the request until the reply and finishes in `accessResumed`. Policy `cluster`
// (database = postgres only; the Admin API refuses it otherwise) makes the same atomic step in the node's
// ClusterCounterTable, whose rows the master exchanges with PostgreSQL's `ratelimiting_metrics` every
// 100 ms (GWServer/RateLimitClusterSync.swift): the worker never waits on the database.
import GWHTTP
import GWJSON
import GWPluginState
import GWStore

/// The node's counter table: GWPluginState.RateLimitTable (shared memory) in production, an
/// in-process table in unit tests. `consume` reads every window's usage and, if each is below its
/// limit, counts one request in all of them, in one atomic step.
public protocol RateLimitCounterStore: AnyObject {
    func consume(keys: UnsafeBufferPointer<RateLimitKey>, limits: UnsafeBufferPointer<Int64>,
                 windowEnds: UnsafeBufferPointer<Int64>, now: Int64,
                 usagesOut: UnsafeMutableBufferPointer<Int64>) -> RateLimitResult
}

/// What a PluginEnvironment's `shared` object offers to plugins.
public protocol PluginSharedStore: AnyObject {
    var rateLimitCounters: RateLimitCounterStore? { get }
    /// The node's proxy-cache store; nil where none is attached.
    var cacheStore: CacheStore? { get }
    /// The prometheus plugin's shared table; nil where none is attached.
    var metricsTable: MetricsTable? { get }
    /// rate-limiting's `cluster` counters (database = postgres); nil where none is attached.
    var clusterCounters: ClusterCounterTable? { get }
}

extension PluginSharedStore {
    public var metricsTable: MetricsTable? { nil }
    public var clusterCounters: ClusterCounterTable? { nil }
}

/// Kong's windows: config name and length in seconds (header names: RateLimitHeaders).
enum RateLimitPeriod: Int, CaseIterable {
    case second, minute, hour, day, month, year
    var name: String { ["second", "minute", "hour", "day", "month", "year"][rawValue] }
    /// Kong's `expiration` table (a month is 30 days, a year 365, for Reset and TTLs).
    var length: Int64 { [1, 60, 3600, 86400, 2_592_000, 31_536_000][rawValue] }

    /// Start of the window containing `now`, aligned to UTC calendar boundaries (kong/tools/timestamp.lua).
    func windowStart(_ now: Int64) -> Int64 {
        switch self {
        case .second: return now
        case .minute: return now - now % 60
        case .hour: return now - now % 3600
        case .day: return now - now % 86400
        case .month:
            let (y, m, _) = civil(now / 86400)
            return daysFromCivil(y, m, 1) * 86400
        case .year:
            let (y, _, _) = civil(now / 86400)
            return daysFromCivil(y, 1, 1) * 86400
        }
    }

    /// When the window starting at `start` is over: the next calendar boundary.
    func windowEnd(_ start: Int64) -> Int64 {
        switch self {
        case .month:
            let (y, m, _) = civil(start / 86400)
            return (m == 12 ? daysFromCivil(y + 1, 1, 1) : daysFromCivil(y, m + 1, 1)) * 86400
        case .year:
            let (y, _, _) = civil(start / 86400)
            return daysFromCivil(y + 1, 1, 1) * 86400
        default: return start + length
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
func civil(_ days: Int64) -> (Int64, Int64, Int64) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
}

func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
    let y = m <= 2 ? y0 - 1 : y0
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

final class RateLimiting: PluginHandler {
    static let name = "rate-limiting"
    static let priority = 910

    enum LimitBy { case consumer, credential, ip, service, header([UInt8]), path([UInt8]) }

    /// Configured windows, shortest first.
    let periods: [RateLimitPeriod]
    let limits: [Int64]
    let limitBy: LimitBy
    let faultTolerant: Bool
    let hideClientHeaders: Bool
    let errorCode: Int
    let errorMessage: String
    /// Hash seed of this instance's scope (Kong's key: route id and service id of the instance's own
    /// scope, so a global instance counts across routes) and its plugin id.
    let seed: (UInt64, UInt64)
    let store: RateLimitCounterStore?
    /// policy = redis: the Redis side (nil for local).
    let redis: RateLimitRedis?
    /// The instance's scope ids as Kong puts them in its keys (null → the empty uuid).
    let routeScope: String, serviceScope: String
    /// policy = cluster: the node's cluster counters (nil for other policies, or none attached).
    let clusterPolicy: Bool
    let cluster: ClusterCounterTable?
    /// The scope ids' bytes (written into a new cluster row).
    let routeScopeBytes: [UInt8], serviceScopeBytes: [UInt8]
    /// fault_tolerant = false with policy cluster: 500 when the master has not exchanged the counts with
    /// PostgreSQL for more than this many seconds (Kong answers 500 when its per-request query fails).
    static let clusterStaleAfter: Int64 = 3

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: RateLimiting.name)
        var ps: [RateLimitPeriod] = [], ls: [Int64] = []
        for p in RateLimitPeriod.allCases {
            if let v = try c.double(p.name) { ps.append(p); ls.append(Int64(v)) }
        }
        guard !ps.isEmpty else { throw PluginError("rate-limiting: no limit configured") }
        periods = ps; limits = ls
        let policy = try c.string("policy", "local")
        switch policy {
        case "local", "cluster": redis = nil
        case "redis": redis = try RateLimitRedis(c, env)
        default: throw PluginError("rate-limiting: policy '\(policy)' is not supported")
        }
        switch try c.string("limit_by", "consumer") {
        case "consumer": limitBy = .consumer
        case "credential": limitBy = .credential
        case "ip": limitBy = .ip
        case "service": limitBy = .service
        case "header": limitBy = .header(Array((try c.string("header_name") ?? "").utf8))
        case "path": limitBy = .path(Array((try c.string("path") ?? "").utf8))
        case let other: throw PluginError("rate-limiting: limit_by '\(other)' is not supported")
        }
        faultTolerant = try c.bool("fault_tolerant", true)
        hideClientHeaders = try c.bool("hide_client_headers", false)
        errorCode = try c.int("error_code", 429)
        errorMessage = try c.string("error_message", "API rate limit exceeded")
        routeScope = entity.routeID ?? "00000000-0000-0000-0000-000000000000"
        serviceScope = entity.serviceID ?? "00000000-0000-0000-0000-000000000000"
        let scope = "\(entity.id)|\(routeScope)|\(serviceScope)"
        seed = (fnv(scope.utf8, 0xcbf29ce484222325), fnv(scope.utf8, 0x84222325cbf29ce4))
        store = (env.shared as? PluginSharedStore)?.rateLimitCounters ?? nil
        clusterPolicy = policy == "cluster"
        cluster = clusterPolicy ? (env.shared as? PluginSharedStore)?.clusterCounters : nil
        routeScopeBytes = Array(routeScope.utf8)
        serviceScopeBytes = Array(serviceScope.utf8)
        super.init(entity: entity, priority: RateLimiting.priority)
    }

    override var phases: PluginPhases { .access }

    /// Two hashes of the identifier (Kong's fallback: the client IP); consumer, credential and IP hashes
    /// are computed once (per generation, per connection), not per request.
    private func identifierHash(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> (UInt64, UInt64) {
        switch limitBy {
        case .consumer:
            if let c = ctx.consumer { return c.idHash }
            if let cr = ctx.credential { return cr.idHash }
            return ctx.clientIPHash
        case .credential: return ctx.credential?.idHash ?? ctx.clientIPHash
        case .ip: return ctx.clientIPHash
        case .service: return ctx.serviceID.map { identifierHashes($0.utf8) } ?? ctx.clientIPHash
        case .header(let name):
            for i in 0 ..< request.headers.count where headerNameMatches(request.headers.nameBytes(at: i), name) {
                return identifierHashes(request.headers.valueBytes(at: i))
            }
            return ctx.clientIPHash
        case .path(let p):
            return request.pathBytes.elementsEqual(p) ? identifierHashes(p) : ctx.clientIPHash
        }
    }

    /// Where the identifier's text is (the cluster policy writes it into ratelimiting_metrics); the same
    /// choice as identifierHash. Copying it retains, never allocates.
    enum IdentifierText {
        case string(String)
        case bytes(ArraySlice<UInt8>)
        case header(HeaderBytes)
    }

    private func identifierText(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> IdentifierText {
        switch limitBy {
        case .consumer:
            if let c = ctx.consumer { return .string(c.id) }
            if let cr = ctx.credential { return .string(cr.id) }
            return .string(ctx.clientIP)
        case .credential: return .string(ctx.credential?.id ?? ctx.clientIP)
        case .ip: return .string(ctx.clientIP)
        case .service: return .string(ctx.serviceID ?? ctx.clientIP)
        case .header(let name):
            for i in 0 ..< request.headers.count where headerNameMatches(request.headers.nameBytes(at: i), name) {
                return .header(request.headers.valueBytes(at: i))
            }
            return .string(ctx.clientIP)
        case .path(let p):
            return request.pathBytes.elementsEqual(p) ? .bytes(p[...]) : .string(ctx.clientIP)
        }
    }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if let redis { try redis.start(self, ctx, request); return }
        var text = IdentifierText.bytes([])
        if clusterPolicy {
            guard let cluster else {
                if faultTolerant { return }
                throw PluginError("rate-limiting: no cluster counter table")
            }
            if !faultTolerant && ctx.now - cluster.syncedAt > RateLimiting.clusterStaleAfter {
                throw PluginError("rate-limiting: cluster counters not synced with PostgreSQL")
            }
            text = identifierText(ctx, request)
        } else if store == nil {
            if faultTolerant { return }
            throw PluginError("rate-limiting: no counter store")
        }
        let n = periods.count
        let (ha, hb) = identifierHash(ctx, request)
        let hi = ha ^ seed.0, lo = hb ^ seed.1
        let now = ctx.now
        // Fixed-size stack storage: at most six windows.
        var keys = (RateLimitKey(hi: 0, lo: 0), RateLimitKey(hi: 0, lo: 0), RateLimitKey(hi: 0, lo: 0),
                    RateLimitKey(hi: 0, lo: 0), RateLimitKey(hi: 0, lo: 0), RateLimitKey(hi: 0, lo: 0))
        var ends: (Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0)
        var starts: (Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0)
        var lims: (Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0)
        var usages: (Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0)
        let outcome: RateLimitResult = withUnsafeMutableBytes(of: &keys) { kr in
            withUnsafeMutableBytes(of: &ends) { er in
                withUnsafeMutableBytes(of: &starts) { sr in
                    withUnsafeMutableBytes(of: &lims) { lr in
                        withUnsafeMutableBytes(of: &usages) { ur in
                            let k = kr.bindMemory(to: RateLimitKey.self), e = er.bindMemory(to: Int64.self)
                            let s = sr.bindMemory(to: Int64.self), l = lr.bindMemory(to: Int64.self)
                            let u = ur.bindMemory(to: Int64.self)
                            for i in 0 ..< n {
                                let p = periods[i]
                                s[i] = p.windowStart(now)
                                e[i] = p.windowEnd(s[i])
                                l[i] = limits[i]
                                let mix = UInt64(bitPattern: s[i]) &* 0x9E3779B97F4A7C15 ^ UInt64(p.rawValue + 1)
                                k[i] = RateLimitKey(hi: mix64(hi ^ mix), lo: mix64(lo &+ mix))
                            }
                            if let cluster {
                                return withIdentifierBytes(&text) { id in
                                    serviceScopeBytes.withUnsafeBufferPointer { sb in
                                        routeScopeBytes.withUnsafeBufferPointer { rb in
                                            cluster.consume(keys: UnsafeBufferPointer(rebasing: k[0 ..< n]),
                                                            limits: UnsafeBufferPointer(rebasing: l[0 ..< n]),
                                                            windowStarts: UnsafeBufferPointer(rebasing: s[0 ..< n]),
                                                            windowEnds: UnsafeBufferPointer(rebasing: e[0 ..< n]),
                                                            service: sb, route: rb, identifier: id,
                                                            identifierHash: (ha, hb), now: now,
                                                            usagesOut: UnsafeMutableBufferPointer(rebasing: u[0 ..< n]))
                                        }
                                    }
                                }
                            }
                            return store!.consume(keys: UnsafeBufferPointer(rebasing: k[0 ..< n]),
                                                 limits: UnsafeBufferPointer(rebasing: l[0 ..< n]),
                                                 windowEnds: UnsafeBufferPointer(rebasing: e[0 ..< n]), now: now,
                                                 usagesOut: UnsafeMutableBufferPointer(rebasing: u[0 ..< n]))
                        }
                    }
                }
            }
        }
        var stop = -1
        switch outcome {
        case .full:
            // Kong: a store error with fault_tolerant proxies without headers; without it, 500.
            if faultTolerant { return }
            throw PluginError("rate-limiting: counter table full")
        case .limited(let i): stop = i
        case .allowed: break
        }
        withUnsafeBytes(of: &usages) { ur in
            withUnsafeBytes(of: &starts) { sr in
                finish(ctx, UnsafeBufferPointer(rebasing: ur.bindMemory(to: Int64.self)[0 ..< n]),
                       UnsafeBufferPointer(rebasing: sr.bindMemory(to: Int64.self)[0 ..< n]), stop: stop)
            }
        }
    }

    override func accessResumed(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        try redis?.finish(self, ctx)
    }

    /// Kong's headers (unless hidden) and the exit, from every window's usage before this request
    /// (`u`), the windows' starts (`s`) and the window that stopped it (-1: allowed).
    @inline(__always)
    func finish(_ ctx: PluginContext, _ u: UnsafeBufferPointer<Int64>, _ s: UnsafeBufferPointer<Int64>, stop: Int) {
        let n = u.count, now = ctx.now
        if !hideClientHeaders {
            var bestRemaining = Int64.max, bestLimit: Int64 = 0, bestReset: Int64 = 0, bestLength: Int64 = 0
            for i in 0 ..< n {
                var remaining = limits[i] - u[i]
                if stop < 0 || stop == i { remaining -= 1 }
                remaining = max(0, remaining)
                ctx.rateLimit.add(period: periods[i].rawValue, limit: limits[i], remaining: remaining)
                let len = periods[i].length
                if remaining < bestRemaining || (remaining == bestRemaining && len > bestLength) {
                    bestRemaining = remaining; bestLimit = limits[i]; bestLength = len
                    bestReset = max(1, len - (now - s[i]))
                }
            }
            ctx.rateLimit.setAggregate(limit: bestLimit, remaining: bestRemaining, reset: bestReset,
                                       retryAfter: stop >= 0 ? bestReset : -1)
        }
        if stop >= 0 { ctx.error(errorCode, errorMessage) }
    }
}

/// The identifier's bytes for the length of `body` (a native String's storage or the slice's; no copy).
@inline(__always)
func withIdentifierBytes<R>(_ t: inout RateLimiting.IdentifierText, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    switch t {
    case .string(var s): return s.withUTF8(body)
    case .bytes(let b): return b.withUnsafeBufferPointer(body)
    case .header(let b): return b.withUnsafeBufferPointer(body)
    }
}

@inline(__always) func fnv<C: Sequence>(_ bytes: C, _ seed: UInt64) -> UInt64 where C.Element == UInt8 {
    var h = seed
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
    return h
}
