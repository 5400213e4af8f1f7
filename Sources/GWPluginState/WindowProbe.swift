// GWPluginState.WindowProbe: the slot probe both rate-limit tables use (RateLimitTable, the local
// policy; ClusterCounterTable, the cluster policy). Their slots differ, their probing rules do not:
//  - a key's home is the multiply-shift of its low word; at most `probe` slots are looked at from there,
//    wrapping at `capacity`;
//  - window_end == 0: never used, so the key cannot be further on (the probe stops there unless that slot
//    is already promised to an earlier window of the same call, `taken`);
//  - window_end <= now: expired and reusable, but the probe goes on past it;
//  - the reusable slot is the key's own expired one, else the first never-used or expired one not taken.
// Called under the table's lock; reads only.

/// (live slot or -1, reusable slot or -1) for `key`. `slot(i)` gives slot i's key words and window end.
@inline(__always)
func probeWindowSlots(key: Hash128, capacity: Int, probe: Int, now: Int64,
                      taken: UnsafeMutablePointer<Int>, takenCount: Int,
                      slot: (Int) -> (hi: UInt64, lo: UInt64, end: Int64)) -> (live: Int, free: Int) {
    var i = Int(key.lo.multipliedFullWidth(by: UInt64(capacity)).high)
    var free = -1, pastEnd = false
    for _ in 0..<probe {
        let s = slot(i)
        if s.end == 0 {
            if !isTakenSlot(i, taken, takenCount) { return (-1, free < 0 ? i : free) }
            pastEnd = true
        } else if !pastEnd && s.lo == key.lo && s.hi == key.hi {
            if s.end > now { return (i, -1) }
            return (-1, i)
        }
        if s.end <= now && free < 0 && !isTakenSlot(i, taken, takenCount) {
            free = i
            if pastEnd { return (-1, free) }
        }
        i += 1
        if i == capacity { i = 0 }
    }
    return (-1, free)
}

/// Slot `i` is among `taken[0..<n]` (promised to an earlier window of the same call).
@inline(__always) func isTakenSlot(_ i: Int, _ taken: UnsafeMutablePointer<Int>, _ n: Int) -> Bool {
    var j = 0
    while j < n { if taken[j] == i { return true }; j += 1 }
    return false
}
