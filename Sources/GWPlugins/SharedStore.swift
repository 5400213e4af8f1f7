// The node's shared-memory plugin state (GWPluginState) as plugins see it: the exact rate-limit
// counters (and, with database = postgres, the cluster policy's) and the proxy-cache store. One per
// process (master or worker), made from the attached segment; handed to every PluginSet as its
// environment's `shared` object.
import GWPluginState

public final class SharedPluginStore: PluginSharedStore, RateLimitCounterStore {
    public let state: PluginState
    private let counters: RateLimitTable

    public init(state: PluginState) {
        self.state = state
        counters = state.counters
    }

    public var rateLimitCounters: RateLimitCounterStore? { self }
    public var cacheStore: CacheStore? { state.cache }
    public var metricsTable: MetricsTable? { state.metrics }
    public var clusterCounters: ClusterCounterTable? { state.cluster }

    @inline(__always)
    public func consume(keys: UnsafeBufferPointer<RateLimitKey>, limits: UnsafeBufferPointer<Int64>,
                        windowEnds: UnsafeBufferPointer<Int64>, now: Int64,
                        usagesOut: UnsafeMutableBufferPointer<Int64>) -> RateLimitResult {
        counters.consume(keys: keys, limits: limits, windowEnds: windowEnds, now: now, usagesOut: usagesOut)
    }
}
