// Kong's log queue (`kong/tools/queue.lua`, `queue_schema.lua`; KONG-PLUGINS.md §7) as pure state:
// entries wait in a bounded FIFO, leave it in batches, and a failed batch is retried with exponential
// back-off until `max_retry_time`. Time is passed in (seconds, any monotonic origin), no I/O happens
// here: the owner (HTTPLogSender) sends the batches `next(now:)` hands out, reports the outcome with
// `done`, and sleeps until `wakeAt(now:)`. Unit tests drive it without sockets.
//
// Invariants: queued + in-flight entries ≤ max_entries (a full queue drops its OLDEST queued entry, or
// the new one when every entry is in flight); queued bytes ≤ max_bytes when set (oldest dropped until
// the new entry fits; an entry longer than max_bytes is refused); at most `slots` batches in flight
// (concurrency_limit 1 → 1; -1, Kong's "no queue", → `unboundedSlots` single-entry batches); every
// dropped or lost entry is counted in `dropped` / `lost` and in `unreported` until the owner reports it.
// Worker-loop confined.

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
    /// A batch handed out for sending.
    public struct Batch {
        public let id: Int
        public let entries: [[UInt8]]
    }

    private struct Slot {
        var id: Int
        var entries: [[UInt8]]
        var firstTry: Double
        var retries: Int
        var retryAt: Double
        var sending: Bool
    }

    public var config: LogQueueConfig
    /// Queued entries from `head` on, with the time each was queued.
    private var items: [[UInt8]] = []
    private var times: [Double] = []
    private var head = 0
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

    public var count: Int { items.count - head }
    public var inFlight: Int { slots.reduce(0) { $0 + $1.entries.count } }
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
        items.append(e)
        times.append(now)
        bytes += e.count
        return true
    }

    private func dropOldest() {
        bytes -= items[head].count
        items[head] = []
        head += 1
        note(1, dropped: true)
        compact()
    }

    private func compact() {
        if head == items.count { items.removeAll(keepingCapacity: true); times.removeAll(keepingCapacity: true); head = 0 }
        else if head >= 1024 && head * 2 >= items.count {
            items.removeFirst(head); times.removeFirst(head); head = 0
        }
    }

    private func note(_ n: Int, dropped d: Bool) {
        if d { dropped += n } else { lost += n }
        unreported += n
    }

    /// The next batch to send now: a failed batch whose retry time came, else a new batch when a slot
    /// is free and the queue holds a full batch or its oldest entry waited `max_coalescing_delay`
    /// (`flushing`: do not wait, e.g. at worker exit). Nil when nothing is due.
    public func next(now: Double, flushing: Bool = false) -> Batch? {
        for i in 0 ..< slots.count where !slots[i].sending && slots[i].retryAt <= now {
            slots[i].sending = true
            return Batch(id: slots[i].id, entries: slots[i].entries)
        }
        guard slots.count < slotLimit, count > 0 else { return nil }
        let size = batchSize
        guard count >= size || flushing || now - times[head] >= config.maxCoalescingDelay else { return nil }
        let n = min(size, count)
        var batch: [[UInt8]] = []
        batch.reserveCapacity(n)
        for k in head ..< head + n { batch.append(items[k]); bytes -= items[k].count; items[k] = [] }
        head += n
        compact()
        nextID += 1
        slots.append(Slot(id: nextID, entries: batch, firstTry: now, retries: 0, retryAt: now, sending: true))
        return Batch(id: nextID, entries: batch)
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
        failureMessage = "handler could not process entries: \(error)"
        if now - slots[i].firstTry > config.maxRetryTime {
            let n = slots[i].entries.count
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
    public func wakeAt(now: Double) -> Double? {
        var t: Double? = nil
        for s in slots where !s.sending { t = min(t ?? s.retryAt, s.retryAt) }
        if slots.count < slotLimit, count > 0 {
            let due = count >= batchSize ? now : times[head] + config.maxCoalescingDelay
            t = min(t ?? due, due)
        }
        return t
    }

    /// Nothing queued and nothing in flight.
    public var isIdle: Bool { count == 0 && slots.isEmpty }
}
