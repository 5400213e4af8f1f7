import Testing
import GWHTTP

private func str(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

@Test(arguments: [(0, "0"), (7, "7"), (10, "10"), (1234567890, "1234567890"), (-42, "-42"), (Int.max, "\(Int.max)")])
func decimal(_ v: Int, _ s: String) {
    var out: [UInt8] = []
    HTTPWriter.appendDecimal(v, into: &out)
    #expect(str(out) == s)
}

@Test(arguments: [(0, "0"), (9, "9"), (10, "a"), (255, "ff"), (4096, "1000"), (0x7fff_ffff, "7fffffff")])
func hex(_ v: Int, _ s: String) {
    var out: [UInt8] = []
    HTTPWriter.appendHex(v, into: &out)
    #expect(str(out) == s)
}

@Test func statusLineAndHeaders() {
    var out: [UInt8] = []
    HTTPWriter.appendStatusLine(status: 404, into: &out)
    HTTPWriter.appendHeader("Content-Length", 12, into: &out)
    HTTPWriter.appendHeader("X-A", "b", into: &out)
    HTTPWriter.appendEndOfHead(into: &out)
    #expect(str(out) == "HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\nX-A: b\r\n\r\n")
}

@Test func chunkedEncodingRoundTrips() {
    var out: [UInt8] = []
    let enc = ChunkedEncoder()
    let pieces = ["hello", "", String(repeating: "x", count: 300)]
    for p in pieces { Array(p.utf8).withUnsafeBytes { enc.appendChunk($0, into: &out) } }
    enc.appendLastChunk(into: &out)
    #expect(str(out).hasPrefix("5\r\nhello\r\n12c\r\nxxx"))
    #expect(str(out).hasSuffix("x\r\n0\r\n\r\n"))
    // Parse it back as a response body.
    let msg = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8) + out
    let t = transcript(response: [msg])
    #expect(t == ["head 200 OK 1.1 [Transfer-Encoding=chunked] chunked", "body hello" + String(repeating: "x", count: 300), "end"])
}

@Test(arguments: [
    (nil as String?, "application/json; charset=utf-8"),
    ("text/html", "text/html; charset=utf-8"),
    ("application/xml", "application/xml; charset=utf-8"),
    ("text/plain", "text/plain; charset=utf-8"),
    ("text/*", "text/plain; charset=utf-8"),
    ("application/*", "application/json; charset=utf-8"),
    ("*/*", "application/json; charset=utf-8"),
    ("image/png", "application/json; charset=utf-8"),
    ("text/html;q=0.5, application/xml;q=0.9", "application/xml; charset=utf-8"),
    ("text/html, application/xml", "text/html; charset=utf-8"),
    ("text/plain;q=0, text/html;q=0.1", "text/html; charset=utf-8"),
    ("garbage", "application/json; charset=utf-8"),
])
func acceptNegotiation(_ accept: String?, _ mime: String) {
    #expect(KongErrorResponse.responseType(accept: accept) == mime)
}

@Test func kongJSONError() {
    var out: [UInt8] = []
    KongErrorResponse.build(into: &out, status: 404, message: "no Route matched with those values", requestID: "abc",
                            accept: nil, contentType: nil, isHEAD: false, keepAlive: true)
    let body = "{\n  \"message\":\"no Route matched with those values\",\n  \"request_id\":\"abc\"\n}"
    #expect(str(out) == "HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\nConnection: keep-alive\r\nContent-Length: \(body.utf8.count)\r\nServer: kong/3.10.0\r\nX-Kong-Request-Id: abc\r\n\r\n" + body)
}

@Test func kongErrorPageUsesDefaultTypeAndHEAD() {
    var out: [UInt8] = []
    KongErrorResponse.build(into: &out, status: 494, message: "Request header or cookie too large", requestID: "r1",
                            accept: nil, contentType: nil, isHEAD: true, defaultType: "text/plain",
                            serverToken: "kong/3.10.0", keepAlive: false)
    let body = "Request header or cookie too large\nrequest_id: r1\n"
    #expect(str(out) == "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\nServer: kong/3.10.0\r\nX-Kong-Request-Id: r1\r\n\r\n")
}

@Test func kongErrorPageContentTypeFallback() {
    var out: [UInt8] = []
    KongErrorResponse.build(into: &out, status: 502, message: "An invalid response was received from the upstream server",
                            requestID: "x", accept: nil, contentType: "application/xml", isHEAD: false,
                            defaultType: "text/plain", serverToken: nil, keepAlive: true)
    let s = str(out)
    #expect(s.contains("Content-Type: application/xml; charset=utf-8\r\n"))
    #expect(s.hasSuffix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>An invalid response was received from the upstream server</message>\n  <requestid>x</requestid>\n</error>\n"))
    #expect(!s.contains("Server:"))
}

@Test func htmlTemplate() {
    let b = KongErrorResponse.body(mimeType: KongErrorResponse.mimeHTML, message: "Bad request", requestID: "q")
    #expect(b.contains("<p>Bad request.</p>\n    <p>request_id: q</p>"))
}

@Test func hopByHop() {
    var h = HTTPHeaders()
    for (n, v) in [("Host", "h"), ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
                   ("Transfer-Encoding", "chunked"), ("Upgrade", "ws"), ("X-Secret", "1"), ("X-Other", "2"),
                   ("Proxy-Connection", "x"), ("Trailer", "T")] {
        h.append(name: n, value: v)
    }
    var forwarded: [String] = []
    for i in 0..<h.count where !h.isHopByHop(at: i) && !h.isListedInConnection(at: i) { forwarded.append(h.name(at: i)) }
    #expect(forwarded == ["Host", "X-Other"])
}

@Test func limitsFromNginxDirectives() {
    let l = HTTPParserLimits(largeClientHeaderBuffers: 4, size: 8192, clientMaxBodySize: 1 << 20)
    #expect(l.maxRequestLineLength == 8192 && l.maxHeaderLineLength == 8192 && l.maxHeadBytes == 32768)
    #expect(l.maxBodySize == 1 << 20)
}

/// HeadWriter: pieces land in order; a head that does not fit the scratch area is written again after it grows.
@Test func headWriterGrowsAndAppends() {
    let scratch = HeadScratch(capacity: 8)
    var h = HTTPHeaders()
    h.append(name: "Content-Type", value: "text/plain")
    var out: [UInt8] = Array("pre:".utf8)
    var runs = 0
    h.storage.withUnsafeBufferPointer { st in
        scratch.write(appendingTo: &out) { w in
            runs += 1
            w.put("HTTP/1.1 ")
            w.putDecimal(200)
            w.put(0x20)
            w.put(String("OK"))
            w.put("\r\n")
            w.putHeader(st, h.fields[0])
            w.putDecimal(-42)
            w.putRaw(maxBytes: 3) { p in p[0] = 0x41; p[1] = 0x42; return 2 }
            w.put(Array("\r\n".utf8))
        }
    }
    #expect(String(decoding: out, as: UTF8.self) == "pre:HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n-42AB\r\n")
    #expect(runs > 1 && scratch.capacity >= 64)
}

/// putDecimal at every digit count (the count is found by comparisons up to 4 digits, by division past
/// them), and putAgain repeating bytes written earlier in the same head.
@Test func headWriterDecimalsAndRepeats() {
    let scratch = HeadScratch(capacity: 512)
    let values = [0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999, 100000, 123456789, Int.max, -1, -10000, Int.min + 1]
    var out = FlatArray<UInt8>()
    scratch.write(appendingTo: &out) { w in
        for v in values { w.putDecimal(v); w.put(0x2C) }
        let start = w.count
        w.put("127.0.0.1")
        w.put(0x7C)
        w.putAgain(from: start, count: 9)
    }
    let expected = values.map { String($0) + "," }.joined() + "127.0.0.1|127.0.0.1"
    #expect(String(decoding: Array(out), as: UTF8.self) == expected)
}
