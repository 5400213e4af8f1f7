import CGWShims
import Glibc

/// A handle on one record of the shared peer table (an index; valid for the life of the segment because
/// records are never deleted or moved).
public struct PeerSlot: Sendable, Hashable, Comparable {
    public let index: UInt32
    public init(index: UInt32) { self.index = index }
    public static func < (a: PeerSlot, b: PeerSlot) -> Bool { a.index < b.index }
}

/// Why a record last changed state (stored in `last_reason`).
public enum TransitionReason: UInt32, Sendable {
    case none = 0
    case successes = 1       // healthy.successes reached
    case httpFailures = 2    // unhealthy.http_failures reached
    case tcpFailures = 3     // unhealthy.tcp_failures reached
    case timeouts = 4        // unhealthy.timeouts reached
    case manual = 5          // PUT .../healthy | .../unhealthy
    case reset = 6           // address removed from the configuration (forget): back to healthy, counters 0

    public var text: String {
        switch self {
        case .none: return "none"
        case .successes: return "successes threshold reached"
        case .httpFailures: return "http failures threshold reached"
        case .tcpFailures: return "tcp failures threshold reached"
        case .timeouts: return "timeouts threshold reached"
        case .manual: return "manual override"
        case .reset: return "target removed from configuration"
        }
    }
}

/// A snapshot of one record, for the Admin API (`/upstreams/{u}/health`) and logs.
public struct PeerHealthState: Sendable, Equatable {
    public var healthy: Bool
    /// The last transition was a manual override that no automatic transition has superseded yet.
    public var manual: Bool
    /// Healthy with some failures counted (Kong `mostly_healthy`) / unhealthy with some successes (`mostly_unhealthy`).
    public var intermediate: Bool
    public var successes: Int
    public var httpFailures: Int
    public var tcpFailures: Int
    public var timeouts: Int
    public var dnsError: Bool
    public var lastTransitionMillis: UInt64     // unix ms, 0 = never
    public var lastReason: TransitionReason
    public var activeConnections: Int           // all workers
    public var ewmaMicros: Int                  // 0 = no latency sample yet
    public var requests: UInt64
    public var failures: UInt64
}

/// The packed health word (`gw_peer_record.health`), updated only by compare-and-swap:
///
///     bits  0..7   SUCCESS counter        (saturating at 255)
///     bits  8..15  HTTP failure counter
///     bits 16..23  TCP failure counter
///     bits 24..31  TIMEOUT counter
///     bit  32      unhealthy              (0 = healthy, so a zeroed record is healthy)
///     bit  33      intermediate           (mostly_healthy / mostly_unhealthy)
///     bit  34      manual                 (last transition was PUT healthy/unhealthy)
///     bits 48..63  transition sequence    (wrapping; +1 on every transition/reset/manual set)
public struct HealthWord: Sendable, Equatable {
    public var raw: UInt64
    public init(raw: UInt64) { self.raw = raw }

    static let unhealthyBit: UInt64 = 1 << 32
    static let intermediateBit: UInt64 = 1 << 33
    static let manualBit: UInt64 = 1 << 34
    static let countersMask: UInt64 = 0xFFFF_FFFF
    static let failuresMask: UInt64 = 0xFFFF_FF00

    public var healthy: Bool { raw & HealthWord.unhealthyBit == 0 }
    public var intermediate: Bool { raw & HealthWord.intermediateBit != 0 }
    public var manual: Bool { raw & HealthWord.manualBit != 0 }
    public var sequence: UInt16 { UInt16(truncatingIfNeeded: raw >> 48) }
    /// Counter `k`: 0 success, 1 http, 2 tcp, 3 timeout.
    public func counter(_ k: Int) -> Int { Int((raw >> UInt64(8 * k)) & 0xFF) }
}

/// A view over the balancer's peer area of the shared segment.
///
/// ## Layout (peer area, see `CGWPeers.h`)
///
///     offset 0     gw_peer_table_header, 128 bytes:
///                    magic u64 "GWPEERS1", layout_version u32, record_size u32 (384), capacity u32 (power of 2),
///                    count u32 (published records), transitions u64 (bumped on any health change, any process),
///                    records_offset u64 (= 128), worker_rows u32 (= GW_MAX_WORKERS), inflight_offset u64
///     offset 128   gw_peer_record[capacity], 384 bytes each (6 cache lines):
///       line 0  key + health, read on every pick, written rarely:
///                 key_state u32 (0 empty, 1 published, 2 being re-keyed), port u16, family u8 (4|6), name_len u8,
///                 key_hash u64 (FNV-1a 64 of name, family, ip, port), ip[16],
///                 health u64 (packed word, see `HealthWord`: 4 x 8-bit counters, unhealthy, intermediate,
///                 manual, 16-bit transition sequence; every update is one CAS),
///                 last_transition_ms u64 (unix ms), last_reason u32 (`TransitionReason`), dns_state u32,
///                 retired_ms u64 (unix ms when forgotten; 0 = in use)
///       line 1  per-request counters, written by every worker:
///                 active u64 (in-flight picks of all workers), ewma u64 ((ewma_us << 32) | monotonic ms low 32
///                 bits of the last sample; 0 = none), requests u64, failures u64
///       lines 2..5  name[256]: the upstream name (UTF-8, up to 255 bytes)
///     offset 128 + capacity*384: in-flight rows, u32[worker_rows][capacity]: row w counts the picks worker w
///                  holds on each record (written only by worker w); after a worker dies the master calls
///                  `reclaimWorker(w)`, which subtracts the row from `active` and zeroes it
///
/// Sizing: `bytesNeeded(capacity:)` = 128 + capacity x (384 + 4 x 64) bytes, e.g. 16 384 records ≈ 10.5 MB;
/// inserts are refused above a 7/8 load factor.
///
/// Keys are (upstream NAME, ip, port), so health survives balancer rebuilds, upstream PATCH, target CRUD on
/// other targets, reloads and upstream re-creation under the same name. Open addressing with linear probing
/// over `capacity` (power of two) records; records are never emptied: the master `forget`s an address that left
/// the configuration (state reset to healthy, `retired_ms` set, key kept), so a re-added target starts healthy
/// (Kong re-creates its checker entry) and slots cached by workers stay valid; after
/// `defaultReuseGraceSeconds` (300 s) with nothing in flight a retired record may be re-keyed in place for a
/// new address (tombstone reuse), so address churn does not fill the table.
///
/// Concurrency: only the master calls `format` and `ensureSlot` (single writer; it writes the key and then
/// publishes it with a release store of key_state). Every other field is updated with atomics from any process.
public struct PeerStateTable: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int
    /// Records that fit in `size` (a power of two, or 0).
    public let capacity: Int
    /// Per-worker in-flight rows (one per worker slot of the segment).
    public let workerRows: Int
    /// This process's worker slot (its in-flight row), or -1 (master, tools, tests).
    public private(set) var workerIndex: Int = -1

    public static let recordSize = Int(GW_PEER_RECORD_SIZE)
    public static let headerSize = Int(GW_PEER_HEADER_SIZE)
    public static let maxNameBytes = Int(GW_PEER_NAME_MAX)
    public static let defaultWorkerRows = Int(GW_MAX_WORKERS)

    /// Bytes the master should reserve for `capacity` records (rounded up to a power of two) plus the per-worker
    /// in-flight rows. Keep the load factor low: e.g. 2 x the expected number of addresses.
    public static func bytesNeeded(capacity: Int, workerRows: Int = defaultWorkerRows) -> Int {
        var c = 1
        while c < capacity { c <<= 1 }
        return headerSize + c * (recordSize + 4 * workerRows)
    }

    /// A view; does not write. Every process must use the same `size` and `workerRows` (the defaults).
    /// `base` must be 8-byte aligned (64 recommended) inside a MAP_SHARED mapping.
    public init(base: UnsafeMutableRawPointer, size: Int, workerRows: Int = defaultWorkerRows) {
        precondition(Int(bitPattern: base) % 8 == 0, "peer area must be 8-byte aligned")
        self.base = base
        self.size = size
        self.workerRows = max(0, workerRows)
        var cap = 0
        let perRecord = PeerStateTable.recordSize + 4 * self.workerRows
        if size > PeerStateTable.headerSize {
            let fit = (size - PeerStateTable.headerSize) / perRecord
            if fit > 0 {
                cap = 1
                while cap * 2 <= fit { cap *= 2 }
            }
        }
        self.capacity = min(cap, 1 << 30)
    }

    /// The same view, for the worker in segment slot `index` (0..<workerRows): its picks are also counted in its
    /// own in-flight row, so the master can `reclaimWorker` them if the worker dies.
    public func forWorker(_ index: Int) -> PeerStateTable {
        precondition(index >= 0 && index < workerRows)
        var t = self
        t.workerIndex = index
        return t
    }

    private var inflightOffset: Int { PeerStateTable.headerSize + capacity * PeerStateTable.recordSize }

    @inline(__always) private func inflight(_ worker: Int, _ slot: PeerSlot) -> UnsafeMutablePointer<UInt32> {
        (base + (inflightOffset + (worker * capacity + Int(slot.index)) * 4)).assumingMemoryBound(to: UInt32.self)
    }

    /// Called once by the master before fork: zeroes the area and writes the header.
    /// `alreadyZeroed`: the memory is a fresh anonymous mapping (all zero): only the header is
    /// written, so untouched pages cost no memory (zero-filling 128 MiB made every gateway's RSS
    /// 128 MiB larger).
    public func format(alreadyZeroed: Bool = false) {
        if !alreadyZeroed { memset(base, 0, size) }
        base.storeBytes(of: GW_PEER_MAGIC, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: UInt32(GW_PEER_LAYOUT_VERSION), toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: UInt32(PeerStateTable.recordSize), toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: UInt32(capacity), toByteOffset: Int(GW_PEER_HDR_OFF_CAPACITY), as: UInt32.self)
        base.storeBytes(of: UInt64(PeerStateTable.headerSize), toByteOffset: Int(GW_PEER_HDR_OFF_RECORDS),
                        as: UInt64.self)
        base.storeBytes(of: UInt32(workerRows), toByteOffset: Int(GW_PEER_HDR_OFF_WORKER_ROWS), as: UInt32.self)
        base.storeBytes(of: UInt64(inflightOffset), toByteOffset: Int(GW_PEER_HDR_OFF_INFLIGHT), as: UInt64.self)
        gw_atomic_store_u32(base.advanced(by: Int(GW_PEER_HDR_OFF_COUNT)).assumingMemoryBound(to: UInt32.self), 0)
    }

    /// True once `format` ran on this memory with the same layout.
    public var isFormatted: Bool {
        capacity > 0 && base.load(as: UInt64.self) == GW_PEER_MAGIC
            && base.load(fromByteOffset: 8, as: UInt32.self) == UInt32(GW_PEER_LAYOUT_VERSION)
            && base.load(fromByteOffset: Int(GW_PEER_HDR_OFF_CAPACITY), as: UInt32.self) == UInt32(capacity)
            && base.load(fromByteOffset: Int(GW_PEER_HDR_OFF_WORKER_ROWS), as: UInt32.self) == UInt32(workerRows)
    }

    /// Published records.
    public var count: Int {
        Int(gw_atomic_load_u32(base.advanced(by: Int(GW_PEER_HDR_OFF_COUNT)).assumingMemoryBound(to: UInt32.self)))
    }

    /// Bumped by every transition, reset and manual set in any process. Balancers cache derived health data
    /// (available weight) and recompute it when this changes.
    public var transitionEpoch: UInt64 { gw_atomic_load_u64(u64(header: Int(GW_PEER_HDR_OFF_TRANSITIONS))) }

    // MARK: raw access

    @inline(__always) func record(_ slot: PeerSlot) -> UnsafeMutableRawPointer {
        base + (PeerStateTable.headerSize + Int(slot.index) * PeerStateTable.recordSize)
    }
    @inline(__always) func u64(_ slot: PeerSlot, _ off: Int32) -> UnsafeMutablePointer<UInt64> {
        (record(slot) + Int(off)).assumingMemoryBound(to: UInt64.self)
    }
    @inline(__always) func u32(_ slot: PeerSlot, _ off: Int32) -> UnsafeMutablePointer<UInt32> {
        (record(slot) + Int(off)).assumingMemoryBound(to: UInt32.self)
    }
    @inline(__always) func u64(header off: Int) -> UnsafeMutablePointer<UInt64> {
        (base + off).assumingMemoryBound(to: UInt64.self)
    }
    @inline(__always) func bumpEpoch() { _ = gw_atomic_add_u64(u64(header: Int(GW_PEER_HDR_OFF_TRANSITIONS)), 1) }

    // MARK: keys

    static func keyHash(_ name: UnsafeRawBufferPointer, _ address: PeerAddress) -> UInt64 {
        var h = FNV1a64()
        h.add(name)
        h.add(0)
        h.add(address.family)
        var raw = address.rawBytes
        withUnsafeBytes(of: &raw) { h.add($0) }
        h.add(UInt8(address.port >> 8)); h.add(UInt8(address.port & 0xFF))
        return h.value
    }

    private func keyMatches(_ slot: PeerSlot, _ name: UnsafeRawBufferPointer, _ address: PeerAddress,
                            _ hash: UInt64) -> Bool {
        let r = record(slot)
        guard r.load(fromByteOffset: Int(GW_PEER_OFF_KEY_HASH), as: UInt64.self) == hash,
              r.load(fromByteOffset: Int(GW_PEER_OFF_PORT), as: UInt16.self) == address.port,
              r.load(fromByteOffset: Int(GW_PEER_OFF_FAMILY), as: UInt8.self) == address.family,
              Int(r.load(fromByteOffset: Int(GW_PEER_OFF_NAME_LEN), as: UInt8.self)) == name.count else { return false }
        let raw = address.rawBytes
        guard r.load(fromByteOffset: Int(GW_PEER_OFF_IP), as: UInt64.self) == raw.0,
              r.load(fromByteOffset: Int(GW_PEER_OFF_IP) + 8, as: UInt64.self) == raw.1 else { return false }
        return name.count == 0 || memcmp(r + Int(GW_PEER_OFF_NAME), name.baseAddress!, name.count) == 0
    }

    /// Probes for the key; returns (slot, found). When not found, the slot is the first empty one (or nil: full).
    private func probe(_ name: UnsafeRawBufferPointer, _ address: PeerAddress, _ hash: UInt64) -> (PeerSlot?, Bool) {
        guard capacity > 0, isFormatted else { return (nil, false) }
        let mask = capacity - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        for _ in 0..<capacity {
            let slot = PeerSlot(index: UInt32(i))
            let state = gw_atomic_load_u32(u32(slot, Int32(GW_PEER_OFF_KEY_STATE)))
            if state == 0 { return (slot, false) }
            if state == 1 && keyMatches(slot, name, address, hash) { return (slot, true) }
            i = (i + 1) & mask
        }
        return (nil, false)
    }

    /// The first record on the key's probe chain that was retired at least `graceMs` ago and has nothing in
    /// flight (master only).
    private func reusableSlot(_ hash: UInt64, nowMs: UInt64, graceMs: UInt64) -> PeerSlot? {
        let mask = capacity - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        for _ in 0..<capacity {
            let slot = PeerSlot(index: UInt32(i))
            if gw_atomic_load_u32(u32(slot, Int32(GW_PEER_OFF_KEY_STATE))) == 0 { return nil }
            let retired = gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_RETIRED)))
            if retired != 0 && nowMs >= retired &+ graceMs && activeConnections(slot) == 0 { return slot }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Kong keeps a removed checker's statuses for 300 s (CLEAR_HEALTH_STATUS_DELAY); a forgotten record is not
    /// re-keyed before that, so stale views (a draining old worker) never see another address's state.
    public static let defaultReuseGraceSeconds: Double = 300

    /// Finds a published record (workers, when they load a configuration; cache the result).
    public func findSlot(upstream: String, address: PeerAddress) -> PeerSlot? {
        var name = upstream
        return name.withUTF8 { utf8 -> PeerSlot? in
            let n = UnsafeRawBufferPointer(utf8)
            guard n.count <= PeerStateTable.maxNameBytes else { return nil }
            let (slot, found) = probe(n, address, PeerStateTable.keyHash(n, address))
            return found ? slot : nil
        }
    }

    /// `findSlot` with an IP literal. Nil if the IP does not parse or the key is not in the table.
    public func findSlot(upstream: String, ip: String, port: Int) -> PeerSlot? {
        guard let a = PeerAddress(ip: ip, port: port) else { return nil }
        return findSlot(upstream: upstream, address: a)
    }

    /// Finds or inserts the record (MASTER ONLY: single writer). Nil when the table is full, the name is longer
    /// than 255 bytes or the table is not formatted. A new record starts healthy with zero counters.
    /// Finding a retired (forgotten) key brings it back into use. A new key re-uses, in place, a record on its
    /// probe chain that was forgotten at least `reuseAfter` seconds before `now` (unix seconds; NaN = clock) with
    /// nothing in flight, so address churn (DNS, target CRUD) does not fill the table.
    public func ensureSlot(upstream: String, address: PeerAddress, now: Double = .nan,
                           reuseAfter: Double = PeerStateTable.defaultReuseGraceSeconds) -> PeerSlot? {
        var name = upstream
        return name.withUTF8 { utf8 -> PeerSlot? in
            let n = UnsafeRawBufferPointer(utf8)
            guard n.count <= PeerStateTable.maxNameBytes else { return nil }
            let hash = PeerStateTable.keyHash(n, address)
            let (found, exists) = probe(n, address, hash)
            if exists, let slot = found {
                gw_atomic_store_u64(u64(slot, Int32(GW_PEER_OFF_RETIRED)), 0)
                return slot
            }
            guard capacity > 0, isFormatted else { return nil }
            let nowMs = UInt64(max(0, (now.isNaN ? PeerClock.unixSeconds() : now) * 1000))
            let slot: PeerSlot
            if let reuse = reusableSlot(hash, nowMs: nowMs, graceMs: UInt64(max(0, reuseAfter * 1000))) {
                // Re-key in place: readers skip state 2 while the key is rewritten.
                slot = reuse
                gw_atomic_store_u32(u32(slot, Int32(GW_PEER_OFF_KEY_STATE)), 2)
                for w in 0..<workerRows { gw_atomic_store_u32(inflight(w, slot), 0) }
            } else {
                // Keep the load factor <= 7/8 so that misses stay short.
                guard let empty = found, count + 1 <= capacity - capacity / 8 else { return nil }
                slot = empty
                let countPtr = (base + Int(GW_PEER_HDR_OFF_COUNT)).assumingMemoryBound(to: UInt32.self)
                gw_atomic_store_u32(countPtr, gw_atomic_load_u32(countPtr) + 1)
            }
            let r = record(slot)
            memset(r + 4, 0, PeerStateTable.recordSize - 4)
            r.storeBytes(of: address.port, toByteOffset: Int(GW_PEER_OFF_PORT), as: UInt16.self)
            r.storeBytes(of: address.family, toByteOffset: Int(GW_PEER_OFF_FAMILY), as: UInt8.self)
            r.storeBytes(of: UInt8(n.count), toByteOffset: Int(GW_PEER_OFF_NAME_LEN), as: UInt8.self)
            r.storeBytes(of: hash, toByteOffset: Int(GW_PEER_OFF_KEY_HASH), as: UInt64.self)
            let raw = address.rawBytes
            r.storeBytes(of: raw.0, toByteOffset: Int(GW_PEER_OFF_IP), as: UInt64.self)
            r.storeBytes(of: raw.1, toByteOffset: Int(GW_PEER_OFF_IP) + 8, as: UInt64.self)
            if n.count > 0 { memcpy(r + Int(GW_PEER_OFF_NAME), n.baseAddress!, n.count) }
            gw_atomic_store_u32(u32(slot, Int32(GW_PEER_OFF_KEY_STATE)), 1)     // publish (release)
            return slot
        }
    }

    /// `ensureSlot` with an IP literal.
    public func ensureSlot(upstream: String, ip: String, port: Int, now: Double = .nan) -> PeerSlot? {
        guard let a = PeerAddress(ip: ip, port: port) else { return nil }
        return ensureSlot(upstream: upstream, address: a, now: now)
    }

    /// True when the master forgot the record and has not brought it back.
    public func isRetired(_ slot: PeerSlot) -> Bool {
        gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_RETIRED))) != 0
    }

    /// The key of a published record.
    public func key(of slot: PeerSlot) -> (upstream: String, address: PeerAddress) {
        let r = record(slot)
        let n = Int(r.load(fromByteOffset: Int(GW_PEER_OFF_NAME_LEN), as: UInt8.self))
        let name = String(decoding: UnsafeRawBufferPointer(start: r + Int(GW_PEER_OFF_NAME), count: n), as: UTF8.self)
        let a = PeerAddress(family: r.load(fromByteOffset: Int(GW_PEER_OFF_FAMILY), as: UInt8.self),
                            hi: UInt64(bigEndian: r.load(fromByteOffset: Int(GW_PEER_OFF_IP), as: UInt64.self)),
                            lo: UInt64(bigEndian: r.load(fromByteOffset: Int(GW_PEER_OFF_IP) + 8, as: UInt64.self)),
                            port: r.load(fromByteOffset: Int(GW_PEER_OFF_PORT), as: UInt16.self))
        return (name, a)
    }

    /// Every published slot, retired ones included (Admin API / master bookkeeping; O(capacity)).
    public func allSlots() -> [PeerSlot] {
        var out: [PeerSlot] = []
        for i in 0..<capacity {
            let s = PeerSlot(index: UInt32(i))
            if gw_atomic_load_u32(u32(s, Int32(GW_PEER_OFF_KEY_STATE))) == 1 { out.append(s) }
        }
        return out
    }

    // MARK: per-request counters

    /// In-flight picks of all workers.
    @inline(__always) public func activeConnections(_ slot: PeerSlot) -> Int {
        Int(max(0, Int64(bitPattern: gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_ACTIVE))))))
    }
    @inline(__always) func incrementActive(_ slot: PeerSlot) {
        _ = gw_atomic_add_u64(u64(slot, Int32(GW_PEER_OFF_ACTIVE)), 1)
        if workerIndex >= 0 {
            let p = inflight(workerIndex, slot)        // own row: single writer while alive
            gw_atomic_store_u32(p, gw_atomic_load_u32(p) &+ 1)
        }
    }
    @inline(__always) func decrementActive(_ slot: PeerSlot) {
        if workerIndex >= 0 {
            let p = inflight(workerIndex, slot)
            let v = gw_atomic_load_u32(p)
            guard v > 0 else { return }                // not ours (reclaimed or picked under another view)
            gw_atomic_store_u32(p, v - 1)
        }
        _ = gw_atomic_sub_u64(u64(slot, Int32(GW_PEER_OFF_ACTIVE)), 1)
    }

    /// In-flight picks of one worker on one address (its row).
    public func inFlight(worker: Int, _ slot: PeerSlot) -> Int {
        guard worker >= 0, worker < workerRows, capacity > 0 else { return 0 }
        return Int(gw_atomic_load_u32(inflight(worker, slot)))
    }

    /// MASTER, after the worker in slot `worker` exited (before a replacement starts in that slot): subtracts
    /// the dead worker's in-flight picks from the shared `active` counts and clears its row, so a crash does not
    /// leave least-connections biased forever. O(capacity). Returns the number of picks reclaimed.
    @discardableResult
    public func reclaimWorker(_ worker: Int) -> Int {
        guard worker >= 0, worker < workerRows, capacity > 0 else { return 0 }
        var total = 0
        for i in 0..<capacity {
            let s = PeerSlot(index: UInt32(i))
            let p = inflight(worker, s)
            let v = gw_atomic_load_u32(p)
            guard v > 0 else { continue }
            gw_atomic_store_u32(p, 0)
            _ = gw_atomic_sub_u64(u64(s, Int32(GW_PEER_OFF_ACTIVE)), UInt64(v))
            total += Int(v)
        }
        return total
    }
    @inline(__always) func countRequest(_ slot: PeerSlot, failed: Bool) {
        _ = gw_atomic_add_u64(u64(slot, Int32(GW_PEER_OFF_REQUESTS)), 1)
        if failed { _ = gw_atomic_add_u64(u64(slot, Int32(GW_PEER_OFF_FAILURES)), 1) }
    }

    /// EWMA decay time constant (Kong latency.lua DECAY_TIME = 10 s).
    public static let ewmaDecayMillis: Double = 10_000

    /// The shared latency EWMA in microseconds (0 = no sample yet).
    @inline(__always) public func ewmaMicros(_ slot: PeerSlot) -> UInt32 {
        UInt32(truncatingIfNeeded: gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_EWMA))) >> 32)
    }

    /// Folds one latency sample into the shared EWMA (CAS loop; any process):
    /// `ewma = ewma * w + rtt * (1 - w)`, `w = exp(-dt / 10 s)` (dt = 0 ⇒ unchanged, as Kong).
    /// The first sample sets the EWMA to the sample.
    public func recordLatency(_ slot: PeerSlot, micros: Int, nowMillis: UInt64) {
        let p = u64(slot, Int32(GW_PEER_OFF_EWMA))
        let rtt = Double(max(0, min(micros, Int(UInt32.max))))
        let now32 = UInt32(truncatingIfNeeded: nowMillis)
        while true {
            let old = gw_atomic_load_u64(p)
            let ewma: Double
            if old == 0 {
                ewma = rtt
            } else {
                let prev = Double(UInt32(truncatingIfNeeded: old >> 32))
                let dt = Double(now32 &- UInt32(truncatingIfNeeded: old))   // wrapping ms difference
                let w = exp(-dt / PeerStateTable.ewmaDecayMillis)
                ewma = prev * w + rtt * (1 - w)
            }
            var e = UInt64(min(ewma.rounded(), Double(UInt32.max)))
            if e == 0 { e = 1 }          // keep "sampled" distinguishable from "never sampled"
            let new = (e << 32) | UInt64(now32)
            if gw_atomic_cas_u64(p, old, new) != 0 { return }
        }
    }

    /// Seeds a never-sampled EWMA (new peers start at the average of the others; Kong "slow start").
    /// No effect if the record already has a sample.
    public func seedLatency(_ slot: PeerSlot, micros: UInt32, nowMillis: UInt64) {
        guard micros > 0 else { return }
        let p = u64(slot, Int32(GW_PEER_OFF_EWMA))
        _ = gw_atomic_cas_u64(p, 0, (UInt64(micros) << 32) | UInt64(UInt32(truncatingIfNeeded: nowMillis)))
    }

    // MARK: DNS

    /// Records whether the address's target currently fails DNS resolution (Admin API shows DNS_ERROR).
    public func setDNSError(_ slot: PeerSlot, _ error: Bool) {
        gw_atomic_store_u32(u32(slot, Int32(GW_PEER_OFF_DNS_STATE)), error ? 1 : 0)
    }

    // MARK: health (read side)

    @inline(__always) public func healthWord(_ slot: PeerSlot) -> HealthWord {
        HealthWord(raw: gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_HEALTH))))
    }

    /// True unless the record is UNHEALTHY (one acquire load; what every pick reads).
    @inline(__always) public func isHealthy(_ slot: PeerSlot) -> Bool {
        gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_HEALTH))) & HealthWord.unhealthyBit == 0
    }

    /// Everything the Admin API shows for one address.
    public func healthState(_ slot: PeerSlot) -> PeerHealthState {
        let w = healthWord(slot)
        return PeerHealthState(
            healthy: w.healthy, manual: w.manual, intermediate: w.intermediate,
            successes: w.counter(0), httpFailures: w.counter(1), tcpFailures: w.counter(2), timeouts: w.counter(3),
            dnsError: gw_atomic_load_u32(u32(slot, Int32(GW_PEER_OFF_DNS_STATE))) != 0,
            lastTransitionMillis: gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_LAST_TRANSITION))),
            lastReason: TransitionReason(rawValue: gw_atomic_load_u32(u32(slot, Int32(GW_PEER_OFF_LAST_REASON)))) ?? .none,
            activeConnections: activeConnections(slot),
            ewmaMicros: Int(ewmaMicros(slot)),
            requests: gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_REQUESTS))),
            failures: gw_atomic_load_u64(u64(slot, Int32(GW_PEER_OFF_FAILURES))))
    }
}

/// Clocks used by the balancer (vDSO calls, no allocation).
public enum PeerClock {
    /// CLOCK_MONOTONIC in milliseconds (same clock in every process of the host).
    @inline(__always) public static func monotonicMillis() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec / 1_000_000)
    }
    /// Unix time in seconds (CLOCK_REALTIME), for transition timestamps.
    public static func unixSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
