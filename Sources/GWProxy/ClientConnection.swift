// One client connection: the socket, the read loop feeding llhttp, the start of each exchange
// (routing, early refusals), keep-alive and pipelining, the client timers and teardown.
// The exchange with the upstream is in ProxyExchange.swift, peer choice and retries in
// PeerAttempt.swift, generated responses in ClientConnection+Errors.swift, the plugin phases in
// ClientConnection+Plugins.swift, the states in ExchangeState.swift, the output queue in OutputQueue.swift.
//
// Invariants: at most one exchange per connection (reqPhase.isActive); pipelined bytes wait in
// `inBuf` until the response to the previous request is complete. `fd < 0` once closed: every path
// that can run after close() checks it. An idle keep-alive connection holds no buffer and no parser
// (releaseIdleBuffers). Worker-loop confined.
import GWBalancer
import GWEvent
import GWHTTP
import GWPlugins
import GWRouter
import GWStore
import GWSystem
import GWTLS

final class ClientConnection {
    // Stored properties: word-sized ones first, the one-byte flags and phases together at the end
    // (Swift lays a class out in declaration order; interleaved, each Bool before an Int cost up to 7
    // bytes of padding: ~40 bytes per connection, idle ones included).
    // Strong and `let`: the server outlives every connection of its process, and a `let` class reference
    // is read without retain or release (an unowned(unsafe) one was copied to a strong reference around
    // each use: 11 retain/release pairs per request, 450 instructions, callgrind.py). No cycle: the
    // server drops a connection from its table when it closes.
    let server: ProxyServer
    var fd: Int32
    let peer: SocketAddress
    let listenPort: Int
    let io: IOWatcher   // `let`: read without retain (its handler is set once self is initialized)
    let timer: DeadlineTimer       // the client timeout of `timerKind` (lazy: see armClientTimer)
    var inBuf: IOBuffer?
    var out = OutputQueue()        // storage lent by the server during an exchange (ProxyServer.lendArray)
    var parser: HTTPRequestParser?
    var index: Int32 = -1          // position in server.connections (32 bits: with the next, one word)
    var requestsOnConnection: Int32 = 0
    /// TLS under this connection (ClientConnection+TLS.swift); nil on a plain listener, and on a TLS
    /// listener until the first byte shows a handshake (`tlsUndecided`).
    var tls: TLSConnection?

    // The exchange in progress (reset by beginRequest, cleared by endExchange)
    var config: RuntimeConfig?
    var decision: RouteDecision?
    var attempt = PeerAttempt()
    var upstream: UpstreamConnection?
    var outcome: HealthOutcome?
    var requestID = RequestID()
    var times = ExchangeTimes()
    var status = 0
    var bytesToClient = 0
    var bodyForwarded = 0
    /// The body being read whole (bodyMode .buffer), from the server's pool; returned at the exchange's end.
    var bodyBuffer: RequestBodyBuffer?
    /// Bytes of our own body (ownBodyLength) queued to the current try's upstream.
    var bodySent = 0
    var heldBody: [UInt8] = []
    /// Set while writing the head of a rewritten body: our Content-Length replaces the upstream's framing.
    var ownResponseLength: Int? = nil
    /// The connection's plugin context, created on its first exchange that has plugins, then reused.
    var pluginContext: PluginContext?
    /// `pluginContext` while the current exchange runs plugins; nil otherwise (no plugin configured).
    var plugins: PluginContext?
    /// The configuration's global plugins, for a response given before the access phase.
    var pluginGlobalPlan: PluginPlan?

    // One-byte state (the connection's, then the exchange's)
    /// The peer is in `trusted_ips` (decided once per connection; MessageBuilder+Forwarded.swift).
    let peerTrusted: Bool
    var timerKind = ClientTimer.none
    var persistence = Persistence.keepAlive
    var clientEOF = false
    var readPaused = false
    var parserPaused = false       // the request parser stopped on an event; resume it even without new bytes
    var processGuard = LoopGuard.idle
    var tlsUndecided: Bool
    /// A plain HTTP request arrived on a TLS listener: answered 400 (nginx's wording), then closed.
    var plainOnTLSPort = false
    var reqPhase = RequestPhase.idle
    var respPhase = ResponsePhase.none
    var respBody = ResponseBody.framed
    var hasBody = false
    var bodyMode = RequestBodyMode.none
    /// The access phase waits for the whole body (a plugin reads it).
    var accessAfterBody = false
    var bodyPump = LoopGuard.idle
    /// The response body is being held for a plugin (ClientConnection+ResponseBody.swift).
    var holdingResponse = false
    var continueSent = false
    var discarding = false         // answered before the request body was read: reading and dropping it
    var respParserPaused = false
    var batchingOutput = false     // queue client output while parsing one batch of upstream bytes
    var upstreamGuard = LoopGuard.idle
    /// An access handler suspended the request (ClientConnection+Plugins.swift, accessReady): nothing
    /// more is parsed until it resumes; `accessAfterBodyPending`: it ran after the whole body was read.
    var accessPending = false
    var accessAfterBodyPending = false

    /// nginx send_timeout (default 60 s, not overridden by Kong): a client that accepts no response
    /// bytes for this long is disconnected (otherwise it would pin the upstream connection forever).
    static let sendTimeoutSeconds = 60

    init(server: ProxyServer, fd: Int32, peer: SocketAddress, listenPort: Int, tlsPort: Bool = false) {
        self.server = server
        self.tlsUndecided = tlsPort
        self.fd = fd
        self.peer = peer
        self.peerTrusted = server.settings.trustedIPs.contains(peer)
        self.listenPort = listenPort
        self.timer = DeadlineTimer(loop: server.loop) {}
        self.io = IOWatcher(loop: server.loop, fd: fd, events: .read) { _ in }
        // unowned(unsafe) as in UpstreamConnection.init; self is retained for the call (close() may drop
        // the last reference).
        io.handler = { [unowned(unsafe) self] ev in self.handle(ev) }
        timer.handler = { [unowned(unsafe) self] in self.clientTimedOut() }
        io.start()
        armClientTimer(.header)
    }

    deinit {
        // (UpstreamConnection.client is unowned: never left pointing at a freed client)
        if let u = upstream, u.client === self { u.client = nil }
    }

    // MARK: client I/O

    private func handle(_ ev: IOEvents) {
        if ev.contains(.write) {
            flushClient()
            if persistence == .closing || fd < 0 { return }
            // TLS: a read that stopped on WANT_WRITE goes on once the socket is writable.
            if let t = tls, t.readWantsWrite { readClient(); return }
        }
        if ev.contains(.read) {
            // TLS: a write that stopped on WANT_READ goes on once the socket is readable.
            if let t = tls, t.writeWantsRead { flushClient(); if fd < 0 { return } }
            readClient()
        }
    }

    func readClient() {
        if tlsUndecided { guard decideTLS() else { return } }
        repeat {
            if inBuf == nil { inBuf = server.bufferPool.take() }
            let b = inBuf!
            if respPhase == .tunnel { tunnelFromClient(); return }
            b.compact()
            if b.freeSpace == 0 { setReadPaused(true); return }
            let r = tls == nil ? Socket.read(fd, into: b.base + b.end, count: b.freeSpace)
                               : tlsRead(into: b.base + b.end, count: b.freeSpace)
            switch r {
            case .bytes(let n):
                b.end += n
                process()
            case .wouldBlock:
                releaseIdleBuffers()
                if tls?.readWantsWrite == true { updateInterest() }
                return
            case .eof, .error:
                clientEOF = true
                clientClosed()
                return
            }
            // Decrypted bytes can wait inside OpenSSL with no readiness on the socket: read them now.
        } while tls?.hasPending == true && fd >= 0 && !readPaused && !clientEOF && persistence != .closing
    }

    /// The client went away (EOF or error).
    private func clientClosed() {
        switch reqPhase {
        case .idle:
            close()
        case .body:
            // Closed mid-body: the request can never complete; drop the upstream side too.
            logExchange(status: 499)
            upstream?.abort()
            upstream = nil
            close()
        case .unparsed, .done:
            // Request fully read: finish the response, then close.
            persistence.closeAfterResponse()
            setReadPaused(true)
        }
    }

    func setReadPaused(_ p: Bool) {
        if readPaused == p { return }
        readPaused = p
        updateInterest()
        if !p, let t = tls, t.hasPending { io.feed(.read) }   // no socket readiness announces these bytes
    }

    func updateInterest() {
        guard fd >= 0 else { return }
        var ev: IOEvents = []
        if (!readPaused || tls?.writeWantsRead == true) && persistence != .closing && !clientEOF { ev.insert(.read) }
        if out.hasPending || tls?.readWantsWrite == true { ev.insert(.write) }
        io.set(events: ev)
        if ev.isEmpty { io.stop() } else { io.start() }
    }

    func flushClient() {
        guard fd >= 0 else { return }
        // While a batch of upstream bytes is being parsed, the response head and body pieces are
        // only queued: one send per batch instead of one per piece (see upstreamReadable).
        if batchingOutput { return }
        switch tls == nil ? out.write(to: fd) : out.write(tls: tls!) {
        case .drained(let n):
            bytesToClient += n
        case .wouldBlock(let n):
            bytesToClient += n
            // send_timeout runs between two successful writes (unless a client timer is running)
            if timerKind == .none || (timerKind == .send && n > 0) { armClientTimer(.send) }
            updateInterest()
            upstream?.pauseReading(out.pending > ProxyServer.maxPendingOutput)
            return
        case .failed:
            // The client is gone; nothing more can be delivered.
            upstream?.abort()
            upstream = nil
            if reqPhase.isActive { logExchange(status: status == 0 ? 499 : status) }
            close()
            return
        }
        if timerKind == .send { timer.cancel(); timerKind = .none }
        if persistence == .closing { close(); return }
        reclaimIdleArrays()
        updateInterest()
        if let u = upstream, u.readPaused {
            u.pauseReading(false)
            if respPhase == .tunnel { tunnelFromUpstream() } else { upstreamReadable(u) }
        }
    }

    // MARK: request parsing

    /// Parses what is buffered, as far as the exchange allows (see LoopGuard for re-entrant calls).
    func process() {
        guard processGuard.enter() else { return }
        defer { processGuard.leave() }
        repeat {
            processLoop()
        } while processGuard.repeatRequested() && fd >= 0 && persistence != .closing
    }

    private func processLoop() {
        while fd >= 0, persistence != .closing, let b = inBuf {
            if respPhase == .tunnel { return }
            if reqPhase == .done || accessPending { return }   // pipelined bytes wait for the response (or for access)
            if reqPhase == .body && bodyMode != .buffer {
                guard let u = upstream, u.state == .active, !u.out.hasPending || u.out.bytes.count < ProxyServer.maxPendingOutput else {
                    // Waiting on the upstream (connecting, or not reading), not on the client: no
                    // client_body_timeout meanwhile (write_timeout / connect_timeout apply).
                    if timerKind == .body { timer.cancel(); timerKind = .none }
                    return
                }
            }
            if b.isEmpty && !parserPaused {
                if !reqPhase.isActive { releaseIdleBuffers() }
                return
            }
            parserPaused = false
            if parser == nil { parser = server.takeRequestParser() }
            let p = parser!
            let step = p.execute(b.readable)
            switch step {
            case .needMore:
                let n = b.count
                b.start = b.end
                // Only framing (chunk sizes, extensions, trailers) is consumed without a body event: it is
                // never relayed (RequestBodyMode).
                if reqPhase == .body && (n > 0 || timerKind != .body) { armClientTimer(.body) }
                if !reqPhase.isActive { armClientTimer(.header) }
                // readClient pauses reading when inBuf is full (upstream backlog); everything is
                // consumed now, so read again.
                if readPaused && !clientEOF && fd >= 0 { setReadPaused(false) }
                return
            case .head(let consumed):
                b.start += consumed
                parserPaused = true
                beginRequest()
            case .body(let piece, let consumed):
                b.start += consumed
                parserPaused = true
                if reqPhase == .body { requestBodyPiece(piece) }
            case .messageComplete(let consumed):
                b.start += consumed
                if reqPhase == .body {
                    requestBodyEnd()
                    requestBodyComplete()
                }
                if !reqPhase.isActive { discarding = false }
            case .informational:
                b.start = b.end
            case .upgrade(let consumed):
                let p = UnsafeRawPointer(b.base + b.start)
                b.start += consumed
                if reqPhase == .body { forwardBody(p, consumed) }
                reqPhase = .done
                return
            case .error(let e):
                b.start = b.end
                if reqPhase.isActive && respPhase != .none {
                    close()
                    return
                }
                upstream?.abort()
                upstream = nil
                if !reqPhase.isActive { startRequestClock() }
                server.log.log(.info, "client \(peer.ip) sent an invalid request: \(e.reason)")
                sendError(status: e.status, message: e.kongMessage, logStatus: e.nginxStatus, close: true, errorPage: true)
                return
            }
        }
    }

    /// An exchange starts (a parsed head, or bytes answered without one).
    func startRequestClock() {
        times.requestStartUs = Clock.monotonicMicros()
        server.lendArray(&out.bytes)
        requestID = server.newRequestID()
        if reqPhase == .idle { reqPhase = .unparsed }
        beginPlugins(server.config)
    }

    /// Routes the request whose head was just parsed and starts the upstream exchange.
    private func beginRequest() {
        server.refreshConfigurationIfStale()
        startRequestClock()
        if peerTrusted, let ctx = plugins, let rp = parser { pluginsClientIP(ctx, rp) }
        if requestsOnConnection < Int32.max { requestsOnConnection += 1 }
        timerKind = .none   // no client timeout while the exchange runs (the ev_timer is left to fire: lazy)
        timer.clearDeadline()
        server.countRequest()
        // The head is read in place through `rp.head` (an inlined read accessor), never copied: a copy
        // retains and releases its four buffers.
        let rp = parser!
        status = 0
        bytesToClient = 0
        bodyForwarded = 0
        attempt.reset()
        outcome = nil
        respPhase = .none
        respBody = .framed
        continueSent = false
        hasBody = rp.head.isChunked || (rp.head.contentLength ?? 0) > 0
        bodyMode = .none
        bodySent = 0
        reqPhase = hasBody ? .body : .done
        let keepAlive = rp.head.keepAlive && Int(requestsOnConnection) < server.settings.keepaliveRequests && !server.draining
        persistence = keepAlive ? .keepAlive : .closeAfterResponse
        if !hasBody {
            // llhttp reports the end of a body-less message on the next execute; run it now so that
            // pipelined bytes start at the next request.
            if let b = inBuf {
                _ = parser!.execute(UnsafeRawBufferPointer(start: b.base + b.start, count: 0))
            }
            parserPaused = false
        }
        if plainOnTLSPort {
            // nginx's answer to plain HTTP on an ssl listener (its 497, sent as 400), then close.
            sendError(status: 400, message: "The plain HTTP request was sent to HTTPS port", close: true, errorPage: true)
            return
        }
        if rp.head.method.isCONNECT {
            // nginx: "client sent CONNECT method" → 405, connection closed
            sendError(status: 405, message: "Method not allowed", close: true, errorPage: true)
            return
        }
        if !requestPathIsValid(rp.head) {
            // nginx ngx_http_parse_complex_uri: bad %-escape or ".." above the root → 400
            sendError(status: 400, message: "Bad request", close: true, errorPage: true)
            return
        }
        let cfg = server.config
        config = cfg
        guard let cfg else {
            sendError(status: 503, message: "no configuration loaded yet", close: false, errorPage: false)
            return
        }
        let connTLS = tls.map { ConnectionTLS(isTLS: true, sni: $0.serverName) } ?? .plain
        guard let d = server.routeCache(for: cfg).route(rp, listenPort: listenPort, tls: connTLS, upstreamPath: &rp.upstreamTarget) else {
            sendError(status: 404, message: "no Route matched with those values", close: false, errorPage: false)
            return
        }
        decision = d
        pluginsRouted(d)
        if d.requiresHTTPS && tls == nil && !forwardedHTTPS(rp) {
            // KONG.md §3.1: an https-only route hit over http (https_redirect_status_code default 426),
            // in Kong's access "before" step: before the plugins.
            sendError(status: 426, message: "Please use HTTPS protocol", close: false, errorPage: false,
                      connection: "Upgrade", extraHeaders: [("Upgrade", "TLS/1.2, HTTP/1.1")])
            return
        }
        if server.settings.clientMaxBodySize > 0, let cl = rp.head.contentLength, cl > server.settings.clientMaxBodySize {
            // nginx checks client_max_body_size when it finds the location, before Kong's access phase.
            sendError(status: 413, message: "Payload too large", close: true, errorPage: true)
            return
        }
        let pluginsNeedBody = plugins != nil && d.pluginPlan.needsRequestBody
        bodyMode = RequestBodyMode.choose(hasBody: hasBody, chunked: rp.head.isChunked, upgrade: rp.head.isUpgrade,
                                          routeBuffers: d.requestBuffering, pluginsNeedBody: pluginsNeedBody)
        if bodyMode == .buffer && pluginsNeedBody {
            // A plugin reads the body in access (Kong reads it when the plugin asks): read it first;
            // requestBodyComplete → bufferedBodyRead runs the access phase.
            accessAfterBody = true
            startBuffering(rp)
            return
        }
        if runAccess(d, rp) { return }   // a plugin answered (or access waits: accessReady goes on)
        proxyAfterAccess(hasService: d.plan != nil, rp)
    }

    /// The access phase let the request through: 503 for a route without service, else the body and
    /// the upstream.
    @inline(__always) func proxyAfterAccess(hasService: Bool, _ rp: HTTPRequestParser) {
        guard hasService else {
            // Kong: after the access plugins.
            sendError(status: 503, message: "no Service found with those values", close: false, errorPage: false)
            return
        }
        if bodyMode == .buffer {
            startBuffering(rp)   // the upstream is contacted once the body is read (bufferedBodyRead)
            return
        }
        if rp.head.expectsContinue && hasBody && rp.head.versionMinor >= 1 {   // nginx ignores Expect on HTTP/1.0
            HTTPWriter.append("HTTP/1.1 100 Continue\r\n\r\n", into: &out.bytes)
            continueSent = true
            flushClient()
        }
        if hasBody { armClientTimer(.body) }
        times.upstreamStartUs = Clock.monotonicMicros()
        connectToPeer()
    }

    // MARK: end of an exchange

    /// One access-log line for the exchange (nothing formatted when the log is off).
    func logExchange(status: Int) {
        let ctx = server.settings.jsonAccessLog ? plugins : nil
        pluginsLog(status: status)
        guard server.accessLogFile != nil else { return }
        if server.settings.jsonAccessLog { jsonAccessLog(ctx, status: status); return }
        server.accessLog(client: peer, request: parser, requestLine: reqPhase.isActive || status != 0, status: status,
                         bytesSent: bytesToClient, upstream: attempt.choice?.address, times: times)
    }

    /// Resets per-request state and goes on with the next request (or closes).
    func endExchange() {
        // An Upgrade request answered without 101: the connection goes on as HTTP.
        if respPhase != .tunnel { parser?.resumeAfterRefusedUpgrade() }
        reqPhase = .idle
        respPhase = .none
        accessPending = false
        releaseBody()
        if holdingResponse || heldBody.capacity > 64 * 1024 { releaseHeldBody() }
        decision = nil
        attempt.choice = nil
        config = nil
        if persistence != .keepAlive || clientEOF || server.draining {
            persistence = .closing
            if out.hasPending { updateInterest() } else { close() }
            return
        }
        setReadPaused(false)
        armClientTimer(.keepalive)
        process()
    }

    // MARK: timers

    func armClientTimer(_ kind: ClientTimer) {
        let seconds: Int
        switch kind {
        case .keepalive: seconds = server.settings.keepaliveTimeout
        case .header: seconds = server.settings.clientHeaderTimeout
        case .body: seconds = server.settings.clientBodyTimeout
        case .send: seconds = ClientConnection.sendTimeoutSeconds
        case .none: timerKind = .none; timer.clearDeadline(); return
        }
        if kind == timerKind && kind != .body && kind != .send && timer.hasDeadline { return }
        // Lazy (DeadlineTimer): a keep-alive exchange costs no ev_timer stop and start.
        timerKind = kind
        timer.setDeadline(after: Double(max(seconds, 1)))
    }

    /// An error-log line about the current request: nginx's `client:` and Kong's `request_id:` (the
    /// X-Kong-Request-Id of the response and `request.id` of the JSON access log) are appended, so a
    /// request can be followed from the access log to the error log.
    func logRequest(_ level: LogLevel, _ message: @autoclosure () -> String) {
        server.log.log(level, "\(message()), client: \(peer.ip), request_id: \"\(requestID.string)\"")
    }

    private func clientTimedOut() {
        // (runs only once the deadline has passed: DeadlineTimer)
        switch timerKind {
        case .send:
            logRequest(.info, "client \(peer.ip) timed out while sending the response")
            if reqPhase.isActive { logExchange(status: status == 0 ? 408 : status) }
            upstream?.abort()
            upstream = nil
            close()
        case .keepalive, .none:
            close()
        case .header:
            // nginx (ngx_http_process_request_headers): "client timed out" → the connection is closed
            // without a response; a partly received request is logged as 408.
            if !reqPhase.isActive, let p = parser, p.hasPartialRequest {
                startRequestClock()
                logExchange(status: 408)
            }
            close()
        case .body:
            upstream?.abort()
            upstream = nil
            sendError(status: 408, message: "Request timeout", close: true, errorPage: true)
        }
    }

    // MARK: teardown

    /// Gives back the read buffer and parser while the connection is idle (no bytes pending), so
    /// an idle keep-alive connection holds only this object and its watchers.
    private func releaseIdleBuffers() {
        guard !reqPhase.isActive, !discarding, inBuf?.isEmpty == true else { return }
        // Moved out (Optional.take) into the pools: no retain and release of either.
        server.bufferPool.give(inBuf.take()!)
        if parser != nil { server.giveRequestParser(parser.take()!) }
        reclaimIdleArrays()
    }

    /// Between exchanges, once the output is written: the output queue's storage goes back to the server.
    @inline(__always) private func reclaimIdleArrays() {
        guard !reqPhase.isActive, !out.hasPending, out.bytes.capacity > 0 else { return }
        out.sent = 0
        server.reclaimArray(&out.bytes)
    }

    /// Closes an idle connection during a graceful drain (true if it was idle).
    func closeIfIdle() -> Bool {
        // A connection that has not sent its first request yet is not idle: the client is about to
        // send it (closing would reset a request the client already considers sent). nginx closes
        // only keep-alive connections between requests; quit_timeout bounds the wait.
        if reqPhase.isActive || requestsOnConnection == 0 || (inBuf.map { !$0.isEmpty } ?? false) {
            persistence.closeAfterResponse()
            return false
        }
        close()
        return true
    }

    func close() {
        guard fd >= 0 else { return }
        pluginsLog(status: status == 0 ? 499 : status)   // an exchange cut short: its log phase still runs
        io.stop()
        timer.cancel()
        upstream?.abort()
        upstream = nil
        tls = nil   // close_notify (never waiting), then the SSL object is freed: before the fd is closed
        Socket.close(fd)
        fd = -1   // every path that can run after close() checks fd >= 0
        if let b = inBuf { server.bufferPool.give(b); inBuf = nil }
        if let p = parser { server.giveRequestParser(p); parser = nil }
        releaseBody()
        server.connectionClosed(self)
    }
}
