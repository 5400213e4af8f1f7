// Pick → connect → next, in one place (≈ nginx's ngx_peer_connection_t {get, free, tries} plus
// ngx_http_upstream_next): `PeerAttempt` holds one request's tries and its balancer lease, decides
// what a failure leads to (`next(after:)`, a pure function), and the ClientConnection extension below
// performs it: pick a peer, take a pooled connection or connect (the one connect switch), and on a
// failure reconnect, pick another peer or answer 502/504.
//
// Invariants: a balancer pick is released exactly once (`leased` is true from pick to release);
// `tries` counts the peers tried for this request, a stale pooled connection retried on a fresh
// connection does not count. Worker-loop confined.
import GWBalancer
import GWHTTP
import GWPlugins
import GWSystem

/// Why an upstream try failed.
enum UpstreamFailure: Equatable {
    case connectFailed(Int32), connectTimeout, writeFailed, readFailed, readTimeout, writeTimeout, closedEarly, invalidResponse

    var isTimeout: Bool {
        switch self {
        case .connectTimeout, .readTimeout, .writeTimeout: return true
        default: return false
        }
    }
}

struct PeerAttempt {
    /// Peers tried for this request (the current one included).
    var tries = 0
    var tried = TriedPeers()
    /// The peer of the current (or last) try; kept after release for the access log and Set-Cookie.
    var choice: PeerChoice?
    /// `choice` holds a balancer pick not yet released.
    private(set) var leased = false
    /// The try of `choice` failed (released as failed); and when the current try began (0: the first
    /// try, which began at ExchangeTimes.upstreamStartUs).
    private(set) var lastTryFailed = false
    var tryStartUs: UInt64 = 0

    /// What the request allows when a try fails (read from the exchange at that moment).
    struct Facts: Equatable {
        /// Part of the response was already sent to the client.
        var responseStarted = false
        /// The connection came from the keep-alive pool and received nothing: the upstream may have
        /// closed it meanwhile.
        var pooledAndSilent = false
        var hasBody = false
        /// The client is still sending the body.
        var bodyInProgress = false
        var bodyForwarded = 0
        var idempotent = true
    }

    /// What a failure leads to.
    enum Next: Equatable {
        /// The response is partly sent: the only signal left is closing the client connection.
        case closeClient
        /// Same peer, fresh connection, the try not counted (a pooled connection the upstream had closed).
        case reconnect
        /// Release the peer (passive health: timeout or TCP failure) and try another one.
        case nextPeer
        /// Release the peer and answer 504 (timed out) or 502.
        case fail
    }

    /// Kong/nginx `proxy_next_upstream error timeout`: retry on another peer while tries remain and the
    /// request can be replayed (nothing of its body sent, or no body; non-idempotent methods only before
    /// anything was sent). An invalid response header (invalid_header) is not retried.
    static func next(after f: UpstreamFailure, tries: Int, retries: Int, _ x: Facts) -> Next {
        if x.responseStarted { return .closeClient }
        // nginx retries a failed cached keep-alive connection without counting the try, but only for
        // errors (the upstream closed it meanwhile), not timeouts.
        var stale = x.pooledAndSilent
        switch f {
        case .connectTimeout, .readTimeout, .writeTimeout, .invalidResponse: stale = false
        default: break
        }
        if stale && ((x.bodyForwarded == 0 && !x.bodyInProgress) || !x.hasBody) { return .reconnect }
        let nothingSent: Bool
        switch f {
        case .connectFailed, .connectTimeout: nothingSent = true
        default: nothingSent = false
        }
        var replayable = nothingSent || (x.bodyForwarded == 0 && x.idempotent)
        if case .invalidResponse = f { replayable = false }
        if tries <= retries && replayable && !(x.hasBody && x.bodyForwarded > 0) { return .nextPeer }
        return .fail
    }

    /// A new request: nothing tried, nothing leased.
    @inline(__always) mutating func reset() {
        tries = 0
        tried = TriedPeers()
        choice = nil
        leased = false
        lastTryFailed = false
        tryStartUs = 0
    }

    /// Asks the plan for a peer not tried yet (left in `choice`); counts the try. False: no peer available.
    @inline(__always) mutating func pick(_ plan: ServicePlan, request: HTTPRequestParser, client: SocketAddress,
                                         captures: [String: String]) -> Bool {
        tries += 1
        guard let c = plan.pick(request: request, client: client, tried: &tried, routeCaptures: captures) else { return false }
        choice = c
        leased = true
        lastTryFailed = false
        return true
    }

    /// Ends the try with the balancer (in-flight count, latency, passive health), once.
    @inline(__always) mutating func release(_ plan: ServicePlan?, latencyMicros: Int?, outcome: HealthOutcome?) {
        guard leased, let c = choice, let plan else { return }
        leased = false
        plan.release(c, latencyMicros: latencyMicros, outcome: outcome)
    }

    /// Releases a failed peer and excludes it from the next picks.
    mutating func releaseFailed(_ plan: ServicePlan?, timedOut: Bool) {
        guard let c = choice else { return }
        lastTryFailed = true
        release(plan, latencyMicros: nil, outcome: timedOut ? .timeout : .tcpFailure)
        if let p = c.pick { tried.insert(p) }
    }
}

extension ClientConnection {
    /// Picks a peer (balancer or direct address) and starts the try: a pooled connection, or a new one.
    func connectToPeer() {
        guard let d = decision, let plan = d.plan, let rp = parser else { return }
        // (the choice stays in `attempt` and is read in place: a copy retains its three Strings)
        guard attempt.pick(plan, request: rp, client: peer, captures: d.captures) else {
            sendError(status: 503, message: plan.pickFailureMessage ?? "failure to get a peer from the ring-balancer",
                      close: false, errorPage: false)
            return
        }
        if let pooled = server.pool.take(attempt.choice!.key) {
            attach(pooled)
            sendRequestHead(pooled)
            return
        }
        openConnection(attempt.choice!, plan)
    }

    /// The connect switch: a new nonblocking connection to `c` (connect_timeout while in progress).
    private func openConnection(_ c: PeerChoice, _ plan: ServicePlan) {
        switch Socket.connect(to: c.address) {
        case .connected(let ufd):
            let u = UpstreamConnection(server: server, fd: ufd, peer: c.address, poolKey: c.key, connecting: false)
            attach(u)
            if let t = plan.tls {
                guard let ctx = server.tlsClientContext(t) else { upstreamFailed(u, .connectFailed(71)); return }
                u.tlsSetup = (ctx, c.sni, c.hostHeader)
                guard u.startTLS() else { upstreamFailed(u, .connectFailed(71)); return }
            }
            u.io.start()
            sendRequestHead(u)
        case .inProgress(let ufd):
            let u = UpstreamConnection(server: server, fd: ufd, peer: c.address, poolKey: c.key, connecting: true)
            attach(u)
            if let t = plan.tls {
                guard let ctx = server.tlsClientContext(t) else { upstreamFailed(u, .connectFailed(71)); return }
                u.tlsSetup = (ctx, c.sni, c.hostHeader)
            }
            u.io.start()
            u.armTimer(Double(plan.service.connectTimeout) / 1000)
        case .failed(let err):
            next(after: .connectFailed(err), pooledAndSilent: false)
        }
    }

    private func attach(_ u: UpstreamConnection) {
        upstream = u
        u.client = self
        u.receivedAny = false
        u.parser.expectResponse(to: parser?.head.method ?? .get)
    }

    /// A failure on the upstream side before or during the response.
    func upstreamFailed(_ u: UpstreamConnection, _ f: UpstreamFailure) {
        guard upstream === u else { u.close(); return }
        upstream = nil
        let pooledAndSilent = u.reused && !u.receivedAny
        u.abort()
        if respPhase != .none {
            logRequest(.error, "upstream \(u.peer) failed while sending the response (\(f))")
        }
        next(after: f, pooledAndSilent: pooledAndSilent)
    }

    /// ngx_http_upstream_next: the one place deciding what follows a failed try.
    private func next(after f: UpstreamFailure, pooledAndSilent: Bool) {
        guard let plan = decision?.plan else { return }
        let method = parser?.head.method ?? .get
        let facts = PeerAttempt.Facts(
            // A body of our own (buffered or replaced) can be sent again: it counts as no body.
            responseStarted: respPhase != .none, pooledAndSilent: pooledAndSilent, hasBody: hasBody && ownBodyLength == nil,
            bodyInProgress: reqPhase == .body, bodyForwarded: ownBodyLength == nil ? bodyForwarded : 0,
            idempotent: !(method == .post || method == .patch || method == .other(9)))   // 9 = LOCK
        switch PeerAttempt.next(after: f, tries: attempt.tries, retries: plan.service.retries, facts) {
        case .closeClient:
            logExchange(status: status)
            close()
        case .reconnect:
            guard let c = attempt.choice else { return }
            openConnection(c, plan)
        case .nextPeer:
            logFailedTry(f)
            attempt.releaseFailed(plan, timedOut: f.isTimeout)
            connectToPeer()
        case .fail:
            logFailedTry(f)
            attempt.releaseFailed(plan, timedOut: f.isTimeout)
            if f.isTimeout {
                sendError(status: 504, message: "The upstream server is timing out", close: reqPhase == .body, errorPage: true)
            } else {
                sendError(status: 502, message: "An invalid response was received from the upstream server",
                          close: reqPhase == .body, errorPage: true)
            }
        }
    }

    /// Kong's tries[]: the failed try (state "failed", 502, or 504 for a timeout) for the log entry; the
    /// next try begins now.
    private func logFailedTry(_ f: UpstreamFailure) {
        let now = Clock.monotonicMicros()
        if plugins?.wantsLogEntry == true, let ctx = plugins, let c = attempt.choice,
           ctx.logFailedTries.count < PluginContext.maxLoggedTries {
            ctx.logFailedTries.append(LogTry(address: c.address, startUs: attempt.tryStartUs > 0 ? attempt.tryStartUs : times.upstreamStartUs,
                                             code: f.isTimeout ? 504 : 502))
        }
        attempt.tryStartUs = now
    }
}
