import GWPluginState

/// The same blobs as the probe's ProbeBlob (Tests/GWPluginStateProbe/CacheModes.swift).
enum Blobs {
    static func key(_ seed: UInt64) -> CacheKey { CacheKey(seed &* 0x9E37_79B9_7F4A_7C15, seed, ~seed, 42) }
    static func make(seed: UInt64, length: Int) -> [UInt8] {
        var x = seed | 1
        return (0..<length).map { _ in x ^= x << 13; x ^= x >> 7; x ^= x << 17; return UInt8(truncatingIfNeeded: x) }
    }
    static func checksum(_ b: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in b { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return h
    }
}
