// Responses the gateway generates itself (Kong error pages: 4xx for bad requests and router misses,
// 502/503/504 for upstream trouble; plugin exits go through sendGenerated too), and the
// early-answer rule for an unread request body.
// Invariant: an early answer either discards the rest of the body and keeps the connection, or
// closes it after the answer (EarlyAnswer); the exchange ends here (balancer lease released, upstream
// aborted, plugins' header_filter/body_filter/log run, one access-log line). Worker-loop confined.
import GWHTTP
import GWSystem

extension ClientConnection {
    /// Sends a Kong error response. `errorPage`: nginx error_page semantics (Accept, then
    /// Content-Type, then error_default_type); otherwise kong.response.error (Accept, JSON default).
    func sendError(status st: Int, message: String, logStatus: Int? = nil, close closeAfter: Bool, errorPage: Bool,
                   connection: String? = nil, extraHeaders: [(String, String)] = []) {
        sendGenerated(status: st, logStatus: logStatus, close: closeAfter) { c, keep, out in
            let head = c.parser?.head
            var accept: String? = nil
            var contentType: String? = nil
            var isHead = false
            if let head, head.target.count > 0 || head.headers.count > 0 {
                accept = head.headers.first("accept")
                contentType = head.headers.first("content-type")
                isHead = head.method == .head
            }
            let settings = c.server.settings
            KongErrorResponse.build(into: &out, status: st, message: message,
                                    requestID: c.requestID.string,
                                    accept: accept, contentType: contentType, isHEAD: isHead,
                                    defaultType: errorPage ? settings.errorDefaultType : nil,
                                    serverToken: settings.serverTokens ? c.server.serverToken : nil,
                                    keepAlive: keep, connection: keep ? connection : nil,
                                    date: String(decoding: c.server.httpDate(), as: UTF8.self),
                                    responseLatency: settings.latencyTokens ? c.responseLatencyMillis : nil,
                                    extraHeaders: extraHeaders)
        }
    }

    /// Milliseconds since the request started (X-Kong-Response-Latency).
    var responseLatencyMillis: Int { Int((Clock.monotonicMicros() - times.requestStartUs) / 1000) }

    /// Ends the exchange with a response written by `write(connection, keepAlive, into)`.
    /// `runsPlugins` false: the caller wrote the plugins' part itself (a direct proxy-cache Hit).
    func sendGenerated(status st: Int, logStatus: Int?, close closeAfter: Bool, runsPlugins: Bool = true,
                       _ write: (ClientConnection, Bool, inout FlatArray<UInt8>) -> Void) {
        guard fd >= 0 else { return }
        if !reqPhase.isActive { startRequestClock() }
        status = logStatus ?? st
        let discard = EarlyAnswer.discardsBody(request: reqPhase, closeRequested: closeAfter,
                                               expectsContinue: parser?.head.expectsContinue ?? false,
                                               continueSent: continueSent)
        persistence.closeAfterResponse(if: EarlyAnswer.closes(request: reqPhase, closeRequested: closeAfter, discards: discard))
        persistence.closeAfterResponse(if: server.draining)
        let keep = persistence.isKeepAlive
        let start = out.bytes.count
        write(self, keep, &out.bytes)
        if runsPlugins && plugins != nil { pluginsOnGenerated(status: st == 494 ? 400 : st, headStart: start) }
        attempt.release(decision?.plan, latencyMicros: nil, outcome: nil)
        upstream?.abort()
        upstream = nil
        if discard && keep { discarding = true }
        logExchange(status: status)
        flushClient()
        if fd >= 0 { endExchange() }
    }
}
