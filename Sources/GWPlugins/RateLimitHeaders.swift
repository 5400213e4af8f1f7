// rate-limiting's response headers as numbers (X-RateLimit-Limit-<Period>, X-RateLimit-Remaining-<Period>,
// RateLimit-Limit / -Remaining / -Reset, Retry-After), written into the client's response head by the
// data path straight from these fields: on the keep-alive path that is cheaper than eight header edits
// (measured: tools/bench/callgrind.py --plugins key-auth,rate-limiting). They become ordinary header
// edits (`PluginContext.materializeTypedHeaders`) wherever a generic view is needed: a response the
// gateway generates (e.g. the 429 itself), and before header_filter plugins run, so that those see
// and can change them exactly as Kong's set_header would let them.
// Invariant: at most one rate-limiting instance runs per request (precedence picks one), so these
// fields hold one instance's headers; fixed capacity (6 windows): no allocation once reserved.

public struct RateLimitHeaders {
    /// Windows recorded (0: no headers).
    public private(set) var count = 0
    // Fixed six slots written by index (a reset is `count = 0`): periods and (limit, remaining) pairs.
    private var periods: [UInt8] = [0, 0, 0, 0, 0, 0]
    private var values: [Int64] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    var limit: Int64 = 0, remaining: Int64 = 0, reset: Int64 = 0
    /// Retry-After (blocked requests only); < 0: none.
    var retryAfter: Int64 = -1

    init() {}

    public var isEmpty: Bool { count == 0 }

    mutating func removeAll() {
        count = 0
        retryAfter = -1
    }

    mutating func add(period: Int, limit: Int64, remaining: Int64) {
        guard count < 6 else { return }
        periods[count] = UInt8(period)
        values[2 * count] = limit
        values[2 * count + 1] = remaining
        count += 1
    }

    mutating func setAggregate(limit: Int64, remaining: Int64, reset: Int64, retryAfter: Int64) {
        self.limit = limit; self.remaining = remaining; self.reset = reset; self.retryAfter = retryAfter
    }

    static let limitNames: [StaticString] = ["X-RateLimit-Limit-Second", "X-RateLimit-Limit-Minute", "X-RateLimit-Limit-Hour",
                                             "X-RateLimit-Limit-Day", "X-RateLimit-Limit-Month", "X-RateLimit-Limit-Year"]
    static let remainingNames: [StaticString] = ["X-RateLimit-Remaining-Second", "X-RateLimit-Remaining-Minute",
                                                 "X-RateLimit-Remaining-Hour", "X-RateLimit-Remaining-Day",
                                                 "X-RateLimit-Remaining-Month", "X-RateLimit-Remaining-Year"]
    static let aggregateNames: [StaticString] = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"]

    @inline(__always) static func raw(_ s: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }

    /// Headers written: two per window, three aggregates, and Retry-After when blocked.
    public var headerCount: Int { count == 0 ? 0 : 2 * count + (retryAfter >= 0 ? 4 : 3) }

    /// Header `i` (0 ..< headerCount) in Kong's order: its name and value. No closure, no allocation.
    @inline(__always) public func header(_ i: Int) -> (name: StaticString, value: Int64) {
        if i < 2 * count {
            let p = Int(periods[i >> 1])
            return i & 1 == 0 ? (RateLimitHeaders.limitNames[p], values[i]) : (RateLimitHeaders.remainingNames[p], values[i])
        }
        switch i - 2 * count {
        case 0: return (RateLimitHeaders.aggregateNames[0], limit)
        case 1: return (RateLimitHeaders.aggregateNames[1], remaining)
        case 2: return (RateLimitHeaders.aggregateNames[2], reset)
        default: return (RateLimitHeaders.aggregateNames[3], retryAfter)
        }
    }

    /// Calls `body(name, value)` for every header, in Kong's order.
    public func forEach(_ body: (UnsafeRawBufferPointer, Int64) -> Void) {
        guard count > 0 else { return }
        for i in 0 ..< count {
            let p = Int(periods[i])
            body(RateLimitHeaders.raw(RateLimitHeaders.limitNames[p]), values[2 * i])
            body(RateLimitHeaders.raw(RateLimitHeaders.remainingNames[p]), values[2 * i + 1])
        }
        body(RateLimitHeaders.raw(RateLimitHeaders.aggregateNames[0]), limit)
        body(RateLimitHeaders.raw(RateLimitHeaders.aggregateNames[1]), remaining)
        body(RateLimitHeaders.raw(RateLimitHeaders.aggregateNames[2]), reset)
        if retryAfter >= 0 { body(RateLimitHeaders.raw(RateLimitHeaders.aggregateNames[3]), retryAfter) }
    }

    /// True when `name` is one of the headers these fields write (the upstream's copy is dropped, as
    /// Kong's set_header replaces it). Case-insensitive.
    public func writes(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard count > 0, let first = name.first else { return false }
        let n = name.count
        // Every name starts with X/x or R/r and is 11, 15, 19 or 22–28 bytes long.
        guard first | 0x20 == 0x78 || first | 0x20 == 0x72, n == 11 || n == 15 || n == 19 || (n >= 22 && n <= 28) else { return false }
        var hit = false
        forEach { n, _ in
            if !hit && n.count == name.count {
                var eq = true
                for k in 0 ..< n.count where (n[k] | 0x20) != (name[k] | 0x20) { eq = false; break }
                hit = eq
            }
        }
        return hit
    }
}
