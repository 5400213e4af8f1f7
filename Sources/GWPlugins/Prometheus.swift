// prometheus (Kong 3.10 `kong/plugins/prometheus/{handler,exporter}.lua`, KONG-PLUGINS.md §6), priority 13.
// log phase (here `.metrics`: no serialized entry is built): a request no route matched is skipped; the
// labels are service = name or host ("" without a service), route = name or id, workspace "default",
// consumer = the username with per_consumer, else "". Per instance flags: status_code_metrics
// (kong_http_requests_total with code and source "service"/"kong"), latency_metrics (kong_kong_latency_ms,
// kong_upstream_latency_ms when proxied, kong_request_latency_ms), bandwidth_metrics
// (kong_bandwidth_bytes ingress/egress); upstream_health_metrics is read by the exposition (any instance
// turns it on). All default false, as Kong 3.10.
//
// The counts live in the node's shared MetricsTable (GWPluginState): exact across workers and reloads.
// Per request: one dictionary lookup of the route id (the row index is resolved once per label set and
// configuration generation; a handler is rebuilt with each generation, so names changed by the Admin
// API take effect with it), then gw_metrics_observe (relaxed atomic adds). No lock, no allocation.
import GWPluginState
import GWStore

final class Prometheus: PluginHandler {
    static let name = "prometheus"
    static let priority = 13

    let flags: UInt32
    let perConsumer: Bool
    let upstreamHealthMetrics: Bool
    private let table: MetricsTable?
    private let snapshot: ConfigSnapshot?
    /// route id → row (consumer ""); route id → consumer id → row (per_consumer with a consumer).
    private var rows: [String: Int32] = [:]
    private var consumerRows: [String: [String: Int32]] = [:]
    private var consumerRowCount = 0
    /// The last route id looked up and its row (String equality first compares the storage: the data
    /// path hands the same string object for every request of a route).
    private var lastRouteID = ""
    private var lastRow: Int32 = 0
    /// route id → position in the snapshot, service id → position (built on the first resolve).
    private var routeIndex: [String: Int]? = nil
    private var serviceIndex: [String: Int]? = nil

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: Prometheus.name)
        var f: UInt32 = 0
        if try c.bool("status_code_metrics", false) { f |= MetricsTable.flagStatus }
        if try c.bool("latency_metrics", false) { f |= MetricsTable.flagLatency }
        if try c.bool("bandwidth_metrics", false) { f |= MetricsTable.flagBandwidth }
        flags = f
        perConsumer = try c.bool("per_consumer", false)
        upstreamHealthMetrics = try c.bool("upstream_health_metrics", false)
        for k in ["ai_metrics", "wasm_metrics"] where try c.bool(k, false) {
            throw PluginError("prometheus: config.\(k) is not supported")
        }
        table = (env.shared as? PluginSharedStore)?.metricsTable
        snapshot = env.snapshot
        super.init(entity: entity, priority: Prometheus.priority)
    }

    override var phases: PluginPhases { .metrics }

    override func metrics(_ ctx: PluginContext, _ facts: MetricFacts) {
        guard flags != 0, let table, let routeID = ctx.routeID else { return }
        var row: Int32
        if perConsumer, let consumer = ctx.consumer, let username = consumer.username {
            if let r = consumerRows[routeID]?[consumer.id] {
                row = r
            } else {
                row = resolve(table, routeID: routeID, serviceID: ctx.serviceID, consumer: username)
                // Bounded: past 65,536 (route, consumer) pairs the cache starts over (a miss re-resolves).
                if consumerRowCount >= 65_536 { consumerRows.removeAll(); consumerRowCount = 0 }
                consumerRows[routeID, default: [:]][consumer.id] = row
                consumerRowCount += 1
            }
        } else if routeID == lastRouteID {
            row = lastRow                    // the same route as the previous request: no hashing
        } else {
            if let r = rows[routeID] {
                row = r
            } else {
                row = resolve(table, routeID: routeID, serviceID: ctx.serviceID, consumer: "")
                rows[routeID] = row
            }
            lastRouteID = routeID
            lastRow = row
        }
        guard row >= 0 else {
            // Counted per dropped observation; the master logs the growth (MetricsEndpoint).
            table.countDropped(row)
            return
        }
        _ = table.observe(row: row, flags: flags, statusKey: MetricsTable.statusKey(facts.status, kongSource: !facts.proxied),
                          kongMs: facts.kongMs, upstreamMs: facts.upstreamMs, requestMs: facts.requestMs,
                          ingress: facts.ingress, egress: facts.egress)
    }

    /// The row of (service, route, consumer) labels: once per label set and generation.
    private func resolve(_ table: MetricsTable, routeID: String, serviceID: String?, consumer: String) -> Int32 {
        guard let snap = snapshot else { return MetricsTable.full }
        if routeIndex == nil {
            var r: [String: Int] = [:], s: [String: Int] = [:]
            r.reserveCapacity(snap.routes.count)
            s.reserveCapacity(snap.services.count)
            for (i, x) in snap.routes.enumerated() { r[x.id] = i }
            for (i, x) in snap.services.enumerated() { s[x.id] = i }
            routeIndex = r
            serviceIndex = s
        }
        let routeLabel = routeIndex?[routeID].map { snap.routes[$0].name ?? routeID } ?? routeID
        var serviceLabel = ""
        if let sid = serviceID, let i = serviceIndex?[sid] { serviceLabel = snap.services[i].name ?? snap.services[i].host }
        var s = serviceLabel, r = routeLabel, c = consumer
        return s.withUTF8 { sb in
            r.withUTF8 { rb in
                c.withUTF8 { cb in
                    table.resolve(service: UnsafeRawBufferPointer(sb), route: UnsafeRawBufferPointer(rb), consumer: UnsafeRawBufferPointer(cb))
                }
            }
        }
    }
}
