// rate-limiting's response headers as numbers (X-RateLimit-Limit-<Period>, X-RateLimit-Remaining-<Period>,
// RateLimit-Limit / -Remaining / -Reset, Retry-After), written into the client's response head by the
// data path straight from these fields: on the keep-alive path that is cheaper than eight header edits
// (measured: tools/bench/callgrind.py --plugins key-auth,rate-limiting). They become ordinary header
// edits (`PluginContext.materializeTypedHeaders`) wherever a generic view is needed: a response the
// gateway generates (e.g. the 429 itself), and before header_filter plugins run, so that those see
// and can change them exactly as Kong's set_header would let them.
// Invariant: at most one rate-limiting instance runs per request (precedence picks one), so these
// fields hold one instance's headers; fixed capacity (6 windows): no allocation once reserved.

import GWHTTP

public final class RateLimitHeaders {
    /// Windows recorded (0: no headers).
    public private(set) var count = 0
    // Fixed six slots written by index (a reset is `count = 0`): periods and (limit, remaining) pairs.
    // A final class holding tuples, read in place through the context's reference: as a struct with
    // array members, the response head writer's copy of it and the per-header lookups cost ~1,000
    // instructions per request more; as a struct of tuples, its Optional copies through the head
    // writer's closure became ~13 memcpy calls (~500 instructions) (tools/bench/callgrind.py --plugins
    // key-auth,rate-limiting).
    private var periods: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
    private var values: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var limit: Int64 = 0, remaining: Int64 = 0, reset: Int64 = 0
    /// Retry-After (blocked requests only); < 0: none.
    var retryAfter: Int64 = -1

    init() {}

    public var isEmpty: Bool { count == 0 }

    func removeAll() {
        count = 0
        retryAfter = -1
    }

    func add(period: Int, limit: Int64, remaining: Int64) {
        guard count < 6 else { return }
        let c = count
        withUnsafeMutableBytes(of: &periods) { $0[c] = UInt8(period) }
        withUnsafeMutableBytes(of: &values) { v in
            v.storeBytes(of: limit, toByteOffset: 16 * c, as: Int64.self)
            v.storeBytes(of: remaining, toByteOffset: 16 * c + 8, as: Int64.self)
        }
        count += 1
    }

    func setAggregate(limit: Int64, remaining: Int64, reset: Int64, retryAfter: Int64) {
        self.limit = limit; self.remaining = remaining; self.reset = reset; self.retryAfter = retryAfter
    }

    // In place (the class's storage, no copy of the tuple).
    @inline(__always) private func period(_ i: Int) -> Int { withUnsafeMutableBytes(of: &periods) { Int($0[i]) } }
    @inline(__always) private func value(_ i: Int) -> Int64 {
        withUnsafeMutableBytes(of: &values) { $0.load(fromByteOffset: 8 * i, as: Int64.self) }
    }

    // Names by switch (a StaticString constant per case), not by indexing static arrays: no lazy global
    // initialisation check and no array access per header.
    @inline(__always) static func limitName(_ p: Int) -> StaticString {
        switch p {
        case 0: return "X-RateLimit-Limit-Second"
        case 1: return "X-RateLimit-Limit-Minute"
        case 2: return "X-RateLimit-Limit-Hour"
        case 3: return "X-RateLimit-Limit-Day"
        case 4: return "X-RateLimit-Limit-Month"
        default: return "X-RateLimit-Limit-Year"
        }
    }
    @inline(__always) static func remainingName(_ p: Int) -> StaticString {
        switch p {
        case 0: return "X-RateLimit-Remaining-Second"
        case 1: return "X-RateLimit-Remaining-Minute"
        case 2: return "X-RateLimit-Remaining-Hour"
        case 3: return "X-RateLimit-Remaining-Day"
        case 4: return "X-RateLimit-Remaining-Month"
        default: return "X-RateLimit-Remaining-Year"
        }
    }
    @inline(__always) static func aggregateName(_ k: Int) -> StaticString {
        switch k {
        case 0: return "RateLimit-Limit"
        case 1: return "RateLimit-Remaining"
        case 2: return "RateLimit-Reset"
        default: return "Retry-After"
        }
    }

    @inline(__always) static func raw(_ s: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }

    /// Headers written: two per window, three aggregates, and Retry-After when blocked.
    public var headerCount: Int { count == 0 ? 0 : 2 * count + (retryAfter >= 0 ? 4 : 3) }

    /// Header `i` (0 ..< headerCount) in Kong's order: its name and value. No closure, no allocation.
    @inline(__always) public func header(_ i: Int) -> (name: StaticString, value: Int64) {
        if i < 2 * count {
            let p = period(i >> 1)
            return i & 1 == 0 ? (RateLimitHeaders.limitName(p), value(i)) : (RateLimitHeaders.remainingName(p), value(i))
        }
        switch i - 2 * count {
        case 0: return (RateLimitHeaders.aggregateName(0), limit)
        case 1: return (RateLimitHeaders.aggregateName(1), remaining)
        case 2: return (RateLimitHeaders.aggregateName(2), reset)
        default: return (RateLimitHeaders.aggregateName(3), retryAfter)
        }
    }

    /// Calls `body(name, value)` for every header, in Kong's order.
    public func forEach(_ body: (UnsafeRawBufferPointer, Int64) -> Void) {
        for k in 0 ..< headerCount {
            let (name, value) = header(k)
            body(RateLimitHeaders.raw(name), value)
        }
    }

    /// Writes every header line (`Name: value\r\n`) in Kong's order: one call from the head writer
    /// rather than one cross-module `header(k)` call per line.
    public func write(to w: inout HeadWriter) {
        let n = headerCount
        var k = 0
        while k < n {
            let (name, value) = header(k)
            w.put(name); w.put(": ")
            if value >= 0 { RateLimitHeaders.putDecimal(&w, UInt64(value)) } else { w.putDecimal(Int(value)) }
            w.put("\r\n")
            k += 1
        }
    }

    /// A non-negative value in decimal, two digits per division from a pair table. The limits and
    /// remaining counts are often 7–10 digits, where HeadWriter.putDecimal runs two divide-by-ten
    /// loops. Kept here rather than in the shared putDecimal, which is inlined into every head writer.
    @inline(__always) static func putDecimal(_ w: inout HeadWriter, _ v: UInt64) {
        w.putRaw(maxBytes: 20) { base in
            var x = v
            var digits = 1
            var p: UInt64 = 10
            while x >= p {
                digits &+= 1
                if digits == 20 { break }   // 10^19 ≤ x: p would overflow
                p = p &* 10
            }
            let t = RateLimitHeaders.pairs.utf8Start
            var i = digits
            while x >= 100 {
                let q = x / 100
                let r = Int(truncatingIfNeeded: x &- q &* 100) &* 2
                i &-= 2
                base[i] = t[r]
                base[i &+ 1] = t[r &+ 1]
                x = q
            }
            if x >= 10 {
                let r = Int(truncatingIfNeeded: x) &* 2
                base[i &- 2] = t[r]
                base[i &- 1] = t[r &+ 1]
            } else {
                base[i &- 1] = 0x30 &+ UInt8(truncatingIfNeeded: x)
            }
            return digits
        }
    }
    static let pairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// Cheap pre-check, inlined at the caller (a response header's first byte and length): every name
    /// starts with X/x or R/r and is 11, 15, 19 or 22–28 bytes long. Saves the call to `writes` for
    /// nearly every upstream header.
    @inlinable public static func mayWrite(_ first: UInt8, _ n: Int) -> Bool {
        (first | 0x20 == 0x78 || first | 0x20 == 0x72) && (n == 11 || n == 15 || n == 19 || (n >= 22 && n <= 28))
    }

    /// True when `name` is one of the headers these fields write (the upstream's copy is dropped, as
    /// Kong's set_header replaces it). Case-insensitive.
    public func writes(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard count > 0, let first = name.first else { return false }
        let n = name.count
        // Every name starts with X/x or R/r and is 11, 15, 19 or 22–28 bytes long.
        guard first | 0x20 == 0x78 || first | 0x20 == 0x72, n == 11 || n == 15 || n == 19 || (n >= 22 && n <= 28) else { return false }
        for k in 0 ..< headerCount {
            let s = header(k).name
            guard s.utf8CodeUnitCount == n else { continue }
            let p = s.utf8Start
            var eq = true
            for j in 0 ..< n where (p[j] | 0x20) != (name[j] | 0x20) { eq = false; break }
            if eq { return true }
        }
        return false
    }
}
