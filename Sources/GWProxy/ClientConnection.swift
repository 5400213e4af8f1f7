// One client connection and the exchange in progress on it: parse the request, route it, pick a
// peer, stream the request to the upstream and the response back, then keep the connection alive
// for the next (possibly pipelined) request.
//
// Framing rule (request smuggling): bodies are forwarded as the raw bytes llhttp accepted for the
// current message and nothing past its end, with the same framing headers the parser validated
// (Content-Length+Transfer-Encoding, conflicting lengths, bad chunks are rejected before routing).
// Invariant: at most one exchange per connection; pipelined bytes wait in `inBuf` until the
// response to the previous request is complete. Worker-loop confined.
import GWBalancer
import GWEvent
import GWHTTP
import GWStore
import GWSystem

final class ClientConnection {
    enum RequestPhase { case none, body, done }
    enum ResponsePhase { case none, body, done }
    enum UpstreamFailure { case connectFailed(Int32), connectTimeout, writeFailed, readFailed, readTimeout, writeTimeout, closedEarly, invalidResponse }

    // unowned(unsafe): the server outlives every connection of its process; skips ARC checks per access.
    unowned(unsafe) let server: ProxyServer
    var fd: Int32
    let peer: SocketAddress
    let listenPort: Int
    var io: IOWatcher!
    let timer: TimerWatcher
    var inBuf: IOBuffer?
    var out: [UInt8] = []
    var outSent = 0
    var parser: HTTPRequestParser?
    var index = -1                 // position in server.connections

    // Exchange state
    var config: RuntimeConfig?
    var reqPhase = RequestPhase.none
    var respPhase = ResponsePhase.none
    var inRequest = false          // head received, response not finished
    var upstream: UpstreamConnection?
    var decision: RouteDecision?
    var choice: PeerChoice?
    var outcome: HealthOutcome?
    var picked = false             // `choice` holds a balancer pick not yet released

    /// Releases the current pick exactly once (in-flight count, latency, passive health).
    private func releaseChoice(latencyMicros: Int?, outcome o: HealthOutcome?) {
        guard picked, let c = choice, let plan = decision?.plan else { return }
        picked = false
        plan.release(c, latencyMicros: latencyMicros, outcome: o)
    }
    var tries = 0
    var tried = TriedPeers()
    var requestHead: [UInt8] = []   // upstream request head (rebuilt per try)
    var upstreamPath: [UInt8] = []  // upstream path + query of the current request (set by routing)
    var bodyForwarded = 0
    var hasBody = false
    var requestKeepAlive = true
    var closeAfterResponse = false
    var closing = false            // flush `out`, then close
    var clientEOF = false
    var readPaused = false
    var status = 0
    var bytesToClient = 0
    var requestStartUs: UInt64 = 0
    var upstreamStartUs: UInt64 = 0
    var upstreamHeadUs: UInt64 = 0
    var requestsOnConnection = 0
    var requestID: [UInt8] = []
    var responseNoBody = false
    var closeDelimited = false
    var dechunk = false            // HTTP/1.0 client, chunked upstream response: relay decoded bytes, close-delimited
    var tunnel = false
    var timerKind = TimerKind.none
    var batchingOutput = false     // queue client output while parsing one batch of upstream bytes
    var parserPaused = false       // the request parser stopped on an event; resume it even without new bytes
    var respParserPaused = false
    var discarding = false         // answered before the request body was read: reading and dropping it
    var continueSent = false
    var processing = false         // process() is running (re-entrancy guard)
    var processAgain = false
    var readingUpstream = false    // upstreamReadable() is running (re-entrancy guard)
    var upstreamAgain = false

    enum TimerKind { case none, keepalive, header, body, send }
    /// nginx send_timeout (default 60 s, not overridden by Kong): a client that accepts no response
    /// bytes for this long is disconnected (otherwise it would pin the upstream connection forever).
    static let sendTimeoutSeconds = 60

    init(server: ProxyServer, fd: Int32, peer: SocketAddress, listenPort: Int) {
        self.server = server
        self.fd = fd
        self.peer = peer
        self.listenPort = listenPort
        self.timer = TimerWatcher(loop: server.loop) {}
        io = IOWatcher(loop: server.loop, fd: fd, events: .read) { [unowned self] ev in self.handle(ev) }   // retained for the call: close() may drop the last reference
        timer.handler = { [unowned self] in self.clientTimedOut() }
        io.start()
        armClientTimer(.header)
    }

    // MARK: client I/O

    private func handle(_ ev: IOEvents) {
        if ev.contains(.write) {
            flushClient()
            if closing || fd < 0 { return }
        }
        if ev.contains(.read) { readClient() }
    }

    private func readClient() {
        if inBuf == nil { inBuf = server.bufferPool.take() }
        let b = inBuf!
        if tunnel { tunnelFromClient(); return }
        b.compact()
        if b.freeSpace == 0 { setReadPaused(true); return }
        let r = Socket.read(fd, into: b.base + b.end, count: b.freeSpace)
        switch r {
        case .bytes(let n):
            b.end += n
            process()
        case .wouldBlock:
            releaseIdleBuffers()
        case .eof:
            clientEOF = true
            clientClosed()
        case .error:
            clientEOF = true
            clientClosed()
        }
    }

    /// The client went away (EOF or error).
    private func clientClosed() {
        if !inRequest {
            close()
            return
        }
        if reqPhase == .body {
            // Closed mid-body: the request can never complete; drop the upstream side too.
            server.accessLog(self, status: 499)
            upstream?.abort()
            upstream = nil
            close()
            return
        }
        // Request fully read: finish the response, then close.
        closeAfterResponse = true
        setReadPaused(true)
    }

    func setReadPaused(_ p: Bool) {
        if readPaused == p { return }
        readPaused = p
        updateInterest()
    }

    private func updateInterest() {
        guard fd >= 0 else { return }
        var ev: IOEvents = []
        if !readPaused && !closing && !clientEOF { ev.insert(.read) }
        if outSent < out.count { ev.insert(.write) }
        io.set(events: ev)
        if ev.isEmpty { io.stop() } else { io.start() }
    }

    /// Queues bytes for the client and tries to write them now.
    @inline(__always) func sendToClient(_ p: UnsafeRawBufferPointer) {
        out.append(contentsOf: p)
        flushClient()
    }

    func flushClient() {
        guard fd >= 0 else { return }
        // While a batch of upstream bytes is being parsed, the response head and body pieces are
        // only queued: one send per batch instead of one per piece (see upstreamReadable).
        if batchingOutput { return }
        var wrote = false
        while outSent < out.count {
            let r = out.withUnsafeBytes { Socket.write(fd, from: $0.baseAddress! + outSent, count: out.count - outSent) }
            switch r {
            case .bytes(let n):
                outSent += n
                bytesToClient += n
                wrote = true
            case .wouldBlock:
                // send_timeout runs between two successful writes (unless a client timer is running)
                if timerKind == .none || (timerKind == .send && wrote) { armClientTimer(.send) }
                updateInterest()
                upstream?.pauseReading(out.count - outSent > ProxyServer.maxPendingOutput)
                return
            case .eof, .error:
                // The client is gone; nothing more can be delivered.
                upstream?.abort()
                upstream = nil
                if inRequest { server.accessLog(self, status: status == 0 ? 499 : status) }
                close()
                return
            }
        }
        out.removeAll(keepingCapacity: true)
        outSent = 0
        if timerKind == .send { timer.stop(); timerKind = .none }
        if closing { close(); return }
        updateInterest()
        if let u = upstream, u.readPaused {
            u.pauseReading(false)
            if tunnel { tunnelFromUpstream() } else { upstreamReadable(u) }
        }
    }

    // MARK: request parsing

    /// Parses what is buffered, as far as the exchange allows. Re-entrant calls (forwarding a body
    /// piece can drain the upstream, fail it, retry, or answer) only ask the running loop to go round
    /// again, so buffer offsets are never advanced from a stale step.
    func process() {
        if processing { processAgain = true; return }
        processing = true
        defer { processing = false }
        repeat {
            processAgain = false
            processLoop()
        } while processAgain && fd >= 0 && !closing
    }

    private func processLoop() {
        while fd >= 0, !closing, let b = inBuf {
            if tunnel { return }
            if inRequest && reqPhase == .done { return }   // pipelined bytes wait for the response
            if inRequest && reqPhase == .body {
                guard let u = upstream, u.state == .active, !u.hasPendingOutput || u.out.count < ProxyServer.maxPendingOutput else {
                    // Waiting on the upstream (connecting, or not reading), not on the client: no
                    // client_body_timeout meanwhile (write_timeout / connect_timeout apply).
                    if timerKind == .body { timer.stop(); timerKind = .none }
                    return
                }
            }
            if b.isEmpty && !parserPaused {
                if !inRequest { releaseIdleBuffers() }
                return
            }
            parserPaused = false
            if parser == nil { parser = server.takeRequestParser() }
            let p = parser!
            let step = p.execute(b.readable)
            switch step {
            case .needMore:
                let p = UnsafeRawPointer(b.base + b.start), n = b.count
                b.start = b.end
                if inRequest && reqPhase == .body {
                    if n > 0 { forwardBody(p, n) } else if timerKind != .body { armClientTimer(.body) }
                }
                if !inRequest { armClientTimer(.header) }
                // readClient pauses reading when inBuf is full (upstream backlog); everything is
                // consumed now, so read again.
                if readPaused && !clientEOF && fd >= 0 { setReadPaused(false) }
                return
            case .head(let consumed):
                b.start += consumed
                parserPaused = true
                beginRequest()
            case .body(_, let consumed):
                let p = UnsafeRawPointer(b.base + b.start)
                b.start += consumed
                parserPaused = true
                forwardBody(p, consumed)
            case .messageComplete(let consumed):
                let p = UnsafeRawPointer(b.base + b.start)
                b.start += consumed
                if inRequest && reqPhase == .body {
                    forwardBody(p, consumed)
                    requestBodyComplete()
                }
                if !inRequest { discarding = false }
            case .informational:
                b.start = b.end
            case .upgrade(let consumed):
                let p = UnsafeRawPointer(b.base + b.start)
                b.start += consumed
                if inRequest && reqPhase == .body { forwardBody(p, consumed) }
                reqPhase = .done
                return
            case .error(let e):
                b.start = b.end
                if inRequest && respPhase != .none {
                    close()
                    return
                }
                upstream?.abort()
                upstream = nil
                if !inRequest { startRequestClock() }
                server.log.log(.info, "client \(peer.ip) sent an invalid request: \(e.reason)")
                sendError(status: e.status, message: e.kongMessage, logStatus: e.nginxStatus, close: true, errorPage: true)
                return
            }
        }
    }

    private func startRequestClock() {
        requestStartUs = Clock.monotonicMicros()
        server.newRequestID(into: &requestID)
        inRequest = true
    }

    /// Routes the request whose head was just parsed and starts the upstream exchange.
    private func beginRequest() {
        startRequestClock()
        requestsOnConnection += 1
        timer.stop()
        timerKind = .none
        server.countRequest()
        // The head is read in place through `rp.head` (an inlined read accessor), never copied: a copy
        // retains and releases its four buffers.
        let rp = parser!
        status = 0
        bytesToClient = 0
        bodyForwarded = 0
        tries = 0
        tried = TriedPeers()
        outcome = nil
        respPhase = .none
        responseNoBody = false
        closeDelimited = false
        dechunk = false
        continueSent = false
        choice = nil
        hasBody = rp.head.isChunked || (rp.head.contentLength ?? 0) > 0
        reqPhase = hasBody ? .body : .done
        requestKeepAlive = rp.head.keepAlive && requestsOnConnection < server.settings.keepaliveRequests && !server.draining
        closeAfterResponse = !requestKeepAlive
        if !hasBody {
            // llhttp reports the end of a body-less message on the next execute; run it now so that
            // pipelined bytes start at the next request.
            if let b = inBuf {
                _ = parser!.execute(UnsafeRawBufferPointer(start: b.base + b.start, count: 0))
            }
            parserPaused = false
        }
        if rp.head.method == .connect {
            // nginx: "client sent CONNECT method" → 405, connection closed
            sendError(status: 405, message: "Method not allowed", close: true, errorPage: true)
            return
        }
        if !requestPathIsValid(rp.head) {
            // nginx ngx_http_parse_complex_uri: bad %-escape or ".." above the root → 400
            sendError(status: 400, message: "Bad request", close: true, errorPage: true)
            return
        }
        server.refreshConfigurationIfStale()
        let cfg = server.config
        config = cfg
        guard let cfg else {
            sendError(status: 503, message: "no configuration loaded yet", close: false, errorPage: false)
            return
        }
        guard let d = server.routeCache(for: cfg).route(rp, listenPort: listenPort, upstreamPath: &upstreamPath) else {
            sendError(status: 404, message: "no Route matched with those values", close: false, errorPage: false)
            return
        }
        decision = d
        if d.requiresHTTPS {
            // KONG.md §3.1: an https-only route hit over http (https_redirect_status_code default 426)
            sendError(status: 426, message: "Please use HTTPS protocol", close: false, errorPage: false,
                      connection: "Upgrade", extraHeaders: [("Upgrade", "TLS/1.2, HTTP/1.1")])
            return
        }
        guard d.plan != nil else {
            sendError(status: 503, message: "no Service found with those values", close: false, errorPage: false)
            return
        }
        if server.settings.clientMaxBodySize > 0, let cl = rp.head.contentLength, cl > server.settings.clientMaxBodySize {
            sendError(status: 413, message: "Payload too large", close: true, errorPage: true)
            return
        }
        if rp.head.expectsContinue && hasBody && rp.head.versionMinor >= 1 {   // nginx ignores Expect on HTTP/1.0
            HTTPWriter.append("HTTP/1.1 100 Continue\r\n\r\n", into: &out)
            continueSent = true
            flushClient()
        }
        if hasBody { armClientTimer(.body) }
        upstreamStartUs = Clock.monotonicMicros()
        connectToPeer()
    }

    // MARK: upstream exchange

    /// Picks a peer (balancer or direct address) and connects, reusing a pooled connection.
    private func connectToPeer() {
        guard let d = decision, let plan = d.plan, let rp = parser else { return }
        tries += 1
        guard let c = plan.pick(request: rp, client: peer, tried: &tried, routeCaptures: d.captures) else {
            if let failure = plan.pickFailureMessage {
                sendError(status: 503, message: failure, close: false, errorPage: false)
            } else {
                sendError(status: 503, message: "failure to get a peer from the ring-balancer", close: false, errorPage: false)
            }
            return
        }
        choice = c
        picked = true
        buildUpstreamRequest(request: rp, decision: d, choice: c)
        if let pooled = server.pool.take(c.key) {
            attach(pooled)
            sendRequestHead(pooled)
            return
        }
        switch Socket.connect(to: c.address) {
        case .connected(let ufd):
            let u = UpstreamConnection(server: server, fd: ufd, peer: c.address, poolKey: c.key, connecting: false)
            attach(u)
            u.io.start()
            sendRequestHead(u)
        case .inProgress(let ufd):
            let u = UpstreamConnection(server: server, fd: ufd, peer: c.address, poolKey: c.key, connecting: true)
            attach(u)
            u.io.start()
            u.armTimer(Double(plan.service.connectTimeout) / 1000)
        case .failed(let err):
            retryOrFail(.connectFailed(err))
        }
    }

    private func attach(_ u: UpstreamConnection) {
        upstream = u
        u.client = self
        u.receivedAny = false
        u.parser.expectResponse(to: parser?.head.method ?? .get)
    }

    func upstreamConnected(_ u: UpstreamConnection) {
        sendRequestHead(u)
    }

    private func sendRequestHead(_ u: UpstreamConnection) {
        guard let plan = decision?.plan else { return }
        u.requestsServed += 1
        u.out.append(contentsOf: requestHead)
        u.armTimer(Double(plan.service.writeTimeout) / 1000)
        guard u.flush() else { return }
        if upstream === u { armUpstreamTimer(u) }
        process()   // forward any body bytes already buffered
    }

    /// nginx: proxy_send_timeout (service write_timeout) while the request is being sent, then
    /// proxy_read_timeout (read_timeout) for the response — not one timer over the whole upload.
    private func armUpstreamTimer(_ u: UpstreamConnection) {
        guard let plan = decision?.plan, respPhase == .none else { return }
        if reqPhase == .body || u.hasPendingOutput {
            u.armTimer(Double(plan.service.writeTimeout) / 1000)
        } else {
            u.armTimer(Double(plan.service.readTimeout) / 1000)
        }
    }

    /// Copies a piece of request body (already consumed from `inBuf`) to the upstream and writes it.
    private func forwardBody(_ p: UnsafeRawPointer, _ count: Int) {
        guard count > 0, let u = upstream else { return }
        u.out.append(contentsOf: UnsafeRawBufferPointer(start: p, count: count))
        bodyForwarded += count
        armClientTimer(.body)
        if u.flush(), upstream === u { armUpstreamTimer(u) }
    }

    private func requestBodyComplete() {
        reqPhase = .done
        timer.stop()
        timerKind = .none
        if let u = upstream, u.state == .active { armUpstreamTimer(u) }
    }

    func upstreamDrained(_ u: UpstreamConnection) {
        if tunnel {
            if readPaused && !clientEOF { setReadPaused(false) }
            return
        }
        if upstream === u { armUpstreamTimer(u) }
        if reqPhase == .body { process() }
    }

    /// Re-entrant calls (flushing to the client can resume a paused upstream) only ask the running
    /// loop to go round again.
    func upstreamReadable(_ u: UpstreamConnection) {
        if readingUpstream { upstreamAgain = true; return }
        readingUpstream = true
        defer { readingUpstream = false }
        repeat {
            upstreamAgain = false
            batchingOutput = true
            upstreamReadableLoop(u)
            batchingOutput = false
            if outSent < out.count { flushClient() }
        } while upstreamAgain && fd >= 0 && upstream === u
    }

    private func upstreamReadableLoop(_ u: UpstreamConnection) {
        if tunnel { tunnelFromUpstream(); return }
        while upstream === u {
            if batchingOutput && out.count - outSent > 64 * 1024 {
                // A large response: send what is queued before reading more.
                batchingOutput = false
                flushClient()
                batchingOutput = true
                if fd < 0 || upstream !== u { return }
            }
            if out.count - outSent > ProxyServer.maxPendingOutput {
                u.pauseReading(true)
                return
            }
            if u.inBuf.isEmpty && !respParserPaused {
                let r = u.readAvailable()
                switch r {
                case .bytes:
                    if let plan = decision?.plan { u.armTimer(Double(plan.service.readTimeout) / 1000) }
                case .wouldBlock:
                    if respPhase == .body { Socket.quickAck(u.fd) }   // mid-response: do not delay our ACK
                    return
                case .eof:
                    upstreamEOF(u)
                    return
                case .error:
                    upstreamFailed(u, .readFailed)
                    return
                }
            }
            parseResponse(u)
        }
    }

    private func parseResponse(_ u: UpstreamConnection) {
        let b = u.inBuf
        while upstream === u, !b.isEmpty || respParserPaused {
            respParserPaused = false
            let step = u.parser.execute(b.readable)
            switch step {
            case .needMore:
                let p = UnsafeRawPointer(b.base + b.start), n = b.count
                b.start = b.end
                if respPhase == .body && !dechunk { relayRaw(p, n) }
            case .informational(let consumed):
                respParserPaused = true
                b.start += consumed   // 1xx (100 Continue) is not forwarded; we answered Expect ourselves
            case .head(let consumed):
                b.start += consumed
                if u.parser.head.status == 101 {
                    // Switching Protocols: only an answer to an Upgrade request; then a raw tunnel.
                    guard parser?.head.isUpgrade == true else {
                        server.log.log(.error, "upstream \(u.peer) sent 101 to a request without Upgrade")
                        upstreamFailed(u, .invalidResponse)
                        return
                    }
                    startTunnel(u)
                    return
                }
                respParserPaused = true
                responseHead(u)
                if respPhase == .done { return }
            case .body(let piece, let consumed):
                let p = UnsafeRawPointer(b.base + b.start)
                b.start += consumed
                respParserPaused = true
                if dechunk {
                    if let pb = piece.baseAddress { relayRaw(pb, piece.count) }
                } else {
                    relayRaw(p, consumed)
                }
            case .messageComplete(let consumed):
                let p = UnsafeRawPointer(b.base + b.start)
                b.start += consumed
                if !dechunk { relayRaw(p, consumed) }
                guard upstream === u else { return }
                responseComplete(u)
                return
            case .upgrade(let consumed):
                b.start += consumed
                startTunnel(u)
                return
            case .error(let e):
                server.log.log(.error, "upstream \(u.peer) sent an invalid response: \(e.reason)")
                upstreamFailed(u, .invalidResponse)
                return
            }
        }
    }

    /// Copies response bytes (already consumed from the upstream buffer, framing included) to the client.
    private func relayRaw(_ p: UnsafeRawPointer, _ count: Int) {
        guard count > 0, respPhase == .body else { return }
        if parser?.head.method == .head { return }
        out.append(contentsOf: UnsafeRawBufferPointer(start: p, count: count))
        flushClient()
    }

    /// Status line and headers arrived: report passive health and send our response head.
    private func responseHead(_ u: UpstreamConnection) {
        let up = u.parser   // head read in place (no copy of its buffers)
        upstreamHeadUs = Clock.monotonicMicros()
        status = up.head.status
        outcome = .passive(status: up.head.status)
        let isHead = parser?.head.method == .head
        responseNoBody = isHead || up.head.status == 204 || up.head.status == 304 || (up.head.status >= 100 && up.head.status < 200)
            || (up.head.contentLength == 0 && !up.head.isChunked)
        closeDelimited = !responseNoBody && up.head.contentLength == nil && !up.head.isChunked && up.head.status != 101
        if closeDelimited || !up.head.keepAlive { closeAfterResponse = closeAfterResponse || closeDelimited }
        if reqPhase != .done { closeAfterResponse = true }   // upstream answered before the body ended
        // An HTTP/1.0 client cannot take chunked framing: decode and delimit by close.
        if up.head.isChunked && !responseNoBody && parser?.head.versionMinor == 0 {
            dechunk = true
            closeAfterResponse = true
        }
        server.buildClientResponseHead(self, up, into: &out)
        respPhase = .body
        flushClient()
        guard upstream === u else { return }   // the client went away
        if responseNoBody {
            // llhttp ends a body-less response on its next execute: run it now.
            _ = u.parser.execute(UnsafeRawBufferPointer(start: u.inBuf.base + u.inBuf.start, count: 0))
            responseComplete(u)
        }
    }

    private func responseComplete(_ u: UpstreamConnection) {
        respPhase = .done
        respParserPaused = false
        u.cancelTimer()
        let reusable = u.parser.head.keepAlive && !closeDelimited && reqPhase == .done && u.inBuf.isEmpty && !u.hasPendingOutput
            && u.state == .active
        upstream = nil
        if reusable { server.pool.put(u) } else { u.close() }
        finishExchange(upstreamStatus: status)
    }

    private func finishExchange(upstreamStatus: Int) {
        if let c = choice, let plan = decision?.plan {
            _ = (c, plan)
            releaseChoice(latencyMicros: Int(upstreamHeadUs > upstreamStartUs ? upstreamHeadUs - upstreamStartUs : 0),
                          outcome: outcome)
        }
        server.accessLog(self, status: status)
        endExchange()
    }

    /// Resets per-request state and goes on with the next request (or closes).
    private func endExchange() {
        // An Upgrade request answered without 101: the connection goes on as HTTP.
        if !tunnel { parser?.resumeAfterRefusedUpgrade() }
        inRequest = false
        reqPhase = .none
        respPhase = .none
        decision = nil
        choice = nil
        config = nil
        if closeAfterResponse || clientEOF || server.draining {
            closing = true
            if outSent >= out.count { close() } else { updateInterest() }
            return
        }
        setReadPaused(false)
        armClientTimer(.keepalive)
        process()
    }

    func upstreamEOF(_ u: UpstreamConnection) {
        if respPhase == .body {
            switch u.parser.finish() {
            case .messageComplete:
                upstream = nil
                u.close()
                finishExchange(upstreamStatus: status)
            default:
                // Truncated body: the client cannot be told in-band; close so it sees the truncation.
                upstream = nil
                u.abort()
                server.accessLog(self, status: status)
                close()
            }
            return
        }
        upstreamFailed(u, .closedEarly)
    }

    func upstreamTimedOut(_ u: UpstreamConnection) {
        switch u.state {
        case .connecting: upstreamFailed(u, .connectTimeout)
        default: upstreamFailed(u, u.hasPendingOutput ? .writeTimeout : .readTimeout)
        }
    }

    /// A failure on the upstream side before or during the response.
    func upstreamFailed(_ u: UpstreamConnection, _ f: UpstreamFailure) {
        guard upstream === u else { u.close(); return }
        upstream = nil
        // nginx retries a failed cached keep-alive connection without counting the try, but only for
        // errors (the upstream closed it meanwhile), not timeouts.
        var stale = u.reused && !u.receivedAny
        switch f {
        case .connectTimeout, .readTimeout, .writeTimeout, .invalidResponse: stale = false
        default: break
        }
        u.abort()
        if respPhase != .none {
            // Part of the response was sent: the only signal left is closing the connection.
            server.log.log(.error, "upstream \(u.peer) failed while sending the response (\(f))")
            server.accessLog(self, status: status)
            close()
            return
        }
        let replayable = bodyForwarded == 0 && reqPhase != .body || (!hasBody)
        if stale && replayable {
            // A pooled connection the upstream had closed: not the peer's fault, try a fresh one.
            tries -= 1
            connectToPeerAgain(countFailure: false, failure: f)
            return
        }
        retryOrFail(f)
    }

    private func connectToPeerAgain(countFailure: Bool, failure: UpstreamFailure) {
        guard let c = choice, let plan = decision?.plan, let rp = parser, let d = decision else {
            retryOrFail(failure); return
        }
        tries += 1
        buildUpstreamRequest(request: rp, decision: d, choice: c)
        switch Socket.connect(to: c.address) {
        case .connected(let ufd):
            let u = UpstreamConnection(server: server, fd: ufd, peer: c.address, poolKey: c.key, connecting: false)
            attach(u); u.io.start(); sendRequestHead(u)
        case .inProgress(let ufd):
            let u = UpstreamConnection(server: server, fd: ufd, peer: c.address, poolKey: c.key, connecting: true)
            attach(u); u.io.start(); u.armTimer(Double(plan.service.connectTimeout) / 1000)
        case .failed(let err):
            retryOrFail(.connectFailed(err))
        }
    }

    /// Kong/nginx `proxy_next_upstream error timeout`: retry on another peer while tries remain and
    /// the request can be replayed (nothing of its body sent, or no body; non-idempotent methods only
    /// before anything was sent).
    private func retryOrFail(_ f: UpstreamFailure) {
        guard let plan = decision?.plan else { return }
        let isTimeout: Bool
        switch f {
        case .connectTimeout, .readTimeout, .writeTimeout: isTimeout = true
        default: isTimeout = false
        }
        if let c = choice {
            releaseChoice(latencyMicros: nil, outcome: isTimeout ? .timeout : .tcpFailure)
            if let p = c.pick { tried.insert(p) }
        }
        let method = parser?.head.method ?? .get
        let nothingSent: Bool
        switch f {
        case .connectFailed, .connectTimeout: nothingSent = true
        default: nothingSent = false
        }
        let idempotent = !(method == .post || method == .patch || method == .other(9))   // 9 = LOCK
        var replayable = nothingSent || (bodyForwarded == 0 && idempotent)
        // nginx proxy_next_upstream default is "error timeout": an invalid response header
        // (invalid_header) is not retried.
        if case .invalidResponse = f { replayable = false }
        if tries <= plan.service.retries && replayable && !(hasBody && bodyForwarded > 0) {
            connectToPeer()
            return
        }
        if isTimeout {
            sendError(status: 504, message: "The upstream server is timing out", close: reqPhase == .body, errorPage: true)
        } else {
            sendError(status: 502, message: "An invalid response was received from the upstream server",
                      close: reqPhase == .body, errorPage: true)
        }
    }

    // MARK: WebSocket / Upgrade tunnel

    private func startTunnel(_ u: UpstreamConnection) {
        let rh = u.parser.head
        status = rh.status
        upstreamHeadUs = Clock.monotonicMicros()
        outcome = .passive(status: rh.status)
        server.buildClientResponseHead(self, u.parser, into: &out)
        tunnel = true
        respPhase = .body
        timer.stop()
        u.cancelTimer()
        // Bytes after the 101 head, from either side, are tunnel data.
        if !u.inBuf.isEmpty {
            out.append(contentsOf: u.inBuf.readable)
            u.inBuf.start = u.inBuf.end
        }
        flushClient()
        if let b = inBuf, !b.isEmpty {
            u.out.append(contentsOf: b.readable)
            b.start = b.end
            u.flush()
        }
        setReadPaused(false)
        u.pauseReading(false)
    }

    private func tunnelFromClient() {
        guard let b = inBuf, let u = upstream else { close(); return }
        b.compact()
        if b.freeSpace == 0 || u.out.count - u.outSent > ProxyServer.maxPendingOutput {
            setReadPaused(true)   // resumed by upstreamDrained (level-triggered: do not spin)
            return
        }
        switch Socket.read(fd, into: b.base + b.end, count: b.freeSpace) {
        case .bytes(let n):
            b.end += n
            u.out.append(contentsOf: b.readable)
            b.start = b.end
            u.flush()
        case .wouldBlock: return
        case .eof, .error:
            server.accessLog(self, status: status)
            upstream = nil
            u.close()
            close()
        }
    }

    private func tunnelFromUpstream() {
        guard let u = upstream else { return }
        while true {
            if out.count - outSent > ProxyServer.maxPendingOutput { u.pauseReading(true); return }
            switch u.readAvailable() {
            case .bytes:
                out.append(contentsOf: u.inBuf.readable)
                u.inBuf.start = u.inBuf.end
                flushClient()
                if fd < 0 { return }
            case .wouldBlock: return
            case .eof, .error:
                server.accessLog(self, status: status)
                upstream = nil
                u.close()
                closing = true
                if outSent >= out.count { close() } else { updateInterest() }
                return
            }
        }
    }

    // MARK: responses generated here

    /// Sends a Kong error response. `errorPage`: nginx error_page semantics (Accept, then
    /// Content-Type, then error_default_type); otherwise kong.response.error (Accept, JSON default).
    func sendError(status st: Int, message: String, logStatus: Int? = nil, close closeAfter: Bool, errorPage: Bool,
                   connection: String? = nil, extraHeaders: [(String, String)] = []) {
        guard fd >= 0 else { return }
        if !inRequest { startRequestClock() }
        status = logStatus ?? st
        let head = parser?.head
        var accept: String? = nil
        var contentType: String? = nil
        var isHead = false
        if let head, head.target.count > 0 || head.headers.count > 0 {
            accept = head.headers.first("accept")
            contentType = head.headers.first("content-type")
            isHead = head.method == .head
        }
        // nginx discards an unread request body after an early answer and keeps the connection
        // (ngx_http_discard_request_body); the parser goes on through the body, dropping it. Not when
        // the client waits for a 100 Continue it never got (it may never send the body).
        let discard = reqPhase == .body && !closeAfter && (!(head?.expectsContinue ?? false) || continueSent)
        if (reqPhase == .body && !discard) || closeAfter { closeAfterResponse = true }
        let keep = !closeAfterResponse && !server.draining
        if !keep { closeAfterResponse = true }
        let latency = Int((Clock.monotonicMicros() - requestStartUs) / 1000)
        KongErrorResponse.build(into: &out, status: st, message: message,
                                requestID: String(decoding: requestID, as: UTF8.self),
                                accept: accept, contentType: contentType, isHEAD: isHead,
                                defaultType: errorPage ? server.settings.errorDefaultType : nil,
                                serverToken: server.settings.serverTokens ? server.serverToken : nil,
                                keepAlive: keep, connection: keep ? connection : nil,
                                date: String(decoding: server.httpDate(), as: UTF8.self),
                                responseLatency: server.settings.latencyTokens ? latency : nil, extraHeaders: extraHeaders)
        releaseChoice(latencyMicros: nil, outcome: nil)
        upstream?.abort()
        upstream = nil
        if discard && keep { discarding = true }
        server.accessLog(self, status: status)
        flushClient()
        if fd >= 0 { endExchange() }
    }

    // MARK: timers

    func armClientTimer(_ kind: TimerKind) {
        let seconds: Int
        switch kind {
        case .keepalive: seconds = server.settings.keepaliveTimeout
        case .header: seconds = server.settings.clientHeaderTimeout
        case .body: seconds = server.settings.clientBodyTimeout
        case .send: seconds = ClientConnection.sendTimeoutSeconds
        case .none: timer.stop(); timerKind = .none; return
        }
        if kind == timerKind && kind != .body && kind != .send && timer.isActive { return }
        timerKind = kind
        timer.start(after: Double(max(seconds, 1)))
    }

    private func clientTimedOut() {
        switch timerKind {
        case .send:
            server.log.log(.info, "client \(peer.ip) timed out while sending the response")
            if inRequest { server.accessLog(self, status: status == 0 ? 408 : status) }
            upstream?.abort()
            upstream = nil
            close()
        case .keepalive, .none:
            close()
        case .header:
            // nginx (ngx_http_process_request_headers): "client timed out" → the connection is closed
            // without a response; a partly received request is logged as 408.
            if !inRequest, let p = parser, p.hasPartialRequest {
                startRequestClock()
                server.accessLog(self, status: 408)
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
        guard !inRequest, !discarding, let b = inBuf, b.isEmpty else { return }
        server.bufferPool.give(b)
        inBuf = nil
        if let p = parser {
            server.giveRequestParser(p)
            parser = nil
        }
    }

    /// Closes an idle connection during a graceful drain (true if it was idle).
    func closeIfIdle() -> Bool {
        // A connection that has not sent its first request yet is not idle: the client is about to
        // send it (closing would reset a request the client already considers sent). nginx closes
        // only keep-alive connections between requests; quit_timeout bounds the wait.
        if inRequest || requestsOnConnection == 0 || (inBuf.map { !$0.isEmpty } ?? false) {
            closeAfterResponse = true
            return false
        }
        close()
        return true
    }

    func close() {
        guard fd >= 0 else { return }
        io.stop()
        timer.stop()
        upstream?.abort()
        upstream = nil
        Socket.close(fd)
        fd = -1   // every path that can run after close() checks fd >= 0
        if let b = inBuf { server.bufferPool.give(b); inBuf = nil }
        if let p = parser { server.giveRequestParser(p); parser = nil }
        server.connectionClosed(self)
    }
}

@inline(__always) private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

/// nginx's URI checks (ngx_http_parse_complex_uri): every `%` starts a two-hex-digit escape, and
/// dot-segments (after decoding escapes, `/` and `.` included) never climb above the root.
func requestPathIsValid(_ head: borrowing HTTPRequestHead) -> Bool {
    head.target.withUnsafeBufferPointer { t in
        requestPathIsValid(UnsafeBufferPointer(rebasing: t[head.pathStart ..< head.queryStart]))
    }
}

func requestPathIsValid(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
    guard path.first == 0x2F else { return true }     // "*", or absolute-form without a path
    var i = path.startIndex
    var depth = 0
    var seg: (len: Int, dots: Int) = (0, 0)           // current segment length and count of '.'
    func endSegment() -> Bool {
        if seg.len == 2 && seg.dots == 2 {
            depth -= 1
            if depth < 0 { return false }
        } else if seg.len > 0 && !(seg.len == 1 && seg.dots == 1) {
            depth += 1
        }
        seg = (0, 0)
        return true
    }
    var first = true
    while i < path.endIndex {
        var c = path[i]
        if c == 0x25 {
            guard i + 2 < path.endIndex, let h = hexValue(path[i + 1]), let l = hexValue(path[i + 2]) else {
                return false
            }
            c = h << 4 | l
            i += 3
        } else {
            i += 1
        }
        if c == 0x2F {
            if first { first = false; continue }
            if !endSegment() { return false }
        } else {
            first = false
            seg.len += 1
            if c == 0x2E { seg.dots += 1 }
        }
    }
    return endSegment()
}
