// Publishes configuration generations to the workers: after each committed Admin API write (or a
// DB-less /config), the master takes target host names' addresses from the DNSResolver's cache
// (never blocking; answers that change later trigger another publish), makes sure every (upstream, address)
// has a record in the shared peer table, writes run/config.json atomically, bumps the generation
// in shared memory and wakes every worker through its channel. Workers never touch the database.
#if canImport(Glibc)
import Glibc
#endif
import GWAdmin
import GWBalancer
import GWJSON
import GWStore
import GWSystem

final class ConfigPublisher {
    unowned let master: Master
    let api: AdminAPI
    let table: PeerStateTable
    let health: SharedHealthProvider
    private var generation: UInt64 = 0
    private var liveSlots: Set<PeerSlot> = []
    private(set) var lastSnapshot = ConfigSnapshot()
    /// Asynchronous DNS for target host names (nil ⇒ blocking getaddrinfo, kept for tests without a loop).
    let resolver: DNSResolver?

    init(master: Master, api: AdminAPI, table: PeerStateTable, health: SharedHealthProvider, resolver: DNSResolver?) {
        self.master = master
        self.api = api
        self.table = table
        self.health = health
        self.resolver = resolver
    }

    func publish() {
        let t0 = Clock.monotonicMicros()
        generation += 1
        // Built once as a JSON value: decoded for the master's own use and serialized once for the
        // workers (no serialize → parse → parse round trips; they dominate with 10 000 routes).
        let docJSON = api.publishedJSON(generation: generation)
        let tDoc = Clock.monotonicMicros()
        guard case .object(var doc) = docJSON, let snap = try? ConfigSnapshot.decode(json: docJSON) else {
            master.log.log(.alert, "cannot build configuration generation \(generation)")
            return
        }
        let tDecode = Clock.monotonicMicros()
        lastSnapshot = snap
        var upstreamName: [String: String] = [:]
        for u in snap.upstreams { upstreamName[u.id] = u.name }
        var resolved = JSONObject()
        var newSlots: Set<PeerSlot> = []
        var resolvedMap: [String: [(ip: String, port: Int)]] = [:]
        var weights: [String: [Int]] = [:]
        var names: Set<String> = []
        for t in snap.targets {
            guard let uname = upstreamName[t.upstreamID] else { continue }
            // IP literals need no lookup; names use the resolver's cached answer (a lookup starts in the
            // background when there is none or it expired; its answer triggers another publish).
            var addrs: [(ip: String, port: Int, weight: Int)] = []
            if let lit = SocketAddress(ip: t.host, port: t.port) {
                addrs = [(lit.ip, t.port, t.weight)]
            } else if let dns = resolver {
                names.insert(t.host)
                if let a = dns.answer(for: t.host), a.ok {
                    addrs = TargetAddresses.expand(a.addresses, targetPort: t.port, targetWeight: t.weight)
                }
            } else {
                addrs = Socket.resolve(host: t.host, port: t.port).map { ($0.ip, $0.port, t.weight) }
            }
            var list: [JSON] = []
            var mapped: [(ip: String, port: Int)] = []
            var w: [Int] = []
            for a in addrs {
                list.append(.array([.string(a.ip), .int(Int64(a.port)), .int(Int64(a.weight))]))
                mapped.append((a.ip, a.port))
                w.append(a.weight)
                if let s = table.ensureSlot(upstream: uname, ip: a.ip, port: a.port) {
                    newSlots.insert(s)
                } else {
                    // Workers leave an address without a shared record out of the balancer: say so.
                    master.log.log(.error, "target \(t.target) of upstream \(uname): no shared peer record for \(a.ip):\(a.port) (peer table full or upstream name longer than \(PeerStateTable.maxNameBytes) bytes); the address gets no traffic")
                }
            }
            // No addresses (DNS failed or not answered yet): the target takes no traffic and /health
            // shows DNS_ERROR until the name resolves (retried every 30 s after a failure).
            resolved[t.id] = .array(list)
            resolvedMap[t.id] = mapped
            weights[t.id] = w
        }
        // Plain services (host not an upstream name): the resolver's answers go to the workers too, so
        // they do not block on getaddrinfo at configuration load. No answer yet or DNS failure ⇒ an empty
        // list (the worker answers 503 "name resolution failed" until the name resolves).
        var serviceAddrs = JSONObject()
        if let dns = resolver {
            var upstreamNames = Set<String>()
            for u in snap.upstreams { upstreamNames.insert(u.name) }
            for s in snap.services where !upstreamNames.contains(s.host) && SocketAddress(ip: s.host, port: s.port) == nil {
                names.insert(s.host)
                var list: [JSON] = []
                if let a = dns.answer(for: s.host), a.ok {
                    for x in TargetAddresses.expand(a.addresses, targetPort: s.port, targetWeight: 1) {
                        list.append(.array([.string(x.ip), .int(Int64(x.port))]))
                    }
                }
                serviceAddrs[s.id] = .array(list)
            }
        }
        doc["service_addresses"] = .object(serviceAddrs)
        resolver?.keepOnly(names)
        // Addresses that left the configuration start afresh if they come back (Kong re-creates a
        // target healthy); addresses that stayed keep their state across every change.
        for s in liveSlots.subtracting(newSlots) { _ = table.forget(s, now: PeerClock.unixSeconds()) }
        liveSlots = newSlots
        health.resolved = resolvedMap
        health.weights = weights
        doc["resolved"] = .object(resolved)
        let tResolve = Clock.monotonicMicros()
        let bytes = JSON.object(doc).serialized()
        let tSerialize = Clock.monotonicMicros()
        do {
            try ProcessControl.writeFileAtomically(master.snapshotPath, bytes)
        } catch {
            master.log.log(.alert, "cannot write \(master.snapshotPath): \(error)")
            return
        }
        master.publish(generation: generation)
        let t1 = Clock.monotonicMicros()
        master.log.log(.info, "published configuration generation \(generation) (\(bytes.count) bytes, \((t1 - t0) / 1000) ms: store \((tDoc - t0) / 1000), decode \((tDecode - tDoc) / 1000), resolve \((tResolve - tDecode) / 1000), serialize \((tSerialize - tResolve) / 1000), write+notify \((t1 - tSerialize) / 1000) ms)")
        master.healthChecker?.configure(snapshot: snap, resolved: resolvedMap)
    }
}
