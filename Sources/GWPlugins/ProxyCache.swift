// proxy-cache, strategy `memory` (Kong 3.10 `kong/plugins/proxy-cache/{handler,cache_key}.lua`,
// KONG-PLUGINS.md §5), priority 100. The cache is the node's shared-memory CacheStore: every worker
// serves what any worker stored; it is bounded (proxy_cache_size) with LRU eviction.
//   access        cacheable request? → key = sha256_hex("<prefix>|<METHOD>|<uri>|<params>|<headers>")
//                 (Kong's cache_key.lua, including its request-line quirk) → Hit (a typed exit, CachedAnswer:
//                 the stored response as stored, written by the data path), Miss / Refresh (proxy and
//                 store), Bypass.
//   header_filter cacheable response? (status, Content-Type, Cache-Control, a Content-Length that fits
//                 proxy_cache_max_entry_size) → capture; else Bypass.
//   body_filter   copies the relayed body into the request's capture buffer; stores it at the end.
// Kong's two known gaps, fixed here (KONG-PLUGINS.md §8):
//   - a configured content type without parameters matches a response type with parameters
//     (`application/json` matches `application/json; charset=utf-8`); with parameters, they must match;
//   - the upstream's `Vary`: `Vary: *` is never cached; otherwise the named request headers' values are
//     stored with the entry and a request whose values differ is a Miss (then stored in its place), so a
//     variant is never served to a client it was not made for (#12796).
// A response streamed without Content-Length, or larger than the maximum entry size, is relayed
// without being cached: nothing is buffered beyond that bound.
import CCrypto
import GWHTTP
import GWJSON
import GWPluginState
import GWStore

final class ProxyCache: PluginHandler {
    static let name = "proxy-cache"
    static let priority = 100
    /// Per-request flags.
    static let storing: UInt32 = 1          // marked in access: store the response
    static let capturing: UInt32 = 2        // header_filter accepted it: body pieces are captured
    static let debug: UInt32 = 4            // the request had Kong-Debug: X-Cache-* and Age always

    let methods: [[UInt8]]
    let statuses: Set<Int>
    let contentTypes: [(type: [UInt8], params: [UInt8])]
    let cacheTTL: Int64
    let storageTTL: Int64?
    let cacheControl: Bool
    let ignoreURICase: Bool
    let varyQuery: [[UInt8]]
    let varyHeaders: [[UInt8]]
    let showAge: Bool, showStatus: Bool, showKey: Bool
    let pluginHash: Hash128
    let store: CacheStore?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: ProxyCache.name)
        methods = (try c.strings("request_method") ?? ["GET", "HEAD"]).map { Array($0.utf8) }
        statuses = Set(try c.ints("response_code") ?? [200, 301, 404])
        contentTypes = (try c.strings("content_type") ?? ["text/plain", "application/json"]).map { ProxyCache.splitType(Array($0.utf8)) }
        cacheTTL = Int64(try c.int("cache_ttl", 300))
        storageTTL = try c.double("storage_ttl").map { Int64($0) }
        cacheControl = try c.bool("cache_control", false)
        ignoreURICase = try c.bool("ignore_uri_case", false)
        varyQuery = (try c.strings("vary_query_params") ?? []).map { Array($0.utf8) }
        varyHeaders = (try c.strings("vary_headers") ?? []).map { Array($0.lowercased().utf8) }
        let rh = c.object("response_headers")
        showAge = try rh?.bool("age", true) ?? true
        showStatus = try rh?.bool("X-Cache-Status", true) ?? true
        showKey = try rh?.bool("X-Cache-Key", true) ?? true
        let strategy = try c.string("strategy", "memory")
        guard strategy == "memory" else { throw PluginError("proxy-cache: strategy '\(strategy)' is not supported") }
        pluginHash = ProxyCacheAdmin.pluginHash(id: entity.id)
        store = (env.shared as? PluginSharedStore)?.cacheStore
        super.init(entity: entity, priority: ProxyCache.priority)
    }

    override var phases: PluginPhases { [.access, .headerFilter, .bodyFilter] }

    /// "type/subtype; params" → (lower-cased type/subtype, lower-cased params without spaces).
    static func splitType<C: Collection>(_ v: C) -> (type: [UInt8], params: [UInt8]) where C.Element == UInt8 {
        var t: [UInt8] = [], p: [UInt8] = [], inParams = false
        for b in v {
            if b == 0x3B && !inParams { inParams = true; continue }
            if b == 0x20 || b == 0x09 { continue }
            let l = (b &- 0x41) < 26 ? b | 0x20 : b
            if inParams { p.append(l) } else { t.append(l) }
        }
        return (t, p)
    }

    // MARK: request side

    private func setStatus(_ ctx: PluginContext, _ s: String) {
        if showStatus || ctx.flag(ProxyCache.debug) { ctx.responseHeaders.set("X-Cache-Status", s) }
    }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if request.headers.firstIndex(of: "kong-debug") != nil { ctx.setFlag(ProxyCache.debug) }
        let cc = CacheControl(request.headers)
        let m = request.method.name
        let methodName = UnsafeBufferPointer(start: m.utf8Start, count: m.utf8CodeUnitCount)
        guard methods.contains(where: { $0.elementsEqual(methodName) }), !(cacheControl && (cc.noStore || cc.noCache)) else {
            setStatus(ctx, "Bypass")
            return
        }
        guard let store else { setStatus(ctx, "Bypass"); return }
        buildKey(ctx, request, methodName)
        let key = ctx.cacheKey
        let debug = ctx.flag(ProxyCache.debug)
        guard let meta = store.lookup(key, now: ctx.now, into: ctx.cacheBuffer) else {
            setKey(ctx, debug)
            if cacheControl && cc.onlyIfCached {
                ctx.exit(504, body: EmptyCollection<UInt8>(), contentType: nil)
                return
            }
            mark(ctx, ttl: 0, status: "Miss")
            return
        }
        let age = ctx.now - meta.storedAt
        var refresh = false
        if cacheControl {
            if let m = cc.maxAge, age > m { refresh = true }
            if let m = cc.maxStale, age - meta.ttl > m { refresh = true }
            // Past the response's own TTL (kept by storage_ttl): stale unless the client accepts it with
            // max-stale (RFC 9111 §4.2.4; Kong serves it as a Hit).
            if cc.maxStale == nil && age > meta.ttl { refresh = true }
            if let m = cc.minFresh, meta.ttl - age < m { refresh = true }
        } else if age > cacheTTL {
            refresh = true
        }
        let blob = ctx.cacheBuffer.bytes
        guard let entry = CachedResponse(blob) else { setKey(ctx, debug); mark(ctx, ttl: 0, status: "Bypass"); return }
        // Vary (fixed Kong gap): the stored variant must match this request's values.
        if !entry.varyMatches(blob, request.headers) { setKey(ctx, debug); mark(ctx, ttl: 0, status: "Miss"); return }
        if refresh { setKey(ctx, debug); mark(ctx, ttl: 0, status: "Refresh"); return }
        // Hit: a typed exit the data path writes as it is (X-Cache-Key, Age and X-Cache-Status included).
        ctx.exitCached(CachedAnswer(status: entry.status, headerLines: UnsafeRawBufferPointer(rebasing: blob[entry.headers]),
                                    body: UnsafeRawBufferPointer(rebasing: blob[entry.body]),
                                    age: showAge || debug ? Int(max(0, age)) : -1, writesStatus: showStatus || debug,
                                    writesKey: showKey || debug, storedDate: entry.flags & CachedResponse.hasDate != 0,
                                    storedServer: entry.flags & CachedResponse.hasServer != 0,
                                    clashFree: entry.flags & CachedResponse.clashes == 0))
    }

    /// X-Cache-Key on a response that is not a Hit (a Hit's answer carries it).
    private func setKey(_ ctx: PluginContext, _ debug: Bool) {
        if showKey || debug { ctx.responseHeaders.set("X-Cache-Key", bytes: ctx.cacheKeyHex) }
    }

    private func mark(_ ctx: PluginContext, ttl: Int64, status: String) {
        ctx.setFlag(ProxyCache.storing)
        setStatus(ctx, status)
    }

    /// Kong's cache_key.lua: sha256_hex("<prefix>|<METHOD>|<uri>|<params>|<headers>"). Built in the
    /// context's scratch buffer, digest on the stack, hex into `cacheKeyHex`: no allocation once warm
    /// (a query string or vary_headers still build small arrays).
    private func buildKey(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, _ method: UnsafeBufferPointer<UInt8>) {
        var s: [UInt8] = []
        swap(&s, &ctx.scratch3)   // owned for the build: appends do not copy a shared buffer
        s.removeAll(keepingCapacity: true)
        if let c = ctx.consumer, let r = ctx.routeID { s.append(contentsOf: c.id.utf8); s.append(0x3A); s.append(contentsOf: r.utf8) }
        else if let r = ctx.routeID { s.append(contentsOf: r.utf8) } else { s.append(contentsOf: "default".utf8) }
        s.append(0x7C); s.append(contentsOf: method); s.append(0x7C)
        // uri: nginx's $request cut at the first '?' (so "GET /p" with a query, "GET /p HTTP/1.1" without).
        let uriStart = s.count
        s.append(contentsOf: method); s.append(0x20)
        s.append(contentsOf: request.target[request.target.startIndex ..< request.target.startIndex + request.queryStart])
        if request.queryBytes == nil {
            let v: StaticString = " HTTP/1."
            s.append(contentsOf: UnsafeBufferPointer(start: v.utf8Start, count: v.utf8CodeUnitCount))
            s.append(0x30 &+ UInt8(truncatingIfNeeded: request.versionMinor))
        }
        if ignoreURICase { for i in uriStart ..< s.count { s[i] = (s[i] &- 0x41) < 26 ? s[i] | 0x20 : s[i] } }
        s.append(0x7C)
        appendArgs(&s, request.queryBytes)
        s.append(0x7C)
        appendHeaders(&s, request.headers)
        var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digest) { d in
            s.withUnsafeBytes { src in
                gw_sha256(src.baseAddress?.assumingMemoryBound(to: UInt8.self), src.count, d.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            ctx.cacheKey = CacheKey(bytes: UnsafeRawBufferPointer(d))
            ctx.cacheKeyHex.removeAll(keepingCapacity: true)
            for b in d {
                let h = b >> 4, l = b & 15
                ctx.cacheKeyHex.append(h < 10 ? 0x30 &+ h : 0x57 &+ h)
                ctx.cacheKeyHex.append(l < 10 ? 0x30 &+ l : 0x57 &+ l)
            }
        }
        swap(&s, &ctx.scratch3)
    }

    /// Query part of the key: every argument sorted by name (no vary_query_params), else the listed ones
    /// in config order; `k=v` joined by ':', repeated values sorted and joined by ',', a bare arg `k`.
    private func appendArgs<Q: RandomAccessCollection<UInt8>>(_ s: inout [UInt8], _ query: Q?) where Q.Index == Int {
        guard let query else { return }
        var args: [([UInt8], [UInt8]?)] = []
        forEachQueryArg(query) { n, v in
            var name: [UInt8] = [], value: [UInt8]? = nil
            appendDecoded(query[n], to: &name)
            if let v { var d: [UInt8] = []; appendDecoded(query[v], to: &d); value = d }
            args.append((name, value))
        }
        let names: [[UInt8]] = varyQuery.isEmpty
            ? Array(Set(args.map { $0.0 })).sorted { $0.lexicographicallyPrecedes($1) } : varyQuery
        appendFields(&s, names) { name in args.filter { $0.0 == name }.map { $0.1 } }
    }

    private func appendHeaders(_ s: inout [UInt8], _ headers: borrowing HTTPHeaders) {
        guard !varyHeaders.isEmpty else { return }
        var found: [[UInt8]: [[UInt8]?]] = [:]
        for i in 0 ..< headers.count {
            let lname = headers.nameBytes(at: i).map { (($0 &- 0x41) < 26 ? $0 | 0x20 : $0) }
            if varyHeaders.contains(lname) { found[lname, default: []].append(Array(headers.valueBytes(at: i))) }
        }
        appendFields(&s, varyHeaders) { found[$0] ?? [] }
    }

    private func appendFields(_ s: inout [UInt8], _ names: [[UInt8]], _ values: ([UInt8]) -> [[UInt8]?]) {
        var first = true
        for name in names {
            let vs = values(name)
            guard !vs.isEmpty else { continue }
            if !first { s.append(0x3A) }
            first = false
            s.append(contentsOf: name)
            let present = vs.compactMap { $0 }
            if vs.count == 1 && vs[0] == nil { continue }
            s.append(0x3D)
            if present.count > 1 {
                let sorted = present.sorted { $0.lexicographicallyPrecedes($1) }
                for (k, v) in sorted.enumerated() { if k > 0 { s.append(0x2C) }; s.append(contentsOf: v) }
            } else if let v = present.first {
                s.append(contentsOf: v)
            }
        }
    }

    // MARK: response side

    override func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int, headers: borrowing HTTPHeaders) {
        guard ctx.flag(ProxyCache.storing), !ctx.servedFromCache, let store else { return }
        var ttl = cacheTTL
        var ok = statuses.contains(status)
        var contentLength = -1
        var contentTypes = 0
        var vary: [[UInt8]] = []
        if ok {
            var typeMatches = false
            for i in 0 ..< headers.count {
                if headers.nameEquals(at: i, "content-type") {
                    contentTypes += 1
                    let (t, p) = ProxyCache.splitType(headers.valueBytes(at: i))
                    typeMatches = self.contentTypes.contains { ct in
                        (ct.type == t || ct.type == Array("*/*".utf8) ||
                         (ct.type.last == 0x2A && t.starts(with: ct.type.dropLast()))) && (ct.params.isEmpty || ct.params == p)
                    }
                } else if headers.nameEquals(at: i, "content-length") {
                    contentLength = Int(String(decoding: headers.valueBytes(at: i), as: UTF8.self)) ?? -1
                } else if headers.nameEquals(at: i, "vary") {
                    for part in headers.valueBytes(at: i).split(separator: 0x2C) {
                        let name = part.filter { $0 != 0x20 && $0 != 0x09 }.map { (($0 &- 0x41) < 26 ? $0 | 0x20 : $0) }
                        if name == [0x2A] { ok = false }
                        if !name.isEmpty { vary.append(name) }
                    }
                }
            }
            if contentTypes != 1 || !typeMatches { ok = false }
            if contentLength < 0 || contentLength > store.maxEntrySize { ok = false }
        }
        if ok && cacheControl {
            let cc = CacheControl(headers)
            if cc.isPrivate || cc.noStore || cc.noCache { ok = false }
            if let t = cc.sMaxAge ?? cc.maxAge { ttl = max(0, t) } else { ttl = 0 }
            if ttl <= 0 { ok = false }
        }
        guard ok else {
            setStatus(ctx, "Bypass")
            return
        }
        ctx.setFlag(ProxyCache.capturing)
        ctx.cacheTTL = ttl
        CachedResponse.beginEncoding(into: &ctx.cacheCapture, status: status, headers: headers, vary: vary, request: request.headers,
                                     bodyLength: contentLength)
    }

    override func bodyFilter(_ ctx: PluginContext, _ piece: UnsafeRawBufferPointer, last: Bool) {
        guard ctx.flag(ProxyCache.capturing), let store else { return }
        ctx.cacheCapture.append(contentsOf: piece)
        guard last else { return }
        ctx.flags[ctx.current] &= ~ProxyCache.capturing
        guard CachedResponse.finishEncoding(&ctx.cacheCapture) else { return }   // body length differs: not stored
        let expires = ctx.now + (storageTTL ?? ctx.cacheTTL)
        ctx.cacheCapture.withUnsafeBytes { blob in
            _ = store.store(ctx.cacheKey, storedAt: ctx.now, ttl: ctx.cacheTTL, expiresAt: expires, plugin: pluginHash, blob: blob, now: ctx.now)
        }
    }
}

/// Request / response Cache-Control directives Kong reads.
struct CacheControl {
    var noStore = false, noCache = false, isPrivate = false, onlyIfCached = false
    var maxAge: Int64? = nil, sMaxAge: Int64? = nil, maxStale: Int64? = nil, minFresh: Int64? = nil

    init(_ headers: borrowing HTTPHeaders) {
        for i in 0 ..< headers.count where headers.nameEquals(at: i, "cache-control") {
            for part in headers.valueBytes(at: i).split(separator: 0x2C) {
                let d = part.drop { $0 == 0x20 || $0 == 0x09 }
                let eq = d.firstIndex(of: 0x3D)
                let name = String(decoding: d[d.startIndex ..< (eq ?? d.endIndex)], as: UTF8.self).lowercased()
                    .trimmingWhitespaceASCII()
                let value = eq.flatMap { Int64(String(decoding: d[($0 + 1)...], as: UTF8.self).trimmingWhitespaceASCII()) }
                switch name {
                case "no-store": noStore = true
                case "no-cache": noCache = true
                case "private": isPrivate = true
                case "only-if-cached": onlyIfCached = true
                case "max-age": maxAge = value
                case "s-maxage": sMaxAge = value
                case "max-stale": maxStale = value
                case "min-fresh": minFresh = value
                default: break
                }
            }
        }
    }
}

extension String {
    func trimmingWhitespaceASCII() -> String {
        let u = Array(utf8)
        var a = 0, b = u.count
        while a < b && (u[a] == 0x20 || u[a] == 0x09) { a += 1 }
        while b > a && (u[b - 1] == 0x20 || u[b - 1] == 0x09) { b -= 1 }
        return String(decoding: u[a ..< b], as: UTF8.self)
    }
}
