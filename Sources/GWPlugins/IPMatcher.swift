// IP addresses in binary form and a compiled matcher over IP / CIDR lists (what lua-resty-ipmatcher
// does for Kong's ip-restriction). Text is parsed when a list is compiled and once per connection for
// the client address; a match is a few masked binary searches and allocates nothing.
//
// Invariants: an IPv4 client matches only IPv4 entries and an IPv6 client only IPv6 entries (nginx's
// binary_remote_addr is 4 or 16 bytes; an IPv4-mapped IPv6 peer is IPv6). Each prefix-length group
// holds its networks masked, sorted and deduplicated.

/// An IPv6 address (or any 128-bit value) as two 64-bit halves, ordered numerically.
public struct IP128: Comparable, Hashable, Sendable {
    public var hi: UInt64
    public var lo: UInt64
    public init(hi: UInt64, lo: UInt64) { self.hi = hi; self.lo = lo }
    public static func < (a: IP128, b: IP128) -> Bool { a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo }

    /// The first `bits` bits kept, the rest zero.
    @inline(__always) func masked(_ bits: Int) -> IP128 {
        if bits >= 128 { return self }
        if bits <= 0 { return IP128(hi: 0, lo: 0) }
        if bits >= 64 { return IP128(hi: hi, lo: bits == 64 ? 0 : lo & ~(UInt64.max >> UInt64(bits - 64))) }
        return IP128(hi: hi & ~(UInt64.max >> UInt64(bits)), lo: 0)
    }
}

/// A client address: IPv4, IPv6, or none (a unix-domain socket, or text that is not an address).
public enum IPAddress: Equatable, Sendable {
    case v4(UInt32)
    case v6(IP128)
    case none

    /// A peer address as text; an IPv6 zone ("fe80::1%eth0") is not part of the address.
    public init(_ text: String) {
        var t = text
        self = t.withUTF8 { b in
            let end = b.firstIndex(of: 0x25) ?? b.count
            return IPAddress.parse(UnsafeBufferPointer(rebasing: b[0 ..< end]))
        }
    }

    public static func parse(_ s: UnsafeBufferPointer<UInt8>) -> IPAddress {
        if let v = parseV4(s[...]) { return .v4(v) }
        if let v = parseV6(s) { return .v6(v) }
        return .none
    }

    /// Strict dotted quad: four decimal parts 0-255, no empty part, no sign.
    static func parseV4(_ s: Slice<UnsafeBufferPointer<UInt8>>) -> UInt32? {
        var value: UInt32 = 0, part: UInt32 = 0, digits = 0, dots = 0
        for c in s {
            if c == 0x2E {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | part
                part = 0; digits = 0; dots += 1
            } else if c >= 0x30 && c <= 0x39 {
                part = part * 10 + UInt32(c - 0x30)
                digits += 1
                guard digits <= 3, part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, dots == 3 else { return nil }
        return value << 8 | part
    }

    /// RFC 4291 text: up to eight hex groups, one "::", an optional dotted-quad tail.
    static func parseV6(_ s: UnsafeBufferPointer<UInt8>) -> IP128? {
        guard s.count >= 2, s.count <= 45 else { return nil }
        var groups = (UInt16(0), UInt16(0), UInt16(0), UInt16(0), UInt16(0), UInt16(0), UInt16(0), UInt16(0))
        return withUnsafeMutableBytes(of: &groups) { raw -> IP128? in
            let g = raw.bindMemory(to: UInt16.self)
            var n = 0, gap = -1, i = 0
            if s[0] == 0x3A {
                guard s[1] == 0x3A else { return nil }
                gap = 0; i = 2
                if i == s.count { return IP128(hi: 0, lo: 0) }
            }
            while i < s.count {
                // A group, or an IPv4 tail when a '.' comes before the next ':'.
                var j = i, v: UInt32 = 0, isV4 = false
                while j < s.count && s[j] != 0x3A {
                    let c = s[j]
                    if c == 0x2E { isV4 = true }
                    j += 1
                }
                if isV4 {
                    guard j == s.count, n <= 6, let v4 = parseV4(s[i ..< j]) else { return nil }
                    g[n] = UInt16(v4 >> 16); g[n + 1] = UInt16(v4 & 0xFFFF); n += 2
                    i = j
                    break
                }
                guard j > i, j - i <= 4, n < 8 else { return nil }
                for k in i ..< j {
                    let c = s[k]
                    let d: UInt32
                    switch c {
                    case 0x30 ... 0x39: d = UInt32(c - 0x30)
                    case 0x41 ... 0x46: d = UInt32(c - 0x41 + 10)
                    case 0x61 ... 0x66: d = UInt32(c - 0x61 + 10)
                    default: return nil
                    }
                    v = v << 4 | d
                }
                g[n] = UInt16(v); n += 1
                if j == s.count { i = j; break }
                // s[j] == ':'
                if j + 1 < s.count && s[j + 1] == 0x3A {
                    guard gap < 0 else { return nil }
                    gap = n
                    i = j + 2
                    if i == s.count { break }
                } else {
                    guard j + 1 < s.count else { return nil }
                    i = j + 1
                }
            }
            if gap >= 0 {
                guard n < 8 else { return nil }
                let tail = n - gap
                for k in 0 ..< tail { g[7 - k] = g[n - 1 - k] }
                for k in gap ..< 8 - tail { g[k] = 0 }
            } else {
                guard n == 8 else { return nil }
            }
            var hi: UInt64 = 0, lo: UInt64 = 0
            for k in 0 ..< 4 { hi = hi << 16 | UInt64(g[k]) }
            for k in 4 ..< 8 { lo = lo << 16 | UInt64(g[k]) }
            return IP128(hi: hi, lo: lo)
        }
    }
}

/// A compiled IP / CIDR list. `init` returns nil for an entry that is not an IP or CIDR (the Admin API
/// refuses those first, with Kong's message).
///
/// Layout (flat arrays read through one buffer pointer: no retain, no generic call per match):
/// `v4` = per prefix length present, longest first: [mask, count, net₁ … net_count] (nets masked, sorted);
/// `v6` = per prefix length: [bits, count, hi₁, lo₁ … hi_count, lo_count].
public struct IPMatcher: Sendable {
    private var v4: [UInt32] = []
    private var v6: [UInt64] = []

    public var isEmpty: Bool { v4.isEmpty && v6.isEmpty }

    public init?(_ entries: [String]) {
        var g4: [Int: Set<UInt32>] = [:]
        var g6: [Int: Set<IP128>] = [:]
        for e in entries {
            var addr = Substring(e)
            var bits: Int? = nil
            if let slash = e.firstIndex(of: "/") {
                addr = e[..<slash]
                guard let n = Int(e[e.index(after: slash)...]), n >= 0 else { return nil }   // as the Admin API's ip_or_cidr check
                bits = n
            }
            var text = String(addr)
            switch text.withUTF8({ IPAddress.parse($0) }) {
            case .v4(let a):
                let b = bits ?? 32
                guard b <= 32 else { return nil }
                g4[b, default: []].insert(a & IPMatcher.mask4(b))
            case .v6(let a):
                let b = bits ?? 128
                guard b <= 128 else { return nil }
                g6[b, default: []].insert(a.masked(b))
            case .none:
                return nil
            }
        }
        for b in g4.keys.sorted(by: >) {
            let nets = g4[b]!.sorted()
            v4.append(IPMatcher.mask4(b)); v4.append(UInt32(nets.count)); v4.append(contentsOf: nets)
        }
        for b in g6.keys.sorted(by: >) {
            let nets = g6[b]!.sorted()
            v6.append(UInt64(b)); v6.append(UInt64(nets.count))
            for n in nets { v6.append(n.hi); v6.append(n.lo) }
        }
    }

    @inline(__always) static func mask4(_ bits: Int) -> UInt32 { bits == 0 ? 0 : ~UInt32(0) << UInt32(32 - bits) }

    /// True when `address` is in one of the listed networks.
    public func matches(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let a): return v4.withUnsafeBufferPointer { IPMatcher.match4($0, a) }
        case .v6(let a): return v6.withUnsafeBufferPointer { IPMatcher.match6($0, a) }
        case .none: return false
        }
    }

    private static func match4(_ p: UnsafeBufferPointer<UInt32>, _ a: UInt32) -> Bool {
        var g = 0
        while g < p.count {
            let x = a & p[g], n = Int(p[g + 1])
            var lo = g + 2, hi = lo + n
            g = hi
            while lo < hi {   // lower bound of x
                let mid = (lo + hi) >> 1
                if p[mid] < x { lo = mid + 1 } else { hi = mid }
            }
            if lo < g && p[lo] == x { return true }
        }
        return false
    }

    private static func match6(_ p: UnsafeBufferPointer<UInt64>, _ a: IP128) -> Bool {
        var g = 0
        while g < p.count {
            let x = a.masked(Int(p[g])), n = Int(p[g + 1]), base = g + 2
            g = base + 2 * n
            var lo = 0, hi = n
            while lo < hi {
                let mid = (lo + hi) >> 1
                let h = p[base + 2 * mid], l = p[base + 2 * mid + 1]
                if h < x.hi || (h == x.hi && l < x.lo) { lo = mid + 1 } else { hi = mid }
            }
            if lo < n && p[base + 2 * lo] == x.hi && p[base + 2 * lo + 1] == x.lo { return true }
        }
        return false
    }
}
