// Route compilation: a Kong route becomes one `Entry` per path (one without paths), with its matchers
// (methods, host patterns, header matchers, prefix bytes or a compiled Regex) and its priority key
// (KONG.md §3.2 traditional_compatible order). Compiled routes are immutable and reused by the next
// generation's router while the route is unchanged, so a change to one route compiles one route.
import GWStore

/// One (route, path) pair compiled for matching. Immutable once compiled and shared by every
/// generation's router while its route is unchanged; what changes per generation (the route's and its
/// service's positions in the snapshot) lives in `EntryRef`.
final class Entry {
    var methods: [String]
    var hosts: [HostPattern]
    var headers: [HeaderMatcher]
    /// Route `snis` (empty: any); checked on TLS connections only (Kong #6425).
    var snis: [SNIPattern] = []
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
    /// The first 8 bytes of `id`, big-endian: orders like `id` unless they are equal.
    var idPrefix: UInt64 = 0

    init(methods: [String], hosts: [HostPattern], headers: [HeaderMatcher], path: PathMatcher, pathSource: String?,
         weight: Int, plainHostOnly: Bool, headerCount: Int, isRegex: Bool, regexPriority: Int, prefixLength: Int,
         createdAt: Int, id: String) {
        self.methods = methods; self.hosts = hosts; self.headers = headers; self.path = path
        self.pathSource = pathSource; self.weight = weight; self.plainHostOnly = plainHostOnly
        self.headerCount = headerCount; self.isRegex = isRegex; self.regexPriority = regexPriority
        self.prefixLength = prefixLength; self.createdAt = createdAt; self.id = id
        priority = priorityKey
    }

    /// weight, plainHostOnly, headerCount, isRegex, regexPriority, prefixLength packed so that a larger
    /// key sorts first exactly as `before` orders those fields (3 + 1 + 8 + 1 + 32 + 19 bits).
    /// The compiled route this entry belongs to (which owns it, so it outlives the entry).
    unowned(unsafe) var owner: CompiledRoute? = nil
    /// Trie nodes of this entry's prefix in the shapes it was indexed in (see `TrieShape`).
    var trieNodes: [(shape: Int, node: Int32)] = []
    /// `priorityKey`, computed once at init.
    private(set) var priority: UInt64 = 0

    var priorityKey: UInt64 {
        var k = UInt64(min(weight, 7))
        k = k << 1 | (plainHostOnly ? 1 : 0)
        k = k << 8 | UInt64(min(headerCount, 255))
        k = k << 1 | (isRegex ? 1 : 0)
        k = k << 32 | UInt64(UInt32(bitPattern: Int32(clamping: regexPriority)) ^ 0x8000_0000)
        k = k << 19 | UInt64(min(prefixLength, 0x7FFFF))
        return k
    }

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

/// An entry at its place in one router: plain data (no reference counting), so building and
/// dropping a router of 10 000 entries copies and frees nothing per entry. The router's `compiled`
/// list keeps every referenced `Entry` alive.
struct EntryRef {
    unowned(unsafe) let entry: Entry
    var routeIndex: Int32
    var serviceIndex: Int32          // -1: route without service
}

/// A route compiled to its entries (one per path) with their priority keys but no positions: reused by the
/// next generation's router while the route is unchanged (regexes are not recompiled, hosts not re-parsed).
final class CompiledRoute {
    let route: Route
    let entries: [Entry]
    let error: RouterBuildError?

    init(route: Route, entries: [Entry], error: RouterBuildError?) {
        self.route = route; self.entries = entries; self.error = error
        for e in entries { e.owner = self }
    }
}

extension Router {
    /// One route's entries (one per path; one without paths), or the reason it cannot be routed.
    static func compile(_ r: Route) -> CompiledRoute {
        func failed(_ message: String) -> CompiledRoute {
            CompiledRoute(route: r, entries: [], error: RouterBuildError(routeID: r.id, message: message))
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
                        return failed("invalid regex: '\(v)'")
                    }
                } else {
                    m.plain.append(Array(v.lowercased().utf8))
                }
            }
            headers.append(m)
        }
        let paths = r.paths ?? []
        let snis = (r.snis ?? []).map(SNIPattern.init)
        var weight = 0
        if !snis.isEmpty { weight += 1 }
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
                    return failed("invalid regex: '\(src)'")
                }
            } else {
                pathMatchers.append((.prefix(p), p))
            }
        }
        var idPrefix: UInt64 = 0
        var n = 0
        for b in r.id.utf8 where n < 8 { idPrefix = idPrefix << 8 | UInt64(b); n += 1 }
        idPrefix <<= UInt64(8 * (8 - n))
        var out: [Entry] = []
        for (pm, src) in pathMatchers {
            var isRegex = false, plen = 0
            switch pm {
            case .regex: isRegex = true
            case .prefix(let p): plen = min(p.utf8.count, 0x7FFFF)
            case .none: break
            }
            let e = Entry(methods: methods, hosts: hosts, headers: headers,
                          path: pm, pathSource: src, weight: weight, plainHostOnly: plainHostOnly,
                          headerCount: min(headers.count, 255), isRegex: isRegex,
                          regexPriority: isRegex ? r.regexPriority : 0, prefixLength: plen,
                          createdAt: r.createdAt, id: r.id)
            switch pm {
            case .none: break
            case .prefix(let p): e.pathKind = 1; e.prefixBytes = Array(p.utf8)
            case .regex(let re, _): e.pathKind = 2; e.regex = re
            }
            e.idPrefix = idPrefix
            e.snis = snis
            out.append(e)
        }
        return CompiledRoute(route: r, entries: out, error: nil)
    }

}
