// One configuration generation as the data path uses it: the compiled router, and per service a
// plan saying how to reach it (a balancer over an upstream's targets, or the service host's
// addresses). Immutable after init; a worker swaps whole RuntimeConfigs and in-flight requests
// keep the one they started with.
import GWBalancer
import GWHTTP
import GWJSON
import GWPlugins
import GWRouter
import GWStore
import GWSystem

/// One peer a service is proxied to (a balancer address, or a direct service's resolved address), computed
/// once per configuration so that a pick formats nothing. A class: a choice holds a reference to it (one
/// retain), not a copy of its address and Strings (a 168-byte copy and three String retains per request).
final class PeerTarget {
    let address: SocketAddress
    let key: PeerKey
    let host: String           // Host sent upstream unless preserve_host
    /// https services: the name sent as SNI and checked against the certificate (nil: an IP address).
    let sni: String?

    init(address: SocketAddress, key: PeerKey, host: String, sni: String?) {
        self.address = address
        self.key = key
        self.host = host
        self.sni = sni
    }
}

/// The peer chosen for one try.
struct PeerChoice {
    let target: PeerTarget
    var pick: PeerPick?        // nil for a service without upstream
    var address: SocketAddress { target.address }
    var key: PeerKey { target.key }
    var hostHeader: String { target.host }
    var sni: String? { target.sni }
    /// `hash_on = cookie` and the request had no such cookie: the value of the `Set-Cookie` response header
    /// Kong adds (`<name>=<uuid>; Path=<hash_on_cookie_path>; Same-Site=Lax; HttpOnly`); the request was
    /// hashed on that new uuid, so the client's next requests (with the cookie) reach the same target.
    var setCookie: String? = nil
}

/// The TLS side of an https service (KONG-TLS-CLUSTER.md A.3): verification when `verify`, up to
/// `depth`, against the service's `ca_certificates` (their PEM texts, `caPEM`) or else the system CA
/// store; `clientCertificate` (the service's, else its upstream's) for mTLS. Kong never resumes
/// upstream sessions (neither do we). The pool key and the client context follow the contents, so a
/// replaced CA or client certificate never reuses a connection or context made with the old one.
struct UpstreamTLS: Hashable {
    let verify: Bool
    let depth: Int
    var caPEM: String? = nil
    var clientCertificate: Certificate? = nil

    /// The setting of service `s` (nil: not https). `cas`/`certs`: the configuration's entities by id.
    static func of(_ s: Service, upstream: Upstream?, cas: [String: String], certs: [String: Certificate]) -> UpstreamTLS? {
        guard s.protocolName == "https" else { return nil }
        var t = UpstreamTLS(verify: s.tlsVerify ?? false, depth: s.tlsVerifyDepth ?? 1)
        if let ids = s.caCertificateIDs, !ids.isEmpty {
            let pems = ids.compactMap { cas[$0] }
            if !pems.isEmpty { t.caPEM = pems.joined(separator: "\n") }
        }
        if let id = s.clientCertificateID ?? upstream?.clientCertificateID { t.clientCertificate = certs[id] }
        return t
    }

    /// A host name as SNI: nil for an IP literal (Kong sends none).
    static func sni(for host: String) -> String? {
        var h = Substring(host)
        if h.hasPrefix("["), let close = h.firstIndex(of: "]") { h = h[h.index(after: h.startIndex) ..< close] }
        if SocketAddress(ip: String(h), port: 0) != nil { return nil }
        if let colon = h.lastIndex(of: ":"), !h.contains("[") { h = h[..<colon] }
        return SocketAddress(ip: String(h), port: 0) != nil || h.isEmpty ? nil : String(h)
    }

    /// The pool-key discriminator: a pooled connection never serves another SNI or trust setting.
    func keyID(sni: String?) -> Int {
        var h = Hasher()
        h.combine(verify)
        h.combine(depth)
        h.combine(caPEM)
        h.combine(clientCertificate)
        h.combine(sni)
        return h.finalize() | 1
    }
}

final class ServicePlan {
    let service: Service
    let upstream: Upstream?
    let balancer: UpstreamBalancer?
    let direct: [SocketAddress]
    private var rr = 0
    let log: ErrorLog
    /// https services: the trust setting of the upstream TLS connections (nil: plain HTTP).
    let tls: UpstreamTLS?

    /// Per balancer address (same index as `balancer.addresses`), and per direct address.
    private let peers: [PeerTarget]
    private let directPeers: [PeerTarget]
    private let hashing: Bool

    init(service: Service, upstream: Upstream?, balancer: UpstreamBalancer?, direct: [SocketAddress], log: ErrorLog,
         tls: UpstreamTLS?? = nil) {
        self.service = service
        self.upstream = upstream
        self.balancer = balancer
        self.direct = direct
        self.log = log
        let defaultPort = service.protocolName == "https" ? 443 : 80
        let directHost = service.port == defaultPort ? service.host : "\(service.host):\(service.port)"
        let tls = tls ?? (service.protocolName == "https"
            ? UpstreamTLS(verify: service.tlsVerify ?? false, depth: service.tlsVerifyDepth ?? 1) : nil)
        self.tls = tls
        let directSNI = UpstreamTLS.sni(for: service.host)
        let directTLS = tls?.keyID(sni: directSNI) ?? 0
        directPeers = direct.map {
            var k = PeerKey(ip: $0.ip, port: $0.port) ?? PeerKey(PeerAddress(family: 4, hi: 0, lo: 0, port: 0))
            k.tls = directTLS
            return PeerTarget(address: $0, key: k, host: directHost, sni: directSNI)
        }
        hashing = upstream?.algorithm == "consistent-hashing"
        var peers: [PeerTarget] = []
        if let b = balancer, let u = upstream {
            for a in b.addresses {
                let ip = a.address.ipString
                let port = Int(a.address.port)
                let hostName = a.hostname ?? ip
                var host = u.hostHeader ?? hostName
                // Kong set_host_header: the port is added unless it is the scheme's default.
                if u.hostHeader == nil && port != defaultPort {
                    host = hostName.contains(":") ? "[\(hostName)]:\(port)" : "\(hostName):\(port)"
                }
                let sa = SocketAddress(ip: ip, port: port) ?? SocketAddress(ip: "0.0.0.0", port: 0)!
                // SNI: the Host name sent upstream without its port (none for an IP address).
                let sni = UpstreamTLS.sni(for: u.hostHeader ?? hostName)
                var key = PeerKey(a.address)
                key.tls = tls?.keyID(sni: sni) ?? 0
                peers.append(PeerTarget(address: sa, key: key, host: host, sni: sni))
            }
        }
        self.peers = peers
    }

    /// Kong's 503 text when no peer can be had for a direct service.
    var pickFailureMessage: String? { balancer == nil ? "name resolution failed" : nil }

    /// `request`: the parser holding the request head (read only for consistent-hashing; passing the
    /// parser rather than the head avoids copying the head on every pick).
    func pick(request: HTTPRequestParser, client: SocketAddress, tried: inout TriedPeers, routeCaptures: [String: String]) -> PeerChoice? {
        if let b = balancer, let u = upstream {
            var setCookie: String? = nil
            let hash = hashing
                ? hashValue(u, head: request.head, client: client, captures: routeCaptures, setCookie: &setCookie) : nil
            guard let p = b.pick(hash: hash, excluding: tried), p.index < peers.count else { return nil }
            return PeerChoice(target: peers[p.index], pick: p, setCookie: setCookie)
        }
        guard !directPeers.isEmpty else { return nil }
        rr &+= 1
        return PeerChoice(target: directPeers[rr % directPeers.count], pick: nil)
    }

    /// Ends a try: shared in-flight count, latency EWMA and passive health (GWBalancer).
    func release(_ c: PeerChoice, latencyMicros: Int?, outcome: HealthOutcome?) {
        guard let b = balancer, let p = c.pick else { return }
        if let t = b.release(p, latencyMicros: latencyMicros, outcome: outcome) {
            log.log(.warn, "upstream \(b.upstreamName) target \(p.address) changed from \(t.oldStateName) to \(t.newStateName) (passive check: \(t.reason.text))")
        }
    }

    /// The value hashed for consistent-hashing (KONG.md §4.3), with `hash_fallback`.
    private func hashValue(_ u: Upstream, head: HTTPRequestHead, client: SocketAddress, captures: [String: String],
                           setCookie: inout String?) -> UInt32 {
        if u.hashOn == "ip" {
            // The common case without a String (client.ip = inet_ntop + a heap String per request): the
            // same text, written on the stack and hashed in place (hashKey(String) hashes its UTF-8 bytes).
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: SocketAddress.maxIPLength) { buf in
                let n = client.writeIP(to: buf.baseAddress!)
                return UpstreamBalancer.hashKey(UnsafeRawBufferPointer(start: buf.baseAddress!, count: n))
            }
        }
        func value(_ on: String, header: String?, cookie: String?, query: String?, capture: String?) -> String? {
            switch on {
            case "ip": return client.ip
            case "header": return header.flatMap { h in let v = head.headers.values(h); return v.isEmpty ? nil : v.joined(separator: ",") }
            case "cookie":
                guard let name = cookie else { return nil }
                for c in head.headers.values("cookie") {
                    for part in c.split(separator: ";") {
                        let kv = part.split(separator: "=", maxSplits: 1)
                        if kv.count == 2, kv[0].trimmingCharacters() == name { return String(kv[1]) }
                    }
                }
                return nil
            case "path": return head.path
            case "query_arg":
                guard let name = query, let q = head.query else { return nil }
                let vals = q.split(separator: "&").compactMap { p -> String? in
                    let kv = p.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    return kv.first.map(String.init) == name ? (kv.count > 1 ? String(kv[1]) : "") : nil
                }.sorted()
                return vals.isEmpty ? nil : vals.joined(separator: ",")
            case "uri_capture": return capture.flatMap { captures[$0] }
            default: return nil
            }
        }
        if let v = value(u.hashOn, header: u.hashOnHeader, cookie: u.hashOnCookie, query: u.hashOnQueryArg,
                         capture: u.hashOnURICapture) {
            return UpstreamBalancer.hashKey(v)
        }
        // Kong (balancer/init.lua get_value_to_hash): a missing hash cookie is created, hashed and set on the
        // response, whether cookie is hash_on (which then allows no fallback) or hash_fallback.
        func newCookie(_ name: String) -> UInt32 {
            let id = ServicePlan.uuidV4()
            setCookie = "\(name)=\(id); Path=\(u.hashOnCookiePath); Same-Site=Lax; HttpOnly"
            return UpstreamBalancer.hashKey(id)
        }
        if u.hashOn == "cookie", let name = u.hashOnCookie { return newCookie(name) }
        if let v = value(u.hashFallback, header: u.hashFallbackHeader, cookie: u.hashOnCookie,
                         query: u.hashFallbackQueryArg, capture: u.hashFallbackURICapture) {
            return UpstreamBalancer.hashKey(v)
        }
        if u.hashFallback == "cookie", let name = u.hashOnCookie { return newCookie(name) }
        return UpstreamBalancer.hashKey("")
    }

    /// A random (v4) UUID, lower-case, as Kong's `utils.uuid()`.
    static func uuidV4() -> String {
        var g = SystemRandomNumberGenerator()
        var b = [UInt8](repeating: 0, count: 16)
        for i in stride(from: 0, to: 16, by: 8) {
            var r = g.next()
            for j in 0..<8 { b[i + j] = UInt8(truncatingIfNeeded: r); r >>= 8 }
        }
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        let hex = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(36)
        for (i, x) in b.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { s.append("-") }
            s.append(hex[Int(x >> 4)]); s.append(hex[Int(x & 0x0F)])
        }
        return s
    }
}

extension Substring {
    func trimmingCharacters() -> String { String(self).trimmingWhitespace() }
}

final class RuntimeConfig {
    let generation: UInt64
    let router: Router
    let plans: [String: ServicePlan]
    /// The plugins of this generation, compiled (GWPlugins). Empty: the request path runs no plugin code.
    let pluginSet: PluginSet
    /// Per upstream name: what its balancer was built from, so the next generation reuses it when
    /// neither the upstream nor its addresses changed (its round-robin position is kept too).
    private let balancerInputs: [String: (upstream: Upstream, addresses: [ResolvedAddress], balancer: UpstreamBalancer)]
    /// TLS listeners: Kong's certificate per SNI (GWStore.SNIIndex) and the certificates by id.
    let sniIndex: SNIIndex
    let certificates: [String: Certificate]
    private let certificatesSource: [Certificate]
    private let snisSource: [SNI]

    /// Builds generation `config.generation`. Whatever did not change since `previous` is reused: compiled
    /// routes (see `Router.init(snapshot:reusing:)`), balancers and service plans, so that one more route on
    /// top of 10 000 costs a re-sort and re-index of the router, not a recompilation of everything.
    init(config: PublishedConfig, previous: RuntimeConfig?, routeChanges: RouteChanges? = nil, shm: SharedMemory,
         workerSlot: Int, log: ErrorLog, pluginShared: AnyObject? = nil) {
        let t0 = Clock.monotonicMicros()
        let snap = config.snapshot
        generation = snap.generation
        router = Router(snapshot: snap, reusing: previous?.router, changes: routeChanges)
        let tRouter = Clock.monotonicMicros()
        for e in router.buildErrors { log.log(.warn, "route \(e.routeID) left out of the router: \(e.message)") }
        // Per-worker rows let the master give back this worker's in-flight counts if it crashes.
        let table = PeerStateTable(base: shm.peerArea, size: shm.peerAreaSize).forWorker(workerSlot)
        var upstreamsByName: [String: Upstream] = [:]
        for u in snap.upstreams { upstreamsByName[u.name] = u }
        var targetsByUpstream: [String: [Target]] = [:]
        for t in snap.targets { targetsByUpstream[t.upstreamID, default: []].append(t) }
        var inputs: [String: (upstream: Upstream, addresses: [ResolvedAddress], balancer: UpstreamBalancer)] = [:]
        var reusedBalancers = 0
        for u in snap.upstreams {
            var list: [ResolvedAddress] = []
            for t in targetsByUpstream[u.id] ?? [] {
                // The weight is per address (SRV answers carry their own); no entry ⇒ an IP literal as is.
                let addrs = config.resolved[t.id] ?? [PublishedAddress(ip: t.host, port: t.port, weight: t.weight)]
                for a in addrs {
                    guard let pa = PeerAddress(ip: a.ip, port: a.port),
                          let slot = table.findSlot(upstream: u.name, address: pa) else { continue }
                    list.append(ResolvedAddress(address: pa, weight: a.weight, slot: slot, hostname: t.host))
                }
            }
            if let old = previous?.balancerInputs[u.name], old.upstream == u, old.addresses == list {
                inputs[u.name] = old
                reusedBalancers += 1
            } else {
                inputs[u.name] = (u, list, UpstreamBalancer(upstream: u, addresses: list, table: table,
                                                            seed: UInt64(ProcessControl.pid)))
            }
        }
        balancerInputs = inputs
        if let p = previous, p.certificatesSource == snap.certificates, p.snisSource == snap.snis {
            sniIndex = p.sniIndex
            certificates = p.certificates
        } else {
            sniIndex = SNIIndex(snap.snis)
            var byID: [String: Certificate] = [:]
            for c in snap.certificates { byID[c.id] = c }
            certificates = byID
        }
        certificatesSource = snap.certificates
        snisSource = snap.snis
        var caByID: [String: String] = [:]
        for c in snap.caCertificates { caByID[c.id] = c.cert }
        var plans: [String: ServicePlan] = [:]
        plans.reserveCapacity(snap.services.count)
        var reusedPlans = 0
        for s in snap.services {
            let old = previous?.plans[s.id]
            let tls = UpstreamTLS.of(s, upstream: upstreamsByName[s.host], cas: caByID, certs: certificates)
            if let u = upstreamsByName[s.host] {
                let b = inputs[u.name]?.balancer
                if let old, old.service == s, old.upstream == u, old.balancer === b, old.tls == tls {
                    plans[s.id] = old
                    reusedPlans += 1
                } else {
                    plans[s.id] = ServicePlan(service: s, upstream: u, balancer: b, direct: [], log: log, tls: tls)
                }
            } else {
                // The master's DNS answers for the service host (`service_addresses`), else getaddrinfo
                // here (IP literals).
                var direct: [SocketAddress] = []
                if let r = config.serviceAddresses[s.id] {
                    for a in r { if let sa = SocketAddress(ip: a.ip, port: a.port) { direct.append(sa) } }
                } else if let old, old.service == s, old.upstream == nil {
                    direct = old.direct          // same host and port: no new lookup
                } else {
                    direct = Socket.resolve(host: s.host, port: s.port)
                }
                if let old, old.service == s, old.upstream == nil, old.direct == direct, old.tls == tls {
                    plans[s.id] = old
                    reusedPlans += 1
                } else {
                    plans[s.id] = ServicePlan(service: s, upstream: nil, balancer: nil, direct: direct, log: log, tls: tls)
                }
            }
        }
        self.plans = plans
        pluginSet = PluginSet(snapshot: snap, previous: previous?.pluginSet, shared: pluginShared,
                              hosts: LogHosts.resolved(from: config.serviceAddresses))
        for e in pluginSet.errors { log.log(.error, "plugin \(e) left out of the configuration") }
        let t1 = Clock.monotonicMicros()
        log.log(.info, "configuration generation \(generation) built: router \((tRouter - t0) / 1000) ms (\(router.reusedRoutes) of \(snap.routes.count) routes reused), balancers+plans+plugins \((t1 - tRouter) / 1000) ms (\(reusedBalancers) of \(snap.upstreams.count) balancers, \(reusedPlans) of \(snap.services.count) plans reused)")
    }
}
