import Glibc

/// An IPv4 or IPv6 address plus port, stored inline (no heap). IPv4 uses the first 4 bytes.
/// Ordering (family, bytes, port) is the sort order every worker uses to build identical rings.
public struct PeerAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var family: UInt8            // 4 or 6
    public var hi: UInt64               // address bytes 0..7 as a big-endian number
    public var lo: UInt64               // address bytes 8..15 as a big-endian number
    public var port: UInt16

    public init(family: UInt8, hi: UInt64, lo: UInt64, port: UInt16) {
        self.family = family; self.hi = hi; self.lo = lo; self.port = port
    }

    /// Parses an IPv4 or IPv6 literal (brackets allowed for IPv6). Returns nil for anything else.
    public init?(ip: String, port: Int) {
        guard port >= 0, port <= 65535 else { return nil }
        var text = ip
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var buf: (UInt64, UInt64) = (0, 0)
        let fam: UInt8
        if withUnsafeMutableBytes(of: &buf, { inet_pton(AF_INET, text, $0.baseAddress) }) == 1 {
            fam = 4
        } else if withUnsafeMutableBytes(of: &buf, { inet_pton(AF_INET6, text, $0.baseAddress) }) == 1 {
            fam = 6
        } else {
            return nil
        }
        self.family = fam
        self.hi = UInt64(bigEndian: buf.0)
        self.lo = UInt64(bigEndian: buf.1)
        self.port = UInt16(port)
    }

    /// The 16 raw bytes in network order (as stored in memory).
    public var rawBytes: (UInt64, UInt64) { (hi.bigEndian, lo.bigEndian) }

    /// The IP literal ("10.0.0.1", "::1"), without brackets or port.
    public var ipString: String {
        var raw = rawBytes
        var out = [CChar](repeating: 0, count: 64)
        let ok = withUnsafeBytes(of: &raw) { src in
            out.withUnsafeMutableBufferPointer { dst in
                inet_ntop(family == 6 ? AF_INET6 : AF_INET, src.baseAddress, dst.baseAddress, 64) != nil
            }
        }
        guard ok else { return "?" }
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// "ip:port" ("[v6]:port" for IPv6), as Kong prints addresses.
    public var description: String {
        family == 6 ? "[\(ipString)]:\(port)" : "\(ipString):\(port)"
    }

    public static func < (a: PeerAddress, b: PeerAddress) -> Bool {
        if a.family != b.family { return a.family < b.family }
        if a.hi != b.hi { return a.hi < b.hi }
        if a.lo != b.lo { return a.lo < b.lo }
        return a.port < b.port
    }
}
