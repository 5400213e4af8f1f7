// What a plugin is to the runtime: one compiled instance per plugin entity and configuration
// generation (its config JSON is read once, in `init`, never per request), with handlers for
// Kong's phases. Handlers run on a worker's loop: they never block, and they keep per-request
// state in the PluginContext, not in the instance (an instance serves every connection).
import GWHTTP
import GWStore

/// Kong's HTTP phases a handler implements (KONG-PLUGINS.md §1.1, §1.6).
public struct PluginPhases: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let access = PluginPhases(rawValue: 1)
    public static let headerFilter = PluginPhases(rawValue: 2)
    public static let bodyFilter = PluginPhases(rawValue: 4)
    public static let log = PluginPhases(rawValue: 8)
    /// Kong's log phase for a handler that only counts (prometheus): it gets `MetricFacts`, computed
    /// from the exchange's clocks and byte counts, not the serialized log entry.
    public static let metrics = PluginPhases(rawValue: 16)
}

/// What a metrics handler sees of an ended exchange (Kong's serializer fields it reads, as numbers).
public struct MetricFacts {
    public var status = 0
    /// Kong's `kong.response.get_source() == "service"`: the upstream answered.
    public var proxied = false
    /// Kong's latencies in ms (`upstream` is -1 when nothing was proxied).
    public var kongMs = 0
    public var upstreamMs = -1
    public var requestMs = 0
    /// Bytes received from the client (head + body) and sent to it.
    public var ingress = 0
    public var egress = 0
    public init() {}
}

/// A failure inside a handler: Kong answers 500 "An unexpected error occurred" and skips the remaining
/// access handlers; the worker goes on serving.
public struct PluginError: Error, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// One compiled plugin instance. Subclasses override the phases they implement and say so in `phases`.
open class PluginHandler {
    /// The plugin entity (id, name, scope) this instance was compiled from.
    public let entity: Plugin
    /// Kong's PRIORITY for the plugin (descending order; ties by name descending).
    public let priority: Int

    public init(entity: Plugin, priority: Int) {
        self.entity = entity
        self.priority = priority
    }

    open var phases: PluginPhases { [] }

    /// The access handler reads the request body (PluginContext.requestBody): a plan holding this
    /// instance makes the data path read the whole body before access.
    open var needsRequestBody: Bool { false }

    /// access: after routing. Set `ctx.exit…` to short-circuit (the first exit wins); throw for a 500.
    open func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {}

    /// access, second half: the handler suspended the request in `access` (`ctx.suspend()`), its reply is
    /// in the context; finish as `access` would have (headers, exit, or throw for a 500).
    open func accessResumed(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {}

    /// header_filter: the response head is about to be written; `headers` is the upstream's (empty for a
    /// response the gateway generated); `request` is the client's request head (empty when the request
    /// could not be parsed). Edit `ctx.responseHeaders`.
    open func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int, headers: borrowing HTTPHeaders) {}

    /// body_filter: a piece of the response body as it is relayed (observe only).
    open func bodyFilter(_ ctx: PluginContext, _ piece: UnsafeRawBufferPointer, last: Bool) {}

    /// The whole response body, held by the data path because a header_filter asked for it
    /// (`PluginContext.holdResponseBody`): return the new body, or nil to leave it as it is (Kong's
    /// body_filter with get_raw_body / set_raw_body). Bodies larger than the hold bound are never seen here.
    open func transformResponseBody(_ ctx: PluginContext, _ body: [UInt8]) -> [UInt8]? { nil }

    /// log: after the response was sent (or the connection ended).
    open func log(_ ctx: PluginContext, status: Int) {}

    /// metrics: the log phase of a counting handler (phase `.metrics`), with the exchange's numbers.
    open func metrics(_ ctx: PluginContext, _ facts: MetricFacts) {}
}

/// Compiles a plugin entity into a handler. `PluginRegistry.factories` holds one per runnable plugin.
public typealias PluginFactory = @Sendable (_ entity: Plugin, _ env: PluginEnvironment) throws(PluginError) -> PluginHandler
