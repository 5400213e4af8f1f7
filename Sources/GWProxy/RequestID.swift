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
        @inline(__always) func hex(_ v: UInt64) -> UInt8 { v < 10 ? 0x30 &+ UInt8(v) : 0x57 &+ UInt8(v) }
        var a = seed
        var b = counter &* 0x9E37_79B9_7F4A_7C15 ^ seed.byteSwapped
        withUnsafeMutableBytes(of: &digits) { d in
            for i in 0..<16 { d[i] = hex(a & 15); a >>= 4 }
            for i in 16..<32 { d[i] = hex(b & 15); b >>= 4 }
        }
        count = 32
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
