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
    case 4: return h.nameEquals(at: i, "host")
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
    case 7: return !upgrade && h.nameEquals(at: i, "upgrade")
    case 10: return h.nameEquals(at: i, "connection") || h.nameEquals(at: i, "keep-alive")
    case 16: return h.nameEquals(at: i, "proxy-connection")
    default: return false
    }
}

extension ClientConnection {
    /// `requestHead` = the upstream request line and headers for this try.
    func buildUpstreamRequest(head: HTTPRequestHead, decision d: RouteDecision, plan: ServicePlan, choice c: PeerChoice) {
        var out = requestHead
        out.removeAll(keepingCapacity: true)
        if case .other = head.method { HTTPWriter.append(methodName(head), into: &out) } else { HTTPWriter.append(head.method.name, into: &out) }
        out.append(0x20)
        out.append(contentsOf: d.upstreamPath)
        HTTPWriter.append(" HTTP/1.1\r\nHost: ", into: &out)
        if d.route.preserveHost, let hi = head.hostIndex {
            out.append(contentsOf: head.headers.valueBytes(at: hi))
        } else {
            HTTPWriter.append(c.hostHeader, into: &out)
        }
        HTTPWriter.append("\r\n", into: &out)
        let upgrade = head.isUpgrade
        let h = head.headers
        var xff: ArraySlice<UInt8>? = nil
        for i in 0..<h.count {
            if skipRequestHeader(h, i, upgrade: upgrade) {
                if h.fields[i].nameLength == 15 && h.nameEquals(at: i, "x-forwarded-for") { xff = h.valueBytes(at: i) }
                continue
            }
            HTTPWriter.appendHeader(h, at: i, into: &out)
        }
        HTTPWriter.append("X-Forwarded-For: ", into: &out)
        if let x = xff, !x.isEmpty { out.append(contentsOf: x); HTTPWriter.append(", ", into: &out) }
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
        out.append(contentsOf: head.pathBytes)
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
        for i in 0..<h.count {
            if skipResponseHeader(h, i, upgrade: upgrade) { continue }
            if h.fields[i].nameLength == 6 && h.nameEquals(at: i, "server") { hasServer = true }
            HTTPWriter.appendHeader(h, at: i, into: &out)
        }
        if settings.serverTokens {
            if !hasServer { HTTPWriter.append("Server: kong/3.10.0\r\n", into: &out) }
            HTTPWriter.append("Via: 1.1 kong/3.10.0\r\n", into: &out)
        }
        if settings.latencyTokens {
            HTTPWriter.append("X-Kong-Upstream-Latency: ", into: &out)
            HTTPWriter.appendDecimal(Int((c.upstreamHeadUs &- c.upstreamStartUs) / 1000), into: &out)
            HTTPWriter.append("\r\nX-Kong-Proxy-Latency: ", into: &out)
            HTTPWriter.appendDecimal(Int((c.upstreamStartUs &- c.requestStartUs) / 1000), into: &out)
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
