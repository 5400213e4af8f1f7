// GWTLS.SessionCache: the TLS session cache every worker shares, in the shared segment's TLS cache area
// (nginx's `ssl_session_cache shared:SSL:<ssl_session_cache_size>`). The table and OpenSSL's external
// cache callbacks are C (CSSL sessioncache.c, where the layout and invariants are written): OpenSSL calls
// them inside a handshake. The master formats the area once, before any worker; a worker attaches it
// before it makes its server contexts, and every context (the default one and those chosen per SNI)
// then stores and finds sessions there. Sizes are fixed at start (a reload keeps the running size).
import CSSL

public enum SessionCache {
    /// The smallest ssl_session_cache_size (nginx refuses a zone under 8 pages).
    public static var minimumSize: Int { Int(gw_sc_min_size()) }

    public struct Stats: Sendable, Equatable {
        public var capacityBytes: UInt64, usedBytes: UInt64, entries: UInt64
        public var stores: UInt64, hits: UInt64, misses: UInt64
        public var expired: UInt64, evictions: UInt64, removed: UInt64, tooBig: UInt64, recoveries: UInt64
    }

    /// Master: lays out an empty cache in `size` bytes (zeroed or not) at `area`.
    public static func format(area: UnsafeMutableRawPointer, size: Int) throws(TLSError) {
        guard gw_sc_format(area, size) == 0 else {
            throw TLSError("ssl_session_cache_size: \(size) bytes cannot hold a session cache (at least \(minimumSize))")
        }
    }

    /// Worker: server contexts made afterwards keep their sessions in the cache at `area`.
    public static func attach(area: UnsafeMutableRawPointer) { gw_tls_session_cache_attach(area) }

    /// The cache's counters (nil: not formatted).
    public static func stats(area: UnsafeMutableRawPointer) -> Stats? {
        var s = gw_sess_cache_stats()
        guard gw_sc_stats(area, &s) == 0 else { return nil }
        return Stats(capacityBytes: s.capacity_bytes, usedBytes: s.used_bytes, entries: s.entries, stores: s.stores,
                     hits: s.hits, misses: s.misses, expired: s.expired, evictions: s.evictions, removed: s.removed,
                     tooBig: s.too_big, recoveries: s.recoveries)
    }

    /// The table without OpenSSL (tests): `put` stores `der` under `id` until `expires` (unix seconds).
    public static func put(area: UnsafeMutableRawPointer, id: [UInt8], der: [UInt8], expires: Int64, now: Int64) -> Bool {
        id.withUnsafeBufferPointer { i in
            der.withUnsafeBufferPointer { d in
                gw_sc_put(area, i.baseAddress, UInt32(i.count), d.baseAddress, UInt32(d.count), expires, now) == 0
            }
        }
    }

    /// The bytes stored under `id` at time `now` (nil: unknown or expired).
    public static func get(area: UnsafeMutableRawPointer, id: [UInt8], now: Int64) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: Int(GW_SC_MAX_SESSION))
        let n = id.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                gw_sc_get(area, i.baseAddress, UInt32(i.count), now, o.baseAddress, UInt32(o.count))
            }
        }
        return n > 0 ? Array(out.prefix(Int(n))) : nil
    }

    @discardableResult
    public static func remove(area: UnsafeMutableRawPointer, id: [UInt8]) -> Bool {
        id.withUnsafeBufferPointer { gw_sc_remove(area, $0.baseAddress, UInt32($0.count)) == 1 }
    }
}
