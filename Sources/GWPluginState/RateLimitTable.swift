// GWPluginState.RateLimitTable: the node's rate-limiting counters (Kong's `local` policy, whose shm
// is `kong_rate_limiting_counters`, 12m), shared by every worker and the master, but EXACT: the check
// of every window and the increment of all of them are one step under one lock, so N concurrent
// requests from any number of processes let exactly `limit` through (Kong's local policy reads, then
// increments later in a timer, and overshoots: #2629, #5790).
//
// Invariants:
//  - Layout: [gw_rl_header][gw_rl_slot x capacity] (CGWPluginState.h); offsets only.
//  - A slot with window_end == 0 was never used; a probe stops there. A slot with window_end <= now
//    is expired and reusable; a probe continues past it (it acts as a tombstone until reused).
//    Slots never return to window_end == 0, so a key is found by scanning at most `probe_limit` slots
//    from its home (multiply-shift of the key's low word): there is never more than one live slot
//    per key (an insert happens only after a probe that did not find it).
//  - Reclaim: an insert takes the first never-used or expired slot of the probe window; when there
//    is none, consume() answers .full (the caller applies fault_tolerant) and bumps `full`.
//  - Every slot write goes key, count, window_end (window_end last), so a process killed inside the
//    section leaves each slot either as it was or complete: the robust mutex is made consistent and
//    the table is used as is (at worst one window of one request counted and the others not).
//
// Locking: ONE process-shared robust pthread mutex for the table. Measured (release, 2-core dev VM,
// `GWPluginStateProbe bench`): a whole uncontended consume() is ~16 ns for one window, ~19 ns for two,
// ~28 ns for six (lock + probe + increment + unlock), far below a request's cost; the section holds
// no syscalls and no allocation, so contention only shows when a holder is preempted (futex wait). Per-bucket spinlocks were
// not chosen: a multi-window consume would need several of them (ordering, deadlock avoidance), and
// a spinlock held by a killed worker wedges the node, which the robust mutex rules out by design.
#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// A 128-bit key (a hash the caller computes: plugin instance id + identifier + period + window start).
public struct Hash128: Hashable, Sendable {
    public var hi: UInt64
    public var lo: UInt64
    public init(hi: UInt64, lo: UInt64) { self.hi = hi; self.lo = lo }
}

public typealias RateLimitKey = Hash128

public enum RateLimitResult: Equatable, Sendable {
    /// Every window was below its limit; all were incremented (usages are the values before).
    case allowed
    /// The first window whose usage >= its limit; nothing was incremented.
    case limited(Int)
    /// No free or expired slot for a new window: nothing was incremented (Kong's fault_tolerant).
    case full
}

public struct RateLimitStats: Sendable, Equatable {
    public var capacity: Int
    public var full: UInt64
    public var inserts: UInt64
    public var recoveries: UInt64
}

/// A view of the table in shared memory (two pointers; copy it freely).
public struct RateLimitTable: @unchecked Sendable {
    public static let maxWindows = 6
    static let probeLimit = 32          // 1 KiB, 16 cache lines from the home slot

    let header: UnsafeMutablePointer<gw_rl_header>
    let slots: UnsafeMutablePointer<gw_rl_slot>
    let capacity: Int
    let probe: Int

    /// Slots for `size` bytes.
    public static func capacity(forSize size: Int) -> Int {
        max(0, (size - MemoryLayout<gw_rl_header>.stride) / MemoryLayout<gw_rl_slot>.stride)
    }

    /// Lays out a table in `size` zeroed bytes at `base` (the master, once, before workers start).
    public static func format(at base: UnsafeMutableRawPointer, size: Int) -> RateLimitTable? {
        let cap = capacity(forSize: size)
        guard cap >= 1 else { return nil }
        let h = base.assumingMemoryBound(to: gw_rl_header.self)
        guard gw_ps_lock_init(&h.pointee.lock) == 0 else { return nil }
        h.pointee.layout_version = UInt32(GW_PLUGIN_LAYOUT_VERSION)
        h.pointee.slot_size = UInt32(MemoryLayout<gw_rl_slot>.stride)
        h.pointee.capacity = UInt64(cap)
        h.pointee.slots_offset = UInt64(MemoryLayout<gw_rl_header>.stride)
        h.pointee.probe_limit = UInt64(min(probeLimit, cap))
        gw_atomic_store_u64(&h.pointee.magic, GW_RL_MAGIC)
        return RateLimitTable(attaching: base, size: size)
    }

    /// A table the master laid out (checks magic, version and size).
    public init?(attaching base: UnsafeMutableRawPointer, size: Int) {
        let h = base.assumingMemoryBound(to: gw_rl_header.self)
        guard size >= MemoryLayout<gw_rl_header>.stride, h.pointee.magic == GW_RL_MAGIC,
              h.pointee.layout_version == UInt32(GW_PLUGIN_LAYOUT_VERSION),
              h.pointee.slot_size == UInt32(MemoryLayout<gw_rl_slot>.stride),
              Int(h.pointee.capacity) == RateLimitTable.capacity(forSize: size) else { return nil }
        header = h
        slots = (base + Int(h.pointee.slots_offset)).assumingMemoryBound(to: gw_rl_slot.self)
        capacity = Int(h.pointee.capacity)
        probe = Int(h.pointee.probe_limit)
    }

    public var stats: RateLimitStats {
        RateLimitStats(capacity: capacity,
                       full: gw_atomic_load_u64(&header.pointee.full),
                       inserts: gw_atomic_load_u64(&header.pointee.inserts),
                       recoveries: gw_atomic_load_u64(&header.pointee.recoveries))
    }

    // MARK: lock

    @inline(__always) func lock() -> Bool {
        let rc = gw_ps_lock(&header.pointee.lock)
        if rc == 1 { header.pointee.recoveries &+= 1 }   // consistent again; slots are valid (see above)
        return rc >= 0
    }

    @inline(__always) func unlock() { gw_ps_unlock(&header.pointee.lock) }

    // MARK: probe

    /// Finds `key`: (live slot or -1, reusable slot or -1). A reusable slot is the key's own expired
    /// slot, else the first never-used or expired one not in `taken[0..<takenCount]`.
    @inline(__always)
    func find(_ key: RateLimitKey, now: Int64, taken: UnsafeMutablePointer<Int>, takenCount: Int) -> (live: Int, free: Int) {
        probeWindowSlots(key: key, capacity: capacity, probe: probe, now: now, taken: taken, takenCount: takenCount) { i in
            let s = slots + i
            return (s.pointee.key_hi, s.pointee.key_lo, s.pointee.window_end)
        }
    }

    // MARK: operations

    /// For each window i (at most `maxWindows`): reads the usage of keys[i] (0 when absent or expired)
    /// into usagesOut[i]. When every usage < limits[i], increments all of them (creating windows that
    /// expire at windowEnds[i]) and answers .allowed; otherwise increments none and answers
    /// .limited(first i with usage >= limit). One atomic step across all processes.
    public func consume(keys: UnsafeBufferPointer<RateLimitKey>, limits: UnsafeBufferPointer<Int64>,
                        windowEnds: UnsafeBufferPointer<Int64>, now: Int64,
                        usagesOut: UnsafeMutableBufferPointer<Int64>) -> RateLimitResult {
        let n = keys.count
        precondition(n <= RateLimitTable.maxWindows && limits.count >= n && windowEnds.count >= n && usagesOut.count >= n)
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * RateLimitTable.maxWindows) { tmp in
            let live = tmp.baseAddress!, free = live + RateLimitTable.maxWindows
            guard lock() else { return .full }
            defer { unlock() }
            var limited = -1, full = false, taken = 0
            for i in 0..<n {
                let (l, f) = find(keys[i], now: now, taken: free, takenCount: taken)
                live[i] = l
                let usage = l >= 0 ? slots[l].count : 0
                usagesOut[i] = usage
                if usage >= limits[i] && limited < 0 { limited = i }
                if l < 0 {
                    if windowEnds[i] <= now {
                        free[taken] = -1      // an already-ended window: counted nowhere
                    } else if f < 0 {
                        full = true
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
                    slots[l].count &+= 1
                    continue
                }
                let f = free[k]
                k += 1
                guard f >= 0 else { continue }
                let s = slots + f
                s.pointee.key_hi = keys[i].hi
                s.pointee.key_lo = keys[i].lo
                s.pointee.count = 1
                s.pointee.window_end = windowEnds[i]
                header.pointee.inserts &+= 1
            }
            return .allowed
        }
    }

    /// The usages of `keys` (0 when absent or expired), without changing anything.
    public func usage(keys: UnsafeBufferPointer<RateLimitKey>, now: Int64, usagesOut: UnsafeMutableBufferPointer<Int64>) {
        precondition(usagesOut.count >= keys.count)
        var none = 0
        guard lock() else {
            for i in 0..<keys.count { usagesOut[i] = 0 }
            return
        }
        defer { unlock() }
        for i in 0..<keys.count {
            let l = find(keys[i], now: now, taken: &none, takenCount: 0).live
            usagesOut[i] = l >= 0 ? slots[l].count : 0
        }
    }

    /// Live windows (a full scan; for the master's metrics, not for the request path).
    public func liveCount(now: Int64) -> Int {
        guard lock() else { return 0 }
        defer { unlock() }
        var c = 0
        for i in 0..<capacity where slots[i].window_end > now { c += 1 }
        return c
    }

    /// Test hook: takes the lock and never gives it back (a process that then dies leaves it
    /// owner-dead; the next locker recovers it).
    public func _lockAndAbandon() { _ = gw_ps_lock_and_abandon(&header.pointee.lock) }
}
