#if canImport(Glibc)
import Glibc
#endif
import GWPluginState
import GWSystem
import Testing

func put(_ c: CacheStore, _ seed: UInt64, _ len: Int, now: Int64 = 1000, ttl: Int64 = 60, expiresAt: Int64 = 2000,
         plugin: Hash128 = Hash128(hi: 1, lo: 2)) -> Bool {
    Blobs.make(seed: seed, length: len).withUnsafeBytes {
        c.store(Blobs.key(seed), storedAt: now, ttl: ttl, expiresAt: expiresAt, plugin: plugin, blob: $0, now: now)
    }
}

/// Looks `seed` up and checks the bytes; nil when absent.
func get(_ c: CacheStore, _ seed: UInt64, now: Int64 = 1000, buffer: CacheBuffer = CacheBuffer(capacity: 16)) -> CacheEntryMeta? {
    guard let m = c.lookup(Blobs.key(seed), now: now, into: buffer) else { return nil }
    #expect(buffer.count == m.blobLength)
    #expect(Array(buffer.bytes) == Blobs.make(seed: seed, length: m.blobLength), "blob of \(seed)")
    return m
}

@Suite struct CacheStoreTests {
    @Test func storeLookupReplacePurge() throws {
        let f = try makeState()
        let c = f.state.cache
        #expect(get(c, 1) == nil)
        #expect(put(c, 1, 100))
        let m = try #require(get(c, 1))
        #expect(m == CacheEntryMeta(storedAt: 1000, ttl: 60, expiresAt: 2000, plugin: Hash128(hi: 1, lo: 2), blobLength: 100))
        #expect(put(c, 1, 5000, now: 1010))          // replace, now spans chunks
        #expect(get(c, 1)?.blobLength == 5000)
        #expect(get(c, 1)?.storedAt == 1010)
        #expect(c.stats.entries == 1)
        #expect(c.stats.bytes == 5000)
        #expect(put(c, 2, 0))                         // an empty blob is an entry too
        #expect(get(c, 2)?.blobLength == 0)
        #expect(c.purge(Blobs.key(1)))
        #expect(!c.purge(Blobs.key(1)))
        #expect(get(c, 1) == nil)
        c.purgeAll()
        #expect(get(c, 2) == nil)
        #expect(c.stats.entries == 0)
        #expect(c.stats.freeChunks == c.stats.chunkCount)
    }

    @Test func purgeByPlugin() throws {
        let f = try makeState()
        let c = f.state.cache
        let a = Hash128(hi: 0xa, lo: 1), b = Hash128(hi: 0xb, lo: 1)
        #expect(put(c, 1, 10, plugin: a))
        #expect(put(c, 2, 10, plugin: b))
        #expect(put(c, 3, 10, plugin: a))
        #expect(!c.purge(plugin: b, key: Blobs.key(1)))
        #expect(get(c, 1) != nil)
        #expect(c.purge(plugin: a, key: Blobs.key(1)))
        #expect(get(c, 1) == nil)
        #expect(c.purgeAll(plugin: a) == 1)
        #expect(get(c, 3) == nil)
        #expect(get(c, 2) != nil)
    }

    @Test func ttlAndStorageExpiry() throws {
        let f = try makeState()
        let c = f.state.cache
        #expect(put(c, 1, 10, now: 1000, ttl: 30, expiresAt: 1100))
        #expect(get(c, 1, now: 1030)?.isStale(now: 1030) == false)
        #expect(get(c, 1, now: 1031)?.isStale(now: 1031) == true)   // stale: still returned
        #expect(get(c, 1, now: 1099) != nil)
        #expect(get(c, 1, now: 1100) == nil)                         // gone, and removed
        #expect(c.stats.entries == 0)
        #expect(put(c, 2, 10, now: 1000, ttl: 30, expiresAt: 0))      // no storage expiry
        #expect(get(c, 2, now: 999_999) != nil)
    }

    @Test func oversizedIsRefused() throws {
        let f = try makeState(cacheSize: 256 << 10, maxEntrySize: 4096)
        let c = f.state.cache
        #expect(put(c, 1, 4096))
        #expect(!put(c, 2, 4097))
        #expect(get(c, 2) == nil)
        #expect(c.stats.refused == 1)
        #expect(get(c, 1) != nil)
    }

    @Test func lruEvictionOrder() throws {
        let f = try makeState(cacheSize: 64 << 10, maxEntrySize: 32 << 10)
        let c = f.state.cache
        let chunks = c.stats.chunkCount
        // One-chunk entries until full.
        for s in 0..<UInt64(chunks) { #expect(put(c, s, 500)) }
        #expect(c.stats.freeChunks == 0)
        #expect(get(c, 0) != nil)            // 0 is now the most recent; 1 is the least
        #expect(put(c, 1000, 500))           // evicts exactly 1
        #expect(get(c, 1) == nil)
        #expect(get(c, 0) != nil)
        #expect(get(c, 2) != nil)
        #expect(c.stats.evictions == 1)
        // A 3-chunk entry evicts the three least recent: 3, 4, 5.
        #expect(put(c, 2000, 2500))
        #expect(get(c, 3) == nil && get(c, 4) == nil && get(c, 5) == nil)
        #expect(get(c, 6) != nil)
        #expect(c.keysByRecency().first == Blobs.key(6))
        #expect(c.stats.evictions == 4)
    }

    @Test func randomSizesNeverCorrupt() throws {
        let f = try makeState(cacheSize: 512 << 10, maxEntrySize: 64 << 10)
        let c = f.state.cache
        var rng = SystemRandomNumberGenerator()
        var live: [UInt64: Int] = [:]
        let buffer = CacheBuffer(capacity: 16)
        for i in 0..<3000 {
            let seed = UInt64.random(in: 0..<300, using: &rng)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5:
                let len = Int.random(in: 0...(Bool.random() ? 2000 : 64 << 10), using: &rng)
                #expect(put(c, seed &+ UInt64(i) << 20, len))
                live[seed &+ UInt64(i) << 20] = len
            case 5..<9:
                if let (k, len) = live.randomElement(), let m = get(c, k, buffer: buffer) { #expect(m.blobLength == len) }
            default:
                if let k = live.keys.randomElement() { c.purge(Blobs.key(k)); live[k] = nil }
            }
        }
        var found = 0, bytes = 0
        for (k, len) in live { if let m = get(c, k, buffer: buffer) { found += 1; bytes += len; #expect(m.blobLength == len) } }
        let st = c.stats
        #expect(st.entries == found)
        #expect(st.bytes == bytes)
        #expect(st.freeChunks >= 0 && st.freeChunks <= st.chunkCount)
        c.purgeAll()
        #expect(c.stats.freeChunks == c.stats.chunkCount)
    }

    @Test func visibleAcrossProcesses() throws {
        let f = try makeState(cacheSize: 2 << 20, maxEntrySize: 1 << 20)
        let c = f.state.cache
        #expect(Probe.run(f.shm, ["cache-put", "77", "300000"]) == "stored")
        let m = try #require(get(c, 77))
        #expect(m.blobLength == 300_000)
        #expect(put(c, 78, 12345))
        let expect = Blobs.make(seed: 78, length: 12345).withUnsafeBytes { Blobs.checksum($0) }
        #expect(Probe.run(f.shm, ["cache-get", "78"]) == "12345 \(expect)")
        #expect(Probe.run(f.shm, ["cache-get", "79"]) == "miss")
    }

    @Test func processKilledHoldingTheLockEmptiesNotWedges() throws {
        let f = try makeState()
        let c = f.state.cache
        #expect(put(c, 1, 100))
        let p = Probe.start(f.shm, ["hold-cache"])
        #expect(p.line() == "held")
        kill(p.pid, SIGKILL)
        #expect(p.wait() == 128 + SIGKILL)
        #expect(get(c, 1) == nil)             // emptied: a cache may forget, never lie
        #expect(c.stats.recoveries == 1)
        #expect(put(c, 1, 100))
        #expect(get(c, 1) != nil)
    }
}
