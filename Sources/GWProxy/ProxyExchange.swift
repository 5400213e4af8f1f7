// The exchange with the upstream for the current request (≈ nginx's ngx_http_upstream_t): send the
// request head and stream the body, parse the response, relay it to the client, pool the upstream
// connection, and the WebSocket/Upgrade tunnel. Written as an extension of ClientConnection: the
// exchange's state lives in the connection (one exchange per connection, reused; no object per request).
// Picking, connecting and retrying are in PeerAttempt.swift; errors generated here go through
// ClientConnection+Errors.swift.
//
// Framing rule (request smuggling): the request body goes upstream as decoded bytes under framing the
// gateway made (ClientConnection+RequestBody.swift); response bodies are relayed as the raw bytes llhttp
// accepted for the current message and nothing past its end, with the framing headers it validated.
// Invariants: `upstream` is the connection of the current try (nil between tries and after the
// response); every callback from UpstreamConnection checks `upstream === u` after anything that can
// end the try. Back-pressure: above ProxyServer.maxPendingOutput unsent bytes towards one side,
// reading from the other side pauses. Worker-loop confined.
import GWBalancer
import GWHTTP
import GWSystem

extension ClientConnection {
    // MARK: request towards the upstream

    func upstreamConnected(_ u: UpstreamConnection) {
        sendRequestHead(u)
    }

    func sendRequestHead(_ u: UpstreamConnection) {
        // (the choice is read in place where it is needed: binding it copied its three Strings)
        guard let d = decision, let plan = d.plan, let rp = parser, attempt.choice != nil else { return }
        u.requestsServed += 1
        buildUpstreamRequest(request: rp, decision: d, into: &u.out.bytes)
        u.armTimer(Double(plan.service.writeTimeout) / 1000)
        if ownBodyLength != nil {
            bodySent = 0
            pumpBody(u)   // the whole body was read: nothing more to process() for this request
            if upstream === u { armUpstreamTimer(u) }
            return
        }
        guard u.flush() else { return }
        if upstream === u { armUpstreamTimer(u) }
        process()   // forward any body bytes already buffered
    }

    /// nginx: proxy_send_timeout (service write_timeout) while the request is being sent, then
    /// proxy_read_timeout (read_timeout) for the response — not one timer over the whole upload.
    func armUpstreamTimer(_ u: UpstreamConnection) {
        guard let plan = decision?.plan, respPhase == .none else { return }
        if reqPhase == .body || u.out.hasPending {
            u.armTimer(Double(plan.service.writeTimeout) / 1000)
        } else {
            u.armTimer(Double(plan.service.readTimeout) / 1000)
        }
    }

    /// Copies a piece of request body (already consumed from `inBuf`) to the upstream and writes it
    /// (a Content-Length body streamed, or what follows an Upgrade request's head).
    func forwardBody(_ p: UnsafeRawPointer, _ count: Int) {
        guard count > 0, let u = upstream else { return }
        u.out.append(UnsafeRawBufferPointer(start: p, count: count))
        bodyForwarded += count
        armClientTimer(.body)
        if u.flush(), upstream === u { armUpstreamTimer(u) }
    }

    func requestBodyComplete() {
        reqPhase = .done
        timer.cancel()
        timerKind = .none
        if bodyMode == .buffer && upstream == nil && respPhase == .none {
            bufferedBodyRead()
            return
        }
        if let u = upstream, u.state == .active { armUpstreamTimer(u) }
    }

    func upstreamDrained(_ u: UpstreamConnection) {
        if respPhase == .tunnel {
            if readPaused && !clientEOF { setReadPaused(false) }
            return
        }
        if upstream === u && ownBodyPending {
            pumpBody(u)
            return
        }
        if upstream === u { armUpstreamTimer(u) }
        if reqPhase == .body { process() }
    }

    func upstreamTimedOut(_ u: UpstreamConnection) {
        switch u.state {
        case .connecting: upstreamFailed(u, .connectTimeout)
        default: upstreamFailed(u, u.out.hasPending ? .writeTimeout : .readTimeout)
        }
    }

    // MARK: response towards the client

    /// Re-entrant calls (flushing to the client can resume a paused upstream) only ask the running
    /// loop to go round again.
    func upstreamReadable(_ u: UpstreamConnection) {
        guard upstreamGuard.enter() else { return }
        defer { upstreamGuard.leave() }
        repeat {
            batchingOutput = true
            upstreamReadableLoop(u)
            batchingOutput = false
            if out.hasPending { flushClient() }
        } while upstreamGuard.repeatRequested() && fd >= 0 && upstream === u
    }

    private func upstreamReadableLoop(_ u: UpstreamConnection) {
        if respPhase == .tunnel { tunnelFromUpstream(); return }
        while upstream === u {
            if batchingOutput && out.pending > 64 * 1024 {
                // A large response: send what is queued before reading more.
                batchingOutput = false
                flushClient()
                batchingOutput = true
                if fd < 0 || upstream !== u { return }
            }
            if out.pending > ProxyServer.maxPendingOutput {
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
                if respPhase == .body && respBody != .dechunked && respBody != .rechunked && !holdingResponse { relayRaw(p, n) }
            case .informational(let consumed):
                respParserPaused = true
                b.start += consumed   // 1xx (100 Continue) is not forwarded; we answered Expect ourselves
            case .head(let consumed):
                b.start += consumed
                if u.parser.head.status == 101 {
                    // Switching Protocols: only an answer to an Upgrade request; then a raw tunnel.
                    guard parser?.head.isUpgrade == true else {
                        logRequest(.error, "upstream \(u.peer) sent 101 to a request without Upgrade")
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
                if holdingResponse { holdResponsePiece(u, piece); continue }
                if plugins != nil && respPhase == .body { pluginsBodyFilter(piece, last: false) }
                if respBody == .rechunked { relayChunk(piece); continue }
                if respBody == .dechunked {
                    if let pb = piece.baseAddress { relayRaw(pb, piece.count) }
                } else {
                    relayRaw(p, consumed)
                }
            case .messageComplete(let consumed):
                let p = UnsafeRawPointer(b.base + b.start)
                b.start += consumed
                if holdingResponse {
                    finishHeldResponse(u)
                } else if respBody == .rechunked {
                    relayRechunkedEnd()
                } else if respBody != .dechunked {
                    relayRaw(p, consumed)
                }
                guard upstream === u else { return }
                responseComplete(u)
                return
            case .upgrade(let consumed):
                b.start += consumed
                startTunnel(u)
                return
            case .error(let e):
                logRequest(.error, "upstream \(u.peer) sent an invalid response: \(e.reason)")
                upstreamFailed(u, .invalidResponse)
                return
            }
        }
    }

    /// Copies response bytes (already consumed from the upstream buffer, framing included) to the client.
    func relayRaw(_ p: UnsafeRawPointer, _ count: Int) {
        guard count > 0, respPhase == .body else { return }
        if parser?.head.method.isHEAD == true { return }
        out.append(UnsafeRawBufferPointer(start: p, count: count))
        flushClient()
    }

    /// Status line and headers arrived: report passive health and send our response head.
    private func responseHead(_ u: UpstreamConnection) {
        let up = u.parser   // head read in place (no copy of its buffers)
        times.upstreamHeadUs = Clock.monotonicMicros()
        status = up.head.status
        outcome = .passive(status: up.head.status)
        respBody = ResponseBody.classify(status: up.head.status, contentLength: up.head.contentLength,
                                         isChunked: up.head.isChunked, requestIsHEAD: parser?.head.method.isHEAD == true,
                                         clientHTTP10: parser?.head.versionMinor == 0)
        persistence.closeAfterResponse(if: respBody.endsConnection)
        persistence.closeAfterResponse(if: reqPhase != .done)   // upstream answered before the body ended
        if plugins != nil { pluginsHeaderFilter(up) }
        respPhase = .body
        if plugins?.holdResponseBody == true && respBody != .none && startHoldingResponse(u) { return }
        let headStart = out.bytes.count
        server.buildClientResponseHead(self, up, into: &out.bytes)
        if plugins != nil { pluginsLogResponseHead(from: headStart) }
        flushClient()
        guard upstream === u else { return }   // the client went away
        if respBody == .none {
            // llhttp ends a body-less response on its next execute: run it now.
            _ = u.parser.execute(UnsafeRawBufferPointer(start: u.inBuf.base + u.inBuf.start, count: 0))
            responseComplete(u)
        }
    }

    private func responseComplete(_ u: UpstreamConnection) {
        respPhase = .done
        respParserPaused = false
        // (the upstream's timer is not stopped: close() stops it, and a pooled connection's timer finds
        // no client when it fires; armTimer moves the deadline of the next exchange lazily)
        let reusable = u.parser.head.keepAlive && respBody != .closeDelimited && reqPhase == .done && u.inBuf.isEmpty
            && !u.out.hasPending && u.state == .active && !ownBodyPending
        upstream = nil
        if reusable { server.pool.put(u) } else { u.close() }
        finishExchange()
    }

    func upstreamEOF(_ u: UpstreamConnection) {
        if respPhase == .body {
            switch u.parser.finish() {
            case .messageComplete:
                if holdingResponse { finishHeldResponse(u) }
                upstream = nil
                u.close()
                finishExchange()
            default:
                // Truncated body: the client cannot be told in-band; close so it sees the truncation.
                upstream = nil
                u.abort()
                logExchange(status: status)
                close()
            }
            return
        }
        upstreamFailed(u, .closedEarly)
    }

    private func finishExchange() {
        if plugins != nil { pluginsBodyFilter(UnsafeRawBufferPointer(start: nil, count: 0), last: true) }
        attempt.release(decision?.plan, latencyMicros: Int(times.upstreamHeadUs > times.upstreamStartUs
                                                            ? times.upstreamHeadUs - times.upstreamStartUs : 0),
                        outcome: outcome)
        logExchange(status: status)
        endExchange()
    }

    // MARK: WebSocket / Upgrade tunnel

    private func startTunnel(_ u: UpstreamConnection) {
        let rh = u.parser.head
        status = rh.status
        times.upstreamHeadUs = Clock.monotonicMicros()
        outcome = .passive(status: rh.status)
        if plugins != nil { pluginsHeaderFilter(u.parser) }
        let headStart = out.bytes.count
        server.buildClientResponseHead(self, u.parser, into: &out.bytes)
        if plugins != nil { pluginsLogResponseHead(from: headStart) }
        respPhase = .tunnel
        timer.cancel()
        u.cancelTimer()
        // Bytes after the 101 head, from either side, are tunnel data.
        if !u.inBuf.isEmpty {
            out.append(u.inBuf.readable)
            u.inBuf.start = u.inBuf.end
        }
        flushClient()
        if let b = inBuf, !b.isEmpty {
            u.out.append(b.readable)
            b.start = b.end
            u.flush()
        }
        setReadPaused(false)
        u.pauseReading(false)
    }

    func tunnelFromClient() {
        guard let b = inBuf, let u = upstream else { close(); return }
        b.compact()
        if b.freeSpace == 0 || u.out.pending > ProxyServer.maxPendingOutput {
            setReadPaused(true)   // resumed by upstreamDrained (level-triggered: do not spin)
            return
        }
        switch tls == nil ? Socket.read(fd, into: b.base + b.end, count: b.freeSpace) : tlsRead(into: b.base + b.end, count: b.freeSpace) {
        case .bytes(let n):
            b.end += n
            u.out.append(b.readable)
            b.start = b.end
            u.flush()
        case .wouldBlock: return
        case .eof, .error:
            logExchange(status: status)
            upstream = nil
            u.close()
            close()
        }
    }

    func tunnelFromUpstream() {
        guard let u = upstream else { return }
        while true {
            if out.pending > ProxyServer.maxPendingOutput { u.pauseReading(true); return }
            switch u.readAvailable() {
            case .bytes:
                out.append(u.inBuf.readable)
                u.inBuf.start = u.inBuf.end
                flushClient()
                if fd < 0 { return }
            case .wouldBlock: return
            case .eof, .error:
                logExchange(status: status)
                upstream = nil
                u.close()
                persistence = .closing
                if out.hasPending { updateInterest() } else { close() }
                return
            }
        }
    }
}
