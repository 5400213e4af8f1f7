// Request-line rules of issue #13: method tokens llhttp 8.1 does not know (defect 10) and control
// characters or whitespace inside the request-target (defect 8), under every split of the input.
import Testing
import GWHTTP

let requestLineCases: [RequestCase] = [
    RequestCase(name: "QUERY (unknown to llhttp) with a body",
                input: "QUERY /q?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
                expected: ["head QUERY /q?a=1 1.1 [Host=h] [Content-Length=3] cl=3", "body abc", "end"]),
    RequestCase(name: "PURGE and PROPFIND (known to llhttp)",
                input: "PURGE /p HTTP/1.1\r\nHost: h\r\n\r\nPROPFIND /d HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["head PURGE /p 1.1 [Host=h]", "end", "head PROPFIND /d 1.1 [Host=h]", "end"]),
    RequestCase(name: "prefix of a known method, then an unknown token, pipelined after GET",
                input: "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGETX /2 HTTP/1.1\r\nHost: h\r\n\r\nPURGE_ALL /3 HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["head GET /1 1.1 [Host=h]", "end", "head GETX /2 1.1 [Host=h]", "end",
                           "head PURGE_ALL /3 1.1 [Host=h]", "end"]),
    RequestCase(name: "empty lines before an unknown method",
                input: "\r\n\r\nMY-METHOD / HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["head MY-METHOD / 1.1 [Host=h]", "end"]),
    RequestCase(name: "lowercase method (outside nginx's A-Z _ -)", input: "get / HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "method with a dot", input: "FOO.BAR / HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "unknown method followed by HTAB", input: "QUERY\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["error 400"]),
    RequestCase(name: "unknown method, request line too long",
                input: "QUERY" + String(repeating: "Y", count: 80) + " / HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["error 414"], limits: HTTPParserLimits(maxRequestLineLength: 64)),
    RequestCase(name: "HTAB inside the target", input: "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "FF inside the target", input: "GET /a\u{0C}b HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "VT inside the query", input: "GET /a?x=\u{0B} HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "DEL inside the target", input: "GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "HTAB inside the target of an unknown method",
                input: "QUERY /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", expected: ["error 400"]),
    RequestCase(name: "percent-encoded tab is fine", input: "GET /a%09b HTTP/1.1\r\nHost: h\r\n\r\n",
                expected: ["head GET /a%09b 1.1 [Host=h]", "end"]),
]

@Test(arguments: requestLineCases)
func requestLineParsing(_ c: RequestCase) {
    let results = allSplits(c.input) { transcript(request: $0, limits: c.limits) }
    #expect(results.count == 1, "split-dependent results: \(results)")
    #expect(results.first == c.expected)
}

@Test func unknownMethodToken() {
    let p = HTTPRequestParser()
    let input = Array("QUERY /q HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
    let step = input.withUnsafeBytes { p.execute($0) }
    guard case .head = step else { Issue.record("no head: \(step)"); return }
    #expect(p.head.method == .other(HTTPMethod.tokenCode))
    #expect(p.head.methodName == "QUERY")
    #expect(p.head.targetString == "/q")
}

@Test func underscoreNamesDroppedWhenAsked() {
    var limits = HTTPParserLimits()
    let input = "GET / HTTP/1.1\r\nHost: h\r\nX_A: 1\r\nTransfer_Encoding: chunked\r\nX-B: 2\r\n\r\n"
    #expect(allSplits(input) { transcript(request: $0, limits: limits) }
            == [["head GET / 1.1 [Host=h] [X_A=1] [Transfer_Encoding=chunked] [X-B=2]", "end"]])
    limits.dropUnderscoreNames = true
    #expect(allSplits(input) { transcript(request: $0, limits: limits) } == [["head GET / 1.1 [Host=h] [X-B=2]", "end"]])
}
