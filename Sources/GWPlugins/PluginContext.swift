// One request's plugin state, owned by a client connection and reused for every request on it
// (`reset()` between requests keeps the buffers' capacity: no allocation per request once warm).
// Worker-loop confined. The data path fills the inputs before the access phase and reads the outputs
// when it writes heads; plugins read the inputs and write the outputs.
import GWHTTP
import GWPluginState

public final class PluginContext {
    // MARK: inputs (set by the data path)

    /// The client's address as text (set once per connection).
    public let clientIP: String
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
    /// When `replacesQuery`, the query string sent upstream (without '?'; empty: no query).
    public var upstreamQuery: [UInt8] = []
    public var replacesQuery = false
    /// When `replacesPath`, the whole path sent upstream (Kong's `kong.service.request.set_path`): starts
    /// with '/', already escaped; it replaces the service-path/route-path join; the query is still appended.
    public var upstreamPath: [UInt8] = []
    public var replacesPath = false
    /// When set, the method sent upstream (upper-case token, Kong's `kong.service.request.set_method`).
    public var upstreamMethod: String? = nil

    /// Short-circuit (Kong's `kong.response.exit` / `error`): 0 when none. The first exit wins.
    public private(set) var exitStatus = 0
    /// Kong-format JSON error message (`{"message": …}`), for `error`-style exits.
    public private(set) var exitMessage: String? = nil
    /// A raw body (with `exitContentType`), for `exit`-style answers; empty with no message: no body.
    public private(set) var exitBody: [UInt8] = []
    public private(set) var exitContentType: String? = nil
    /// Set when a handler failed; the message is for the error log.
    public private(set) var failure: String? = nil

    /// The instances collected during access, in execution order; their header_filter, body_filter
    /// and log handlers run on the response, whichever produced it.
    public internal(set) var collected: [PluginHandler] = []
    /// Union of the collected instances' phases (the data path skips a phase nobody needs).
    public internal(set) var phases: PluginPhases = []
    /// Per collected instance, 32 bits of per-request state (Kong's `kong.ctx.plugin` for the flags
    /// plugins keep between phases); `current` is the index of the instance being called.
    var flags: [UInt32] = []
    var current = 0

    /// The calling instance's per-request flag bits.
    public func flag(_ bit: UInt32) -> Bool { current < flags.count && flags[current] & bit != 0 }
    public func setFlag(_ bit: UInt32) { if current < flags.count { flags[current] |= bit } }

    /// Scratch buffers for handlers (decoded keys, rebuilt query strings); valid only during one call.
    public var scratch: [UInt8] = []
    public var scratch2: [UInt8] = []
    public var scratch3: [UInt8] = []

    // MARK: proxy-cache per-request state (one instance can store per request: the collected one)
    var cacheKey = CacheKey(0, 0, 0, 0)
    var cacheKeyHex: [UInt8] = []
    var cacheTTL: Int64 = 0
    /// The blob being captured for the store (bounded by the store's maximum entry size).
    var cacheCapture: [UInt8] = []
    /// Reused lookup buffer (grown once to the largest entry read).
    let cacheBuffer = CacheBuffer(capacity: 16384)
    // MARK: request-transformer per-request scratch (rendered values, query arguments)
    var xformValues: [UInt8] = []
    var xformEnds: [Int] = []
    var xformArgs: [XformArg] = []
    var xformKeys: [Range<Int>] = []

    /// The response is a cache Hit produced in access (the data path may say so in its logs).
    public var servedFromCache = false

    /// Hashes of the client address (rate-limiting's `ip` identifier), computed once per connection.
    lazy var clientIPHash: (UInt64, UInt64) = identifierHashes(clientIP.utf8)

    public init(clientIP: String) {
        self.clientIP = clientIP
        collected.reserveCapacity(8)
        flags.reserveCapacity(8)
        upstreamQuery.reserveCapacity(128)
    }

    /// Forgets the previous request.
    public func reset() {
        routeID = nil; serviceID = nil
        consumer = nil; credential = nil
        if !upstreamHeaders.isEmpty { upstreamHeaders.removeAll() }
        if !responseHeaders.isEmpty { responseHeaders.removeAll() }
        if replacesQuery { upstreamQuery.removeAll(keepingCapacity: true); replacesQuery = false }
        if replacesPath { upstreamPath.removeAll(keepingCapacity: true); replacesPath = false }
        upstreamMethod = nil
        if !uriCaptures.isEmpty { uriCaptures = [:] }   // usually the route decision's dictionary: drop the reference
        exitStatus = 0; exitMessage = nil; exitContentType = nil; failure = nil; servedFromCache = false
        if !exitBody.isEmpty { exitBody.removeAll(keepingCapacity: true) }
        if !collected.isEmpty { collected.removeAll(keepingCapacity: true); flags.removeAll(keepingCapacity: true) }
        phases = []
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

    /// A handler failed: 500 "An unexpected error occurred" (unless an exit was already chosen).
    func fail(_ message: String) {
        if failure == nil { failure = message }
        error(500, "An unexpected error occurred")
    }

    /// Authenticates `consumer` with `credential` (Kong's `kong.client.authenticate`) and sets the
    /// upstream headers Kong's auth plugins set; a header whose value is missing is cleared, so a client
    /// cannot send its own.
    public func authenticate(_ consumer: ConsumerRecord, credential: CredentialRecord?) {
        self.consumer = consumer
        self.credential = credential
        upstreamHeaders.set("X-Consumer-ID", bytes: consumer.idBytes)
        if let c = consumer.customIDBytes { upstreamHeaders.set("X-Consumer-Custom-ID", bytes: c) } else { upstreamHeaders.remove("X-Consumer-Custom-ID") }
        if let u = consumer.usernameBytes { upstreamHeaders.set("X-Consumer-Username", bytes: u) } else { upstreamHeaders.remove("X-Consumer-Username") }
        if let cr = credential {
            upstreamHeaders.set("X-Credential-Identifier", bytes: cr.identifierBytes)
            upstreamHeaders.remove("X-Anonymous-Consumer")
        } else {
            upstreamHeaders.remove("X-Credential-Identifier")
            upstreamHeaders.set("X-Anonymous-Consumer", "true")
        }
    }
}
