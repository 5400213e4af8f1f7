// The access-log line of one exchange, formatted from the values handed over (no ClientConnection
// fields are read here): nginx "combined" plus the upstream address and latencies; or, with
// `proxy_access_log_format = json`, the log serializer's entry (GWPlugins.LogSerializer, the logging
// plugins' code path: the same bytes a file-log instance writes for the exchange).
// Invariant: one line per exchange (ClientConnection.logExchange is called once per exchange end);
// nothing is formatted when the log is off. Appended to the worker's 32 KiB buffer, flushed every
// second and on exit. Worker-loop confined.
import GWHTTP
import GWPlugins
import GWSystem

/// When an exchange passed its milestones (monotonic µs; 0: not reached).
struct ExchangeTimes {
    /// Head received (or first byte answered).
    var requestStartUs: UInt64 = 0
    /// Routing and plugins done, first upstream try started.
    var upstreamStartUs: UInt64 = 0
    /// Upstream response head received.
    var upstreamHeadUs: UInt64 = 0

    /// X-Kong-Upstream-Latency / the log's upstream time, in ms.
    @inline(__always) var upstreamMillis: Int { Int((upstreamHeadUs &- upstreamStartUs) / 1000) }
    /// X-Kong-Proxy-Latency, in ms.
    @inline(__always) var proxyMillis: Int { Int((upstreamStartUs &- requestStartUs) / 1000) }
}

extension ProxyServer {
    /// `ip - - [time] "METHOD target HTTP/x.y" status bytes "referer" "user-agent" upstream latency_ms proxy_ms`
    /// `request`: the parser holding the head (nil: none); `requestLine`: the head belongs to this exchange.
    func accessLog(client: SocketAddress, request: HTTPRequestParser?, requestLine: Bool, status: Int,
                   bytesSent: Int, upstream: SocketAddress?, times t: ExchangeTimes) {
        guard let f = accessLogFile else { return }
        cachedTime.update()
        let now = Clock.monotonicMicros()
        f.append { out in
            client.appendIP(to: &out)
            HTTPWriter.append(" - - [", into: &out)
            out.append(contentsOf: cachedTime.accessLogTime)
            HTTPWriter.append("] \"", into: &out)
            if let p = request, requestLine {
                let h = p.head
                if case .other = h.method { HTTPWriter.append(h.methodName, into: &out) } else { HTTPWriter.append(h.method.name, into: &out) }
                out.append(0x20)
                out.append(contentsOf: h.target.prefix(2048))
                HTTPWriter.append(h.versionMinor == 0 ? " HTTP/1.0" : " HTTP/1.1", into: &out)
            }
            HTTPWriter.append("\" ", into: &out)
            HTTPWriter.appendDecimal(status, into: &out)
            out.append(0x20)
            HTTPWriter.appendDecimal(bytesSent, into: &out)
            HTTPWriter.append(" \"", into: &out)
            if let p = request, let i = p.head.headers.firstIndex(of: "referer") { out.append(contentsOf: p.head.headers.valueBytes(at: i).prefix(512)) } else { out.append(0x2D) }
            HTTPWriter.append("\" \"", into: &out)
            if let p = request, let i = p.head.headers.firstIndex(of: "user-agent") { out.append(contentsOf: p.head.headers.valueBytes(at: i).prefix(512)) } else { out.append(0x2D) }
            HTTPWriter.append("\" ", into: &out)
            if let a = upstream { HTTPWriter.append(a.description, into: &out) } else { out.append(0x2D) }
            out.append(0x20)
            if t.upstreamHeadUs > t.upstreamStartUs { HTTPWriter.appendDecimal(t.upstreamMillis, into: &out) } else { out.append(0x2D) }
            out.append(0x20)
            let proxyMs = t.upstreamStartUs > t.requestStartUs ? t.proxyMillis : Int((now - t.requestStartUs) / 1000)
            HTTPWriter.appendDecimal(proxyMs, into: &out)
            out.append(0x0A)
        }
    }
}

extension ClientConnection {
    /// The JSON access-log line: the entry the plugins' log phase serialized (`ctx`, the exchange's
    /// context), or, for an exchange that never began one (no configuration loaded yet), an entry
    /// serialized now.
    func jsonAccessLog(_ ctx: PluginContext?, status: Int) {
        guard let f = server.accessLogFile else { return }
        let c: PluginContext
        if let ctx { c = ctx } else {
            if let p = pluginContext { c = p; c.reset() } else {
                c = PluginContext(clientIP: peer.ip)
                c.logAlways = true
                pluginContext = c
            }
            serializeLogEntry(c, status: status)
        }
        f.append { out in
            out.append(contentsOf: c.logEntry)
            out.append(0x0A)
        }
    }
}
