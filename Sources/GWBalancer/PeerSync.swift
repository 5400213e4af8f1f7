import GWStore

/// The addresses of one upstream at one configuration generation.
public struct UpstreamAddresses: Sendable {
    public var upstream: Upstream
    public var addresses: [ResolvedAddress]
    /// Targets whose host is not an IP literal (need DNS) or whose slot could not be found/created.
    public var unresolved: [Target]
}

extension PeerStateTable {
    /// Groups a snapshot's targets by upstream and turns IP-literal targets into `ResolvedAddress`es.
    /// `insert: true` (MASTER) creates missing records; `insert: false` (WORKER) only finds them — a worker that
    /// cannot find a record got a configuration the master has not registered yet (or the table is full): the
    /// target is listed in `unresolved`. Hostname targets are returned in `unresolved` for the caller's resolver.
    public func addresses(for snapshot: ConfigSnapshot, insert: Bool) -> [UpstreamAddresses] {
        var byUpstream: [String: [Target]] = [:]
        for t in snapshot.targets { byUpstream[t.upstreamID, default: []].append(t) }
        return snapshot.upstreams.map { up in
            var list: [ResolvedAddress] = []
            var unresolved: [Target] = []
            for t in byUpstream[up.id] ?? [] {
                guard let a = PeerAddress(ip: t.host, port: t.port) else { unresolved.append(t); continue }
                let slot = insert ? ensureSlot(upstream: up.name, address: a) : findSlot(upstream: up.name, address: a)
                guard let s = slot else { unresolved.append(t); continue }
                list.append(ResolvedAddress(address: a, weight: t.weight, slot: s, hostname: t.host))
            }
            return UpstreamAddresses(upstream: up, addresses: list, unresolved: unresolved)
        }
    }
}

/// Master-side bookkeeping of which records the current configuration uses. After each configuration (and each
/// DNS change) the master calls `apply` with every address in use; records that were in use and no longer are
/// `forget`-ed (back to HEALTHY, counters cleared), so a deleted and re-added target starts healthy (Kong #5581)
/// while every address that stays keeps its state across rebuilds (Kong #7652, #7835).
public struct PeerSlotTracker: Sendable {
    public private(set) var live: Set<PeerSlot> = []

    public init() {}

    /// Returns the transitions caused by forgetting (for logging).
    @discardableResult
    public mutating func apply(_ upstreams: [UpstreamAddresses], table: PeerStateTable,
                               now: Double) -> [HealthTransition] {
        var next = Set<PeerSlot>()
        for u in upstreams { for a in u.addresses { next.insert(a.slot) } }
        var transitions: [HealthTransition] = []
        for s in live.subtracting(next).sorted() {
            if let t = table.forget(s, now: now) { transitions.append(t) }
        }
        live = next
        return transitions
    }
}
