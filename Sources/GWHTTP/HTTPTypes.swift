// Value types shared by the request and response parsers: methods, header storage, heads, steps, errors, limits.
// Invariant: header names/values live in ONE byte array per head (HTTPHeaders.storage) addressed by offsets,
// so parsing a request allocates nothing once the arrays have grown to their working size.

/// Request method. Common methods are cases; anything else llhttp knows is `.other(code)` (llhttp_method_t).
public enum HTTPMethod: Equatable, Sendable {
    case get, head, post, put, delete, connect, options, trace, patch
    case other(UInt8)
    /// `.other(tokenCode)`: a method token llhttp does not know, read by the parser (nginx's [A-Z_-]+).
    public static let tokenCode: UInt8 = 255

    /// From llhttp's method code (`llhttp_method_t`).
    public init(llhttpCode c: UInt8) {
        switch c {
        case 0: self = .delete
        case 1: self = .get
        case 2: self = .head
        case 3: self = .post
        case 4: self = .put
        case 5: self = .connect
        case 6: self = .options
        case 7: self = .trace
        case 28: self = .patch
        default: self = .other(c)
        }
    }

    // (Tests of one case by pattern: the derived `==` of an enum with a payload is a call, ~24 instructions.)
    @inlinable public var isHEAD: Bool { if case .head = self { return true } else { return false } }
    @inlinable public var isCONNECT: Bool { if case .connect = self { return true } else { return false } }

    /// The method token, e.g. "GET" (static strings for common methods; no allocation).
    public var name: StaticString {
        switch self {
        case .get: return "GET"
        case .head: return "HEAD"
        case .post: return "POST"
        case .put: return "PUT"
        case .delete: return "DELETE"
        case .connect: return "CONNECT"
        case .options: return "OPTIONS"
        case .trace: return "TRACE"
        case .patch: return "PATCH"
        case .other: return "OTHER"
        }
    }
}

@inline(__always) @usableFromInline
func asciiLower(_ b: UInt8) -> UInt8 { (b &- 0x41) < 26 ? b | 0x20 : b }

/// Bytes of a head: a header's name or value (a view of `HTTPHeaders.storage`), the path or the query
/// (of `HTTPMessageHead.target`); no copy.
public typealias HeaderBytes = Slice<FlatArray<UInt8>>

/// Ordered header list stored in one reusable byte buffer.
/// Invariant: every Field's ranges lie inside `storage`; names are kept as received (case preserved).
public struct HTTPHeaders: Sendable {
    public struct Field: Sendable, Equatable, BitwiseCopyable {
        public var nameStart: Int32
        public var nameLength: Int32
        public var valueStart: Int32
        public var valueLength: Int32
    }
    public internal(set) var storage: FlatArray<UInt8>
    public internal(set) var fields: FlatArray<Field>

    public init() {
        storage = FlatArray()
        storage.reserveCapacity(1024)
        fields = FlatArray()
        fields.reserveCapacity(32)
    }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    public mutating func removeAll() {
        // Guarded: removeAll(keepingCapacity:) on a buffer that is not uniquely referenced allocates a new one.
        storage.removeAll()
        fields.removeAll()
    }

    /// Appends a header (used when building messages and in tests; the parsers append in place).
    public mutating func append(name: String, value: String) {
        let ns = storage.count
        storage.append(contentsOf: name.utf8)
        let vs = storage.count
        storage.append(contentsOf: value.utf8)
        fields.append(Field(nameStart: Int32(ns), nameLength: Int32(vs - ns), valueStart: Int32(vs),
                            valueLength: Int32(storage.count - vs)))
    }

    /// Appends a header from raw bytes (no String, no generic code).
    public mutating func append(rawName name: UnsafeRawBufferPointer, rawValue value: UnsafeRawBufferPointer) {
        let ns = storage.count
        storage.append(contentsOf: name)
        let vs = storage.count
        storage.append(contentsOf: value)
        fields.append(Field(nameStart: Int32(ns), nameLength: Int32(vs - ns), valueStart: Int32(vs),
                            valueLength: Int32(storage.count - vs)))
    }

    /// Appends a header whose value is bytes.
    public mutating func append(name: String, valueBytes value: UnsafeRawBufferPointer) {
        var n = name
        n.withUTF8 { append(rawName: UnsafeRawBufferPointer($0), rawValue: value) }
    }

    @inlinable public func nameBytes(at i: Int) -> HeaderBytes {
        let f = fields[i]; return storage[Int(f.nameStart) ..< Int(f.nameStart + f.nameLength)]
    }
    @inlinable public func valueBytes(at i: Int) -> HeaderBytes {
        let f = fields[i]; return storage[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)]
    }
    public func name(at i: Int) -> String { String(decoding: nameBytes(at: i), as: UTF8.self) }
    public func value(at i: Int) -> String { String(decoding: valueBytes(at: i), as: UTF8.self) }

    /// Case-insensitive comparison of header `i`'s name with an ASCII name. No allocation.
    @_disfavoredOverload
    @inlinable public func nameEquals(at i: Int, _ name: String) -> Bool {
        var n = name
        return n.withUTF8 { nameEquals(at: i, $0) }
    }

    /// The same for a literal name (literals pick this overload: no String is involved at all).
    @inlinable public func nameEquals(at i: Int, _ name: StaticString) -> Bool {
        nameEquals(at: i, UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    @inlinable public func nameEquals(at i: Int, _ u: UnsafeBufferPointer<UInt8>) -> Bool {
        let f = fields[i]
        guard u.count == Int(f.nameLength) else { return false }
        return storage.withUnsafeBufferPointer { st in
            var j = Int(f.nameStart)
            for b in u {
                if asciiLower(st[j]) != asciiLower(b) { return false }
                j += 1
            }
            return true
        }
    }

    /// Index of the first header named `name` (case-insensitive), if any.
    @_disfavoredOverload
    @inlinable public func firstIndex(of name: String, from start: Int = 0) -> Int? {
        var n = name
        return n.withUTF8 { firstIndex(of: $0, from: start) }
    }

    @inlinable public func firstIndex(of name: StaticString, from start: Int = 0) -> Int? {
        firstIndex(of: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), from: start)
    }

    @inlinable public func firstIndex(of name: UnsafeBufferPointer<UInt8>, from start: Int = 0) -> Int? {
        var i = start
        while i < fields.count {
            if Int(fields[i].nameLength) == name.count && nameEquals(at: i, name) { return i }
            i += 1
        }
        return nil
    }
    public func contains(_ name: String) -> Bool { firstIndex(of: name) != nil }
    public func first(_ name: String) -> String? { firstIndex(of: name).map { value(at: $0) } }
    /// All values for `name`, in order.
    public func values(_ name: String) -> [String] {
        var out: [String] = []
        var i = 0
        while let j = firstIndex(of: name, from: i) { out.append(value(at: j)); i = j + 1 }
        return out
    }

    /// Whether any `name` header contains `token` in its comma-separated list (case-insensitive, OWS trimmed).
    @_disfavoredOverload
    public func hasToken(_ token: String, in name: String) -> Bool {
        var t = token, n = name
        return t.withUTF8 { tok in n.withUTF8 { hasToken(tok, in: $0) } }
    }

    /// The same for literals (no String involved).
    public func hasToken(_ token: StaticString, in name: StaticString) -> Bool {
        hasToken(UnsafeBufferPointer(start: token.utf8Start, count: token.utf8CodeUnitCount),
                 in: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    public func hasToken(_ tok: UnsafeBufferPointer<UInt8>, in name: UnsafeBufferPointer<UInt8>) -> Bool {
        do {
            var i = 0
            while let j = firstIndex(of: name, from: i) {
                let f = fields[j]
                var p = Int(f.valueStart)
                let end = p + Int(f.valueLength)
                while p < end {
                    while p < end, storage[p] == 0x20 || storage[p] == 0x09 || storage[p] == 0x2C { p += 1 }
                    let s = p
                    while p < end, storage[p] != 0x2C { p += 1 }
                    var e = p
                    while e > s, storage[e - 1] == 0x20 || storage[e - 1] == 0x09 { e -= 1 }
                    if e - s == tok.count {
                        var k = 0
                        while k < tok.count, asciiLower(storage[s + k]) == asciiLower(tok[k]) { k += 1 }
                        if k == tok.count { return true }
                    }
                }
                i = j + 1
            }
            return false
        }
    }
}

/// A parsed request or response head. Request-only fields (method, target) are meaningless on responses and
/// response-only fields (status, reason) on requests. Use the `HTTPRequestHead` / `HTTPResponseHead` aliases.
public struct HTTPMessageHead: Sendable {
    public internal(set) var method: HTTPMethod = .get
    /// llhttp method code (`llhttp_method_t`), for methods outside the enum's common cases;
    /// `HTTPMethod.tokenCode` for a method llhttp does not know (its bytes: `methodToken`).
    public internal(set) var methodCode: UInt8 = 1
    /// A method token llhttp 8.1 does not know (`QUERY`, …): its range in `headers.storage`; nil otherwise.
    public internal(set) var methodToken: Range<Int>? = nil
    /// Raw request target as received (origin-form path+query, absolute-form, `*` or authority-form).
    public internal(set) var target = FlatArray<UInt8>()
    /// Index of `?` in `target`, or `target.count` when there is no query.
    public internal(set) var queryStart: Int = 0
    /// Start of the path in `target`: 0 for origin-form; after `scheme://authority` for absolute-form.
    public internal(set) var pathStart: Int = 0
    public internal(set) var status: Int = 0
    public internal(set) var reason = FlatArray<UInt8>()
    public internal(set) var versionMajor: UInt8 = 1
    public internal(set) var versionMinor: UInt8 = 1
    public internal(set) var headers = HTTPHeaders()
    /// llhttp_should_keep_alive after the head (version + Connection tokens).
    public internal(set) var keepAlive: Bool = true
    public internal(set) var contentLength: Int? = nil
    public internal(set) var isChunked: Bool = false
    public internal(set) var expectsContinue: Bool = false
    /// Request: `Connection: upgrade` + `Upgrade:` (or CONNECT). Response: 101 with Upgrade.
    public internal(set) var isUpgrade: Bool = false
    /// Index of the (single) Host header, if any.
    public internal(set) var hostIndex: Int? = nil
    /// Index of the first Connection header, if any (hop-by-hop handling starts there).
    public internal(set) var connectionIndex: Int? = nil
    /// Every Connection header is exactly `keep-alive` (known by the one-pass reader): none names a header.
    public internal(set) var connectionIsKeepAliveOnly = false

    public init() { target.reserveCapacity(256) }

    /// Path part of the target (absolute-form's scheme and authority removed; may be empty then, meaning "/").
    public var pathBytes: HeaderBytes { target[pathStart ..< queryStart] }
    /// Authority of an absolute-form target (`GET http://host:port/p`), which nginx prefers over Host.
    public var targetAuthority: String? {
        guard pathStart > 0 else { return nil }
        var i = 0
        while i + 2 < pathStart, !(target[i] == 0x3A && target[i + 1] == 0x2F && target[i + 2] == 0x2F) { i += 1 }
        return String(decoding: target[(i + 3) ..< pathStart], as: UTF8.self)
    }
    /// Query without the `?`; nil when the target has no `?` (an empty query after `?` is "").
    public var queryBytes: HeaderBytes? { queryStart < target.count ? target[(queryStart + 1)...] : nil }
    public var path: String { String(decoding: pathBytes, as: UTF8.self) }
    public var query: String? { queryBytes.map { String(decoding: $0, as: UTF8.self) } }
    public var targetString: String { String(decoding: target, as: UTF8.self) }
    public var hostBytes: HeaderBytes? { hostIndex.map { headers.valueBytes(at: $0) } }
    public var host: String? { hostIndex.map { headers.value(at: $0) } }
    public var reasonString: String { String(decoding: reason, as: UTF8.self) }
    public var isHTTP11: Bool { versionMajor == 1 && versionMinor == 1 }
    public func connectionHasToken(_ t: String) -> Bool { headers.hasToken(t, in: "connection") }
    public var upgradeValue: String? { headers.first("upgrade") }
    public var transferEncoding: String? { headers.first("transfer-encoding") }
    public var isInformational: Bool { status >= 100 && status < 200 }

    mutating func reset() {
        method = .get; methodCode = 1; methodToken = nil
        target.removeAll()
        queryStart = 0; pathStart = 0
        status = 0
        reason.removeAll()
        versionMajor = 1; versionMinor = 1
        headers.removeAll()
        keepAlive = true; contentLength = nil; isChunked = false; expectsContinue = false; isUpgrade = false
        hostIndex = nil; connectionIndex = nil; connectionIsKeepAliveOnly = false
    }
}

public typealias HTTPRequestHead = HTTPMessageHead
public typealias HTTPResponseHead = HTTPMessageHead

/// One event produced by `execute`. `consumed` counts bytes of the buffer passed to *this* call that are now
/// owned by the parser; the caller passes `bytes[consumed...]` to the next call (after acting on the event).
public enum HTTPParseStep {
    /// Every byte was consumed; read more and call again.
    case needMore
    /// Head complete (`parser.head`). For requests with `expectsContinue` the caller may answer 100 first.
    case head(consumed: Int)
    /// A piece of decoded body (chunk framing removed). Points into the caller's buffer: use it before the
    /// buffer is reused.
    case body(UnsafeRawBufferPointer, consumed: Int)
    /// The message ended. Bytes after `consumed` belong to the next (pipelined) message.
    case messageComplete(consumed: Int)
    /// Response parser only: a 1xx (other than 101) interim head is in `parser.head`; the final response follows.
    case informational(consumed: Int)
    /// CONNECT / Upgrade (request) or 101 Switching Protocols (response): the message ended and bytes after
    /// `consumed` are tunnel data, not HTTP. The parser is finished.
    case upgrade(consumed: Int)
    case error(HTTPParseError)
}

/// What EOF means for the message being parsed (`finish()`).
public enum HTTPEOFResult: Equatable {
    /// Nothing in progress (between messages): clean close.
    case clean
    /// The message was delimited by connection close and is now complete (response read-until-close).
    case messageComplete
    /// EOF in the middle of a message.
    case truncated
}

/// A parse failure with the status nginx would answer (requests) or the 502 to produce (responses).
public struct HTTPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        case badRequest                  // 400
        case uriTooLong                  // 414
        case headerTooLarge              // nginx 494, answered as 400 "Request header or cookie too large"
        case bodyTooLarge                // 413
        case unsupportedTransferEncoding // 501
        case versionNotSupported         // 505
        case invalidResponse             // upstream sent garbage → 502
    }
    public var kind: Kind
    /// Diagnostic text for the error log (llhttp's reason or ours).
    public var reason: String

    public init(_ kind: Kind, _ reason: String) { self.kind = kind; self.reason = reason }

    /// The status the proxy answers with.
    public var status: Int {
        switch kind {
        case .badRequest, .headerTooLarge: return 400
        case .uriTooLong: return 414
        case .bodyTooLarge: return 413
        case .unsupportedTransferEncoding: return 501
        case .versionNotSupported: return 505
        case .invalidResponse: return 502
        }
    }
    /// nginx's internal status (494 for oversized headers) — what goes in the access log.
    public var nginxStatus: Int { kind == .headerTooLarge ? 494 : status }
    /// Kong's error-page message for `status` (KONG.md §3.6).
    public var kongMessage: String {
        switch kind {
        case .badRequest: return "Bad request"
        case .headerTooLarge: return "Request header or cookie too large"
        case .uriTooLong: return "URI too long"
        case .bodyTooLarge: return "Payload too large"
        case .unsupportedTransferEncoding: return "Not implemented"
        case .versionNotSupported: return "HTTP version not supported"
        case .invalidResponse: return "An invalid response was received from the upstream server"
        }
    }
    public var description: String { "\(status) \(reason)" }
}

/// Parser limits, mirroring nginx directives.
public struct HTTPParserLimits: Sendable {
    /// Longest request line (method + target + version); longer → 414 (nginx: large_client_header_buffers size).
    public var maxRequestLineLength: Int
    /// Longest single header line; longer → 494/400.
    public var maxHeaderLineLength: Int
    /// Whole head (request line + headers); larger → 494/400 (nginx: number × size of large buffers).
    public var maxHeadBytes: Int
    /// Most header fields; more → 494/400.
    public var maxHeaderCount: Int
    /// client_max_body_size in bytes; 0 = unlimited → 413 when exceeded.
    public var maxBodySize: Int
    /// nginx `underscores_in_headers off`: request header lines whose name has a `_` are ignored (not in
    /// `head.headers`: neither the router, the plugins nor the upstream see them).
    public var dropUnderscoreNames = false

    public init(maxRequestLineLength: Int = 8192, maxHeaderLineLength: Int = 8192, maxHeadBytes: Int = 32768,
                maxHeaderCount: Int = 1000, maxBodySize: Int = 0) {
        self.maxRequestLineLength = maxRequestLineLength; self.maxHeaderLineLength = maxHeaderLineLength
        self.maxHeadBytes = maxHeadBytes; self.maxHeaderCount = maxHeaderCount; self.maxBodySize = maxBodySize
    }

    /// From gateway.conf: `large_client_header_buffers <number> <size>` and `client_max_body_size`.
    /// (`client_header_buffer_size` is only the initial buffer in nginx; it does not bound anything.)
    public init(largeClientHeaderBuffers number: Int, size: Int, clientMaxBodySize: Int, maxHeaderCount: Int = 1000) {
        self.init(maxRequestLineLength: size, maxHeaderLineLength: size, maxHeadBytes: number * size,
                  maxHeaderCount: maxHeaderCount, maxBodySize: clientMaxBodySize)
    }
}

extension HTTPHeaders {
    /// RFC 9110 §7.6.1 hop-by-hop fields a proxy must not forward (plus the legacy Proxy-Connection and
    /// Keep-Alive). Fields named in a Connection header are hop-by-hop too: see `isListedInConnection(at:)`.
    public func isHopByHop(at i: Int) -> Bool {
        let f = fields[i]
        switch f.nameLength {
        case 2: return nameEquals(at: i, "te")
        case 7: return nameEquals(at: i, "upgrade") || nameEquals(at: i, "trailer")
        case 10: return nameEquals(at: i, "connection") || nameEquals(at: i, "keep-alive")
        case 16: return nameEquals(at: i, "proxy-connection")
        case 17: return nameEquals(at: i, "transfer-encoding")
        default: return false
        }
    }

    /// Whether header `i`'s name is listed as a token of a Connection header (e.g. `Connection: close, X-Foo`).
    public func isListedInConnection(at i: Int) -> Bool {
        guard firstIndex(of: "connection") != nil else { return false }
        return hasToken(name(at: i), in: "connection")
    }
}

extension HTTPWriter {
    /// The interim response to `Expect: 100-continue`.
    public static let continueResponse: StaticString = "HTTP/1.1 100 Continue\r\n\r\n"
}
