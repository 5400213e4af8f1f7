// GWPluginState.ClusterCounterTable: rate-limiting's `cluster` policy counters of this node (database =
// postgres), in shared memory. Kong's cluster policy reads and upserts `ratelimiting_metrics` in PostgreSQL
// on every request (a SELECT per period, then an UPSERT in a 0-delay timer); here workers never talk to the
// database: they decide from this table, and the master (GWServer/RateLimitClusterSync.swift) exchanges
// the counts with PostgreSQL on a timer.
//
// A row per (plugin instance, identifier, period, window start), found by the caller's 128-bit key:
//   synced   — the cluster-wide value the master last read from PostgreSQL (every node's requests);
//   inflight — this node's requests the master sent in a statement not answered yet;
//   pending  — this node's requests not taken by the master yet.
// A request's usage = synced + inflight + pending; allowed → pending += 1, in the same critical section as
// the check of every window (as RateLimitTable), so the workers of one node stay exact between syncs. The
// row also holds what the master needs to write Kong's columns: period, window start (period_date), the
// instance's service and route ids, and the identifier text.
//
// Invariants (same scheme as RateLimitTable, see its header comment):
//  - Layout: [gw_rlc_header][gw_rlc_slot x capacity] (CGWPluginState.h); offsets only.
//  - window_end == 0 never used (stops a probe); window_end <= now expired (reusable by an insert).
//    Open addressing, linear probe of at most `probe_limit` slots; no reusable slot → .full (the
//    caller applies fault_tolerant) and `full` is bumped.
//  - Slot writes go key, identity, counts, window_end last: a process killed in the section leaves each
//    slot whole; the robust mutex is made consistent and the table used as is.
//  - Master protocol: `take` moves pending → inflight (inflight must be 0 first: one statement per row in
//    flight); `settle` sets synced to PostgreSQL's value and inflight to 0; `restore` (the statement failed)
//    adds inflight back to pending. Both check the slot still holds the same key and window (an insert
//    that reused the slot in the meantime zeroed its counts; the answer is then dropped).
//  - The master scans at most `scanChunk` slots per lock hold, so workers wait at most that long.
#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// One row the master sends to PostgreSQL (a copy, taken under the lock).
public struct ClusterRow: Sendable, Equatable {
    public var slot: Int
    public var key: Hash128
    public var windowStart: Int64
    public var windowEnd: Int64
    /// 0 second … 5 year.
    public var period: Int
    public var serviceID: String
    public var routeID: String
    public var identifier: String
    /// Requests to add (moved from pending to inflight); 0 = only read the cluster's value.
    public var increment: Int64
}

public struct ClusterCounterStats: Sendable, Equatable {
    public var capacity: Int
    public var full: UInt64
    public var inserts: UInt64
    public var recoveries: UInt64
}

/// A view of the table in shared memory (copy it freely).
public struct ClusterCounterTable: @unchecked Sendable {
    public static let maxWindows = 6
    static let probeLimit = 32
    static let scanChunk = 256
    public static let identifierMax = Int(GW_RLC_IDENT_MAX)
    public static let periodNames = ["second", "minute", "hour", "day", "month", "year"]

    let header: UnsafeMutablePointer<gw_rlc_header>
    let slots: UnsafeMutablePointer<gw_rlc_slot>
    public let capacity: Int
    let probe: Int

    public static func capacity(forSize size: Int) -> Int {
        max(0, (size - MemoryLayout<gw_rlc_header>.stride) / MemoryLayout<gw_rlc_slot>.stride)
    }

    /// Lays out a table in `size` zeroed bytes (the master, once, before workers start).
    public static func format(at base: UnsafeMutableRawPointer, size: Int, now: Int64) -> ClusterCounterTable? {
        let cap = capacity(forSize: size)
        guard cap >= 1 else { return nil }
        let h = base.assumingMemoryBound(to: gw_rlc_header.self)
        guard gw_ps_lock_init(&h.pointee.lock) == 0 else { return nil }
        h.pointee.layout_version = UInt32(GW_PLUGIN_LAYOUT_VERSION)
        h.pointee.slot_size = UInt32(MemoryLayout<gw_rlc_slot>.stride)
        h.pointee.capacity = UInt64(cap)
        h.pointee.probe_limit = UInt64(min(probeLimit, cap))
        h.pointee.synced_at = now
        gw_atomic_store_u64(&h.pointee.magic, GW_RLC_MAGIC)
        return ClusterCounterTable(attaching: base, size: size)
    }

    public init?(attaching base: UnsafeMutableRawPointer, size: Int) {
        let h = base.assumingMemoryBound(to: gw_rlc_header.self)
        guard size >= MemoryLayout<gw_rlc_header>.stride, h.pointee.magic == GW_RLC_MAGIC,
              h.pointee.layout_version == UInt32(GW_PLUGIN_LAYOUT_VERSION),
              h.pointee.slot_size == UInt32(MemoryLayout<gw_rlc_slot>.stride),
              Int(h.pointee.capacity) == ClusterCounterTable.capacity(forSize: size) else { return nil }
        header = h
        slots = (base + MemoryLayout<gw_rlc_header>.stride).assumingMemoryBound(to: gw_rlc_slot.self)
        capacity = Int(h.pointee.capacity)
        probe = Int(h.pointee.probe_limit)
    }

    public var stats: ClusterCounterStats {
        ClusterCounterStats(capacity: capacity, full: gw_atomic_load_u64(&header.pointee.full),
                            inserts: gw_atomic_load_u64(&header.pointee.inserts),
                            recoveries: gw_atomic_load_u64(&header.pointee.recoveries))
    }

    /// Unix seconds of the master's last successful exchange with PostgreSQL.
    public var syncedAt: Int64 {
        get { gw_atomic_load_i64(&header.pointee.synced_at) }
        nonmutating set { gw_atomic_store_i64(&header.pointee.synced_at, newValue) }
    }

    @inline(__always) func lock() -> Bool {
        let rc = gw_ps_lock(&header.pointee.lock)
        if rc == 1 { header.pointee.recoveries &+= 1 }
        return rc >= 0
    }

    @inline(__always) func unlock() { gw_ps_unlock(&header.pointee.lock) }

    /// (live slot or -1, reusable slot or -1), as RateLimitTable.find.
    @inline(__always)
    func find(_ key: Hash128, now: Int64, taken: UnsafeMutablePointer<Int>, takenCount: Int) -> (live: Int, free: Int) {
        probeWindowSlots(key: key, capacity: capacity, probe: probe, now: now, taken: taken, takenCount: takenCount) { i in
            let s = slots + i
            return (s.pointee.key_hi, s.pointee.key_lo, s.pointee.window_end)
        }
    }

    /// The period code of a window (Kong's names by index): its length tells it (a month is 28–31 days).
    @inline(__always) static func period(start: Int64, end: Int64) -> UInt8 {
        switch end - start {
        case 1: return 0
        case 60: return 1
        case 3600: return 2
        case 86400: return 3
        case ..<(32 * 86400): return 4
        default: return 5
        }
    }

    /// Writes the identity of a new row (service and route ids: 36 bytes each; identifier: printable
    /// ASCII up to identifierMax bytes, else "h:" + the 32 hex digits of `identifierHash`).
    @inline(__always)
    func writeIdentity(_ s: UnsafeMutablePointer<gw_rlc_slot>, service: UnsafeBufferPointer<UInt8>,
                       route: UnsafeBufferPointer<UInt8>, identifier: UnsafeBufferPointer<UInt8>,
                       identifierHash: (UInt64, UInt64)) {
        withUnsafeMutableBytes(of: &s.pointee.service_id) { b in
            for i in 0..<36 { b[i] = i < service.count ? service[i] : 0 }
        }
        withUnsafeMutableBytes(of: &s.pointee.route_id) { b in
            for i in 0..<36 { b[i] = i < route.count ? route[i] : 0 }
        }
        var plain = identifier.count <= ClusterCounterTable.identifierMax
        if plain { for c in identifier where c < 0x20 || c > 0x7e { plain = false; break } }
        withUnsafeMutableBytes(of: &s.pointee.identifier) { b in
            if plain {
                for i in 0..<identifier.count { b[i] = identifier[i] }
                s.pointee.ident_len = UInt8(identifier.count)
                return
            }
            let hex: StaticString = "0123456789abcdef"
            b[0] = UInt8(ascii: "h"); b[1] = UInt8(ascii: ":")
            for i in 0..<32 {
                let word = i < 16 ? identifierHash.0 : identifierHash.1
                let nibble = Int((word >> UInt64(60 - 4 * (i % 16))) & 0xf)
                b[2 + i] = hex.utf8Start[nibble]
            }
            s.pointee.ident_len = 34
        }
    }

    /// For each window i: usage = synced + inflight + pending of keys[i] (0 when absent or expired) into
    /// usagesOut[i]. When every usage < limits[i], counts the request as pending in all of them (creating
    /// rows with this identity) and answers .allowed; else counts nothing and answers .limited(first i).
    /// One atomic step across all processes.
    public func consume(keys: UnsafeBufferPointer<Hash128>, limits: UnsafeBufferPointer<Int64>,
                        windowStarts: UnsafeBufferPointer<Int64>, windowEnds: UnsafeBufferPointer<Int64>,
                        service: UnsafeBufferPointer<UInt8>, route: UnsafeBufferPointer<UInt8>,
                        identifier: UnsafeBufferPointer<UInt8>, identifierHash: (UInt64, UInt64),
                        now: Int64, usagesOut: UnsafeMutableBufferPointer<Int64>) -> RateLimitResult {
        let n = keys.count
        precondition(n <= ClusterCounterTable.maxWindows && limits.count >= n && windowEnds.count >= n
                     && windowStarts.count >= n && usagesOut.count >= n)
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * ClusterCounterTable.maxWindows) { tmp in
            let live = tmp.baseAddress!, free = live + ClusterCounterTable.maxWindows
            guard lock() else { return .full }
            defer { unlock() }
            var limited = -1, full = false, taken = 0
            for i in 0..<n {
                let (l, f) = find(keys[i], now: now, taken: free, takenCount: taken)
                live[i] = l
                var usage: Int64 = 0
                if l >= 0 { usage = slots[l].synced &+ slots[l].inflight &+ slots[l].pending }
                usagesOut[i] = usage
                if usage >= limits[i] && limited < 0 { limited = i }
                if l < 0 {
                    if windowEnds[i] <= now || f < 0 {
                        if windowEnds[i] > now { full = true }
                        free[taken] = -1
                    } else {
                        free[taken] = f
                    }
                    taken += 1
                }
            }
            if limited >= 0 { return .limited(limited) }
            if full {
                header.pointee.full &+= 1
                return .full
            }
            var k = 0
            for i in 0..<n {
                let l = live[i]
                if l >= 0 {
                    slots[l].pending &+= 1
                    continue
                }
                let f = free[k]
                k += 1
                guard f >= 0 else { continue }
                let s = slots + f
                s.pointee.key_hi = keys[i].hi
                s.pointee.key_lo = keys[i].lo
                s.pointee.window_start = windowStarts[i]
                s.pointee.period = ClusterCounterTable.period(start: windowStarts[i], end: windowEnds[i])
                writeIdentity(s, service: service, route: route, identifier: identifier, identifierHash: identifierHash)
                s.pointee.synced = 0
                s.pointee.inflight = 0
                s.pointee.pending = 1
                s.pointee.window_end = windowEnds[i]
                header.pointee.inserts &+= 1
            }
            return .allowed
        }
    }

    /// The usage (synced + inflight + pending) of `key`, 0 when absent or expired.
    public func usage(_ key: Hash128, now: Int64) -> Int64 {
        var none = 0
        guard lock() else { return 0 }
        defer { unlock() }
        let l = find(key, now: now, taken: &none, takenCount: 0).live
        return l >= 0 ? slots[l].synced &+ slots[l].inflight &+ slots[l].pending : 0
    }

    // MARK: master

    /// The master's tick: every row with pending requests (live or not, until its slot is reused), then
    /// live rows to refresh from `cursor` on (round robin), at most `limit` rows in all. Pending moves to
    /// inflight. Rows whose previous statement is unanswered (inflight > 0) are skipped. Returns the rows
    /// and the next cursor.
    public func take(now: Int64, limit: Int, cursor: Int) -> (rows: [ClusterRow], cursor: Int) {
        // Slots are copied under the lock (256 B each); their text is decoded after it.
        var rows: [(Int, gw_rlc_slot, Int64)] = []
        var chosen = Set<Int>()
        var base = 0
        // 1. Pending rows.
        while base < capacity && rows.count < limit {
            let end = min(capacity, base + ClusterCounterTable.scanChunk)
            guard lock() else { return (rows.map(row), cursor) }
            for i in base..<end where rows.count < limit {
                let s = slots + i
                guard s.pointee.window_end != 0, s.pointee.pending > 0, s.pointee.inflight == 0 else { continue }
                rows.append((i, s.pointee, s.pointee.pending))
                s.pointee.inflight = s.pointee.pending
                s.pointee.pending = 0
                chosen.insert(i)
            }
            unlock()
            base = end
        }
        // 2. Live rows to refresh, round robin from the cursor.
        var i = cursor % max(1, capacity), scanned = 0
        while scanned < capacity && rows.count < limit {
            let count = min(ClusterCounterTable.scanChunk, capacity - scanned)
            guard lock() else { break }
            var visited = 0
            while visited < count && rows.count < limit {
                let s = slots + i
                if s.pointee.window_end > now, s.pointee.inflight == 0, !chosen.contains(i) {
                    rows.append((i, s.pointee, 0))
                }
                visited += 1
                i += 1
                if i == capacity { i = 0 }
            }
            unlock()
            scanned += visited
        }
        return (rows.map(row), i)
    }

    private func row(_ taken: (Int, gw_rlc_slot, Int64)) -> ClusterRow {
        var (i, s, increment) = taken
        func text<T>(_ v: inout T, _ n: Int) -> String {
            withUnsafeBytes(of: &v) { b in
                var len = 0
                while len < n && b[len] != 0 { len += 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: b[0..<len]), as: UTF8.self)
            }
        }
        let identLen = min(Int(s.ident_len), ClusterCounterTable.identifierMax)
        return ClusterRow(slot: i, key: Hash128(hi: s.key_hi, lo: s.key_lo),
                          windowStart: s.window_start, windowEnd: s.window_end, period: Int(min(s.period, 5)),
                          serviceID: text(&s.service_id, 36), routeID: text(&s.route_id, 36),
                          identifier: text(&s.identifier, identLen), increment: increment)
    }

    @inline(__always) func same(_ s: UnsafeMutablePointer<gw_rlc_slot>, _ r: ClusterRow) -> Bool {
        s.pointee.key_hi == r.key.hi && s.pointee.key_lo == r.key.lo && s.pointee.window_end == r.windowEnd
    }

    /// PostgreSQL answered: each row's cluster-wide value (this node's inflight included).
    public func settle(_ results: [(row: ClusterRow, value: Int64)]) {
        guard lock() else { return }
        defer { unlock() }
        for (r, v) in results where r.slot >= 0 && r.slot < capacity {
            let s = slots + r.slot
            guard same(s, r) else { continue }
            s.pointee.synced = v
            s.pointee.inflight = 0
        }
    }

    /// The statement failed: the taken requests go back to pending (nothing lost).
    public func restore(_ rows: [ClusterRow]) {
        guard lock() else { return }
        defer { unlock() }
        for r in rows where r.slot >= 0 && r.slot < capacity {
            let s = slots + r.slot
            guard same(s, r) else { continue }
            s.pointee.pending &+= s.pointee.inflight
            s.pointee.inflight = 0
        }
    }

    /// Test hook: takes the lock and never gives it back.
    public func _lockAndAbandon() { _ = gw_ps_lock_and_abandon(&header.pointee.lock) }
}
