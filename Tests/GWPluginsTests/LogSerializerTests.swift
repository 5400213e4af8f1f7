import Testing
import GWHTTP
import GWJSON
import GWStore
import GWSystem
@testable import GWPlugins

/// kong.log.serialize()'s shape (kong/pdk/log.lua; KONG-PLUGINS.md §7) from LogSerializer.
@Suite struct LogSerializerTests {
    func entry(_ req: HTTPRequestParser, _ fill: (PluginContext) -> Void = { _ in }) -> JSON {
        let ctx = PluginContext(clientIP: "10.0.0.7")
        fill(ctx)
        var out: [UInt8] = []
        // A small scratch area: the serializer must grow it and write the entry again.
        LogSerializer.serialize(ctx, request: req.head, requestID: Array("0123456789abcdef0123456789abcdef".utf8),
                                scratch: HeadScratch(capacity: 64), into: &out)
        var direct: [UInt8] = []
        LogSerializer.write(ctx, request: req.head, requestID: Array("0123456789abcdef0123456789abcdef".utf8), into: &direct)
        #expect(direct == out, "the array sink and the scratch writer produce the same bytes")
        guard let j = try? JSON.parse(out) else {
            Issue.record("not JSON: \(String(decoding: out, as: UTF8.self))")
            return .null
        }
        return j
    }

    @Test func requestFields() {
        let e = entry(get("/a/b?x=1&y&x=2&z=%41+b&=skip", [("Authorization", "Basic abc"), ("Proxy-Authorization", "p"),
                                                       ("X-Dup", "1"), ("x-dup", "2"), ("X-Quote", "a\"b\\c")]))
        let r = e["request"]!
        #expect(r["method"]?.stringValue == "GET")
        #expect(r["uri"]?.stringValue == "/a/b?x=1&y&x=2&z=%41+b&=skip")
        #expect(r["url"]?.stringValue == "http://test:0/a/b?x=1&y&x=2&z=%41+b&=skip")
        #expect(r["id"]?.stringValue == "0123456789abcdef0123456789abcdef")
        let q = r["querystring"]!
        #expect(q["x"] == .array([.string("1"), .string("2")]))
        #expect(q["y"]?.boolValue == true)
        #expect(q["z"]?.stringValue == "A b")
        #expect(q.objectValue?.count == 3, "an empty key is left out")
        let h = r["headers"]!
        #expect(h["authorization"]?.stringValue == "REDACTED")
        #expect(h["proxy-authorization"]?.stringValue == "REDACTED")
        #expect(h["x-dup"] == .array([.string("1"), .string("2")]))
        #expect(h["x-quote"]?.stringValue == "a\"b\\c")
        #expect(h["host"]?.stringValue == "test")
    }

    @Test func exchangeFacts() {
        let e = entry(get("/p")) { ctx in
            var f = LogFacts()
            f.status = 502; f.upstreamStatus = 502; f.bytesSent = 321; f.requestSize = 77
            f.startedAtMs = 1_700_000_000_123; f.kongMs = 3; f.proxyMs = 10; f.requestMs = 15; f.receiveMs = 2
            f.upstream = SocketAddress(ip: "127.0.0.2", port: 8080); f.tries = 1; f.listenPort = 8000
            f.answeredByKong = false
            ctx.logFacts = f
            ctx.logUpstreamURI = Array("/up/p".utf8)
            ctx.logResponseHeaders = Array("{\"content-type\":\"text/plain\"}".utf8)
            ctx.routeID = "r1"; ctx.serviceID = "s1"
            ctx.logDocuments = LogDocuments(routes: ["r1": Array("{\"id\":\"r1\"}".utf8)], services: ["s1": Array("{\"id\":\"s1\"}".utf8)])
        }
        #expect(e["upstream_uri"]?.stringValue == "/up/p")
        #expect(e["upstream_status"]?.stringValue == "502")
        #expect(e["response"]?["status"]?.intValue == 502)
        #expect(e["response"]?["size"]?.intValue == 321)
        #expect(e["response"]?["headers"]?["content-type"]?.stringValue == "text/plain")
        #expect(e["request"]?["size"]?.intValue == 77)
        #expect(e["request"]?["url"]?.stringValue == "http://test:8000/p")
        #expect(e["latencies"] == ["kong": 3, "proxy": 10, "request": 15, "receive": 2])
        #expect(e["tries"]?[0]?["ip"]?.stringValue == "127.0.0.2" && e["tries"]?[0]?["port"]?.intValue == 8080)
        #expect(e["started_at"]?.intValue == 1_700_000_000_123)
        #expect(e["source"]?.stringValue == "upstream")
        #expect(e["client_ip"]?.stringValue == "10.0.0.7")
        #expect(e["route"] == ["id": "r1"] && e["service"] == ["id": "s1"])
        #expect(e["workspace_name"]?.stringValue == "default")
    }

    @Test func notProxied() {
        let e = entry(get("/nowhere"))
        #expect(e["latencies"]?["proxy"]?.intValue == -1)
        #expect(e["tries"] == .array([]))
        #expect(e["upstream_status"] == nil && e["route"] == nil && e["consumer"] == nil)
        #expect(e["source"]?.stringValue == "kong")
        #expect(e["response"]?["headers"] == .object([:]))
    }

    @Test func consumerAndCredential() {
        let snap = ConfigSnapshot(consumers: [Consumer(id: "c1", username: "bob", customID: "cb")],
                                  keyauthCredentials: [KeyAuthCredential(id: "k1", consumerID: "c1", key: "kong")])
        let creds = Credentials(snapshot: snap)
        let e = entry(get("/")) { ctx in
            let c = creds.consumer(reference: "c1")!
            ctx.authenticate(c, credential: creds.keys.lookup(Array("kong".utf8))!)
        }
        #expect(e["consumer"] == ["id": "c1", "username": "bob", "custom_id": "cb"])
        #expect(e["authenticated_entity"] == ["id": "k1", "consumer_id": "c1"])
    }

    @Test func generatedHeadLines() {
        var out: [UInt8] = []
        let head = Array("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nX-Kong-Response-Latency: 0\r\nContent-Length: 48\r\n\r\n{}".utf8)
        head.withUnsafeBytes { LogSerializer.headLines(&out, $0) }
        let j = try? JSON.parse(out)
        #expect(j == ["content-type": "application/json", "x-kong-response-latency": "0", "content-length": "48"])
    }

    @Test func repeatedResponseHeaderLinesBecomeOneArray() {
        // ngx.resp.get_headers() gives a repeated name once, with its values in order: a JSON object with the
        // name twice would lose all but one cookie in most log consumers.
        var out: [UInt8] = []
        let head = Array(("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nVia: 1.1 kong/3.10.0\r\nset-cookie: b=2\r\n" +
                          "SET-COOKIE: c=3\r\nX-One: \"q\"\r\n\r\n").utf8)
        head.withUnsafeBytes { LogSerializer.headLines(&out, $0) }
        #expect(String(decoding: out, as: UTF8.self) ==
                #"{"set-cookie":["a=1","b=2","c=3"],"via":"1.1 kong/3.10.0","x-one":"\"q\""}"#)
        out = []
        Array("HTTP/1.1 204 No Content\r\n\r\n".utf8).withUnsafeBytes { LogSerializer.headLines(&out, $0) }
        #expect(String(decoding: out, as: UTF8.self) == "{}")
    }

    @Test func controlBytesAreEscaped() {
        var out: [UInt8] = []
        LogSerializer.string(&out, [0x61, 0x01, 0x0A, 0x7F])
        #expect(String(decoding: out, as: UTF8.self) == "\"a\\u0001\\n\\u007f\"")
        out = []
        LogSerializer.decimal(&out, -1234567890123)
        #expect(String(decoding: out, as: UTF8.self) == "-1234567890123")
    }
}

@Suite struct LogSerializerBytesTests {
    @Test func wordAtATimeMatchesByteAtATime() {
        // Every byte value at every position of a 19-byte string, through the 8-byte paths.
        for v in 0 ..< 256 {
            for pos in 0 ..< 19 {
                var b = Array("abcdefghijKLMNOPqrs".utf8)
                b[pos] = UInt8(v)
                var fast: [UInt8] = []
                b.withUnsafeBytes { LogSerializer.escapedRaw(&fast, $0) }
                var slow: [UInt8] = []
                for c in b { LogSerializer.escapedByte(&slow, c) }
                #expect(fast == slow)
            }
        }
        var w: UInt64 = 0
        withUnsafeMutableBytes(of: &w) { $0.copyBytes(from: Array("AZaz@[`{".utf8)) }
        let f = LogSerializer.foldCase(w)
        withUnsafeBytes(of: f) { #expect(Array($0) == Array("azaz@[`{".utf8)) }
    }

    @Test func headerNamesLowerCased() {
        let p = get("/", [("X-ABCDEFGHIJKLMNOPQRSTUVWXYZ-Long-Header-Name", "v"), ("Content-TYPE", "t")])
        var out: [UInt8] = []
        LogSerializer.headers(&out, p.head.headers, redact: false)
        #expect(String(decoding: out, as: UTF8.self) ==
                "{\"host\":\"test\",\"x-abcdefghijklmnopqrstuvwxyz-long-header-name\":\"v\",\"content-type\":\"t\"}")
    }
}
