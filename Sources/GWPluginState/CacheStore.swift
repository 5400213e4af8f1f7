// GWPluginState.CacheStore: the proxy-cache `memory` strategy's store, one per node, shared by all
// workers and the master (Kong keeps it in the kong_db_cache shm).
//
// Layout (CGWPluginState.h): [gw_cache_header][u32 buckets x bucket_count][chunks x chunk_count].
// Chunks are GW_CACHE_CHUNK_SIZE (1 KiB) slabs. An entry is a chain of chunks: its head chunk holds
// a gw_cache_entry (key, metadata, LRU and hash links) and the first GW_CACHE_HEAD_DATA bytes of
// the blob, the following chunks GW_CACHE_CHUNK_DATA bytes each. Links are chunk index + 1 (0 = none).
//
// Invariants (all under the store's one robust process-shared mutex):
//  - Every chunk is on exactly one of: the free list, an entry's chain, or the never-used range
//    [fresh, chunk_count) (allocated in order, so untouched pages of a big store cost no RAM).
//    free_chunks = free-list length + never-used chunks.
//  - Every entry is in exactly one hash bucket chain (bucket = key word 0 & (bucket_count - 1)) and
//    in the LRU list (head = most recently stored or looked up, tail = least).
//  - No fragmentation failure: any free chunks serve any entry, so store() evicts from the LRU tail
//    until enough chunks are free; a blob larger than max_entry_size (or than the whole store) is
//    refused and nothing is evicted for it.
//  - An entry is gone at expires_at (lookup removes it); stale (age > ttl) entries are returned with
//    their metadata: the caller decides (Kong's Refresh).
//  - A process killed inside the section may leave the lists half-updated, so the next locker
//    (EOWNERDEAD) empties the store: a cache may forget, it must not lie (`recoveries` counts it).
//
// Locking: like RateLimitTable, one robust mutex; lookup() copies the blob out under it. Measured
// (release, `GWPluginStateProbe bench`): a miss ~14 ns, a 1 KiB hit ~36 ns, 8 KiB ~125 ns, 1 MiB (the
// default max entry) ~25 µs, so readers of other keys wait at most one copy. Growing the caller's
// buffer happens outside the lock; a buffer already big enough means no allocation at all.
#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// The caller's 32-byte key (its sha256), as four words.
public struct CacheKey: Hashable, Sendable {
    public var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64
    public init(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64) { self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3 }
    /// From 32 bytes (e.g. a sha256 digest).
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 32)
        w0 = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        w1 = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        w2 = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        w3 = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
    }
}

/// What a lookup returns besides the blob.
public struct CacheEntryMeta: Equatable, Sendable {
    public var storedAt: Int64      // unix seconds
    public var ttl: Int64           // seconds after storedAt when the entry is stale
    public var expiresAt: Int64     // unix seconds when it is gone (<= 0: never)
    public var plugin: Hash128      // the plugin instance that stored it
    public var blobLength: Int
    public init(storedAt: Int64, ttl: Int64, expiresAt: Int64, plugin: Hash128, blobLength: Int) {
        self.storedAt = storedAt; self.ttl = ttl; self.expiresAt = expiresAt; self.plugin = plugin; self.blobLength = blobLength
    }
    public func isStale(now: Int64) -> Bool { now - storedAt > ttl }
}

/// A reusable buffer a lookup copies the blob into (one per worker; grows, never shrinks).
public final class CacheBuffer {
    public private(set) var base: UnsafeMutableRawPointer
    public private(set) var capacity: Int
    /// Bytes of the last blob copied in.
    public internal(set) var count: Int = 0

    public init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }
    deinit { base.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    func reserve(_ n: Int) {
        guard n > capacity else { return }
        var c = capacity
        while c < n { c *= 2 }
        base.deallocate()
        base = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 16)
        capacity = c
        count = 0
    }
}

public struct CacheStats: Equatable, Sendable {
    public var entries: Int, bytes: Int, freeChunks: Int, chunkCount: Int
    public var hits: UInt64, misses: UInt64, stores: UInt64, evictions: UInt64, refused: UInt64, recoveries: UInt64
}

/// A view of the store in shared memory (pointers only; copy it freely).
public struct CacheStore: @unchecked Sendable {
    let header: UnsafeMutablePointer<gw_cache_header>
    let buckets: UnsafeMutablePointer<UInt32>
    let chunks: UnsafeMutableRawPointer
    let chunkCount: Int
    let bucketMask: UInt64

    static let chunkSize = Int(GW_CACHE_CHUNK_SIZE)
    static let headData = Int(GW_CACHE_HEAD_DATA)
    static let chunkData = Int(GW_CACHE_CHUNK_DATA)

    /// Chunks needed for a blob of `n` bytes.
    @inline(__always) static func chunksFor(_ n: Int) -> Int {
        n <= headData ? 1 : 1 + (n - headData + chunkData - 1) / chunkData
    }

    /// Lays out a store in `size` zeroed bytes at `base` (the master, once).
    public static func format(at base: UnsafeMutableRawPointer, size: Int, maxEntrySize: Int) -> CacheStore? {
        let hs = MemoryLayout<gw_cache_header>.stride
        guard size >= hs + 64 + chunkSize else { return nil }
        var chunkCount = (size - hs - 64) / (chunkSize + 4)
        chunkCount = min(chunkCount, Int(UInt32.max) - 1)
        var bucketCount = 1
        while bucketCount * 2 <= chunkCount { bucketCount *= 2 }
        let chunksOffset = (hs + bucketCount * 4 + 63) & ~63
        chunkCount = min(chunkCount, (size - chunksOffset) / chunkSize)
        guard chunkCount >= 1 else { return nil }
        let h = base.assumingMemoryBound(to: gw_cache_header.self)
        guard gw_ps_lock_init(&h.pointee.lock) == 0 else { return nil }
        h.pointee.layout_version = UInt32(GW_PLUGIN_LAYOUT_VERSION)
        h.pointee.chunk_size = UInt32(chunkSize)
        h.pointee.chunk_count = UInt64(chunkCount)
        h.pointee.bucket_count = UInt64(bucketCount)
        h.pointee.buckets_offset = UInt64(hs)
        h.pointee.chunks_offset = UInt64(chunksOffset)
        h.pointee.max_entry_size = UInt64(maxEntrySize)
        h.pointee.free_chunks = UInt64(chunkCount)
        gw_atomic_store_u64(&h.pointee.magic, GW_CACHE_MAGIC)
        return CacheStore(attaching: base, size: size)
    }

    /// A store the master laid out (checks magic, version and bounds).
    public init?(attaching base: UnsafeMutableRawPointer, size: Int) {
        let h = base.assumingMemoryBound(to: gw_cache_header.self)
        guard size >= MemoryLayout<gw_cache_header>.stride, h.pointee.magic == GW_CACHE_MAGIC,
              h.pointee.layout_version == UInt32(GW_PLUGIN_LAYOUT_VERSION),
              h.pointee.chunk_size == UInt32(CacheStore.chunkSize),
              Int(h.pointee.buckets_offset) + Int(h.pointee.bucket_count) * 4 <= Int(h.pointee.chunks_offset),
              Int(h.pointee.chunks_offset) + Int(h.pointee.chunk_count) * CacheStore.chunkSize <= size else { return nil }
        header = h
        buckets = (base + Int(h.pointee.buckets_offset)).assumingMemoryBound(to: UInt32.self)
        chunks = base + Int(h.pointee.chunks_offset)
        chunkCount = Int(h.pointee.chunk_count)
        bucketMask = h.pointee.bucket_count - 1
    }

    public var maxEntrySize: Int { Int(header.pointee.max_entry_size) }

    public var stats: CacheStats {
        guard lock() else { return CacheStats(entries: 0, bytes: 0, freeChunks: 0, chunkCount: chunkCount, hits: 0, misses: 0,
                                              stores: 0, evictions: 0, refused: 0, recoveries: 0) }
        defer { unlock() }
        let h = header.pointee
        return CacheStats(entries: Int(h.entries), bytes: Int(h.bytes), freeChunks: Int(h.free_chunks), chunkCount: chunkCount,
                          hits: h.hits, misses: h.misses, stores: h.stores, evictions: h.evictions, refused: h.refused,
                          recoveries: h.recoveries)
    }

    // MARK: lock

    @inline(__always) func lock() -> Bool {
        let rc = gw_ps_lock(&header.pointee.lock)
        if rc == 1 {
            reset()   // the dead owner may have left a list half-updated
            header.pointee.recoveries &+= 1
        }
        return rc >= 0
    }

    @inline(__always) func unlock() { gw_ps_unlock(&header.pointee.lock) }

    /// Empties the store (under the lock).
    func reset() {
        let h = header
        h.pointee.free_head = 0
        h.pointee.lru_head = 0
        h.pointee.lru_tail = 0
        h.pointee.fresh = 0
        h.pointee.free_chunks = UInt64(chunkCount)
        h.pointee.entries = 0
        h.pointee.bytes = 0
        buckets.update(repeating: 0, count: Int(bucketMask) + 1)
    }

    /// Test hook: takes the lock and never gives it back.
    public func _lockAndAbandon() { _ = gw_ps_lock_and_abandon(&header.pointee.lock) }

    // MARK: chunks

    /// The chunk at link `l` (index + 1).
    @inline(__always) func chunk(_ l: UInt32) -> UnsafeMutableRawPointer { chunks + (Int(l) - 1) * CacheStore.chunkSize }
    @inline(__always) func link(_ l: UInt32) -> UnsafeMutablePointer<gw_cache_link> { chunk(l).assumingMemoryBound(to: gw_cache_link.self) }
    @inline(__always) func entry(_ l: UInt32) -> UnsafeMutablePointer<gw_cache_entry> { chunk(l).assumingMemoryBound(to: gw_cache_entry.self) }

    @inline(__always) func bucket(_ key: CacheKey) -> UnsafeMutablePointer<UInt32> { buckets + Int(key.w0 & bucketMask) }

    /// Takes one chunk (free list first, then the never-used range). Caller checked free_chunks.
    func takeChunk() -> UInt32 {
        let h = header
        let l: UInt32
        if h.pointee.free_head != 0 {
            l = h.pointee.free_head
            h.pointee.free_head = link(l).pointee.next
        } else {
            precondition(Int(h.pointee.fresh) < chunkCount, "cache store: free_chunks out of step")
            h.pointee.fresh += 1
            l = h.pointee.fresh
        }
        h.pointee.free_chunks -= 1
        return l
    }

    @inline(__always) func matches(_ e: UnsafeMutablePointer<gw_cache_entry>, _ key: CacheKey) -> Bool {
        e.pointee.key.0 == key.w0 && e.pointee.key.1 == key.w1 && e.pointee.key.2 == key.w2 && e.pointee.key.3 == key.w3
    }

    func find(_ key: CacheKey) -> UInt32 {
        var l = bucket(key).pointee
        while l != 0 {
            let e = entry(l)
            if matches(e, key) { return l }
            l = e.pointee.hash_next
        }
        return 0
    }

    // MARK: LRU list

    func lruUnlink(_ l: UInt32) {
        let e = entry(l)
        let p = e.pointee.lru_prev, n = e.pointee.lru_next
        if p != 0 { entry(p).pointee.lru_next = n } else { header.pointee.lru_head = n }
        if n != 0 { entry(n).pointee.lru_prev = p } else { header.pointee.lru_tail = p }
        e.pointee.lru_prev = 0
        e.pointee.lru_next = 0
    }

    func lruPushHead(_ l: UInt32) {
        let e = entry(l)
        let old = header.pointee.lru_head
        e.pointee.lru_prev = 0
        e.pointee.lru_next = old
        if old != 0 { entry(old).pointee.lru_prev = l } else { header.pointee.lru_tail = l }
        header.pointee.lru_head = l
    }

    /// Removes entry `l` from its bucket and the LRU list and frees its chunks.
    func remove(_ l: UInt32) {
        let e = entry(l)
        let b = bucket(CacheKey(e.pointee.key.0, e.pointee.key.1, e.pointee.key.2, e.pointee.key.3))
        if b.pointee == l {
            b.pointee = e.pointee.hash_next
        } else {
            var p = b.pointee
            while p != 0 {
                let pe = entry(p)
                if pe.pointee.hash_next == l { pe.pointee.hash_next = e.pointee.hash_next; break }
                p = pe.pointee.hash_next
            }
        }
        lruUnlink(l)
        header.pointee.entries -= 1
        header.pointee.bytes -= UInt64(e.pointee.blob_len)
        header.pointee.free_chunks += UInt64(e.pointee.chunks)
        // Splice the whole chain onto the free list.
        var last = l
        while true {
            let k = link(last)
            k.pointee.kind = 0
            if k.pointee.next == 0 { break }
            last = k.pointee.next
        }
        link(last).pointee.next = header.pointee.free_head
        header.pointee.free_head = l
    }

    // MARK: operations

    /// Copies the blob stored under `key` into `buffer` (growing it when too small: the only
    /// allocation, outside the lock) and returns its metadata; nil when absent or expired
    /// (an expired entry is removed). A hit makes the entry the most recently used.
    public func lookup(_ key: CacheKey, now: Int64, into buffer: CacheBuffer) -> CacheEntryMeta? {
        while true {
            guard lock() else { return nil }
            let l = find(key)
            if l == 0 {
                header.pointee.misses &+= 1
                unlock()
                return nil
            }
            let e = entry(l)
            if e.pointee.expires_at > 0 && now >= e.pointee.expires_at {
                remove(l)
                header.pointee.misses &+= 1
                unlock()
                return nil
            }
            let n = Int(e.pointee.blob_len)
            if n > buffer.capacity {
                unlock()
                buffer.reserve(n)
                continue
            }
            copyOut(l, n, buffer.base)
            buffer.count = n
            if header.pointee.lru_head != l {
                lruUnlink(l)
                lruPushHead(l)
            }
            header.pointee.hits &+= 1
            let meta = CacheEntryMeta(storedAt: e.pointee.stored_at, ttl: e.pointee.ttl, expiresAt: e.pointee.expires_at,
                                      plugin: Hash128(hi: e.pointee.plugin_hi, lo: e.pointee.plugin_lo), blobLength: n)
            unlock()
            return meta
        }
    }

    func copyOut(_ head: UInt32, _ n: Int, _ dst: UnsafeMutableRawPointer) {
        var done = min(n, CacheStore.headData)
        dst.copyMemory(from: chunk(head) + MemoryLayout<gw_cache_entry>.stride, byteCount: done)
        var l = link(head).pointee.next
        while done < n {
            let k = min(n - done, CacheStore.chunkData)
            (dst + done).copyMemory(from: chunk(l) + MemoryLayout<gw_cache_link>.stride, byteCount: k)
            done += k
            l = link(l).pointee.next
        }
    }

    /// Stores `blob` under `key`, replacing an existing entry, evicting least recently used entries
    /// until it fits. False (nothing changed, except that an existing entry under `key` is removed)
    /// when the blob is larger than maxEntrySize or than the whole store.
    @discardableResult
    public func store(_ key: CacheKey, storedAt: Int64, ttl: Int64, expiresAt: Int64, plugin: Hash128,
                      blob: UnsafeRawBufferPointer, now: Int64) -> Bool {
        let n = blob.count
        let need = CacheStore.chunksFor(n)
        guard lock() else { return false }
        defer { unlock() }
        let old = find(key)
        if old != 0 { remove(old) }
        guard n <= maxEntrySize, n <= Int(UInt32.max), need <= chunkCount else {
            header.pointee.refused &+= 1
            return false
        }
        while Int(header.pointee.free_chunks) < need {
            let victim = header.pointee.lru_tail
            precondition(victim != 0, "cache store: no entry to evict yet too few free chunks")
            let ve = entry(victim)
            if !(ve.pointee.expires_at > 0 && now >= ve.pointee.expires_at) { header.pointee.evictions &+= 1 }
            remove(victim)
        }
        let head = takeChunk()
        let e = entry(head)
        e.pointee.link = gw_cache_link(next: 0, kind: 1)
        e.pointee.key = (key.w0, key.w1, key.w2, key.w3)
        e.pointee.stored_at = storedAt
        e.pointee.ttl = ttl
        e.pointee.expires_at = expiresAt
        e.pointee.plugin_hi = plugin.hi
        e.pointee.plugin_lo = plugin.lo
        e.pointee.blob_len = UInt32(n)
        e.pointee.chunks = UInt32(need)
        var done = min(n, CacheStore.headData)
        if done > 0 { (chunk(head) + MemoryLayout<gw_cache_entry>.stride).copyMemory(from: blob.baseAddress!, byteCount: done) }
        var prev = head
        while done < n {
            let l = takeChunk()
            let k = min(n - done, CacheStore.chunkData)
            link(l).pointee = gw_cache_link(next: 0, kind: 2)
            (chunk(l) + MemoryLayout<gw_cache_link>.stride).copyMemory(from: blob.baseAddress! + done, byteCount: k)
            link(prev).pointee.next = l
            prev = l
            done += k
        }
        let b = bucket(key)
        e.pointee.hash_next = b.pointee
        b.pointee = head
        e.pointee.lru_prev = 0
        e.pointee.lru_next = 0
        lruPushHead(head)
        header.pointee.entries += 1
        header.pointee.bytes += UInt64(n)
        header.pointee.stores &+= 1
        return true
    }

    /// Removes the entry under `key`; false when there is none.
    @discardableResult
    public func purge(_ key: CacheKey) -> Bool {
        guard lock() else { return false }
        defer { unlock() }
        let l = find(key)
        if l != 0 { remove(l) }
        return l != 0
    }

    /// Removes the entry under `key` only if `plugin` stored it (Admin API
    /// DELETE /proxy-cache/{plugin_id}/caches/{key}); false when there is none.
    @discardableResult
    public func purge(plugin: Hash128, key: CacheKey) -> Bool {
        guard lock() else { return false }
        defer { unlock() }
        let l = find(key)
        guard l != 0, entry(l).pointee.plugin_hi == plugin.hi, entry(l).pointee.plugin_lo == plugin.lo else { return false }
        remove(l)
        return true
    }

    /// Removes every entry `plugin` stored; returns how many (walks the LRU list).
    @discardableResult
    public func purgeAll(plugin: Hash128) -> Int {
        guard lock() else { return 0 }
        defer { unlock() }
        var removed = 0
        var l = header.pointee.lru_head
        while l != 0 {
            let next = entry(l).pointee.lru_next
            if entry(l).pointee.plugin_hi == plugin.hi && entry(l).pointee.plugin_lo == plugin.lo {
                remove(l)
                removed += 1
            }
            l = next
        }
        return removed
    }

    /// Empties the store (Admin API DELETE /proxy-cache).
    public func purgeAll() {
        guard lock() else { return }
        reset()
        unlock()
    }

    /// The keys from most to least recently used (tests, Admin API listings; allocates).
    public func keysByRecency() -> [CacheKey] {
        guard lock() else { return [] }
        defer { unlock() }
        var out: [CacheKey] = []
        var l = header.pointee.lru_head
        while l != 0 {
            let e = entry(l)
            out.append(CacheKey(e.pointee.key.0, e.pointee.key.1, e.pointee.key.2, e.pointee.key.3))
            l = e.pointee.lru_next
        }
        return out
    }
}
