#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// The node-wide shared segment: one MAP_SHARED mapping of a memfd made by the master before any
/// worker starts. Workers are exec'd (Master.spawnWorker), so they inherit the memfd, not the
/// mapping, and map it again (`init(attaching:)`): every worker, and every worker of a later
/// reload, sees the same bytes.
/// Layout (C structs in CGWShims.h): header, GW_MAX_WORKERS worker slots, the TLS area, then the peer area
/// (balancer + health records, laid out by GWBalancer.PeerStateTable), then the plugin area
/// (rate-limit counters + proxy cache, laid out by GWPluginState.PluginState; page-aligned), then the
/// TLS session cache (ssl_session_cache_size bytes, laid out by GWTLS.SessionCache; page-aligned).
/// Invariant: lives until the master exits; never unmapped while workers run.
public final class SharedMemory: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int
    /// The memfd behind the mapping (close-on-exec; a worker is handed it explicitly). -1 in a
    /// worker: `init(attaching:)` closes it once mapped.
    public let fd: Int32

    public init(peerAreaSize: Int, pluginAreaSize: Int = 0, tlsCacheSize: Int = 0) throws {
        let headerSize = MemoryLayout<gw_shm_header>.stride
        let slotsSize = MemoryLayout<gw_worker_slot>.stride * Int(GW_MAX_WORKERS)
        let peerOffset = (headerSize + slotsSize + Int(GW_SHM_TLS_AREA_SIZE) + 4095) & ~4095
        let pluginOffset = (peerOffset + peerAreaSize + 4095) & ~4095
        let tlsCacheOffset = (pluginOffset + pluginAreaSize + 4095) & ~4095
        let total = (tlsCacheOffset + tlsCacheSize + 4095) & ~4095
        let fd = gw_memfd_create("gateway-shm")
        guard fd >= 0 else { throw SystemError.last("memfd_create") }
        guard ftruncate(fd, off_t(total)) == 0 else {
            let e = SystemError.last("ftruncate(memfd, \(total))")
            Glibc.close(fd)
            throw e
        }
        guard let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = SystemError.last("mmap(MAP_SHARED, memfd, \(total))")
            Glibc.close(fd)
            throw e
        }
        self.fd = fd
        base = p
        size = total
        // A new memfd reads as zeros; untouched pages cost no memory.
        let h = header
        h.pointee.magic = GW_SHM_MAGIC
        h.pointee.layout_version = UInt32(GW_SHM_LAYOUT_VERSION)
        h.pointee.max_workers = UInt32(GW_MAX_WORKERS)
        h.pointee.size = UInt64(total)
        h.pointee.peer_area_offset = UInt64(peerOffset)
        h.pointee.peer_area_size = UInt64(pluginOffset - peerOffset)
        h.pointee.plugin_area_offset = UInt64(pluginOffset)
        h.pointee.plugin_area_size = UInt64(tlsCacheOffset - pluginOffset)
        h.pointee.tls_cache_offset = UInt64(tlsCacheOffset)
        h.pointee.tls_cache_size = UInt64(total - tlsCacheOffset)
        h.pointee.master_pid = Int64(getpid())
        h.pointee.started_at = UInt64(Clock.wallSeconds())
    }

    /// Maps the segment the master made, from its memfd (in an exec'd worker), and closes the
    /// descriptor (the mapping stays). Checks the magic, layout version and size, so a worker never
    /// reads a segment laid out differently.
    public init(attaching fd: Int32) throws {
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError.last("fstat(shared memory fd \(fd))") }
        let total = Int(st.st_size)
        guard total >= MemoryLayout<gw_shm_header>.stride,
              let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw SystemError.last("mmap(MAP_SHARED, shared memory fd \(fd), \(total))")
        }
        let h = p.assumingMemoryBound(to: gw_shm_header.self)
        guard h.pointee.magic == GW_SHM_MAGIC, h.pointee.layout_version == UInt32(GW_SHM_LAYOUT_VERSION),
              h.pointee.size == UInt64(total) else {
            munmap(p, total)
            throw SystemError(errno: EINVAL, call: "shared memory fd \(fd): not a gateway segment of this layout")
        }
        self.fd = -1
        base = p
        size = total
    }

    public var header: UnsafeMutablePointer<gw_shm_header> { base.assumingMemoryBound(to: gw_shm_header.self) }

    public func workerSlot(_ i: Int) -> UnsafeMutablePointer<gw_worker_slot> {
        precondition(i >= 0 && i < Int(GW_MAX_WORKERS))
        return (base + MemoryLayout<gw_shm_header>.stride).assumingMemoryBound(to: gw_worker_slot.self) + i
    }

    /// The session-ticket keys of the node (GW_SHM_TLS_AREA_SIZE bytes after the worker slots; GWTLS.TicketKeys).
    public var tlsArea: UnsafeMutableRawPointer {
        base + MemoryLayout<gw_shm_header>.stride + MemoryLayout<gw_worker_slot>.stride * Int(GW_MAX_WORKERS)
    }

    public var peerArea: UnsafeMutableRawPointer { base + Int(header.pointee.peer_area_offset) }
    public var peerAreaSize: Int { Int(header.pointee.peer_area_size) }
    public var pluginArea: UnsafeMutableRawPointer { base + Int(header.pointee.plugin_area_offset) }
    public var pluginAreaSize: Int { Int(header.pointee.plugin_area_size) }
    /// The node's TLS session cache (GWTLS.SessionCache); size 0: none.
    public var tlsCacheArea: UnsafeMutableRawPointer { base + Int(header.pointee.tls_cache_offset) }
    public var tlsCacheSize: Int { Int(header.pointee.tls_cache_size) }

    public var configGeneration: UInt64 {
        get { withUnsafeMutablePointer(to: &header.pointee.config_generation) { gw_atomic_load_u64($0) } }
    }

    public func publishGeneration(_ g: UInt64) {
        gw_atomic_store_u64(&header.pointee.config_generation, g)
    }
}
