// The header-field reader of the parser core: the field scan over the raw head (llhttp path) and the
// field recording both paths share (the one-pass reader calls `recordField` and `fieldKind` too). Split
// from HTTPParserCore.swift; same invariants (no allocation; offsets into the head's storage; the first
// violation in the byte stream decides the error).
import Glibc

extension HTTPParserCore {
    /// Reads the header lines that are complete in storage (the raw head, start line first) into
    /// `head.headers.fields`, recognising Host, Content-Length, Transfer-Encoding and Expect, and applies
    /// the field-level checks. Resumable: it continues from the last complete line it read.
    /// `partialLine` (llhttp stopped with an error inside the head): the name of an unfinished last line
    /// is checked too, when its colon was reached, since llhttp may reject that line's value (a second
    /// Transfer-Encoding) while the name already broke a rule of ours. (The parse fails either way: the
    /// state this leaves is never read.)
    func scanFields(partialLine: Bool = false) -> HTTPParseError? {
        let maxCount = limits.maxHeaderCount
        return head.headers.storage.withUnsafeBufferPointer { st -> HTTPParseError? in
            guard let b = st.baseAddress else { return nil }
            let n = st.count
            var cur = fieldScanPos
            defer { fieldScanPos = cur }
            while cur < n {
                guard let lfPtr = memchr(b + cur, 0x0A, n - cur) else {                 // line not complete yet
                    if partialLine && fieldScanStarted, memchr(b + cur, 0x3A, n - cur) != nil {
                        let saved = head.headers.fields.count
                        let e = readField(b, cur, n, maxCount: maxCount)
                        if head.headers.fields.count > saved { head.headers.fields.removeLast() }
                        return e
                    }
                    return nil
                }
                let lf = UnsafeRawPointer(lfPtr) - UnsafeRawPointer(b)
                var contentEnd = lf
                if contentEnd > cur && b[contentEnd - 1] == 0x0D { contentEnd -= 1 }
                let lineStart = cur
                cur = lf + 1
                if contentEnd == lineStart {
                    if fieldScanStarted { cur = n; return nil }   // the empty line ending the head
                    continue                                     // empty lines before the start line
                }
                if !fieldScanStarted { fieldScanStarted = true; continue }
                if let e = readField(b, lineStart, contentEnd, maxCount: maxCount) { return e }
            }
            return nil
        }
    }

    /// One header line `name: value` at [start, end) of storage.
    @inline(__always)
    func readField(_ b: UnsafePointer<UInt8>, _ start: Int, _ end: Int, maxCount: Int) -> HTTPParseError? {
        if head.headers.fields.count >= maxCount { return HTTPParseError(.headerTooLarge, "too many header fields") }
        // The name runs over token characters up to the colon (RFC 9110; llhttp 8.1 non-strict lets
        // e.g. "X A" through): anything else is a 400, see README.
        var colon = start
        while colon < end && HTTPParserCore.isTokenByte(b[colon]) { colon += 1 }
        if colon == end || b[colon] != 0x3A {
            guard let c = memchr(b + colon, 0x3A, end - colon) else { return HTTPParseError(.badRequest, "invalid header line") }
            let last = b[UnsafeRawPointer(c) - UnsafeRawPointer(b) - 1]
            if last == 0x20 || last == 0x09 { return HTTPParseError(.badRequest, "whitespace between header name and colon") }
            return HTTPParseError(.badRequest, "invalid character in header name")
        }
        if colon == start { return HTTPParseError(.badRequest, "empty header name") }
        var vs = colon + 1, ve = end
        while vs < ve && (b[vs] == 0x20 || b[vs] == 0x09) { vs += 1 }
        while ve > vs && (b[ve - 1] == 0x20 || b[ve - 1] == 0x09) { ve -= 1 }
        return recordField(b, start, colon - start, vs, ve, kind: HTTPParserCore.fieldKind(b + start, colon - start),
                           maxCount: maxCount)
    }

    /// The header names the parser acts on, told apart by length first.
    enum FieldKind: UInt8 { case other, host, contentLength, transferEncoding, expect, connection, proxyConnection, upgrade }

    /// (`equals` compares the name with a lower-case literal of the same length: byte-wise here, a word at a
    /// time in the one-pass reader, fieldKindOfToken)
    @inline(__always) static func fieldKind(_ p: UnsafePointer<UInt8>, _ nameLen: Int,
                                            _ equals: (UnsafePointer<UInt8>, StaticString) -> Bool = asciiEqualsLower) -> FieldKind {
        switch nameLen {
        case 4 where equals(p, "host"): return .host
        case 6 where equals(p, "expect"): return .expect
        case 7 where equals(p, "upgrade"): return .upgrade
        case 10 where equals(p, "connection"): return .connection
        case 14 where equals(p, "content-length"): return .contentLength
        case 16 where equals(p, "proxy-connection"): return .proxyConnection
        case 17 where equals(p, "transfer-encoding"): return .transferEncoding
        default: return .other
        }
    }

    /// Records the field `name` at [start, start + nameLen), value [vs, ve) of the head being read (offsets
    /// into the head's storage; `b` holds the same bytes at the same offsets), acting on Host,
    /// Content-Length, Transfer-Encoding and Expect. Shared by the field scan and the one-pass reader.
    @inline(__always)
    func recordField(_ b: UnsafePointer<UInt8>, _ start: Int, _ nameLen: Int, _ vs: Int, _ ve: Int,
                     kind: FieldKind, maxCount: Int) -> HTTPParseError? {
        if head.headers.fields.count >= maxCount { return HTTPParseError(.headerTooLarge, "too many header fields") }
        if isRequest && limits.dropUnderscoreNames && memchr(b + start, 0x5F, nameLen) != nil { return nil }
        // nginx treats these as unique header lines ("client sent duplicate header line" → 400).
        if isRequest && ((kind == .host && sawHost) || (kind == .contentLength && sawContentLength)
                         || (kind == .transferEncoding && sawTransferEncoding)) {
            return HTTPParseError(.badRequest, "client sent duplicate header line")
        }
        let i = head.headers.fields.count
        head.headers.fields.append(HTTPHeaders.Field(nameStart: Int32(start), nameLength: Int32(nameLen),
                                                     valueStart: Int32(vs), valueLength: Int32(ve - vs)))
        switch kind {
        case .host:
            if head.hostIndex == nil { head.hostIndex = i }
            sawHost = true
        case .contentLength: sawContentLength = true
        case .transferEncoding: sawTransferEncoding = true
        case .connection: if head.connectionIndex == nil { head.connectionIndex = i }
        case .expect:
            if ve - vs == 12 && HTTPParserCore.asciiEqualsLower(b + vs, "100-continue") { head.expectsContinue = true }
        default: break
        }
        return nil
    }

    /// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA,
    /// as two 64-bit masks over ASCII (ParserTests.headerNameTokenBytes checks every byte).
    @inline(__always) static func isTokenByte(_ c: UInt8) -> Bool {
        let low: UInt64 = 0x03FF_6CFA_0000_0000, high: UInt64 = 0x57FF_FFFF_C7FF_FFFE
        return c < 64 ? (low >> UInt64(c)) & 1 != 0 : (c < 128 && (high >> UInt64(c &- 64)) & 1 != 0)
    }

    /// The bytes at `p` (a name or a value) equal `lower` (lowercase ASCII) case-insensitively; the
    /// length is the caller's.
    @inline(__always) static func asciiEqualsLower(_ p: UnsafePointer<UInt8>, _ lower: StaticString) -> Bool {
        let t = lower.utf8Start
        for j in 0..<lower.utf8CodeUnitCount where asciiLower(p[j]) != t[j] { return false }
        return true
    }

    func valueEqualsIgnoringCase(_ f: HTTPHeaders.Field, _ s: String) -> Bool {
        var s = s
        return s.withUTF8 { u in
            guard u.count == Int(f.valueLength) else { return false }
            var j = Int(f.valueStart)
            for b in u {
                if asciiLower(head.headers.storage[j]) != asciiLower(b) { return false }
                j += 1
            }
            return true
        }
    }
}
