// The prometheus plugin's exposition (Kong 3.10 `kong/plugins/prometheus/{exporter,prometheus}.lua`):
// the text format Kong's /metrics writes, from the shared MetricsTable and the node's numbers.
// Pure: the caller (the master's GET /metrics) gathers NodeMetrics; unit-tested on a table in memory.
//
// Kong's shape: every family has `# HELP` / `# TYPE` before its first series; series are in Kong's
// order (its sorted shm keys: families alphabetically, label sets by their label text, a histogram's
// `_bucket` lines — `le` numeric, `+Inf` last — then its `_count`, then its `_sum` lines); `le` values
// without padding; label values escaped as Prometheus requires (`\` `"` and newline), invalid UTF-8
// cut at the first bad byte (as Kong). Histograms carry service, route, workspace: the rows of one
// (service, route) with different consumers are summed. Per-request families are written only when
// some prometheus instance is configured; the gateway's own series follow, prefixed `gateway_`.
import GWPluginState

/// The node-level numbers of one scrape (gathered by the master).
public struct NodeMetrics {
    public struct Worker {
        public var index: Int, pid: Int, requests: UInt64, connectionsActive: UInt64, connectionsAccepted: UInt64
        public var configGeneration: UInt64, heapBytes: UInt64
        public init(index: Int, pid: Int, requests: UInt64, connectionsActive: UInt64, connectionsAccepted: UInt64,
                    configGeneration: UInt64, heapBytes: UInt64) {
            self.index = index; self.pid = pid; self.requests = requests; self.connectionsActive = connectionsActive
            self.connectionsAccepted = connectionsAccepted; self.configGeneration = configGeneration; self.heapBytes = heapBytes
        }
    }
    public struct TargetHealth {
        public var upstream: String, target: String, address: String, state: String
        public init(upstream: String, target: String, address: String, state: String) {
            self.upstream = upstream; self.target = target; self.address = address; self.state = state
        }
    }
    public var nodeID = ""
    public var version = "3.10.0"
    public var datastoreReachable = true
    /// nginx stub_status: accepted, handled, total (requests), active, reading, writing, waiting.
    public var accepted: UInt64 = 0, handled: UInt64 = 0, totalRequests: UInt64 = 0
    public var active: UInt64 = 0, reading: UInt64 = 0, writing: UInt64 = 0, waiting: UInt64 = 0
    /// (name, allocated bytes, capacity bytes) per shared-memory area.
    public var sharedDicts: [(name: String, allocated: Int, capacity: Int)] = []
    public var workers: [Worker] = []
    /// nil: no instance has upstream_health_metrics.
    public var targetHealth: [TargetHealth]? = nil
    /// Some prometheus instance is configured (the per-request families are written).
    public var pluginConfigured = false
    public var configGeneration: UInt64 = 0
    /// Wall clock (s) of the last publication, and how long its propagation to every worker took (nil: not done).
    public var publishedAt: Double = 0
    public var propagationSeconds: Double? = nil
    public init() {}
}

public enum PrometheusExposition {
    public static let contentType = "text/plain; charset=UTF-8"
    static let kongBounds: [Int] = [1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000]
    static let upstreamBounds: [Int] = [25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000]

    /// A label value as Prometheus reads it: `\` → `\\`, `"` → `\"`, newline → `\n`; invalid UTF-8 cut.
    public static func escape(_ v: [UInt8]) -> [UInt8] {
        let n = validUTF8Prefix(v)
        var out: [UInt8] = []
        out.reserveCapacity(n + 2)
        for i in 0 ..< n {
            switch v[i] {
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x0A: out.append(0x5C); out.append(0x6E)
            case let c: out.append(c)
            }
        }
        return out
    }

    /// Length of the longest valid UTF-8 prefix (Kong's validate_utf8_string, Unicode table 3-7).
    static func validUTF8Prefix(_ v: [UInt8]) -> Int {
        var i = 0
        let n = v.count
        while i < n {
            let c = v[i]
            if c < 0x80 { i += 1; continue }
            var need = 0, lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch c {
            case 0xC2 ... 0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1 ... 0xEC, 0xEE ... 0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1 ... 0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return i
            }
            if i + need >= n { return i }
            for j in 1 ... need {
                let b = v[i + j]
                if b < lo || b > hi { return i }
                lo = 0x80; hi = 0xBF
            }
            i += need + 1
        }
        return n
    }

    /// One (service, route) of the table: its consumers' rows.
    struct Group {
        var service: [UInt8], route: [UInt8]          // escaped
        /// `service="…",route="…"`, written once per line.
        var labels: [UInt8]
        var sortKey: [UInt8]
        /// consumerKey: the escaped consumer and its closing quote (Kong's key order).
        var codes: [(code: Int, kong: Bool, consumer: [UInt8], consumerKey: [UInt8], count: UInt64)] = []
        var bandwidth: [(egress: Bool, consumer: [UInt8], consumerKey: [UInt8], bytes: UInt64)] = []
        var kong = [UInt64](repeating: 0, count: MetricsRowView.kongBuckets), kongSum: UInt64 = 0
        var upstream = [UInt64](repeating: 0, count: MetricsRowView.upstreamBuckets), upstreamSum: UInt64 = 0
        var request = [UInt64](repeating: 0, count: MetricsRowView.upstreamBuckets), requestSum: UInt64 = 0
    }

    static func groups(_ table: MetricsTable) -> [Group] {
        var index: [[UInt8]: Int] = [:]
        var out: [Group] = []
        table.forEachRow { r in
            let s = escape(r.service), rt = escape(r.route), c = escape(r.consumer)
            let ck = c + [0x22]
            let key = s + [0x22, 0] + rt + [0x22]
            let gi: Int
            if let i = index[key] { gi = i } else {
                gi = out.count
                index[key] = gi
                out.append(Group(service: s, route: rt, labels: Array("service=\"".utf8) + s + Array("\",route=\"".utf8) + rt + [0x22],
                                 sortKey: s + [0x22] + rt + [0x22]))
            }
            for i in 0 ..< MetricsRowView.codeSlots {
                guard let code = r.code(i) else { break }
                out[gi].codes.append((code.status, code.kong, c, ck, code.count))
            }
            let inB = r.ingress, egB = r.egress
            if egB > 0 { out[gi].bandwidth.append((true, c, ck, egB)) }
            if inB > 0 { out[gi].bandwidth.append((false, c, ck, inB)) }
            for i in 0 ..< MetricsRowView.kongBuckets { out[gi].kong[i] &+= r.kong(i) }
            for i in 0 ..< MetricsRowView.upstreamBuckets {
                out[gi].upstream[i] &+= r.upstream(i)
                out[gi].request[i] &+= r.request(i)
            }
            out[gi].kongSum &+= r.kongSum; out[gi].upstreamSum &+= r.upstreamSum; out[gi].requestSum &+= r.requestSum
        }
        out.sort { $0.sortKey.lexicographicallyPrecedes($1.sortKey) }
        return out
    }

    /// The whole /metrics body.
    public static func render(node: NodeMetrics, table: MetricsTable?) -> [UInt8] {
        var w = ExpositionWriter()
        let groups = node.pluginConfigured ? table.map { Self.groups($0) } ?? [] : []
        w.reserveCapacity(8192 + groups.count * 8192)
        let nodeID = escape(Array(node.nodeID.utf8))

        if groups.contains(where: { !$0.bandwidth.isEmpty }) {
            w.family("bandwidth_bytes", "Total bandwidth (ingress/egress) throughput in bytes", "counter")
            for g in groups {
                let sorted = g.bandwidth.count < 2 ? g.bandwidth : g.bandwidth.sorted { a, b in
                    a.egress != b.egress ? a.egress : a.consumerKey.lexicographicallyPrecedes(b.consumerKey)
                }
                for b in sorted {
                    w.put("kong_bandwidth_bytes{"); w.put(g.labels)
                    w.put(b.egress ? ",direction=\"egress\",workspace=\"default\",consumer=\"" : ",direction=\"ingress\",workspace=\"default\",consumer=\"")
                    w.put(b.consumer); w.put("\"} "); w.int(b.bytes); w.nl()
                }
            }
        }
        w.family("datastore_reachable", "Datastore reachable from Kong, 0 is unreachable", "gauge")
        w.put("kong_datastore_reachable "); w.int(node.datastoreReachable ? 1 : 0); w.nl()

        if groups.contains(where: { !$0.codes.isEmpty }) {
            w.family("http_requests_total", "HTTP status codes per consumer/service/route in Kong", "counter")
            for g in groups {
                // HTTP statuses have three digits: numeric order is Kong's string order.
                let sorted = g.codes.sorted { a, b in
                    if a.code != b.code { return a.code < b.code }
                    if a.kong != b.kong { return a.kong }     // "kong" < "service"
                    return a.consumerKey.lexicographicallyPrecedes(b.consumerKey)
                }
                for c in sorted {
                    w.put("kong_http_requests_total{"); w.put(g.labels)
                    w.put(",code=\""); w.int(UInt64(c.code))
                    w.put(c.kong ? "\",source=\"kong\",workspace=\"default\",consumer=\"" : "\",source=\"service\",workspace=\"default\",consumer=\"")
                    w.put(c.consumer); w.put("\"} "); w.int(c.count); w.nl()
                }
            }
        }
        histogram(&w, groups, "kong_latency_ms", "Latency added by Kong and enabled plugins for each service/route in Kong",
                  kongBounds, \.kong, \.kongSum)

        w.family("memory_lua_shared_dict_bytes", "Allocated slabs in bytes in a shared_dict", "gauge")
        let dicts = node.sharedDicts.sorted { $0.name < $1.name }
        for d in dicts {
            w.put("kong_memory_lua_shared_dict_bytes{node_id=\""); w.put(nodeID); w.put("\",shared_dict=\"")
            w.put(escape(Array(d.name.utf8))); w.put("\",kong_subsystem=\"http\"} "); w.int(UInt64(d.allocated)); w.nl()
        }
        w.family("memory_lua_shared_dict_total_bytes", "Total capacity in bytes of a shared_dict", "gauge")
        for d in dicts {
            w.put("kong_memory_lua_shared_dict_total_bytes{node_id=\""); w.put(nodeID); w.put("\",shared_dict=\"")
            w.put(escape(Array(d.name.utf8))); w.put("\",kong_subsystem=\"http\"} "); w.int(UInt64(d.capacity)); w.nl()
        }
        w.family("memory_workers_lua_vms_bytes", "Allocated bytes in worker Lua VM", "gauge")
        for wk in node.workers.sorted(by: { String($0.pid) < String($1.pid) }) {
            w.put("kong_memory_workers_lua_vms_bytes{node_id=\""); w.put(nodeID); w.put("\",pid=\""); w.int(UInt64(wk.pid))
            w.put("\",kong_subsystem=\"http\"} "); w.int(wk.heapBytes); w.nl()
        }
        w.family("nginx_connections_total", "Number of connections by subsystem", "gauge")
        for (state, v) in [("accepted", node.accepted), ("active", node.active), ("handled", node.handled),
                           ("reading", node.reading), ("total", node.totalRequests), ("waiting", node.waiting),
                           ("writing", node.writing)] {
            w.put("kong_nginx_connections_total{node_id=\""); w.put(nodeID); w.put("\",subsystem=\"http\",state=\"")
            w.put(Array(state.utf8)); w.put("\"} "); w.int(v); w.nl()
        }
        w.family("nginx_metric_errors_total", "Number of nginx-lua-prometheus errors", "counter")
        var errors: UInt64 = 0
        if let s = table?.stats { errors = s.full &+ s.codesFull &+ s.tooLong }
        w.put("kong_nginx_metric_errors_total "); w.int(errors); w.nl()
        w.family("nginx_requests_total", "Number of requests total", "gauge")
        w.put("kong_nginx_requests_total{node_id=\""); w.put(nodeID); w.put("\",subsystem=\"http\"} "); w.int(node.totalRequests); w.nl()
        w.family("node_info", "Kong Node metadata information", "gauge")
        w.put("kong_node_info{node_id=\""); w.put(nodeID); w.put("\",version=\""); w.put(Array(node.version.utf8)); w.put("\"} 1\n")

        histogram(&w, groups, "request_latency_ms", "Total latency incurred during requests for each service/route in Kong",
                  upstreamBounds, \.request, \.requestSum)
        histogram(&w, groups, "upstream_latency_ms", "Latency added by upstream response for each service/route in Kong",
                  upstreamBounds, \.upstream, \.upstreamSum)

        if let th = node.targetHealth {
            w.family("upstream_target_health", "Health status of targets of upstream. States = healthchecks_off|healthy|unhealthy|dns_error, value is 1 when state is populated.", "gauge")
            var lines: [[UInt8]] = []
            for t in th {
                for state in ["dns_error", "healthchecks_off", "healthy", "unhealthy"] {
                    let l = ExpositionWriter(capacity: 256)
                    l.put("kong_upstream_target_health{upstream=\""); l.put(escape(Array(t.upstream.utf8)))
                    l.put("\",target=\""); l.put(escape(Array(t.target.utf8)))
                    l.put("\",address=\""); l.put(escape(Array(t.address.utf8)))
                    l.put("\",state=\""); l.put(Array(state.utf8)); l.put("\",subsystem=\"http\"} ")
                    l.int(t.state == state ? 1 : 0); l.nl()
                    lines.append(l.bytes)
                }
            }
            lines.sort { $0.lexicographicallyPrecedes($1) }
            for l in lines { w.put(l) }
        }
        gatewaySeries(&w, node, table)
        return w.bytes
    }

    static func histogram(_ w: inout ExpositionWriter, _ groups: [Group], _ name: String, _ help: String, _ bounds: [Int],
                          _ buckets: KeyPath<Group, [UInt64]>, _ sum: KeyPath<Group, UInt64>) {
        let present = groups.filter { g in g[keyPath: buckets].contains { $0 > 0 } }
        guard !present.isEmpty else { return }
        w.family(name, help, "histogram")
        let bucket = Array("kong_\(name)_bucket{".utf8), count = Array("kong_\(name)_count{".utf8)
        let sumName = Array("kong_\(name)_sum{".utf8)
        let le: [[UInt8]] = bounds.map { Array(",workspace=\"default\",le=\"\($0)\"} ".utf8) } + [Array(",workspace=\"default\",le=\"+Inf\"} ".utf8)]
        for g in present {
            var cum: UInt64 = 0
            let b = g[keyPath: buckets]
            for i in 0 ... bounds.count {
                cum &+= b[i]
                w.put(bucket); w.put(g.labels); w.put(le[i]); w.int(cum); w.nl()
            }
        }
        for g in present {
            w.put(count); w.put(g.labels); w.put(",workspace=\"default\"} "); w.int(g[keyPath: buckets].reduce(0, &+)); w.nl()
        }
        for g in present {
            w.put(sumName); w.put(g.labels); w.put(",workspace=\"default\"} "); w.int(g[keyPath: sum]); w.nl()
        }
    }

    /// The gateway's own series (per worker, configuration propagation, the metrics table).
    static func gatewaySeries(_ w: inout ExpositionWriter, _ node: NodeMetrics, _ table: MetricsTable?) {
        let workers = node.workers.sorted { $0.index < $1.index }
        func perWorker(_ name: String, _ help: String, _ type: String, _ v: (NodeMetrics.Worker) -> UInt64) {
            w.put("# HELP \(name) \(help)\n# TYPE \(name) \(type)\n")
            for wk in workers {
                w.put(Array(name.utf8)); w.put("{worker=\""); w.int(UInt64(wk.index)); w.put("\",pid=\""); w.int(UInt64(wk.pid))
                w.put("\"} "); w.int(v(wk)); w.nl()
            }
        }
        perWorker("gateway_worker_requests_total", "Requests served by each worker process", "counter") { $0.requests }
        perWorker("gateway_worker_connections_accepted_total", "Client connections accepted by each worker process", "counter") { $0.connectionsAccepted }
        perWorker("gateway_worker_connections_active", "Open client connections of each worker process", "gauge") { $0.connectionsActive }
        perWorker("gateway_worker_config_generation", "Configuration generation each worker process has applied", "gauge") { $0.configGeneration }
        w.put("# HELP gateway_config_generation Configuration generation last published by the master\n# TYPE gateway_config_generation gauge\n")
        w.put("gateway_config_generation "); w.int(node.configGeneration); w.nl()
        w.put("# HELP gateway_config_published_timestamp_seconds When the last configuration generation was published (unix time)\n# TYPE gateway_config_published_timestamp_seconds gauge\n")
        w.put("gateway_config_published_timestamp_seconds "); w.double(node.publishedAt); w.nl()
        if let p = node.propagationSeconds {
            w.put("# HELP gateway_config_propagation_seconds Time from the last publication until every worker had applied it\n# TYPE gateway_config_propagation_seconds gauge\n")
            w.put("gateway_config_propagation_seconds "); w.double(p); w.nl()
        }
        if let s = table?.stats {
            w.put("# HELP gateway_metrics_rows Rows of the prometheus_metrics table (one per service, route and consumer)\n# TYPE gateway_metrics_rows gauge\n")
            w.put("gateway_metrics_rows{state=\"capacity\"} "); w.int(UInt64(s.capacity)); w.nl()
            w.put("gateway_metrics_rows{state=\"used\"} "); w.int(UInt64(s.used)); w.nl()
            w.put("# HELP gateway_metrics_dropped_total Observations the prometheus_metrics table could not count\n# TYPE gateway_metrics_dropped_total counter\n")
            w.put("gateway_metrics_dropped_total{reason=\"codes_full\"} "); w.int(s.codesFull); w.nl()
            w.put("gateway_metrics_dropped_total{reason=\"labels_too_long\"} "); w.int(s.tooLong); w.nl()
            w.put("gateway_metrics_dropped_total{reason=\"table_full\"} "); w.int(s.full); w.nl()
        }
    }
}

/// Bytes of the exposition: a growing raw buffer (a put is one capacity check and a memcpy; a
/// scrape of 1,000 services writes ~100,000 lines), turned into an array once at the end.
final class ExpositionWriter {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 1 << 16) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    func reserveCapacity(_ n: Int) { if n > capacity { grow(n - count) } }

    private func grow(_ need: Int) {
        var c = capacity * 2
        while c - count < need { c *= 2 }
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        b.update(from: base, count: count)
        base.deallocate()
        base = b
        capacity = c
    }

    @inline(__always) func put(_ p: UnsafeRawBufferPointer) {
        let n = p.count
        if capacity - count < n { grow(n) }
        if n > 0 { (base + count).update(from: p.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n) }
        count += n
    }
    @inline(__always) func put(_ s: StaticString) {
        put(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
    @inline(__always) func put(_ b: [UInt8]) { b.withUnsafeBytes { put($0) } }
    func put(_ s: String) { var s = s; s.withUTF8 { put(UnsafeRawBufferPointer($0)) } }
    @inline(__always) func byte(_ b: UInt8) {
        if capacity == count { grow(1) }
        base[count] = b
        count += 1
    }
    @inline(__always) func nl() { byte(0x0A) }
    func int(_ v: UInt64) {
        if v < 10 { byte(0x30 + UInt8(v)); return }
        if capacity - count < 20 { grow(20) }
        var digits = 0
        var x = v
        while x > 0 { digits += 1; x /= 10 }
        x = v
        var i = count + digits - 1
        while x > 0 { base[i] = 0x30 + UInt8(x % 10); x /= 10; i -= 1 }
        count += digits
    }
    func double(_ d: Double) {
        let ms = UInt64(max(0, (d * 1000).rounded()))
        int(ms / 1000)
        let f = ms % 1000
        if f != 0 {
            byte(0x2E)
            byte(0x30 + UInt8(f / 100)); byte(0x30 + UInt8(f / 10 % 10)); byte(0x30 + UInt8(f % 10))
        }
    }
    func family(_ name: String, _ help: String, _ type: String) {
        put("# HELP kong_\(name) \(help)\n# TYPE kong_\(name) \(type)\n")
    }
    /// The bytes written (one copy).
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }
}
