import GWStore

/// Kong's health names for the Admin API (`/upstreams/{u}/health`, KONG.md §5.6).
public enum KongHealth: String, Sendable {
    case healthy = "HEALTHY"
    case unhealthy = "UNHEALTHY"
    case healthchecksOff = "HEALTHCHECKS_OFF"
    case dnsError = "DNS_ERROR"
}

extension PeerStateTable {
    /// Per-address health: HEALTHCHECKS_OFF when the upstream has no checker or the target has weight 0,
    /// else HEALTHY / UNHEALTHY from the shared record.
    public func addressHealth(_ slot: PeerSlot, checkerEnabled: Bool, weight: Int) -> KongHealth {
        guard checkerEnabled, weight > 0 else { return .healthchecksOff }
        return isHealthy(slot) ? .healthy : .unhealthy
    }

    /// Per-target health from its addresses: none (DNS failed / not resolved) or a DNS error flag ⇒ DNS_ERROR;
    /// HEALTHY if any address is HEALTHY, else UNHEALTHY if any is UNHEALTHY, else HEALTHCHECKS_OFF.
    public func targetHealth(_ slots: [PeerSlot], checkerEnabled: Bool, weight: Int) -> KongHealth {
        guard !slots.isEmpty, !slots.allSatisfy({ healthState($0).dnsError }) else { return .dnsError }
        var sawUnhealthy = false
        for s in slots {
            switch addressHealth(s, checkerEnabled: checkerEnabled, weight: weight) {
            case .healthy: return .healthy
            case .unhealthy: sawUnhealthy = true
            default: break
            }
        }
        return sawUnhealthy ? .unhealthy : .healthchecksOff
    }

    /// Upstream-level `balancer_health` (threshold rule, KONG.md §4.2) computed from the shared records, for the
    /// master's Admin API which has no balancer objects: `total > 0 && available / total * 100 > threshold`.
    public func balancerHealthy(_ addresses: [ResolvedAddress], healthchecks: Healthchecks) -> Bool {
        var total = 0, available = 0
        for a in addresses where a.weight > 0 {
            total += a.weight
            if !healthchecks.checkerEnabled || isHealthy(a.slot) { available += a.weight }
        }
        guard total > 0 else { return false }
        return Double(available) * 100 / Double(total) > healthchecks.threshold
    }
}
