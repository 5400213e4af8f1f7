// Builds the request head sent upstream and the response head sent to the client (KONG.md §3.4,
// §3.5): hop-by-hop headers dropped, X-Forwarded-*, X-Real-IP, Via, latency headers, Host per
// preserve_host; then the plugins' header edits (PluginContext.upstreamHeaders / responseHeaders:
// headers a set or remove entry names are left out, the set/add entries are written after ours) and
// query replacement. Bodies are never touched here; a body sent with our own Content-Length
// (ClientConnection+RequestBody) replaces the client's Content-Length / Transfer-Encoding.
import GWHTTP
import GWPlugins
import GWSystem

/// Hop-by-hop and proxy-owned request headers (lowercase) that are not copied upstream.
@inline(__always)
private func skipRequestHeader(_ h: HTTPHeaders, _ i: Int, upgrade: Bool) -> Bool {
    let f = h.fields[i]
    let n = Int(f.nameLength)
    // Fast length filter before the case-insensitive comparisons.
    switch n {
    case 2: return h.nameEquals(at: i, "te")
    case 3: return h.nameEquals(at: i, "via")
    case 4: return h.nameEquals(at: i, "host")
    case 5: return h.nameEquals(at: i, "proxy")
    case 6: return h.nameEquals(at: i, "expect")
    case 7: return h.nameEquals(at: i, "trailer") || (!upgrade && h.nameEquals(at: i, "upgrade"))
    case 9: return h.nameEquals(at: i, "x-real-ip")
    case 10: return h.nameEquals(at: i, "connection") || h.nameEquals(at: i, "keep-alive")
    case 15: return h.nameEquals(at: i, "x-forwarded-for")
    case 16: return h.nameEquals(at: i, "x-forwarded-host") || h.nameEquals(at: i, "x-forwarded-path")
        || h.nameEquals(at: i, "x-forwarded-port") || h.nameEquals(at: i, "proxy-connection")
    case 17: return h.nameEquals(at: i, "x-forwarded-proto") || h.nameEquals(at: i, "x-kong-request-id")
    case 18: return h.nameEquals(at: i, "x-forwarded-prefix")
    default: return false
    }
}

@inline(__always)
private func skipResponseHeader(_ h: HTTPHeaders, _ i: Int, upgrade: Bool) -> Bool {
    let n = Int(h.fields[i].nameLength)
    switch n {
    case 3: return h.nameEquals(at: i, "via")
    case 7: return !upgrade && h.nameEquals(at: i, "upgrade")
    case 10: return h.nameEquals(at: i, "connection") || h.nameEquals(at: i, "keep-alive")
    case 16: return h.nameEquals(at: i, "proxy-connection")
    default: return false
    }
}

/// Kong (`handler.lua` access.after / header_filter): when a Connection header carries more than
/// keep-alive/close/upgrade, every header it names is hop-by-hop and is cleared.
private func connectionNamesHeaders(_ head: UnsafePointer<HTTPMessageHead>) -> Bool {
    // (read through the head's address, as every reader here: the head passed by value was copied)
    let head = head.pointee
    // (no Connection header, or only `keep-alive` ones: the parser knows)
    guard let first = head.connectionIndex, !head.connectionIsKeepAliveOnly else { return false }
    var i = first
    while let j = head.headers.firstIndex(of: "connection", from: i) {
        // Comma-separated tokens, OWS trimmed, compared case-insensitively in place (no allocation).
        let v = head.headers.valueBytes(at: j)
        var p = v.startIndex
        while p < v.endIndex {
            var e = p
            while e < v.endIndex, v[e] != 0x2C { e += 1 }
            var a = p, b = e
            while a < b, v[a] == 0x20 || v[a] == 0x09 { a += 1 }
            while b > a, v[b - 1] == 0x20 || v[b - 1] == 0x09 { b -= 1 }
            if a < b && !tokenIs(v, a, b, "keep-alive") && !tokenIs(v, a, b, "close") && !tokenIs(v, a, b, "upgrade") {
                return true
            }
            p = e + 1
        }
        i = j + 1
    }
    return false
}

@inline(__always)
private func tokenIs(_ v: HeaderBytes, _ a: Int, _ b: Int, _ lower: StaticString) -> Bool {
    guard b - a == lower.utf8CodeUnitCount else { return false }
    let t = lower.utf8Start
    var k = 0
    while k < b - a {
        if (v[a + k] &- 0x41 < 26 ? v[a + k] | 0x20 : v[a + k]) != t[k] { return false }
        k += 1
    }
    return true
}

/// Header `i` is named by a Connection token (and is not one of keep-alive/close/upgrade handled elsewhere).
@inline(__always)
private func namedByConnection(_ h: HTTPHeaders, _ i: Int) -> Bool {
    if h.nameEquals(at: i, "upgrade") || h.nameEquals(at: i, "connection") { return false }
    return h.isListedInConnection(at: i)
}

extension ClientConnection {
    /// Appends the upstream request line and headers for this try to `out` (the upstream connection's
    /// output queue: written once, straight from the head scratch, when the connection is ready).
    /// (The parser is passed rather than its head: passing `parser.head` to a non-inlined function
    /// copies the head, four buffer retains and releases.)
    func buildUpstreamRequest(request rp: HTTPRequestParser, decision d: RouteDecision, into out: inout FlatArray<UInt8>) {
        let serverTokens = server.settings.serverTokens
        server.headScratch.write(appendingTo: &out) { w in
            writeUpstreamRequest(&w, rp, d, serverTokens)
        }
    }

    @inline(__always)
    private func writeUpstreamRequest(_ w: inout HeadWriter, _ rp: HTTPRequestParser, _ d: RouteDecision,
                                      _ serverTokens: Bool) {
        // The head is always read as `rp.head` (borrowed in place); binding it, or capturing it in a
        // closure, would copy it.
        let connectionListed = connectionNamesHeaders(rp.headPointer)
        rp.headPointer.pointee.headers.storage.withUnsafeBufferPointer { st in
            rp.headPointer.pointee.target.withUnsafeBufferPointer { target in
                writeUpstreamRequest(&w, rp, st, target, d, connectionListed, serverTokens)
            }
        }
    }

    @inline(__always)
    private func writeUpstreamRequest(_ w: inout HeadWriter, _ rp: HTTPRequestParser,
                                      _ st: UnsafeBufferPointer<UInt8>, _ target: UnsafeBufferPointer<UInt8>,
                                      _ d: RouteDecision, _ connectionListed: Bool, _ serverTokens: Bool) {
        let edits = requestEdits
        if let m = edits?.upstreamMethod { w.put(m) }   // request-transformer http_method
        else if let r = rp.headPointer.pointee.methodToken { w.put(st.baseAddress! + r.lowerBound, r.count) }   // e.g. QUERY
        else if case .other = rp.headPointer.pointee.method { w.put(rp.headPointer.pointee.methodName) } else { w.put(rp.headPointer.pointee.method.name) }
        w.put(0x20)
        if let e = edits, e.replacesPath || e.replacesQuery { putPath(&w, e, rp.upstreamTarget) } else { w.put(rp.upstreamTarget) }
        // Copied out once: reading the context's property per header would copy (retain) its buffers each time.
        let headerEdits = edits.flatMap { $0.upstreamHeaders.isEmpty ? nil : $0.upstreamHeaders }
        let authenticated = edits?.authenticated ?? false
        // Our own Content-Length replaces the client's framing headers (ClientConnection+RequestBody).
        let ownLength = ownBodyLength
        w.put(" HTTP/1.1\r\nHost: ")
        if let e = headerEdits, e.hiddenNames & HeaderEdits.hostBit != 0, let host = e.value(of: "host") {
            w.put(host)   // a plugin set the upstream Host (request-transformer replace.headers host:…)
        } else if d.preserveHost, let hi = rp.headPointer.pointee.hostIndex {
            let f = rp.headPointer.pointee.headers.fields[hi]
            w.put(st.baseAddress! + Int(f.valueStart), Int(f.valueLength))
        } else {
            w.put(attempt.choice!.hostHeader)
        }
        w.put("\r\n")
        if let n = ownLength {
            w.put("Content-Length: ")
            w.putDecimal(n)
            w.put("\r\n")
        }
        let upgrade = rp.headPointer.pointee.isUpgrade
        var sawVia = false, sawXFF = false, sawTE = false
        for i in 0..<rp.headPointer.pointee.headers.count {
            let f = rp.headPointer.pointee.headers.fields[i]
            if skipRequestHeader(rp.headPointer.pointee.headers, i, upgrade: upgrade) {
                // X-Forwarded-For and Via values are merged into our own headers below.
                if f.nameLength == 15 && rp.headPointer.pointee.headers.nameEquals(at: i, "x-forwarded-for") { sawXFF = true }
                if f.nameLength == 3 { sawVia = true }
                if f.nameLength == 2 { sawTE = true }
                continue
            }
            if connectionListed && namedByConnection(rp.headPointer.pointee.headers, i) { continue }
            if ownLength != nil && ((f.nameLength == 14 && rp.headPointer.pointee.headers.nameEquals(at: i, "content-length"))
                || (f.nameLength == 17 && rp.headPointer.pointee.headers.nameEquals(at: i, "transfer-encoding"))) { continue }
            if let e = headerEdits, e.drops(rp.headPointer.pointee.headers, i) { continue }
            // The client's own X-Consumer-* / X-Credential-Identifier / X-Anonymous-Consumer never pass
            // once a consumer is authenticated (ours are written below).
            if authenticated && PluginContext.isAuthHeader(UnsafeBufferPointer(rebasing: st[Int(f.nameStart) ..< Int(f.nameStart + f.nameLength)])) { continue }
            w.putHeader(st, f)
        }
        // Via: the incoming value(s), then ours (KONG.md §3.5). Same block in writeClientResponseHead: kept
        // inline in both, since one function taking the borrowed HTTPHeaders measured 2 more retains and
        // ~80 more instructions per request (tools/bench/callgrind.py: 31,632 → 31,715).
        var viaFirst = true
        if sawVia {
            for i in 0..<rp.headPointer.pointee.headers.count where rp.headPointer.pointee.headers.fields[i].nameLength == 3 && rp.headPointer.pointee.headers.nameEquals(at: i, "via") {
                let f = rp.headPointer.pointee.headers.fields[i]
                if f.valueLength == 0 { continue }
                w.put(viaFirst ? "Via: " : ", ")
                viaFirst = false
                w.put(st.baseAddress! + Int(f.valueStart), Int(f.valueLength))
            }
        }
        if serverTokens {
            w.put(viaFirst ? "Via: " : ", ")
            w.put(rp.headPointer.pointee.versionMinor == 0 ? "1.0 kong/3.10.0\r\n" : "1.1 kong/3.10.0\r\n")
        } else if !viaFirst {
            w.put("\r\n")
        }
        // TE is hop-by-hop; Kong forwards only "trailers" when the client asked for it
        // (looked up only when a TE line was seen: hasToken's String arguments cost 4 ARC operations)
        if sawTE && rp.headPointer.pointee.headers.hasToken("trailers", in: "te") { w.put("TE: trailers\r\n") }
        if peerTrusted {
            writeTrustedForwarded(&w, rp, st, target, d)   // MessageBuilder+Forwarded.swift
        } else {
            writeForwarded(&w, rp, st, target, d, sawXFF)
        }
        w.put("\r\nX-Kong-Request-Id: ")
        requestID.withBytes { w.put($0) }
        if authenticated, let ctx = edits {
            w.put("\r\n")
            // One call writing every value in place (PluginContext.writeAuthHeaders).
            ctx.writeAuthHeaders(to: &w, unless: headerEdits)
            if let e = headerEdits { putEdits(&w, e, request: true) }
            w.put(upgrade ? "Connection: Upgrade\r\n\r\n" : "Connection: keep-alive\r\n\r\n")
            return
        }
        if let e = headerEdits {
            w.put("\r\n")
            putEdits(&w, e, request: true)
            w.put(upgrade ? "Connection: Upgrade\r\n\r\n" : "Connection: keep-alive\r\n\r\n")
            return
        }
        w.put(upgrade ? "\r\nConnection: Upgrade\r\n\r\n" : "\r\nConnection: keep-alive\r\n\r\n")
    }

    /// X-Forwarded-* and X-Real-IP for a peer not in trusted_ips: the gateway's values (the client's lines
    /// were skipped), X-Forwarded-For = the client's values then the peer. From `X-Forwarded-For: ` to the
    /// X-Real-IP value, no CRLF after it.
    @inline(__always)
    private func writeForwarded(_ w: inout HeadWriter, _ rp: HTTPRequestParser, _ st: UnsafeBufferPointer<UInt8>,
                                _ target: UnsafeBufferPointer<UInt8>, _ d: RouteDecision, _ sawXFF: Bool) {
        // all incoming X-Forwarded-For values, comma-joined (nginx $http_x_forwarded_for), then the client
        w.put("X-Forwarded-For: ")
        if sawXFF {
            var any = false
            for i in 0..<rp.headPointer.pointee.headers.count where rp.headPointer.pointee.headers.fields[i].nameLength == 15 && rp.headPointer.pointee.headers.nameEquals(at: i, "x-forwarded-for") {
                let f = rp.headPointer.pointee.headers.fields[i]
                if f.valueLength == 0 { continue }
                if any { w.put(", ") }
                any = true
                w.put(st.baseAddress! + Int(f.valueStart), Int(f.valueLength))
            }
            if any { w.put(", ") }
        }
        let peer = self.peer
        let ipStart = w.count
        w.putRaw(maxBytes: SocketAddress.maxIPLength) { peer.writeIP(to: $0) }
        let ipLength = w.count - ipStart   // (copied again for X-Real-IP: formatting it costs ~100 instructions)
        w.put(tls == nil ? "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " : "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: ")
        if let hi = rp.headPointer.pointee.hostIndex {
            // Host without port, lowercased (nginx $host).
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
        w.putDecimal(listenPort)
        w.put("\r\nX-Forwarded-Path: ")
        if rp.headPointer.pointee.pathStart == rp.headPointer.pointee.queryStart {
            w.put(0x2F)
        } else {
            w.put(target.baseAddress! + rp.headPointer.pointee.pathStart, rp.headPointer.pointee.queryStart - rp.headPointer.pointee.pathStart)
        }
        if let p = d.strippedPrefix, p != "/" {
            w.put("\r\nX-Forwarded-Prefix: ")
            w.put(p)
        }
        w.put("\r\nX-Real-IP: ")
        if !w.overflow { w.putAgain(from: ipStart, count: ipLength) }
    }

    /// The upstream path and query with the plugins' replacements: the context's `upstreamPath` (the whole
    /// path) when `replacesPath`, `upstreamQuery` (empty: none) when `replacesQuery`, else the routed ones
    /// (`upstreamPath` here: the routed path[?query]).
    private func putPath(_ w: inout HeadWriter, _ e: PluginContext, _ upstreamPath: FlatArray<UInt8>) {
        let q = upstreamPath.firstIndex(of: 0x3F) ?? upstreamPath.count
        if e.replacesPath { w.put(e.upstreamPath) } else {
            upstreamPath.withUnsafeBytes { w.put(UnsafeRawBufferPointer(rebasing: $0[0 ..< q])) }
        }
        if e.replacesQuery {
            if !e.upstreamQuery.isEmpty {
                w.put(0x3F)
                w.put(e.upstreamQuery)
            }
        } else if q < upstreamPath.count {
            upstreamPath.withUnsafeBytes { w.put(UnsafeRawBufferPointer(rebasing: $0[q...])) }
        }
    }
}

extension ProxyServer {
    /// The response head for the client: the upstream's status and headers minus hop-by-hop ones,
    /// plus Via / latency headers / request id and our own Connection header.
    /// (The response parser is passed rather than its head, which would be copied.)
    func buildClientResponseHead(_ c: ClientConnection, _ response: HTTPResponseParser, into out: inout FlatArray<UInt8>) {
        // The context is read once for both outputs; the edits are copied out once (see writeUpstreamRequest).
        let ctx = c.plugins
        let edits = ctx.flatMap { $0.responseHeaders.isEmpty ? nil : $0.responseHeaders }
        let rateLimit = ctx.flatMap { $0.rateLimit.isEmpty ? nil : $0.rateLimit }
        let connectionListed = connectionNamesHeaders(response.headPointer)
        headScratch.write(appendingTo: &out) { w in
            // `response.head` is read in place throughout (binding or capturing it would copy it).
            response.headPointer.pointee.headers.storage.withUnsafeBufferPointer { st in
                writeClientResponseHead(&w, c, response, st, connectionListed, edits, rateLimit)
            }
        }
    }

    @inline(__always)
    private func writeClientResponseHead(_ w: inout HeadWriter, _ c: ClientConnection, _ response: HTTPResponseParser,
                                         _ st: UnsafeBufferPointer<UInt8>, _ connectionListed: Bool,
                                         _ edits: HeaderEdits?,
                                         _ rateLimit: RateLimitHeaders?) {
        let upgrade = response.headPointer.pointee.status == 101
        w.put("HTTP/1.1 ")
        w.putDecimal(response.headPointer.pointee.status)
        w.put(0x20)
        if response.headPointer.pointee.reason.isEmpty { w.put(HTTPWriter.reasonPhrase(response.headPointer.pointee.status)) } else { w.put(response.headPointer.pointee.reason) }
        w.put("\r\n")
        var hasServer = false
        var hasDate = false
        var sawVia = false
        for i in 0..<response.headPointer.pointee.headers.count {
            let f = response.headPointer.pointee.headers.fields[i]
            if skipResponseHeader(response.headPointer.pointee.headers, i, upgrade: upgrade) {
                if f.nameLength == 3 { sawVia = true }
                continue
            }
            if connectionListed && namedByConnection(response.headPointer.pointee.headers, i) { continue }
            if let e = edits, e.drops(response.headPointer.pointee.headers, i) { continue }
            if let r = rateLimit, f.nameLength > 0, RateLimitHeaders.mayWrite(st[Int(f.nameStart)], Int(f.nameLength)),
               r.writes(UnsafeBufferPointer(rebasing: st[Int(f.nameStart) ..< Int(f.nameStart + f.nameLength)])) { continue }
            switch f.nameLength {
            case 17: if (c.respBody == .dechunked || c.ownResponseLength != nil) && response.headPointer.pointee.headers.nameEquals(at: i, "transfer-encoding") { continue }
            case 14: if c.ownResponseLength != nil && response.headPointer.pointee.headers.nameEquals(at: i, "content-length") { continue }
            case 7:
                // (the client's TE is looked at only when the upstream sent a Trailer header)
                if response.headPointer.pointee.headers.nameEquals(at: i, "trailer"),
                   !(c.parser?.head.headers.hasToken("trailers", in: "te") ?? false) { continue }
            case 6: if response.headPointer.pointee.headers.nameEquals(at: i, "server") { hasServer = true }
            case 4: if response.headPointer.pointee.headers.nameEquals(at: i, "date") { hasDate = true }
            default: break
            }
            w.putHeader(st, f)
        }
        if let n = c.ownResponseLength {
            w.put("Content-Length: ")
            w.putDecimal(n)
            w.put("\r\n")
        }
        if !hasDate {
            w.put("Date: ")
            w.put(httpDate())
            w.put("\r\n")
        }
        if settings.serverTokens && !hasServer { w.put("Server: kong/3.10.0\r\n") }
        // Via: the upstream's value(s), then ours (the twin of writeUpstreamRequest's block)
        var viaFirst = true
        if sawVia {
            for i in 0..<response.headPointer.pointee.headers.count where response.headPointer.pointee.headers.fields[i].nameLength == 3 && response.headPointer.pointee.headers.nameEquals(at: i, "via") {
                let f = response.headPointer.pointee.headers.fields[i]
                if f.valueLength == 0 { continue }
                w.put(viaFirst ? "Via: " : ", ")
                viaFirst = false
                w.put(st.baseAddress! + Int(f.valueStart), Int(f.valueLength))
            }
        }
        if settings.serverTokens {
            w.put(viaFirst ? "Via: " : ", ")
            w.put("1.1 kong/3.10.0\r\n")
        } else if !viaFirst {
            w.put("\r\n")
        }
        if settings.latencyTokens {
            w.put("X-Kong-Upstream-Latency: ")
            w.putDecimal(c.times.upstreamMillis)
            w.put("\r\nX-Kong-Proxy-Latency: ")
            w.putDecimal(c.times.proxyMillis)
            w.put("\r\n")
        }
        if let cookie = c.attempt.choice?.setCookie {
            // consistent-hashing on a cookie the client did not send (Kong sets it).
            w.put("Set-Cookie: ")
            w.put(cookie)
            w.put("\r\n")
        }
        if let e = edits { putEdits(&w, e, request: false) }
        if let r = rateLimit { r.write(to: &w) }
        w.put("X-Kong-Request-Id: ")
        c.requestID.withBytes { w.put($0) }
        if upgrade {
            w.put("\r\nConnection: Upgrade\r\n\r\n")
        } else if !c.persistence.isKeepAlive || draining {
            w.put("\r\nConnection: close\r\n\r\n")
        } else {
            w.put("\r\nConnection: keep-alive\r\n\r\n")
        }
    }
}

/// Writes the set/add entries of `e` (`Name: value\r\n` each); a Host entry is left out (the request writer
/// puts it in the Host line it always writes first), and towards the upstream the headers the gateway
/// writes itself (`isForwardingHeader`: one line, the gateway's, as in Kong).
private func putEdits(_ w: inout HeadWriter, _ e: HeaderEdits, request: Bool) {
    e.list.storage.withUnsafeBufferPointer { st in
        for k in 0 ..< e.count where e.ops[k].writes {
            if e.list.fields[k].nameLength == 4 && e.list.nameEquals(at: k, "host") { continue }
            if request && isForwardingHeader(e.list, k) { continue }
            w.putHeader(st, e.list.fields[k])
        }
    }
}
