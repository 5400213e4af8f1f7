import Testing
@testable import GWPlugins

/// Kong's queue semantics (kong/tools/queue.lua, spec/01-unit/27-queue_spec.lua) driven without sockets:
/// time is passed in.
@Suite struct LogQueueTests {
    func e(_ i: Int) -> [UInt8] { Array("e\(i)".utf8) }
    func names(_ b: LogQueue.Batch?) -> [String] { b?.entries.map { String(decoding: $0, as: UTF8.self) } ?? [] }

    @Test func batchSizeAndCoalescingDelay() {
        var c = LogQueueConfig()
        c.maxBatchSize = 3; c.maxCoalescingDelay = 1
        let q = LogQueue(config: c)
        q.enqueue(e(1), now: 10)
        q.enqueue(e(2), now: 10.2)
        #expect(q.next(now: 10.5) == nil, "a partial batch waits for the coalescing delay")
        #expect(q.wakeAt(now: 10.5) == 11)
        #expect(names(q.next(now: 11)) == ["e1", "e2"])
        for i in 3 ... 7 { q.enqueue(e(i), now: 11.1) }
        #expect(q.next(now: 11.1) == nil, "concurrency_limit 1: one batch in flight")
        q.done(1, ok: true, now: 11.2)
        #expect(names(q.next(now: 11.2)) == ["e3", "e4", "e5"], "a full batch leaves at once")
        q.done(2, ok: true, now: 11.3)
        #expect(names(q.next(now: 11.3)) == [])
        #expect(names(q.next(now: 11.3, flushing: true)) == ["e6", "e7"])
        #expect(q.delivered == 2)
    }

    @Test func retryBackoffThenLoss() {
        var c = LogQueueConfig()
        c.initialRetryDelay = 0.01; c.maxRetryDelay = 0.05; c.maxRetryTime = 1
        let q = LogQueue(config: c)
        q.enqueue(e(1), now: 0)
        let b = q.next(now: 0)!
        #expect(q.retryDelay(0) == 0.01 && q.retryDelay(1) == 0.02 && q.retryDelay(2) == 0.04 && q.retryDelay(3) == 0.05)
        q.done(b.id, ok: false, now: 0, error: "refused")
        #expect(q.failureMessage == "handler could not process entries: refused")
        #expect(q.next(now: 0.005) == nil)
        #expect(q.wakeAt(now: 0.005) == 0.01)
        let r1 = q.next(now: 0.01)!
        #expect(r1.id == b.id && names(r1) == ["e1"], "the same batch is retried")
        q.done(r1.id, ok: false, now: 0.01)
        #expect(q.wakeAt(now: 0.01) == 0.03, "the delay doubles")
        // Entries queued meanwhile wait behind the failing batch (order is kept).
        q.enqueue(e(2), now: 0.02)
        #expect(names(q.next(now: 0.03)) == ["e1"])
        q.done(b.id, ok: false, now: 1.5)
        #expect(q.lost == 1 && q.unreported == 1)
        #expect(q.dropMessage == "could not send entries due to max_retry_time exceeded. 1 queue entries were lost")
        #expect(names(q.next(now: 3)) == ["e2"])
    }

    @Test func fullQueueDropsOldest() {
        var c = LogQueueConfig()
        c.maxEntries = 3
        let q = LogQueue(config: c)
        q.enqueue(e(1), now: 0)
        let b = q.next(now: 0)!   // e1 in flight, counted against max_entries
        for i in 2 ... 6 { q.enqueue(e(i), now: 0) }
        #expect(q.count == 2 && q.inFlight == 1)
        #expect(q.dropped == 3 && q.unreported == 3 && q.dropping)
        #expect(q.dropMessage == "queue full, dropping old entries until processing is successful again")
        q.done(b.id, ok: true, now: 0)
        #expect(!q.dropping, "a success ends the dropping state")
        #expect(names(q.next(now: 0)) == ["e5"])
    }

    @Test func everyEntryInFlight() {
        var c = LogQueueConfig()
        c.maxEntries = 1
        let q = LogQueue(config: c)
        q.enqueue(e(1), now: 0)
        _ = q.next(now: 0)
        #expect(!q.enqueue(e(2), now: 0), "nothing queued to drop: the new entry is dropped")
        #expect(q.dropped == 1)
    }

    @Test func maxBytes() {
        var c = LogQueueConfig()
        c.maxBytes = 6; c.maxBatchSize = 10
        let q = LogQueue(config: c)
        #expect(!q.enqueue(Array("1234567".utf8), now: 0))
        #expect(q.dropMessage == "string to be queued is longer (7 bytes) than the queue's max_bytes (6 bytes)")
        q.enqueue(e(1), now: 0); q.enqueue(e(2), now: 0); q.enqueue(e(3), now: 0)
        #expect(q.bytes == 6)
        q.enqueue(e(4), now: 0)
        #expect(q.bytes == 6 && q.count == 3 && q.dropped == 2)
        #expect(q.dropMessage == "byte capacity exceeded, 1 queue entries were dropped")
        #expect(names(q.next(now: 0, flushing: true)) == ["e2", "e3", "e4"])
    }

    @Test func noQueueConcurrency() {
        var c = LogQueueConfig()
        c.concurrencyLimit = -1; c.maxBatchSize = 10
        let q = LogQueue(config: c)
        for i in 1 ... 20 { q.enqueue(e(i), now: 0) }
        var sent = 0
        while let b = q.next(now: 0) { #expect(b.entries.count == 1); sent += 1 }
        #expect(sent == LogQueue.unboundedSlots, "one entry per send, a bounded number in flight")
    }

    @Test func compactionKeepsOrder() {
        var c = LogQueueConfig()
        c.maxBatchSize = 1000; c.maxEntries = 5000
        let q = LogQueue(config: c)
        for i in 0 ..< 3000 { q.enqueue(e(i), now: 0) }
        var got: [String] = []
        while let b = q.next(now: 0) { got += names(b); q.done(b.id, ok: true, now: 0) }
        #expect(got == (0 ..< 3000).map { "e\($0)" })
        #expect(q.isIdle && q.bytes == 0)
    }

    @Test func trainsOfSingleEntryBatches() {
        let q = LogQueue(config: LogQueueConfig())   // max_batch_size 1, concurrency_limit 1
        for i in 1 ... 5 { q.enqueue(e(i), now: 0) }
        let t = q.next(now: 0, train: 4)!
        #expect(names(t) == ["e1", "e2", "e3", "e4"] && t.parts == 4 && t.part(2) == 2 ..< 3 && Array(t.entry(2)) == Array("e3".utf8))
        #expect(q.next(now: 0, train: 4) == nil, "one unit in flight")
        // Requests 2 and 4 failed: they stay, in order, and are retried together; 1 and 3 were delivered.
        q.done(t.id, failed: [false, true, false, true], now: 0, error: "status 500")
        #expect(q.delivered == 2 && q.inFlight == 2 && !q.dropping)
        #expect(q.next(now: 0, train: 4) == nil, "the retry waits for its back-off")
        let r = q.next(now: 1, train: 4)!
        #expect(r.id == t.id && names(r) == ["e2", "e4"])
        q.done(r.id, failed: [false, false], now: 1)
        #expect(q.delivered == 4 && q.inFlight == 0)
        #expect(names(q.next(now: 1, train: 4)) == ["e5"])
    }

    @Test func trainsKeepBatchesAndTheirDelay() {
        var c = LogQueueConfig()
        c.maxBatchSize = 2; c.maxCoalescingDelay = 1
        let q = LogQueue(config: c)
        for i in 1 ... 5 { q.enqueue(e(i), now: 0) }
        let t = q.next(now: 0.5, train: 8)!
        #expect(names(t) == ["e1", "e2", "e3", "e4"] && t.parts == 2, "whole batches; the partial one waits")
        q.done(t.id, ok: true, now: 0.5)
        #expect(q.next(now: 0.5, train: 8) == nil)
        #expect(q.wakeAt(now: 0.5, newAfter: 2) == 2, "the owner's pacing delays a due batch")
        #expect(q.next(now: 1, train: 8, newUnits: false) == nil)
        #expect(names(q.next(now: 1, train: 8)) == ["e5"])
    }

    @Test func trainBytesBound() {
        let q = LogQueue(config: LogQueueConfig())
        for i in 10 ... 19 { q.enqueue(e(i), now: 0) }   // 3 bytes each
        #expect(names(q.next(now: 0, train: 100, trainBytes: 7)) == ["e10", "e11"], "at least one batch, then within the bytes")
    }
}
