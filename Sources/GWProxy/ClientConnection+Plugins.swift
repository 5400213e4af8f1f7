// Kong's plugin phases on the proxy path (KONG-PLUGINS.md §1), run through GWPlugins.PluginRuntime:
//   beginPlugins    an exchange starts: the connection's PluginContext is reset (only when the
//                   configuration has plugins; otherwise `plugins` stays nil and nothing below runs)
//   runAccess       after routing, the 426 https check and nginx's 413 (both before access in Kong);
//                   an exit is answered here (sendExit), a route without service gets its 503 after it
//   header_filter   before the client response head is written: proxied (ProxyExchange.responseHead,
//                   startTunnel, with the upstream's headers) and generated (finishGenerated, empty headers)
//   body_filter     each decoded body piece as relayed (ProxyExchange.parseResponse), then once with
//                   last=true (finishExchange, finishGenerated); not on a 101 tunnel
//   log             once per exchange, when it ends (logExchange, or close() for an abort)
// A response produced before the access phase ran (router miss, refusals before routing, 426, 413,
// invalid requests) runs the global plugins' header_filter/body_filter/log (collectGlobalIfNeeded).
//
// Invariants: `plugins` is non-nil exactly from beginPlugins to the exchange's log phase; the context
// is the connection's one PluginContext, reset per exchange (its buffers keep their capacity: no
// allocation per request once warm). Worker-loop confined.
import GWHTTP
import GWPlugins
import GWSystem

/// The headers handed to header_filter for a response the gateway generated.
private let noUpstreamHeaders = HTTPHeaders()

extension ClientConnection: AccessResumer {
    /// Starts the plugin side of an exchange on configuration `cfg` (nil: none loaded).
    @inline(__always) func beginPlugins(_ cfg: RuntimeConfig?) {
        guard let cfg, !cfg.pluginSet.isEmpty || server.settings.jsonAccessLog else {
            if plugins != nil { plugins = nil }
            return
        }
        beginPlugins(set: cfg.pluginSet)
    }

    private func beginPlugins(set: PluginSet) {
        let ctx: PluginContext
        if let c = pluginContext {
            ctx = c
            ctx.reset()
        } else {
            ctx = PluginContext(clientIP: peer.ip)
            ctx.connectionFD = fd
            ctx.connectionSerial = server.nextConnectionSerial()
            ctx.serverPort = listenPort
            ctx.logAlways = server.settings.jsonAccessLog
            ctx.resumer = self
            pluginContext = ctx
        }
        ctx.connectionRequests = Int(requestsOnConnection) + 1   // counted by beginRequest right after
        ctx.now = Int64(Clock.wallSeconds())
        if ctx.logDocuments !== set.logDocuments { ctx.logDocuments = set.logDocuments }
        plugins = ctx
        // Usually the same plan as the previous exchange's: skip the release and retain.
        if pluginGlobalPlan !== set.globalPlan { pluginGlobalPlan = set.globalPlan }
    }

    /// The route matched: plugins see its ids (also when the answer comes before access, e.g. 426).
    @inline(__always) func pluginsRouted(_ d: RouteDecision) {
        guard let ctx = plugins else { return }
        ctx.routeID = d.routeID
        ctx.serviceID = d.serviceID
        if !d.captures.isEmpty { ctx.uriCaptures = d.captures }
    }

    /// Kong's access phase for the route's plan. True when a plugin answered (the answer is sent).
    @inline(__always) func runAccess(_ d: RouteDecision, _ rp: HTTPRequestParser) -> Bool {
        guard let ctx = plugins else { return false }
        return runAccess(ctx, d, rp)
    }

    private func runAccess(_ ctx: PluginContext, _ d: RouteDecision, _ rp: HTTPRequestParser) -> Bool {
        let exited = PluginRuntime.access(d.pluginPlan, ctx, rp.head)
        if ctx.suspended {
            // A handler waits for the loop: parsing stops here; accessReady goes on.
            accessPending = true
            accessAfterBodyPending = false   // bufferedBodyRead sets it when access ran after the body
            return true
        }
        return accessDone(ctx, exited)
    }

    /// After access (run to its end): log what the plugins reported, answer an exit.
    private func accessDone(_ ctx: PluginContext, _ exited: Bool) -> Bool {
        if let f = ctx.failure { logRequest(.error, "plugin failed in access: \(f)") }
        if let w = ctx.warning { logRequest(.warn, w); ctx.warning = nil }
        if exited { sendExit(ctx) }
        return exited
    }

    /// A suspended access handler's reply arrived: the plan goes on where it stopped, then the request
    /// as it would have without the wait. A request whose client went away meanwhile is not resumed
    /// (its context's suspension was cancelled by the log phase, so this is not even called).
    func accessReady(_ ctx: PluginContext) {
        guard fd >= 0, accessPending, plugins === ctx, let d = decision, let rp = parser else {
            ctx.cancelSuspension()
            return
        }
        let afterBody = accessAfterBodyPending
        let exited: Bool
        if afterBody, let b = bodyBuffer, b.inMemory {
            exited = b.memory.withUnsafeBytes { bytes in
                ctx.attachRequestBody(bytes, state: .available, length: b.length)
                defer { ctx.attachRequestBody(UnsafeRawBufferPointer(start: nil, count: 0), state: .none, length: b.length) }
                return PluginRuntime.resumeAccess(d.pluginPlan, ctx, rp.head)
            }
        } else {
            exited = PluginRuntime.resumeAccess(d.pluginPlan, ctx, rp.head)
        }
        if ctx.suspended { return }   // another handler waits
        accessPending = false
        if accessDone(ctx, exited) {
            // answered
        } else if afterBody {
            if d.plan == nil {
                sendError(status: 503, message: "no Service found with those values", close: false, errorPage: false)
            } else {
                times.upstreamStartUs = Clock.monotonicMicros()
                connectToPeer()
            }
        } else {
            proxyAfterAccess(hasService: d.plan != nil, rp)
        }
        if fd >= 0 && persistence != .closing { process() }   // bytes that arrived meanwhile (body, next request)
    }

    /// Access never ran for this exchange: the global instances take part in the later phases.
    private func collectGlobalIfNeeded(_ ctx: PluginContext) {
        // A plan always includes the global instances (precedence level 8), so an empty `collected`
        // after access means the global plan is empty too: collecting again adds nothing.
        if ctx.collectedCount == 0, let g = pluginGlobalPlan { PluginRuntime.collectGlobal(g, ctx) }
    }

    /// header_filter for a proxied response (the upstream's status and headers).
    @inline(__always) func pluginsHeaderFilter(_ response: HTTPResponseParser) {
        // The phase test reads through the optional without binding it (binding retains and releases
        // the context on every response).
        guard plugins?.phases.contains(.headerFilter) == true, let ctx = plugins else { return }
        ctx.materializeTypedHeaders()   // header_filter plugins see (and may change) every header edit
        if let rp = parser {
            PluginRuntime.headerFilter(ctx, rp.head, status: response.head.status, headers: response.head.headers)
        } else {
            PluginRuntime.headerFilter(ctx, PluginRuntime.noRequest, status: response.head.status, headers: response.head.headers)
        }
    }

    /// The response head just appended to `out.bytes` at `start`: its header lines are the logged
    /// response.headers (Kong's ngx.resp.get_headers() in the log phase: the gateway's own headers and
    /// the plugins' edits included).
    @inline(__always) func pluginsLogResponseHead(from start: Int) {
        guard plugins?.wantsLogEntry == true, let ctx = plugins else { return }
        out.bytes.withUnsafeBytes { b in
            LogSerializer.headLinesJSON(UnsafeRawBufferPointer(rebasing: b[start...]), scratch: server.headScratch, into: &ctx.logResponseHeaders)
        }
    }

    /// body_filter for one relayed piece of the response body (decoded: no chunk framing).
    @inline(__always) func pluginsBodyFilter(_ piece: UnsafeRawBufferPointer, last: Bool) {
        guard plugins?.phases.contains(.bodyFilter) == true, let ctx = plugins else { return }
        PluginRuntime.bodyFilter(ctx, piece, last: last)
    }

    /// The log phase, once: the exchange ended with `status` (response sent, or aborted).
    @inline(__always) func pluginsLog(status: Int) {
        guard let ctx = plugins else { return }
        plugins = nil
        if ctx.suspended { ctx.cancelSuspension() }   // a reply still on its way is dropped
        collectGlobalIfNeeded(ctx)
        if ctx.wantsLogEntry { serializeLogEntry(ctx, status: status) }
        if ctx.phases.contains(.metrics) { PluginRuntime.metrics(ctx, metricFacts(status: status)) }
        PluginRuntime.log(ctx, status: status)
        ctx.releaseLargeBuffers()   // an idle keep-alive connection keeps no large cache buffer
    }

    /// The numbers a counting handler (prometheus) reads: the serializer's latencies, sizes and source,
    /// without the entry.
    func metricFacts(status: Int) -> MetricFacts {
        let now = Clock.monotonicMicros()
        let t = times
        var f = MetricFacts()
        f.status = status
        let proxied = t.upstreamHeadUs > 0 && t.upstreamHeadUs >= t.upstreamStartUs && t.upstreamStartUs > 0
        f.proxied = proxied
        f.requestMs = t.requestStartUs > 0 && now > t.requestStartUs ? Int((now - t.requestStartUs) / 1000) : 0
        if proxied {
            f.upstreamMs = t.upstreamMillis
            f.kongMs = max(0, f.requestMs - f.upstreamMs - Int((now &- t.upstreamHeadUs) / 1000))
        } else {
            f.kongMs = f.requestMs
        }
        f.egress = bytesToClient + out.pending
        if let rp = parser {
            // LogSerializer.requestSize's sum, read through the parser's head accessor (passing the head
            // as an argument copies it).
            var size = rp.head.target.count + 14 + bodyForwarded + rp.head.methodName.utf8.count
            for i in 0 ..< rp.head.headers.fields.count {
                size += Int(rp.head.headers.fields[i].nameLength) + Int(rp.head.headers.fields[i].valueLength) + 4
            }
            f.ingress = size
        }
        return f
    }

    /// The exchange's facts for the log serializer, and the entry every logging plugin of this exchange
    /// sends (serialized once, into the context's reused buffer).
    func serializeLogEntry(_ ctx: PluginContext, status: Int) {
        let now = Clock.monotonicMicros()
        let t = times
        var f = LogFacts()
        f.status = status
        let proxied = t.upstreamHeadUs > 0 && t.upstreamHeadUs >= t.upstreamStartUs && t.upstreamStartUs > 0
        f.upstreamStatus = proxied ? status : 0
        f.answeredByKong = !proxied
        f.bytesSent = bytesToClient + out.pending   // a response still queued (batched output) counts as sent
        let requestUs = t.requestStartUs > 0 && now > t.requestStartUs ? now - t.requestStartUs : 0
        f.requestMs = Int(requestUs / 1000)
        if proxied {
            f.proxyMs = t.upstreamMillis
            f.receiveMs = Int((now &- t.upstreamHeadUs) / 1000)
            f.kongMs = max(0, f.requestMs - f.proxyMs - f.receiveMs)
        } else {
            f.proxyMs = -1
            f.kongMs = f.requestMs
        }
        f.startedAtMs = Int64(Clock.wallSecondsFraction() * 1000) - Int64(requestUs / 1000)
        f.upstream = attempt.lastTryFailed ? nil : attempt.choice?.address
        f.tries = attempt.tries
        f.requestStartUs = t.requestStartUs
        f.lastTryStartUs = attempt.tryStartUs > 0 ? attempt.tryStartUs : t.upstreamStartUs
        f.listenPort = listenPort
        f.https = tls != nil
        ctx.logUpstreamURI.removeAll(keepingCapacity: true)
        if t.upstreamStartUs > 0, let rp = parser { ctx.logUpstreamURI.append(contentsOf: rp.upstreamTarget) }
        if let rp = parser {
            f.requestSize = LogSerializer.requestSize(rp.head, body: bodyForwarded)
            ctx.logFacts = f
            LogSerializer.serialize(ctx, request: rp.head, requestID: server.requestIDBytes(requestID), scratch: server.headScratch, into: &ctx.logEntry)
        } else {
            ctx.logFacts = f
            LogSerializer.serialize(ctx, request: PluginRuntime.noRequest, requestID: server.requestIDBytes(requestID), scratch: server.headScratch,
                                    into: &ctx.logEntry)
        }
    }

    /// Upstream request edits (headers, query, path, method) to apply to the request head (nil: none).
    @inline(__always) var requestEdits: PluginContext? {
        guard let ctx = plugins, ctx.authenticated || !ctx.upstreamHeaders.isEmpty || ctx.replacesQuery || ctx.replacesPath
                || ctx.upstreamMethod != nil else { return nil }
        return ctx
    }

    /// The plugins' part of a response the gateway generated, whose head starts at `out.bytes[start]`:
    /// header_filter (no upstream headers), the response edits, body_filter on the body.
    func pluginsOnGenerated(status: Int, headStart start: Int) {
        guard let ctx = plugins else { return }
        collectGlobalIfNeeded(ctx)
        ctx.materializeTypedHeaders()   // a generated head is rewritten from edits only
        // The request head as parsed (for an invalid request, whatever the parser holds: plugins read
        // only named headers from it).
        if let rp = parser {
            PluginRuntime.headerFilter(ctx, rp.head, status: status, headers: noUpstreamHeaders)
        } else {
            PluginRuntime.headerFilter(ctx, PluginRuntime.noRequest, status: status, headers: noUpstreamHeaders)
        }
        if !ctx.responseHeaders.isEmpty { out.bytes.rewriteHead(from: start, ctx.responseHeaders) }
        if ctx.wantsLogEntry {
            out.bytes.withUnsafeBytes { b in
                LogSerializer.headLinesJSON(UnsafeRawBufferPointer(rebasing: b[start...]), scratch: server.headScratch, into: &ctx.logResponseHeaders)
            }
        }
        if ctx.phases.contains(.bodyFilter) {
            let bodyStart = out.bytes.endOfHead(from: start)
            out.bytes.withUnsafeBytes { b in
                PluginRuntime.bodyFilter(ctx, UnsafeRawBufferPointer(rebasing: b[bodyStart...]), last: true)
            }
        }
    }

    /// Answers a plugin's exit (Kong's delayed response): a Kong error for `error`, else the raw body.
    private func sendExit(_ ctx: PluginContext) {
        if let m = ctx.exitMessage {
            sendError(status: ctx.exitStatus, message: m, close: false, errorPage: false)
            return
        }
        if ctx.cachedAnswer != nil {
            if ctx.cachedAnswerIsDirect { sendCachedAnswer(ctx); return }
            ctx.materializeCachedAnswer()   // other plugins edit the head: the generic path below
        }
        sendGenerated(status: ctx.exitStatus, logStatus: nil, close: false) { c, keep, out in
            let isHEAD = c.parser?.head.method == .head
            HTTPWriter.appendStatusLine(status: ctx.exitStatus, into: &out)
            // Date and the request id as bytes (a String of either would be a heap allocation per answer).
            HTTPWriter.append("Date: ", into: &out)
            out.append(contentsOf: c.server.httpDate())
            HTTPWriter.append("\r\n", into: &out)
            if let t = ctx.exitContentType { HTTPWriter.appendHeader("Content-Type", t, into: &out) }
            HTTPWriter.appendHeader("Connection", keep ? "keep-alive" : "close", into: &out)
            // nginx sends no Content-Length (and no body) with 1xx, 204 and 304.
            let bodyless = ctx.exitStatus < 200 || ctx.exitStatus == 204 || ctx.exitStatus == 304
            if !bodyless { HTTPWriter.appendHeader("Content-Length", ctx.exitBody.count, into: &out) }
            if c.server.settings.latencyTokens {
                HTTPWriter.appendHeader("X-Kong-Response-Latency", c.responseLatencyMillis, into: &out)
            }
            if c.server.settings.serverTokens { HTTPWriter.appendHeader("Server", c.server.serverToken, into: &out) }
            HTTPWriter.append("X-Kong-Request-Id: ", into: &out)
            c.requestID.withBytes { out.append(contentsOf: $0) }
            HTTPWriter.append("\r\n", into: &out)
            HTTPWriter.appendEndOfHead(into: &out)
            if !isHEAD && !bodyless { out.append(contentsOf: ctx.exitBody) }
        }
    }
}

extension ClientConnection {
    /// A proxy-cache Hit nothing else edits (`cachedAnswerIsDirect`), written as a generated exit would
    /// be after its edits, in one pass: status line, Date (unless stored), Connection, Content-Length,
    /// X-Kong-Response-Latency, Server (unless stored), X-Kong-Request-Id, X-Cache-Key, the stored lines,
    /// Age, X-Cache-Status, rate-limiting's typed headers, then the body (one copy from the context's CacheBuffer). The plugins'
    /// header_filter / body_filter are skipped: only proxy-cache's are collected, and they do nothing on
    /// a Hit.
    private func sendCachedAnswer(_ ctx: PluginContext) {
        guard let a = ctx.cachedAnswer else { return }
        sendGenerated(status: a.status, logStatus: nil, close: false, runsPlugins: false) { c, keep, out in
            let isHEAD = c.parser?.head.method == .head
            let server = c.server
            server.headScratch.write(appendingTo: &out) { w in
                w.put("HTTP/1.1 ")
                w.putDecimal(a.status)
                w.put(0x20)
                w.put(HTTPWriter.reasonPhrase(a.status))
                w.put("\r\n")
                if !a.storedDate { w.put("Date: "); w.put(server.httpDate()); w.put("\r\n") }
                w.put(keep ? "Connection: keep-alive\r\nContent-Length: " : "Connection: close\r\nContent-Length: ")
                w.putDecimal(a.body.count)
                if server.settings.latencyTokens {
                    w.put("\r\nX-Kong-Response-Latency: ")
                    w.putDecimal(c.responseLatencyMillis)
                }
                if server.settings.serverTokens && !a.storedServer { w.put("\r\nServer: "); w.put(server.serverToken) }
                w.put("\r\nX-Kong-Request-Id: ")
                c.requestID.withBytes { w.put($0) }
                w.put("\r\n")
                if a.writesKey { w.put("X-Cache-Key: "); w.put(ctx.cacheKeyHex); w.put("\r\n") }
                w.put(a.headerLines)
                if a.age >= 0 { w.put("Age: "); w.putDecimal(a.age); w.put("\r\n") }
                if a.writesStatus { w.put("X-Cache-Status: Hit\r\n") }
                if !ctx.rateLimit.isEmpty { ctx.rateLimit.write(to: &w) }
                w.put("\r\n")
            }
            if !isHEAD { out.append(contentsOf: a.body) }
        }
    }
}

extension FlatArray<UInt8> {
    /// The offset of the first body byte of the head starting at `start` (after its blank line).
    func endOfHead(from start: Int) -> Int {
        var i = start
        while i + 3 < count {
            if self[i] == 0x0D && self[i + 1] == 0x0A && self[i + 2] == 0x0D && self[i + 3] == 0x0A { return i + 4 }
            i += 1
        }
        return count
    }

    /// Applies header edits to the head written from `start` (a generated response): headers a set or
    /// remove entry names are dropped, then the set/add entries are written before the blank line.
    mutating func rewriteHead(from start: Int, _ edits: HeaderEdits) {
        let end = endOfHead(from: start)
        guard end >= start + 2 else { return }
        var lines = HTTPHeaders()
        var ranges: [Range<Int>] = []
        // The status line, then `Name: value\r\n` lines up to the blank line.
        var i = start
        while i < end - 2, self[i] != 0x0A { i += 1 }
        let statusEnd = i + 1
        i = statusEnd
        while i < end - 2 {
            var e = i
            while e < end, self[e] != 0x0A { e += 1 }
            let line = i ..< Swift.min(e + 1, end)
            if let colon = self[i ..< e].firstIndex(of: 0x3A) {
                var v = colon + 1
                while v < e, self[v] == 0x20 { v += 1 }
                let ve = e > v && self[e - 1] == 0x0D ? e - 1 : e
                withUnsafeBytes { b in
                    lines.append(rawName: UnsafeRawBufferPointer(rebasing: b[i ..< colon]),
                                 rawValue: UnsafeRawBufferPointer(rebasing: b[v ..< Swift.max(v, ve)]))
                }
                ranges.append(line)
            }
            i = e + 1
        }
        var head = Array(self[start ..< statusEnd])
        for k in 0 ..< ranges.count where !edits.drops(lines, k) { head.append(contentsOf: self[ranges[k]]) }
        for k in 0 ..< edits.count where edits.ops[k].writes {
            head.append(contentsOf: edits.list.nameBytes(at: k))
            head.append(0x3A); head.append(0x20)
            head.append(contentsOf: edits.list.valueBytes(at: k))
            head.append(0x0D); head.append(0x0A)
        }
        head.append(0x0D); head.append(0x0A)
        // (a generated response: the body after the head is moved behind the new head)
        let body = Array(self[end...])
        removeLast(count - start)
        head.withUnsafeBytes { append(contentsOf: $0) }
        body.withUnsafeBytes { append(contentsOf: $0) }
    }
}
