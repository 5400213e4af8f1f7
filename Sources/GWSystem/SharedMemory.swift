#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// The node-wide shared segment: one MAP_SHARED|MAP_ANONYMOUS mapping made by the master before
/// any fork, so every worker (and every worker of a later reload) sees the same bytes.
/// Layout (C structs in CGWShims.h): header, GW_MAX_WORKERS worker slots, then the peer area
/// (balancer + health records, laid out by GWBalancer.PeerStateTable).
/// Invariant: lives until the master exits; never unmapped while workers run.
public final class SharedMemory: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int

    public init(peerAreaSize: Int) throws {
        let headerSize = MemoryLayout<gw_shm_header>.stride
        let slotsSize = MemoryLayout<gw_worker_slot>.stride * Int(GW_MAX_WORKERS)
        let peerOffset = (headerSize + slotsSize + 4095) & ~4095
        let total = (peerOffset + peerAreaSize + 4095) & ~4095
        guard let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0),
              p != MAP_FAILED else {
            throw SystemError.last("mmap(MAP_SHARED|MAP_ANONYMOUS, \(total))")
        }
        base = p
        size = total
        // Anonymous mappings are zero-filled; untouched pages cost no memory.
        let h = header
        h.pointee.magic = GW_SHM_MAGIC
        h.pointee.layout_version = UInt32(GW_SHM_LAYOUT_VERSION)
        h.pointee.max_workers = UInt32(GW_MAX_WORKERS)
        h.pointee.size = UInt64(total)
        h.pointee.peer_area_offset = UInt64(peerOffset)
        h.pointee.peer_area_size = UInt64(total - peerOffset)
        h.pointee.master_pid = Int64(getpid())
        h.pointee.started_at = UInt64(Clock.wallSeconds())
    }

    public var header: UnsafeMutablePointer<gw_shm_header> { base.assumingMemoryBound(to: gw_shm_header.self) }

    public func workerSlot(_ i: Int) -> UnsafeMutablePointer<gw_worker_slot> {
        precondition(i >= 0 && i < Int(GW_MAX_WORKERS))
        return (base + MemoryLayout<gw_shm_header>.stride).assumingMemoryBound(to: gw_worker_slot.self) + i
    }

    public var peerArea: UnsafeMutableRawPointer { base + Int(header.pointee.peer_area_offset) }
    public var peerAreaSize: Int { Int(header.pointee.peer_area_size) }

    public var configGeneration: UInt64 {
        get { withUnsafeMutablePointer(to: &header.pointee.config_generation) { gw_atomic_load_u64($0) } }
    }

    public func publishGeneration(_ g: UInt64) {
        gw_atomic_store_u64(&header.pointee.config_generation, g)
    }
}
