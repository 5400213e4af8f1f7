// Hash functions used by the balancer. No Foundation, no allocation.
//
// - `xxHash32` (seed 0) is the request-key hash for consistent hashing (the same function Kong uses for its
//   continuum points). Every worker and process computes the same value for the same bytes.
// - `fnv1a64` keys the shared peer table (upstream name + address + port).

@inline(__always) private func rotl32(_ x: UInt32, _ r: UInt32) -> UInt32 { (x << r) | (x >> (32 &- r)) }

private let P1: UInt32 = 2_654_435_761
private let P2: UInt32 = 2_246_822_519
private let P3: UInt32 = 3_266_489_917
private let P4: UInt32 = 668_265_263
private let P5: UInt32 = 374_761_393

/// xxHash32 of `bytes` with `seed` (reference algorithm, little-endian reads).
public func xxHash32(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
    let n = bytes.count
    var i = 0
    var h: UInt32
    @inline(__always) func read32(_ at: Int) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }
    if n >= 16 {
        var v1 = seed &+ P1 &+ P2, v2 = seed &+ P2, v3 = seed, v4 = seed &- P1
        while i + 16 <= n {
            v1 = rotl32(v1 &+ read32(i) &* P2, 13) &* P1
            v2 = rotl32(v2 &+ read32(i + 4) &* P2, 13) &* P1
            v3 = rotl32(v3 &+ read32(i + 8) &* P2, 13) &* P1
            v4 = rotl32(v4 &+ read32(i + 12) &* P2, 13) &* P1
            i += 16
        }
        h = rotl32(v1, 1) &+ rotl32(v2, 7) &+ rotl32(v3, 12) &+ rotl32(v4, 18)
    } else {
        h = seed &+ P5
    }
    h = h &+ UInt32(truncatingIfNeeded: n)
    while i + 4 <= n {
        h = rotl32(h &+ read32(i) &* P3, 17) &* P4
        i += 4
    }
    while i < n {
        h = rotl32(h &+ UInt32(bytes[i]) &* P5, 11) &* P1
        i += 1
    }
    h ^= h >> 15; h = h &* P2
    h ^= h >> 13; h = h &* P3
    h ^= h >> 16
    return h
}

/// xxHash32 of a byte array.
public func xxHash32(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { xxHash32($0, seed: seed) }
}

/// xxHash32 of a string's UTF-8 bytes (no copy for native strings).
public func xxHash32(_ string: String, seed: UInt32 = 0) -> UInt32 {
    var s = string
    return s.withUTF8 { xxHash32(UnsafeRawBufferPointer($0), seed: seed) }
}

/// Incremental FNV-1a 64.
struct FNV1a64 {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    @inline(__always) mutating func add(_ byte: UInt8) {
        value ^= UInt64(byte)
        value = value &* 0x0000_0100_0000_01b3
    }
    mutating func add(_ bytes: UnsafeRawBufferPointer) { for b in bytes { add(b) } }
}
