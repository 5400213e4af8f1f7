// Match-time fast path on bytes: the same algorithm as `Router.match` (same indexes, same candidate order,
// same checks), but the request's method, host and normalized path are read as bytes, so a match
// creates no String, copies no Route and builds no RouteMatch. It answers with the winning entry's
// rank; the caller keeps per-rank data (see GWProxy's route cache) and only regex entries (captures,
// matched text) go through `makeMatch(rank:...)`.
// Callers must pass ASCII path and host bytes (anything else: use `match`, whose String semantics
// differ from bytes only outside ASCII).
import GWStore
import GWHTTP

/// What the proxy needs of one router entry, fixed for the configuration.
public struct RouterEntryInfo {
    /// Index into `ConfigSnapshot.routes`.
    public var routeIndex: Int
    /// Index into `ConfigSnapshot.services` (nil: the route has no service).
    public var serviceIndex: Int?
    /// The matching path is a regex (captures and matched text vary per request).
    public var isRegex: Bool
    /// The prefix path that matched (nil: matched without paths).
    public var prefix: String?
    /// The route and its service (nil: none).
    public var route: Route
    public var service: Service?
}

extension Router {
    struct ByteRequest {
        var method: UnsafeRawBufferPointer
        var host: UnsafeRawBufferPointer?      // lowercased, without port
        var port: Int
        var path: UnsafeRawBufferPointer
        var tls: ConnectionTLS = .plain
    }

    public func entryInfo(rank: Int) -> RouterEntryInfo {
        let ref = entries[rank]
        let e = ref.entry
        var prefix: String? = nil
        if case .prefix(let p) = e.path { prefix = p }
        return RouterEntryInfo(routeIndex: Int(ref.routeIndex), serviceIndex: ref.serviceIndex >= 0 ? Int(ref.serviceIndex) : nil,
                               isRegex: e.pathKind == 2, prefix: prefix, route: e.owner!.route,
                               service: ref.serviceIndex >= 0 ? services[Int(ref.serviceIndex)] : nil)
    }

    /// `match(head:normalizedPath:listenPort:)` for a regex entry already chosen by `matchRank`.
    public func makeMatch(rank: Int, head: HTTPRequestHead, normalizedPath: String, listenPort: Int) -> RouteMatch {
        makeMatch(entries[rank], Request(method: head.methodName, host: nil, port: listenPort, path: normalizedPath,
                                         headers: nil))
    }

    /// The rank of the entry `match(head:normalizedPath:listenPort:)` would choose, or nil. `path` is the
    /// normalized path; `path` and the Host header must be ASCII.
    public func matchRank(head: borrowing HTTPRequestHead, path: UnsafeRawBufferPointer, listenPort: Int,
                          tls: ConnectionTLS = .plain) -> Int? {
        withUnsafePointer(to: head) { matchRank(headAt: $0, path: path, listenPort: listenPort, tls: tls) }
    }

    /// `matchRank(head:path:listenPort:tls:)` on a head read in place: the proxy's head lives in its
    /// parser, and a head passed by value through the caller's closures was copied (its four buffers
    /// retained and released per request). Only the fields used are read through the pointer.
    public func matchRank(headAt head: UnsafePointer<HTTPRequestHead>, path: UnsafeRawBufferPointer, listenPort: Int,
                          tls: ConnectionTLS = .plain) -> Int? {
        if case .other = head.pointee.method {
            var m = head.pointee.methodName
            return m.withUTF8 { matchRank(method: UnsafeRawBufferPointer($0), head: head, path: path, listenPort: listenPort, tls: tls) }
        }
        let s = head.pointee.method.name
        return matchRank(method: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount), head: head,
                         path: path, listenPort: listenPort, tls: tls)
    }

    func matchRank(method: UnsafeRawBufferPointer, head: UnsafePointer<HTTPRequestHead>, path: UnsafeRawBufferPointer,
                   listenPort: Int, tls: ConnectionTLS) -> Int? {
        // (no host route: the Host header is not parsed; the port it may carry matters only to host patterns)
        guard matchesHosts, let hi = head.pointee.hostIndex else {
            return matchRank(ByteRequest(method: method, host: nil, port: listenPort, path: path, tls: tls), head: head)
        }
        let f = head.pointee.headers.fields[hi]
        return head.pointee.headers.storage.withUnsafeBytes { st in
            let raw = UnsafeRawBufferPointer(rebasing: st[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)])
            // Kong's split_host_port on the (lowercased) Host value, as `splitHostPort`.
            var hostEnd = raw.count
            var port = listenPort
            var colon = -1
            var i = raw.count
            while i > 0 {
                let b = raw[i - 1]
                if b == 0x3A { colon = i - 1; break }
                if b < 0x30 || b > 0x39 { break }
                i -= 1
            }
            if colon >= 0 {
                var bareV6 = false
                if colon > 0, raw[0] != 0x5B {
                    var k = 0
                    while k < colon { if raw[k] == 0x3A { bareV6 = true; break }; k += 1 }
                }
                if !bareV6 {
                    hostEnd = colon
                    if colon + 1 < raw.count {
                        var p = 0
                        var k = colon + 1
                        while k < raw.count { p = p * 10 + Int(raw[k] &- 0x30); if p > 65535 { break }; k += 1 }
                        port = p
                    }
                }
            }
            var hasUpper = false
            for b in raw where b &- 0x41 < 26 { hasUpper = true; break }
            if !hasUpper {
                return matchRank(ByteRequest(method: method, host: UnsafeRawBufferPointer(rebasing: raw[0 ..< hostEnd]),
                                             port: port, path: path, tls: tls), head: head)
            }
            return withUnsafeTemporaryAllocation(byteCount: max(hostEnd, 1), alignment: 1) { lower in
                for k in 0 ..< hostEnd { lower[k] = asciiLowerByte(raw[k]) }
                return matchRank(ByteRequest(method: method, host: UnsafeRawBufferPointer(rebasing: lower[0 ..< hostEnd]),
                                             port: port, path: path, tls: tls), head: head)
            }
        }
    }

    func matchRank(_ req: ByteRequest, head: UnsafePointer<HTTPRequestHead>) -> Int? {
        var best = Int32.max
        if !exactHosts.isEmpty, let h = req.host {
            // The index is keyed by Substring: only configurations with host routes pay for the String.
            if let idx = exactHosts[Substring(String(decoding: h, as: UTF8.self))] { scanBytes(idx, &best, req, head) }
        }
        if !wildcardHosts.isEmpty { scanBytes(wildcardHosts, &best, req, head) }
        scanBytes(anyHost, &best, req, head)
        return best == Int32.max ? nil : Int(best)
    }

    @inline(__always)
    func scanListBytes(_ ranks: [Int32], _ best: inout Int32, _ req: ByteRequest, _ head: UnsafePointer<HTTPRequestHead>) {
        for r in ranks {
            if r >= best { return }
            if Router.entryMatches(entries[Int(r)].entry, req, head) { best = r; return }
        }
    }

    /// Node `n`'s ranks of `idx`, as `scanListBytes`.
    @inline(__always)
    func scanNodeBytes(_ idx: PathIndex, _ n: Int, _ best: inout Int32, _ req: ByteRequest,
                       _ head: UnsafePointer<HTTPRequestHead>) {
        var i = Int(idx.rankStart[n])
        let end = Int(idx.rankStart[n + 1])
        while i < end {
            let r = idx.ranks[i]
            if r >= best { return }
            if Router.entryMatches(entries[Int(r)].entry, req, head) { best = r; return }
            i += 1
        }
    }

    func scanBytes(_ idx: PathIndex, _ best: inout Int32, _ req: ByteRequest, _ head: UnsafePointer<HTTPRequestHead>) {
        var n = 0
        scanNodeBytes(idx, 0, &best, req, head)
        for b in req.path {
            guard let c = idx.child(n, b) else { break }
            n = c
            scanNodeBytes(idx, n, &best, req, head)
        }
        if !idx.regexRanks.isEmpty { scanListBytes(idx.regexRanks, &best, req, head) }
        if !idx.pathlessRanks.isEmpty { scanListBytes(idx.pathlessRanks, &best, req, head) }
    }

    /// `Entry.matches` on bytes.
    static func entryMatches(_ e: Entry, _ req: ByteRequest, _ head: UnsafePointer<HTTPRequestHead>) -> Bool {
        if !e.methods.isEmpty {
            var ok = false
            for m in e.methods where m.utf8.elementsEqual(req.method) { ok = true; break }
            if !ok { return false }
        }
        if !e.hosts.isEmpty {
            guard let h = req.host else { return false }
            var ok = false
            for p in e.hosts where p.matches(hostBytes: h, port: req.port) { ok = true; break }
            if !ok { return false }
        }
        switch e.pathKind {
        case 1:
            let ok = e.prefixBytes.withUnsafeBytes { pre in
                pre.count <= req.path.count && (pre.count == 0 || memcmp(pre.baseAddress!, req.path.baseAddress!, pre.count) == 0)
            }
            if !ok { return false }
        case 2:
            if let re = e.regex, (try? re.prefixMatch(in: String(decoding: req.path, as: UTF8.self))) == nil {
                return false
            }
        default: break
        }
        if !e.headers.isEmpty {
            for hm in e.headers where !Router.headerMatches(hm, head.pointee.headers) { return false }
        }
        if !e.snis.isEmpty && !SNIPattern.allow(e.snis, req.tls) { return false }
        return true
    }
}

extension HostPattern {
    func matches(hostBytes h: UnsafeRawBufferPointer, port reqPort: Int) -> Bool {
        if let p = port, p != reqPort { return false }
        let t = text.utf8
        switch kind {
        case .exact: return h.elementsEqual(t)
        case .suffix: return h.count > t.count && h[(h.count - t.count)...].elementsEqual(t)
        case .prefix: return h.count > t.count && h.starts(with: t)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension KongPath {
    /// Whether `normalize` would return `raw` unchanged (no `%`, no `//`, no `/.`), and every byte is ASCII:
    /// then the raw path bytes are the normalized path.
    public static func isNormalizedASCII(_ raw: UnsafeRawBufferPointer) -> Bool {
        var prev: UInt8 = 0
        for b in raw {
            if b >= 0x80 || b == 0x25 || (prev == 0x2F && (b == 0x2F || b == 0x2E)) { return false }
            prev = b
        }
        return true
    }

    /// `escape(upstreamPath(requestPath:matchedPrefix:stripPath:servicePath:))` + `?query`, appended to `out`,
    /// on bytes. `req` must be ASCII (as for `Router.matchRank`); `prefix` and `base` are the route's matched
    /// prefix ("/" when strip_path does not apply) and the service path ("/" when nil).
    public static func appendUpstreamURI(requestPath req: UnsafeRawBufferPointer, matchedPrefix pre: UnsafeRawBufferPointer,
                                         stripPath strip: Bool, servicePath base: UnsafeRawBufferPointer,
                                         query: UnsafeRawBufferPointer?, into out: inout FlatArray<UInt8>) {
        // Written in place, after one reservation of the longest result (every byte escaped, a '/' added,
        // the query): a per-byte append with its uniqueness and capacity checks cost ~40 instructions per
        // byte of the path (callgrind.py).
        let most = 3 &* (base.count &+ req.count) &+ 2 &+ (query?.count ?? 0)
        out.append(upTo: most) { dst in
            var o = 0
            @inline(__always) func put(_ p: UnsafeRawBufferPointer) {
                for b in p {
                    if isEscapeSafe(b) { dst[o] = b; o &+= 1 } else {
                        dst[o] = 0x25; dst[o &+ 1] = hexDigit(b >> 4); dst[o &+ 2] = hexDigit(b & 0xF); o &+= 3
                    }
                }
            }
            @inline(__always) func put(_ b: UInt8) { dst[o] = b; o &+= 1 }
            writeUpstreamPath(req, pre, strip, base, put, put)
            if let q = query {
                dst[o] = 0x3F
                if q.count > 0 { memcpy(dst + o + 1, q.baseAddress!, q.count) }   // as sent (escaped by the client)
                o &+= 1 &+ q.count
            }
            return o
        }
    }

    @inline(__always)
    private static func writeUpstreamPath(_ req: UnsafeRawBufferPointer, _ pre: UnsafeRawBufferPointer, _ strip: Bool,
                                          _ base: UnsafeRawBufferPointer,
                                          _ put: (UnsafeRawBufferPointer) -> Void, _ putByte: (UInt8) -> Void) {
        @inline(__always) func slice(_ p: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: p[from ..< to])
        }
        var post = slice(req, 0, 0)
        if strip {
            var s = 0
            if pre.count <= req.count && (pre.count == 0 || memcmp(pre.baseAddress!, req.baseAddress!, pre.count) == 0) {
                s = pre.count
            }
            let n = req.count - s
            if n >= 2 && req[s] == 0x2E && req[s + 1] == 0x2F { s += 2 }
            else if n >= 3 && req[s] == 0x2E && req[s + 1] == 0x2E && req[s + 2] == 0x2F { s += 3 }
            post = slice(req, s, req.count)
        }
        let baseSlash = base.last == 0x2F
        let reqSlash = req.last == 0x2F
        if baseSlash {
            if !strip {
                put(base); put(slice(req, min(1, req.count), req.count))
            } else if post.isEmpty {
                if base.count == 1 { putByte(0x2F) }
                else if reqSlash { put(base) } else { put(slice(base, 0, base.count - 1)) }
            } else if post.first == 0x2F {
                put(slice(base, 0, base.count - 1)); put(post)
            } else {
                put(base); put(post)
            }
        } else {
            if !strip {
                if req.count == 1 && req[0] == 0x2F { put(base) } else { put(base); put(req) }
            } else if post.isEmpty {
                put(base)
                if req.count > 1 && reqSlash { putByte(0x2F) }
            } else if post.first == 0x2F {
                put(base); put(post)
            } else {
                put(base); putByte(0x2F); put(post)
            }
        }
    }

    @inline(__always) static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 &+ v : 0x37 &+ v }
}
