// The request body's way upstream (RequestBodyMode, chosen in ClientConnection.beginRequest):
//   stream    a Content-Length body relayed piece by piece as it arrives (forwardBody)
//   rechunk   a chunked body relayed as it arrives, each decoded piece re-framed as one chunk of ours
//   buffer    read whole into a RequestBodyBuffer (memory, then a temp file) before the upstream is
//             contacted, then sent with our own Content-Length (pumpBody); when a plugin reads the body
//             (key-auth key_in_body, request-transformer bodies) the access phase runs once it is read
// A body a plugin replaced (PluginContext.replacedBody) is sent the same way as a buffered one.
//
// Invariants: the client's chunk sizes, extensions and trailers never reach the upstream; a buffered
// body is sent in slices of at most ProxyServer.maxPendingOutput queued bytes (bodyPump guards the
// re-entry from UpstreamConnection.flush → upstreamDrained); an upstream connection whose request
// body was not completely sent is never pooled (ProxyExchange.responseComplete). Worker-loop confined.
import GWHTTP
import GWPlugins
import GWSystem

extension ClientConnection {
    /// The length of the body we send with our own Content-Length: a plugin's replacement, or the
    /// buffered body; nil when the client's body (if any) is relayed as it arrives.
    @inline(__always) var ownBodyLength: Int? {
        if bodyMode == .buffer { return plugins?.replacedBody?.count ?? bodyBuffer?.length ?? 0 }
        if let ctx = plugins, let r = ctx.replacedBody { return r.count }
        return nil
    }

    /// Part of our own body is still to be queued to the upstream.
    var ownBodyPending: Bool {
        guard let n = ownBodyLength else { return false }
        return bodySent < n
    }

    // MARK: reading

    /// Starts reading the whole body (bodyMode .buffer): 100 Continue if asked, client_body_timeout.
    func startBuffering(_ rp: HTTPRequestParser) {
        if bodyBuffer == nil { bodyBuffer = server.bodyBufferPool.take() }
        if rp.head.expectsContinue && rp.head.versionMinor >= 1 && !continueSent {   // nginx ignores Expect on HTTP/1.0
            HTTPWriter.append("HTTP/1.1 100 Continue\r\n\r\n", into: &out.bytes)
            continueSent = true
            flushClient()
        }
        armClientTimer(.body)
    }

    /// One decoded piece of the request body (chunk framing already removed by the parser).
    func requestBodyPiece(_ piece: UnsafeRawBufferPointer) {
        guard piece.count > 0 else { return }
        if let ctx = plugins, ctx.requestBodyLimit > 0, let p = parser, p.bodyBytesSeen > ctx.requestBodyLimit {
            // request-size-limiting without Content-Length: counted as it arrives, refused at once.
            upstream?.abort()
            upstream = nil
            if respPhase != .none { logExchange(status: status); close(); return }
            sendError(status: ctx.requestBodyLimitStatus, message: "Request size limit exceeded", close: true, errorPage: false)
            return
        }
        switch bodyMode {
        case .buffer:
            armClientTimer(.body)
            guard let b = bodyBuffer, b.append(piece) else {
                logRequest(.crit, bodyBuffer?.failure ?? "request body buffer missing")
                sendError(status: 500, message: "An unexpected error occurred", close: true, errorPage: true)
                return
            }
        case .rechunk:
            forwardChunk(piece)
        case .stream, .none:
            forwardBody(piece.baseAddress!, piece.count)
        }
    }

    /// The request body ended: the last chunk of ours when re-chunking.
    func requestBodyEnd() {
        guard bodyMode == .rechunk, let u = upstream else { return }
        HTTPWriter.append("0\r\n\r\n", into: &u.out.bytes)
        if u.flush(), upstream === u { armUpstreamTimer(u) }
    }

    /// `piece` as one chunk of our own: hex size, CRLF, data, CRLF.
    private func forwardChunk(_ piece: UnsafeRawBufferPointer) {
        guard let u = upstream else { return }
        u.out.appendChunk(piece)
        bodyForwarded += piece.count
        armClientTimer(.body)
        if u.flush(), upstream === u { armUpstreamTimer(u) }
    }

    /// The buffered body is read: run the access phase if it waited for the body, then go upstream.
    func bufferedBodyRead() {
        guard let d = decision, let rp = parser else { return }
        if accessAfterBody {
            accessAfterBody = false
            if let ctx = plugins {
                let exited: Bool
                if let b = bodyBuffer, b.inMemory {
                    exited = b.memory.withUnsafeBytes { bytes in
                        ctx.attachRequestBody(bytes, state: .available, length: b.length)
                        defer { ctx.attachRequestBody(UnsafeRawBufferPointer(start: nil, count: 0), state: .none, length: b.length) }
                        return runAccess(d, rp)
                    }
                } else {
                    // Kong: "request body did not fit into client body buffer"; plugins see no body.
                    ctx.attachRequestBody(UnsafeRawBufferPointer(start: nil, count: 0), state: .tooLarge, length: bodyBuffer?.length)
                    exited = runAccess(d, rp)
                }
                if accessPending { accessAfterBodyPending = true }   // accessReady goes on
                if exited { return }
            }
            guard d.plan != nil else {
                sendError(status: 503, message: "no Service found with those values", close: false, errorPage: false)
                return
            }
        }
        times.upstreamStartUs = Clock.monotonicMicros()
        connectToPeer()
    }

    // MARK: sending

    /// Queues the next slices of our own body and writes them, until the upstream stops taking bytes
    /// or the body is all queued (resumed by upstreamDrained).
    func pumpBody(_ u: UpstreamConnection) {
        guard bodyPump.enter() else { return }
        defer { bodyPump.leave() }
        repeat {
            guard let total = ownBodyLength else { return }
            while bodySent < total && u.out.pending < ProxyServer.maxPendingOutput {
                if let r = plugins?.replacedBody {
                    r.withUnsafeBytes { u.out.append(UnsafeRawBufferPointer(rebasing: $0[bodySent...])) }
                    bodySent = total
                } else if let b = bodyBuffer {
                    let n = b.copy(from: bodySent, max: 64 * 1024, into: &u.out.bytes)
                    if n == 0 {
                        logRequest(.crit, "could not read the buffered request body back from its temp file")
                        upstreamFailed(u, .writeFailed)
                        return
                    }
                    bodySent += n
                } else {
                    return
                }
            }
            guard u.flush(), upstream === u else { return }
        } while bodyPump.repeatRequested()
    }

    /// The exchange ended: the body buffer goes back to the pool.
    func releaseBody() {
        bodyMode = .none
        accessAfterBody = false
        if let b = bodyBuffer {
            server.bodyBufferPool.give(b)
            bodyBuffer = nil
        }
    }
}
