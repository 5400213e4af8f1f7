// Small helpers: UUIDs (v4 from getrandom, v5 via SHA-1), clock, base64, percent-decoding.
import Glibc

enum UUID4 {
    static func randomBytes(_ n: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: n)
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        var filled = 0
        if fd >= 0 {
            while filled < n {
                let r = b.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, n - filled) }
                if r > 0 { filled += r } else if r < 0 && errno == EINTR { continue } else { break }
            }
            close(fd)
        }
        precondition(filled == n, "cannot read /dev/urandom")
        return b
    }

    static func format(_ b: [UInt8]) -> String {
        let hex: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(36)
        for (i, x) in b.prefix(16).enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { s.append("-") }
            s.append(hex[Int(x >> 4)]); s.append(hex[Int(x & 15)])
        }
        return s
    }

    static func generate() -> String {
        var b = randomBytes(16)
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        return format(b)
    }

    /// Name-based UUID (v5) in a fixed namespace: deterministic ids for declarative entities.
    static func v5(_ name: String) -> String {
        let ns: [UInt8] = [0xfd, 0x02, 0x80, 0x1f, 0x0e, 0x17, 0x4e, 0x4d, 0x9a, 0x6f, 0x7d, 0x52, 0x3c, 0x21, 0x7a, 0x41]
        var h = SHA1.hash(ns + Array(name.utf8))
        h[6] = (h[6] & 0x0F) | 0x50
        h[8] = (h[8] & 0x3F) | 0x80
        return format(Array(h.prefix(16)))
    }

    static func isValid(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 36 else { return false }
        for (i, c) in u.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return false }
            } else if !((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)) {
                return false
            }
        }
        return true
    }
}

enum SHA1 {
    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h0: UInt32 = 0x67452301, h1: UInt32 = 0xEFCDAB89, h2: UInt32 = 0x98BADCFE, h3: UInt32 = 0x10325476
        var h4: UInt32 = 0xC3D2E1F0
        var m = message
        let ml = UInt64(message.count) * 8
        m.append(0x80)
        while m.count % 64 != 56 { m.append(0) }
        for i in (0..<8).reversed() { m.append(UInt8((ml >> (UInt64(i) * 8)) & 0xFF)) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: m.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(m[j]) << 24 | UInt32(m[j + 1]) << 16 | UInt32(m[j + 2]) << 8 | UInt32(m[j + 3])
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = (x << 1) | (x >> 31)
            }
            var a = h0, b = h1, c = h2, d = h3, e = h4
            for i in 0..<80 {
                let f: UInt32, k: UInt32
                switch i {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A827999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC
                default: f = b ^ c ^ d; k = 0xCA62C1D6
                }
                let t = ((a << 5) | (a >> 27)) &+ f &+ e &+ k &+ w[i]
                e = d; d = c; c = (b << 30) | (b >> 2); b = a; a = t
            }
            h0 = h0 &+ a; h1 = h1 &+ b; h2 = h2 &+ c; h3 = h3 &+ d; h4 = h4 &+ e
        }
        var out: [UInt8] = []
        for h in [h0, h1, h2, h3, h4] {
            out += [UInt8(h >> 24), UInt8((h >> 16) & 0xFF), UInt8((h >> 8) & 0xFF), UInt8(h & 0xFF)]
        }
        return out
    }
}

enum Clock {
    static func nowSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    static func monotonicMs() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }
    /// Integer seconds (services, routes, ...).
    static func seconds() -> Int64 { Int64(nowSeconds()) }
    /// Seconds with millisecond fraction (targets).
    static func millisSeconds() -> Double { (nowSeconds() * 1000).rounded(.down) / 1000 }
}

enum Base64 {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ s: String) -> String {
        let b = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            let n = min(3, b.count - i)
            let v = (UInt32(b[i]) << 16) | (n > 1 ? UInt32(b[i + 1]) << 8 : 0) | (n > 2 ? UInt32(b[i + 2]) : 0)
            out.append(alphabet[Int((v >> 18) & 63)])
            out.append(alphabet[Int((v >> 12) & 63)])
            out.append(n > 1 ? alphabet[Int((v >> 6) & 63)] : UInt8(ascii: "="))
            out.append(n > 2 ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ s: String) -> String? {
        var vals: [UInt8] = []
        var pad = 0
        for c in s.utf8 {
            if c == UInt8(ascii: "=") { pad += 1; continue }
            if pad > 0 { return nil }
            guard let i = alphabet.firstIndex(of: c) else { return nil }
            vals.append(UInt8(i))
        }
        guard (vals.count + pad) % 4 == 0, pad <= 2 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i + 1 < vals.count {
            let n = min(4, vals.count - i)
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 6 | (k < n ? UInt32(vals[i + k]) : 0) }
            out.append(UInt8(v >> 16))
            if n > 2 { out.append(UInt8((v >> 8) & 0xFF)) }
            if n > 3 { out.append(UInt8(v & 0xFF)) }
            i += 4
        }
        return String(validating: out, as: UTF8.self)
    }
}

enum URLCoding {
    /// Percent-decodes; `plusAsSpace` for form bodies and query strings.
    static func decode(_ s: Substring, plusAsSpace: Bool = true) -> String {
        var out: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            let c = u[i]
            if c == UInt8(ascii: "%"), i + 2 < u.count, let h = hex(u[i + 1]), let l = hex(u[i + 2]) {
                out.append(h << 4 | l); i += 3; continue
            }
            out.append(plusAsSpace && c == UInt8(ascii: "+") ? 0x20 : c)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.utf8 {
            if unreserved.contains(c) { out.append(Character(UnicodeScalar(c))) } else {
                out += "%" + String(c >> 4, radix: 16, uppercase: true) + String(c & 15, radix: 16, uppercase: true)
            }
        }
        return out
    }
    /// `a=1&b=2` → ordered pairs (percent-decoded).
    static func parsePairs(_ s: Substring) -> [(String, String)] {
        var out: [(String, String)] = []
        for part in s.split(separator: "&", omittingEmptySubsequences: true) {
            if let eq = part.firstIndex(of: "=") {
                out.append((decode(part[..<eq]), decode(part[part.index(after: eq)...])))
            } else {
                out.append((decode(part), ""))
            }
        }
        return out
    }
}
