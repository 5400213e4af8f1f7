import Testing
import GWHTTP

struct ResponseCase: Sendable, CustomStringConvertible {
    var name: String
    var input: String
    var method: HTTPMethod = .get
    var eof = false
    var expected: [String]
    var description: String { name }
}

let responseCases: [ResponseCase] = [
    ResponseCase(name: "content-length", input: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: up\r\n\r\nhello",
                 expected: ["head 200 OK 1.1 [Content-Length=5] [Server=up] cl=5", "body hello", "end"]),
    ResponseCase(name: "chunked", input: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n3;x=y\r\n!!!\r\n0\r\n\r\n",
                 expected: ["head 200 OK 1.1 [Transfer-Encoding=chunked] chunked", "body hi!!!", "end"]),
    ResponseCase(name: "read until close", input: "HTTP/1.1 200 OK\r\nX: y\r\n\r\nstream", eof: true,
                 expected: ["head 200 OK 1.1 [X=y] close", "body stream", "eof:messageComplete"]),
    ResponseCase(name: "HTTP/1.0 close-delimited", input: "HTTP/1.0 200 OK\r\n\r\nold", eof: true,
                 expected: ["head 200 OK 1.0 close", "body old", "eof:messageComplete"]),
    ResponseCase(name: "HEAD response with content-length has no body", input: "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
                 method: .head, expected: ["head 200 OK 1.1 [Content-Length=50] cl=50", "end"]),
    ResponseCase(name: "HEAD response chunked has no body", input: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                 method: .head, expected: ["head 200 OK 1.1 [Transfer-Encoding=chunked] chunked", "end"]),
    ResponseCase(name: "204 ignores content-length", input: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                 expected: ["head 204 No Content 1.1 [Content-Length=5]", "end"]),
    ResponseCase(name: "304 no body", input: "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
                 expected: ["head 304 Not Modified 1.1 [ETag=x]", "end"]),
    ResponseCase(name: "100 continue then 200",
                 input: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                 expected: ["info head 100 Continue 1.1", "head 200 OK 1.1 [Content-Length=2] cl=2", "body ok", "end"]),
    ResponseCase(name: "103 early hints then 204",
                 input: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                 expected: ["info head 103 Early Hints 1.1 [Link=</s.css>]", "head 204 No Content 1.1", "end"]),
    ResponseCase(name: "101 switching protocols",
                 input: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nFRAMES",
                 expected: ["head 101 Switching Protocols 1.1 [Connection=Upgrade] [Upgrade=websocket] upgrade",
                            "upgrade rest=FRAMES"]),
    ResponseCase(name: "keep-alive sequence", input: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                 expected: ["head 200 OK 1.1 [Content-Length=1] cl=1", "body a", "end",
                            "head 404 Not Found 1.1 [Content-Length=0] cl=0", "end"]),
    ResponseCase(name: "empty reason", input: "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
                 expected: ["head 200  1.1 [Content-Length=0] cl=0", "end"]),
    ResponseCase(name: "invalid status line", input: "HTTP/1.1 2x0 OK\r\n\r\n", expected: ["error 502"]),
    ResponseCase(name: "not HTTP", input: "SSH-2.0-OpenSSH\r\n\r\n", expected: ["error 502"]),
    ResponseCase(name: "CL + TE in response", input: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 expected: ["error 502"]),
    ResponseCase(name: "obs-fold in response", input: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
                 expected: ["error 502"]),
    ResponseCase(name: "truncated content-length body", input: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", eof: true,
                 expected: ["head 200 OK 1.1 [Content-Length=5] cl=5", "body hel", "eof:truncated"]),
    ResponseCase(name: "truncated head", input: "HTTP/1.1 200 OK\r\nContent-Le", eof: true, expected: ["eof:truncated"]),
    ResponseCase(name: "clean close between responses", input: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", eof: true,
                 expected: ["head 200 OK 1.1 [Content-Length=0] cl=0", "end", "eof:clean"]),
]

@Test(arguments: responseCases)
func responseParsing(_ c: ResponseCase) {
    let results = allSplits(c.input) { transcript(response: $0, method: c.method, eof: c.eof) }
    #expect(results.count == 1, "split-dependent results: \(results)")
    #expect(results.first == c.expected)
}

@Test func headThenGetOnSameConnection() {
    let p = HTTPResponseParser()
    var log: [String] = []
    func feed(_ s: String) {
        let bytes = Array(s.utf8)
        bytes.withUnsafeBytes { b in
            var off = 0
            while true {
                switch p.execute(UnsafeRawBufferPointer(rebasing: b[off...])) {
                case .needMore: return
                case .head(let c): log.append("head \(p.head.status) cl=\(p.head.contentLength ?? -1)"); off += c
                case .body(let piece, let c): log.append("body \(piece.count)"); off += c
                case .messageComplete(let c): log.append("end"); off += c
                case .informational(let c), .upgrade(let c): log.append("?"); off += c
                case .error(let e): log.append("error \(e)"); return
                }
            }
        }
    }
    p.expectResponse(to: .head)
    feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    p.expectResponse(to: .get)
    feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    #expect(log == ["head 200 cl=10", "end", "head 200 cl=3", "body 3", "end"])
}
