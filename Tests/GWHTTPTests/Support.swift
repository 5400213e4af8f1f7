import GWHTTP

/// Feeds `chunks` to a parser the way the proxy does and returns a transcript independent of how the input
/// was split (body pieces are concatenated per message).
func transcript(request chunks: [[UInt8]], limits: HTTPParserLimits = HTTPParserLimits()) -> [String] {
    let p = HTTPRequestParser(limits: limits)
    return drive(chunks, execute: p.execute, head: { describe(p.head, request: true) }, eof: nil)
}

func transcript(response chunks: [[UInt8]], method: HTTPMethod = .get, eof: Bool = false) -> [String] {
    let p = HTTPResponseParser()
    p.expectResponse(to: method)
    return drive(chunks, execute: p.execute, head: { describe(p.head, request: false) },
                 eof: eof ? { "eof:\(p.finish())" } : nil)
}

func describe(_ h: HTTPMessageHead, request: Bool) -> String {
    var s = request ? "head \(h.methodName) \(h.targetString) 1.\(h.versionMinor)"
                    : "head \(h.status) \(h.reasonString) 1.\(h.versionMinor)"
    for i in 0..<h.headers.count { s += " [\(h.headers.name(at: i))=\(h.headers.value(at: i))]" }
    if let cl = h.contentLength { s += " cl=\(cl)" }
    if h.isChunked { s += " chunked" }
    if !h.keepAlive { s += " close" }
    if h.expectsContinue { s += " expect" }
    if h.isUpgrade { s += " upgrade" }
    return s
}

func drive(_ chunks: [[UInt8]], execute: (UnsafeRawBufferPointer) -> HTTPParseStep, head: () -> String,
           eof: (() -> String)?) -> [String] {
    var out: [String] = []
    var body: [UInt8] = []
    func flushBody() { if !body.isEmpty { out.append("body \(String(decoding: body, as: UTF8.self))"); body = [] } }
    var ci = 0
    while ci < chunks.count {
        let chunk = chunks[ci]
        var offset = 0
        var stop = false
        var upgradeRest: [UInt8]? = nil
        chunk.withUnsafeBytes { buf in
            while true {
                let step = execute(UnsafeRawBufferPointer(rebasing: buf[offset...]))
                switch step {
                case .needMore:
                    return
                case .head(let c):
                    flushBody(); out.append(head()); offset += c
                case .informational(let c):
                    out.append("info " + head()); offset += c
                case .body(let piece, let c):
                    body.append(contentsOf: piece); offset += c
                case .messageComplete(let c):
                    flushBody(); out.append("end"); offset += c
                case .upgrade(let c):
                    flushBody(); offset += c; upgradeRest = Array(buf[offset...]); stop = true; return
                case .error(let e):
                    flushBody(); out.append("error \(e.status)"); stop = true; return
                }
            }
        }
        if var rest = upgradeRest {
            for c in chunks[(ci + 1)...] { rest += c }
            out.append("upgrade rest=\(String(decoding: rest, as: UTF8.self))")
        }
        if stop { return out }
        ci += 1
    }
    flushBody()
    if let eof { out.append(eof()) }
    return out
}

/// Transcripts for: whole input, byte-by-byte, and every two-way split. Returns the distinct results.
func allSplits(_ s: String, _ f: ([[UInt8]]) -> [String]) -> [[String]] {
    let bytes = Array(s.utf8)
    var results: [[String]] = [f([bytes])]
    results.append(f(bytes.map { [$0] }))
    for k in 1..<max(bytes.count, 1) { results.append(f([Array(bytes[..<k]), Array(bytes[k...])])) }
    var distinct: [[String]] = []
    for r in results where !distinct.contains(r) { distinct.append(r) }
    return distinct
}
