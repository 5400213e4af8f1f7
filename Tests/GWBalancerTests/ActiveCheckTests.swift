import Testing
import GWStore
@testable import GWBalancer

@Suite struct ActiveCheckTests {
    func checkedUpstream(_ name: String = "svc.upstream", healthy: Double = 5, unhealthy: Double = 2,
                         concurrency: Int = 10) -> Upstream {
        upstream(name) { hc in
            hc.active.healthyInterval = healthy
            hc.active.unhealthyInterval = unhealthy
            hc.active.concurrency = concurrency
            hc.active.healthySuccesses = 1
            hc.active.unhealthyHTTPFailures = 1
        }
    }

    @Test func firstProbeAfterOneIntervalThenCadenceByState() {
        let t = makeSharedTable()
        let addrs = addresses([100, 100, 0], table: t)
        var s = ActiveCheckSchedule()
        s.update([(checkedUpstream(), addrs)], now: 100)
        #expect(s.count == 2)                                        // weight 0 excluded
        #expect(s.due(now: 104.9, table: t).isEmpty)
        #expect(s.nextDeadline(table: t) == 105)
        let jobs = s.due(now: 105, table: t)
        #expect(jobs.count == 2)
        #expect(s.due(now: 106, table: t).isEmpty)                   // in flight
        // First probe fails (address 0 goes UNHEALTHY), second succeeds.
        #expect(t.report(jobs[0].slot, .httpStatus(500), source: .active, policy: jobs[0].policy, now: 105) != nil)
        t.report(jobs[1].slot, .httpStatus(200), source: .active, policy: jobs[1].policy, now: 105)
        for j in jobs { s.completed(j) }
        // Unhealthy address: every 2 s; healthy one: every 5 s.
        let next = s.due(now: 107, table: t)
        #expect(next.map(\.slot) == [jobs[0].slot])
        s.completed(next[0])
        #expect(s.due(now: 109, table: t).map(\.slot) == [jobs[0].slot])
        #expect(s.due(now: 110, table: t).map(\.slot) == [jobs[1].slot])
    }

    @Test func intervalZeroConcurrencyAndTcpInHttpSubsystem() {
        let t = makeSharedTable()
        let addrs = addresses([1, 1, 1, 1, 1], table: t)
        var s = ActiveCheckSchedule()
        // Only unhealthy targets probed (healthy interval 0), concurrency 2.
        s.update([(checkedUpstream(healthy: 0, unhealthy: 1, concurrency: 2), addrs)], now: 0)
        #expect(s.due(now: 50, table: t).isEmpty)
        for a in addrs { t.setHealthy(a.slot, false, now: 1) }
        let first = s.due(now: 50, table: t)
        #expect(first.count == 2)
        s.completed(first[0])
        #expect(s.due(now: 50, table: t).count == 1)
        // Checks off entirely.
        s.update([(upstream(), addrs)], now: 60)
        #expect(s.count == 0)
        var tcp = checkedUpstream()
        tcp.healthchecks.active.type = "tcp"
        s.update([(tcp, addrs)], now: 60)
        #expect(s.count == 0)                                        // Kong: tcp checks off in the http subsystem
    }

    @Test func updateKeepsTimingOfSurvivingAddresses() {
        let t = makeSharedTable()
        let addrs = addresses([1, 1, 1], table: t)
        var s = ActiveCheckSchedule()
        s.update([(checkedUpstream(), Array(addrs.prefix(2)))], now: 0)
        _ = s.due(now: 5, table: t).map { s.completed($0) }
        // PATCH of the upstream + one target added at t = 7.
        s.update([(checkedUpstream(healthy: 5), addrs)], now: 7)
        let due = s.due(now: 10, table: t)
        #expect(due.count == 2)                                      // the survivors keep their cadence
        #expect(!due.contains { $0.slot == addrs[2].slot })
        #expect(s.due(now: 12, table: t).map(\.slot) == [addrs[2].slot])
    }

    @Test func probeRequestBytes() throws {
        let t = makeSharedTable()
        var up = checkedUpstream()
        up.healthchecks.active.httpPath = "/status"
        up.healthchecks.active.headers = ["X-B": ["2"], "X-A": ["1", "one"]]
        let a = ResolvedAddress(ip: "10.0.0.1", port: 80, weight: 1,
                                slot: t.ensureSlot(upstream: up.name, ip: "10.0.0.1", port: 80)!, hostname: "api.test")!
        var s = ActiveCheckSchedule()
        s.update([(up, [a])], now: 0)
        let job = s.due(now: 5, table: t)[0]
        #expect(String(decoding: job.request, as: UTF8.self) ==
                "GET /status HTTP/1.0\r\nX-A: 1\r\nX-A: one\r\nX-B: 2\r\nUser-Agent: gateway-healthcheck\r\nHost: api.test\r\n\r\n")
        #expect(job.kind == .http && job.timeout == 1)
        s.completed(job)
        up.hostHeader = "override.test"
        up.healthchecks.active.type = "https"
        s.update([(up, [a])], now: 0)
        let j2s = s.due(now: 10, table: t)
        try #require(j2s.count == 1)
        let j2 = j2s[0]
        #expect(String(decoding: j2.request, as: UTF8.self).hasSuffix("Host: override.test\r\n\r\n"))
        #expect(j2.kind == .https && j2.sni == "override.test")
        #expect(String(decoding: buildProbeRequest(path: "/", headers: nil, host: "10.0.0.1"), as: UTF8.self)
                == "GET / HTTP/1.0\r\nUser-Agent: gateway-healthcheck\r\nHost: 10.0.0.1\r\n\r\n")
    }

    @Test func statusLineParsing() {
        func p(_ s: String) -> Int? { parseProbeStatusLine(Array(s.utf8)) }
        #expect(p("HTTP/1.1 200 OK\r\n") == 200)
        #expect(p("HTTP/1.0 503\r\n") == 503)
        #expect(p("HTTP/2.0  \t302 Found") == 302)
        #expect(p("HTTP/1.1 2000 weird") == 2000)
        #expect(p("HTTP/1 200 OK") == nil)
        #expect(p("HTTP/1.1200 OK") == nil)
        #expect(p("http/1.1 200 OK") == nil)
        #expect(p("SSH-2.0-OpenSSH") == nil)
        #expect(p("") == nil)
        #expect(p("HTTP/1.1 OK") == nil)
    }
}

@Suite struct MasterFlowTests {
    /// The master's whole loop on one snapshot: register addresses, schedule probes, report results, log flips.
    @Test func snapshotToProbesToRecovery() {
        let t = makeSharedTable()
        var up = upstream("flow.up") { hc in
            hc.active.healthyInterval = 1; hc.active.unhealthyInterval = 1
            hc.active.healthySuccesses = 2; hc.active.unhealthyTimeouts = 1
        }
        up.hostHeader = nil
        let snap = ConfigSnapshot(upstreams: [up], targets: [
            Target(id: "a", upstreamID: up.id, target: "127.0.0.1:9001", host: "127.0.0.1", port: 9001),
            Target(id: "b", upstreamID: up.id, target: "127.0.0.1:9002", host: "127.0.0.1", port: 9002, weight: 0),
        ])
        let list = t.addresses(for: snap, insert: true)
        var tracker = PeerSlotTracker()
        tracker.apply(list, table: t, now: 0)
        var schedule = ActiveCheckSchedule()
        schedule.update(list, now: 0)
        #expect(schedule.count == 1)
        var log: [String] = []
        func tick(_ now: Double, _ outcome: HealthOutcome) {
            for job in schedule.due(now: now, table: t) {
                if let tr = t.report(job.slot, outcome, source: .active, policy: job.policy, now: now) {
                    let key = t.key(of: tr.slot)
                    log.append("\(key.upstream) \(key.address) \(tr.oldStateName)->\(tr.newStateName) \(tr.reason.text)")
                }
                schedule.completed(job)
            }
        }
        tick(1, .timeout)
        tick(2, .httpStatus(200))
        tick(3, .httpStatus(200))
        #expect(log == ["flow.up 127.0.0.1:9001 HEALTHY->UNHEALTHY timeouts threshold reached",
                        "flow.up 127.0.0.1:9001 UNHEALTHY->HEALTHY successes threshold reached"])
    }
}
