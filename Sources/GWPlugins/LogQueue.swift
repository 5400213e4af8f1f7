// Kong's log queue (`kong/tools/queue.lua`, `queue_schema.lua`; KONG-PLUGINS.md §7) as pure state:
// entries wait in a bounded FIFO, leave it in batches, and a failed batch is retried with exponential
// back-off until `max_retry_time`. Time is passed in (seconds, any monotonic origin), no I/O happens
// here: the owner (HTTPLogSender) sends the batches `next(now:)` hands out, reports the outcome with
// `done`, and sleeps until `wakeAt(now:)`. Unit tests drive it without sockets.
//
// Invariants: queued + in-flight entries ≤ max_entries (a full queue drops its OLDEST queued entry, or
// the new one when every entry is in flight); queued bytes ≤ max_bytes when set (oldest dropped until
// the new entry fits; an entry longer than max_bytes is refused); at most `slots` units in flight
// (concurrency_limit 1 → 1; -1, Kong's "no queue", → `unboundedSlots` single-entry batches); a unit is
// one batch, or a train of up to `train` consecutive batches the owner sends on one connection in one
// write (each batch still its own request); a train's batches are reported one by one, the failed ones
// stay in the unit (in order) and are retried together; every
// dropped or lost entry is counted in `dropped` / `lost` and in `unreported` until the owner reports it.
// Queued entries live in one byte store with their end offsets (no allocation per entry once the
// store has grown; dead bytes before `head` are compacted away); a unit copies its entries out (two
// arrays per unit, not per entry). Worker-loop confined.

public struct LogQueueConfig: Equatable, Sendable {
    public var maxBatchSize = 1
    public var maxCoalescingDelay = 1.0
    public var maxEntries = 10000
    public var maxBytes: Int? = nil
    public var maxRetryTime = 60.0
    public var initialRetryDelay = 0.01
    public var maxRetryDelay = 60.0
    public var concurrencyLimit = 1
    public init() {}
}

public final class LogQueue {
    /// A unit handed out for sending: its entries in order (entry i is `bytes[ends[i-1] ..< ends[i]]`),
    /// one request per `batchSize` of them.
    public struct Batch {
        public let id: Int
        public let bytes: [UInt8]
        public let ends: [Int]
        public let batchSize: Int
        public var count: Int { ends.count }
        /// Entry `i`'s bytes.
        public func entry(_ i: Int) -> ArraySlice<UInt8> { bytes[(i == 0 ? 0 : ends[i - 1]) ..< ends[i]] }
        /// The entries as arrays (tests, rare paths).
        public var entries: [[UInt8]] { (0 ..< count).map { Array(entry($0)) } }
        /// The number of requests (batches) in the unit.
        public var parts: Int { (count + batchSize - 1) / batchSize }
        /// The entry indices of request `i`.
        public func part(_ i: Int) -> Range<Int> { i * batchSize ..< min(count, (i + 1) * batchSize) }
    }

    private struct Slot {
        var id: Int
        var bytes: [UInt8]
        var ends: [Int]
        var firstTry: Double
        var retries: Int
        var retryAt: Double
        var sending: Bool
    }

    public var config: LogQueueConfig
    /// Queued entries from `head` on: entry k is `store[start(k) ..< ends[k]]`, queued at `times[k]`.
    private var store: [UInt8] = []
    private var ends: [Int] = []
    private var times: [Double] = []
    private var head = 0
    @inline(__always) private func start(_ k: Int) -> Int { k == 0 ? 0 : ends[k - 1] }
    @inline(__always) private func size(_ k: Int) -> Int { ends[k] - start(k) }
    private var slots: [Slot] = []
    private var nextID = 0
    public private(set) var bytes = 0
    /// Entries dropped because the queue was full (max_entries / max_bytes), and entries lost after
    /// max_retry_time; `unreported` counts both since the owner last reported.
    public private(set) var dropped = 0
    public private(set) var lost = 0
    public var unreported = 0
    /// Batches delivered.
    public private(set) var delivered = 0
    /// Kong logs "queue full, dropping old entries…" once until a batch is processed successfully.
    public private(set) var dropping = false
    /// The last drop / loss message and the last failure message since the owner reported them.
    public var dropMessage: String? = nil
    public var failureMessage: String? = nil
    public static let unboundedSlots = 16

    public init(config: LogQueueConfig) { self.config = config }

    public var count: Int { ends.count - head }
    public var inFlight: Int { slots.reduce(0) { $0 + $1.ends.count } }
    private var slotLimit: Int { config.concurrencyLimit == -1 ? LogQueue.unboundedSlots : 1 }
    private var batchSize: Int { config.concurrencyLimit == -1 ? 1 : max(1, config.maxBatchSize) }

    /// Queues an entry (Kong's Queue.enqueue). False when it was refused (longer than max_bytes, or the
    /// queue holds only in-flight entries).
    @discardableResult
    public func enqueue(_ e: [UInt8], now: Double) -> Bool {
        if let mb = config.maxBytes, e.count > mb {
            note(1, dropped: true)
            dropMessage = "string to be queued is longer (\(e.count) bytes) than the queue's max_bytes (\(mb) bytes)"
            return false
        }
        if count + inFlight >= config.maxEntries {
            if count == 0 { note(1, dropped: true); dropMessage = "queue full, entry dropped"; return false }
            dropMessage = "queue full, dropping old entries until processing is successful again"
            dropping = true
            dropOldest()
        }
        if let mb = config.maxBytes, bytes + e.count > mb {
            var n = 0
            while count > 0 && bytes + e.count > mb { dropOldest(); n += 1 }
            dropping = true
            dropMessage = "byte capacity exceeded, \(n) queue entries were dropped"
        }
        store.append(contentsOf: e)
        ends.append(store.count)
        times.append(now)
        bytes += e.count
        return true
    }

    private func dropOldest() {
        bytes -= size(head)
        head += 1
        note(1, dropped: true)
        compact()
    }

    /// Forgets the entries before `head` when all are gone, or when they are many and at least half.
    private func compact() {
        if head == ends.count {
            store.removeAll(keepingCapacity: true); ends.removeAll(keepingCapacity: true); times.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= ends.count {
            let cut = ends[head - 1]
            store.removeFirst(cut)
            for k in head ..< ends.count { ends[k - head] = ends[k] - cut }
            ends.removeLast(head)
            times.removeFirst(head)
            head = 0
        }
    }

    private func note(_ n: Int, dropped d: Bool) {
        if d { dropped += n } else { lost += n }
        unreported += n
    }

    /// The next batch to send now: a failed batch whose retry time came, else a new batch when a slot
    /// is free and the queue holds a full batch or its oldest entry waited `max_coalescing_delay`
    /// (`flushing`: do not wait, e.g. at worker exit). Nil when nothing is due.
    /// `train` > 1: a new unit takes up to `train` batches (whole batches only, plus the last partial one
    /// when it is due) within `trainBytes` in all (the first batch always). `newUnits` false:
    /// only failed units whose retry time came are handed out.
    public func next(now: Double, flushing: Bool = false, train: Int = 1, trainBytes: Int = .max,
                     newUnits: Bool = true) -> Batch? {
        let size = batchSize
        for i in 0 ..< slots.count where !slots[i].sending && slots[i].retryAt <= now {
            slots[i].sending = true
            return Batch(id: slots[i].id, bytes: slots[i].bytes, ends: slots[i].ends, batchSize: size)
        }
        guard newUnits, slots.count < slotLimit, count > 0 else { return nil }
        let full = count / size, trainLength = max(1, train)
        // The partial batch after the full ones leaves when its oldest entry waited max_coalescing_delay.
        let tail = head + full * size
        let tailDue = tail < ends.count && (flushing || now - times[tail] >= config.maxCoalescingDelay)
        guard full > 0 || tailDue else { return nil }
        let n = full < trainLength && tailDue ? count : min(full, trainLength) * size
        // Whole batches within trainBytes (the first batch always).
        var m = 0
        let base = start(head)
        while m < n {
            if m >= size, m % size == 0, ends[head + m] - base > trainBytes { break }
            m += 1
        }
        let unitBytes = Array(store[base ..< ends[head + m - 1]])
        var unitEnds: [Int] = []
        unitEnds.reserveCapacity(m)
        for k in head ..< head + m { unitEnds.append(ends[k] - base) }
        bytes -= unitBytes.count
        head += m
        compact()
        nextID += 1
        slots.append(Slot(id: nextID, bytes: unitBytes, ends: unitEnds, firstTry: now, retries: 0, retryAt: now, sending: true))
        return Batch(id: nextID, bytes: unitBytes, ends: unitEnds, batchSize: size)
    }

    /// The outcome of sending batch `id`. A failure is retried after initial_retry_delay × 2^retries
    /// (capped by max_retry_delay) unless max_retry_time has passed since the first try: then the batch
    /// is dropped and its entries counted as lost.
    public func done(_ id: Int, ok: Bool, now: Double, error: String = "") {
        guard let i = slots.firstIndex(where: { $0.id == id }) else { return }
        if ok {
            delivered += 1
            dropping = false
            slots.remove(at: i)
            return
        }
        fail(i, now: now, error: error)
    }

    /// The outcome of a unit's requests, `failed[k]` true when request k failed: the delivered batches
    /// leave the unit, the failed ones stay (in order) and are retried as one unit.
    public func done(_ id: Int, failed: [Bool], now: Double, error: String = "") {
        guard let i = slots.firstIndex(where: { $0.id == id }) else { return }
        let size = batchSize
        var ok = 0
        for f in failed where !f { ok += 1 }
        if ok == failed.count { done(id, ok: true, now: now); delivered += ok - 1; return }
        if ok > 0 {
            delivered += ok
            dropping = false
            var keepBytes: [UInt8] = [], keepEnds: [Int] = []
            let u = Batch(id: id, bytes: slots[i].bytes, ends: slots[i].ends, batchSize: size)
            for k in 0 ..< u.count where k / size >= failed.count || failed[k / size] {
                keepBytes.append(contentsOf: u.entry(k))
                keepEnds.append(keepBytes.count)
            }
            slots[i].bytes = keepBytes
            slots[i].ends = keepEnds
        }
        fail(i, now: now, error: error)
    }

    private func fail(_ i: Int, now: Double, error: String) {
        failureMessage = "handler could not process entries: \(error)"
        if now - slots[i].firstTry > config.maxRetryTime {
            let n = slots[i].ends.count
            note(n, dropped: false)
            dropMessage = "could not send entries due to max_retry_time exceeded. \(n) queue entries were lost"
            slots.remove(at: i)
            return
        }
        slots[i].retryAt = now + retryDelay(slots[i].retries)
        slots[i].retries += 1
        slots[i].sending = false
    }

    /// Kong's back-off: min(max_retry_delay, 2^retries × initial_retry_delay).
    public func retryDelay(_ retries: Int) -> Double {
        var d = config.initialRetryDelay
        var k = 0
        while k < retries && d < config.maxRetryDelay { d *= 2; k += 1 }
        return min(config.maxRetryDelay, d)
    }

    /// When `next` may next return a batch (nil: not before something is queued or a send finishes).
    /// `newAfter`: new units are not started before this time (the owner's pacing).
    public func wakeAt(now: Double, newAfter: Double = 0) -> Double? {
        var t: Double? = nil
        for s in slots where !s.sending { t = min(t ?? s.retryAt, s.retryAt) }
        if slots.count < slotLimit, count > 0 {
            let due = max(count >= batchSize ? now : times[head] + config.maxCoalescingDelay, newAfter)
            t = min(t ?? due, due)
        }
        return t
    }

    /// Nothing queued and nothing in flight.
    public var isIdle: Bool { count == 0 && slots.isEmpty }
}
