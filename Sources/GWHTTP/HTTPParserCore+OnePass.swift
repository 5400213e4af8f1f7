// The one-pass head reader: the common message, a whole head in one buffer framed by Content-Length (or
// nothing), read in one pass over its bytes without llhttp, the raw head scan and the field scan (which read
// every byte three times). Its body, when it has one, is counted out here too. Everything else is the llhttp
// path's (HTTPParserCore.swift), which stays the reference.
//
// Invariants:
//  - It accepts a strict subset of what the llhttp path accepts and produces the same head, the same events
//    at the same positions and the same EOF verdicts. Anything outside the subset — a byte outside the
//    conservative classes below, a limit approached, leading empty lines, a method outside the seven common
//    ones, a target not in origin-form, Transfer-Encoding, Upgrade, Connection other than "keep-alive",
//    Proxy-Connection, a duplicate or non-decimal Content-Length, an empty header value, a head not complete
//    in this buffer, a HEAD/1xx/204/304 response, a response without Content-Length — makes it give up before
//    reporting anything, and the llhttp path reads the message from its first byte.
//  - It never reports a parse error of its own: a message it gives up on gets the llhttp path's verdict, so
//    errors stay the same however the input is split. (nginx's head rules, `checkRequestHead`, run on both.)
//  - Only messages after which the connection stays usable (keep-alive): llhttp, which is not fed these
//    messages, stays at the message boundary where it was, and would otherwise accept bytes that it refuses
//    after a closing message. Once an llhttp-path message closes the connection (or upgrades), this path is
//    off until `reset()`.
//  - Guarded by fuzz-http-request / fuzz-http-response (every input is parsed with and without this path:
//    the events must be equal) and OnePassParserTests (byte classes against the llhttp path, one by one).
//
// Cost: a proxied keep-alive GET, request and response heads: see tools/bench/callgrind.py (README.md).
import Glibc

extension HTTPParserCore {
    enum OnePass: UInt8 {
        case idle       // no one-pass message in progress
        case body       // head reported; `onePassLeft` body bytes to count out
        case complete   // head (and body) reported; `.messageComplete` is next
    }

    /// The next event of a one-pass message in progress (body pieces, then its end).
    @inline(__always)
    func onePassStep(_ bytes: UnsafeRawBufferPointer) -> HTTPParseStep {
        if onePass == .body {
            if bytes.count == 0 { return .needMore }
            let k = min(bytes.count, onePassLeft)
            onePassLeft -= k
            bodyBytes += k
            if onePassLeft == 0 { onePass = .complete }
            return .body(UnsafeRawBufferPointer(start: bytes.baseAddress, count: k), consumed: k)
        }
        onePass = .idle
        headDone = false
        scanHeadBytes = 0; scanDone = false
        return .messageComplete(consumed: 0)
    }

    /// Whether a new message may be tried in one pass: nothing of it seen yet and llhttp at a boundary.
    @inline(__always) var onePassEligible: Bool {
        allowOnePass && !onePassOff && !headDone && scanHeadBytes == 0 && scanLine == 0 && scanLineLen == 0
            && !scanSawCR && !methodPending && pendingError == nil && !(responseToHEAD && !isRequest)
    }

    /// Reads a whole head from `bytes` in one pass: `.head` (or nginx's head error, as the llhttp path
    /// gives it), or nil when the message is not in the subset (nothing reported, nothing kept).
    func onePassHead(_ bytes: UnsafeRawBufferPointer) -> HTTPParseStep? {
        guard let base = bytes.baseAddress, bytes.count >= 16 else { return nil }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let n = bytes.count
        resetMessage()
        guard let lineEnd = isRequest ? onePassRequestLine(p, n) : onePassStatusLine(p, n),
              let end = onePassFields(p, n, from: lineEnd) else {
            resetMessage()
            return nil
        }
        head.headers.storage.append(contentsOf: UnsafeBufferPointer(start: p, count: end))
        headDone = true
        bodyBytes = 0
        scanHeadBytes = end; scanDone = true
        chunks.stop()
        if isRequest {
            if let e = checkRequestHead() { return fail(e) }
        }
        onePassLeft = head.contentLength ?? 0
        onePass = onePassLeft > 0 ? .body : .complete
        return .head(consumed: end)
    }

    /// "METHOD /target HTTP/1.x\r\n" for the seven common methods and an origin-form target of visible
    /// ASCII without '#'. Returns the offset after the line's LF.
    @inline(__always)
    func onePassRequestLine(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        var i: Int
        let code: UInt8
        switch p[0] {
        case 0x47 where p[1] == 0x45 && p[2] == 0x54 && p[3] == 0x20: code = 1; i = 4                       // GET
        case 0x48 where p[1] == 0x45 && p[2] == 0x41 && p[3] == 0x44 && p[4] == 0x20: code = 2; i = 5     // HEAD
        case 0x50 where p[1] == 0x4F && p[2] == 0x53 && p[3] == 0x54 && p[4] == 0x20: code = 3; i = 5     // POST
        case 0x50 where p[1] == 0x55 && p[2] == 0x54 && p[3] == 0x20: code = 4; i = 4                       // PUT
        case 0x50 where p[1] == 0x41 && p[2] == 0x54 && p[3] == 0x43 && p[4] == 0x48 && p[5] == 0x20:
            code = 28; i = 6                                                                                // PATCH
        case 0x44 where HTTPParserCore.bytesEqual(p + 1, "ELETE "): code = 0; i = 7                          // DELETE
        case 0x4F where HTTPParserCore.bytesEqual(p + 1, "PTIONS "): code = 6; i = 8                         // OPTIONS
        default: return nil
        }
        guard p[i] == 0x2F else { return nil }
        let targetStart = i
        var query = -1
        while i < n {
            let c = p[i]
            if c == 0x20 { break }
            // visible ASCII but '#'; llhttp reads '?' as the query's start, then as a query byte
            guard c &- 0x21 < 0x5E, c != 0x23 else { return nil }
            if c == 0x3F && query < 0 { query = i - targetStart }
            i += 1
        }
        // " HTTP/1.1\r\n" or " HTTP/1.0\r\n"
        guard i + 11 <= n, i < limits.maxRequestLineLength - 9,
              HTTPParserCore.bytesEqual(p + i, " HTTP/1."), p[i + 9] == 0x0D, p[i + 10] == 0x0A,
              p[i + 8] == 0x31 || p[i + 8] == 0x30 else { return nil }
        head.target.append(contentsOf: UnsafeBufferPointer(start: p + targetStart, count: i - targetStart))
        head.queryStart = query < 0 ? i - targetStart : query
        head.methodCode = code
        head.method = HTTPMethod(llhttpCode: code)
        head.versionMajor = 1
        head.versionMinor = p[i + 8] &- 0x30
        return i + 11
    }

    /// "HTTP/1.x SSS reason\r\n" with a final status 200–599 other than 204 and 304, and a non-empty reason of
    /// visible ASCII, spaces and tabs. Returns the offset after the line's LF.
    @inline(__always)
    func onePassStatusLine(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        guard HTTPParserCore.bytesEqual(p, "HTTP/1."), p[7] == 0x31 || p[7] == 0x30, p[8] == 0x20,
              p[9] &- 0x32 < 4, p[10] &- 0x30 < 10, p[11] &- 0x30 < 10, p[12] == 0x20 else { return nil }
        let status = Int(p[9] &- 0x30) * 100 + Int(p[10] &- 0x30) * 10 + Int(p[11] &- 0x30)
        if status == 204 || status == 304 { return nil }
        guard let i = HTTPParserCore.valueEnd(p, 13, n), i > 13, i + 2 <= n, p[i + 1] == 0x0A, i < limits.maxRequestLineLength else { return nil }
        head.reason.append(contentsOf: UnsafeBufferPointer(start: p + 13, count: i - 13))
        head.status = status
        head.versionMajor = 1
        head.versionMinor = p[7] &- 0x30
        return i + 2
    }

    /// The header lines from `from` to the empty line, recorded as the field scan records them. Returns the
    /// head's length (after the empty line's LF).
    @inline(__always)
    func onePassFields(_ p: UnsafePointer<UInt8>, _ n: Int, from: Int) -> Int? {
        // Offsets stay within [0, n] (n is a buffer's length), so the arithmetic is wrapping: the checked
        // form cost ~30% of this function (callgrind.py, per-line costs).
        let maxLine = limits.maxHeaderLineLength, maxHead = limits.maxHeadBytes, maxCount = limits.maxHeaderCount
        var i = from
        var keepAliveToken = false
        var length: Int? = nil
        while true {
            guard i &+ 2 <= n, i < maxHead &- 2 else { return nil }
            if p[i] == 0x0D {
                guard p[i &+ 1] == 0x0A else { return nil }
                i &+= 2
                break
            }
            let start = i
            guard let colon = HTTPParserCore.nameEnd(p, i, n), colon > start else { return nil }
            let nameLen = colon &- start
            i = colon &+ 1
            while i < n && (p[i] == 0x20 || p[i] == 0x09) { i &+= 1 }
            let vs = i
            guard let cr = HTTPParserCore.valueEnd(p, i, n) else { return nil }
            i = cr
            guard i &+ 1 < n, p[i &+ 1] == 0x0A, i &- start < maxLine else { return nil }
            var ve = i
            while ve > vs && (p[ve &- 1] == 0x20 || p[ve &- 1] == 0x09) { ve &-= 1 }
            guard ve > vs else { return nil }
            i &+= 2
            let kind = HTTPParserCore.fieldKindOfToken(p + start, nameLen)
            switch kind {
            case .other: break
            case .upgrade, .proxyConnection, .transferEncoding: return nil
            // (no whitespace after these two values: llhttp refuses a tab after a Content-Length)
            case .connection:
                guard ve == cr, ve &- vs == 10, HTTPParserCore.asciiEqualsLower(p + vs, "keep-alive") else { return nil }
                keepAliveToken = true
            case .contentLength:
                guard ve == cr, length == nil, ve &- vs <= 15 else { return nil }
                var v = 0
                var k = vs
                while k < ve {
                    let d = p[k] &- 0x30
                    guard d < 10 else { return nil }
                    v = v &* 10 &+ Int(d)   // at most 15 digits: no overflow
                    k &+= 1
                }
                length = v
            default: break
            }
            if recordField(p, start, nameLen, vs, ve, kind: kind, maxCount: maxCount) != nil { return nil }
        }
        guard i &+ 4 < maxHead else { return nil }
        if head.versionMinor == 0 && !keepAliveToken { return nil }    // HTTP/1.0 closes: llhttp's way
        if !isRequest && length == nil { return nil }                  // read until close: llhttp's way
        head.contentLength = length
        head.keepAlive = true
        head.connectionIsKeepAliveOnly = keepAliveToken
        return i
    }

    /// `fieldKind` for a name of token bytes (checked by nameEnd), compared a word at a time: a token byte
    /// ORed with 0x20 equals a lower-case letter of the literal only when it is that letter in either
    /// case, and equals '-' only when it is '-' (0x0D, the other byte that would, is no token byte).
    /// Overlapping loads cover each name length (4–7: two 32-bit words; 8–16: two 64-bit words; 17: three).
    @inline(__always) static func fieldKindOfToken(_ p: UnsafePointer<UInt8>, _ nameLen: Int) -> FieldKind {
        fieldKind(p, nameLen, tokenEqualsLower)
    }

    /// The token bytes at `p` equal `lower` (lower-case letters and '-', 4 to 17 bytes) case-insensitively.
    @inline(__always) static func tokenEqualsLower(_ p: UnsafePointer<UInt8>, _ lower: StaticString) -> Bool {
        let n = lower.utf8CodeUnitCount
        let q = UnsafeRawPointer(p), t = UnsafeRawPointer(lower.utf8Start)
        if n >= 8 {
            let fold: UInt64 = 0x2020_2020_2020_2020
            // (a third word for 17 bytes: two overlapping words reach 16)
            return (q.loadUnaligned(as: UInt64.self) | fold) == t.loadUnaligned(as: UInt64.self)
                && (n <= 16 || (q.loadUnaligned(fromByteOffset: 8, as: UInt64.self) | fold)
                    == t.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                && (q.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) | fold)
                    == t.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
        }
        let fold: UInt32 = 0x2020_2020
        return (q.loadUnaligned(as: UInt32.self) | fold) == t.loadUnaligned(as: UInt32.self)
            && (q.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self) | fold)
                == t.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
    }

    /// The offset of the colon ending a header name that starts at `from`, when every byte before it is a
    /// token byte; nil otherwise. Eight bytes at a time: a word of letters, digits and '-' (nearly every
    /// name) is skipped whole, by three per-byte range tests on the low seven bits that cannot carry
    /// between bytes; the first other byte is looked at alone (the colon, or a rarer token byte).
    @inline(__always) static func nameEnd(_ p: UnsafePointer<UInt8>, _ from: Int, _ n: Int) -> Int? {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080, lows = ~highs
        var i = from
        while true {
            if i &+ 8 <= n {
                let x = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                let t = x & lows
                let y = t | (ones &* 0x20)                                        // ASCII letters folded to lower case
                let letter = (y &+ ones &* 0x1F) & ~(y &+ ones &* 0x05)           // 0x61 ... 0x7A
                let digit = (t &+ ones &* 0x50) & ~(t &+ ones &* 0x46)            // 0x30 ... 0x39
                let z = t ^ (ones &* 0x2D)
                let dash = ~((z &+ lows) | z)                                     // == 0x2D
                let bad = ~((letter | digit | dash) & ~x) & highs
                if bad == 0 { i &+= 8; continue }
                i &+= bad.trailingZeroBitCount &>> 3
            } else if i == n {
                return nil
            }
            let c = p[i]
            if c == 0x3A { return i }
            guard isTokenByte(c) else { return nil }
            i &+= 1
        }
    }

    /// The offset of the CR ending a value (or reason) that starts at `i`, when every byte before it is a
    /// value byte (visible ASCII, SP, HTAB: no obs-text, no control); nil otherwise (or no CR before `n`). Eight bytes at a time: a word whose bytes are all in
    /// 0x20–0x7E is skipped whole (the two classic tests "some byte < 0x20" and "some byte > 0x7E", whose
    /// lowest flagged byte is exact); the first flagged byte is then looked at alone.
    @inline(__always) static func valueEnd(_ p: UnsafePointer<UInt8>, _ from: Int, _ n: Int) -> Int? {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        var i = from
        while true {
            if i &+ 8 <= n {
                let x = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                let m = ((x &- ones &* 0x20) & ~x & highs) | (((x &+ ones) | x) & highs)
                if m == 0 { i &+= 8; continue }
                i &+= m.trailingZeroBitCount &>> 3
            } else {
                while i < n && p[i] &- 0x20 < 0x5F { i &+= 1 }
                if i == n { return nil }
            }
            let c = p[i]
            if c == 0x0D { return i }
            if c != 0x09 { return nil }
            i &+= 1
        }
    }

    /// The bytes at `p` equal `s` exactly (the caller knows they are in bounds).
    @inline(__always) static func bytesEqual(_ p: UnsafePointer<UInt8>, _ s: StaticString) -> Bool {
        let t = s.utf8Start
        for j in 0 ..< s.utf8CodeUnitCount where p[j] != t[j] { return false }
        return true
    }
}
