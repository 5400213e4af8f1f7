import Glibc
import Testing
import GWStore
@testable import GWBalancer

@Suite struct PeerTableTests {
    @Test func ensureAndFindAcrossViews() {
        let t = makeSharedTable(capacity: 64)
        #expect(t.isFormatted)
        #expect(t.capacity == 64)
        let a = t.ensureSlot(upstream: "up", ip: "10.0.0.1", port: 80)!
        let b = t.ensureSlot(upstream: "up", ip: "10.0.0.2", port: 80)!
        let c = t.ensureSlot(upstream: "other", ip: "10.0.0.1", port: 80)!
        let d = t.ensureSlot(upstream: "up", ip: "10.0.0.1", port: 81)!
        #expect(Set([a, b, c, d]).count == 4)
        #expect(t.ensureSlot(upstream: "up", ip: "10.0.0.1", port: 80) == a)     // idempotent
        #expect(t.count == 4)
        // A second view over the same memory (as a worker would have) finds the same slots.
        let view = PeerStateTable(base: t.base, size: t.size)
        #expect(view.findSlot(upstream: "up", ip: "10.0.0.1", port: 80) == a)
        #expect(view.findSlot(upstream: "other", ip: "10.0.0.1", port: 80) == c)
        #expect(view.findSlot(upstream: "up", ip: "10.0.0.9", port: 80) == nil)
        let key = view.key(of: d)
        #expect(key.upstream == "up")
        #expect(key.address.description == "10.0.0.1:81")
        #expect(view.allSlots().count == 4)
    }

    @Test func ipv6KeysAndFormatting() {
        let t = makeSharedTable(capacity: 16)
        let s = t.ensureSlot(upstream: "v6", ip: "[::1]", port: 8000)!
        #expect(t.findSlot(upstream: "v6", ip: "0:0:0:0:0:0:0:1", port: 8000) == s)
        #expect(t.key(of: s).address.description == "[::1]:8000")
        #expect(PeerAddress(ip: "not-an-ip", port: 1) == nil)
    }

    @Test func fullTableAndLongNamesAreRefused() {
        let t = makeSharedTable(capacity: 8)
        var got = 0
        for i in 0..<20 where t.ensureSlot(upstream: "u", ip: "10.0.0.\(i)", port: 1) != nil { got += 1 }
        #expect(got == 7)                      // load factor capped at 7/8
        #expect(t.ensureSlot(upstream: String(repeating: "x", count: 256), ip: "10.0.0.1", port: 1) == nil)
        let unformatted = PeerStateTable(base: UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64),
                                         size: 4096)
        unformatted.base.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        #expect(!unformatted.isFormatted)
        #expect(unformatted.findSlot(upstream: "u", ip: "10.0.0.1", port: 1) == nil)
    }

    @Test func retiredRecordsAreReusedAfterTheGracePeriod() {
        let t = makeSharedTable(capacity: 8)
        var slots: [PeerSlot] = []
        for i in 0..<7 { slots.append(t.ensureSlot(upstream: "u", ip: "10.0.0.\(i)", port: 1, now: 1000)!) }
        #expect(t.ensureSlot(upstream: "u", ip: "10.0.1.1", port: 1, now: 1000) == nil)        // full
        t.setHealthy(slots[3], false, now: 1000)
        t.forget(slots[3], now: 1000)
        #expect(t.isRetired(slots[3]) && t.isHealthy(slots[3]))
        // Within the grace period: not reusable (a draining worker may still use it).
        #expect(t.ensureSlot(upstream: "u", ip: "10.0.1.1", port: 1, now: 1200) == nil)
        // Re-adding the same address brings the record back.
        #expect(t.ensureSlot(upstream: "u", ip: "10.0.0.3", port: 1, now: 1200) == slots[3])
        #expect(!t.isRetired(slots[3]))
        t.forget(slots[3], now: 1300)
        // In flight: not reusable even after the grace period.
        t.incrementActive(slots[3])
        #expect(t.ensureSlot(upstream: "u", ip: "10.0.1.1", port: 1, now: 2000) == nil)
        t.decrementActive(slots[3])
        let reused = t.ensureSlot(upstream: "u", ip: "10.0.1.1", port: 1, now: 2000)
        #expect(reused == slots[3])
        #expect(t.findSlot(upstream: "u", ip: "10.0.0.3", port: 1) == nil)
        #expect(t.findSlot(upstream: "u", ip: "10.0.1.1", port: 1) == slots[3])
        #expect(t.key(of: slots[3]).address.description == "10.0.1.1:1")
        #expect(!t.isRetired(slots[3]) && t.count == 7)
        for i in [0, 1, 2, 4, 5, 6] { #expect(t.findSlot(upstream: "u", ip: "10.0.0.\(i)", port: 1) == slots[i]) }
    }

    @Test func xxHash32ReferenceVectors() {
        #expect(xxHash32([UInt8]()) == 0x02CC_5D05)
        #expect(xxHash32("a") == 0x550D_7456)
        #expect(xxHash32("abc") == 0x32D1_53FF)
        #expect(xxHash32("Nobody inspects the spammish repetition") == 0xE229_3B2F)
    }

    @Test func latencyEwmaDecay() {
        let t = makeSharedTable(capacity: 8)
        let s = t.ensureSlot(upstream: "u", ip: "10.0.0.1", port: 1)!
        t.recordLatency(s, micros: 1000, nowMillis: 5000)
        #expect(t.ewmaMicros(s) == 1000)                    // first sample sets it
        t.recordLatency(s, micros: 9000, nowMillis: 5000)
        #expect(t.ewmaMicros(s) == 1000)                    // dt = 0 ⇒ unchanged (Kong)
        t.recordLatency(s, micros: 9000, nowMillis: 15000)  // dt = τ ⇒ w = 1/e
        let expected = 1000 * exp(-1.0) + 9000 * (1 - exp(-1.0))
        #expect(abs(Double(t.ewmaMicros(s)) - expected) < 2)
        t.seedLatency(s, micros: 5, nowMillis: 0)          // already sampled: no effect
        #expect(abs(Double(t.ewmaMicros(s)) - expected) < 2)
    }
}
