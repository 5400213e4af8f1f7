// Regression tests for what the libFuzzer targets (Fuzz/, `make fuzz`) found in GWHTTP; each names its target
// and keeps the crashing input (or a minimal form of it).
import Testing
import GWHTTP

/// fuzz-http-response: a header line that crosses both the line limit and the head limit in one segment
/// reported "header line too long" when fed whole but "header section too large" when split before the line
/// limit was reached. The limit crossed at the earlier byte now wins however the input is split.
@Test func headLimitAndLineLimitInOneSegmentAreSplitIndependent() {
    let limits = HTTPParserLimits(maxRequestLineLength: 64, maxHeaderLineLength: 20, maxHeadBytes: 30)
    // head limit crossed at byte 30, line limit at byte 16 + 21 = 37
    let input = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 40) + "\r\n\r\n"
    let results = allSplits(input) { transcript(request: $0, limits: limits) }
    #expect(results.count == 1, "\(results)")
    #expect(results.first?.last?.contains("header section too large") == true, "\(results)")
    // line limit first: line limit crossed at byte 16 + 21 = 37, head limit at 40
    let lineFirst = HTTPParserLimits(maxRequestLineLength: 64, maxHeaderLineLength: 20, maxHeadBytes: 40)
    let r2 = allSplits(input) { transcript(request: $0, limits: lineFirst) }
    #expect(r2.count == 1, "\(r2)")
    #expect(r2.first?.last?.contains("header line too long") == true, "\(r2)")
}

/// The fuzzer's own input (response parser, small limits): the same verdict whole and split.
@Test func fuzzResponseInputWithLongHeaderLine() {
    let bytes: [UInt8] = Array("HTTP/1.1 101 Swit".utf8) + [0xE5] + Array("hing Protocols\r\nUpgrade: websocket\r\nConnection:".utf8)
        + Array(repeating: 0x26, count: 29) + Array(" Upgr'a".utf8) + Array(repeating: 0xFF, count: 9) + Array("rade: websocket\r".utf8)
    for limits in [HTTPParserLimits(maxRequestLineLength: 40, maxHeaderLineLength: 30, maxHeadBytes: 90),
                   HTTPParserLimits(maxRequestLineLength: 40, maxHeaderLineLength: 50, maxHeadBytes: 70)] {
        let p = HTTPResponseParser(limits: limits)
        var whole = ""
        bytes.withUnsafeBytes { if case .error(let e) = p.execute($0) { whole = e.reason } }
        for k in 1 ..< bytes.count {
            let q = HTTPResponseParser(limits: limits)
            var got = ""
            for piece in [Array(bytes[..<k]), Array(bytes[k...])] where got.isEmpty {
                piece.withUnsafeBytes { buf in
                    var off = 0
                    while true {
                        let step = q.execute(UnsafeRawBufferPointer(rebasing: buf[off...]))
                        switch step {
                        case .needMore: return
                        case .error(let e): got = e.reason; return
                        case .head(let c), .informational(let c), .messageComplete(let c), .upgrade(let c): off += c
                        case .body(_, let c): off += c
                        }
                    }
                }
            }
            #expect(got == whole, "split at \(k): \(got) vs \(whole)")
        }
    }
}
