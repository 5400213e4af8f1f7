import GWStore

/// How an active probe talks to a target (`healthchecks.active.type`; grpc/grpcs are probed as http/https since
/// lua-resty-healthcheck only knows http, https and tcp).
public enum ProbeKind: Sendable, Equatable {
    case tcp      // success = connected
    case http
    case https

    public init(kongType: String) {
        switch kongType {
        case "tcp": self = .tcp
        case "https", "grpcs": self = .https
        default: self = .http
        }
    }
}

/// One probe the master's event loop must run now: connect to `address` (timeout `timeout` seconds for connect,
/// send and receive), for http/https send `request`, read the status line, close; then call
/// `table.report(job.slot, outcome, source: .active, policy: job.policy, now:)` and `schedule.completed(job)`.
public struct ProbeJob: Sendable {
    public var slot: PeerSlot
    public var upstreamName: String
    public var address: PeerAddress
    public var hostname: String?
    public var kind: ProbeKind
    public var timeout: Double
    /// `GET <http_path> HTTP/1.0` + headers + Host (empty for tcp).
    public var request: [UInt8]
    /// TLS SNI for https: `https_sni`, else the upstream's host_header, else the target hostname (nil for an IP).
    public var sni: String?
    public var verifyCertificate: Bool
    public var policy: HealthPolicy
}

/// Which active probes are due (KONG.md §5.3), as pure logic over the configuration and a clock; the master does
/// the socket I/O. Per address: HEALTHY (incl. mostly_healthy) addresses every `active.healthy.interval` s,
/// UNHEALTHY ones every `active.unhealthy.interval` s (read from the shared table, so passive ejections switch
/// cadence at once); interval 0 = that set is not probed; the first probe comes one interval after the address
/// appears; weight-0 addresses are not probed; at most `active.concurrency` probes of one upstream in flight.
///
/// `update` keeps the timing of addresses that stay (keyed by slot = upstream name + address), so upstream PATCH,
/// target CRUD and reloads never stop or reset probing of the others (Kong issues #5531, #7566, #7652).
public struct ActiveCheckSchedule: Sendable {
    struct Group: Sendable {
        var upstreamName: String
        var healthyInterval: Double
        var unhealthyInterval: Double
        var concurrency: Int
        var inFlight: Int
        var kind: ProbeKind
        var timeout: Double
        var httpPath: String
        var headers: [String: [String]]?
        var hostHeader: String?
        var sni: String?
        var verify: Bool
        var policy: HealthPolicy
    }
    struct Entry: Sendable {
        var slot: PeerSlot
        var group: Int
        var address: PeerAddress
        var hostname: String?
        var lastProbe: Double
        var inFlight: Bool
    }

    private var groups: [Group] = []
    private var entries: [Entry] = []
    private var bySlot: [PeerSlot: Int] = [:]
    /// Kong's HTTP subsystem turns `active.type = tcp` checks off (intervals forced to 0).
    public var httpSubsystem: Bool

    public init(httpSubsystem: Bool = true) { self.httpSubsystem = httpSubsystem }

    /// Number of addresses under active checks.
    public var count: Int { entries.count }

    /// Replaces the set of checked addresses with those of a new configuration. `now` is the schedule's clock
    /// (any monotonic seconds, the same one passed to `due`).
    public mutating func update(_ upstreams: [(upstream: Upstream, addresses: [ResolvedAddress])], now: Double) {
        var newGroups: [Group] = []
        var newEntries: [Entry] = []
        var newBySlot: [PeerSlot: Int] = [:]
        for (up, addrs) in upstreams {
            let a = up.healthchecks.active
            var hi = max(0, a.healthyInterval), ui = max(0, a.unhealthyInterval)
            let kind = ProbeKind(kongType: a.type)
            if httpSubsystem && kind == .tcp { hi = 0; ui = 0 }
            guard hi > 0 || ui > 0 else { continue }
            let g = newGroups.count
            newGroups.append(Group(upstreamName: up.name, healthyInterval: hi, unhealthyInterval: ui,
                                   concurrency: max(1, a.concurrency), inFlight: 0, kind: kind,
                                   timeout: a.timeout, httpPath: a.httpPath, headers: a.headers,
                                   hostHeader: up.hostHeader, sni: a.httpsSni, verify: a.httpsVerifyCertificate,
                                   policy: HealthPolicy(up.healthchecks)))
            for r in addrs where r.weight > 0 && newBySlot[r.slot] == nil {
                var e = Entry(slot: r.slot, group: g, address: r.address, hostname: r.hostname, lastProbe: now,
                              inFlight: false)
                if let old = bySlot[r.slot] {
                    e.lastProbe = entries[old].lastProbe
                    e.inFlight = entries[old].inFlight
                    if e.inFlight { newGroups[g].inFlight += 1 }
                }
                newBySlot[r.slot] = newEntries.count
                newEntries.append(e)
            }
        }
        groups = newGroups
        entries = newEntries
        bySlot = newBySlot
    }

    /// `update` from the master's per-upstream address lists (`PeerStateTable.addresses(for:insert:)`).
    public mutating func update(_ upstreams: [UpstreamAddresses], now: Double) {
        update(upstreams.map { (upstream: $0.upstream, addresses: $0.addresses) }, now: now)
    }

    /// The probes due at `now` (marked in flight; their next probe is one interval after this dispatch).
    public mutating func due(now: Double, table: PeerStateTable) -> [ProbeJob] {
        var jobs: [ProbeJob] = []
        for i in entries.indices where !entries[i].inFlight {
            let g = entries[i].group
            guard groups[g].inFlight < groups[g].concurrency else { continue }
            let interval = table.isHealthy(entries[i].slot) ? groups[g].healthyInterval : groups[g].unhealthyInterval
            guard interval > 0, now >= entries[i].lastProbe + interval else { continue }
            entries[i].inFlight = true
            entries[i].lastProbe = now
            groups[g].inFlight += 1
            jobs.append(job(entries[i], groups[g]))
        }
        return jobs
    }

    /// Earliest time something could become due (for the master's timer); nil when nothing is scheduled.
    public func nextDeadline(table: PeerStateTable) -> Double? {
        var best: Double? = nil
        for e in entries where !e.inFlight {
            let g = groups[e.group]
            let interval = table.isHealthy(e.slot) ? g.healthyInterval : g.unhealthyInterval
            guard interval > 0 else { continue }
            let t = e.lastProbe + interval
            if best == nil || t < best! { best = t }
        }
        return best
    }

    /// A probe finished (whatever its outcome): frees its concurrency slot.
    public mutating func completed(_ job: ProbeJob) {
        guard let i = bySlot[job.slot], entries[i].inFlight else { return }
        entries[i].inFlight = false
        groups[entries[i].group].inFlight -= 1
    }

    private func job(_ e: Entry, _ g: Group) -> ProbeJob {
        let host: String
        if let h = g.hostHeader {
            host = h
        } else if let h = e.hostname {
            host = h.contains(":") && !h.hasPrefix("[") ? "[\(h)]" : h      // bare IPv6 literal
        } else {
            host = e.address.family == 6 ? "[\(e.address.ipString)]" : e.address.ipString
        }
        let request = g.kind == .tcp ? [] : buildProbeRequest(path: g.httpPath, headers: g.headers, host: host)
        // lua-resty-healthcheck: https_sni or host header or target hostname (IP literals get no SNI).
        let sni: String? = g.kind == .https
            ? (g.sni ?? g.hostHeader ?? e.hostname.flatMap { PeerAddress(ip: $0, port: 0) == nil ? $0 : nil }) : nil
        return ProbeJob(slot: e.slot, upstreamName: g.upstreamName, address: e.address, hostname: e.hostname,
                        kind: g.kind, timeout: g.timeout, request: request, sni: sni, verifyCertificate: g.verify,
                        policy: g.policy)
    }
}

/// The active probe request (lua-resty-healthcheck): `GET <path> HTTP/1.0\r\n`, one `Name: value\r\n` line per
/// configured header value (names sorted for a stable byte image), `User-Agent: gateway-healthcheck` (so that
/// upstream logs can tell probes from traffic), `Host: <host>\r\n\r\n`. `host` is the upstream's `host_header`,
/// else the target hostname, else the IP.
public func buildProbeRequest(path: String, headers: [String: [String]]?, host: String) -> [UInt8] {
    var s = "GET \(path.isEmpty ? "/" : path) HTTP/1.0\r\n"
    if let headers {
        for name in headers.keys.sorted() {
            for v in headers[name]! { s += "\(name): \(v)\r\n" }
        }
    }
    s += "User-Agent: gateway-healthcheck\r\nHost: \(host)\r\n\r\n"
    return Array(s.utf8)
}

/// Parses a probe response's status line, `^HTTP/\d+\.\d+\s+(\d+)`; nil when it does not match (report
/// `.httpStatus(0)`: an HTTP failure). Only the start of `bytes` is examined.
public func parseProbeStatusLine(_ bytes: UnsafeRawBufferPointer) -> Int? {
    let n = bytes.count
    guard n >= 5, bytes[0] == 0x48, bytes[1] == 0x54, bytes[2] == 0x54, bytes[3] == 0x50, bytes[4] == 0x2F
    else { return nil }                                         // "HTTP/"
    var i = 5
    @inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    @inline(__always) func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
    guard i < n, isDigit(bytes[i]) else { return nil }
    while i < n, isDigit(bytes[i]) { i += 1 }
    guard i < n, bytes[i] == 0x2E else { return nil }           // "."
    i += 1
    guard i < n, isDigit(bytes[i]) else { return nil }
    while i < n, isDigit(bytes[i]) { i += 1 }
    guard i < n, isSpace(bytes[i]) else { return nil }
    while i < n, isSpace(bytes[i]) { i += 1 }
    guard i < n, isDigit(bytes[i]) else { return nil }
    var status = 0
    while i < n, isDigit(bytes[i]) {
        status = min(status * 10 + Int(bytes[i] - 0x30), 999_999_999)
        i += 1
    }
    return status
}

/// `parseProbeStatusLine` over a byte array.
public func parseProbeStatusLine(_ bytes: [UInt8]) -> Int? {
    bytes.withUnsafeBytes { parseProbeStatusLine($0) }
}
