// Active health checks (KONG.md §5.3), run by exactly one process per node: the master, on its
// own libev loop (so probes never block a worker and their count per interval equals the number
// of targets, not targets × workers). Results go into the shared peer table with the same state
// machine as the workers' passive reports (GWBalancer), so every worker sees a transition on its
// next pick. Master-loop confined.
import GWBalancer
import GWEvent
import GWStore
import GWSystem

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
        for u in snapshot.upstreams {
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
            // No TLS yet: an `https` check is a TCP connect check (documented in the README).
            let conn = ProbeConnection(loop: loop, address: addr, request: job.request, tcpOnly: job.kind != .http,
                                       timeout: max(0.001, job.timeout)) { [unowned self] outcome in
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

/// One probe: a fresh TCP connection, `GET <path> HTTP/1.0`, read the status line, close.
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

    init(loop: EventLoop, address: SocketAddress, request: [UInt8], tcpOnly: Bool, timeout: Double,
         done: @escaping (HealthOutcome) -> Void) {
        self.loop = loop; self.address = address; self.request = request; self.tcpOnly = tcpOnly
        self.timeout = timeout; self.done = done
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
        }
        if sent < request.count {
            let r = request.withUnsafeBytes { Socket.write(fd, from: $0.baseAddress! + sent, count: request.count - sent) }
            switch r {
            case .bytes(let n): sent += n
            case .wouldBlock: return
            default: finish(.tcpFailure); return
            }
            if sent >= request.count { io?.set(events: .read) }
            return
        }
        var buf = [UInt8](repeating: 0, count: 512)
        let r = buf.withUnsafeMutableBytes { Socket.read(fd, into: $0.baseAddress!, count: 512) }
        switch r {
        case .bytes(let n):
            response += buf[0..<n]
            if response.contains(0x0A) || response.count > 256 { finish(.httpStatus(parseStatus())) }
        case .wouldBlock: return
        case .eof: finish(response.isEmpty ? .tcpFailure : .httpStatus(parseStatus()))
        case .error: finish(.tcpFailure)
        }
    }

    /// The status of the probe response (GWBalancer.parseProbeStatusLine); 0 = unparsable, which
    /// counts as an HTTP failure.
    private func parseStatus() -> Int { parseProbeStatusLine(response) ?? 0 }

    private func finish(_ o: HealthOutcome) {
        guard timer != nil || io != nil else { return }
        let d = done
        io?.stop(); io = nil
        timer?.stop(); timer = nil
        if fd >= 0 { Socket.close(fd); fd = -1 }
        d(o)
    }

    func cancel() {
        io?.stop(); io = nil
        timer?.stop(); timer = nil
        if fd >= 0 { Socket.close(fd); fd = -1 }
    }
}
