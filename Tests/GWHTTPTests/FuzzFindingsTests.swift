// Regression tests for what the libFuzzer targets (Fuzz/, `make fuzz`) found in GWHTTP; each names its target
// and keeps the crashing input (or a minimal form of it).
import Testing
import GWHTTP

/// The error reason of a request or response stream fed in two pieces split at `k` (k = 0: whole).
func errorReason(_ bytes: [UInt8], splitAt k: Int, limits: HTTPParserLimits, request: Bool) -> String {
    let execute: (UnsafeRawBufferPointer) -> HTTPParseStep = request ? HTTPRequestParser(limits: limits).execute
                                                                     : HTTPResponseParser(limits: limits).execute
    var got = ""
    for piece in (k == 0 ? [bytes] : [Array(bytes[..<k]), Array(bytes[k...])]) where got.isEmpty {
        piece.withUnsafeBytes { buf in
            var off = 0
            while true {
                switch execute(UnsafeRawBufferPointer(rebasing: buf[off...])) {
                case .needMore: return
                case .error(let e): got = e.reason; return
                case .head(let c), .informational(let c), .messageComplete(let c), .upgrade(let c): off += c
                case .body(_, let c): off += c
                }
            }
        }
    }
    return got
}

/// fuzz-http-response: a header line that crosses both the line limit and the head limit in one segment
/// reported "header line too long" when fed whole but "header section too large" when split before the line
/// limit was reached. The limit crossed at the earlier byte now wins however the input is split.
@Test func headLimitAndLineLimitInOneSegmentAreSplitIndependent() {
    let input = Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 40) + "\r\n\r\n").utf8)
    // head limit crossed at byte 30, line limit at byte 16 + 21 = 37
    let headFirst = HTTPParserLimits(maxRequestLineLength: 64, maxHeaderLineLength: 20, maxHeadBytes: 30)
    // line limit crossed at byte 37, head limit at byte 40
    let lineFirst = HTTPParserLimits(maxRequestLineLength: 64, maxHeaderLineLength: 20, maxHeadBytes: 40)
    for k in 0 ..< input.count {
        #expect(errorReason(input, splitAt: k, limits: headFirst, request: true) == "header section too large", "split \(k)")
        #expect(errorReason(input, splitAt: k, limits: lineFirst, request: true) == "header line too long", "split \(k)")
    }
}

/// The fuzzer's own input (response parser, small limits): the same verdict whole and split.
@Test func fuzzResponseInputWithLongHeaderLine() {
    let bytes: [UInt8] = Array("HTTP/1.1 101 Swit".utf8) + [0xE5] + Array("hing Protocols\r\nUpgrade: websocket\r\nConnection:".utf8)
        + Array(repeating: 0x26, count: 29) + Array(" Upgr'a".utf8) + Array(repeating: 0xFF, count: 9) + Array("rade: websocket\r".utf8)
    for limits in [HTTPParserLimits(maxRequestLineLength: 40, maxHeaderLineLength: 30, maxHeadBytes: 90),
                   HTTPParserLimits(maxRequestLineLength: 40, maxHeaderLineLength: 50, maxHeadBytes: 70)] {
        let whole = errorReason(bytes, splitAt: 0, limits: limits, request: false)
        #expect(!whole.isEmpty)
        for k in 1 ..< bytes.count {
            #expect(errorReason(bytes, splitAt: k, limits: limits, request: false) == whole, "split at \(k)")
        }
    }
}

/// Differential check against strict llhttp (Fuzz/differential.sh): non-strict llhttp 8.1 skips any two bytes
/// after a chunk's data and any byte after a chunk-size line's CR, so "helloXX" framed as one 5-byte chunk and
/// the relayed raw body meant something else to a strict upstream. Refused now, however the input is split.
@Test func chunkFramingLineEndsAreChecked() {
    let head = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    let bad = [
        (head + "5\r\nhelloXX0\r\n\r\n", "Expected CRLF after chunk"),
        (head + "5\r\nhello\rX0\r\n\r\n", "Expected CRLF after chunk"),
        (head + "5\rXhello\r\n0\r\n\r\n", "Expected LF after chunk size"),
        (head + "3;ext=1\r\nntinabc\r\n0\r\n\r\n", "Expected CRLF after chunk"),   // the fuzz corpus input
        // the CR ending the trailer section followed by another byte: llhttp ended the message there
        (head + "0\r\n\r;GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n", "Expected LF after headers"),
        (head + "0\r\nT: 1\rX\r\n\r\n", "Missing expected LF after header value"),   // llhttp checks this one
    ]
    for (text, reason) in bad {
        let bytes = Array(text.utf8)
        for k in 0 ..< bytes.count {
            #expect(errorReason(bytes, splitAt: k, limits: HTTPParserLimits(), request: true) == reason, "split \(k): \(text.debugDescription)")
        }
    }
    // well-framed bodies still pass, extensions and trailers included, and pipelining after them
    let good = head + "5;a=b\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
    for r in allSplits(good, { transcript(request: $0) }) {
        #expect(r.contains("body hello0123456789abcdef") && r.filter { $0 == "end" }.count == 2, "\(r)")
    }
    // responses: the same check (the proxy relays chunked responses raw too)
    let resp = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXY0\r\n\r\n".utf8)
    #expect(errorReason(resp, splitAt: 0, limits: HTTPParserLimits(), request: false) == "Expected CRLF after chunk")
    // a chunked response to HEAD has no body: the next response is not scanned as framing
    let p = HTTPResponseParser()
    p.expectResponse(to: .head)
    let two = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".utf8)
    var events: [String] = []
    two.withUnsafeBytes { buf in
        var off = 0
        while true {
            switch p.execute(UnsafeRawBufferPointer(rebasing: buf[off...])) {
            case .needMore: return
            case .error(let e): events.append("error \(e.reason)"); return
            case .head(let c): events.append("head \(p.head.status)"); off += c
            case .messageComplete(let c): events.append("end"); off += c; p.expectResponse(to: .get)
            case .informational(let c), .upgrade(let c), .body(_, let c): off += c
            }
        }
    }
    #expect(events == ["head 200", "end", "head 204", "end"], "\(events)")
}

/// fuzz-http-request (after 7.3 million executions): a chunk size near 2^64 ("FFFFFFFFFFFFFFFF", valid to llhttp)
/// after some body bytes overflowed `bodyBytes + size` in the client_max_body_size check and trapped: any
/// client could crash a worker when client_max_body_size is set, and the master through the Admin API (whose
/// server always sets a body limit). Now a 413.
@Test func hugeChunkSizeWithBodyLimitIsTooLarge() {
    let limits = HTTPParserLimits(maxBodySize: 1024)
    for text in ["POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nFFFFFFFFFFFFFFFF\r\n",
                 "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n"] {
        let bytes = Array(text.utf8)
        for k in [0, bytes.count / 2, bytes.count - 3] {
            #expect(errorReason(bytes, splitAt: k, limits: limits, request: true) == "client intended to send too large chunked body")
        }
    }
    // the fuzzer's input (4 control bytes dropped): refused, no trap
    let crash: [UInt8] = Array("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nheltler".utf8)
        + Array(repeating: 0x46, count: 18) + Array("\r\nContenLgt-fteh:ed\r\n\r\nHost: h\r\nF\u{02}\u{03}PFF".utf8)
    #expect(!errorReason(crash, splitAt: 0, limits: HTTPParserLimits(maxBodySize: 16), request: true).isEmpty)
}

/// fuzz-http-request (CI smoke of 2026-12-07): a request-target with an HTAB (which llhttp 8.1 lets through)
/// and, later, a control byte llhttp refuses. Whole, llhttp stopped at the later byte before calling back
/// with the target ("Invalid char in url path"); split before it, the URL callback saw the HTAB first
/// ("invalid character in request-target"). The request line is now checked by the raw head scan, over the
/// bytes llhttp got through, so the first bad byte wins however the input is split.
@Test func controlCharactersInTheTargetAreSplitIndependent() {
    let input = Array("GET http://example.c/exampl\tAe.com:808\u{10}\0\0\00/x y HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
    for k in 0 ..< input.count {
        #expect(errorReason(input, splitAt: k, limits: HTTPParserLimits(), request: true)
                == "invalid character in request-target", "split \(k)")
    }
    // A control byte llhttp refuses with nothing before it is still refused (llhttp's reason or ours).
    let dle = Array("GET /a\u{10}b HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
    for k in 0 ..< dle.count {
        #expect(errorReason(dle, splitAt: k, limits: HTTPParserLimits(), request: true)
                == errorReason(dle, splitAt: 0, limits: HTTPParserLimits(), request: true), "split \(k)")
    }
}
