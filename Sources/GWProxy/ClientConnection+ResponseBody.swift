// A response body held whole for a plugin that rewrites it (response-transformer's JSON lists, Kong's
// body_filter with get_raw_body / set_raw_body): when a header_filter sets holdResponseBody, the client's
// response head waits; decoded body pieces collect in `heldBody` up to response_transformer_max_body_size;
// at the end the plugins transform it and the head goes out with our own Content-Length, then the body.
// A body that outgrows the bound (or declares a larger Content-Length) is released untouched: the
// original head, what was held (as one chunk of ours when the upstream was chunked), then the rest
// relayed as before (re-chunked: respBody .rechunked), and a warning is logged.
//
// Invariants: while holdingResponse nothing of the response reaches the client; heldBody never grows
// past the bound; the body_filter observers see the final body once (not the pieces). Worker-loop confined.
import GWHTTP
import GWPlugins
import GWSystem

extension ClientConnection {
    /// The head arrived and a plugin asked for the body: true when holding starts (the head waits).
    func startHoldingResponse(_ u: UpstreamConnection) -> Bool {
        let limit = server.settings.responseHoldLimit
        if let cl = u.parser.head.contentLength, cl > limit {
            logRequest(.warn, "response body of \(cl) bytes is larger than response_transformer_max_body_size (\(limit)): relayed untransformed")
            return false
        }
        holdingResponse = true
        heldBody.removeAll(keepingCapacity: true)
        return true
    }

    /// One decoded piece while holding; past the bound the hold is released.
    func holdResponsePiece(_ u: UpstreamConnection, _ piece: UnsafeRawBufferPointer) {
        heldBody.append(contentsOf: piece)
        guard heldBody.count > server.settings.responseHoldLimit else { return }
        logRequest(.warn, "response body larger than response_transformer_max_body_size (\(server.settings.responseHoldLimit)): relayed untransformed")
        holdingResponse = false
        let headStart = out.bytes.count
        server.buildClientResponseHead(self, u.parser, into: &out.bytes)
        if plugins != nil { pluginsLogResponseHead(from: headStart) }
        if plugins != nil { heldBody.withUnsafeBytes { pluginsBodyFilter($0, last: false) } }
        if u.parser.head.isChunked && respBody == .framed {
            respBody = .rechunked
            heldBody.withUnsafeBytes { relayChunk($0) }
        } else if let base = heldBody.withUnsafeBytes({ $0.baseAddress }) {
            // relayRaw copies synchronously; the array is not changed meanwhile.
            relayRaw(base, heldBody.count)
        }
        heldBody.removeAll(keepingCapacity: true)
    }

    /// The held body is complete: transform it, then send the head with our Content-Length and the body.
    func finishHeldResponse(_ u: UpstreamConnection) {
        holdingResponse = false
        var body = heldBody
        if let ctx = plugins {
            if let t = PluginRuntime.transformResponseBody(ctx, heldBody) { body = t }
            if let w = ctx.warning { logRequest(.warn, w); ctx.warning = nil }
        }
        ownResponseLength = body.count
        let headStart = out.bytes.count
        server.buildClientResponseHead(self, u.parser, into: &out.bytes)
        if plugins != nil { pluginsLogResponseHead(from: headStart) }
        ownResponseLength = nil
        if plugins != nil { body.withUnsafeBytes { pluginsBodyFilter($0, last: false) } }
        out.append(body)
        heldBody.removeAll(keepingCapacity: true)
        flushClient()
    }

    /// A decoded piece as one chunk of ours (respBody .rechunked).
    func relayChunk(_ piece: UnsafeRawBufferPointer) {
        guard piece.count > 0, respPhase == .body else { return }
        out.appendChunk(piece)
        flushClient()
    }

    func relayRechunkedEnd() {
        HTTPWriter.append("0\r\n\r\n", into: &out.bytes)
        flushClient()
    }

    func releaseHeldBody() {
        holdingResponse = false
        heldBody = []
    }
}
