// Public incremental parsers (client side: requests; upstream side: responses). See README.md for the
// driving protocol. Neither parser copies body bytes; header bytes are copied once into `head`.

/// Parses HTTP/1.x requests from a client connection, one event per `execute` call.
///
/// Driving: keep calling `execute(bytes[offset...])`, advancing `offset` by each step's `consumed`:
///   `.needMore` → read more bytes (all given bytes were consumed). Only this step means "stop calling".
///   `.head` → `head` is valid until the next message begins (i.e. until you feed bytes after `.messageComplete`).
///   `.body(piece, _)` (0…n times) → `piece` points into YOUR buffer; forward/copy it before reusing the buffer.
///   `.messageComplete` → request done; feed the remaining bytes (pipelining) only when ready for the next one.
///   `.upgrade` → CONNECT/Upgrade: bytes after `consumed` are tunnel data; the parser stays finished.
///   `.error(e)` → answer `e.status` and close (the error is sticky).
public final class HTTPRequestParser {
    @usableFromInline let core: HTTPParserCore
    /// The target the request is sent to upstream (path and query), written by the proxy's routing.
    /// Kept here, with the head it is derived from, so that it follows the request: the parser goes back
    /// to its pool when the connection is idle, and an idle connection holds no bytes of it.
    public var upstreamTarget = FlatArray<UInt8>()

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        core = HTTPParserCore(request: true, limits: limits)
    }

    /// The current request head (valid after `.head`), borrowed in place: no copy, no coroutine (a
    /// cross-module `_read` coroutine that is not inlined allocates its frame with malloc on every access).
    @inlinable public var head: HTTPRequestHead { unsafeAddress { UnsafePointer(core.headStorage) } }
    /// The head's fixed address (valid as long as the parser), for readers that pass the head on from
    /// inside a closure over one of its arrays, where `head` would be copied.
    @inlinable public var headPointer: UnsafePointer<HTTPRequestHead> { UnsafePointer(core.headStorage) }
    public var limits: HTTPParserLimits {
        get { core.limits }
        set { core.limits = newValue }
    }
    /// Decoded body bytes seen so far in the current message.
    public var bodyBytesSeen: Int { core.bodyBytes }

    /// Consumes `bytes` up to the next event. Keep calling (also with an empty remainder) until `.needMore`:
    /// an event that ends exactly at the end of the buffer is followed by `.messageComplete` on the next call.
    public func execute(_ bytes: UnsafeRawBufferPointer) -> HTTPParseStep { core.execute(bytes) }

    /// After `.upgrade` for an Upgrade request that the upstream refused (final status other than 101): the bytes
    /// after the request are HTTP again; the next `execute` parses the next request.
    public func resumeAfterRefusedUpgrade() { core.resumeAfterUpgrade() }

    /// Client EOF: `.clean` between requests, `.truncated` mid-request.
    public func finish() -> HTTPEOFResult { core.finish() }

    /// Some bytes of a request head were seen but the head is not complete yet.
    public var hasPartialRequest: Bool { core.scanHeadBytes > 0 || core.scanLine > 0 || core.scanLineLen > 0 }

    /// Reuse the parser for a new connection.
    public func reset() { core.reset() }
}

/// Parses HTTP/1.x responses from an upstream connection. Call `expectResponse(to:)` before each response
/// so HEAD responses are parsed without a body. Steps as for requests, plus `.informational` for 1xx
/// (except 101) heads which are followed by the final response's steps. On upstream EOF call `finish()`:
/// `.messageComplete` ends a read-until-close body; `.truncated` is a premature close (→ 502).
public final class HTTPResponseParser {
    @usableFromInline let core: HTTPParserCore

    public init(limits: HTTPParserLimits = HTTPParserLimits(maxRequestLineLength: 8192,
                                                            maxHeaderLineLength: 8192, maxHeadBytes: 65536)) {
        core = HTTPParserCore(request: false, limits: limits)
    }

    @inlinable public var head: HTTPResponseHead { unsafeAddress { UnsafePointer(core.headStorage) } }
    /// The head's fixed address (valid as long as the parser), as HTTPRequestParser.headPointer.
    @inlinable public var headPointer: UnsafePointer<HTTPResponseHead> { UnsafePointer(core.headStorage) }

    /// Declare the method of the request this response answers (HEAD → no body whatever the headers say).
    public func expectResponse(to method: HTTPMethod) { core.responseToHEAD = method.isHEAD }

    /// Whether the current response body is delimited by connection close (needs `finish()` on EOF).
    public var needsEOF: Bool { core.onePass == .idle && llhttp_message_needs_eof_(core) }

    public func execute(_ bytes: UnsafeRawBufferPointer) -> HTTPParseStep { core.execute(bytes) }
    public func finish() -> HTTPEOFResult { core.finish() }
    public func reset() { core.reset() }
}

import CLLHTTP

@inline(__always) func llhttp_message_needs_eof_(_ c: HTTPParserCore) -> Bool {
    llhttp_message_needs_eof(c.parser) != 0
}

extension HTTPMessageHead {
    /// The request method token as a String (small-string, no heap allocation for standard methods).
    public var methodName: String {
        if let r = methodToken { return String(decoding: headers.storage[r], as: UTF8.self) }
        if case .other(let c) = method, let p = llhttp_method_name(llhttp_method_t(rawValue: UInt32(c))) {
            return String(cString: p)
        }
        return method.name.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
    }
}
