// Builds the request head sent upstream and the response head sent to the client (KONG.md §3.4,
// §3.5): hop-by-hop headers dropped, X-Forwarded-*, X-Real-IP, Via, latency headers, Host per
// preserve_host. Bodies are never touched here (they are relayed raw with their framing).
import GWHTTP
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
    case 15: return h.nameEquals(at: i, "x-forwarded-for") || h.nameEquals(at: i, "x-forwarded-port")
    case 16: return h.nameEquals(at: i, "x-forwarded-host") || h.nameEquals(at: i, "x-forwarded-path")
        || h.nameEquals(at: i, "proxy-connection") || h.nameEquals(at: i, "x-kong-request-id")
    case 17: return h.nameEquals(at: i, "x-forwarded-proto")
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
private func connectionNamesHeaders(_ h: HTTPHeaders) -> Bool {
    var i = 0
    while let j = h.firstIndex(of: "connection", from: i) {
        // Comma-separated tokens, OWS trimmed, compared case-insensitively in place (no allocation).
        let v = h.valueBytes(at: j)
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
private func tokenIs(_ v: ArraySlice<UInt8>, _ a: Int, _ b: Int, _ lower: StaticString) -> Bool {
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

@inline(__always)
private func appendVia(_ h: HTTPHeaders, _ i: Int, into out: inout [UInt8], first: inout Bool) {
    let v = h.valueBytes(at: i)
    if v.isEmpty { return }
    if first { HTTPWriter.append("Via: ", into: &out); first = false } else { HTTPWriter.append(", ", into: &out) }
    out.append(contentsOf: v)
}

extension ClientConnection {
    /// `requestHead` = the upstream request line and headers for this try.
    func buildUpstreamRequest(head: HTTPRequestHead, decision d: RouteDecision, plan: ServicePlan, choice c: PeerChoice) {
        // Moved out and back so that the buffer stays uniquely referenced (a copy would make
        // removeAll(keepingCapacity:) allocate a new one on every request).
        var out: [UInt8] = []
        swap(&out, &requestHead)
        out.removeAll(keepingCapacity: true)
        if case .other = head.method { HTTPWriter.append(head.methodName, into: &out) } else { HTTPWriter.append(head.method.name, into: &out) }
        out.append(0x20)
        out.append(contentsOf: upstreamPath)
        HTTPWriter.append(" HTTP/1.1\r\nHost: ", into: &out)
        if d.preserveHost, let hi = head.hostIndex {
            out.append(contentsOf: head.headers.valueBytes(at: hi))
        } else {
            HTTPWriter.append(c.hostHeader, into: &out)
        }
        HTTPWriter.append("\r\n", into: &out)
        let upgrade = head.isUpgrade
        let h = head.headers
        var xff: [UInt8] = []          // all incoming X-Forwarded-For values, comma-joined (nginx $http_x_forwarded_for)
        let connectionListed = connectionNamesHeaders(h)
        var viaFirst = true
        var via: [UInt8] = []
        for i in 0..<h.count {
            if skipRequestHeader(h, i, upgrade: upgrade) {
                let n = h.fields[i].nameLength
                if n == 15 && h.nameEquals(at: i, "x-forwarded-for") {
                    let v = h.valueBytes(at: i)
                    if !v.isEmpty {
                        if !xff.isEmpty { HTTPWriter.append(", ", into: &xff) }
                        xff.append(contentsOf: v)
                    }
                }
                if n == 3 { appendVia(h, i, into: &via, first: &viaFirst) }
                continue
            }
            if connectionListed && namedByConnection(h, i) { continue }
            HTTPWriter.appendHeader(h, at: i, into: &out)
        }
        if server.settings.serverTokens {
            // Via: the incoming value(s), then ours (KONG.md §3.5)
            if viaFirst { HTTPWriter.append("Via: ", into: &out) } else { out.append(contentsOf: via); HTTPWriter.append(", ", into: &out) }
            HTTPWriter.append(head.versionMinor == 0 ? "1.0 kong/3.10.0\r\n" : "1.1 kong/3.10.0\r\n", into: &out)
        } else if !viaFirst {
            out.append(contentsOf: via)
            HTTPWriter.append("\r\n", into: &out)
        }
        // TE is hop-by-hop; Kong forwards only "trailers" when the client asked for it
        if h.hasToken("trailers", in: "te") { HTTPWriter.append("TE: trailers\r\n", into: &out) }
        HTTPWriter.append("X-Forwarded-For: ", into: &out)
        if !xff.isEmpty { out.append(contentsOf: xff); HTTPWriter.append(", ", into: &out) }
        peer.appendIP(to: &out)
        HTTPWriter.append("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ", into: &out)
        if let hi = head.hostIndex {
            let v = h.valueBytes(at: hi)
            // Host without port, lowercased (nginx $host).
            var end = v.endIndex
            if v.first != 0x5B, let colon = v.lastIndex(of: 0x3A) { end = colon }
            for b in v[v.startIndex..<end] { out.append((b &- 0x41) < 26 ? b | 0x20 : b) }
        }
        HTTPWriter.append("\r\nX-Forwarded-Port: ", into: &out)
        HTTPWriter.appendDecimal(listenPort, into: &out)
        HTTPWriter.append("\r\nX-Forwarded-Path: ", into: &out)
        if head.pathBytes.isEmpty { out.append(0x2F) } else { out.append(contentsOf: head.pathBytes) }
        if let p = d.strippedPrefix, p != "/" {
            HTTPWriter.append("\r\nX-Forwarded-Prefix: ", into: &out)
            HTTPWriter.append(p, into: &out)
        }
        HTTPWriter.append("\r\nX-Real-IP: ", into: &out)
        peer.appendIP(to: &out)
        HTTPWriter.append("\r\nX-Kong-Request-Id: ", into: &out)
        out.append(contentsOf: requestID)
        if upgrade {
            HTTPWriter.append("\r\nConnection: Upgrade\r\n\r\n", into: &out)
        } else {
            HTTPWriter.append("\r\nConnection: keep-alive\r\n\r\n", into: &out)
        }
        requestHead = out
    }
}

extension ProxyServer {
    /// The response head for the client: the upstream's status and headers minus hop-by-hop ones,
    /// plus Via / latency headers / request id and our own Connection header.
    func buildClientResponseHead(_ c: ClientConnection, _ rh: HTTPResponseHead, into out: inout [UInt8]) {
        let upgrade = rh.status == 101
        HTTPWriter.append("HTTP/1.1 ", into: &out)
        HTTPWriter.appendDecimal(rh.status, into: &out)
        out.append(0x20)
        if rh.reason.isEmpty { HTTPWriter.append(HTTPWriter.reasonPhrase(rh.status), into: &out) } else { out.append(contentsOf: rh.reason) }
        HTTPWriter.append("\r\n", into: &out)
        let h = rh.headers
        var hasServer = false
        var hasDate = false
        let connectionListed = connectionNamesHeaders(h)
        let clientWantsTrailers = c.parser?.head.headers.hasToken("trailers", in: "te") ?? false
        var viaFirst = true
        var via: [UInt8] = []
        for i in 0..<h.count {
            if skipResponseHeader(h, i, upgrade: upgrade) {
                if h.fields[i].nameLength == 3 { appendVia(h, i, into: &via, first: &viaFirst) }
                continue
            }
            if connectionListed && namedByConnection(h, i) { continue }
            if c.dechunk && h.fields[i].nameLength == 17 && h.nameEquals(at: i, "transfer-encoding") { continue }
            if !clientWantsTrailers && h.fields[i].nameLength == 7 && h.nameEquals(at: i, "trailer") { continue }
            if h.fields[i].nameLength == 6 && h.nameEquals(at: i, "server") { hasServer = true }
            if h.fields[i].nameLength == 4 && h.nameEquals(at: i, "date") { hasDate = true }
            HTTPWriter.appendHeader(h, at: i, into: &out)
        }
        if !hasDate {
            HTTPWriter.append("Date: ", into: &out)
            out.append(contentsOf: httpDate())
            HTTPWriter.append("\r\n", into: &out)
        }
        if settings.serverTokens {
            if !hasServer { HTTPWriter.append("Server: kong/3.10.0\r\n", into: &out) }
            // Via: the upstream's value(s), then ours
            if viaFirst { HTTPWriter.append("Via: ", into: &out) } else { out.append(contentsOf: via); HTTPWriter.append(", ", into: &out) }
            HTTPWriter.append("1.1 kong/3.10.0\r\n", into: &out)
        } else if !viaFirst {
            out.append(contentsOf: via)
            HTTPWriter.append("\r\n", into: &out)
        }
        if settings.latencyTokens {
            HTTPWriter.append("X-Kong-Upstream-Latency: ", into: &out)
            HTTPWriter.appendDecimal(Int((c.upstreamHeadUs &- c.upstreamStartUs) / 1000), into: &out)
            HTTPWriter.append("\r\nX-Kong-Proxy-Latency: ", into: &out)
            HTTPWriter.appendDecimal(Int((c.upstreamStartUs &- c.requestStartUs) / 1000), into: &out)
            HTTPWriter.append("\r\n", into: &out)
        }
        if let cookie = c.choice?.setCookie {
            // consistent-hashing on a cookie the client did not send (Kong sets it).
            HTTPWriter.append("Set-Cookie: ", into: &out)
            HTTPWriter.append(cookie, into: &out)
            HTTPWriter.append("\r\n", into: &out)
        }
        HTTPWriter.append("X-Kong-Request-Id: ", into: &out)
        out.append(contentsOf: c.requestID)
        if upgrade {
            HTTPWriter.append("\r\nConnection: Upgrade\r\n\r\n", into: &out)
        } else if c.closeAfterResponse || draining {
            HTTPWriter.append("\r\nConnection: close\r\n\r\n", into: &out)
        } else {
            HTTPWriter.append("\r\nConnection: keep-alive\r\n\r\n", into: &out)
        }
    }
}
