// GWPluginState.MetricsTable: the prometheus plugin's counters and histogram buckets (Kong's
// `prometheus_metrics` shm), one table for the node in the plugin area, sized by
// `prometheus_metrics_size`. Layout and the observation step: CGWMetrics.h.
//
// Invariants:
//  - One row per label set (service, route, consumer), found by a 128-bit hash of the labels in an
//    open-addressing table (home = multiply-shift of the hash, linear probe of at most 64 rows).
//    Rows are claimed lock-free (CAS on `tag`) by whichever process first needs them and never freed:
//    counts survive reloads and worker restarts. The request path never takes a lock: a worker
//    resolves a row once per label set and configuration generation (the plugin caches the index),
//    then each exchange is a few relaxed atomic adds (gw_metrics_observe).
//  - A full probe window (or labels longer than the row's label area) drops the observation and counts
//    it in the header (`full`, `too_long`); a 17th status code of one row counts in `codes_full`.
//  - A scrape (the master) reads rows in state 2 with atomic loads; it never blocks a worker.
#if canImport(Glibc)
import Glibc
#endif
import CGWShims

public struct MetricsTableStats: Sendable, Equatable {
    public var capacity: Int
    public var used: Int
    public var full: UInt64
    public var codesFull: UInt64
    public var tooLong: UInt64
}

/// A view of the table in shared memory (copy it freely).
public struct MetricsTable: @unchecked Sendable {
    public static let rowSize = MemoryLayout<gw_metric_row>.stride
    public static let labelBytes = Int(GW_METRICS_LABEL_BYTES)
    /// resolve(): the table has no free row in the key's probe window.
    public static let full: Int32 = -1
    /// resolve(): the three labels do not fit in a row.
    public static let tooLong: Int32 = -2

    /// Observation flags (a prometheus instance's config).
    public static let flagStatus = UInt32(GW_METRICS_STATUS)
    public static let flagLatency = UInt32(GW_METRICS_LATENCY)
    public static let flagBandwidth = UInt32(GW_METRICS_BANDWIDTH)

    public let header: UnsafeMutablePointer<gw_metrics_header>
    let rows: UnsafeMutablePointer<gw_metric_row>
    public let capacity: Int
    public let size: Int

    public static func capacity(forSize size: Int) -> Int {
        max(0, (size - MemoryLayout<gw_metrics_header>.stride) / rowSize)
    }

    init(header: UnsafeMutablePointer<gw_metrics_header>, capacity: Int, size: Int) {
        self.header = header
        rows = (UnsafeMutableRawPointer(header) + MemoryLayout<gw_metrics_header>.stride).assumingMemoryBound(to: gw_metric_row.self)
        self.capacity = capacity
        self.size = size
    }

    /// Lays out a table in `size` zeroed bytes at `base` (the master, once, before workers start).
    public static func format(at base: UnsafeMutableRawPointer, size: Int) -> MetricsTable? {
        let cap = capacity(forSize: size)
        guard cap >= 1 else { return nil }
        let h = base.assumingMemoryBound(to: gw_metrics_header.self)
        h.pointee.layout_version = UInt32(GW_METRICS_LAYOUT_VERSION)
        h.pointee.row_size = UInt32(rowSize)
        h.pointee.capacity = UInt64(cap)
        h.pointee.rows_offset = UInt64(MemoryLayout<gw_metrics_header>.stride)
        gw_atomic_store_u64(&h.pointee.magic, GW_METRICS_MAGIC)
        return MetricsTable(header: h, capacity: cap, size: size)
    }

    /// A worker (or a test's child process): the table the master laid out.
    public init?(attaching base: UnsafeMutableRawPointer, size: Int) {
        let h = base.assumingMemoryBound(to: gw_metrics_header.self)
        guard size >= MemoryLayout<gw_metrics_header>.stride, h.pointee.magic == GW_METRICS_MAGIC,
              h.pointee.layout_version == UInt32(GW_METRICS_LAYOUT_VERSION), h.pointee.row_size == UInt32(MetricsTable.rowSize),
              Int(h.pointee.capacity) <= MetricsTable.capacity(forSize: size), h.pointee.capacity >= 1 else { return nil }
        self.init(header: h, capacity: Int(h.pointee.capacity), size: size)
    }

    /// The 128-bit key of a label set (FNV-1a over the lengths and bytes, two seeds).
    static func key(_ s: UnsafeRawBufferPointer, _ r: UnsafeRawBufferPointer, _ c: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x8422_2325_cbf2_9ce4
        @inline(__always) func mix(_ x: UInt8) {
            a = (a ^ UInt64(x)) &* 0x0000_0100_0000_01b3
            b = (b ^ UInt64(x)) &* 0x9E37_79B9_7F4A_7C15
            b ^= b >> 29
        }
        for part in [s, r, c] {
            let n = part.count
            mix(UInt8(truncatingIfNeeded: n)); mix(UInt8(truncatingIfNeeded: n >> 8))
            for x in part { mix(x) }
        }
        return (a, b)
    }

    /// The row of a label set: found, or claimed now. `MetricsTable.full` / `.tooLong` when it cannot
    /// have one (counted in the header). Not on the per-request path: callers cache the index.
    public func resolve(service: UnsafeRawBufferPointer, route: UnsafeRawBufferPointer,
                        consumer: UnsafeRawBufferPointer) -> Int32 {
        guard service.count + route.count + consumer.count <= MetricsTable.labelBytes else {
            gw_metric_add(&header.pointee.too_long, 1)
            return MetricsTable.tooLong
        }
        let (hi, lo) = MetricsTable.key(service, route, consumer)
        let tag = hi | 1
        var i = Int(truncatingIfNeeded: lo.multipliedFullWidth(by: UInt64(capacity)).high)
        for _ in 0 ..< min(Int(GW_METRICS_PROBE_LIMIT), capacity) {
            let row = rows + i
            var t = gw_atomic_load_u64(&row.pointee.tag)
            if t == 0 {
                if gw_atomic_cas_u64(&row.pointee.tag, 0, tag) != 0 {
                    row.pointee.key_lo = lo
                    row.pointee.service_len = UInt16(service.count)
                    row.pointee.route_len = UInt16(route.count)
                    row.pointee.consumer_len = UInt16(consumer.count)
                    withUnsafeMutableBytes(of: &row.pointee.labels) { l in
                        var o = 0
                        for part in [service, route, consumer] {
                            if part.count > 0 { (l.baseAddress! + o).copyMemory(from: part.baseAddress!, byteCount: part.count) }
                            o += part.count
                        }
                    }
                    gw_atomic_store_u32(&row.pointee.state, 2)
                    _ = gw_atomic_add_u64(&header.pointee.used, 1)
                    return Int32(i)
                }
                t = gw_atomic_load_u64(&row.pointee.tag)
            }
            if t == tag {
                // Same hash: the same label set (a claim in progress counts at once; labels follow).
                if gw_metric_load_u32(&row.pointee.state) != 2 || row.pointee.key_lo == lo { return Int32(i) }
            }
            i += 1
            if i == capacity { i = 0 }
        }
        gw_metric_add(&header.pointee.full, 1)
        return MetricsTable.full
    }

    /// Counts one exchange in row `index` (from resolve). Returns false when its status code was dropped.
    @inline(__always)
    public func observe(row index: Int32, flags: UInt32, statusKey: UInt32, kongMs: Int, upstreamMs: Int, requestMs: Int,
                        ingress: Int, egress: Int) -> Bool {
        gw_metrics_observe(header, rows + Int(index), flags, statusKey, Int64(kongMs), Int64(upstreamMs), Int64(requestMs),
                           UInt64(max(0, ingress)), UInt64(max(0, egress))) == 0
    }

    /// One observation dropped for a row that resolve() could not give (`full` or `tooLong`).
    @inline(__always) public func countDropped(_ reason: Int32) {
        if reason == MetricsTable.tooLong { gw_metric_add(&header.pointee.too_long, 1) } else { gw_metric_add(&header.pointee.full, 1) }
    }

    /// `(status << 1 | kong) + 1`: the code slot key of a status and its source.
    @inline(__always) public static func statusKey(_ status: Int, kongSource: Bool) -> UInt32 {
        UInt32(truncatingIfNeeded: (status & 0x7fff) << 1 | (kongSource ? 1 : 0)) &+ 1
    }

    public var stats: MetricsTableStats {
        MetricsTableStats(capacity: capacity, used: Int(gw_atomic_load_u64(&header.pointee.used)),
                          full: gw_metric_load(&header.pointee.full), codesFull: gw_metric_load(&header.pointee.codes_full),
                          tooLong: gw_metric_load(&header.pointee.too_long))
    }

    /// Bytes in use (header + claimed rows), for /status and kong_memory_lua_shared_dict_bytes.
    public var allocatedBytes: Int { MemoryLayout<gw_metrics_header>.stride + stats.used * MetricsTable.rowSize }

    /// Every ready row, in table order (a scrape; rows may be counted into meanwhile).
    public func forEachRow(_ body: (MetricsRowView) -> Void) {
        for i in 0 ..< capacity {
            let row = rows + i
            guard gw_atomic_load_u64(&row.pointee.tag) != 0, gw_metric_load_u32(&row.pointee.state) == 2 else { continue }
            body(MetricsRowView(p: row))
        }
    }
}

/// One ready row as a scrape reads it (atomic loads of live counters).
public struct MetricsRowView {
    let p: UnsafeMutablePointer<gw_metric_row>
    public static let kongBuckets = Int(GW_METRICS_KONG_BUCKETS)
    public static let upstreamBuckets = Int(GW_METRICS_UPSTREAM_BUCKETS)
    public static let codeSlots = Int(GW_METRICS_CODES)

    private func label(_ from: Int, _ n: Int) -> [UInt8] {
        withUnsafeBytes(of: &p.pointee.labels) { Array($0[from ..< from + n]) }
    }
    public var service: [UInt8] { label(0, Int(p.pointee.service_len)) }
    public var route: [UInt8] { label(Int(p.pointee.service_len), Int(p.pointee.route_len)) }
    public var consumer: [UInt8] {
        label(Int(p.pointee.service_len) + Int(p.pointee.route_len), Int(p.pointee.consumer_len))
    }
    public var ingress: UInt64 { gw_metric_load(&p.pointee.ingress) }
    public var egress: UInt64 { gw_metric_load(&p.pointee.egress) }
    public var kongSum: UInt64 { gw_metric_load(&p.pointee.kong_sum) }
    public var upstreamSum: UInt64 { gw_metric_load(&p.pointee.upstream_sum) }
    public var requestSum: UInt64 { gw_metric_load(&p.pointee.request_sum) }
    public func kong(_ i: Int) -> UInt64 {
        withUnsafeMutableBytes(of: &p.pointee.kong) { gw_metric_load($0.baseAddress!.assumingMemoryBound(to: UInt64.self) + i) }
    }
    public func upstream(_ i: Int) -> UInt64 {
        withUnsafeMutableBytes(of: &p.pointee.upstream) { gw_metric_load($0.baseAddress!.assumingMemoryBound(to: UInt64.self) + i) }
    }
    public func request(_ i: Int) -> UInt64 {
        withUnsafeMutableBytes(of: &p.pointee.request) { gw_metric_load($0.baseAddress!.assumingMemoryBound(to: UInt64.self) + i) }
    }
    /// Code slot `i`: (status, answered by the gateway, count), nil when free.
    public func code(_ i: Int) -> (status: Int, kong: Bool, count: UInt64)? {
        withUnsafeMutableBytes(of: &p.pointee.codes) { b in
            let c = b.baseAddress!.assumingMemoryBound(to: gw_metric_code.self) + i
            let k = gw_metric_load_u32(&c.pointee.key)
            guard k != 0 else { return nil }
            return (Int((k - 1) >> 1), (k - 1) & 1 == 1, gw_metric_load(&c.pointee.count))
        }
    }
}
