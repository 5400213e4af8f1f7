// The Admin API's view of target health, read from (and manual overrides written to) the shared
// peer table — the same records every worker reads on each pick.
import GWAdmin
import GWBalancer
import GWStore
import GWSystem

final class SharedHealthProvider: AdminHealthProvider {
    let table: PeerStateTable
    let log: ErrorLog
    /// target id → addresses the publisher resolved for it.
    var resolved: [String: [(ip: String, port: Int)]] = [:]
    /// target id → weight of each of those addresses (SRV answers carry their own weights).
    var weights: [String: [Int]] = [:]

    init(table: PeerStateTable, log: ErrorLog) {
        self.table = table
        self.log = log
    }

    func targetHealth(upstream: Upstream, targets: [Target]) -> [TargetHealth] {
        let checker = upstream.healthchecks.checkerEnabled
        return targets.map { t in
            let addrs = resolved[t.id] ?? (PeerAddress(ip: t.host, port: t.port) != nil ? [(t.host, t.port)] : [])
            if addrs.isEmpty { return TargetHealth(targetID: t.id, health: "DNS_ERROR", addresses: []) }
            var list: [AddressHealth] = []
            let w = weights[t.id]
            for (i, a) in addrs.enumerated() {
                var h = "HEALTHCHECKS_OFF"
                if checker && t.weight > 0, let s = table.findSlot(upstream: upstream.name, ip: a.ip, port: a.port) {
                    h = table.isHealthy(s) ? "HEALTHY" : "UNHEALTHY"
                }
                list.append(AddressHealth(ip: a.ip, port: a.port, weight: w.map { i < $0.count ? $0[i] : t.weight } ?? t.weight, health: h))
            }
            let overall = list.contains { $0.health == "HEALTHY" } ? "HEALTHY"
                : (list.contains { $0.health == "UNHEALTHY" } ? "UNHEALTHY" : "HEALTHCHECKS_OFF")
            return TargetHealth(targetID: t.id, health: overall, addresses: list)
        }
    }

    func setTargetHealth(upstream: Upstream, target: Target, address: String?, healthy: Bool) -> Bool {
        guard upstream.healthchecks.checkerEnabled else { return false }
        // A weight-0 target is not in Kong's checker: the set finds no address (204) and leaves no state
        // behind, so raising its weight later starts it HEALTHY.
        if target.weight == 0 { return true }
        var addrs = resolved[target.id] ?? [(target.host, target.port)]
        if let a = address {
            var ip = a
            var port = target.port
            if let (h, p) = splitAddress(a) { ip = h; port = p }
            addrs = addrs.filter { $0.ip == ip && $0.port == port }
            if addrs.isEmpty { addrs = [(ip, port)] }
        }
        for a in addrs {
            guard let s = table.ensureSlot(upstream: upstream.name, ip: a.ip, port: a.port) else { continue }
            if let t = table.setHealthy(s, healthy, now: PeerClock.unixSeconds()) {
                log.log(.notice, "upstream \(upstream.name) target \(a.ip):\(a.port) changed from \(t.oldStateName) to \(t.newStateName) (manual)")
            }
        }
        return true
    }

    private func splitAddress(_ s: String) -> (String, Int)? {
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            return (host, rest.hasPrefix(":") ? Int(rest.dropFirst()) ?? 8000 : 8000)
        }
        let parts = s.split(separator: ":")
        if parts.count == 2, let p = Int(parts[1]) { return (String(parts[0]), p) }
        return (s, 8000)
    }
}
