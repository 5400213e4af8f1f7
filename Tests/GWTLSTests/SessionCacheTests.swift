// The shared TLS session cache's table (CSSL sessioncache.c through GWTLS.SessionCache), without OpenSSL:
// store and find by id, replace, remove, expiry, eviction of the oldest when full (a FIFO log that wraps),
// records too large refused, and recovery from a holder that died inside the lock (owner-dead → emptied).
import Testing
import CSSL
@testable import GWTLS
#if canImport(Glibc)
import Glibc
#endif

/// A cache in a private buffer of `size` bytes (the table does not care where its memory is).
private final class Area {
    let base: UnsafeMutableRawPointer
    init(size: Int) throws {
        base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        memset(base, 0xA5, size)   // format must not rely on zeroed memory
        try SessionCache.format(area: base, size: size)
    }
    deinit { base.deallocate() }
    var stats: SessionCache.Stats { SessionCache.stats(area: base)! }
}

private func id(_ n: Int) -> [UInt8] { (0..<32).map { UInt8(truncatingIfNeeded: n >> (8 * ($0 % 4)) ^ $0) } }
private func der(_ n: Int, length: Int = 150) -> [UInt8] { (0..<length).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0) } }

@Suite struct SessionCacheTests {
    @Test func storeFindReplaceRemove() throws {
        let a = try Area(size: 64 << 10)
        #expect(SessionCache.put(area: a.base, id: id(1), der: der(1), expires: 200, now: 100))
        #expect(SessionCache.put(area: a.base, id: id(2), der: der(2, length: 40), expires: 200, now: 100))
        #expect(SessionCache.get(area: a.base, id: id(1), now: 150) == der(1))
        #expect(SessionCache.get(area: a.base, id: id(2), now: 150) == der(2, length: 40))
        #expect(SessionCache.get(area: a.base, id: id(3), now: 150) == nil)
        #expect(SessionCache.get(area: a.base, id: Array(id(1).prefix(16)), now: 150) == nil, "another id length is another id")
        // The same id again replaces the session.
        #expect(SessionCache.put(area: a.base, id: id(1), der: der(9), expires: 200, now: 101))
        #expect(SessionCache.get(area: a.base, id: id(1), now: 150) == der(9))
        #expect(a.stats.entries == 2)
        #expect(SessionCache.remove(area: a.base, id: id(1)))
        #expect(!SessionCache.remove(area: a.base, id: id(1)))
        #expect(SessionCache.get(area: a.base, id: id(1), now: 150) == nil)
        let s = a.stats
        #expect(s.entries == 1 && s.stores == 3 && s.removed == 1)
        #expect(s.hits == 3 && s.misses == 3)
    }

    @Test func expiredSessionsAreNeverReturned() throws {
        let a = try Area(size: 64 << 10)
        #expect(SessionCache.put(area: a.base, id: id(1), der: der(1), expires: 102, now: 100))
        #expect(SessionCache.get(area: a.base, id: id(1), now: 101) == der(1))
        #expect(SessionCache.get(area: a.base, id: id(1), now: 102) == nil)
        #expect(a.stats.entries == 0 && a.stats.expired == 1)
        // A store drops expired sessions at the tail of the log.
        #expect(SessionCache.put(area: a.base, id: id(2), der: der(2), expires: 105, now: 100))
        #expect(SessionCache.put(area: a.base, id: id(3), der: der(3), expires: 300, now: 200))
        #expect(a.stats.entries == 1 && a.stats.expired == 2)
    }

    @Test func fullCacheEvictsTheOldestAndWraps() throws {
        let a = try Area(size: 32 << 10)
        let capacity = a.stats.capacityBytes
        // 256-byte records (64 header + 150 DER, rounded to 64): the ring holds capacity / 256 of them.
        let fits = Int(capacity / 256)
        for n in 0..<(fits * 5) {
            #expect(SessionCache.put(area: a.base, id: id(n), der: der(n), expires: 10_000, now: 100))
            // The newest `fits - 1` are always there (a wrap may waste the end of the ring), the oldest gone.
            if n >= fits {
                #expect(SessionCache.get(area: a.base, id: id(n - fits + 2), now: 100) == der(n - fits + 2))
                #expect(SessionCache.get(area: a.base, id: id(n - fits - 1), now: 100) == nil)
            }
        }
        let s = a.stats
        #expect(s.usedBytes <= capacity && s.entries <= UInt64(fits) && s.entries >= UInt64(fits - 1))
        #expect(s.evictions >= UInt64(fits * 4 - 1) && s.expired == 0)
        // Mixed sizes up to the largest session: every store fits, every survivor reads back intact.
        for n in 0..<500 {
            let len = [1, 64, 700, 2000, Int(GW_SC_MAX_SESSION)][n % 5]
            #expect(SessionCache.put(area: a.base, id: id(100_000 + n), der: der(n, length: len), expires: 10_000, now: 100))
            #expect(SessionCache.get(area: a.base, id: id(100_000 + n), now: 100) == der(n, length: len))
        }
        var found = 0
        for n in 0..<500 {
            if let got = SessionCache.get(area: a.base, id: id(100_000 + n), now: 100) {
                #expect(got == der(n, length: [1, 64, 700, 2000, Int(GW_SC_MAX_SESSION)][n % 5]))
                found += 1
            }
        }
        #expect(UInt64(found) == a.stats.entries && found > 0)
    }

    @Test func refusesWhatItCannotHold() throws {
        let a = try Area(size: 32 << 10)
        #expect(!SessionCache.put(area: a.base, id: id(1), der: der(1, length: Int(GW_SC_MAX_SESSION) + 1), expires: 200, now: 100))
        #expect(!SessionCache.put(area: a.base, id: [UInt8](repeating: 1, count: 33), der: der(1), expires: 200, now: 100))
        #expect(!SessionCache.put(area: a.base, id: [], der: der(1), expires: 200, now: 100))
        #expect(a.stats.tooBig == 3 && a.stats.entries == 0)
        #expect(throws: TLSError.self) { try Area(size: 16 << 10) }
        #expect(SessionCache.minimumSize == 32 << 10)
    }

    @Test func holderKilledInsideTheLockEmptiesTheCache() throws {
        let a = try Area(size: 64 << 10)
        for n in 0..<20 { #expect(SessionCache.put(area: a.base, id: id(n), der: der(n), expires: 200, now: 100)) }
        #expect(gw_sc_test_die_holding_lock(a.base) == 0)
        // The next locker gets the mutex (owner-dead), empties the half-updated cache and goes on.
        #expect(SessionCache.get(area: a.base, id: id(5), now: 150) == nil)
        #expect(a.stats.recoveries == 1 && a.stats.entries == 0 && a.stats.usedBytes == 0)
        #expect(SessionCache.put(area: a.base, id: id(5), der: der(5), expires: 200, now: 100))
        #expect(SessionCache.get(area: a.base, id: id(5), now: 150) == der(5))
    }
}
