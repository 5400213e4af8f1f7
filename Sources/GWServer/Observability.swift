// The node seen from outside, served by the master: GET /metrics (the prometheus exposition, on the
// Admin API and the status listener), the `memory` of GET /status, /status/ready's readiness, and the
// Status API listener itself (status_listen: GET /status, GET|POST /status/ready, GET /metrics, else
// Kong's 404). Everything is read from the shared segment (worker slots, the plugin area's tables, the
// peer table) without stopping a worker. Master-loop confined.
import CGWShims
import GWAdmin
import GWBalancer
import GWEvent
import GWPlugins
import GWPluginState
import GWSystem

final class NodeObservability {
    unowned let master: Master
    let api: AdminAPI
    let peers: PeerStateTable
    private var dropTimer: TimerWatcher?
    private var loggedDrops: UInt64 = 0

    init(master: Master, api: AdminAPI, peers: PeerStateTable) {
        self.master = master
        self.api = api
        self.peers = peers
        // A full metrics table is logged (at most every 10 s, with the growth), never a crash.
        let t = TimerWatcher(loop: master.loop) {}
        t.handler = { [unowned self] in self.logDrops() }
        t.start(after: 10, repeat: 10)
        dropTimer = t
    }

    private func logDrops() {
        guard let s = master.pluginState.metrics?.stats else { return }
        let total = s.full &+ s.codesFull &+ s.tooLong
        guard total != loggedDrops else { return }
        master.log.log(.warn, "prometheus_metrics: \(total &- loggedDrops) observations not counted in the last 10 s " +
                       "(table full: \(s.full), 16 status codes per row taken: \(s.codesFull), labels too long: \(s.tooLong) " +
                       "since start; \(s.used) of \(s.capacity) rows used; raise prometheus_metrics_size)")
        loggedDrops = total
    }

    /// Live workers of the current generation (not draining), with their shared-memory slot.
    private var liveWorkers: [(handle: WorkerHandle, slot: gw_worker_slot)] {
        master.workers.filter { !$0.draining }.map { ($0, master.shm.workerSlot($0.slot).pointee) }
    }

    /// GET /status/ready: nil when every worker of the current generation runs the published
    /// configuration, else Kong's reason.
    func readiness() -> String? {
        let n = master.config.workerProcesses
        let published = master.configGeneration
        let ready = liveWorkers.filter { $0.slot.ready != 0 && published > 0 && $0.slot.config_generation >= published }.count
        if ready >= n && published > 0 { return nil }
        if master.config.database == "off" { return "router builds not yet complete, router ready in \(ready) of \(n) workers" }
        return "router builds not yet complete"
    }

    /// The shared-memory areas as Kong's lua_shared_dicts (name, allocated, capacity).
    func sharedAreas() -> [(name: String, allocated: Int, capacity: Int)] {
        let shm = master.shm
        let fixed = Int(shm.header.pointee.peer_area_offset)
        var out: [(name: String, allocated: Int, capacity: Int)] = [("kong", fixed, fixed)]
        out.append(("kong_healthchecks", 128 + peers.count * PeerStateTable.recordSize, shm.peerAreaSize))
        let ps = master.pluginState
        let rl = ps.counters.stats
        out.append(("kong_rate_limiting_counters", 128 + min(Int(rl.inserts), rl.capacity) * 32, ps.countersSize))
        let cs = ps.cache.stats
        out.append(("kong_db_cache", ps.cacheSize - cs.freeChunks * 1024, ps.cacheSize))
        if let m = ps.metrics { out.append(("prometheus_metrics", m.allocatedBytes, m.size)) }
        if let c = ps.cluster {   // rate-limiting policy cluster (database = postgres)
            let st = c.stats
            out.append(("rate_limiting_cluster_counters", 128 + min(Int(st.inserts), st.capacity) * 256, PluginState.clusterTableSize))
        }
        return out
    }

    func memory() -> MemoryStatus {
        MemoryStatus(workers: liveWorkers.map { (Int($0.slot.pid), Int($0.slot.heap_bytes)) }, areas: sharedAreas())
    }

    func nodeMetrics() -> NodeMetrics {
        var n = NodeMetrics()
        n.nodeID = api.nodeID
        n.datastoreReachable = api.datastoreReachable
        var accepted = master.exitedWorkerConnectionsAccepted, total = master.exitedWorkerRequests, active: UInt64 = 0
        var writing: UInt64 = 0
        for i in 0 ..< Int(GW_MAX_WORKERS) {
            let s = master.shm.workerSlot(i).pointee
            guard s.pid != 0 else { continue }
            accepted &+= s.connections_accepted; total &+= s.requests; active &+= s.connections_active
            writing &+= min(s.connections_writing, s.connections_active)
        }
        n.accepted = accepted; n.handled = accepted; n.totalRequests = total
        n.active = active; n.writing = writing; n.reading = 0; n.waiting = active - writing
        n.sharedDicts = sharedAreas()
        let published = master.configGeneration
        var lastApplied: UInt64 = 0
        var allApplied = published > 0
        for w in liveWorkers {
            n.workers.append(.init(index: w.handle.index, pid: Int(w.slot.pid), requests: w.slot.requests,
                                   connectionsActive: w.slot.connections_active, connectionsAccepted: w.slot.connections_accepted,
                                   configGeneration: w.slot.config_generation, heapBytes: w.slot.heap_bytes))
            if w.slot.config_generation >= published { lastApplied = max(lastApplied, w.slot.config_applied_at_ms) } else { allApplied = false }
        }
        let flags = api.prometheusInstances
        n.pluginConfigured = flags.configured
        if flags.upstreamHealth {
            n.targetHealth = api.targetHealthRows().map { .init(upstream: $0.upstream, target: $0.target, address: $0.address, state: $0.state) }
        }
        n.configGeneration = published
        n.publishedAt = master.configPublishedAt
        if allApplied, master.configPublishedAt > 0 {
            n.propagationSeconds = max(0, Double(lastApplied) / 1000 - master.configPublishedAt)
        }
        return n
    }

    /// GET /metrics (HEAD: same head, the server drops the body).
    func metricsResponse() -> AdminHTTPResponse {
        let body = PrometheusExposition.render(node: nodeMetrics(), table: master.pluginState.metrics)
        return AdminHTTPResponse(status: 200, headers: [("Content-Type", PrometheusExposition.contentType)], body: body)
    }

    /// The path of a request target, without its query and trailing slashes.
    static func path(_ target: String) -> Substring {
        var p = target[..<(target.firstIndex(of: "?") ?? target.endIndex)]
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        return p
    }

    /// The Status API (status_listen): Kong's kong/status routes; no Admin API credentials.
    func statusHandler(_ req: AdminHTTPRequest) -> AdminHTTPResponse {
        let path = NodeObservability.path(req.target)
        let m = req.method.uppercased()
        if path == "/metrics" && (m == "GET" || m == "HEAD") { return metricsResponse() }
        if path == "/status" || path == "/status/ready" || path == "/metrics" {
            let r = api.handle(AdminRequest(method: req.method, target: req.target, headers: req.headers, body: req.body),
                               checkToken: false)
            return AdminHTTPResponse(status: r.status, headers: r.headers, body: r.body)
        }
        return AdminHTTPResponse(status: 404, headers: [("Content-Type", "application/json; charset=utf-8"),
                                                        ("Server", "gateway/\(gatewayVersion)")],
                                 body: Array("{\"message\":\"Not found\"}".utf8))
    }
}
