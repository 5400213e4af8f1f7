// GWPluginState: state the plugins of all workers must agree on, in the node's shared segment
// (GWSystem.SharedMemory's plugin area): the rate-limiting counters (RateLimitTable), the
// proxy-cache store (CacheStore) and the prometheus metrics (MetricsTable). Depends only on GWSystem and CGWShims.
//
// Invariants:
//  - The master lays the area out once, when it creates the segment (before any worker starts), and
//    initialises the tables' locks; workers (and later generations of workers after a reload) only
//    attach: they read the offsets from gw_plugin_area_header and check magic, version and sizes.
//  - The area lives as long as the master, so counters and cached responses survive reloads. Its
//    sizes are fixed when the master starts: a changed rate_limiting_counters_size,
//    proxy_cache_size or proxy_cache_max_entry_size needs a restart (a reload logs that it keeps
//    the running sizes).
//  - Layout: [gw_plugin_area_header (128 B)][counters (page-aligned)][cache store (page-aligned)]
//    [metrics table (page-aligned; prometheus_metrics_size)][cluster counter table (page-aligned; only with
//    database = postgres, clusterTableSize)];
//    only touched pages cost memory (a fresh memfd reads as zeros).
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWSystem

public struct PluginStateError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

public final class PluginState: @unchecked Sendable {
    public let segment: SharedMemory
    public let counters: RateLimitTable
    public let cache: CacheStore
    /// The prometheus plugin's table (nil in an area laid out without one: metrics size 0).
    public let metrics: MetricsTable?
    /// rate-limiting's `cluster` counters (nil unless the master laid one out: database = postgres).
    public let cluster: ClusterCounterTable?

    @inline(__always) static func pageAlign(_ n: Int) -> Int { (n + 4095) & ~4095 }

    /// Bytes of the plugin area for these sizes (what the master passes to SharedMemory).
    public static func areaSize(countersSize: Int, cacheSize: Int, metricsSize: Int = 0, clusterSize: Int = 0) -> Int {
        pageAlign(MemoryLayout<gw_plugin_area_header>.stride) + pageAlign(countersSize) + pageAlign(cacheSize) + pageAlign(metricsSize)
            + pageAlign(clusterSize)
    }

    /// Bytes of the cluster counter table with database = postgres: 8191 rows of 256 B (2 MiB).
    public static let clusterTableSize = 2 << 20

    /// The master: lays out the plugin area of a fresh segment made with
    /// `pluginAreaSize: areaSize(countersSize:cacheSize:)`.
    public init(formatting segment: SharedMemory, countersSize: Int, cacheSize: Int, maxEntrySize: Int,
                metricsSize: Int = 0, clusterSize: Int = 0, now: Int64 = 0) throws {
        let area = segment.pluginArea
        guard segment.pluginAreaSize >= PluginState.areaSize(countersSize: countersSize, cacheSize: cacheSize,
                                                             metricsSize: metricsSize, clusterSize: clusterSize) else {
            throw PluginStateError(description: "plugin area of \(segment.pluginAreaSize) bytes is too small")
        }
        let h = area.assumingMemoryBound(to: gw_plugin_area_header.self)
        let countersOffset = PluginState.pageAlign(MemoryLayout<gw_plugin_area_header>.stride)
        let cacheOffset = countersOffset + PluginState.pageAlign(countersSize)
        let metricsOffset = cacheOffset + PluginState.pageAlign(cacheSize)
        let clusterOffset = metricsOffset + PluginState.pageAlign(metricsSize)
        guard let counters = RateLimitTable.format(at: area + countersOffset, size: countersSize) else {
            throw PluginStateError(description: "rate_limiting_counters_size \(countersSize) is too small")
        }
        guard let cache = CacheStore.format(at: area + cacheOffset, size: cacheSize, maxEntrySize: maxEntrySize) else {
            throw PluginStateError(description: "proxy_cache_size \(cacheSize) is too small")
        }
        var metrics: MetricsTable? = nil
        if metricsSize > 0 {
            guard let m = MetricsTable.format(at: area + metricsOffset, size: metricsSize) else {
                throw PluginStateError(description: "prometheus_metrics_size \(metricsSize) is too small")
            }
            metrics = m
        }
        var cluster: ClusterCounterTable? = nil
        if clusterSize > 0 {
            guard let t = ClusterCounterTable.format(at: area + clusterOffset, size: clusterSize, now: now) else {
                throw PluginStateError(description: "cluster counter table of \(clusterSize) bytes is too small")
            }
            cluster = t
        }
        h.pointee.cluster_offset = UInt64(clusterOffset)
        h.pointee.cluster_size = UInt64(clusterSize)
        h.pointee.metrics_offset = UInt64(metricsOffset)
        h.pointee.metrics_size = UInt64(metricsSize)
        h.pointee.layout_version = UInt32(GW_PLUGIN_LAYOUT_VERSION)
        h.pointee.counters_offset = UInt64(countersOffset)
        h.pointee.counters_size = UInt64(countersSize)
        h.pointee.cache_offset = UInt64(cacheOffset)
        h.pointee.cache_size = UInt64(cacheSize)
        gw_atomic_store_u64(&h.pointee.magic, GW_PLUGIN_MAGIC)
        self.segment = segment
        self.counters = counters
        self.cache = cache
        self.metrics = metrics
        self.cluster = cluster
    }

    /// A worker (or a test's child process): attaches the area the master laid out.
    public init(attaching segment: SharedMemory) throws {
        let area = segment.pluginArea
        let size = segment.pluginAreaSize
        let h = area.assumingMemoryBound(to: gw_plugin_area_header.self)
        guard size >= MemoryLayout<gw_plugin_area_header>.stride, h.pointee.magic == GW_PLUGIN_MAGIC,
              h.pointee.layout_version == UInt32(GW_PLUGIN_LAYOUT_VERSION) else {
            throw PluginStateError(description: "shared segment has no plugin area of this layout")
        }
        let co = Int(h.pointee.counters_offset), cs = Int(h.pointee.counters_size)
        let xo = Int(h.pointee.cache_offset), xs = Int(h.pointee.cache_size)
        guard co + cs <= size, xo + xs <= size,
              let counters = RateLimitTable(attaching: area + co, size: cs),
              let cache = CacheStore(attaching: area + xo, size: xs) else {
            throw PluginStateError(description: "shared segment's plugin tables do not match this layout")
        }
        let mo = Int(h.pointee.metrics_offset), ms = Int(h.pointee.metrics_size)
        var metrics: MetricsTable? = nil
        if ms > 0 {
            guard mo + ms <= size, let m = MetricsTable(attaching: area + mo, size: ms) else {
                throw PluginStateError(description: "shared segment's metrics table does not match this layout")
            }
            metrics = m
        }
        let lo = Int(h.pointee.cluster_offset), ls = Int(h.pointee.cluster_size)
        var cluster: ClusterCounterTable? = nil
        if ls > 0 {
            guard lo + ls <= size, let t = ClusterCounterTable(attaching: area + lo, size: ls) else {
                throw PluginStateError(description: "shared segment's cluster counter table does not match this layout")
            }
            cluster = t
        }
        self.segment = segment
        self.counters = counters
        self.cache = cache
        self.metrics = metrics
        self.cluster = cluster
    }

    /// The sizes the running area was laid out with (a reload compares them with its configuration).
    public var countersSize: Int { Int(segment.pluginArea.assumingMemoryBound(to: gw_plugin_area_header.self).pointee.counters_size) }
    public var cacheSize: Int { Int(segment.pluginArea.assumingMemoryBound(to: gw_plugin_area_header.self).pointee.cache_size) }
    public var maxEntrySize: Int { cache.maxEntrySize }
    public var metricsSize: Int { Int(segment.pluginArea.assumingMemoryBound(to: gw_plugin_area_header.self).pointee.metrics_size) }
}
