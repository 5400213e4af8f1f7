import Testing
import Glibc
import GWHTTP

/// Not a timing assertion: prints parser throughput (run with -c release for meaningful numbers).
@Test func pipelinedThroughput() {
    let one = "GET /api/v1/users/12345?expand=true HTTP/1.1\r\nHost: api.example.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\nX-Request-Id: 0123456789abcdef\r\nConnection: keep-alive\r\n\r\n"
    let batch = Array(String(repeating: one, count: 100).utf8)
    let p = HTTPRequestParser()
    var requests = 0
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    let t0 = Int(ts.tv_sec) * 1_000_000_000 + Int(ts.tv_nsec)
    for _ in 0..<1000 {
        batch.withUnsafeBytes { b in
            var off = 0
            while true {
                switch p.execute(UnsafeRawBufferPointer(rebasing: b[off...])) {
                case .needMore: return
                case .head(let c), .body(_, let c), .informational(let c), .upgrade(let c): off += c
                case .messageComplete(let c): off += c; requests += 1
                case .error: return
                }
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &ts)
    let dt = Int(ts.tv_sec) * 1_000_000_000 + Int(ts.tv_nsec) - t0
    #expect(requests == 100_000)
    print("request parser: \(dt / max(requests, 1)) ns/request (\(one.utf8.count) bytes, 7 headers)")
}
