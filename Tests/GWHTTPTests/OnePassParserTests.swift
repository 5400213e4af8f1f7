// The one-pass head reader (HTTPParserCore+OnePass.swift) against the llhttp path: every input is parsed
// with the one-pass reader allowed and with it off, and the transcripts (heads, bodies, ends, errors, EOF
// verdicts) must be equal; the common messages must actually take the one-pass way.
import Testing
@testable import GWHTTP

private func requestTranscript(_ chunks: [[UInt8]], onePass: Bool,
                               limits: HTTPParserLimits = HTTPParserLimits()) -> [String] {
    let p = HTTPRequestParser(limits: limits)
    p.core.allowOnePass = onePass
    return drive(chunks, execute: p.execute, head: { describe(p.head, request: true) },
                 eof: { "eof:\(p.finish())" })
}

private func responseTranscript(_ chunks: [[UInt8]], onePass: Bool, method: HTTPMethod = .get) -> [String] {
    let p = HTTPResponseParser()
    p.core.allowOnePass = onePass
    p.expectResponse(to: method)
    return drive(chunks, execute: p.execute, head: { describe(p.head, request: false) },
                 eof: { "eof:\(p.finish()) needsEOF:\(p.needsEOF)" })
}

private func sameBothWays(request s: [UInt8], limits: HTTPParserLimits = HTTPParserLimits(),
                          _ note: String = "") {
    let a = requestTranscript([s], onePass: true, limits: limits)
    let b = requestTranscript([s], onePass: false, limits: limits)
    #expect(a == b, "\(note) \(String(decoding: s, as: UTF8.self).debugDescription)")
}

private func sameBothWays(response s: [UInt8], method: HTTPMethod = .get, _ note: String = "") {
    let a = responseTranscript([s], onePass: true, method: method)
    let b = responseTranscript([s], onePass: false, method: method)
    #expect(a == b, "\(note) \(String(decoding: s, as: UTF8.self).debugDescription)")
}

/// Whether the parser reads this (whole) message in one pass: the state after its head.
private func takesOnePass(request s: String) -> Bool {
    let p = HTTPRequestParser()
    return Array(s.utf8).withUnsafeBytes { b in
        guard case .head = p.execute(b) else { return false }
        return p.core.onePass != .idle
    }
}

private func takesOnePass(response s: String) -> Bool {
    let p = HTTPResponseParser()
    p.expectResponse(to: .get)
    return Array(s.utf8).withUnsafeBytes { b in
        guard case .head = p.execute(b) else { return false }
        return p.core.onePass != .idle
    }
}

@Test func commonMessagesTakeOnePass() {
    #expect(takesOnePass(request: "GET /small HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"))
    #expect(takesOnePass(request: "POST /p?a=b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nUser-Agent: x/1\r\n\r\nabc"))
    #expect(takesOnePass(request: "GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n"))
    #expect(takesOnePass(response: "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 6\r\n"
                         + "Connection: keep-alive\r\nETag: \"6550b4f8-6\"\r\n\r\nhello\n"))
    // the llhttp way
    #expect(!takesOnePass(request: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    #expect(!takesOnePass(request: "GET / HTTP/1.0\r\nHost: h\r\n\r\n"))
    #expect(!takesOnePass(request: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
    #expect(!takesOnePass(request: "QUERY / HTTP/1.1\r\nHost: h\r\n\r\n"))
    #expect(!takesOnePass(request: "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"))
    #expect(!takesOnePass(request: "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"))
    #expect(!takesOnePass(response: "HTTP/1.1 204 No Content\r\n\r\n"))
    #expect(!takesOnePass(response: "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil close"))
}

/// Each template with its \u{1} marks: for every mark, the 256 inputs with that mark replaced by a byte value
/// and the other marks removed.
private func everyByteAtEveryMark(_ templates: [String], _ check: ([UInt8], String) -> Void) {
    for t in templates {
        let bytes = Array(t.utf8)
        for (i, c) in bytes.enumerated() where c == 1 {
            for b in 0 ... 255 {
                var m = bytes
                m[i] = UInt8(b)
                m.removeAll { $0 == 1 }
                check(m, "byte \(b) at \(i)")
            }
        }
    }
}

/// Every byte value at every place of a request and a response: same transcript both ways.
@Test func everyByteEverywhereMatchesLLHTTP() {
    let requests = [
        "GET /a\u{1}b?c\u{1}d HTTP/1.1\r\nHost: h\r\nX-A: v\u{1}w\r\n\r\n",
        "GET /ab HTTP/1.1\r\nHost: h\r\nX\u{1}A: vw\r\n\r\n",
        "GET /ab HTTP/1.1\r\nHost: h\r\nX-A: \u{1}vw\u{1}\r\n\r\n",
        "POST /ab HTTP/1.1\r\nHost: h\r\nContent-Length: 1\u{1}\r\n\r\nxx",
        "GET /ab HTTP/1.1\r\nHost: h\u{1}\r\nConnection: keep-alive\u{1}\r\n\r\n",
        "GET /ab HTTP/1.\u{1}\r\nHost: h\r\n\r\n",
        // every lane of the eight-byte steps over names and values
        "GET /ab HTTP/1.1\r\nHost: h\r\nX-Ab\u{1}cdefg\u{1}hijk\u{1}lmn\u{1}opq\u{1}rstu\u{1}vw\u{1}xyz\u{1}: v\r\n\r\n",
        "GET /ab HTTP/1.1\r\nHost: h\r\nX-A: 0\u{1}12345\u{1}6789ab\u{1}cdefg\u{1}hijk\u{1}lmn\u{1}op\u{1}q\u{1}r\u{1}\r\n\r\n",
    ]
    everyByteAtEveryMark(requests) { sameBothWays(request: $0, $1) }
    let responses = [
        "HTTP/1.1 200 O\u{1}K\r\nContent-Length: 2\r\nX-A: v\u{1}w\r\n\r\nok",
        "HTTP/1.1 2\u{1}0 OK\r\nContent\u{1}-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.\u{1} 200 OK\r\nContent-Length: \u{1}2\r\nConnection: keep-alive\u{1}\r\n\r\nok",
    ]
    everyByteAtEveryMark(responses) { sameBothWays(response: $0, $1) }
}

/// Pipelines mixing one-pass and llhttp messages, closing messages, limits, EOF inside bodies.
@Test func sequencesMatchLLHTTP() {
    let requests = [
        "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "3\r\nabc\r\n0\r\n\r\nPOST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody",
        "POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nshort",
        "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a..b\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nX-Empty:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n",
        "GET / HTTP/1.1\nHost: h\n\n",
        "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nProxy-Connection: close\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nA_B: c\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
    ]
    let small = HTTPParserLimits(maxRequestLineLength: 24, maxHeaderLineLength: 20, maxHeadBytes: 64,
                                 maxHeaderCount: 3, maxBodySize: 3)
    var dropping = HTTPParserLimits()
    dropping.dropUnderscoreNames = true
    for r in requests {
        sameBothWays(request: Array(r.utf8))
        sameBothWays(request: Array(r.utf8), limits: small, "small limits")
        sameBothWays(request: Array(r.utf8), limits: dropping, "underscores dropped")
    }
    // limits around their edges
    for extra in 0 ..< 40 {
        let r = "GET /" + String(repeating: "a", count: extra) + " HTTP/1.1\r\nHost: h\r\nX-L: "
            + String(repeating: "b", count: extra) + "\r\n\r\n"
        sameBothWays(request: Array(r.utf8), limits: small, "edge \(extra)")
    }
    let responses = [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
        "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nraw",
    ]
    for r in responses {
        sameBothWays(response: Array(r.utf8))
        sameBothWays(response: Array(r.utf8), method: .head, "HEAD")
    }
}

/// Random mutations of the common messages (the fuzz targets do the same at length).
@Test func mutatedMessagesMatchLLHTTP() {
    var rng = XorShift(state: 0x0123_4567_89AB_CDEF)
    let reqSeeds = ["GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
                    "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nbody"]
    let respSeeds = ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nokHTTP/1.1 404 NF\r\nContent-Length: 0\r\n\r\n"]
    let pool: [UInt8] = [0x0D, 0x0A, 0x20, 0x09, 0x00, 0x3A, 0x2C, 0x30, 0x39, 0x7F, 0x80, 0xFF, 0x23, 0x3F, 0x2F, 0x5F]
    for round in 0 ..< 2000 {
        let isReq = round % 3 != 2
        let seed = isReq ? reqSeeds[round % 2] : respSeeds[0]
        var bytes = Array(seed.utf8)
        for _ in 0 ..< 1 + Int(rng.next() % 3) {
            let i = Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 3 {
            case 0: bytes[i] = pool[Int(rng.next() % UInt64(pool.count))]
            case 1: bytes.insert(pool[Int(rng.next() % UInt64(pool.count))], at: i)
            default: if bytes.count > 1 { bytes.remove(at: i) }
            }
        }
        if isReq { sameBothWays(request: bytes, "round \(round)") } else { sameBothWays(response: bytes, "round \(round)") }
    }
}
