// Kong's `trusted_ips` (nginx `set_real_ip_from`) and the address search of nginx's realip module
// (`real_ip_header`, `real_ip_recursive`; ngx_http_get_forwarded_addr_internal).
// Invariants: addresses are compared as 128-bit values, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so an
// IPv4 block also matches a v4-mapped peer, as nginx's ngx_cidr_match does; nothing here allocates once
// parsed (a header value is read in place, the address found is a SocketAddress on the stack).
import Glibc
import GWSystem

public struct TrustedIPs: Sendable {
    struct Block: Sendable { var hi, lo, maskHi, maskLo: UInt64 }
    var blocks: [Block] = []
    /// `unix:`: every UNIX-domain peer is trusted (the proxy listens on TCP only: never matches today).
    public private(set) var trustsUnix = false

    public init() {}

    /// Comma-separated IPs and CIDR blocks, `unix:`; empty = trust none. Throws the bad item.
    public init(parsing s: String) throws(ConfigError) {
        for raw in s.split(separator: ",") {
            let item = String(raw).trimmingWhitespace()
            if item.isEmpty { continue }
            if item == "unix:" { trustsUnix = true; continue }
            guard let b = TrustedIPs.block(item) else {
                throw ConfigError("trusted_ips must be a comma separated list in the form of IPv4 or IPv6 address "
                                  + "or CIDR block or 'unix:', got '\(item)'")
            }
            blocks.append(b)
        }
    }

    public var isEmpty: Bool { blocks.isEmpty }

    static func block(_ item: String) -> Block? {
        var addr = item, bits: Int? = nil
        if let slash = item.firstIndex(of: "/") {
            addr = String(item[..<slash])
            guard let n = Int(item[item.index(after: slash)...]) else { return nil }
            bits = n
        }
        guard let (hi, lo, v4) = TrustedIPs.parse(addr) else { return nil }
        let width = v4 ? 32 : 128
        let n = bits ?? width
        guard n >= 0 && n <= width else { return nil }
        let total = v4 ? 96 + n : n
        let maskHi: UInt64 = total >= 64 ? ~0 : (total == 0 ? 0 : ~0 << (64 - total))
        let maskLo: UInt64 = total <= 64 ? 0 : (total == 128 ? ~0 : ~0 << (128 - total))
        return Block(hi: hi & maskHi, lo: lo & maskLo, maskHi: maskHi, maskLo: maskLo)
    }

    /// An IP literal (no brackets, no port) as 128 bits; IPv4 mapped.
    static func parse(_ s: String) -> (UInt64, UInt64, Bool)? {
        var s = s
        return s.withUTF8 { (u: UnsafeBufferPointer<UInt8>) in TrustedIPs.parse(text: u) }
    }

    static func parse(text: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64, Bool)? {
        guard text.count > 0 && text.count < 46 else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buf -> (UInt64, UInt64, Bool)? in
            for k in 0 ..< text.count { buf[k] = CChar(bitPattern: text[k]) }
            buf[text.count] = 0
            var a = (UInt64(0), UInt64(0))
            let v4 = memchr(buf.baseAddress!, 0x3A, text.count) == nil
            let ok = withUnsafeMutableBytes(of: &a) { raw -> Bool in
                if v4 {
                    guard inet_pton(AF_INET, buf.baseAddress!, raw.baseAddress! + 12) == 1 else { return false }
                    raw[10] = 0xFF; raw[11] = 0xFF
                    return true
                }
                return inet_pton(AF_INET6, buf.baseAddress!, raw.baseAddress!) == 1
            }
            guard ok else { return nil }
            return (UInt64(bigEndian: a.0), UInt64(bigEndian: a.1), v4)
        }
    }

    @inline(__always) func contains(_ hi: UInt64, _ lo: UInt64) -> Bool {
        for b in blocks where hi & b.maskHi == b.hi && lo & b.maskLo == b.lo { return true }
        return false
    }

    /// The peer is in a trusted block.
    public func contains(_ a: SocketAddress) -> Bool {
        guard !blocks.isEmpty, let (hi, lo) = TrustedIPs.bits(a) else { return false }
        return contains(hi, lo)
    }

    static func bits(_ a: SocketAddress) -> (UInt64, UInt64)? {
        withUnsafeBytes(of: a.storage) { raw -> (UInt64, UInt64)? in
            if a.family == AF_INET {
                let v4 = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                return (0, 0xFFFF_0000_0000 | UInt64(v4))
            }
            if a.family == AF_INET6 {
                return (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                        UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
            }
            return nil
        }
    }

    /// nginx's realip address search over one header value: the last comma/space-separated element (an
    /// address, optionally with a port); with `recursive`, while that address is itself trusted, the one
    /// before it (the leftmost when all are trusted). nil: no parsable address (the peer stays the client).
    public func forwardedAddress(_ value: UnsafeBufferPointer<UInt8>, recursive: Bool) -> SocketAddress? {
        var end = value.count
        var found: SocketAddress? = nil
        while end > 0 {
            while end > 0 && (value[end - 1] == 0x20 || value[end - 1] == 0x2C) { end -= 1 }
            var start = end
            while start > 0 && value[start - 1] != 0x20 && value[start - 1] != 0x2C { start -= 1 }
            if start == end { break }
            guard let a = TrustedIPs.address(UnsafeBufferPointer(rebasing: value[start ..< end])) else { break }
            found = a
            guard recursive, let (hi, lo) = TrustedIPs.bits(a), contains(hi, lo) else { break }
            end = start
        }
        return found
    }

    /// `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port` (ngx_parse_addr_port) as a SocketAddress (port 0).
    static func address(_ t: UnsafeBufferPointer<UInt8>) -> SocketAddress? {
        var s = 0, e = t.count
        if t.first == 0x5B {
            guard let close = t.firstIndex(of: 0x5D) else { return nil }
            s = 1; e = close
            if close + 1 < t.count && t[close + 1] != 0x3A { return nil }
        } else {
            var colons = 0, last = -1
            for k in 0 ..< t.count where t[k] == 0x3A { colons += 1; last = k }
            if colons == 1 { e = last }   // a.b.c.d:port
        }
        guard e > s, let (hi, lo, v4) = parse(text: UnsafeBufferPointer(rebasing: t[s ..< e])) else { return nil }
        var st = sockaddr_storage()
        let len: socklen_t = withUnsafeMutableBytes(of: &st) { raw in
            if v4 {
                raw.storeBytes(of: sa_family_t(AF_INET), toByteOffset: 0, as: sa_family_t.self)
                raw.storeBytes(of: UInt32(truncatingIfNeeded: lo).bigEndian, toByteOffset: 4, as: UInt32.self)
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            }
            raw.storeBytes(of: sa_family_t(AF_INET6), toByteOffset: 0, as: sa_family_t.self)
            raw.storeBytes(of: hi.bigEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: lo.bigEndian, toByteOffset: 16, as: UInt64.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        return SocketAddress(storage: st, length: len)
    }
}
