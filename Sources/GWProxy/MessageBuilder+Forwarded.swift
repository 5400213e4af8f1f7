// X-Forwarded-* and X-Real-IP towards the upstream for a peer in `trusted_ips` (Kong's handler.lua
// access.before; nginx's realip module for `real_ip_header` / `real_ip_recursive`). An untrusted peer
// takes MessageBuilder's inline path: the client's X-Forwarded-Proto/Host/Port/Path/Prefix and X-Real-IP
// are replaced by the gateway's, its X-Forwarded-For values are kept with the peer address appended.
// A trusted peer: the client's value of each X-Forwarded-* header wins (first line, Kong's get_header),
// the gateway's when absent; X-Real-IP (and X-Forwarded-For when the client sent none) is the address
// realip finds in `real_ip_header`; X-Forwarded-For appends the connection's own address.
// Invariant: no allocation; the realip address is a stack SocketAddress written with writeIP.
import GWHTTP
import GWPlugins
import GWSystem

extension ClientConnection {
    /// $remote_addr after realip: the address `real_ip_header` names (trusted peers only), else the peer.
    func realRemoteAddress(_ rp: HTTPRequestParser) -> SocketAddress {
        let s = server.settings
        let isXFF = s.realIPHeader.count == 15 && s.realIPHeader.elementsEqual("x-forwarded-for".utf8)
        return s.realIPHeader.withUnsafeBufferPointer { name -> SocketAddress in
            rp.headPointer.pointee.headers.storage.withUnsafeBufferPointer { st -> SocketAddress in
                var found: SocketAddress? = nil
                if isXFF {
                    // Every X-Forwarded-For line, last first: an earlier line is read only while the recursive
                    // search still stands on a trusted address.
                    var i = rp.headPointer.pointee.headers.count - 1
                    while i >= 0 {
                        if rp.headPointer.pointee.headers.nameEquals(at: i, name) {
                            let f = rp.headPointer.pointee.headers.fields[i]
                            let v = UnsafeBufferPointer(rebasing: st[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)])
                            guard let a = s.trustedIPs.forwardedAddress(v, recursive: s.realIPRecursive) else { break }
                            found = a
                            if !s.realIPRecursive || !s.trustedIPs.contains(a) { break }
                        }
                        i -= 1
                    }
                } else if let i = rp.headPointer.pointee.headers.firstIndex(of: name) {
                    let f = rp.headPointer.pointee.headers.fields[i]
                    let v = UnsafeBufferPointer(rebasing: st[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)])
                    found = s.trustedIPs.forwardedAddress(v, recursive: s.realIPRecursive)
                }
                return found ?? peer
            }
        }
    }

    /// Plugins see the realip address as the client's (rate-limiting's `ip` identifier): written on the stack,
    /// an IPv4 text is a small String (no allocation).
    func pluginsClientIP(_ ctx: PluginContext, _ rp: HTTPRequestParser) {
        let a = realRemoteAddress(rp)
        let ip = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: SocketAddress.maxIPLength) { buf in
            String(decoding: UnsafeBufferPointer(start: buf.baseAddress!, count: a.writeIP(to: buf.baseAddress!)), as: UTF8.self)
        }
        ctx.setClientIP(ip)
    }

    /// The client's X-Forwarded-Proto is `https` (trusted peer): an https-only route is served (Kong's
    /// `forwarded_proto ~= "https"` check).
    func forwardedHTTPS(_ rp: HTTPRequestParser) -> Bool {
        guard peerTrusted, let i = rp.headPointer.pointee.headers.firstIndex(of: "x-forwarded-proto") else { return false }
        return rp.headPointer.pointee.headers.valueBytes(at: i).elementsEqual("https".utf8)
    }

    /// From `X-Forwarded-For: ` to the X-Real-IP value (no CRLF after it), for a trusted peer.
    func writeTrustedForwarded(_ w: inout HeadWriter, _ rp: HTTPRequestParser, _ st: UnsafeBufferPointer<UInt8>,
                               _ target: UnsafeBufferPointer<UInt8>, _ d: RouteDecision) {
        let remote = realRemoteAddress(rp)
        let peer = self.peer
        func putValue(_ i: Int) {
            let f = rp.headPointer.pointee.headers.fields[i]
            w.put(st.baseAddress! + Int(f.valueStart), Int(f.valueLength))
        }
        w.put("X-Forwarded-For: ")
        var any = false
        for i in 0..<rp.headPointer.pointee.headers.count where rp.headPointer.pointee.headers.nameEquals(at: i, "x-forwarded-for") {
            if rp.headPointer.pointee.headers.fields[i].valueLength == 0 { continue }
            if any { w.put(", ") }
            any = true
            putValue(i)
        }
        if any {
            w.put(", ")
            w.putRaw(maxBytes: SocketAddress.maxIPLength) { peer.writeIP(to: $0) }   // $realip_remote_addr
        } else {
            w.putRaw(maxBytes: SocketAddress.maxIPLength) { remote.writeIP(to: $0) }   // $remote_addr
        }
        w.put("\r\nX-Forwarded-Proto: ")
        if let i = rp.headPointer.pointee.headers.firstIndex(of: "x-forwarded-proto") { putValue(i) } else { w.put(tls == nil ? "http" : "https") }
        w.put("\r\nX-Forwarded-Host: ")
        if let i = rp.headPointer.pointee.headers.firstIndex(of: "x-forwarded-host") {
            putValue(i)
        } else if let hi = rp.headPointer.pointee.hostIndex {
            let f = rp.headPointer.pointee.headers.fields[hi]
            let v = UnsafeBufferPointer(rebasing: st[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)])
            var end = v.count
            if v.first != 0x5B, let colon = v.lastIndex(of: 0x3A) { end = colon }
            w.putRaw(maxBytes: end) { p in
                for k in 0 ..< end { p[k] = (v[k] &- 0x41) < 26 ? v[k] | 0x20 : v[k] }
                return end
            }
        }
        w.put("\r\nX-Forwarded-Port: ")
        if let i = rp.headPointer.pointee.headers.firstIndex(of: "x-forwarded-port") { putValue(i) } else { w.putDecimal(listenPort) }
        w.put("\r\nX-Forwarded-Path: ")
        if let i = rp.headPointer.pointee.headers.firstIndex(of: "x-forwarded-path") {
            putValue(i)
        } else if rp.headPointer.pointee.pathStart == rp.headPointer.pointee.queryStart {
            w.put(0x2F)
        } else {
            w.put(target.baseAddress! + rp.headPointer.pointee.pathStart, rp.headPointer.pointee.queryStart - rp.headPointer.pointee.pathStart)
        }
        if let i = rp.headPointer.pointee.headers.firstIndex(of: "x-forwarded-prefix") {
            w.put("\r\nX-Forwarded-Prefix: ")
            putValue(i)
        } else if let p = d.strippedPrefix, p != "/" {
            w.put("\r\nX-Forwarded-Prefix: ")
            w.put(p)
        }
        w.put("\r\nX-Real-IP: ")
        w.putRaw(maxBytes: SocketAddress.maxIPLength) { remote.writeIP(to: $0) }
    }
}

/// The request headers the gateway writes itself (nginx `proxy_set_header` in Kong's template): a plugin's
/// set/add of one of them is not written (Kong's value wins, one line; request-transformer's documented
/// limit), nor is the client's line.
@inline(__always)
func isForwardingHeader(_ h: HTTPHeaders, _ k: Int) -> Bool {
    switch Int(h.fields[k].nameLength) {
    case 9: return h.nameEquals(at: k, "x-real-ip")
    case 15: return h.nameEquals(at: k, "x-forwarded-for")
    case 16: return h.nameEquals(at: k, "x-forwarded-host") || h.nameEquals(at: k, "x-forwarded-path")
        || h.nameEquals(at: k, "x-forwarded-port")
    case 17: return h.nameEquals(at: k, "x-forwarded-proto")
    case 18: return h.nameEquals(at: k, "x-forwarded-prefix")
    default: return false
    }
}
