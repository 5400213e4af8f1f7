// Kong path helpers: `kong/tools/uri.lua` normalize/escape and `kong/router/utils.lua get_upstream_uri_v0`.

public enum KongPath {
    /// Reserved characters that stay percent-encoded during normalization (kong/tools/uri.lua).
    static func isReserved(_ b: UInt8) -> Bool {
        switch b {
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2F, 0x3A, 0x3B, 0x3D, 0x3F, 0x40,
             0x5B, 0x5D: return true
        default: return false
        }
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    static func upperHex(_ b: UInt8) -> UInt8 { (b >= 0x61 && b <= 0x66) ? b - 0x20 : b }

    /// `normalize(path, true)`: `%XX` of non-reserved characters decoded (reserved ones upper-cased), `//`
    /// merged, dot segments removed (RFC 3986 §5.2.4). The input is the path without the query.
    public static func normalize<C: Collection>(_ raw: C) -> String where C.Element == UInt8 {
        // Fast path: no "%", no "//" and no "/." (a possible dot segment): nothing to change.
        // (Every path contains "/", so the scan looks at byte pairs rather than at "/" alone.)
        var needsWork = false
        var prev: UInt8 = 0
        for b in raw {
            if b == 0x25 || (prev == 0x2F && (b == 0x2F || b == 0x2E)) { needsWork = true; break }
            prev = b
        }
        if !needsWork { return String(decoding: raw, as: UTF8.self) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.count)
        // 1. percent-decoding
        var it = Array(raw)
        var i = 0
        while i < it.count {
            let b = it[i]
            if b == 0x25, i + 2 < it.count, let h = hexValue(it[i + 1]), let l = hexValue(it[i + 2]) {
                let v = h << 4 | l
                if isReserved(v) {
                    bytes.append(0x25); bytes.append(upperHex(it[i + 1])); bytes.append(upperHex(it[i + 2]))
                } else {
                    bytes.append(v)
                }
                i += 3
                continue
            }
            bytes.append(b)
            i += 1
        }
        if bytes.isEmpty || (bytes.count == 1 && bytes[0] == 0x2F) { return String(decoding: bytes, as: UTF8.self) }
        // 2. merge slashes
        it.removeAll(keepingCapacity: true)
        for b in bytes {
            if b == 0x2F, it.last == 0x2F { continue }
            it.append(b)
        }
        // 3. remove dot segments
        return String(decoding: removeDotSegments(it), as: UTF8.self)
    }

    static func removeDotSegments(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = 0
        let n = input.count
        func starts(_ s: [UInt8]) -> Bool {
            guard n - i >= s.count else { return false }
            for k in 0..<s.count where input[i + k] != s[k] { return false }
            return true
        }
        func popSegment() {
            while let last = out.popLast(), last != 0x2F {}
        }
        let dotdotslash: [UInt8] = [0x2E, 0x2E, 0x2F], dotslash: [UInt8] = [0x2E, 0x2F]
        let slashdotslash: [UInt8] = [0x2F, 0x2E, 0x2F], slashdot: [UInt8] = [0x2F, 0x2E]
        let slashdotdotslash: [UInt8] = [0x2F, 0x2E, 0x2E, 0x2F], slashdotdot: [UInt8] = [0x2F, 0x2E, 0x2E]
        while i < n {
            if starts(dotdotslash) { i += 3; continue }
            if starts(dotslash) { i += 2; continue }
            if starts(slashdotslash) { i += 2; continue }
            if starts(slashdot) && n - i == 2 { out.append(0x2F); i = n; continue }
            if starts(slashdotdotslash) { i += 3; popSegment(); continue }
            if starts(slashdotdot) && n - i == 3 { popSegment(); out.append(0x2F); i = n; continue }
            if (n - i == 1 && input[i] == 0x2E) || (n - i == 2 && input[i] == 0x2E && input[i + 1] == 0x2E) { break }
            // move the first segment (with its leading "/") to the output
            if input[i] == 0x2F { out.append(0x2F); i += 1 }
            while i < n, input[i] != 0x2F { out.append(input[i]); i += 1 }
        }
        return out
    }

    /// `kong/tools/uri.lua escape`: percent-encode bytes outside `!#$&'()*+,/:;=?@[]A-Za-z0-9-_.~%`.
    public static func escape(_ s: String) -> String {
        var needs = false
        for b in s.utf8 where !isEscapeSafe(b) { needs = true; break }
        if !needs { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 8)
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        for b in s.utf8 {
            if isEscapeSafe(b) { out.append(b) } else {
                out.append(0x25); out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isEscapeSafe(_ b: UInt8) -> Bool {
        switch b {
        case 0x41...0x5A, 0x61...0x7A, 0x30...0x39: return true
        case 0x21, 0x23, 0x24, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2F, 0x3A, 0x3B, 0x3D, 0x3F, 0x40, 0x5B,
             0x5D, 0x2D, 0x5F, 0x2E, 0x7E, 0x25: return true
        default: return false
        }
    }

    /// Exact port of `get_upstream_uri_v0` (KONG.md §3.3). `prefix` is the matched path text when strip_path
    /// applies (route matched by path), else "/". `base` is service.path (nil → "/"). Returns the path only.
    public static func upstreamPath(requestPath req: String, matchedPrefix prefix: String?, stripPath strip: Bool,
                                    servicePath: String?) -> String {
        let base = servicePath ?? "/"
        var post = ""
        if strip {
            let pre = prefix ?? "/"
            var rest = req.utf8.starts(with: pre.utf8) ? Substring(req.utf8.dropFirst(pre.utf8.count)) : Substring(req)
            if rest.hasPrefix("./") { rest = rest.dropFirst(2) } else if rest.hasPrefix("../") { rest = rest.dropFirst(3) }
            post = String(rest)
        }
        if base.hasSuffix("/") {
            if !strip { return base + req.dropFirst() }
            if post.isEmpty {
                if base == "/" { return "/" }
                return req.hasSuffix("/") ? base : String(base.dropLast())
            }
            return post.hasPrefix("/") ? String(base.dropLast()) + post : base + post
        } else {
            if !strip { return req == "/" ? base : base + req }
            if post.isEmpty { return (req.utf8.count > 1 && req.hasSuffix("/")) ? base + "/" : base }
            return post.hasPrefix("/") ? base + post : base + "/" + post
        }
    }
}
