// One request's plugin state, owned by a client connection and reused for every request on it
// (`reset()` between requests keeps the buffers' capacity: no allocation per request once warm).
// Worker-loop confined. The data path fills the inputs before the access phase and reads the outputs
// when it writes heads; plugins read the inputs and write the outputs.
import Glibc
import GWHTTP
import GWPluginState
import GWRedis

public final class PluginContext {
    // MARK: inputs (set by the data path)

    /// The client's address as text: the peer's, set once per connection; for a peer in trusted_ips, the
    /// address realip finds in real_ip_header, set per request (`setClientIP`).
    public private(set) var clientIP: String
    /// Ids of the matched route and its service (nil: no route matched, or a route without service).
    public var routeID: String? = nil
    public var serviceID: String? = nil
    /// Wall-clock time of the request, in seconds since the epoch (set before access).
    public var now: Int64 = 0
    /// The matched route's path regex captures (Kong's `uri_captures`): named groups by name, every group by
    /// its number as text ("0" is the whole match, "1" the first group…). Empty when the route matched
    /// without a regex. Read by request-transformer templates.
    public var uriCaptures: [String: String] = [:]

    // MARK: authentication (written by auth plugins, read by later ones)

    /// The consumer authenticated so far (Kong's `ctx.authenticated_consumer`).
    public var consumer: ConsumerRecord? = nil
    /// The credential that authenticated it (nil for the anonymous consumer).
    public var credential: CredentialRecord? = nil

    // MARK: outputs

    /// Changes to the request head sent upstream.
    public var upstreamHeaders = HeaderEdits()
    /// Changes to the response head sent to the client (proxied and generated responses alike).
    public var responseHeaders = HeaderEdits()
    /// rate-limiting's headers as numbers (written by the data path; see RateLimitHeaders).
    public let rateLimit = RateLimitHeaders()

    /// Turns typed header outputs into ordinary edits of `responseHeaders` (for generated responses and
    /// before header_filter plugins). Idempotent.
    public func materializeTypedHeaders() {
        guard !rateLimit.isEmpty else { return }
        rateLimit.forEach { name, value in responseHeaders.set(rawName: name, Int(value)) }
        rateLimit.removeAll()
    }
    /// When `replacesQuery`, the query string sent upstream (without '?'; empty: no query).
    public var upstreamQuery: [UInt8] = []
    public var replacesQuery = false
    /// When `replacesPath`, the whole path sent upstream (Kong's `kong.service.request.set_path`): starts
    /// with '/', already escaped; it replaces the service-path/route-path join; the query is still appended.
    public var upstreamPath: [UInt8] = []
    public var replacesPath = false
    /// When set, the method sent upstream (upper-case token, Kong's `kong.service.request.set_method`).
    public var upstreamMethod: String? = nil

    // MARK: request body (RequestBody.swift)

    /// Whether access can read the body; the bytes are in `requestBody` when `.available`.
    public private(set) var requestBodyState = RequestBodyState.none
    /// The request body (borrowed from the connection's buffer; valid during the access phase only).
    public private(set) var requestBody = UnsafeRawBufferPointer(start: nil, count: 0)
    /// A body to send upstream instead of the client's (Kong's `kong.service.request.set_body`);
    /// the data path sends it with its own Content-Length.
    public private(set) var replacedBody: [UInt8]? = nil

    /// The body's decoded length when it was read before access (nil: not read yet, or no body).
    public private(set) var requestBodyReadLength: Int? = nil
    /// request-size-limiting on a body without Content-Length: the data path answers `requestBodyLimitStatus`
    /// "Request size limit exceeded" once more than this many decoded bytes arrived (0: no limit).
    public private(set) var requestBodyLimit = 0
    public private(set) var requestBodyLimitStatus = 413

    /// The data path hands the body over before access (`state` .available: `bytes` hold it; `length`:
    /// the decoded length read, also when it went to a temp file).
    public func attachRequestBody(_ bytes: UnsafeRawBufferPointer, state: RequestBodyState, length: Int? = nil) {
        requestBody = bytes
        requestBodyState = state
        requestBodyReadLength = length
    }

    /// The smallest limit wins (several request-size-limiting instances cannot apply at once, but a
    /// limit is never raised by a later call).
    public func limitRequestBody(_ bytes: Int, status: Int) {
        if requestBodyLimit == 0 || bytes < requestBodyLimit { requestBodyLimit = bytes; requestBodyLimitStatus = status }
    }

    /// The body after the plugins so far: the replacement if one was set, else the client's.
    public func withCurrentBody<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let r = replacedBody { return r.withUnsafeBytes(body) }
        return body(requestBody)
    }

    public func replaceBody(_ bytes: [UInt8]) { replacedBody = bytes }

    /// Set in header_filter by a plugin that rewrites the response body: the data path holds the body
    /// (up to its bound) and calls transformResponseBody once it is complete.
    public var holdResponseBody = false

    /// A warning for the error log from the access phase (the data path logs it once, then clears it).
    public var warning: String? = nil
    public func warn(_ message: String) { warning = message }

    /// Short-circuit (Kong's `kong.response.exit` / `error`): 0 when none. The first exit wins.
    public private(set) var exitStatus = 0
    /// Kong-format JSON error message (`{"message": …}`), for `error`-style exits.
    public private(set) var exitMessage: String? = nil
    /// A raw body (with `exitContentType`), for `exit`-style answers; empty with no message: no body.
    public private(set) var exitBody: [UInt8] = []
    public private(set) var exitContentType: String? = nil
    /// proxy-cache's Hit, written by the data path (CachedAnswer.swift); nil otherwise.
    public internal(set) var cachedAnswer: CachedAnswer? = nil
    /// Set when a handler failed; the message is for the error log.
    public private(set) var failure: String? = nil

    /// The instances collected during access, in execution order (`collectedCount` of them); their
    /// header_filter, body_filter and log handlers run on the response, whichever produced it. Slots
    /// past the count are stale and reused by the next request (a reset is one store, not an array
    /// removal).
    public private(set) var collectedCount = 0
    var collectedSlots: [PluginHandler] = []
    /// The collected instances as an array (tests and diagnostics; allocates).
    public var collected: [PluginHandler] { Array(collectedSlots[0 ..< collectedCount]) }

    @inline(__always) func collect(_ h: PluginHandler) {
        if collectedCount < collectedSlots.count {
            // On a keep-alive connection the slot usually holds this very instance from the previous
            // request: skipping the store saves its release, retain and the array uniqueness check.
            if collectedSlots[collectedCount] !== h { collectedSlots[collectedCount] = h }
            flags[collectedCount] = 0
        } else {
            collectedSlots.append(h)
            flags.append(0)
        }
        collectedCount += 1
        phases.formUnion(h.phases)
    }

    @inline(__always) func collected(_ i: Int) -> PluginHandler { collectedSlots[i] }

    /// Union of the collected instances' phases (the data path skips a phase nobody needs).
    public internal(set) var phases: PluginPhases = []
    /// Per collected instance, 32 bits of per-request state (Kong's `kong.ctx.plugin` for the flags
    /// plugins keep between phases); `current` is the index of the instance being called.
    var flags: [UInt32] = []
    var current = 0

    /// The calling instance's per-request flag bits.
    public func flag(_ bit: UInt32) -> Bool { current < collectedCount && flags[current] & bit != 0 }
    public func setFlag(_ bit: UInt32) { if current < collectedCount { flags[current] |= bit } }

    /// Scratch buffers for handlers (decoded keys, rebuilt query strings); valid only during one call.
    public var scratch: [UInt8] = []
    public var scratch2: [UInt8] = []
    public var scratch3: [UInt8] = []

    // MARK: proxy-cache per-request state (one instance can store per request: the collected one)
    var cacheKey = CacheKey(0, 0, 0, 0)
    /// The key as 64 lower-case hex digits (X-Cache-Key).
    public internal(set) var cacheKeyHex: [UInt8] = []
    var cacheTTL: Int64 = 0
    /// The blob being captured for the store (bounded by the store's maximum entry size).
    var cacheCapture: [UInt8] = []
    /// Reused lookup buffer (grown once to the largest entry read).
    private(set) var cacheBuffer = CacheBuffer(capacity: 16384)
    /// Buffers grown past this by one large cached response are given back at the next reset, so an
    /// idle keep-alive connection never holds up to `proxy_cache_max_entry_size` twice.
    static let keptBufferBytes = 64 << 10
    // MARK: request-transformer per-request scratch (rendered values, query arguments)
    var xformValues: [UInt8] = []
    var xformEnds: [Int] = []
    var xformArgs: [XformArg] = []
    var xformKeys: [Range<Int>] = []

    // MARK: logging plugins (LogSerializer.swift): filled by the data path only when a collected
    // instance has a log phase; the buffers keep their capacity across requests.
    public var logFacts = LogFacts()
    /// The upstream request target (path and query) as sent; empty when not proxied.
    public var logUpstreamURI: [UInt8] = []
    /// The response headers as a JSON object (empty: none recorded).
    public var logResponseHeaders: [UInt8] = []
    /// The exchange's failed tries, oldest first (at most `maxLoggedTries`; the data path appends).
    public var logFailedTries: [LogTry] = []
    public static let maxLoggedTries = 16
    /// The serialized entry of this exchange (LogSerializer), written once before the log phase.
    public var logEntry: [UInt8] = []
    /// Route and service documents of the current generation (nil: no logging plugin configured).
    public var logDocuments: LogDocuments? = nil
    /// Every exchange is serialized, logging plugin or not (the JSON access log).
    public var logAlways = false
    /// The data path records the log facts and serializes the entry of this exchange.
    @inline(__always) public var wantsLogEntry: Bool { logAlways || phases.contains(.log) }

    /// The response is a cache Hit produced in access (the data path may say so in its logs).
    public var servedFromCache = false

    // MARK: suspended access (AccessSuspension.swift)

    /// The data path's side of a suspended access phase (the connection owning this context).
    public weak var resumer: AccessResumer? = nil
    /// An access handler waits for the loop (`suspend()`); the data path stops the request until
    /// `resumer.accessReady(self)`, then calls PluginRuntime.resumeAccess.
    public internal(set) var suspended = false
    /// The plan step of the suspended handler, and the tag its completion must carry.
    var suspendStep = 0
    var suspendTag: UInt64 = 0
    /// The reply the suspended handler waited for (read in its `accessResumed`).
    var asyncReply = RedisReply()

    // MARK: connection facts (correlation-id's tracker), set by the data path

    /// The connection's socket (its local address is read on first use), its serial number in the
    /// worker, the local port, and the requests made on it so far, this one included.
    public var connectionFD: Int32 = -1
    public var connectionSerial = 0
    public var serverPort = 0
    public var connectionRequests = 0
    /// nginx's $server_addr: the connection's local address as text (getsockname once per connection).
    public lazy var serverAddress: [UInt8] = {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(connectionFD, $0, &len) == 0 }
        }
        guard ok else { return [] }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = Int32(ss.ss_family)
        let done: Bool = withUnsafePointer(to: &ss) { p in
            if family == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    var addr = a.pointee.sin_addr
                    return inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count)) != nil
                }
            } else if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    var addr = a.pointee.sin6_addr
                    return inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count)) != nil
                }
            }
            return false
        }
        guard done else { return [] }
        return buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
    }()
    /// correlation-id's id of this request (reused buffer; empty when no correlation-id instance ran):
    /// what Kong's log serializer shows as `correlation_id`.
    public var correlationID: [UInt8] = []

    /// The client address in binary form (ip-restriction): parsed once per connection, and again when
    /// realip changes `clientIP` (setClientIP).
    public lazy var clientAddress: IPAddress = IPAddress(clientIP)
    /// Hashes of the client address (rate-limiting's `ip` identifier), computed once per connection.
    lazy var clientIPHash: (UInt64, UInt64) = identifierHashes(clientIP.utf8)

    /// Kong's `kong.client.get_forwarded_ip()` changed (trusted peer): the rate-limiting identifier follows.
    public func setClientIP(_ ip: String) {
        if ip == clientIP { return }
        clientIP = ip
        clientIPHash = identifierHashes(ip.utf8)
        clientAddress = IPAddress(ip)
    }

    public init(clientIP: String) {
        self.clientIP = clientIP
        collectedSlots.reserveCapacity(8)
        flags.reserveCapacity(8)
        upstreamQuery.reserveCapacity(128)
    }

    /// Forgets the previous request.
    /// Gives back buffers one large response grew (called when an exchange ends).
    public func releaseLargeBuffers() {
        if cacheCapture.capacity > PluginContext.keptBufferBytes { cacheCapture = [] }
        if cacheBuffer.capacity > PluginContext.keptBufferBytes { cacheBuffer = CacheBuffer(capacity: 16384) }
    }

    public func reset() {
        releaseLargeBuffers()
        routeID = nil; serviceID = nil
        if authenticated || consumer != nil { consumer = nil; credential = nil; authenticated = false }
        if !upstreamHeaders.isEmpty { upstreamHeaders.removeAll() }
        if !responseHeaders.isEmpty { responseHeaders.removeAll() }
        rateLimit.removeAll()
        if replacesQuery { upstreamQuery.removeAll(keepingCapacity: true); replacesQuery = false }
        if replacesPath { upstreamPath.removeAll(keepingCapacity: true); replacesPath = false }
        if upstreamMethod != nil { upstreamMethod = nil }
        if holdResponseBody { holdResponseBody = false }
        if requestBodyState != .none || replacedBody != nil || requestBodyReadLength != nil || requestBodyLimit != 0 {
            requestBodyState = .none; requestBody = UnsafeRawBufferPointer(start: nil, count: 0); replacedBody = nil
            requestBodyReadLength = nil; requestBodyLimit = 0; requestBodyLimitStatus = 413
        }
        if !uriCaptures.isEmpty { uriCaptures = [:] }   // usually the route decision's dictionary: drop the reference
        if exitStatus != 0 || failure != nil || servedFromCache {
            exitStatus = 0; exitMessage = nil; exitContentType = nil; failure = nil; servedFromCache = false
            cachedAnswer = nil
            if !exitBody.isEmpty { exitBody.removeAll(keepingCapacity: true) }
        }
        if !correlationID.isEmpty { correlationID.removeAll(keepingCapacity: true) }
        if !logResponseHeaders.isEmpty { logResponseHeaders.removeAll(keepingCapacity: true) }
        if !logFailedTries.isEmpty { logFailedTries.removeAll(keepingCapacity: true) }
        collectedCount = 0
        phases = []
        if suspended { cancelSuspension() }
    }

    /// `kong.response.error(status, message)`: a Kong-format JSON error. Ignored after a first exit.
    public func error(_ status: Int, _ message: String) {
        guard exitStatus == 0 else { return }
        exitStatus = status
        exitMessage = message
    }

    /// `kong.response.exit(status, body)`: a raw body (possibly empty). Ignored after a first exit.
    public func exit<B: Collection>(_ status: Int, body: B, contentType: String?) where B.Element == UInt8 {
        guard exitStatus == 0 else { return }
        exitStatus = status
        exitBody.append(contentsOf: body)
        exitContentType = contentType
    }

    func setExitStatus(_ status: Int) { exitStatus = status }
    func setExitBody(_ body: UnsafeRawBufferPointer) { exitBody.append(contentsOf: body) }

    /// A handler failed: 500 "An unexpected error occurred" (unless an exit was already chosen).
    func fail(_ message: String) {
        if failure == nil { failure = message }
        error(500, "An unexpected error occurred")
    }

    /// Authenticates `consumer` with `credential` (Kong's `kong.client.authenticate`). The upstream
    /// headers Kong's auth plugins set (X-Consumer-ID, -Custom-ID, -Username, X-Credential-Identifier,
    /// X-Anonymous-Consumer; a missing value clears the header, so a client cannot send its own) are
    /// not five header edits: the data path writes them from `consumer` / `credential` when
    /// `authenticated` (`forEachAuthHeader`) and drops the client's copies (`isAuthHeader`).
    public func authenticate(_ consumer: ConsumerRecord, credential: CredentialRecord?) {
        self.consumer = consumer
        self.credential = credential
        authenticated = true
    }

    /// Kong's `anonymous` fallback of the auth plugins: the consumer named by id or username, without a
    /// credential (X-Anonymous-Consumer: true), or 500 when it does not exist.
    public func authenticateAnonymous(_ reference: String, _ credentials: Credentials) {
        guard let c = credentials.consumer(reference: reference) else {
            error(500, "anonymous consumer \(reference) is configured but doesn't exist")
            return
        }
        authenticate(c, credential: nil)
    }

    /// A consumer was authenticated in this request: the auth headers are written upstream.
    public private(set) var authenticated = false

    private static let anonymousTrue: StaticString = "true"
    /// Number of auth headers (`authHeaderName(0 ..< authHeaderCount)`).
    public static let authHeaderCount = 5

    /// Kong's auth header names, in the order they are written (k = 0 ..< authHeaderCount). A switch
    /// returning StaticString constants: the hot path reads no static array (lazy-initialisation check,
    /// bounds check, retain) per header.
    @inline(__always) public static func authHeaderName(_ k: Int) -> StaticString {
        switch k {
        case 0: return "X-Consumer-ID"
        case 1: return "X-Consumer-Custom-ID"
        case 2: return "X-Consumer-Username"
        case 3: return "X-Credential-Identifier"
        default: return "X-Anonymous-Consumer"
        }
    }

    /// Calls `body(name, value)` for each auth header, nil value = cleared (not written).
    public func forEachAuthHeader(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer?) -> Void) {
        guard authenticated, let c = consumer else { return }
        func name(_ i: Int) -> UnsafeRawBufferPointer {
            let s = PluginContext.authHeaderName(i)
            return UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
        }
        c.idBytes.withUnsafeBytes { body(name(0), $0) }
        if let v = c.customIDBytes { v.withUnsafeBytes { body(name(1), $0) } } else { body(name(1), nil) }
        if let v = c.usernameBytes { v.withUnsafeBytes { body(name(2), $0) } } else { body(name(2), nil) }
        if let cr = credential {
            cr.identifierBytes.withUnsafeBytes { body(name(3), $0) }
            body(name(4), nil)
        } else {
            body(name(3), nil)
            let t = PluginContext.anonymousTrue
            body(name(4), UnsafeRawBufferPointer(start: t.utf8Start, count: t.utf8CodeUnitCount))
        }
    }

    /// Writes the auth headers (`Name: value\r\n` each, cleared ones left out) but those a set/remove
    /// entry of `edits` names (a later edit wins). One call from the request writer, values read in
    /// place: ~5 Optional array copies (retain + release each) less than `authHeaderValue` per header.
    public func writeAuthHeaders(to w: inout HeadWriter, unless edits: HeaderEdits?) {
        guard authenticated, let c = consumer else { return }
        for k in 0 ..< PluginContext.authHeaderCount {
            let name = PluginContext.authHeaderName(k)
            if let e = edits {
                let raw = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
                if e.mayHide(raw), e.hides(raw) { continue }
            }
            switch k {
            case 0: PluginContext.putLine(&w, name, c.idBytes)
            case 1: if let v = c.customIDBytes { PluginContext.putLine(&w, name, v) }
            case 2: if let v = c.usernameBytes { PluginContext.putLine(&w, name, v) }
            case 3: if let cr = credential { PluginContext.putLine(&w, name, cr.identifierBytes) }
            default: if credential == nil { w.put(name); w.put(": true\r\n") }
            }
        }
    }

    @inline(__always) private static func putLine(_ w: inout HeadWriter, _ name: StaticString, _ value: borrowing [UInt8]) {
        w.put(name); w.put(": "); w.put(value); w.put("\r\n")
    }

    /// True when a request header with this name is one of the auth headers (case-insensitive).
    @inline(__always) public static func isAuthHeader(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        // Length first (one compare for almost every header), then the one or two names of that length.
        switch name.count {
        case 13: return equalsFolded(name, authHeaderName(0))
        case 19: return equalsFolded(name, authHeaderName(2))
        case 20: return equalsFolded(name, authHeaderName(1)) || equalsFolded(name, authHeaderName(4))
        case 23: return equalsFolded(name, authHeaderName(3))
        default: return false
        }
    }

    /// ASCII case-insensitive equality of a header name with a name of the same length.
    @inline(__always) static func equalsFolded(_ name: UnsafeBufferPointer<UInt8>, _ s: StaticString) -> Bool {
        let p = s.utf8Start
        for i in 0 ..< name.count where (name[i] | 0x20) != (p[i] | 0x20) { return false }
        return true
    }

    /// The value the upstream request will carry for `name` from the plugins (edits, then the auth
    /// headers); nil when none. For tests and plugins reading what earlier ones did.
    public func upstreamValue(of name: String) -> String? {
        if let v = upstreamHeaders.value(of: name) { return v }
        var r: String? = nil
        let lname = name.lowercased()
        forEachAuthHeader { n, v in
            if String(decoding: n, as: UTF8.self).lowercased() == lname, let v { r = String(decoding: v, as: UTF8.self) }
        }
        return r
    }

    /// True when the upstream request will not carry `name` because a plugin cleared it.
    public func upstreamClears(_ name: String) -> Bool {
        if upstreamHeaders.removes(name) { return true }
        var cleared = false
        let lname = name.lowercased()
        forEachAuthHeader { n, v in if String(decoding: n, as: UTF8.self).lowercased() == lname && v == nil { cleared = true } }
        return cleared
    }
}
