#if canImport(Glibc)
import Glibc
#endif
import GWPluginState

/// The cache modes (see main.swift); false for an unknown mode.
func cacheMode(_ args: [String], _ state: PluginState) -> Bool {
    switch args[1] {
    case "hold-cache":
        state.cache._lockAndAbandon()
        say("held")
        while true { pause() }
    case "cache-get":
        let seed = UInt64(args[2])!
        let buffer = CacheBuffer(capacity: 16)
        if let meta = state.cache.lookup(ProbeBlob.key(seed), now: 1000, into: buffer) {
            say("\(meta.blobLength) \(ProbeBlob.checksum(buffer.bytes))")
        } else {
            say("miss")
        }
    case "cache-put":
        let seed = UInt64(args[2])!, len = Int(args[3])!
        let blob = ProbeBlob.make(seed: seed, length: len)
        let ok = blob.withUnsafeBytes {
            state.cache.store(ProbeBlob.key(seed), storedAt: 1000, ttl: 60, expiresAt: 2000,
                              plugin: Hash128(hi: 1, lo: 2), blob: $0, now: 1000)
        }
        say(ok ? "stored" : "refused")
    default:
        return false
    }
    return true
}

/// Blobs derived from a seed (the tests compute the same ones: Tests/GWPluginStateTests/Blobs.swift).
enum ProbeBlob {
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
