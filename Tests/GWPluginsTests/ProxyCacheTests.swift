import Testing
import GWHTTP
import GWJSON
import GWPluginState
import GWStore
import GWSystem
import CCrypto
@testable import GWPlugins

/// Scenarios of Kong's spec/03-plugins/31-proxy-cache/02-access_spec.lua against a real shared-memory
/// store, driving the phases as the data path does (access → header_filter → body_filter).
@Suite struct ProxyCacheTests {
    final class Node {
        let shm: SharedMemory
        let store: SharedPluginStore
        init(maxEntry: Int = 64 << 10) throws {
            shm = try SharedMemory(peerAreaSize: 4096, pluginAreaSize: PluginState.areaSize(countersSize: 64 << 10, cacheSize: 1 << 20))
            store = SharedPluginStore(state: try PluginState(formatting: shm, countersSize: 64 << 10, cacheSize: 1 << 20, maxEntrySize: maxEntry))
        }
        func set(_ config: JSON, extra: [Plugin] = []) -> PluginSet {
            var cfg = config.objectValue ?? [:]
            cfg["strategy"] = "memory"
            return PluginSet(snapshot: ConfigSnapshot(plugins: [plugin("proxy-cache", id: "pc1", route: "r1", .object(cfg))] + extra),
                             previous: nil, shared: store,
                             registry: PluginRegistry.implemented.map { ($0.key, $0.value.priority, $0.value.factory) })
        }
    }

    struct Response {
        var status = 200
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        var body = "{\"ok\":true}"
    }

    /// One request through the phases; returns the context (exit = served from cache). A Hit's typed
    /// answer is turned into edits and an exit body (what the generic data path does) unless `typed`.
    func exchange(_ set: PluginSet, _ req: HTTPRequestParser, _ resp: Response = Response(), now: Int64 = 1000,
                  ctx: PluginContext = PluginContext(clientIP: "127.0.0.1"), typed: Bool = false) -> PluginContext {
        run(set, req, now: now, ctx: ctx)
        if ctx.exitStatus != 0 {
            if !typed { ctx.materializeCachedAnswer() }
            return ctx
        }
        var h = HTTPHeaders()
        for (n, v) in resp.headers { h.append(name: n, value: v) }
        if !resp.headers.contains(where: { $0.0.lowercased() == "content-length" }) { h.append(name: "Content-Length", value: String(resp.body.utf8.count)) }
        PluginRuntime.headerFilter(ctx, req.head, status: resp.status, headers: h)
        var body = Array(resp.body.utf8)
        let half = body.count / 2
        body.withUnsafeBytes { b in
            PluginRuntime.bodyFilter(ctx, UnsafeRawBufferPointer(rebasing: b[0 ..< half]), last: false)
            PluginRuntime.bodyFilter(ctx, UnsafeRawBufferPointer(rebasing: b[half...]), last: true)
        }
        return ctx
    }

    @Test func missThenHitSharedAcrossContexts() throws {
        let node = try Node()
        let s = node.set([:])
        let first = exchange(s, get("/cache"))
        #expect(first.responseHeaders.value(of: "X-Cache-Status") == "Miss")
        let key = first.responseHeaders.value(of: "X-Cache-Key") ?? ""
        #expect(key.utf8.count == 64 && key.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        // Another connection's context (another worker sees the same segment).
        let second = exchange(node.set([:]), get("/cache"), now: 1003)
        #expect(second.exitStatus == 200 && String(decoding: second.exitBody, as: UTF8.self) == "{\"ok\":true}")
        #expect(second.responseHeaders.value(of: "X-Cache-Status") == "Hit")
        #expect(second.responseHeaders.value(of: "X-Cache-Key") == key)
        #expect(second.responseHeaders.value(of: "Age") == "3")
        #expect(second.responseHeaders.value(of: "Content-Type") == "application/json")
        #expect(second.responseHeaders.value(of: "Content-Length") == nil, "the data path sets it from the body")
    }

    @Test func kongCacheKeyFormat() throws {
        // sha256_hex("r1|GET|GET /cache HTTP/1.1||") — Kong's key for a route, no query, no vary headers.
        let node = try Node()
        let ctx = exchange(node.set([:]), get("/cache"))
        #expect(ctx.responseHeaders.value(of: "X-Cache-Key") == sha256Hex("r1|GET|GET /cache HTTP/1.1||"))
        let q = exchange(node.set([:]), get("/cache?b=2&a=1&a=0&c"))
        #expect(q.responseHeaders.value(of: "X-Cache-Key") == sha256Hex("r1|GET|GET /cache|a=0,1:b=2:c|"))
        let v = exchange(node.set(["vary_headers": ["X-Foo"], "vary_query_params": ["b"]]), get("/cache?b=2&a=1", [("x-foo", "bar")]))
        #expect(v.responseHeaders.value(of: "X-Cache-Key") == sha256Hex("r1|GET|GET /cache|b=2|x-foo=bar"))
    }

    @Test func bypassRules() throws {
        let node = try Node()
        let s = node.set([:])
        #expect(exchange(s, get("/p", method: "POST")).responseHeaders.value(of: "X-Cache-Status") == "Bypass")
        #expect(exchange(s, get("/s"), Response(status: 500)).responseHeaders.value(of: "X-Cache-Status") == "Bypass")
        #expect(exchange(s, get("/t"), Response(headers: [("Content-Type", "text/html")])).responseHeaders.value(of: "X-Cache-Status") == "Bypass")
        #expect(exchange(s, get("/v"), Response(headers: [("Content-Type", "application/json"), ("Vary", "*")]))
            .responseHeaders.value(of: "X-Cache-Status") == "Bypass")
        // Streamed without a length: relayed, never cached.
        #expect(exchange(s, get("/c"), Response(headers: [("Content-Type", "application/json"), ("Content-Length", "-1")]))
            .responseHeaders.value(of: "X-Cache-Status") == "Bypass")
        #expect(exchange(s, get("/c")).responseHeaders.value(of: "X-Cache-Status") == "Miss")
        // Content type with parameters matches a configured type without them (fixed Kong gap).
        let p = exchange(s, get("/params"), Response(headers: [("Content-Type", "application/json; charset=utf-8")]))
        #expect(p.responseHeaders.value(of: "X-Cache-Status") == "Miss")
        #expect(exchange(s, get("/params")).responseHeaders.value(of: "X-Cache-Status") == "Hit")
    }

    @Test func oversizedIsRelayedNotCached() throws {
        let node = try Node(maxEntry: 4096)
        let s = node.set([:])
        let big = Response(body: String(repeating: "x", count: 5000))
        #expect(exchange(s, get("/big"), big).responseHeaders.value(of: "X-Cache-Status") == "Bypass")
        #expect(exchange(s, get("/big"), big).responseHeaders.value(of: "X-Cache-Status") == "Bypass")
    }

    @Test func ttlRefreshAndCacheControl() throws {
        let node = try Node()
        // Without storage_ttl an entry lives as long as it is fresh (Kong: shm ttl = cache_ttl).
        let plain = node.set(["cache_ttl": 2])
        _ = exchange(plain, get("/plain"), now: 100)
        #expect(exchange(plain, get("/plain"), now: 101).responseHeaders.value(of: "X-Cache-Status") == "Hit")
        #expect(exchange(plain, get("/plain"), now: 102).responseHeaders.value(of: "X-Cache-Status") == "Miss")
        // With storage_ttl a stale entry is kept and refreshed.
        let s = node.set(["cache_ttl": 2, "storage_ttl": 60])
        _ = exchange(s, get("/ttl"), now: 100)
        #expect(exchange(s, get("/ttl"), now: 102).responseHeaders.value(of: "X-Cache-Status") == "Hit")
        #expect(exchange(s, get("/ttl"), now: 103).responseHeaders.value(of: "X-Cache-Status") == "Refresh")
        #expect(exchange(s, get("/ttl"), now: 104).responseHeaders.value(of: "X-Cache-Status") == "Hit")
        let cc = node.set(["cache_control": true, "storage_ttl": 60])
        let r2 = Response(headers: [("Content-Type", "application/json"), ("Cache-Control", "public, max-age=2")])
        #expect(exchange(cc, get("/cache/2"), r2, now: 200).responseHeaders.value(of: "X-Cache-Status") == "Miss")
        #expect(exchange(cc, get("/cache/2"), r2, now: 201).responseHeaders.value(of: "X-Cache-Status") == "Hit")
        #expect(exchange(cc, get("/cache/2"), r2, now: 203).responseHeaders.value(of: "X-Cache-Status") == "Refresh")
        let r0 = Response(headers: [("Content-Type", "application/json"), ("Cache-Control", "max-age=0")])
        #expect(exchange(cc, get("/cache/0"), r0, now: 200).responseHeaders.value(of: "X-Cache-Status") == "Bypass")
        #expect(exchange(cc, get("/cache/2", [("Cache-Control", "min-fresh=30")]), r2, now: 204)
            .responseHeaders.value(of: "X-Cache-Status") == "Refresh")
        let oic = exchange(cc, get("/nothing", [("Cache-Control", "only-if-cached")]), now: 300)
        #expect(oic.exitStatus == 504 && oic.exitBody.isEmpty)
        #expect(exchange(cc, get("/x", [("Cache-Control", "no-store")])).responseHeaders.value(of: "X-Cache-Status") == "Bypass")
    }

    @Test func upstreamVaryIsHonoured() throws {
        let node = try Node()
        let s = node.set([:])
        let gz = Response(headers: [("Content-Type", "text/plain"), ("Vary", "Accept-Encoding")], body: "gzipped")
        #expect(exchange(s, get("/v", [("Accept-Encoding", "gzip")]), gz).responseHeaders.value(of: "X-Cache-Status") == "Miss")
        #expect(exchange(s, get("/v", [("Accept-Encoding", "gzip")]), gz).responseHeaders.value(of: "X-Cache-Status") == "Hit")
        let plain = exchange(s, get("/v"), Response(headers: [("Content-Type", "text/plain"), ("Vary", "Accept-Encoding")], body: "plain"))
        #expect(plain.responseHeaders.value(of: "X-Cache-Status") == "Miss", "a client without gzip never gets the gzip variant")
    }

    @Test func responseHeadersFlagsAndKongDebug() throws {
        let node = try Node()
        let s = node.set(["response_headers": ["age": false, "X-Cache-Status": false, "X-Cache-Key": false]])
        _ = exchange(s, get("/h"))
        let hit = exchange(s, get("/h"))
        #expect(hit.exitStatus == 200 && hit.responseHeaders.value(of: "X-Cache-Status") == nil && hit.responseHeaders.value(of: "Age") == nil)
        let dbg = exchange(s, get("/h", [("Kong-Debug", "1")]))
        #expect(dbg.responseHeaders.value(of: "X-Cache-Status") == "Hit" && dbg.responseHeaders.value(of: "X-Cache-Key") != nil)
    }

    @Test func blobCodecRejectsGarbage() {
        var h = HTTPHeaders()
        h.append(name: "content-type", value: "text/plain"); h.append(name: "Connection", value: "close")
        h.append(name: "Date", value: "d"); h.append(name: "X-RateLimit-Limit-Minute", value: "5")
        var blob: [UInt8] = []
        CachedResponse.beginEncoding(into: &blob, status: 200, headers: h, vary: [], request: HTTPHeaders(), bodyLength: 3)
        blob.append(contentsOf: "abc".utf8)
        blob.withUnsafeBytes { b in
            let r = CachedResponse(b)
            #expect(r?.status == 200 && r.map { Array(b[$0.body]) } == Array("abc".utf8))
            #expect(r.map { String(decoding: b[$0.headers], as: UTF8.self) } == "Content-Type: text/plain\r\nDate: d\r\n")
            #expect(r.map { String(decoding: b[$0.droppedHeaders], as: UTF8.self) } == "Connection: close\r\nX-RateLimit-Limit-Minute: 5\r\n")
            #expect(r?.flags == CachedResponse.hasDate)
            for cut in 0 ..< b.count { #expect(CachedResponse(UnsafeRawBufferPointer(rebasing: b[0 ..< cut])) == nil) }
        }
        var wrong = blob; wrong.append(0)
        #expect(wrong.withUnsafeBytes { CachedResponse($0) } == nil)
        var v1 = blob; v1[0] = 1
        #expect(v1.withUnsafeBytes { CachedResponse($0) } == nil, "a version-1 entry (before a reload) is a miss")
    }

    @Test func hitIsATypedAnswer() throws {
        let node = try Node()
        let s = node.set([:])
        let stored = Response(headers: [("Content-Type", "application/json"), ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                                        ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Keep-Alive", "timeout=5"),
                                        ("RateLimit-Remaining", "3"), ("Retry-After", "1")])
        let miss = exchange(s, get("/typed"), stored)
        let key = miss.responseHeaders.value(of: "X-Cache-Key")
        let ctx = exchange(s, get("/typed"), now: 1003, typed: true)
        let a = try #require(ctx.cachedAnswer)
        #expect(ctx.exitStatus == 200 && ctx.servedFromCache && ctx.exitBody.isEmpty && ctx.responseHeaders.isEmpty)
        #expect(a.status == 200 && String(decoding: a.body, as: UTF8.self) == "{\"ok\":true}")
        #expect(String(decoding: a.headerLines, as: UTF8.self) ==
                "Content-Type: application/json\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n")
        #expect(a.age == 3 && a.writesStatus && a.writesKey && a.storedDate && !a.storedServer)
        #expect(String(decoding: ctx.cacheKeyHex, as: UTF8.self) == key)
        #expect(ctx.cachedAnswerIsDirect)
        ctx.rateLimit.add(period: 1, limit: 10, remaining: 9)
        #expect(ctx.cachedAnswerIsDirect, "rate-limit headers are written by the direct path too")
        // Another plugin's response edit: the generic path, with the edits the Hit always produced.
        ctx.responseHeaders.set("X-Other", "1")
        #expect(!ctx.cachedAnswerIsDirect)
        ctx.materializeCachedAnswer()
        #expect(ctx.cachedAnswer == nil && String(decoding: ctx.exitBody, as: UTF8.self) == "{\"ok\":true}")
        #expect(ctx.responseHeaders.value(of: "X-Cache-Key") == key && ctx.responseHeaders.value(of: "Age") == "3")
        #expect(ctx.responseHeaders.value(of: "X-Cache-Status") == "Hit" && ctx.responseHeaders.value(of: "Date") == "Mon, 01 Jan 2024 00:00:00 GMT")
        var cookies: [String] = []
        ctx.responseHeaders.forEachValue(of: Array("set-cookie".utf8), original: HTTPHeaders()) { cookies.append(String(decoding: $0, as: UTF8.self)); return true }
        #expect(cookies == ["a=1", "b=2"])
        for dropped in ["Keep-Alive", "RateLimit-Remaining", "Retry-After", "Content-Length"] {
            #expect(ctx.responseHeaders.value(of: dropped) == nil, "\(dropped)")
        }
        // The next request on the context forgets the answer.
        ctx.reset()
        #expect(ctx.cachedAnswer == nil && ctx.exitStatus == 0)
    }

    @Test func storedHeaderClashingWithOursTakesTheGenericPath() throws {
        let node = try Node()
        let s = node.set([:])
        _ = exchange(s, get("/age"), Response(headers: [("Content-Type", "application/json"), ("Age", "100")]))
        let ctx = exchange(s, get("/age"), now: 1005, typed: true)
        #expect(ctx.cachedAnswer != nil && !ctx.cachedAnswerIsDirect)
        ctx.materializeCachedAnswer()
        #expect(ctx.responseHeaders.value(of: "Age") == "5", "ours replaces the stored one, as before")
    }

    @Test func varyWithRepeatedRequestHeaders() throws {
        let node = try Node()
        let s = node.set([:])
        let r = Response(headers: [("Content-Type", "text/plain"), ("Vary", "Accept-Encoding, X-Absent")], body: "v")
        let two = [("Accept-Encoding", "gzip"), ("accept-encoding", "br")]
        #expect(exchange(s, get("/vv", two), r).responseHeaders.value(of: "X-Cache-Status") == "Miss")
        #expect(exchange(s, get("/vv", two), r).responseHeaders.value(of: "X-Cache-Status") == "Hit")
        #expect(exchange(s, get("/vv", [("Accept-Encoding", "gzip")]), r).responseHeaders.value(of: "X-Cache-Status") == "Miss")
        #expect(exchange(s, get("/vv", two + [("X-Absent", "1")]), r).responseHeaders.value(of: "X-Cache-Status") == "Miss")
    }

    @Test func adminEntryKeepsEveryStoredHeader() throws {
        let node = try Node()
        let s = node.set([:])
        let miss = exchange(s, get("/adm"), Response(headers: [("Content-Type", "application/json"), ("X-RateLimit-Limit-Minute", "5")]))
        let key = try #require(ProxyCacheAdmin.key(hex: miss.responseHeaders.value(of: "X-Cache-Key") ?? ""))
        let cache = try #require((node.store as PluginSharedStore).cacheStore)
        let e = try #require(ProxyCacheAdmin.entry(cache, key: key, now: 1001))
        #expect(e["status"] == JSON(200) && e["body_len"] == JSON(11) && e["body"] == .string("{\"ok\":true}"))
        let headers = e["headers"]?.objectValue ?? [:]
        #expect(headers["Content-Type"] == .string("application/json") && headers["X-RateLimit-Limit-Minute"] == .string("5"))
        #expect(headers["Content-Length"] == .string("11"))
    }
}

func sha256Hex(_ s: String) -> String {
    var d = [UInt8](repeating: 0, count: 32)
    let b = Array(s.utf8)
    b.withUnsafeBufferPointer { src in _ = SHA256(src.baseAddress, src.count, &d) }
    return d.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}
