// nginx's request rules that llhttp 8.1 does not apply, as an extension of the parser core: method tokens
// outside llhttp's list (read here; llhttp restarted on a neutral "GET "), the request head checks of
// ngx_http_process_request_header, and ngx_http_validate_host. Same invariants as HTTPParserCore.swift
// (no allocation; the head is read in place).
import CLLHTTP
import Glibc

extension HTTPParserCore {
    enum MethodRead { case more, done(Int), fail(HTTPParseError) }

    /// Reads a method token llhttp refused, from `from` in the caller's buffer: method bytes up to the
    /// space ending it (the bytes llhttp saw are already in storage). Once complete, llhttp is restarted
    /// with "GET " standing for it and the caller goes on at `.done(position after the space)`.
    func readMethod(_ base: UnsafeRawPointer, _ from: Int, _ to: Int) -> MethodRead {
        let p = base.assumingMemoryBound(to: UInt8.self)
        var i = from
        while i < to, HTTPParserCore.isMethodByte(p[i]) { i += 1 }
        let end = i < to && p[i] == 0x20 ? i + 1 : i
        if let e = scanHead(p + from, end - from) { return .fail(e) }   // request line length limit
        if i == to { return .more }
        if p[i] != 0x20 { return .fail(HTTPParseError(.badRequest, "Invalid method encountered")) }
        // The token: the stored start line after any empty lines, up to the space just stored.
        var s = 0
        let n = head.headers.storage.count - 1
        while s < n, head.headers.storage[s] == 0x0D || head.headers.storage[s] == 0x0A { s += 1 }
        var k = s
        while k < n, HTTPParserCore.isMethodByte(head.headers.storage[k]) { k += 1 }
        if k == s || k != n { return .fail(HTTPParseError(.badRequest, "Invalid method encountered")) }
        methodPending = false
        head.methodToken = s ..< n
        llhttp_init(parser, HTTP_REQUEST, settings)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        synthetic = true
        let rc = llhttp_execute(parser, HTTPParserCore.neutralMethod, 4)
        synthetic = false
        if rc != HPE_OK { return .fail(HTTPParseError(.badRequest, "Invalid method encountered")) }
        return .done(end)
    }

    nonisolated(unsafe) static let neutralMethod: UnsafeMutablePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 4)
        p[0] = 0x47; p[1] = 0x45; p[2] = 0x54; p[3] = 0x20   // "GET "
        return p
    }()

    /// nginx's method alphabet (ngx_http_parse_request_line): A-Z, '_' and '-'.
    @inline(__always) static func isMethodByte(_ c: UInt8) -> Bool { (c &- 0x41) < 26 || c == 0x5F || c == 0x2D }

    /// nginx's request-header rules (ngx_http_process_request_header) that llhttp does not enforce.
    func checkRequestHead() -> HTTPParseError? {
        if head.versionMajor != 1 {
            return head.versionMajor >= 2 ? HTTPParseError(.versionNotSupported, "HTTP version not supported")
                                          : HTTPParseError(.badRequest, "HTTP/0.9 not supported")
        }
        if head.versionMinor > 1 { return HTTPParseError(.versionNotSupported, "HTTP version not supported") }
        if head.hostIndex == nil && head.versionMinor >= 1 {
            return HTTPParseError(.badRequest, "client sent HTTP/1.1 request without \"Host\" header")
        }
        if let hi = head.hostIndex, !head.headers.storage.withUnsafeBufferPointer({ st in
            let f = head.headers.fields[hi]
            return HTTPParserCore.isValidHost(UnsafeBufferPointer(rebasing: st[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)]))
        }) {
            return HTTPParseError(.badRequest, "client sent invalid host header")
        }
        if sawTransferEncoding {
            if head.versionMinor == 0 {
                return HTTPParseError(.badRequest, "client sent HTTP/1.0 request with \"Transfer-Encoding\" header")
            }
            let i = head.headers.firstIndex(of: "transfer-encoding")!
            if !valueEqualsIgnoringCase(head.headers.fields[i], "chunked") {
                return HTTPParseError(.unsupportedTransferEncoding, "client sent unknown \"Transfer-Encoding\"")
            }
            if sawContentLength {
                return HTTPParseError(.badRequest,
                                      "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time")
            }
        }
        if limits.maxBodySize > 0, let cl = head.contentLength, cl > limits.maxBodySize {
            return HTTPParseError(.bodyTooLarge, "client intended to send too large body")
        }
        return nil
    }

    /// nginx's ngx_http_validate_host: no "..", no "/", no NUL/controls/space, non-empty host part.
    /// (over the bytes in place: as an ArraySlice, every byte was a bounds-checked slice access)
    static func isValidHost(_ h: ArraySlice<UInt8>) -> Bool {
        h.withUnsafeBufferPointer { isValidHost($0) }
    }

    static func isValidHost(_ h: UnsafeBufferPointer<UInt8>) -> Bool {
        var dotPos = -2
        var hostLen = h.count
        var literal = false, rest = false
        var i = 0
        for ch in h {
            switch ch {
            case 0x2E:
                if dotPos == i - 1 { return false }
                dotPos = i
            case 0x3A:
                if !literal && !rest { hostLen = i; rest = true }
            case 0x5B:
                if i == 0 { literal = true }
            case 0x5D:
                if literal { hostLen = i + 1; literal = false; rest = true }
            default:
                if ch == 0x2F || ch == 0x5C || ch <= 0x20 || ch == 0x7F { return false }
            }
            i += 1
        }
        if dotPos == hostLen - 1 { hostLen -= 1 }
        return hostLen > 0
    }
}
