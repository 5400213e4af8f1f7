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
    private struct Key: Hashable { var upstream: String; var ip: String; var port: Int }

    private final class Probe {
        let key: Key
        var upstream: Upstream
        var policy: HealthPolicy
        var hostHeader: String
        let slot: PeerSlot
        var nextDue: Double
        var inFlight: ProbeConnection?
        init(key: Key, upstream: Upstream, policy: HealthPolicy, hostHeader: String, slot: PeerSlot, nextDue: Double) {
            self.key = key; self.upstream = upstream; self.policy = policy; self.hostHeader = hostHeader
            self.slot = slot; self.nextDue = nextDue
        }
    }

    let loop: EventLoop
    let table: PeerStateTable
    let log: ErrorLog
    private var probes: [Key: Probe] = [:]
    private var timer: TimerWatcher!
    /// Probes started (for tests: probe count per interval = number of targets).
    private(set) var probesStarted: UInt64 = 0

    init(loop: EventLoop, table: PeerStateTable, log: ErrorLog) {
        self.loop = loop
        self.table = table
        self.log = log
        timer = TimerWatcher(loop: loop) { [unowned self] in self.tick() }
        timer.start(after: 0.1, repeat: 0.1)
    }

    /// Rebuilds the probe list from a configuration; state and schedules of unchanged targets stay.
    func configure(snapshot: ConfigSnapshot, resolved: [String: [(ip: String, port: Int)]]) {
        var next: [Key: Probe] = [:]
        let now = loop.now
        var byID: [String: Upstream] = [:]
        for u in snapshot.upstreams { byID[u.id] = u }
        for t in snapshot.targets where t.weight > 0 {
            guard let u = byID[t.upstreamID] else { continue }
            let a = u.healthchecks.active
            guard a.healthyInterval > 0 || a.unhealthyInterval > 0 else { continue }
            guard a.type == "http" || a.type == "tcp" || a.type == "https" else { continue }
            // lua-resty-healthcheck: `Host: <hostheader or hostname or ip>` — no port (KONG.md §5.3).
            let defaultHost = t.host.contains(":") && !t.host.hasPrefix("[") ? "[\(t.host)]" : t.host
            for addr in resolved[t.id] ?? [] {
                let key = Key(upstream: u.name, ip: addr.ip, port: addr.port)
                guard let slot = table.ensureSlot(upstream: u.name, ip: addr.ip, port: addr.port) else { continue }
                let policy = HealthPolicy(u.healthchecks)
                if let p = probes[key] {
                    p.upstream = u
                    p.policy = policy
                    p.hostHeader = u.hostHeader ?? defaultHost
                    next[key] = p
                } else {
                    let interval = table.isHealthy(slot) ? a.healthyInterval : a.unhealthyInterval
                    next[key] = Probe(key: key, upstream: u, policy: policy, hostHeader: u.hostHeader ?? defaultHost,
                                      slot: slot, nextDue: now + (interval > 0 ? interval : a.unhealthyInterval))
                }
            }
        }
        for (k, p) in probes where next[k] == nil { p.inFlight?.cancel() }
        probes = next
    }

    private func tick() {
        let now = loop.now
        var inFlightPerUpstream: [String: Int] = [:]
        for p in probes.values where p.inFlight != nil { inFlightPerUpstream[p.key.upstream, default: 0] += 1 }
        for p in probes.values where p.inFlight == nil && p.nextDue <= now {
            let a = p.upstream.healthchecks.active
            let interval = table.isHealthy(p.slot) ? a.healthyInterval : a.unhealthyInterval
            if interval <= 0 {
                // Probing is off for targets in this state; look again later (state may change).
                p.nextDue = now + 0.5
                continue
            }
            if inFlightPerUpstream[p.key.upstream, default: 0] >= max(1, a.concurrency) { continue }
            inFlightPerUpstream[p.key.upstream, default: 0] += 1
            start(p, now: now)
        }
    }

    private func start(_ p: Probe, now: Double) {
        probesStarted += 1
        let a = p.upstream.healthchecks.active
        var request: [UInt8] = []
        if a.type != "tcp" {
            var s = "GET \(a.httpPath) HTTP/1.0\r\n"
            for (name, values) in (a.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
                for v in values { s += "\(name): \(v)\r\n" }
            }
            s += "Host: \(p.hostHeader)\r\nUser-Agent: gateway-healthcheck\r\n\r\n"
            request = Array(s.utf8)
        }
        guard let addr = SocketAddress(ip: p.key.ip, port: p.key.port) else { return }
        let conn = ProbeConnection(loop: loop, address: addr, request: request, tcpOnly: a.type == "tcp",
                                   timeout: max(0.001, a.timeout)) { [unowned self, unowned p] outcome in
            p.inFlight = nil
            self.finished(p, outcome)
        }
        p.inFlight = conn
        conn.start()
    }

    private func finished(_ p: Probe, _ outcome: HealthOutcome) {
        if let t = table.report(p.slot, outcome, source: .active, policy: p.policy, now: PeerClock.unixSeconds()) {
            log.log(.warn, "upstream \(p.key.upstream) target \(p.key.ip):\(p.key.port) changed from \(t.oldStateName) to \(t.newStateName) (active check: \(t.reason.text), outcome \(outcome))")
        }
        let a = p.upstream.healthchecks.active
        let interval = table.isHealthy(p.slot) ? a.healthyInterval : a.unhealthyInterval
        p.nextDue = loop.now + (interval > 0 ? interval : 0.5)
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

    /// `^HTTP/\d+\.\d+\s+(\d+)`; 0 when the status line does not parse (an HTTP failure).
    private func parseStatus() -> Int {
        let s = String(decoding: response.prefix(while: { $0 != 0x0A }), as: UTF8.self)
        guard s.hasPrefix("HTTP/") else { return 0 }
        let parts = s.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].count >= 8, let code = Int(parts[1].prefix(3)), (100...999).contains(code) else { return 0 }
        return code
    }

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
