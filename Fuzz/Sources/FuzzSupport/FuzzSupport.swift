// Helpers shared by the fuzz targets: the input split into a control prefix and a payload, a small PRNG seeded
// from the control bytes (split points, options), and `check` (a failed invariant traps, which libFuzzer reports
// as a crash with the input saved).

/// A fuzz input: the first `controlBytes` bytes seed the choices, the rest is the payload the target parses.
public struct FuzzInput {
    public var seed: UInt64
    public var payload: [UInt8]

    public init(_ data: UnsafeRawPointer?, _ count: Int, controlBytes: Int = 4) {
        let all = count == 0 || data == nil ? [] : Array(UnsafeRawBufferPointer(start: data, count: count))
        var s: UInt64 = 0x9E37_79B9_7F4A_7C15
        for b in all.prefix(controlBytes) { s = (s ^ UInt64(b)) &* 0x100_0000_01B3 }
        seed = s
        payload = Array(all.dropFirst(controlBytes))
    }
}

/// splitmix64: deterministic choices from the control bytes.
public struct SplitRNG {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    public mutating func bit() -> Bool { next() & 1 == 1 }
}

/// Random pieces covering `0..<count`: mostly 0-8 bytes (so every boundary lands inside tokens, CRLFs and
/// chunk sizes), sometimes empty, sometimes long.
public func randomSplits(_ count: Int, _ rng: inout SplitRNG) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var at = 0
    while at < count {
        let n: Int
        switch rng.below(8) {
        case 0: n = 0
        case 1: n = 1 + rng.below(64)
        case 2: n = 1 + rng.below(1024)
        default: n = 1 + rng.below(8)
        }
        let end = min(count, at + n)
        out.append(at ..< end)
        at = end
    }
    return out
}

/// Traps with a message when an invariant does not hold (libFuzzer records the crashing input).
public func check(_ ok: @autoclosure () -> Bool, _ what: @autoclosure () -> String) {
    if !ok() { fatalError("invariant failed: " + what()) }
}
