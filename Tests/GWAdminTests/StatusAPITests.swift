import Testing
import GWJSON
@testable import GWAdmin

/// GET /status's memory (kong/api/routes/health.lua + kong.tools.string.bytes_to_str), /status/ready
/// draining (kong/status/ready.lua) and the prometheus schema.
@Suite struct StatusAPITests {
    @Test func bytesToStringAsKong() {
        func s(_ b: Int, _ u: String, _ sc: Int? = nil) -> String? {
            if case .ok(let v) = AdminAPI.bytesToString(b, unit: u, scale: sc) { return v }
            return nil
        }
        #expect(s(5497558, "b") == "5497558")
        #expect(s(5497558, "m") == "5.24 MiB")
        #expect(s(5497558, "G", 3) == "0.005 GiB")
        #expect(s(5 << 20, "k", 0) == "5120 KiB")
        #expect(s(1536, "K", 1) == "1.5 KiB")
        if case .bad(let m) = AdminAPI.bytesToString(0, unit: "x", scale: nil) {
            #expect(m == "invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')")
        } else { Issue.record("unit x accepted") }
        if case .bad(let m) = AdminAPI.bytesToString(0, unit: "m", scale: -1) {
            #expect(m == "scale must be equal or greater than 0")
        } else { Issue.record("scale -1 accepted") }
    }

    @Test func memoryObject() throws {
        let h = try Harness()
        h.api.context.memory = { MemoryStatus(workers: [(pid: 11, allocated: 3 << 20)], areas: [(name: "prometheus_metrics", allocated: 1024, capacity: 5 << 20)]) }
        var r = h.req("GET", "/status")
        #expect(r.0 == 200)
        #expect(r.1["memory"]?["workers_lua_vms"] == [["http_allocated_gc": "3.00 MiB", "pid": 11]])
        #expect(r.1["memory"]?["lua_shared_dicts"]?["prometheus_metrics"] == ["allocated_slabs": "0.00 MiB", "capacity": "5.00 MiB"])
        r = h.req("GET", "/status?unit=b")
        #expect(r.1["memory"]?["lua_shared_dicts"]?["prometheus_metrics"]?["capacity"] == 5242880)
        r = h.req("GET", "/status?scale=abc")     // tonumber("abc") is nil: the default scale
        #expect(r.0 == 200)
        #expect(h.req("GET", "/status?scale=-2") == (400, ["message": "scale must be equal or greater than 0"]))
        #expect(h.req("GET", "/status?unit=b&scale=-2").0 == 200)    // bytes ignore the scale (Kong)
    }

    @Test func drainingAndPrometheusSchema() throws {
        let h = try Harness()
        #expect(h.req("POST", "/status/ready", ["status": "other"]).0 == 400)
        #expect(h.req("POST", "/status/ready", ["status": "draining"]).0 == 204)
        #expect(h.req("GET", "/status/ready") == (503, ["message": "draining"]))
        let ok = h.req("POST", "/plugins", ["name": "prometheus"])
        #expect(ok.0 == 201)
        #expect(ok.1["config"] == ["per_consumer": false, "status_code_metrics": false, "ai_metrics": false, "latency_metrics": false,
                                   "bandwidth_metrics": false, "upstream_health_metrics": false, "wasm_metrics": false])
        let bad = h.req("POST", "/plugins", ["name": "prometheus", "config": ["wasm_metrics": true], "instance_name": "x"])
        #expect(bad.0 == 400)
    }
}
