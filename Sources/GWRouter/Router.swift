// Kong `traditional_compatible` router (KONG.md §3.2), built once per configuration generation.
// Each (route, path) pair is an Entry (RouteCompiler.swift); entries are sorted once by Kong's priority, so
// an entry's rank (index in that order) is its priority. Candidate lists (all sorted by rank) come from
// indexes (PathIndex.swift): exact host → path trie, wildcard-host → path trie, no-host → path trie;
// regex-path and path-less entries sit in plain lists per bucket. Matching walks the request path once per
// bucket and evaluates candidates in rank order, stopping at the first full match of each list, so cost
// depends on candidates, not on the route count.
// Invariants: a Router is immutable once built; compiled entries are shared with the next generation's
// router while their route is unchanged, so one changed route costs one compilation plus a re-sort and
// re-index of plain integers (10 000 routes: ~15–20 ms of CPU), not a recompilation of everything.
import GWStore
import GWHTTP

public struct RouterBuildError: Error, Equatable, Sendable {
    public var routeID: String
    public var message: String
}

/// The result of a match. `service == nil` → the proxy answers 503 `no Service found with those values`.
public struct RouteMatch: Sendable {
    /// Index into `ConfigSnapshot.routes`.
    public let routeIndex: Int
    public let route: Route
    public let service: Service?
    /// The route path that matched (prefix text, or the regex source with its `~`); nil when matched without paths.
    public let matchedRoutePath: String?
    /// The request-path text matched by the route path (prefix, or the whole regex match); nil without paths.
    public let matchedPathText: String?
    /// Regex captures: index 0 is the whole match; nil for groups that did not participate.
    public let captures: [String?]
    /// Named regex captures (for `hash_on = uri_capture`).
    public let namedCaptures: [(name: String, value: String)]
    /// The route does not accept plain http (protocols = ["https"]): the http listener answers 426.
    public let requiresHTTPS: Bool

    /// The prefix strip_path removes (§3.3): the matched text when strip_path and matched by path, else "/".
    public var stripPrefix: String { (route.stripPath ? matchedPathText : nil) ?? "/" }
    /// X-Forwarded-Prefix value: only when strip_path stripped something other than "/".
    public var forwardedPrefix: String? {
        guard route.stripPath, let p = matchedPathText, p != "/" else { return nil }
        return p
    }
    public func capture(named n: String) -> String? { namedCaptures.first { $0.name == n }?.value }

    /// Upstream path (already escaped) + `?query` when the request had one. `normalizedPath` as matched.
    public func upstreamURI(normalizedPath: String, query: String?) -> String {
        let p = KongPath.upstreamPath(requestPath: normalizedPath, matchedPrefix: stripPrefix,
                                      stripPath: route.stripPath, servicePath: service?.path)
        let escaped = KongPath.escape(p)
        if let q = query { return escaped + "?" + q }
        return escaped
    }
}

struct HostPattern {
    enum Kind { case exact, suffix, prefix }   // suffix: "*.x" → ".x"; prefix: "x.*" → "x."
    var kind: Kind
    var text: String
    var port: Int?

    func matches(host: Substring, port reqPort: Int) -> Bool {
        if let p = port, p != reqPort { return false }
        let h = host.utf8, t = text.utf8
        switch kind {
        case .exact: return h.elementsEqual(t)
        case .suffix: return h.count > t.count && h.suffix(t.count).elementsEqual(t)
        case .prefix: return h.count > t.count && h.starts(with: t)
        }
    }
}

struct HeaderMatcher {
    var name: String
    var plain: [[UInt8]]     // lowercased values
    var regexes: [Regex<AnyRegexOutput>]
}

enum PathMatcher {
    case none
    case prefix(String)
    case regex(Regex<AnyRegexOutput>, source: String)
}

/// Immutable after init (all stored properties are `let`); Regex programs are forced to compile in init.
public final class Router: @unchecked Sendable {
    /// The services of the snapshot built from (routes are in `compiled`: the router keeps no reference to
    /// the snapshot's route array, so the worker can append to it without copying 10 000 routes).
    let services: [Service]
    /// Routes left out for an invalid regex, in route order.
    public var buildErrors: [RouterBuildError] { routeErrors.map(\.error) }
    /// Entries in priority order (index = rank).
    let entries: UnsafeMutableBufferPointer<EntryRef>
    let exactHosts: [Substring: PathIndex]
    let wildcardHosts: PathIndex
    let anyHost: PathIndex
    /// Some entry matches on hosts (only such entries are in `exactHosts` / `wildcardHosts`). Without one,
    /// the request's Host header plays no part in matching: the byte match does not read it.
    public let matchesHosts: Bool
    /// Compiled routes, index for index with `snapshot.routes` (those left out too), for the next router.
    let compiled: [CompiledRoute]
    /// The tries' shapes, for the next generation's build.
    let shapes: (exact: [Substring: TrieShape], wild: TrieShape, any: TrieShape)
    /// Per route of `snapshot.routes`: its service's index (-1: none; -2: the route is left out).
    let routeService: [Int32]
    /// Build errors with the position of their route (kept for the next build).
    let routeErrors: [(route: Int32, error: RouterBuildError)]
    /// Per route: index of its first entry in `sources` (`routeFirst[n]` = `sources.count`).
    let routeFirst: [Int32]
    /// Every entry in route order, and the priority order over them (rank → `sources` index); the next
    /// build copies runs of unchanged routes from these instead of recomputing them.
    let sources: [Source]
    let order: [SortKey]
    /// How many routes were taken compiled from the previous router.
    public let reusedRoutes: Int
    public var entryCount: Int { entries.count }

    /// Compiles the http/https routes of `snapshot`. Routes whose service is disabled are left out; routes
    /// with an invalid regex are left out and reported in `buildErrors`.
    public convenience init(snapshot: ConfigSnapshot) { self.init(snapshot: snapshot, reusing: nil) }

    /// As `init(snapshot:)`, taking every route equal to one `previous` compiled as it is. With `changes`
    /// (what the deltas since `previous` did to the routes), routes outside `changes.positions` are taken
    /// by position without comparing them, together with their sort keys, sorted order and trie nodes,
    /// so only the changed routes' entries are compiled, sorted (merged into the previous order) and
    /// walked into the tries; the rest is copying plain integers.
    public init(snapshot: ConfigSnapshot, reusing previous: Router?, changes: RouteChanges? = nil) {
        services = snapshot.services
        var errors: [(route: Int32, error: RouterBuildError)] = []
        var serviceByID: [String: Int] = [:]      // built on first need
        let n = snapshot.routes.count
        var compiled: [CompiledRoute] = []
        compiled.reserveCapacity(n)
        var routeService: [Int32] = []
        routeService.reserveCapacity(n)
        var routeFirst: [Int32] = []
        routeFirst.reserveCapacity(n + 1)
        var sources: [Source] = []
        sources.reserveCapacity(n)
        var newKeys: [SortKey] = []               // keys of entries not taken from `previous`'s order
        var reused = 0
        var finder = PreviousRoutes(previous)
        let anyShape = previous?.shapes.any ?? TrieShape()

        // Routes 0 ..< unchangedBelow except `changed` are taken from `previous` as they are: route ri is
        // the previous route at old index oi, where oi skips the `removed` positions.
        var unchangedBelow = 0
        var changed: [Int] = []          // sorted, new positions
        var removed: [Int] = []          // sorted, old positions
        if let p = previous, let ch = changes, ch.previousCount == p.compiled.count {
            unchangedBelow = min(ch.previousCount - ch.removed.count, n)
            changed = ch.positions.sorted()
            removed = ch.removed
        }
        // previous source index → new source index (-1: dropped), for merging the previous sorted order
        var sourceMap = [Int32](repeating: -1, count: unchangedBelow > 0 ? previous!.sources.count : 0)
        var nextChanged = 0
        var nextRemoved = 0
        var oi = 0
        snapshot.routes.withUnsafeBufferPointer { routes in
            var ri = 0
            while ri < n {
                while nextChanged < changed.count && changed[nextChanged] < ri { nextChanged += 1 }
                if ri < unchangedBelow {
                    while nextRemoved < removed.count && removed[nextRemoved] == oi { oi += 1; nextRemoved += 1 }
                }
                if ri < unchangedBelow && !(nextChanged < changed.count && changed[nextChanged] == ri) {
                    // A run of unchanged routes (up to the next changed route or removed old position): bulk copies.
                    let p = previous!
                    var end = min(unchangedBelow, nextChanged < changed.count ? changed[nextChanged] : unchangedBelow)
                    if nextRemoved < removed.count { end = min(end, ri + (removed[nextRemoved] - oi)) }
                    let oEnd = oi + (end - ri)
                    let s0 = Int(p.routeFirst[oi]), s1 = Int(p.routeFirst[oEnd])
                    let offset = Int32(sources.count) - Int32(s0)
                    for r in oi..<oEnd { routeFirst.append(p.routeFirst[r] + offset) }
                    let shift = Int32(ri - oi)
                    if shift == 0 {
                        sources.append(contentsOf: p.sources[s0..<s1])
                    } else {
                        for j in s0..<s1 { var x = p.sources[j]; x.routeIndex += shift; sources.append(x) }
                    }
                    for j in s0..<s1 { sourceMap[j] = Int32(j) + offset }
                    compiled.append(contentsOf: p.compiled[oi..<oEnd])
                    routeService.append(contentsOf: p.routeService[oi..<oEnd])
                    reused += end - ri
                    ri = end
                    oi = oEnd
                    continue
                }
                if ri < unchangedBelow { oi += 1 }       // replaced in place: its old entries are dropped
                routeFirst.append(Int32(sources.count))
                let cr: CompiledRoute
                if let old = finder.find(routes[ri].id), old.route == routes[ri] {
                    cr = old
                    reused += 1
                } else {
                    cr = Router.compile(routes[ri])
                }
                compiled.append(cr)
                defer { ri += 1 }
                let protocols = routes[ri].protocols
                guard protocols.contains("http") || protocols.contains("https") else {
                    routeService.append(-2); continue
                }
                var si: Int? = nil
                if let sid = routes[ri].serviceID {
                    if serviceByID.isEmpty {
                        for (i, s) in snapshot.services.enumerated() { serviceByID[s.id] = i }
                    }
                    si = serviceByID[sid]
                    if let s = si, !snapshot.services[s].enabled { routeService.append(-2); continue }
                }
                routeService.append(Int32(si ?? -1))
                if let e = cr.error { errors.append((Int32(ri), e)); continue }
                for e in cr.entries {
                    var node = Source.hosted
                    if e.hosts.isEmpty {
                        node = e.pathKind == 0 ? Source.pathless : e.pathKind == 2 ? Source.regex : anyShape.node(for: e)
                    }
                    newKeys.append(SortKey(priority: e.priority, createdAt: e.createdAt, idPrefix: e.idPrefix,
                                           index: Int32(sources.count)))
                    sources.append(Source(entry: e, routeIndex: Int32(ri), serviceIndex: Int32(si ?? -1), anyNode: node))
                }
            }
        }
        routeFirst.append(Int32(sources.count))
        if let p = previous, unchangedBelow > 0 {
            // Errors of routes taken unchanged, at their new positions.
            for (r, e) in p.routeErrors {
                var below = 0
                while below < removed.count && removed[below] < Int(r) { below += 1 }
                if below < removed.count && removed[below] == Int(r) { continue }
                let nr = Int(r) - below
                if nr < unchangedBelow && !changed.contains(nr) { errors.append((Int32(nr), e)) }
            }
        }

        // Priority order: by the packed priority key, then created_at, then id.
        func before(_ a: SortKey, _ b: SortKey) -> Bool {
            if a.priority != b.priority { return a.priority > b.priority }
            if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
            if a.idPrefix != b.idPrefix { return a.idPrefix < b.idPrefix }
            let ia = sources[Int(a.index)].entry.id, ib = sources[Int(b.index)].entry.id
            if ia != ib { return ia < ib }
            return a.index < b.index
        }
        newKeys.sort(by: before)
        var order: [SortKey]
        if unchangedBelow > 0, let p = previous {
            // The previous order without the dropped entries, merged with the new ones: linear.
            order = []
            order.reserveCapacity(sources.count)
            var i = 0
            for var k in p.order {
                let m = sourceMap[Int(k.index)]
                if m < 0 { continue }
                k.index = m
                while i < newKeys.count && before(newKeys[i], k) { order.append(newKeys[i]); i += 1 }
                order.append(k)
            }
            while i < newKeys.count { order.append(newKeys[i]); i += 1 }
        } else {
            order = newKeys
        }

        // Indexes. Trie shapes continue from the previous router's (see TrieShape).
        var exact: [Substring: PathIndex.Builder] = [:]
        var wild = PathIndex.Builder(shape: previous?.shapes.wild ?? TrieShape())
        var any = PathIndex.Builder(shape: anyShape)
        entries = .allocate(capacity: order.count)
        for (rank, k) in order.enumerated() {
            let src = sources[Int(k.index)]
            (entries.baseAddress! + rank).initialize(to: EntryRef(entry: src.entry, routeIndex: src.routeIndex,
                                                                  serviceIndex: src.serviceIndex))
            let r = Int32(rank)
            switch src.anyNode {
            case Source.pathless: any.appendPathless(r); continue
            case Source.regex: any.appendRegex(r); continue
            case Source.hosted: break
            default: any.append(r, node: Int(src.anyNode)); continue
            }
            var seen: Set<String> = []
            var hasWildcard = false
            let e = src.entry
            for h in e.hosts {
                if h.kind == .exact {
                    if seen.insert(h.text).inserted {
                        let host = Substring(h.text)
                        if exact[host] == nil {
                            exact[host] = PathIndex.Builder(shape: previous?.shapes.exact[host] ?? TrieShape())
                        }
                        exact[host]!.insert(rank: r, entry: e)
                    }
                } else {
                    hasWildcard = true
                }
            }
            if hasWildcard { wild.insert(rank: r, entry: e) }
        }
        shapes = (exact.mapValues(\.shape), wild.shape, any.shape)
        exactHosts = exact.mapValues { $0.build() }
        wildcardHosts = wild.build()
        anyHost = any.build()
        matchesHosts = !exactHosts.isEmpty || !wildcardHosts.isEmpty
        errors.sort { $0.route < $1.route }
        routeErrors = errors
        self.compiled = compiled
        self.routeService = routeService
        self.routeFirst = routeFirst
        self.sources = sources
        self.order = order
        reusedRoutes = reused
    }

    /// Where an entry comes from, in route order: plain data (the router's `compiled` keeps the entry alive).
    struct Source {
        unowned(unsafe) var entry: Entry
        var routeIndex: Int32
        var serviceIndex: Int32
        /// Entries without hosts: the `any` trie node where the prefix ends (>= 0), `pathless` or `regex`;
        /// entries with hosts: `hosted` (indexed per host when the router is built).
        var anyNode: Int32

        static let hosted: Int32 = -1
        static let pathless: Int32 = -2
        static let regex: Int32 = -3
    }

    /// Finds a route's compiled form in the previous router. Consecutive generations list routes in the
    /// same order (updates in place, additions at the end), so a cursor walking the previous list finds
    /// almost every route at once; a dictionary by id is built only when the cursor loses track.
    struct PreviousRoutes {
        let compiled: [CompiledRoute]
        var cursor = 0
        var byID: [String: Int]? = nil

        init(_ r: Router?) {
            compiled = r?.compiled ?? []
        }

        var misses = 0

        mutating func find(_ id: String) -> CompiledRoute? {
            guard !compiled.isEmpty else { return nil }
            if byID == nil {
                for j in cursor..<min(cursor + 3, compiled.count) where compiled[j].route.id == id {
                    cursor = j + 1
                    return compiled[j]
                }
                // A new route (usually) or a jump: a scan costs less than indexing 10 000 ids, a few times.
                misses += 1
                if misses <= 8 {
                    for j in compiled.indices where compiled[j].route.id == id {
                        cursor = j + 1
                        return compiled[j]
                    }
                    return nil
                }
            }
            if byID == nil {
                var m: [String: Int] = [:]
                m.reserveCapacity(compiled.count)
                for (j, c) in compiled.enumerated() { m[c.route.id] = j }
                byID = m
            }
            guard let j = byID?[id] else { return nil }
            cursor = j + 1
            return compiled[j]
        }
    }

    struct SortKey {
        var priority: UInt64
        var createdAt: Int
        var idPrefix: UInt64
        var index: Int32
    }

    deinit {
        entries.deallocate()         // EntryRef is plain data: nothing to deinitialize
    }

    static func hostPattern(_ h0: String) -> HostPattern {
        var h = h0.lowercased()
        var port: Int? = nil
        if let colon = h.lastIndex(of: ":"), !h.hasSuffix("]"), let p = Int(h[h.index(after: colon)...]) {
            port = p
            h = String(h[..<colon])
        }
        if h.hasPrefix("*") { return HostPattern(kind: .suffix, text: String(h.dropFirst()), port: port) }
        if h.hasSuffix("*") { return HostPattern(kind: .prefix, text: String(h.dropLast()), port: port) }
        return HostPattern(kind: .exact, text: h, port: port)
    }

    /// Splits a Host header into (lowercased host, port) like Kong's split_host_port; IPv6 literals keep brackets.
    public static func splitHostPort(_ host: String, defaultPort: Int) -> (Substring, Int) {
        let u = host.utf8
        var colon: String.Index? = nil
        var i = u.endIndex
        // scan back over digits to a ':'; "[v6]" literals keep their brackets
        while i > u.startIndex {
            let j = u.index(before: i)
            let b = u[j]
            if b == 0x3A { colon = j; break }
            if b < 0x30 || b > 0x39 { break }
            i = j
        }
        guard let c = colon else { return (Substring(host), defaultPort) }
        let hostPart = Substring(host)[..<c]
        if let first = hostPart.utf8.first, first != 0x5B, hostPart.utf8.contains(0x3A) {
            return (Substring(host), defaultPort)      // bare IPv6 without brackets: no port
        }
        var port = 0
        var k = u.index(after: c)
        if k == u.endIndex { return (hostPart, defaultPort) }
        while k < u.endIndex { port = port * 10 + Int(u[k] - 0x30); if port > 65535 { break }; k = u.index(after: k) }
        return (hostPart, port)
    }

    struct Request {
        var method: String
        var host: Substring?
        var port: Int
        var path: String
        var headers: HTTPHeaders?
        var tls: ConnectionTLS = .plain
    }

    /// Normalizes the request path (KONG.md §3.2) and matches; returns the normalized path too (the proxy needs
    /// it for `RouteMatch.upstreamURI`). Origin-form "" (absolute-form without a path) counts as "/".
    public func route(head: HTTPRequestHead, listenPort: Int, tls: ConnectionTLS = .plain) -> (match: RouteMatch, normalizedPath: String)? {
        let raw = head.pathBytes
        let path = raw.isEmpty ? "/" : KongPath.normalize(raw)
        guard let m = match(head: head, normalizedPath: path, listenPort: listenPort, tls: tls) else { return nil }
        return (m, path)
    }

    /// Matches a parsed request. `normalizedPath` = `KongPath.normalize(head.pathBytes)`.
    public func match(head: HTTPRequestHead, normalizedPath: String, listenPort: Int, tls: ConnectionTLS = .plain) -> RouteMatch? {
        match(method: head.methodName, host: head.host, normalizedPath: normalizedPath, headers: head.headers,
              listenPort: listenPort, tls: tls)
    }

    /// Matches on explicit values. `host` is the raw Host header (may carry `:port`); nil when absent.
    public func match(method: String, host: String?, normalizedPath: String, headers: HTTPHeaders?,
                      listenPort: Int, tls: ConnectionTLS = .plain) -> RouteMatch? {
        var req = Request(method: method, host: nil, port: listenPort, path: normalizedPath, headers: headers, tls: tls)
        var lowered: String? = nil
        if let h = host {
            var hasUpper = false
            for b in h.utf8 where b >= 0x41 && b <= 0x5A { hasUpper = true; break }
            if hasUpper { lowered = h.lowercased() }
            let (hp, port) = Router.splitHostPort(lowered ?? h, defaultPort: listenPort)
            req.host = hp
            req.port = port
        }
        var best = Int32.max
        if let hp = req.host, let idx = exactHosts[hp] { scan(idx, &best, req) }
        if !wildcardHosts.isEmpty { scan(wildcardHosts, &best, req) }
        scan(anyHost, &best, req)
        guard best != Int32.max else { return nil }
        return makeMatch(entries[Int(best)], req)
    }

    @inline(__always)
    func scanList(_ ranks: [Int32], _ best: inout Int32, _ req: borrowing Request) {
        for r in ranks {
            if r >= best { return }
            if entries[Int(r)].entry.matches(req) { best = r; return }
        }
    }

    /// Node `n`'s ranks of `idx`, as `scanList`.
    @inline(__always)
    func scanNode(_ idx: PathIndex, _ n: Int, _ best: inout Int32, _ req: borrowing Request) {
        var i = Int(idx.rankStart[n])
        let end = Int(idx.rankStart[n + 1])
        while i < end {
            let r = idx.ranks[i]
            if r >= best { return }
            if entries[Int(r)].entry.matches(req) { best = r; return }
            i += 1
        }
    }

    func scan(_ idx: PathIndex, _ best: inout Int32, _ req: borrowing Request) {
        var n = 0
        scanNode(idx, 0, &best, req)
        for b in req.path.utf8 {
            guard let c = idx.child(n, b) else { break }
            n = c
            scanNode(idx, n, &best, req)
        }
        scanList(idx.regexRanks, &best, req)
        scanList(idx.pathlessRanks, &best, req)
    }

    static func headerMatches(_ m: HeaderMatcher, _ headers: HTTPHeaders?) -> Bool {
        guard let h = headers else { return false }
        var i = 0
        while let j = h.firstIndex(of: m.name, from: i) {
            let v = h.valueBytes(at: j)
            for p in m.plain where p.count == v.count {
                var k = 0
                var idx = v.startIndex
                while k < p.count, asciiLowerByte(v[idx]) == p[k] { k += 1; idx += 1 }
                if k == p.count { return true }
            }
            if !m.regexes.isEmpty {
                let s = String(decoding: v, as: UTF8.self).lowercased()
                for re in m.regexes where (try? re.firstMatch(in: s)) != nil { return true }
            }
            i = j + 1
        }
        return false
    }

    func makeMatch(_ ref: EntryRef, _ req: Request) -> RouteMatch {
        let e = ref.entry
        var text: String? = nil
        var caps: [String?] = []
        var named: [(name: String, value: String)] = []
        switch e.path {
        case .none: break
        case .prefix(let p): text = p
        case .regex(let re, _):
            if let m = try? re.prefixMatch(in: req.path) {
                text = String(req.path[m.range])
                for c in m.output {
                    let v = c.substring.map(String.init)
                    caps.append(v)
                    if let n = c.name, let v { named.append((n, v)) }
                }
            }
        }
        let route = e.owner!.route
        return RouteMatch(routeIndex: Int(ref.routeIndex), route: route,
                          service: ref.serviceIndex >= 0 ? services[Int(ref.serviceIndex)] : nil,
                          matchedRoutePath: e.pathSource,
                          matchedPathText: text, captures: caps, namedCaptures: named,
                          requiresHTTPS: !route.protocols.contains("http"))
    }
}

extension Entry {
    func matches(_ req: borrowing Router.Request) -> Bool {
        if !methods.isEmpty && !methods.contains(req.method) { return false }
        if !hosts.isEmpty {
            guard let h = req.host else { return false }
            var ok = false
            for p in hosts where p.matches(host: h, port: req.port) { ok = true; break }
            if !ok { return false }
        }
        if pathKind == 1 {
            if !req.path.utf8.starts(with: prefixBytes) { return false }
        } else if pathKind == 2, let re = regex {
            if (try? re.prefixMatch(in: req.path)) == nil { return false }
        }
        for hm in headers where !Router.headerMatches(hm, req.headers) { return false }
        if !snis.isEmpty && !SNIPattern.allow(snis, req.tls) { return false }
        return true
    }
}

@inline(__always) func asciiLowerByte(_ b: UInt8) -> UInt8 { (b &- 0x41) < 26 ? b | 0x20 : b }
