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

    /// One request through the phases; returns the context (exit = served from cache).
    func exchange(_ set: PluginSet, _ req: HTTPRequestParser, _ resp: Response = Response(), now: Int64 = 1000,
                  ctx: PluginContext = PluginContext(clientIP: "127.0.0.1")) -> PluginContext {
        run(set, req, now: now, ctx: ctx)
        if ctx.exitStatus != 0 { return ctx }
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
        var h = HTTPHeaders(); h.append(name: "Content-Type", value: "text/plain"); h.append(name: "Connection", value: "close")
        var blob: [UInt8] = []
        CachedResponse.beginEncoding(into: &blob, status: 200, headers: h, vary: [], request: HTTPHeaders(), bodyLength: 3)
        blob.append(contentsOf: "abc".utf8)
        let r = CachedResponse(blob[...])
        #expect(r?.status == 200 && r?.headers.count == 1 && r.map { Array($0.body) } == Array("abc".utf8))
        for cut in 0 ..< blob.count { #expect(CachedResponse(blob[0 ..< cut]) == nil) }
        var wrong = blob; wrong.append(0)
        #expect(CachedResponse(wrong[...]) == nil)
    }
}

func sha256Hex(_ s: String) -> String {
    var d = [UInt8](repeating: 0, count: 32)
    let b = Array(s.utf8)
    b.withUnsafeBufferPointer { src in _ = SHA256(src.baseAddress, src.count, &d) }
    return d.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}
