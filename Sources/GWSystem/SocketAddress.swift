#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address. Stored in a sockaddr_in6 (28 bytes: room for either family) rather
/// than a sockaddr_storage (128): every client connection and every peer choice holds one, so this is
/// 200 bytes less per idle keep-alive connection (issue #18). `storage` converts for the socket calls.
public struct SocketAddress: Sendable, Equatable, CustomStringConvertible {
    @usableFromInline var raw: sockaddr_in6
    public var length: socklen_t

    /// The address as a sockaddr_storage (for bind/connect/accept); setting it keeps the first 28 bytes,
    /// enough for AF_INET and AF_INET6, the only families this type holds.
    public var storage: sockaddr_storage {
        get {
            var st = sockaddr_storage()
            withUnsafeMutableBytes(of: &st) { dst in withUnsafeBytes(of: raw) { dst.copyMemory(from: $0) } }
            return st
        }
        set {
            raw = withUnsafeBytes(of: newValue) { $0.load(as: sockaddr_in6.self) }
        }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.description == b.description }

    /// Parses a numeric IP literal (IPv4 or IPv6 without brackets) and a port.
    public init?(ip: String, port: Int) {
        guard (0...65535).contains(port) else { return nil }
        raw = sockaddr_in6()
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, ip, &v4) == 1 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(port).bigEndian)
            sin.sin_addr = v4
            withUnsafeMutableBytes(of: &raw) { dst in
                withUnsafeBytes(of: &sin) { dst.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if inet_pton(AF_INET6, ip, &v6) == 1 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = in_port_t(UInt16(port).bigEndian)
            sin6.sin6_addr = v6
            raw = sin6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            return nil
        }
    }

    public init(storage: sockaddr_storage, length: socklen_t) {
        raw = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
        self.length = length
    }

    public var family: Int32 { Int32(raw.sin6_family) }

    // sin_port and sin6_port share offset 2 (after the 16-bit family).
    public var port: Int { Int(UInt16(bigEndian: raw.sin6_port)) }

    /// The numeric IP without brackets.
    public var ip: String {
        var s = raw
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafeMutableBytes(of: &s) { raw in
            if family == AF_INET6 {
                let p = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                _ = inet_ntop(AF_INET6, &p.pointee.sin6_addr, &buf, socklen_t(buf.count))
            } else {
                let p = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                _ = inet_ntop(AF_INET, &p.pointee.sin_addr, &buf, socklen_t(buf.count))
            }
        }
        return String(nulTerminated: buf)
    }

    public var description: String { family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    /// Writes the numeric IP into `out` without allocating a String (for X-Forwarded-For and logs).
    public func appendIP(to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: SocketAddress.maxIPLength) { buf in
            out.append(contentsOf: UnsafeBufferPointer(start: buf.baseAddress!, count: writeIP(to: buf.baseAddress!)))
        }
    }

    /// Longest text `writeIP` produces (INET6_ADDRSTRLEN, terminating NUL included).
    public static let maxIPLength = 46

    /// Writes the numeric IP at `p` (room for `maxIPLength` bytes); returns its length.
    public func writeIP(to p: UnsafeMutablePointer<UInt8>) -> Int {
        if family == AF_INET {
            // Dotted quad by hand: inet_ntop formats with sprintf (~2,000 instructions per call).
            let a = withUnsafeBytes(of: raw) { $0.load(fromByteOffset: 4, as: (UInt8, UInt8, UInt8, UInt8).self) }   // sin_addr
            var n = 0
            for k in 0 ..< 4 {
                if k > 0 { p[n] = 0x2E; n += 1 }
                let v = k == 0 ? a.0 : k == 1 ? a.1 : k == 2 ? a.2 : a.3
                if v >= 100 { p[n] = 0x30 &+ v / 100; n += 1 }
                if v >= 10 { p[n] = 0x30 &+ (v / 10) % 10; n += 1 }
                p[n] = 0x30 &+ v % 10; n += 1
            }
            return n
        }
        var s = raw
        return withUnsafeMutableBytes(of: &s) { raw in
            let buf = UnsafeMutableRawPointer(p).assumingMemoryBound(to: CChar.self)
            buf[0] = 0
            if family == AF_INET6 {
                let sp = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                _ = inet_ntop(AF_INET6, &sp.pointee.sin6_addr, buf, socklen_t(SocketAddress.maxIPLength))
            } else {
                let sp = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                _ = inet_ntop(AF_INET, &sp.pointee.sin_addr, buf, socklen_t(SocketAddress.maxIPLength))
            }
            return strlen(buf)
        }
    }
}
