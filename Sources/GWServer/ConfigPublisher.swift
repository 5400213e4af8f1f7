// Publishes configuration generations to the workers: after each committed Admin API write (or a
// DB-less /config, or a DNS answer that changed), the master takes target host names' addresses from
// the DNSResolver's cache (never blocking; answers that change later trigger another publish), makes
// sure every (upstream, address) has a record in the shared peer table, writes the generation to run/,
// bumps the generation in shared memory and wakes every worker through its channel. Workers never
// touch the database.
//
// What is written (GWStore/PublishedConfig.swift has the formats):
// - normally a delta, run/config.delta.<N>.json: only the entities the write changed and the address
//   entries that changed. Its cost does not grow with the configuration (10 000 routes: one route
//   is a ~1 KiB file), so neither the Admin API answer nor the workers wait on a whole document.
// - a full document, run/config.json, at start, after a whole-configuration replacement (DB-less
//   POST /config) or when the changes cannot be listed; and, off the request path, by `compact()`:
//   `compactAfter` seconds after the first delta since the last full document, or as soon as
//   `maxDeltaChain` deltas piled up, so that a worker that starts later (respawn, reload) reads one
//   full document plus a bounded chain of deltas (applying a delta costs a worker well under 1 ms of
//   CPU besides the one router build at the end; a full document of 10 000 routes costs the master
//   ~50 ms, which is why it is not written more often).
// Deltas older than the previous full document are deleted when a new full document is written; the
// ones since then stay, so a worker that read the previous full document can still catch up.
#if canImport(Glibc)
import Glibc
#endif
import GWAdmin
import GWBalancer
import GWEvent
import GWJSON
import GWPlugins
import GWStore
import GWSystem

final class ConfigPublisher {
    unowned let master: Master
    let api: AdminAPI
    let table: PeerStateTable
    let health: SharedHealthProvider
    private var generation: UInt64 = 0
    private var liveSlots: Set<PeerSlot> = []
    /// What the workers hold at `generation` (nil before the first publication).
    private var published: PublishedConfig?
    /// Generation of run/config.json, and of the full document before it.
    private var fullGeneration: UInt64 = 0
    private var previousFullGeneration: UInt64 = 0
    /// Asynchronous DNS for target host names (nil ⇒ blocking getaddrinfo, kept for tests without a loop).
    let resolver: DNSResolver?
    /// Seconds between the first delta after a full document and the next full document.
    static let compactAfter = 5.0
    /// Deltas after which the full document is rewritten at once (next loop iteration).
    static let maxDeltaChain: UInt64 = 500
    /// More changes than this in one publication: a full document instead of a delta.
    static let maxDeltaEntities = 2000
    private var compactTimer: TimerWatcher?

    init(master: Master, api: AdminAPI, table: PeerStateTable, health: SharedHealthProvider, resolver: DNSResolver?) {
        self.master = master
        self.api = api
        self.table = table
        self.health = health
        self.resolver = resolver
    }

    func publish() {
        let changes = api.store.takeChanges()
        if var cur = published, !changes.all, changes.items.count <= ConfigPublisher.maxDeltaEntities {
            published = nil      // `cur` the only owner: the delta changes its arrays in place, no copy
            if publishDelta(&cur, changes: changes.items) { return }
        }
        publishFull()
    }

    // MARK: Full document

    private func publishFull() {
        let t0 = Clock.monotonicMicros()
        generation += 1
        // Built once as a JSON value: decoded for the master's own use and serialized once for the
        // workers (no serialize → parse → parse round trips; they dominate with 10 000 routes).
        let docJSON = api.publishedJSON(generation: generation)
        let tDoc = Clock.monotonicMicros()
        guard let snap = try? ConfigSnapshot.decode(json: docJSON) else {
            master.log.log(.alert, "cannot build configuration generation \(generation)")
            return
        }
        let tDecode = Clock.monotonicMicros()
        var next = PublishedConfig(snapshot: snap)
        next.buildIndexes()
        resolveAddresses(&next)
        let tResolve = Clock.monotonicMicros()
        guard let size = writeFullDocument(next) else { return }
        commit(next)
        let t1 = Clock.monotonicMicros()
        master.log.log(.info, "published configuration generation \(generation) (\(size) bytes, \((t1 - t0) / 1000) ms: full document; store \((tDoc - t0) / 1000), decode \((tDecode - tDoc) / 1000), resolve \((tResolve - tDecode) / 1000), write+notify \((t1 - tResolve) / 1000) ms)")
    }

    /// Writes run/config.json for `c` at the current generation (the store's entities, `c`'s addresses) and
    /// drops the deltas no longer needed; the size written, nil (logged) when it could not be written.
    private func writeFullDocument(_ c: PublishedConfig) -> Int? {
        let bytes = api.publishedBytes(generation: generation, extra: [
            ("resolved", PublishedConfig.addressJSON(c.resolved, weighted: true)),
            ("service_addresses", PublishedConfig.addressJSON(c.serviceAddresses, weighted: false))])
        do {
            try ProcessControl.writeFileAtomically(master.snapshotPath, bytes)
        } catch {
            master.log.log(.alert, "cannot write \(master.snapshotPath): \(error)")
            return nil
        }
        noteFullDocument(generation)
        return bytes.count
    }

    /// Bookkeeping after run/config.json holds generation `g`: deltas the previous full document needed are
    /// no longer needed by anyone who reads the directory from now on (the first full document of a
    /// master run also removes every delta a previous run left behind).
    private func noteFullDocument(_ g: UInt64) {
        let first = fullGeneration == 0
        previousFullGeneration = first ? g : fullGeneration
        fullGeneration = g
        let path = master.snapshotPath
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        for name in ProcessControl.listDirectory(dir.isEmpty ? "." : dir) {
            guard let n = PublishedConfig.deltaGeneration(fileName: name, fullPath: path) else { continue }
            if first || n <= previousFullGeneration {
                ProcessControl.remove(dir.isEmpty ? name : "\(dir)/\(name)")
            }
        }
    }

    // MARK: Delta

    /// Publishes only what changed, advancing `next` (the published configuration); false when a delta
    /// cannot be made (`next` is then unusable and the caller publishes a full document).
    private func publishDelta(_ next: inout PublishedConfig, changes: [(EntityKind, String)]) -> Bool {
        let t0 = Clock.monotonicMicros()
        let g = generation + 1
        var delta = ConfigDelta(generation: g, base: generation)
        for (kind, id) in changes {
            if let doc = api.store.get(kind, id: id) {
                delta.puts[kind.rawValue, default: []].append(doc)
            } else {
                delta.deletes[kind.rawValue, default: []].append(id)
            }
        }
        let old = PublishedConfig(snapshot: ConfigSnapshot(), resolved: next.resolved,
                                  serviceAddresses: next.serviceAddresses)
        do { try next.apply(delta) } catch {
            master.log.log(.error, "configuration delta \(g) not applicable (\(error)); publishing the whole configuration")
            return false
        }
        let tApply = Clock.monotonicMicros()
        resolveAddresses(&next)
        delta.diffAddresses(old: old, new: next)
        if delta.isEmpty {                      // nothing the workers would see changed
            next.snapshot.generation = generation
            published = next
            return true
        }
        let tResolve = Clock.monotonicMicros()
        let bytes = delta.json.serialized()
        let path = PublishedConfig.deltaPath(fullPath: master.snapshotPath, generation: g)
        do {
            try ProcessControl.writeFileAtomically(path, bytes)
        } catch {
            master.log.log(.alert, "cannot write \(path): \(error)")
            return false
        }
        generation = g
        commit(next)
        scheduleCompaction()
        let t1 = Clock.monotonicMicros()
        master.log.log(.info, "published configuration generation \(g) (\(bytes.count) bytes, \((t1 - t0) / 1000) ms: delta of \(changes.count) entities; apply \((tApply - t0) / 1000), resolve \((tResolve - tApply) / 1000), write+notify \((t1 - tResolve) / 1000) ms)")
        return true
    }

    private func scheduleCompaction() {
        if compactTimer == nil {
            compactTimer = TimerWatcher(loop: master.loop) { [unowned self] in self.compact() }
        }
        guard let t = compactTimer else { return }
        if generation - fullGeneration >= ConfigPublisher.maxDeltaChain {
            t.start(after: 0)
        } else if !t.isActive {
            t.start(after: ConfigPublisher.compactAfter)
        }
    }

    /// Writes the full document of the current generation (no new generation: workers are not woken).
    private func compact() {
        guard let cur = published, fullGeneration < generation else { return }
        let t0 = Clock.monotonicMicros()
        guard let size = writeFullDocument(cur) else { return }
        master.log.log(.info, "wrote full configuration document for generation \(generation) (\(size) bytes, \((Clock.monotonicMicros() - t0) / 1000) ms)")
    }

    /// Makes `next` the published generation: the master's own users, then the workers.
    private func commit(_ next: PublishedConfig) {
        published = next
        var resolvedMap: [String: [(ip: String, port: Int)]] = [:]
        var weights: [String: [Int]] = [:]
        for (id, list) in next.resolved {
            resolvedMap[id] = list.map { ($0.ip, $0.port) }
            weights[id] = list.map(\.weight)
        }
        health.resolved = resolvedMap
        health.weights = weights
        master.publish(generation: next.generation)
        master.healthChecker?.configure(snapshot: next.snapshot, resolved: resolvedMap)
    }

    // MARK: Addresses

    /// Fills `resolved` (every target whose host is a name, or an IP literal with a shared record) and
    /// `serviceAddresses` (every service whose host is a name and not an upstream) from the resolver's
    /// cache, and keeps the shared peer table's records in step with the addresses in use.
    private func resolveAddresses(_ c: inout PublishedConfig) {
        let snap = c.snapshot
        var upstreamName: [String: String] = [:]
        for u in snap.upstreams { upstreamName[u.id] = u.name }
        var resolved: [String: [PublishedAddress]] = [:]
        var newSlots: Set<PeerSlot> = []
        var names: Set<String> = []
        for t in snap.targets {
            guard let uname = upstreamName[t.upstreamID] else { continue }
            // IP literals need no lookup; names use the resolver's cached answer (a lookup starts in the
            // background when there is none or it expired; its answer triggers another publish).
            var addrs: [PublishedAddress] = []
            if let lit = SocketAddress(ip: t.host, port: t.port) {
                addrs = [PublishedAddress(ip: lit.ip, port: t.port, weight: t.weight)]
            } else if let dns = resolver {
                names.insert(t.host)
                if let a = dns.answer(for: t.host), a.ok {
                    addrs = TargetAddresses.expand(a.addresses, targetPort: t.port, targetWeight: t.weight)
                        .map { PublishedAddress(ip: $0.ip, port: $0.port, weight: $0.weight) }
                }
            } else {
                addrs = Socket.resolve(host: t.host, port: t.port).map { PublishedAddress(ip: $0.ip, port: $0.port, weight: t.weight) }
            }
            for a in addrs {
                if let s = table.ensureSlot(upstream: uname, ip: a.ip, port: a.port) {
                    newSlots.insert(s)
                } else {
                    // Workers leave an address without a shared record out of the balancer: say so.
                    master.log.log(.error, "target \(t.target) of upstream \(uname): no shared peer record for \(a.ip):\(a.port) (peer table full or upstream name longer than \(PeerStateTable.maxNameBytes) bytes); the address gets no traffic")
                }
            }
            // No addresses (DNS failed or not answered yet): the target takes no traffic and /health
            // shows DNS_ERROR until the name resolves (retried every 30 s after a failure).
            resolved[t.id] = addrs
        }
        // Plain services (host not an upstream name): the resolver's answers go to the workers too, so
        // they do not block on getaddrinfo at configuration load. No answer yet or DNS failure ⇒ an empty
        // list (the worker answers 503 "name resolution failed" until the name resolves).
        var serviceAddrs: [String: [PublishedAddress]] = [:]
        if let dns = resolver {
            var upstreamNames = Set<String>()
            for u in snap.upstreams { upstreamNames.insert(u.name) }
            for s in snap.services where !upstreamNames.contains(s.host) && SocketAddress(ip: s.host, port: s.port) == nil {
                names.insert(s.host)
                var list: [PublishedAddress] = []
                if let a = dns.answer(for: s.host), a.ok {
                    for x in TargetAddresses.expand(a.addresses, targetPort: s.port, targetWeight: 1) {
                        list.append(PublishedAddress(ip: x.ip, port: x.port, weight: 1))
                    }
                }
                serviceAddrs[s.id] = list
            }
            // The logging plugins' destination names and rate-limiting's Redis names (LogHosts), under
            // "host:<name>": the port is the plugin's own; an SRV answer's ports are not used. No answer
            // yet ⇒ an empty list.
            for name in LogHosts.names(in: snap) {
                names.insert(name)
                var list: [PublishedAddress] = []
                if let a = dns.answer(for: name), a.ok {
                    for x in a.addresses where !list.contains(where: { $0.ip == x.ip }) { list.append(PublishedAddress(ip: x.ip, port: 0, weight: 1)) }
                }
                serviceAddrs[LogHosts.keyPrefix + name] = list
            }
        }
        resolver?.keepOnly(names)
        // Addresses that left the configuration start afresh if they come back (Kong re-creates a
        // target healthy); addresses that stayed keep their state across every change.
        for s in liveSlots.subtracting(newSlots) { _ = table.forget(s, now: PeerClock.unixSeconds()) }
        liveSlots = newSlots
        c.resolved = resolved
        c.serviceAddresses = serviceAddrs
    }
}
