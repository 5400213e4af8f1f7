import Glibc
import Testing
import GWStore
@testable import GWBalancer

@Suite struct HealthStateMachineTests {
    func setup(_ configure: (inout Healthchecks) -> Void) -> (PeerStateTable, PeerSlot, HealthPolicy) {
        let t = makeSharedTable(capacity: 16)
        let s = t.ensureSlot(upstream: "u", ip: "10.0.0.1", port: 80)!
        var hc = Healthchecks()
        configure(&hc)
        return (t, s, HealthPolicy(hc))
    }

    @Test func passiveHTTPFailuresEject() {
        let (t, s, p) = setup(passiveHC(http: 3))
        #expect(t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1) == nil)
        #expect(t.report(s, .httpStatus(503), source: .passive, policy: p, now: 2) == nil)
        #expect(t.healthState(s).httpFailures == 2)
        #expect(t.healthState(s).intermediate)                     // mostly_healthy, still healthy
        #expect(t.isHealthy(s))
        let tr = t.report(s, .httpStatus(429), source: .passive, policy: p, now: 3)
        #expect(tr == HealthTransition(slot: s, wasHealthy: true, isHealthy: false, reason: .httpFailures,
                                       source: .passive))
        #expect(!t.isHealthy(s))
        let st = t.healthState(s)
        #expect(st.lastReason == .httpFailures && st.lastTransitionMillis == 3000 && st.httpFailures == 3)
        #expect(!st.intermediate && !st.manual)
        // Failures while fully unhealthy are not counted.
        #expect(t.report(s, .httpStatus(500), source: .passive, policy: p, now: 4) == nil)
        #expect(t.healthState(s).httpFailures == 3)
    }

    @Test func tcpFailuresAndTimeoutsCountSeparately() {
        let (t, s, p) = setup(passiveHC(tcp: 2, timeouts: 3))
        t.report(s, .timeout, source: .passive, policy: p, now: 1)
        t.report(s, .timeout, source: .passive, policy: p, now: 1)
        #expect(t.report(s, .tcpFailure, source: .passive, policy: p, now: 1) == nil)
        #expect(t.healthState(s).timeouts == 2 && t.healthState(s).tcpFailures == 1)
        let tr = t.report(s, .tcpFailure, source: .passive, policy: p, now: 1)
        #expect(tr?.reason == .tcpFailures)
        let (t2, s2, p2) = setup(passiveHC(timeouts: 2))
        t2.report(s2, .timeout, source: .passive, policy: p2, now: 1)
        #expect(t2.report(s2, .timeout, source: .passive, policy: p2, now: 1)?.reason == .timeouts)
        // 504 from upstream is reported as a timeout.
        #expect(HealthOutcome.passive(status: 504) == .timeout)
    }

    @Test func successResetsFailuresAndViceVersa() {
        let (t, s, p) = setup { hc in
            hc.passive.unhealthyHTTPFailures = 3
            hc.passive.healthySuccesses = 2
        }
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        t.report(s, .httpStatus(200), source: .passive, policy: p, now: 1)     // resets failure counters
        #expect(t.healthState(s).httpFailures == 0)
        #expect(t.healthState(s).successes == 1)
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)     // resets the success counter
        #expect(t.healthState(s).successes == 0)
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        #expect(t.isHealthy(s))
        #expect(t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)?.isHealthy == false)
    }

    @Test func statusInNeitherListIsIgnoredAndZeroLimitDisables() {
        let (t, s, p) = setup(passiveHC(http: 2))
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        t.report(s, .httpStatus(404), source: .passive, policy: p, now: 1)     // passive lists lack 404
        t.report(s, .httpStatus(200), source: .passive, policy: p, now: 1)     // successes limit 0: ignored
        #expect(t.healthState(s).httpFailures == 1)
        t.report(s, .tcpFailure, source: .passive, policy: p, now: 1)          // tcp limit 0: ignored
        #expect(t.healthState(s).tcpFailures == 0)
        #expect(t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1) != nil)
    }

    @Test func activeProbesRecover() {
        let (t, s, p) = setup { hc in
            hc.active.healthyInterval = 1; hc.active.unhealthyInterval = 1
            hc.active.healthySuccesses = 2; hc.active.unhealthyHTTPFailures = 1
            hc.passive.unhealthyTCPFailures = 1
        }
        // Passive ejection, then active recovery after healthy.successes probes.
        #expect(t.report(s, .tcpFailure, source: .passive, policy: p, now: 1)?.isHealthy == false)
        #expect(t.report(s, .httpStatus(200), source: .active, policy: p, now: 2) == nil)
        #expect(t.healthState(s).intermediate)                               // mostly_unhealthy
        #expect(!t.isHealthy(s))
        let tr = t.report(s, .httpStatus(302), source: .active, policy: p, now: 3)
        #expect(tr == HealthTransition(slot: s, wasHealthy: false, isHealthy: true, reason: .successes, source: .active))
        // Unparsable status line (0) counts as an HTTP failure.
        #expect(t.report(s, .httpStatus(0), source: .active, policy: p, now: 4)?.reason == .httpFailures)
    }

    @Test func passiveOnlyEjectionNeedsManualRecovery() {
        let (t, s, p) = setup(passiveHC(http: 1))
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        #expect(!t.isHealthy(s))
        // Successes are disabled (limit 0), and no active checks: stays down.
        for _ in 0..<10 { t.report(s, .httpStatus(200), source: .passive, policy: p, now: 2) }
        #expect(!t.isHealthy(s))
        let tr = t.setHealthy(s, true, now: 5)
        #expect(tr?.reason == .manual && tr?.isHealthy == true)
        let st = t.healthState(s)
        #expect(st.healthy && st.manual && st.httpFailures == 0)
    }

    @Test func manualOverrideResetsCountersAndPersists() {
        let (t, s, p) = setup(passiveHC(http: 3))
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        #expect(t.setHealthy(s, true, now: 2) == nil)                        // already healthy: no flip
        #expect(t.healthState(s).httpFailures == 0 && t.healthState(s).manual)
        #expect(t.setHealthy(s, false, now: 3)?.isHealthy == false)
        #expect(!t.isHealthy(s) && t.healthState(s).manual)
        // Manual UNHEALTHY persists until counters flip it (here: passive successes disabled ⇒ forever).
        t.report(s, .httpStatus(200), source: .passive, policy: p, now: 4)
        #expect(!t.isHealthy(s))
    }

    @Test func forgetResetsSoReaddedTargetStartsHealthy() {
        let (t, s, p) = setup(passiveHC(http: 1))
        t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1)
        #expect(!t.isHealthy(s))
        let epoch = t.transitionEpoch
        #expect(t.forget(s, now: 2)?.reason == .reset)
        #expect(t.isHealthy(s))
        #expect(t.transitionEpoch > epoch)
        #expect(t.ensureSlot(upstream: "u", ip: "10.0.0.1", port: 80) == s)  // same slot when re-added
    }

    @Test func countersSaturate() {
        let (t, s, p) = setup { hc in hc.passive.unhealthyHTTPFailures = 255 }
        for _ in 0..<300 { t.report(s, .httpStatus(500), source: .passive, policy: p, now: 1) }
        #expect(!t.isHealthy(s))
    }

    /// A forked child reports failures into the MAP_SHARED segment; the parent sees the transition.
    @Test func transitionCrossesProcesses() {
        let (t, s, p) = setup(passiveHC(http: 5))
        let pid = fork()
        if pid == 0 {
            // Child: raw shared-memory work only, then _exit.
            var flips: Int32 = 0
            for _ in 0..<5 where t.report(s, .httpStatus(500), source: .passive, policy: p, now: 7) != nil {
                flips += 1
            }
            _exit(flips == 1 ? 0 : 1)
        }
        #expect(pid > 0)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(status == 0)
        #expect(!t.isHealthy(s))
        #expect(t.healthState(s).lastReason == .httpFailures)
    }

    /// Many processes hammer the same word: exactly one ejection is returned, counters stay consistent.
    @Test func concurrentReportsFromManyProcesses() {
        let (t, s, p) = setup { hc in
            hc.passive.unhealthyHTTPFailures = 200
        }
        let view = PeerStateTable(base: t.base, size: t.size)
        var pids: [pid_t] = []
        let flagBase = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)!  // result flags
        for k in 0..<4 {
            let pid = fork()
            if pid == 0 {
                var flips: UInt8 = 0
                for _ in 0..<100 where view.report(s, .httpStatus(500), source: .passive, policy: p, now: 1) != nil {
                    flips += 1
                }
                (flagBase + k).storeBytes(of: flips, as: UInt8.self)
                _exit(0)
            }
            pids.append(pid)
        }
        for pid in pids { var st: Int32 = 0; waitpid(pid, &st, 0) }
        var total = 0
        for k in 0..<4 { total += Int((flagBase + k).load(as: UInt8.self)) }
        #expect(total == 1)
        #expect(!t.isHealthy(s))
    }
}
