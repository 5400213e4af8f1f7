import Testing
import GWStore
@testable import GWBalancer

@Suite struct PeerSyncTests {
    func snapshot(_ targets: [(String, Int)], hc: Healthchecks? = nil) -> ConfigSnapshot {
        var up = upstream("api.up", configure: passiveHC(http: 1))
        if let hc { up.healthchecks = hc }
        return ConfigSnapshot(upstreams: [up], targets: targets.enumerated().map { (i, t) in
            Target(id: "t\(i)", upstreamID: up.id, target: "\(t.0):\(t.1)", host: t.0, port: t.1)
        })
    }

    @Test func stateSurvivesRebuildsAndResetsOnlyForRemovedTargets() {
        let t = makeSharedTable()
        var tracker = PeerSlotTracker()
        let v1 = t.addresses(for: snapshot([("10.0.0.1", 80), ("10.0.0.2", 80), ("db.local", 80)]), insert: true)
        #expect(v1[0].addresses.count == 2 && v1[0].unresolved.map(\.host) == ["db.local"])
        tracker.apply(v1, table: t, now: 1)
        let a1 = v1[0].addresses[0].slot, a2 = v1[0].addresses[1].slot
        t.setHealthy(a1, false, now: 2)
        t.setHealthy(a2, false, now: 2)
        // Target 3 added and the upstream PATCHed (new healthchecks): unhealthy ones stay unhealthy (#7835, #7652).
        var hc = Healthchecks(); hc.passive.unhealthyHTTPFailures = 2
        let v2 = t.addresses(for: snapshot([("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)], hc: hc),
                             insert: true)
        #expect(tracker.apply(v2, table: t, now: 3).isEmpty)
        #expect(!t.isHealthy(a1) && !t.isHealthy(a2))
        // A worker view finds the same slots.
        let worker = PeerStateTable(base: t.base, size: t.size).addresses(for: snapshot([("10.0.0.1", 80)]),
                                                                            insert: false)
        #expect(worker[0].addresses.map(\.slot) == [a1])
        // Target 2 deleted, then re-added: starts healthy (#5581); target 1 untouched.
        let v3 = t.addresses(for: snapshot([("10.0.0.1", 80), ("10.0.0.3", 80)]), insert: true)
        let forgotten = tracker.apply(v3, table: t, now: 4)
        #expect(forgotten.map(\.slot) == [a2])
        let v4 = t.addresses(for: snapshot([("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)]), insert: true)
        tracker.apply(v4, table: t, now: 5)
        #expect(v4[0].addresses[1].slot == a2 && t.isHealthy(a2))
        #expect(!t.isHealthy(a1))
    }

    @Test func balancerFromWorkerView() {
        let t = makeSharedTable()
        let snap = snapshot([("10.0.0.1", 80), ("10.0.0.2", 80)])
        _ = t.addresses(for: snap, insert: true)
        let b = UpstreamBalancer(upstream: snap.upstreams[0], targets: snap.targets, table: t)
        #expect(b.addresses.count == 2)
        #expect(Set(pickMany(b, 10)).count == 2)
    }
}

@Suite struct AdminHealthTests {
    @Test func kongHealthNames() {
        let t = makeSharedTable()
        let addrs = addresses([25, 25, 25, 25], table: t)
        var hc = Healthchecks(); hc.passive.unhealthyTCPFailures = 1; hc.threshold = 50
        #expect(t.addressHealth(addrs[0].slot, checkerEnabled: false, weight: 25) == .healthchecksOff)
        #expect(t.addressHealth(addrs[0].slot, checkerEnabled: true, weight: 0) == .healthchecksOff)
        t.setHealthy(addrs[0].slot, false, now: 1)
        #expect(t.addressHealth(addrs[0].slot, checkerEnabled: true, weight: 25) == .unhealthy)
        #expect(t.targetHealth([addrs[0].slot, addrs[1].slot], checkerEnabled: true, weight: 25) == .healthy)
        #expect(t.targetHealth([addrs[0].slot], checkerEnabled: true, weight: 25) == .unhealthy)
        #expect(t.targetHealth([], checkerEnabled: true, weight: 25) == .dnsError)
        t.setDNSError(addrs[3].slot, true)
        #expect(t.targetHealth([addrs[3].slot], checkerEnabled: true, weight: 25) == .dnsError)
        #expect(t.healthState(addrs[3].slot).dnsError)
        #expect(t.balancerHealthy(addrs, healthchecks: hc))              // 75 % > 50
        t.setHealthy(addrs[1].slot, false, now: 1)
        #expect(!t.balancerHealthy(addrs, healthchecks: hc))             // 50 % is not > 50
        #expect(!t.balancerHealthy([], healthchecks: hc))
    }
}
