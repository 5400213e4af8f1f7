// Active health checks (KONG.md §5.3), run by exactly one process per node: the master, on its
// own libev loop (so probes never block a worker and their count per interval equals the number
// of targets, not targets × workers). Results go into the shared peer table with the same state
// machine as the workers' passive reports (GWBalancer), so every worker sees a transition on its
// next pick. Master-loop confined.
import GWBalancer
import GWConfig
import GWEvent
import GWStore
import GWSystem
import GWTLS

final class ActiveHealthChecker {
    let loop: EventLoop
    let table: PeerStateTable
    let log: ErrorLog
    /// What is due when (GWBalancer.ActiveCheckSchedule: per-state cadence, concurrency cap, timing
    /// kept for addresses that stay across configuration changes). `httpSubsystem: false`: `tcp`
    /// checks are honoured (Kong's HTTP subsystem would turn them off).
    private var schedule = ActiveCheckSchedule(httpSubsystem: false)
    private var inFlight: [PeerSlot: ProbeConnection] = [:]
    private var timer: TimerWatcher!
    /// `https` checks: one client context per https_verify_certificate value (the cosocket trust store,
    /// Kong's `lua_ssl_trusted_certificate` and `lua_ssl_verify_depth`: `trust`) and client certificate
    /// (the upstream's `client_certificate`, as Kong's checker sends it).
    /// Bounded: emptied when it holds `maxTLSContexts`.
    private struct TLSKey: Hashable { var verify: Bool; var client: Certificate? }
    private var tlsContexts: [TLSKey: TLSClientContext] = [:]
    private static let maxTLSContexts = 64
    /// The trust store of verified probes (set at start and on reload; a change drops the contexts).
    var trust = CosocketTLSSettings() {
        didSet { if trust != oldValue { tlsContexts.removeAll() } }
    }
    /// Upstream name → its client certificate (from the last configuration).
    private var clientCertificates: [String: Certificate] = [:]

    private func tlsContext(verify: Bool, upstream: String) -> TLSClientContext? {
        let key = TLSKey(verify: verify, client: clientCertificates[upstream])
        if let c = tlsContexts[key] { return c }
        if tlsContexts.count >= ActiveHealthChecker.maxTLSContexts { tlsContexts.removeAll() }
        do {
            let c = try TLSClientContext(verify: verify, depth: trust.verifyDepth, caPEM: verify ? trust.caPEM : nil,
                                         clientPair: key.client.map { (cert: $0.cert, key: $0.key) })
            tlsContexts[key] = c
            return c
        } catch {
            log.log(.error, "active health checks: could not make the TLS context: \(error)")
            return nil
        }
    }

    init(loop: EventLoop, table: PeerStateTable, log: ErrorLog) {
        self.loop = loop
        self.table = table
        self.log = log
        timer = TimerWatcher(loop: loop) { [unowned self] in self.tick() }
        timer.start(after: 0.1, repeat: 0.1)
    }

    /// Replaces the checked addresses with those of a configuration (resolved by the publisher).
    func configure(snapshot: ConfigSnapshot, resolved: [String: [(ip: String, port: Int)]]) {
        var byUpstream: [String: [Target]] = [:]
        for t in snapshot.targets { byUpstream[t.upstreamID, default: []].append(t) }
        var groups: [(upstream: Upstream, addresses: [ResolvedAddress])] = []
        var certs: [String: Certificate] = [:]
        for c in snapshot.certificates { certs[c.id] = c }
        clientCertificates = [:]
        for u in snapshot.upstreams {
            if let id = u.clientCertificateID, let c = certs[id] { clientCertificates[u.name] = c }
            var list: [ResolvedAddress] = []
            for t in byUpstream[u.id] ?? [] {
                for a in resolved[t.id] ?? [] {
                    guard let slot = table.ensureSlot(upstream: u.name, ip: a.ip, port: a.port),
                          let r = ResolvedAddress(ip: a.ip, port: a.port, weight: t.weight, slot: slot, hostname: t.host)
                    else { continue }
                    list.append(r)
                }
            }
            groups.append((u, list))
        }
        schedule.update(groups, now: loop.now)
        // Probes of addresses that left the configuration are dropped.
        for (slot, conn) in inFlight where !groups.contains(where: { $0.addresses.contains { $0.slot == slot } }) {
            conn.cancel()
            inFlight[slot] = nil
        }
    }

    private func tick() {
        for job in schedule.due(now: loop.now, table: table) {
            guard let addr = SocketAddress(ip: job.address.ipString, port: Int(job.address.port)) else {
                schedule.completed(job)
                continue
            }
            // `https`: the same request over TLS (SNI https_sni, or the host name; verification per
            // https_verify_certificate); a failed handshake counts as a TCP failure, as Kong's checker does.
            let tls = job.kind == .https ? (tlsContext(verify: job.verifyCertificate, upstream: job.upstreamName), job.sni) : nil
            if job.kind == .https && tls?.0 == nil { schedule.completed(job); continue }
            let conn = ProbeConnection(loop: loop, address: addr, request: job.request, tcpOnly: job.kind == .tcp,
                                       timeout: max(0.001, job.timeout), tls: tls.map { ($0.0!, $0.1) }) { [unowned self] outcome in
                self.inFlight[job.slot] = nil
                self.schedule.completed(job)
                if let t = self.table.report(job.slot, outcome, source: .active, policy: job.policy,
                                             now: PeerClock.unixSeconds()) {
                    self.log.log(.warn, "upstream \(job.upstreamName) target \(job.address) changed from \(t.oldStateName) to \(t.newStateName) (active check: \(t.reason.text), outcome \(outcome))")
                }
            }
            inFlight[job.slot] = conn
            conn.start()
        }
    }
}

/// One probe: a fresh TCP connection (TLS for `https`), `GET <path> HTTP/1.0`, read the status line, close.
final class ProbeConnection {
    let loop: EventLoop
    let address: SocketAddress
    let request: [UInt8]
    let tcpOnly: Bool
    let timeout: Double
    let done: (HealthOutcome) -> Void
    private var fd: Int32 = -1
    private var io: IOWatcher?
    private var timer: TimerWatcher?
    private var sent = 0
    private var response: [UInt8] = []
    private var connected = false
    private let tlsSetup: (context: TLSClientContext, sni: String?)?
    private var tls: TLSConnection?

    init(loop: EventLoop, address: SocketAddress, request: [UInt8], tcpOnly: Bool, timeout: Double,
         tls: (context: TLSClientContext, sni: String?)? = nil, done: @escaping (HealthOutcome) -> Void) {
        self.loop = loop; self.address = address; self.request = request; self.tcpOnly = tcpOnly
        self.timeout = timeout; self.done = done; self.tlsSetup = tls
    }

    /// A TLS result as the probe's IOResult; WANT_READ / WANT_WRITE choose the next event to wait for.
    private func tlsIO(_ r: TLSConnection.Result, _ t: TLSConnection) -> IOResult {
        switch r {
        case .bytes(let n): return .bytes(n)
        case .wouldBlock:
            io?.set(events: t.readWantsWrite ? .write : (t.writeWantsRead ? .read : (sent < request.count ? .write : .read)))
            return .wouldBlock
        case .closed: return .eof
        case .failed: return .error(71)
        }
    }

    func start() {
        timer = TimerWatcher(loop: loop) { [unowned self] in self.finish(.timeout) }
        timer!.start(after: timeout)
        switch Socket.connect(to: address) {
        case .connected(let f), .inProgress(let f):
            fd = f
            io = IOWatcher(loop: loop, fd: f, events: .write) { [unowned self] ev in self.handle(ev) }
            io!.start()
        case .failed:
            // Report asynchronously so that the caller's bookkeeping is done first.
            timer?.handler = { [unowned self] in self.finish(.tcpFailure) }
            timer?.start(after: 0)
        }
    }

    private func handle(_ ev: IOEvents) {
        if !connected {
            if Socket.pendingError(fd) != 0 { finish(.tcpFailure); return }
            connected = true
            if tcpOnly { finish(.success); return }
            if let s = tlsSetup {
                guard let t = s.context.connection(fd: fd, sni: s.sni, host: s.sni ?? address.ip) else { finish(.tcpFailure); return }
                tls = t
            }
        }
        if sent < request.count {
            let r = request.withUnsafeBytes { p in
                tls.map { tlsIO($0.write(from: p.baseAddress! + sent, count: request.count - sent), $0) }
                    ?? Socket.write(fd, from: p.baseAddress! + sent, count: request.count - sent)
            }
            switch r {
            case .bytes(let n): sent += n
            case .wouldBlock: return
            default: finish(.tcpFailure); return
            }
            if sent >= request.count { io?.set(events: .read) }
            return
        }
        var buf = [UInt8](repeating: 0, count: 512)
        let r = buf.withUnsafeMutableBytes { p in
            tls.map { tlsIO($0.read(into: p.baseAddress!, count: 512), $0) } ?? Socket.read(fd, into: p.baseAddress!, count: 512)
        }
        switch r {
        case .bytes(let n):
            response += buf[0..<n]
            if response.contains(0x0A) || response.count > 256 { finish(.httpStatus(parseStatus())) }
        case .wouldBlock: return
        case .eof: finish(response.isEmpty ? .tcpFailure : .httpStatus(parseStatus()))
        case .error: finish(.tcpFailure)
        }
    }
    // (A TLS write that completes the handshake may leave the request partly sent: the next writable
    // event sends the rest, as for plain TCP.)

    /// The status of the probe response (GWBalancer.parseProbeStatusLine); 0 = unparsable, which
    /// counts as an HTTP failure.
    private func parseStatus() -> Int { parseProbeStatusLine(response) ?? 0 }

    private func finish(_ o: HealthOutcome) {
        guard timer != nil || io != nil else { return }
        let d = done
        io?.stop(); io = nil
        timer?.stop(); timer = nil
        tls = nil
        if fd >= 0 { Socket.close(fd); fd = -1 }
        d(o)
    }

    func cancel() {
        io?.stop(); io = nil
        timer?.stop(); timer = nil
        tls = nil
        if fd >= 0 { Socket.close(fd); fd = -1 }
    }
}
