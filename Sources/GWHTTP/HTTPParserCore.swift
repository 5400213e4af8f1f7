// The llhttp driver shared by HTTPRequestParser and HTTPResponseParser.
// llhttp calls C callbacks (@convention(c) closures below) that find this object through `llhttp_t.data`.
// Events that the caller must act on (head, body piece, message end) pause llhttp with HPE_PAUSED; the
// pause position (`llhttp_get_error_pos`) tells how many bytes were consumed. The head's raw bytes are
// copied once into the head's single storage array, and the header fields are read from there once
// llhttp has validated the head (`scanFields`): llhttp gets no per-header callbacks (four calls per
// header cost more than the parse itself); body pieces are not copied.
// Extra checks on top of llhttp 8.1 (which is lenient here): a raw-byte scan of chunked framing
// (ChunkFraming.swift) refuses what llhttp skips where CRLF belongs; a raw-byte scan of the head rejects obs-fold,
// bare CR and over-long lines; the field scan rejects non-token header names, empty names and
// whitespace before the colon; the head checks apply nginx's request rules (Host, duplicate
// CL/TE/Host, Transfer-Encoding other than exactly "chunked", HTTP version).
// Error order: whichever violation comes first in the byte stream wins, however the input was split
// (the field scan covers the complete lines before an llhttp error position).
// Methods: llhttp 8.1 knows a fixed list; any other method token of nginx's alphabet ([A-Z_-]+, e.g.
// QUERY) is read by `readMethod` (HTTPParserCore+Request.swift) and llhttp is restarted on a neutral
// "GET " in its place, so the rest
// of the request line and the head are still llhttp's; the token is kept as `head.methodToken`.
// The request-target may hold no control character, space or DEL (nginx since 1.21.1; llhttp 8.1 lets
// HTAB and FF through).
import CLLHTTP
import Glibc

@usableFromInline
final class HTTPParserCore {
    enum Event { case none, head, body, complete, informational }

    let isRequest: Bool
    let parser: UnsafeMutablePointer<llhttp_t>
    let settings: UnsafeMutablePointer<llhttp_settings_t>
    var limits: HTTPParserLimits
    /// The head lives at a fixed address (allocated once per parser): readers borrow it through
    /// `unsafeAddress`, so passing `parser.head` to a function does not copy it (a stored property read
    /// through a `_read` coroutine was copied at every call boundary: four buffer retains and releases).
    @usableFromInline let headStorage: UnsafeMutablePointer<HTTPMessageHead>
    @usableFromInline var head: HTTPMessageHead {
        unsafeAddress { UnsafePointer(headStorage) }
        unsafeMutableAddress { headStorage }
    }

    // per-call / per-message state
    var event: Event = .none
    var bodyStart: UnsafeRawPointer? = nil
    var bodyCount = 0
    var failure: HTTPParseError? = nil
    var pendingError: HTTPParseError? = nil
    var headDone = false
    var bodyBytes = 0
    var upgraded = false
    var responseToHEAD = false
    var sawContentLength = false
    var sawTransferEncoding = false
    var sawHost = false
    // field scanner over the raw head in storage
    var fieldScanPos = 0         // next line to read
    var fieldScanStarted = false // the start line was passed
    // raw head scanner
    var scanLine = 0             // line index within the head (0 = start line)
    var scanLineLen = 0
    var scanSawCR = false
    var scanHeadBytes = 0
    var scanDone = false
    // a method token llhttp does not know, being read by readMethod (across execute calls)
    var methodPending = false
    var synthetic = false        // llhttp is fed the neutral "GET ": no message reset
    // chunked framing scanner (ChunkFraming.swift)
    var chunks = ChunkFraming()
    // one-pass reader (HTTPParserCore+OnePass.swift)
    var onePass = OnePass.idle
    var onePassLeft = 0          // body bytes of the one-pass message still to come
    var onePassOff = false       // an llhttp-path message closed or upgraded the connection: until reset()
    var allowOnePass = true      // false: every message goes the llhttp way (tests and fuzzing compare both)

    init(request: Bool, limits: HTTPParserLimits) {
        isRequest = request
        self.limits = limits
        headStorage = .allocate(capacity: 1)
        headStorage.initialize(to: HTTPMessageHead())
        parser = .allocate(capacity: 1)
        settings = .allocate(capacity: 1)
        llhttp_settings_init(settings)
        settings.pointee.on_message_begin = { p in HTTPParserCore.with(p) { $0.onMessageBegin() } }
        settings.pointee.on_url = { p, at, n in HTTPParserCore.with(p) { $0.onURL(at, n) } }
        settings.pointee.on_status = { p, at, n in HTTPParserCore.with(p) { $0.onStatus(at, n) } }
        settings.pointee.on_headers_complete = { p in HTTPParserCore.with(p) { $0.onHeadersComplete() } }
        settings.pointee.on_chunk_header = { p in HTTPParserCore.with(p) { $0.onChunkHeader() } }
        settings.pointee.on_body = { p, at, n in HTTPParserCore.with(p) { $0.onBody(at, n) } }
        settings.pointee.on_message_complete = { p in HTTPParserCore.with(p) { $0.onMessageComplete() } }
        llhttp_init(parser, request ? HTTP_REQUEST : HTTP_RESPONSE, settings)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        headStorage.deinitialize(count: 1)
        headStorage.deallocate()
        parser.deallocate()
        settings.deallocate()
    }

    /// The owning parser object; no retain/release (the object outlives every llhttp call it makes).
    @inline(__always) static func with(_ p: UnsafeMutablePointer<llhttp_t>?, _ body: (HTTPParserCore) -> Int32) -> Int32 {
        Unmanaged<HTTPParserCore>.fromOpaque(p!.pointee.data!)._withUnsafeGuaranteedRef(body)
    }

    static let paused = Int32(HPE_PAUSED.rawValue)
    nonisolated(unsafe) static let emptyByte: UnsafeMutablePointer<UInt8> = .allocate(capacity: 1)
    static let user = Int32(HPE_USER.rawValue)

    /// Forget everything (new connection). Limits are kept.
    func reset() {
        llhttp_init(parser, isRequest ? HTTP_REQUEST : HTTP_RESPONSE, settings)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        failure = nil; pendingError = nil; upgraded = false; responseToHEAD = false; methodPending = false
        onePass = .idle; onePassLeft = 0; onePassOff = false
        resetMessage()
    }

    func resetMessage() {
        head.reset()
        headDone = false; bodyBytes = 0
        fieldScanPos = 0; fieldScanStarted = false
        sawContentLength = false; sawTransferEncoding = false; sawHost = false
        scanLine = 0; scanLineLen = 0; scanSawCR = false; scanHeadBytes = 0; scanDone = false
        chunks.stop()
    }

    func fail(_ e: HTTPParseError) -> HTTPParseStep {
        let e2 = isRequest ? e : HTTPParseError(.invalidResponse, e.reason)
        failure = e2
        return .error(e2)
    }

    // MARK: execute

    func execute(_ bytes: UnsafeRawBufferPointer) -> HTTPParseStep {
        if let f = failure { return .error(f) }
        if upgraded { return .upgrade(consumed: 0) }
        if onePass != .idle { return onePassStep(bytes) }
        if onePassEligible, let step = onePassHead(bytes) { return step }
        // A pause may sit right at the end of the previous buffer (head or body ending there): llhttp must
        // then be resumed even with no new bytes so that it can reach message completion.
        var wasPaused = llhttp_get_errno(parser) == HPE_PAUSED
        if bytes.count == 0 && !wasPaused { return .needMore }
        let base0 = bytes.baseAddress ?? UnsafeRawPointer(HTTPParserCore.emptyByte)
        var offset = 0
        if methodPending {
            switch readMethod(base0, 0, bytes.count) {
            case .more: return .needMore
            case .fail(let e): return fail(e)
            case .done(let next): offset = next
            }
        }
        while true {
            if wasPaused || llhttp_get_errno(parser) == HPE_PAUSED { llhttp_resume(parser) }
            wasPaused = false
            let base = base0 + offset
            let count = bytes.count - offset
            let needScan = !scanDone
            let needChunkScan = chunks.isScanning
            event = .none
            let rc = llhttp_execute(parser, base.assumingMemoryBound(to: CChar.self), count)
            let pos = rc == HPE_OK ? bytes.count
                : (llhttp_get_error_pos(parser).map { UnsafeRawPointer($0) - base0 } ?? bytes.count)
            // The raw head scan runs over exactly the bytes llhttp got through (up to its pause or error), so
            // whichever violation comes first in the byte stream wins, however the input was split.
            if needScan, let e = scanHead(base.assumingMemoryBound(to: UInt8.self), pos - offset) {
                pendingError = nil
                return fail(e)
            }
            // The header fields of the lines complete so far: all of them once the head is done; before an
            // llhttp error, the ones ahead of it (a violation there comes first in the stream).
            if needScan && (event == .head || event == .informational || (rc != HPE_OK && rc != HPE_PAUSED)),
               let e = scanFields(partialLine: rc != HPE_PAUSED) {
                pendingError = nil
                return fail(e)
            }
            // Chunked framing over the body bytes llhttp got through (a head pauses llhttp, so these are body bytes).
            if needChunkScan, let e = chunks.scan(base.assumingMemoryBound(to: UInt8.self), pos - offset) {
                pendingError = nil
                return fail(e)
            }
            if rc == HPE_INVALID_METHOD && isRequest && pendingError == nil {
                methodPending = true
                switch readMethod(base0, pos, bytes.count) {
                case .more: return .needMore
                case .fail(let e): return fail(e)
                case .done(let next): offset = next; continue
                }
            }
            if rc == HPE_OK {
                if let e = pendingError { pendingError = nil; return fail(e) }
                return .needMore
            }
            if count == 0 && rc == HPE_PAUSED && event == .none { return .needMore }
            if rc == HPE_PAUSED {
                switch event {
                case .head:
                    if let e = isRequest ? checkRequestHead() : checkResponseHead() { return fail(e) }
                    return .head(consumed: pos)
                case .informational: return .informational(consumed: pos)
                case .body:
                    return .body(UnsafeRawBufferPointer(start: bodyStart, count: bodyCount), consumed: pos)
                case .complete:
                    return .messageComplete(consumed: pos)
                case .none:
                    // 1xx message end (not reported): go on with the final response in the same buffer.
                    offset = pos
                    continue
                }
            }
            if rc == HPE_PAUSED_UPGRADE {
                upgraded = true
                return .upgrade(consumed: pos)
            }
            if let e = pendingError { pendingError = nil; return fail(e) }
            return fail(mapError(rc))
        }
    }

    func resumeAfterUpgrade() {
        guard upgraded else { return }
        upgraded = false
        llhttp_resume_after_upgrade(parser)
    }

    func finish() -> HTTPEOFResult {
        if failure != nil { return .truncated }
        if onePass != .idle { return .truncated }      // llhttp: EOF inside a Content-Length message
        if upgraded { return .clean }
        if llhttp_get_errno(parser) == HPE_PAUSED { llhttp_resume(parser) }
        event = .none
        let rc = llhttp_finish(parser)
        if rc == HPE_PAUSED || event == .complete { return .messageComplete }
        if rc == HPE_OK {
            // SAFE also covers "waiting for the next message": truncated only if we are mid-message.
            return (scanHeadBytes > 0 || headDone) ? .truncated : .clean
        }
        return .truncated
    }

    func mapError(_ rc: llhttp_errno_t) -> HTTPParseError {
        let reason = llhttp_get_error_reason(parser).map { String(cString: $0) } ?? "parse error"
        switch rc {
        case HPE_INVALID_VERSION:
            // nginx: a well-formed but unsupported version (HTTP/2.0, 3.1) is 505; a malformed one
            // ("HTTP/1.x", "HTTP/1") is a plain 400.
            return HTTPParseError(reason == "Invalid HTTP version" ? .versionNotSupported : .badRequest, reason)
        case HPE_INVALID_TRANSFER_ENCODING: return HTTPParseError(.unsupportedTransferEncoding, reason)
        default: return HTTPParseError(.badRequest, reason)
        }
    }

    /// Raw scan of head bytes before llhttp sees them: bare CR, obs-fold, line and head size limits.
    /// Stops at the empty line ending the head.
    func scanHead(_ p: UnsafePointer<UInt8>, _ n: Int) -> HTTPParseError? {
        var line = scanLine, lineLen = scanLineLen, sawCR = scanSawCR
        let maxStart = limits.maxRequestLineLength, maxLine = limits.maxHeaderLineLength
        let maxHead = limits.maxHeadBytes - scanHeadBytes
        var err: HTTPParseError? = nil
        var i = 0
        // Line-at-a-time with memchr: only line starts, CR positions and lengths matter.
        scan: while i < n {
            if sawCR {
                sawCR = false
                if p[i] != 0x0A { err = HTTPParseError(.badRequest, "bare CR in head"); break scan }
                i += 1
            } else {
                if lineLen == 0, line > 0, p[i] == 0x20 || p[i] == 0x09 {
                    err = HTTPParseError(.badRequest, "obs-fold or whitespace at start of header line"); break scan
                }
                let lfPtr = memchr(p + i, 0x0A, n - i)
                let segEnd = lfPtr.map { UnsafeRawPointer($0) - UnsafeRawPointer(p) } ?? n
                let crPtr = memchr(p + i, 0x0D, segEnd - i)
                let contentEnd = crPtr.map { UnsafeRawPointer($0) - UnsafeRawPointer(p) } ?? segEnd
                let lenBefore = lineLen
                lineLen += contentEnd - i
                // Both limits may be crossed within this segment: the one crossed at the earlier byte wins (the
                // line limit on a tie), so the error does not depend on where the input was split.
                let lineMax = line == 0 ? maxStart : maxLine
                let linePos = lineLen > lineMax ? i + (lineMax - lenBefore) : Int.max
                let headPos = contentEnd > maxHead ? max(i, maxHead) : Int.max
                // The request line may hold no control character or DEL (nginx since 1.21.1; llhttp 8.1 lets
                // HTAB and FF through in the target). Checked here, over exactly the bytes llhttp got through,
                // rather than in the URL callback, which llhttp calls only with the target so far: a later
                // llhttp error (e.g. another control byte it does refuse) would then win or lose depending on
                // how the input was split (found by fuzz-http-request).
                var ctlPos = Int.max
                if line == 0 && isRequest {
                    var k = i
                    while k < contentEnd {
                        let c = p[k]
                        if c < 0x20 || c == 0x7F { ctlPos = k; break }
                        k += 1
                    }
                }
                if ctlPos != Int.max && ctlPos < linePos && ctlPos < headPos {
                    err = HTTPParseError(.badRequest, "invalid character in request-target")
                    break scan
                }
                if linePos != Int.max || headPos != Int.max {
                    if linePos > headPos {
                        err = HTTPParseError(.headerTooLarge, "header section too large")
                    } else if line == 0 {
                        err = HTTPParseError(isRequest ? .uriTooLong : .invalidResponse, "request line too long")
                    } else {
                        err = HTTPParseError(.headerTooLarge, "header line too long")
                    }
                    break scan
                }
                if crPtr != nil {
                    if contentEnd + 1 == n { sawCR = true; i = n; break scan }
                    if p[contentEnd + 1] != 0x0A { err = HTTPParseError(.badRequest, "bare CR in head"); break scan }
                    i = contentEnd + 2
                } else if lfPtr != nil {
                    i = segEnd + 1                      // bare LF: llhttp decides
                } else {
                    i = n
                    break scan
                }
            }
            // end of a line
            if lineLen == 0 {
                if line == 0 { continue }               // leading empty lines before the request line
                scanDone = true
                break scan
            }
            line += 1
            lineLen = 0
        }
        scanLine = line; scanLineLen = lineLen; scanSawCR = sawCR; scanHeadBytes += i
        if err == nil && i > 0 { head.headers.storage.append(contentsOf: UnsafeBufferPointer(start: p, count: i)) }
        return err
    }

    // MARK: callbacks

    func onMessageBegin() -> Int32 {
        if synthetic { return 0 }   // the message began on the method token readMethod read
        let keepScan = (scanLine, scanLineLen, scanSawCR, scanHeadBytes, scanDone)
        resetMessage()
        // The scanner already ran over this buffer (it is reset when a message completes).
        (scanLine, scanLineLen, scanSawCR, scanHeadBytes, scanDone) = keepScan
        return 0
    }

    func onURL(_ at: UnsafePointer<CChar>?, _ n: Int) -> Int32 {
        // Control characters in the target are refused by scanHead (the whole request line).
        head.target.append(contentsOf: UnsafeRawBufferPointer(start: at, count: n))
        return 0
    }

    func onStatus(_ at: UnsafePointer<CChar>?, _ n: Int) -> Int32 {
        head.reason.append(contentsOf: UnsafeRawBufferPointer(start: at, count: n))
        return 0
    }

    func onHeadersComplete() -> Int32 {
        let p = parser.pointee
        headDone = true
        head.versionMajor = p.http_major
        head.versionMinor = p.http_minor
        let flags = UInt32(p.flags)
        head.isChunked = flags & F_CHUNKED.rawValue != 0
        if flags & F_CONTENT_LENGTH.rawValue != 0, !head.isChunked {
            head.contentLength = p.content_length > UInt64(Int.max) ? Int.max : Int(p.content_length)
        }
        if isRequest {
            if head.methodToken != nil {
                head.methodCode = HTTPMethod.tokenCode
                head.method = .other(HTTPMethod.tokenCode)
            } else {
                head.methodCode = p.method
                head.method = HTTPMethod(llhttpCode: p.method)
            }
            var q = 0
            while q < head.target.count, head.target[q] != 0x3F { q += 1 }
            head.queryStart = q
            if let first = head.target.first, first != 0x2F, first != 0x2A {
                // absolute-form: skip "scheme://authority" (llhttp validated the URL syntax)
                var i = 0
                while i + 2 < q, !(head.target[i] == 0x3A && head.target[i + 1] == 0x2F && head.target[i + 2] == 0x2F) { i += 1 }
                if i + 2 < q {
                    var j = i + 3
                    while j < q, head.target[j] != 0x2F { j += 1 }
                    head.pathStart = j
                }
            }
            head.isUpgrade = p.upgrade != 0
            // checkRequestHead runs in execute, once the fields are read (scanFields).
            head.keepAlive = llhttp_should_keep_alive(parser) != 0
            if !head.keepAlive || head.isUpgrade { onePassOff = true }
            if head.isChunked { chunks.start() } else { chunks.stop() }
            event = .head
            return HTTPParserCore.paused
        }
        head.status = Int(p.status_code)
        if p.http_major != 1 {
            pendingError = HTTPParseError(.invalidResponse, "unsupported HTTP version in response")
            return HTTPParserCore.user
        }
        if head.status < 100 || head.status > 999 {
            pendingError = HTTPParseError(.invalidResponse, "invalid status code"); return HTTPParserCore.user
        }
        let informational = head.status < 200 && head.status != 101
        if informational || head.status == 204 || head.status == 304 || responseToHEAD {
            parser.pointee.flags |= UInt16(F_SKIPBODY.rawValue)
            if head.status == 204 || head.status == 304 || informational {
                head.contentLength = nil; head.isChunked = false
            }
        }
        head.isUpgrade = p.upgrade != 0
        head.keepAlive = llhttp_should_keep_alive(parser) != 0
        if !head.keepAlive || head.isUpgrade { onePassOff = true }
        if head.isChunked && parser.pointee.flags & UInt16(F_SKIPBODY.rawValue) == 0 { chunks.start() } else { chunks.stop() }
        event = informational ? .informational : .head
        return HTTPParserCore.paused
    }

    /// A final response's head, once its fields are read.
    func checkResponseHead() -> HTTPParseError? {
        if sawTransferEncoding && !head.isChunked {
            // nginx: upstream sent unknown "Transfer-Encoding" → 502
            return HTTPParseError(.invalidResponse, "unsupported Transfer-Encoding in response")
        }
        return nil
    }

    /// Chunk size known (`content_length` holds it): enforce client_max_body_size before any of it is delivered.
    func onChunkHeader() -> Int32 {
        let size = parser.pointee.content_length
        // `size` may be up to UInt64.max ("FFFFFFFFFFFFFFFF" is a valid chunk size to llhttp): no overflowing sum.
        if isRequest, limits.maxBodySize > 0, size > UInt64(limits.maxBodySize) - UInt64(min(bodyBytes, limits.maxBodySize)) {
            pendingError = HTTPParseError(.bodyTooLarge, "client intended to send too large chunked body")
            return HTTPParserCore.user
        }
        return 0
    }

    func onBody(_ at: UnsafePointer<CChar>?, _ n: Int) -> Int32 {
        if n == 0 { return 0 }
        bodyBytes += n
        if isRequest, limits.maxBodySize > 0, bodyBytes > limits.maxBodySize {
            pendingError = HTTPParseError(.bodyTooLarge, "client intended to send too large chunked body")
            return HTTPParserCore.user
        }
        bodyStart = UnsafeRawPointer(at)
        bodyCount = n
        event = .body
        return HTTPParserCore.paused
    }

    func onMessageComplete() -> Int32 {
        let wasInformational = !isRequest && head.status < 200 && head.status != 101
        // Next message starts fresh: re-arm the head scanner.
        scanLine = 0; scanLineLen = 0; scanSawCR = false; scanHeadBytes = 0; scanDone = false
        headDone = false
        if wasInformational {
            // Continue parsing the final response; the head was already reported as .informational.
            event = .none
            return HTTPParserCore.paused
        }
        event = .complete
        if parser.pointee.upgrade != 0 { return 0 }   // llhttp then returns HPE_PAUSED_UPGRADE
        return HTTPParserCore.paused
    }
}
