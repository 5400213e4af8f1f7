// What the Status API and /metrics read from the Admin API's side (Kong 3.10 `kong/api/routes/health.lua`,
// `kong/status/ready.lua`, `kong/plugins/prometheus/exporter.lua`): the `memory` object of GET /status
// with Kong's `unit` / `scale` formatting (`kong.tools.string.bytes_to_str`), draining, the prometheus
// instances' global flags and the upstream target health series. No state of its own but `draining`.
import GWJSON
import GWStore

/// The node's memory as GET /status shows it (filled by the master from the shared segment).
public struct MemoryStatus: Sendable {
    /// One entry per worker: its pid and allocated heap bytes (Kong: workers_lua_vms).
    public var workers: [(pid: Int, allocated: Int)]
    /// One entry per shared-memory area (Kong: lua_shared_dicts).
    public var areas: [(name: String, allocated: Int, capacity: Int)]
    public init(workers: [(pid: Int, allocated: Int)], areas: [(name: String, allocated: Int, capacity: Int)]) {
        self.workers = workers; self.areas = areas
    }
}

/// One target address for kong_upstream_target_health (state: healthchecks_off|healthy|unhealthy|dns_error).
public struct TargetHealthRow: Sendable, Equatable {
    public var upstream: String, target: String, address: String, state: String
}

extension AdminAPI {
    /// Kong's bytes_to_str: nil unit or "b" → integer; k/m/g → "%.<scale>f KiB|MiB|GiB" (scale default 2).
    /// Throws Kong's message for a bad unit or a negative scale.
    static func bytesToString(_ bytes: Int, unit: String, scale: Int?) -> Result2 {
        let u = unit.lowercased()
        if u.isEmpty || u == "b" { return .ok(String(bytes)) }
        let s = scale ?? 2
        guard s >= 0 else { return .bad("scale must be equal or greater than 0") }
        let div: Double
        let suffix: String
        switch u {
        case "k": div = 1024; suffix = "KiB"
        case "m": div = 1024 * 1024; suffix = "MiB"
        case "g": div = 1024 * 1024 * 1024; suffix = "GiB"
        default: return .bad("invalid unit '\(unit)' (expected 'k/K', 'm/M', or 'g/G')")
        }
        return .ok(formatFixed(Double(bytes) / div, s) + " " + suffix)
    }

    enum Result2 { case ok(String), bad(String) }

    /// printf("%.<n>f") without Foundation (n ≤ 17; rounding half away from zero on the decimal digits).
    static func formatFixed(_ v: Double, _ n: Int) -> String {
        let digits = min(n, 17)
        var p: Double = 1
        for _ in 0 ..< digits { p *= 10 }
        let scaled = (v * p).rounded()
        guard scaled.isFinite, scaled < 9.0e18 else { return String(v) }
        let i = UInt64(scaled)
        let ip = i / UInt64(p), fp = i % UInt64(p)
        if digits == 0 { return String(ip) }
        var f = String(fp)
        while f.count < digits { f = "0" + f }
        return "\(ip).\(f)"
    }

    /// GET /status's `memory` for `unit` / `scale`, or Kong's 400 message.
    func memoryJSON(unit: String, scale: Int?) -> (JSON?, String?) {
        if case .bad(let m) = AdminAPI.bytesToString(0, unit: unit, scale: scale) { return (nil, m) }
        func fmt(_ b: Int) -> JSON {
            if case .ok(let s) = AdminAPI.bytesToString(b, unit: unit, scale: scale) {
                return unit.lowercased() == "b" ? JSON(b) : .string(s)
            }
            return .null
        }
        let m = context.memory?() ?? MemoryStatus(workers: [], areas: [])
        var dicts = JSONObject()
        for a in m.areas { dicts[a.name] = ["allocated_slabs": fmt(a.allocated), "capacity": fmt(a.capacity)] }
        let vms: [JSON] = m.workers.map { ["http_allocated_gc": fmt($0.allocated), "pid": JSON($0.pid)] }
        return (["workers_lua_vms": .array(vms), "lua_shared_dicts": .object(dicts)], nil)
    }

    /// The node id (GET / node_id, kong_node_info).
    public var nodeID: String { store.nodeID }

    /// kong_datastore_reachable: the database answers (DB-less: always).
    public var datastoreReachable: Bool { context.databaseOff || (context.databaseReachable?() ?? store.isReachable()) }

    /// Enabled prometheus instances: any at all (per-request series are written), and any with
    /// upstream_health_metrics (a global flag in Kong's exporter).
    public var prometheusInstances: (configured: Bool, upstreamHealth: Bool) {
        var any = false, health = false
        for p in store.all(.plugins) where p["name"]?.stringValue == "prometheus" && p["enabled"]?.boolValue != false {
            any = true
            if p["config"]?["upstream_health_metrics"]?.boolValue == true { health = true }
        }
        return (any, health)
    }

    /// Every upstream's targets and addresses with Kong's lower-case state (exporter.lua).
    public func targetHealthRows() -> [TargetHealthRow] {
        var out: [TargetHealthRow] = []
        for upDoc in store.all(.upstreams) {
            guard let upID = upDoc["id"]?.stringValue, let u = typed(upDoc) else { continue }
            let docs = upstreamTargets(upID)
            let targets = docs.compactMap { try? Target.decode(json: $0) }
            var healths: [String: TargetHealth] = [:]
            if let provider = context.health {
                for h in provider.targetHealth(upstream: u, targets: targets) { healths[h.targetID] = h }
            }
            let checker = u.healthchecks.checkerEnabled
            for (doc, t) in zip(docs, targets) {
                let name = doc["target"]?.stringValue ?? "\(t.host):\(t.port)"
                let h = healths[t.id]
                if let h, h.health == "DNS_ERROR" || h.addresses.isEmpty {
                    out.append(TargetHealthRow(upstream: u.name, target: name, address: "", state: "dns_error"))
                    continue
                }
                let addrs = h?.addresses ?? [AddressHealth(ip: t.host, port: t.port, weight: t.weight,
                                                           health: checker && t.weight > 0 ? "HEALTHY" : "HEALTHCHECKS_OFF")]
                for a in addrs {
                    let ip = a.ip.contains(":") ? "[\(a.ip)]" : a.ip
                    out.append(TargetHealthRow(upstream: u.name, target: name, address: "\(ip):\(a.port)", state: a.health.lowercased()))
                }
            }
        }
        return out
    }
}
