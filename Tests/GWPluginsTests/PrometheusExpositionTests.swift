import Testing
#if canImport(Glibc)
import Glibc
#endif
import GWPluginState
@testable import GWPlugins

/// The exposition format (Kong 3.10 kong/plugins/prometheus/prometheus.lua + exporter.lua) over a
/// MetricsTable laid out in ordinary memory.
@Suite struct PrometheusExpositionTests {
    func table(rows: Int = 8) -> MetricsTable {
        let size = 128 + rows * MetricsTable.rowSize
        let p = calloc(1, size)!   // zeroed like a fresh memfd; the test process keeps it
        return MetricsTable.format(at: p, size: size)!
    }

    func row(_ t: MetricsTable, _ s: String, _ r: String, _ c: String = "") -> Int32 {
        var s = s, r = r, c = c
        return s.withUTF8 { sb in r.withUTF8 { rb in c.withUTF8 { cb in
            t.resolve(service: UnsafeRawBufferPointer(sb), route: UnsafeRawBufferPointer(rb), consumer: UnsafeRawBufferPointer(cb))
        } } }
    }

    func lines(_ b: [UInt8]) -> [String] { String(decoding: b, as: UTF8.self).split(separator: "\n").map(String.init) }

    @Test func countersHistogramsAndOrder() {
        let t = table()
        let all = MetricsTable.flagStatus | MetricsTable.flagLatency | MetricsTable.flagBandwidth
        let a = row(t, "svc", "r1")
        #expect(a >= 0)
        #expect(row(t, "svc", "r1") == a)                     // the same label set → the same row
        for ms in [0, 1, 3, 30, 7000] {
            _ = t.observe(row: a, flags: all, statusKey: MetricsTable.statusKey(200, kongSource: false),
                          kongMs: ms, upstreamMs: ms, requestMs: ms, ingress: 10, egress: 100)
        }
        _ = t.observe(row: a, flags: all, statusKey: MetricsTable.statusKey(502, kongSource: true),
                      kongMs: 2, upstreamMs: -1, requestMs: 2, ingress: 5, egress: 0)
        var node = NodeMetrics()
        node.nodeID = "n1"
        node.pluginConfigured = true
        let out = lines(PrometheusExposition.render(node: node, table: t))
        #expect(out.contains("kong_http_requests_total{service=\"svc\",route=\"r1\",code=\"200\",source=\"service\",workspace=\"default\",consumer=\"\"} 5"))
        #expect(out.contains("kong_http_requests_total{service=\"svc\",route=\"r1\",code=\"502\",source=\"kong\",workspace=\"default\",consumer=\"\"} 1"))
        #expect(out.contains("kong_bandwidth_bytes{service=\"svc\",route=\"r1\",direction=\"egress\",workspace=\"default\",consumer=\"\"} 500"))
        #expect(out.contains("kong_bandwidth_bytes{service=\"svc\",route=\"r1\",direction=\"ingress\",workspace=\"default\",consumer=\"\"} 55"))
        // Cumulative buckets, le without padding, +Inf last; _count then _sum.
        #expect(out.contains("kong_kong_latency_ms_bucket{service=\"svc\",route=\"r1\",workspace=\"default\",le=\"1\"} 2"))
        #expect(out.contains("kong_kong_latency_ms_bucket{service=\"svc\",route=\"r1\",workspace=\"default\",le=\"2\"} 3"))
        #expect(out.contains("kong_kong_latency_ms_bucket{service=\"svc\",route=\"r1\",workspace=\"default\",le=\"6000\"} 5"))
        #expect(out.contains("kong_kong_latency_ms_bucket{service=\"svc\",route=\"r1\",workspace=\"default\",le=\"+Inf\"} 6"))
        #expect(out.contains("kong_kong_latency_ms_count{service=\"svc\",route=\"r1\",workspace=\"default\"} 6"))
        #expect(out.contains("kong_kong_latency_ms_sum{service=\"svc\",route=\"r1\",workspace=\"default\"} 7036"))
        #expect(out.contains("kong_upstream_latency_ms_count{service=\"svc\",route=\"r1\",workspace=\"default\"} 5"))
        #expect(out.contains("kong_request_latency_ms_bucket{service=\"svc\",route=\"r1\",workspace=\"default\",le=\"25\"} 4"))
        #expect(out.contains("kong_nginx_metric_errors_total 0"))
        #expect(out.contains("kong_node_info{node_id=\"n1\",version=\"3.10.0\"} 1"))
        // Every family has HELP and TYPE before its first series; families in Kong's (sorted) order.
        let families = out.filter { $0.hasPrefix("# TYPE kong_") }.map { $0.split(separator: " ")[2] }
        #expect(families == families.sorted())
        #expect(out.contains("# TYPE kong_kong_latency_ms histogram"))
        #expect(out.contains("# TYPE kong_http_requests_total counter"))
        for (i, l) in out.enumerated() where l.hasPrefix("kong_") {
            let name = String(l.prefix { $0 != "{" && $0 != " " })
            let family = ["_bucket", "_count", "_sum"].reduce(name) { n, s in
                n.hasSuffix(s) && out.contains("# TYPE \(n.dropLast(s.count)) histogram") ? String(n.dropLast(s.count)) : n
            }
            #expect(out[..<i].contains("# HELP \(family) ") || out[..<i].contains { $0.hasPrefix("# HELP \(family) ") }, "\(l)")
        }
        let b = out.firstIndex { $0.hasPrefix("kong_kong_latency_ms_bucket") }!, c = out.firstIndex { $0.hasPrefix("kong_kong_latency_ms_count") }!
        let s = out.firstIndex { $0.hasPrefix("kong_kong_latency_ms_sum") }!
        #expect(b < c && c < s)
    }

    @Test func flagsLimitWhatIsCounted() {
        let t = table()
        let a = row(t, "svc", "r")
        _ = t.observe(row: a, flags: MetricsTable.flagStatus, statusKey: MetricsTable.statusKey(200, kongSource: false),
                      kongMs: 1, upstreamMs: 1, requestMs: 1, ingress: 1, egress: 1)
        var node = NodeMetrics()
        node.pluginConfigured = true
        let text = String(decoding: PrometheusExposition.render(node: node, table: t), as: UTF8.self)
        #expect(text.contains("kong_http_requests_total"))
        #expect(!text.contains("latency_ms"))
        #expect(!text.contains("kong_bandwidth_bytes"))
        // No instance configured: node-level gauges only.
        node.pluginConfigured = false
        let bare = String(decoding: PrometheusExposition.render(node: node, table: t), as: UTF8.self)
        #expect(!bare.contains("kong_http_requests_total"))
        #expect(bare.contains("kong_datastore_reachable 1"))
        #expect(bare.contains("kong_nginx_connections_total{node_id=\"\",subsystem=\"http\",state=\"accepted\"} 0"))
    }

    @Test func consumersAreSummedInHistogramsButNotInCounters() {
        let t = table()
        let x = row(t, "s", "r", "ann"), y = row(t, "s", "r", "bob")
        #expect(x != y)
        let all = MetricsTable.flagStatus | MetricsTable.flagLatency
        _ = t.observe(row: x, flags: all, statusKey: MetricsTable.statusKey(200, kongSource: false), kongMs: 1, upstreamMs: 1, requestMs: 1, ingress: 0, egress: 0)
        _ = t.observe(row: y, flags: all, statusKey: MetricsTable.statusKey(200, kongSource: false), kongMs: 1, upstreamMs: 1, requestMs: 1, ingress: 0, egress: 0)
        var node = NodeMetrics()
        node.pluginConfigured = true
        let out = lines(PrometheusExposition.render(node: node, table: t))
        #expect(out.contains("kong_http_requests_total{service=\"s\",route=\"r\",code=\"200\",source=\"service\",workspace=\"default\",consumer=\"ann\"} 1"))
        #expect(out.contains("kong_http_requests_total{service=\"s\",route=\"r\",code=\"200\",source=\"service\",workspace=\"default\",consumer=\"bob\"} 1"))
        #expect(out.contains("kong_request_latency_ms_count{service=\"s\",route=\"r\",workspace=\"default\"} 2"))
    }

    @Test func escapingAndUTF8() {
        #expect(PrometheusExposition.escape(Array("a\"b\\c\nd".utf8)) == Array("a\\\"b\\\\c\\nd".utf8))
        #expect(PrometheusExposition.escape(Array("café ☕".utf8)) == Array("café ☕".utf8))
        // Invalid UTF-8 is cut at the first bad byte (Kong's validate_utf8_string).
        #expect(PrometheusExposition.escape([0x61, 0x62, 0xC3, 0x28, 0x63]) == [0x61, 0x62])
        #expect(PrometheusExposition.escape([0x61, 0xED, 0xA0, 0x80]) == [0x61])          // surrogate
        #expect(PrometheusExposition.escape([0x61, 0xF0, 0x9F, 0x98]) == [0x61])          // truncated 4-byte
    }

    @Test func fullTableAndCodeSlotsAreCountedNotFatal() {
        let t = table(rows: 2)
        #expect(row(t, "a", "1") >= 0)
        #expect(row(t, "a", "2") >= 0)
        #expect(row(t, "a", "3") == MetricsTable.full)
        #expect(row(t, String(repeating: "x", count: 400), "r") == MetricsTable.tooLong)
        let r = row(t, "a", "1")
        for code in 200 ..< 217 {
            _ = t.observe(row: r, flags: MetricsTable.flagStatus, statusKey: MetricsTable.statusKey(code, kongSource: false),
                          kongMs: 0, upstreamMs: 0, requestMs: 0, ingress: 0, egress: 0)
        }
        let s = t.stats
        #expect(s.used == 2 && s.capacity == 2)
        #expect(s.full == 1 && s.tooLong == 1 && s.codesFull == 1)
        var node = NodeMetrics()
        node.pluginConfigured = true
        let out = lines(PrometheusExposition.render(node: node, table: t))
        #expect(out.contains("kong_nginx_metric_errors_total 3"))
        #expect(out.contains("gateway_metrics_dropped_total{reason=\"table_full\"} 1"))
        #expect(out.contains("gateway_metrics_rows{state=\"used\"} 2"))
    }

    @Test func targetHealthHasFourStatesPerAddress() {
        var node = NodeMetrics()
        node.targetHealth = [.init(upstream: "u", target: "t:80", address: "10.0.0.1:80", state: "unhealthy"),
                             .init(upstream: "u", target: "n:80", address: "", state: "dns_error")]
        let out = lines(PrometheusExposition.render(node: node, table: nil))
        #expect(out.contains("kong_upstream_target_health{upstream=\"u\",target=\"t:80\",address=\"10.0.0.1:80\",state=\"unhealthy\",subsystem=\"http\"} 1"))
        #expect(out.contains("kong_upstream_target_health{upstream=\"u\",target=\"t:80\",address=\"10.0.0.1:80\",state=\"healthy\",subsystem=\"http\"} 0"))
        #expect(out.contains("kong_upstream_target_health{upstream=\"u\",target=\"n:80\",address=\"\",state=\"dns_error\",subsystem=\"http\"} 1"))
        #expect(out.filter { $0.hasPrefix("kong_upstream_target_health{") }.count == 8)
    }

    @Test func gatewaySeries() {
        var node = NodeMetrics()
        node.workers = [.init(index: 1, pid: 20, requests: 7, connectionsActive: 1, connectionsAccepted: 3, configGeneration: 4, heapBytes: 1000),
                        .init(index: 0, pid: 10, requests: 5, connectionsActive: 0, connectionsAccepted: 2, configGeneration: 4, heapBytes: 900)]
        node.configGeneration = 4
        node.publishedAt = 1700000000.25
        node.propagationSeconds = 0.003
        let out = lines(PrometheusExposition.render(node: node, table: nil))
        #expect(out.contains("gateway_worker_requests_total{worker=\"0\",pid=\"10\"} 5"))
        #expect(out.contains("gateway_worker_requests_total{worker=\"1\",pid=\"20\"} 7"))
        #expect(out.contains("gateway_config_generation 4"))
        #expect(out.contains("gateway_config_published_timestamp_seconds 1700000000.250"))
        #expect(out.contains("gateway_config_propagation_seconds 0.003"))
        #expect(out.contains("kong_memory_workers_lua_vms_bytes{node_id=\"\",pid=\"10\",kong_subsystem=\"http\"} 900"))
    }
}
