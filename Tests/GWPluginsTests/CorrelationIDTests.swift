import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// correlation-id (Kong's spec/03-plugins/11-correlation-id/01-access_spec.lua), without sockets.
@Suite struct CorrelationIDTests {
    func set(_ name: String, _ config: JSON) -> PluginSet { compile(ConfigSnapshot(plugins: [plugin(name, route: "r1", config)])) }

    static func isUUID(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 36 else { return false }
        for (i, c) in b.enumerated() {
            if [8, 13, 18, 23].contains(i) { if c != 0x2D { return false }; continue }
            if !((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66)) { return false }
        }
        return b[14] == 0x34 && [0x38, 0x39, 0x61, 0x62].contains(b[19])
    }

    // MARK: correlation-id

    @Test func uuidCounterIncrements() {
        let s = set("correlation-id", [:])
        let a = run(s, get("/")).upstreamValue(of: "Kong-Request-ID")!
        let b = run(s, get("/")).upstreamValue(of: "kong-request-id")!
        let pa = a.split(separator: "#"), pb = b.split(separator: "#")
        #expect(pa.count == 2 && pb.count == 2)
        #expect(CorrelationIDTests.isUUID(String(pa[0])) && pa[0] == pb[0])
        #expect(Int(pb[1])! == Int(pa[1])! + 1)
    }

    @Test func uuidIsFreshAndKeepsIncoming() {
        let s = set("correlation-id", ["generator": "uuid", "header_name": "Foo-Bar-Id"])
        var seen = Set<String>()
        for _ in 0 ..< 200 {
            let v = run(s, get("/")).upstreamValue(of: "foo-bar-id")!
            #expect(CorrelationIDTests.isUUID(v), "\(v)")
            seen.insert(v)
        }
        #expect(seen.count == 200)
        let kept = run(s, get("/", [("foo-bar-id", "foobar")]))
        #expect(kept.upstreamHeaders.isEmpty, "an incoming id is left as it is")
        let empty = run(s, get("/", [("Foo-Bar-Id", "")]))
        #expect(CorrelationIDTests.isUUID(empty.upstreamValue(of: "Foo-Bar-Id") ?? ""))
    }

    @Test func contextIDIsPerRequest() {
        let s = set("correlation-id", ["generator": "uuid"])
        let ctx = PluginContext(clientIP: "127.0.0.1")
        run(s, get("/"), ctx: ctx)
        #expect(String(decoding: ctx.correlationID, as: UTF8.self) == ctx.upstreamValue(of: "Kong-Request-ID"))
        run(s, get("/"), route: "r2", ctx: ctx)   // no instance on r2: no id for the log serializer
        #expect(ctx.correlationID.isEmpty)
    }

    @Test func trackerFormat() {
        let ctx = PluginContext(clientIP: "127.0.0.1")
        ctx.serverPort = 8000; ctx.connectionSerial = 7; ctx.connectionRequests = 3
        let v = run(set("correlation-id", ["generator": "tracker"]), get("/"), ctx: ctx).upstreamValue(of: "Kong-Request-ID")!
        // No socket: an empty server address, then port, pid, connection, requests, seconds.millis.
        let parts = v.split(separator: "-", omittingEmptySubsequences: false)
        #expect(parts.count == 6 && parts[0] == "" && parts[1] == "8000" && parts[3] == "7" && parts[4] == "3", "\(v)")
        let t = parts[5].split(separator: ".")
        #expect(t.count == 2 && t[0].count == 10 && t[1].count == 3)
    }

    @Test func echoDownstream() {
        let s = set("correlation-id", ["generator": "uuid", "echo_downstream": true])
        let req = get("/")
        let ctx = run(s, req)
        PluginRuntime.headerFilter(ctx, req.head, status: 200, headers: HTTPHeaders())
        #expect(ctx.responseHeaders.value(of: "Kong-Request-ID") == ctx.upstreamValue(of: "Kong-Request-ID"))
        let req2 = get("/", [("Kong-Request-ID", "mine")])
        let c2 = run(s, req2)
        PluginRuntime.headerFilter(c2, req2.head, status: 502, headers: HTTPHeaders())
        #expect(c2.responseHeaders.value(of: "Kong-Request-ID") == "mine")
        let plain = set("correlation-id", ["generator": "uuid"])
        let c3 = run(plain, req)
        PluginRuntime.headerFilter(c3, req.head, status: 200, headers: HTTPHeaders())
        #expect(c3.responseHeaders.value(of: "Kong-Request-ID") == nil)
    }
}
