// Kong's request id (X-Kong-Request-Id, the log's request id): 32 lower-case hex digits held inline in the
// connection, so that a connection carries no heap storage for it and a new id costs no array work.
// Invariant: `count` is 0 (no exchange has started yet) or 32, and then `digits` holds 32 ASCII hex bytes.
// Worker-loop confined (a value in its connection).

struct RequestID {
    private var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private(set) var count = 0

    /// The id of request number `counter` of a worker seeded with `seed` (same digits as before: the seed's
    /// nibbles, then those of the mixed counter, least significant first).
    init(seed: UInt64, counter: UInt64) {
        self.init(seed: Seed(seed), counter: counter)
    }

    /// The seed's half of every id of a worker, written once.
    struct Seed {
        let value: UInt64
        let low: UInt64, high: UInt64   // its 16 hex digits, as RequestID.hexDigits
        init(_ v: UInt64) {
            value = v
            (low, high) = RequestID.hexDigits(v)
        }
    }

    /// `init(seed:counter:)` with the seed's digits written beforehand: 16 digits per request, eight at a
    /// time (305 instructions per request before, callgrind.py).
    @inline(__always) init(seed: Seed, counter: UInt64) {
        let (low, high) = RequestID.hexDigits(counter &* 0x9E37_79B9_7F4A_7C15 ^ seed.value.byteSwapped)
        digits = (seed.low, seed.high, low, high)
        count = 32
    }

    /// The 16 lower-case hex digits of `v`, least significant nibble first, as the bytes of two words in
    /// memory order: each nibble spread to its own byte, then '0' added, and 'a' - '0' - 10 more where
    /// the nibble is 10 or more. (`hexDigitsByteWise` is the reference, compared in RequestIDTests.)
    @inline(__always) static func hexDigits(_ v: UInt64) -> (UInt64, UInt64) {
        @inline(__always) func word(_ half: UInt64) -> UInt64 {
            var x = half & 0xFFFF_FFFF
            x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF
            x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF
            x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F
            let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
            return (x &+ 0x3030_3030_3030_3030 &+ letters &* 0x27).littleEndian
        }
        return (word(v), word(v >> 32))
    }

    /// The digits byte by byte (the reference for `hexDigits`).
    static func hexDigitsByteWise(_ v: UInt64) -> [UInt8] {
        var a = v
        return (0..<16).map { _ in
            let n = a & 15
            a >>= 4
            return n < 10 ? 0x30 &+ UInt8(n) : 0x57 &+ UInt8(n)
        }
    }

    init() {}

    /// The digits (empty before the first exchange).
    @inline(__always) func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: digits) { body(UnsafeRawBufferPointer(rebasing: $0[0 ..< count])) }
    }

    /// Replaces `out`'s content with the digits (keeping its capacity: no allocation once warm).
    func copy(into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        withBytes { out.append(contentsOf: $0) }
    }

    var string: String { withBytes { String(decoding: $0, as: UTF8.self) } }
}
