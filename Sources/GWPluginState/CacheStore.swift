// GWPluginState.CacheStore: the proxy-cache `memory` store shared by all workers (in progress).
#if canImport(Glibc)
import Glibc
#endif
import CGWShims

public struct CacheStore: @unchecked Sendable {
    let header: UnsafeMutablePointer<gw_cache_header>

    public static func format(at base: UnsafeMutableRawPointer, size: Int, maxEntrySize: Int) -> CacheStore? {
        guard size >= MemoryLayout<gw_cache_header>.stride else { return nil }
        let h = base.assumingMemoryBound(to: gw_cache_header.self)
        guard gw_ps_lock_init(&h.pointee.lock) == 0 else { return nil }
        h.pointee.layout_version = UInt32(GW_PLUGIN_LAYOUT_VERSION)
        h.pointee.max_entry_size = UInt64(maxEntrySize)
        gw_atomic_store_u64(&h.pointee.magic, GW_CACHE_MAGIC)
        return CacheStore(attaching: base, size: size)
    }

    public init?(attaching base: UnsafeMutableRawPointer, size: Int) {
        let h = base.assumingMemoryBound(to: gw_cache_header.self)
        guard size >= MemoryLayout<gw_cache_header>.stride, h.pointee.magic == GW_CACHE_MAGIC else { return nil }
        header = h
    }

    public var maxEntrySize: Int { Int(header.pointee.max_entry_size) }
}
