import Testing
import GWHTTP

struct RequestCase: Sendable, CustomStringConvertible {
    var name: String
    var input: String
    var expected: [String]
    var limits = HTTPParserLimits()
    var description: String { name }
}

let requestCases: [RequestCase] = [
    RequestCase(name: "simple GET", input: "GET /a/b?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
                expected: ["head GET /a/b?x=1 1.1 [Host=example.test]", "end"]),
    RequestCase(name: "POST with content-length",
                input: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
                expected: ["head POST /p 1.1 [Host=h] [Content-Length=5] cl=5", "body hello", "end"]),
    RequestCase(name: "chunked with extensions and trailers",
                input: "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"v\"\r\nhello\r\n6;e\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                expected: ["head POST /c 1.1 [Host=h] [Transfer-Encoding=chunked] chunked", "body hello world", "end"]),
    RequestCase(name: "pipelined",
                input: "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                expected: ["head GET /1 1.1 [Host=h]", "end", "head POST /2 1.1 [Host=h] [Content-Length=2] cl=2",
                           "body ok", "end", "head GET /3 1.1 [Host=h] [Connection=close] close", "end"]),
    RequestCase(name: "HTTP/1.0 without host, not keep-alive", input: "GET / HTTP/1.0\r\n\r\n",
                expected: ["head GET / 1.0 close", "end"]),
    RequestCase(name: "HTTP/1.0 keep-alive", input: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                expected: ["head GET / 1.0 [Connection=keep-alive]", "end"]),
    RequestCase(name: "trailing OWS trimmed, tabs kept inside",
                input: "GET / HTTP/1.1\r\nHost: h\r\nX-A:  a\tb  \r\n\r\n",
                expected: ["head GET / 1.1 [Host=h] [X-A=a\tb]", "end"]),
    RequestCase(name: "empty header value", input: "GET / HTTP/1.1\r\nHost: h\r\nX-E:\r\n\r\n",
                expected: ["head GET / 1.1 [Host=h] [X-E=]", "end"]),
    RequestCase(name: "expect 100-continue",
                input: "PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx",
                expected: ["head PUT /u 1.1 [Host=h] [Expect=100-Continue] [Content-Length=1] cl=1 expect", "body x", "end"]),
    RequestCase(name: "websocket upgrade",
                input: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nTUNNEL",
                expected: ["head GET /ws 1.1 [Host=h] [Connection=Upgrade] [Upgrade=websocket] upgrade",
                           "upgrade rest=TUNNEL"]),
    RequestCase(name: "leading CRLF before request line tolerated", input: "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["head GET / 1.1 [Host=h]", "end"]),
    RequestCase(name: "header value with obs-text", input: "GET / HTTP/1.1\r\nHost: h\r\nX: caf\u{e9}\r\n\r\n",
                expected: ["head GET / 1.1 [Host=h] [X=caf\u{e9}]", "end"]),
    // --- smuggling defences ---
    RequestCase(name: "CL + TE", input: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "TE + CL", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "two different CL", input: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                expected: ["error 400"]),
    RequestCase(name: "two identical CL", input: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
                expected: ["error 400"]),
    RequestCase(name: "CL list", input: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
                expected: ["error 400"]),
    RequestCase(name: "negative CL", input: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "invalid chunk size", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                expected: ["head POST / 1.1 [Host=h] [Transfer-Encoding=chunked] chunked", "error 400"]),
    RequestCase(name: "chunk size overflow", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
                expected: ["head POST / 1.1 [Host=h] [Transfer-Encoding=chunked] chunked", "error 400"]),
    RequestCase(name: "chunk data not followed by CRLF", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                expected: ["head POST / 1.1 [Host=h] [Transfer-Encoding=chunked] chunked", "body abc", "error 400"]),
    RequestCase(name: "TE gzip", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc",
                expected: ["error 501"]),
    RequestCase(name: "TE gzip, chunked (chunked last)", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                expected: ["error 501"]),
    RequestCase(name: "TE chunked, gzip", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc",
                expected: ["error 501"]),
    RequestCase(name: "duplicate TE", input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "TE on HTTP/1.0", input: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "obs-fold", input: "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n  c\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "obs-fold after empty value", input: "GET / HTTP/1.1\r\nHost: h\r\nX-A:\r\n c\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "whitespace before first header", input: "GET / HTTP/1.1\r\n Host: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "bare CR in value", input: "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\rc\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "bare CR ending line", input: "GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "bare LF header lines", input: "GET / HTTP/1.1\nHost: h\nX-A: b\n\n", expected: ["error 400"]),
    RequestCase(name: "NUL in header value", input: "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\u{0}c\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "control char in header value", input: "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\u{1}c\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "space before colon", input: "GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "empty header name", input: "GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "invalid header name char", input: "GET / HTTP/1.1\r\nHost: h\r\nX(A): b\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "invalid method", input: "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "lowercase method", input: "get / HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "bad protocol name", input: "GET / HTTX/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "space in target", input: "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "HTTP/2.0", input: "GET / HTTP/2.0\r\nHost: h\r\n\r\n", expected: ["error 505"]),
    RequestCase(name: "HTTP/1.2", input: "GET / HTTP/1.2\r\nHost: h\r\n\r\n", expected: ["error 505"]),
    RequestCase(name: "HTTP/0.9", input: "GET / HTTP/0.9\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "HTTP/1.1 without Host", input: "GET / HTTP/1.1\r\nX: y\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "duplicate Host", input: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "empty Host", input: "GET / HTTP/1.1\r\nHost:\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "Host with slash", input: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "Host with double dot", input: "GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "Host IPv6 with port", input: "GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n",
                expected: ["head GET / 1.1 [Host=[::1]:8000]", "end"]),
    RequestCase(name: "Host with trailing dot", input: "GET / HTTP/1.1\r\nHost: a.test.\r\n\r\n",
                expected: ["head GET / 1.1 [Host=a.test.]", "end"]),
    // --- limits ---
    RequestCase(name: "URI too long", input: "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["error 414"], limits: HTTPParserLimits(maxRequestLineLength: 64)),
    RequestCase(name: "header line too long", input: "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 100) + "\r\n\r\n",
                expected: ["error 400"], limits: HTTPParserLimits(maxHeaderLineLength: 64)),
    RequestCase(name: "head too large", input: "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-Y: zzzzzzzz\r\n", count: 20) + "\r\n",
                expected: ["error 400"], limits: HTTPParserLimits(maxHeadBytes: 200)),
    RequestCase(name: "too many headers", input: "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                expected: ["error 400"], limits: HTTPParserLimits(maxHeaderCount: 3)),
    RequestCase(name: "header count at limit", input: "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n",
                expected: ["head GET / 1.1 [Host=h] [A=1] [B=2]", "end"], limits: HTTPParserLimits(maxHeaderCount: 3)),
    RequestCase(name: "CL over client_max_body_size", input: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
                expected: ["error 413"], limits: HTTPParserLimits(maxBodySize: 10)),
    RequestCase(name: "CL at client_max_body_size", input: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhelloworld",
                expected: ["head POST / 1.1 [Host=h] [Content-Length=10] cl=10", "body helloworld", "end"],
                limits: HTTPParserLimits(maxBodySize: 10)),
    RequestCase(name: "chunked over client_max_body_size",
                input: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
                expected: ["head POST / 1.1 [Host=h] [Transfer-Encoding=chunked] chunked", "body hello ", "error 413"],
                limits: HTTPParserLimits(maxBodySize: 10)),
]

@Test(arguments: requestCases)
func requestParsing(_ c: RequestCase) {
    let results = allSplits(c.input) { transcript(request: $0, limits: c.limits) }
    #expect(results.count == 1, "split-dependent results: \(results)")
    #expect(results.first == c.expected)
}

@Test func headAccessors() {
    let p = HTTPRequestParser()
    let input = Array("GET /a%20b/c?q=1&r HTTP/1.1\r\nHOST: Example.test:8000\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n".utf8)
    let step = input.withUnsafeBytes { p.execute($0) }
    guard case .head(let consumed) = step else { Issue.record("expected head, got \(step)"); return }
    #expect(consumed == input.count)
    let h = p.head
    #expect(h.method == .get)
    #expect(h.path == "/a%20b/c")
    #expect(h.query == "q=1&r")
    #expect(h.host == "Example.test:8000")
    #expect(h.connectionHasToken("upgrade"))
    #expect(h.connectionHasToken("KEEP-ALIVE"))
    #expect(!h.connectionHasToken("close"))
    #expect(h.headers.values("X-MULTI") == ["1", "2"])
    #expect(h.isUpgrade)
    #expect(h.keepAlive)
    #expect(h.upgradeValue == "h2c")
}

@Test func queryEmptyAndAbsent() {
    let p = HTTPRequestParser()
    _ = Array("GET /foo? HTTP/1.1\r\nHost: h\r\n\r\n".utf8).withUnsafeBytes { p.execute($0) }
    #expect(p.head.query == "")
    #expect(p.head.path == "/foo")
    let p2 = HTTPRequestParser()
    _ = Array("GET /foo HTTP/1.1\r\nHost: h\r\n\r\n".utf8).withUnsafeBytes { p2.execute($0) }
    #expect(p2.head.query == nil)
}

@Test func errorIsSticky() {
    let p = HTTPRequestParser()
    let s1 = Array("BAD\0 / HTTP/1.1\r\n".utf8).withUnsafeBytes { p.execute($0) }
    guard case .error(let e) = s1 else { Issue.record("expected error"); return }
    #expect(e.status == 400)
    #expect(e.kongMessage == "Bad request")
    let s2 = Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8).withUnsafeBytes { p.execute($0) }
    guard case .error = s2 else { Issue.record("expected sticky error"); return }
    p.reset()
    let s3 = Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8).withUnsafeBytes { p.execute($0) }
    guard case .head = s3 else { Issue.record("expected head after reset, got \(s3)"); return }
}

@Test func headerTooLargeMapsTo494And400() {
    let e = HTTPParseError(.headerTooLarge, "x")
    #expect(e.status == 400 && e.nginxStatus == 494)
    #expect(e.kongMessage == "Request header or cookie too large")
}

@Test func requestEOFMidMessage() {
    let p = HTTPRequestParser()
    _ = Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab".utf8).withUnsafeBytes { b -> Void in
        var off = 0
        while true {
            let s = p.execute(UnsafeRawBufferPointer(rebasing: b[off...]))
            switch s {
            case .head(let c), .body(_, let c): off += c
            default: return
            }
        }
    }
    #expect(p.finish() == .truncated)
    let p2 = HTTPRequestParser()
    #expect(p2.finish() == .clean)
}

@Test func connectIsUpgrade() {
    let r = transcript(request: [Array("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\nTLSDATA".utf8)])
    #expect(r == ["head CONNECT example.test:443 1.1 [Host=example.test:443] upgrade", "upgrade rest=TLSDATA"])
}

@Test func absoluteFormTarget() {
    let p = HTTPRequestParser()
    _ = Array("GET http://example.test:8080/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n".utf8).withUnsafeBytes { p.execute($0) }
    #expect(p.head.path == "/a/b")
    #expect(p.head.query == "c=d")
    #expect(p.head.targetAuthority == "example.test:8080")
    let p2 = HTTPRequestParser()
    _ = Array("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n".utf8).withUnsafeBytes { p2.execute($0) }
    #expect(p2.head.path == "*")
    #expect(p2.head.targetAuthority == nil)
}

@Test func refusedUpgradeResumesHTTP() {
    let p = HTTPRequestParser()
    let bytes = Array("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
    var log: [String] = []
    bytes.withUnsafeBytes { b in
        var off = 0
        while true {
            switch p.execute(UnsafeRawBufferPointer(rebasing: b[off...])) {
            case .needMore: return
            case .head(let c): log.append("head \(p.head.path)"); off += c
            case .upgrade(let c): log.append("upgrade"); off += c; p.resumeAfterRefusedUpgrade()
            case .messageComplete(let c): log.append("end"); off += c
            case .body(_, let c), .informational(let c): off += c
            case .error(let e): log.append("error \(e)"); return
            }
        }
    }
    #expect(log == ["head /ws", "upgrade", "head /next", "end"])
}

/// Header names accept exactly RFC 9110 tchar bytes (the parser checks them with bit masks).
@Test func headerNameTokenBytes() {
    let tchar = Set(Array("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8))
    for b in 0 ... 255 where b != 0x3A {   // ':' ends the name
        let p = HTTPRequestParser()
        let raw = Array("GET / HTTP/1.1\r\nHost: h\r\nX".utf8) + [UInt8(b)] + Array("Y: v\r\n\r\n".utf8)
        let step = raw.withUnsafeBytes { p.execute($0) }
        var ok = false
        if case .head = step { ok = true }
        #expect(ok == tchar.contains(UInt8(b)), "byte \(b)")
    }
}
