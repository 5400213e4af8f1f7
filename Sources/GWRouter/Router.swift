// Kong `traditional_compatible` router (KONG.md §3.2), compiled once per ConfigSnapshot.
// Each (route, path) pair becomes an Entry; entries are sorted once by Kong's priority, so an entry's rank
// (index in that order) is its priority. Candidate lists (all sorted by rank) come from indexes: exact host →
// path trie, wildcard-host → path trie, no-host → path trie; regex-path and path-less entries sit in plain
// lists per bucket. Matching walks the request path once per bucket and evaluates candidates in rank order,
// stopping at the first full match of each list, so cost depends on candidates, not on the route count.
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

struct Entry {
    var routeIndex: Int
    var serviceIndex: Int?
    var methods: [String]
    var hosts: [HostPattern]
    var headers: [HeaderMatcher]
    var path: PathMatcher
    var pathSource: String?
    // the same path matcher, flattened for the hot path (no enum payload copies)
    var pathKind: UInt8 = 0          // 0 none, 1 prefix, 2 regex
    var prefixBytes: [UInt8] = []
    var regex: Regex<AnyRegexOutput>? = nil
    // priority key
    var weight: Int
    var plainHostOnly: Bool
    var headerCount: Int
    var isRegex: Bool
    var regexPriority: Int
    var prefixLength: Int
    var createdAt: Int
    var id: String

    static func before(_ a: Entry, _ b: Entry) -> Bool {
        if a.weight != b.weight { return a.weight > b.weight }
        if a.plainHostOnly != b.plainHostOnly { return a.plainHostOnly }
        if a.headerCount != b.headerCount { return a.headerCount > b.headerCount }
        if a.isRegex != b.isRegex { return a.isRegex }
        if a.regexPriority != b.regexPriority { return a.regexPriority > b.regexPriority }
        if a.prefixLength != b.prefixLength { return a.prefixLength > b.prefixLength }
        if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
        if a.id != b.id { return a.id < b.id }
        return a.prefixLength > b.prefixLength
    }
}

/// Byte trie over prefix paths; each node lists the ranks of entries whose prefix ends there (ascending).
struct PathIndex {
    struct Node {
        var childKeys: [UInt8] = []      // small fan-out: linear scan beats hashing a byte
        var childNodes: [Int32] = []
        var ranks: [Int32] = []

        @inline(__always) func child(_ b: UInt8) -> Int32? {
            var i = 0
            let n = childKeys.count
            while i < n {
                if childKeys[i] == b { return childNodes[i] }
                i += 1
            }
            return nil
        }
    }
    var nodes: [Node] = [Node()]
    var regexRanks: [Int32] = []
    var pathlessRanks: [Int32] = []

    mutating func insert(rank: Int32, path: PathMatcher) {
        switch path {
        case .none: pathlessRanks.append(rank)
        case .regex: regexRanks.append(rank)
        case .prefix(let p):
            var n = 0
            for b in p.utf8 {
                if let c = nodes[n].child(b) { n = Int(c) } else {
                    nodes.append(Node())
                    let c = Int32(nodes.count - 1)
                    nodes[n].childKeys.append(b)
                    nodes[n].childNodes.append(c)
                    n = Int(c)
                }
            }
            nodes[n].ranks.append(rank)
        }
    }
}

/// Immutable after init (all stored properties are `let`); Regex programs are forced to compile in init.
public final class Router: @unchecked Sendable {
    public let snapshot: ConfigSnapshot
    public let buildErrors: [RouterBuildError]
    /// Entries in priority order. Raw buffer so candidate checks borrow entries instead of copying them.
    let entries: UnsafeMutableBufferPointer<Entry>
    let exactHosts: [Substring: PathIndex]
    let wildcardHosts: PathIndex
    let anyHost: PathIndex
    public var entryCount: Int { entries.count }

    /// Compiles the http/https routes of `snapshot`. Routes whose service is disabled are left out; routes
    /// with an invalid regex are left out and reported in `buildErrors`.
    public init(snapshot: ConfigSnapshot) {
        self.snapshot = snapshot
        var errors: [RouterBuildError] = []
        var serviceByID: [String: Int] = [:]
        for (i, s) in snapshot.services.enumerated() { serviceByID[s.id] = i }
        var list: [Entry] = []
        list.reserveCapacity(snapshot.routes.count)
        routeLoop: for (ri, r) in snapshot.routes.enumerated() {
            guard r.protocols.contains("http") || r.protocols.contains("https") else { continue }
            var si: Int? = nil
            if let sid = r.serviceID {
                si = serviceByID[sid]
                if let s = si, !snapshot.services[s].enabled { continue }
            }
            let methods = r.methods ?? []
            var hosts: [HostPattern] = []
            for h in r.hosts ?? [] { hosts.append(Router.hostPattern(h)) }
            var headers: [HeaderMatcher] = []
            for (name, values) in (r.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
                var m = HeaderMatcher(name: name.lowercased(), plain: [], regexes: [])
                for v in values {
                    if v.hasPrefix("~*") {
                        do {
                            let re = try Regex(String(v.dropFirst(2))).ignoresCase()
                            _ = try? re.firstMatch(in: "")      // compile the program now, not on first request
                            m.regexes.append(re)
                        } catch {
                            errors.append(RouterBuildError(routeID: r.id, message: "invalid regex: '\(v)'"))
                            continue routeLoop
                        }
                    } else {
                        m.plain.append(Array(v.lowercased().utf8))
                    }
                }
                headers.append(m)
            }
            let paths = r.paths ?? []
            var weight = 0
            if !methods.isEmpty { weight += 1 }
            if !hosts.isEmpty { weight += 1 }
            if !paths.isEmpty { weight += 1 }
            if !headers.isEmpty { weight += 1 }
            let plainHostOnly = r.hosts != nil && !(r.hosts ?? []).contains { $0.contains("*") }
            var pathMatchers: [(PathMatcher, String?)] = []
            if paths.isEmpty { pathMatchers.append((.none, nil)) }
            for p in paths {
                if p.hasPrefix("~") {
                    let src = String(p.dropFirst())
                    do {
                        let re = try Regex(src)
                        _ = try? re.prefixMatch(in: "")         // compile the program now, not on first request
                        pathMatchers.append((.regex(re, source: p), p))
                    } catch {
                        errors.append(RouterBuildError(routeID: r.id, message: "invalid regex: '\(src)'"))
                        continue routeLoop
                    }
                } else {
                    pathMatchers.append((.prefix(p), p))
                }
            }
            for (pm, src) in pathMatchers {
                var isRegex = false, plen = 0
                switch pm {
                case .regex: isRegex = true
                case .prefix(let p): plen = min(p.utf8.count, 0x7FFFF)
                case .none: break
                }
                list.append(Entry(routeIndex: ri, serviceIndex: si, methods: methods, hosts: hosts, headers: headers,
                                  path: pm, pathSource: src, weight: weight, plainHostOnly: plainHostOnly,
                                  headerCount: min(headers.count, 255), isRegex: isRegex,
                                  regexPriority: isRegex ? r.regexPriority : 0, prefixLength: plen,
                                  createdAt: r.createdAt, id: r.id))
            }
        }
        for k in list.indices {
            switch list[k].path {
            case .none: break
            case .prefix(let p): list[k].pathKind = 1; list[k].prefixBytes = Array(p.utf8)
            case .regex(let re, _): list[k].pathKind = 2; list[k].regex = re
            }
        }
        list.sort(by: Entry.before)
        var exact: [Substring: PathIndex] = [:]
        var wild = PathIndex(), any = PathIndex()
        for (rank, e) in list.enumerated() {
            let r = Int32(rank)
            if e.hosts.isEmpty { any.insert(rank: r, path: e.path); continue }
            var seen: Set<String> = []
            var hasWildcard = false
            for h in e.hosts {
                if h.kind == .exact {
                    if seen.insert(h.text).inserted { exact[Substring(h.text), default: PathIndex()].insert(rank: r, path: e.path) }
                } else {
                    hasWildcard = true
                }
            }
            if hasWildcard { wild.insert(rank: r, path: e.path) }
        }
        entries = .allocate(capacity: list.count)
        _ = entries.initialize(from: list)
        exactHosts = exact
        wildcardHosts = wild
        anyHost = any
        buildErrors = errors
    }

    deinit {
        entries.deinitialize()
        entries.deallocate()
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
    }

    /// Normalizes the request path (KONG.md §3.2) and matches; returns the normalized path too (the proxy needs
    /// it for `RouteMatch.upstreamURI`). Origin-form "" (absolute-form without a path) counts as "/".
    public func route(head: HTTPRequestHead, listenPort: Int) -> (match: RouteMatch, normalizedPath: String)? {
        let raw = head.pathBytes
        let path = raw.isEmpty ? "/" : KongPath.normalize(raw)
        guard let m = match(head: head, normalizedPath: path, listenPort: listenPort) else { return nil }
        return (m, path)
    }

    /// Matches a parsed request. `normalizedPath` = `KongPath.normalize(head.pathBytes)`.
    public func match(head: HTTPRequestHead, normalizedPath: String, listenPort: Int) -> RouteMatch? {
        match(method: head.methodName, host: head.host, normalizedPath: normalizedPath, headers: head.headers,
              listenPort: listenPort)
    }

    /// Matches on explicit values. `host` is the raw Host header (may carry `:port`); nil when absent.
    public func match(method: String, host: String?, normalizedPath: String, headers: HTTPHeaders?,
                      listenPort: Int) -> RouteMatch? {
        var req = Request(method: method, host: nil, port: listenPort, path: normalizedPath, headers: headers)
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
        if !wildcardHosts.nodes[0].childKeys.isEmpty || !wildcardHosts.nodes[0].ranks.isEmpty
            || !wildcardHosts.regexRanks.isEmpty || !wildcardHosts.pathlessRanks.isEmpty {
            scan(wildcardHosts, &best, req)
        }
        scan(anyHost, &best, req)
        guard best != Int32.max else { return nil }
        return makeMatch(entries[Int(best)], req)
    }

    @inline(__always)
    func scanList(_ ranks: [Int32], _ best: inout Int32, _ req: borrowing Request) {
        for r in ranks {
            if r >= best { return }
            if entries[Int(r)].matches(req) { best = r; return }
        }
    }

    func scan(_ idx: PathIndex, _ best: inout Int32, _ req: borrowing Request) {
        var n = 0
        scanList(idx.nodes[0].ranks, &best, req)
        for b in req.path.utf8 {
            guard let c = idx.nodes[n].child(b) else { break }
            n = Int(c)
            if !idx.nodes[n].ranks.isEmpty { scanList(idx.nodes[n].ranks, &best, req) }
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

    func makeMatch(_ e: Entry, _ req: Request) -> RouteMatch {
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
        let route = snapshot.routes[e.routeIndex]
        return RouteMatch(routeIndex: e.routeIndex, route: route,
                          service: e.serviceIndex.map { snapshot.services[$0] }, matchedRoutePath: e.pathSource,
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
        return true
    }
}

@inline(__always) func asciiLowerByte(_ b: UInt8) -> UInt8 { (b &- 0x41) < 26 ? b | 0x20 : b }
