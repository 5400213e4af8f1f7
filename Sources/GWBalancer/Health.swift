import CGWShims
import GWStore

/// Who observed an outcome: the master's active probes or proxied traffic (circuit breaker).
public enum HealthSource: UInt8, Sendable {
    case active
    case passive
}

/// One observation about a target address.
public enum HealthOutcome: Sendable, Equatable {
    /// A probe or proxied response with this HTTP status. 0 = unparsable status line (counts as HTTP failure).
    case httpStatus(Int)
    /// TCP connect/send/receive error or TLS handshake error.
    case tcpFailure
    /// Connect/send/receive timeout.
    case timeout
    /// A success that has no status (a `tcp` active probe that connected).
    case success

    /// What the proxy reports for the final upstream status in the log phase (Kong: 504 ⇒ timeout).
    public static func passive(status: Int) -> HealthOutcome { status == 504 ? .timeout : .httpStatus(status) }

    /// True for outcomes that count as a failed request in the per-address statistics.
    public var isTransportFailure: Bool {
        switch self {
        case .tcpFailure, .timeout: return true
        default: return false
        }
    }
}

/// A HEALTHY⇄UNHEALTHY flip, returned so the caller can log "target, old state, new state, reason"
/// (`table.key(of: slot)` gives the upstream and address).
public struct HealthTransition: Sendable, Equatable {
    public var slot: PeerSlot
    public var wasHealthy: Bool
    public var isHealthy: Bool
    public var reason: TransitionReason
    public var source: HealthSource?     // nil for manual/reset

    public var oldStateName: String { wasHealthy ? "HEALTHY" : "UNHEALTHY" }
    public var newStateName: String { isHealthy ? "HEALTHY" : "UNHEALTHY" }
}

/// The thresholds and status classification of one upstream's `healthchecks`, compiled once per configuration
/// so that `report` does no allocation and classifies a status with one bit test.
public struct HealthPolicy: Sendable {
    public struct Limits: Sendable {
        /// [successes, http_failures, tcp_failures, timeouts]; 0 = that counter is disabled.
        public var limits: (Int, Int, Int, Int)
        var healthyStatuses: StatusSet
        var unhealthyStatuses: StatusSet

        @inline(__always) func limit(_ k: Int) -> Int {
            switch k {
            case 0: return limits.0
            case 1: return limits.1
            case 2: return limits.2
            default: return limits.3
            }
        }
    }

    public var active: Limits
    public var passive: Limits
    /// Kong creates a checker only when some interval or passive failure limit is set (KONG.md §5.1). When false,
    /// health is not consulted by the balancer (every address is available, `/health` says HEALTHCHECKS_OFF).
    public var enabled: Bool
    /// `healthchecks.threshold` (% of available weight the balancer needs, strict `>`).
    public var threshold: Double

    public init(_ hc: Healthchecks) {
        func clamp(_ v: Int) -> Int { max(0, min(v, 255)) }
        active = Limits(limits: (clamp(hc.active.healthySuccesses), clamp(hc.active.unhealthyHTTPFailures),
                                 clamp(hc.active.unhealthyTCPFailures), clamp(hc.active.unhealthyTimeouts)),
                        healthyStatuses: StatusSet(hc.active.healthyHTTPStatuses),
                        unhealthyStatuses: StatusSet(hc.active.unhealthyHTTPStatuses))
        passive = Limits(limits: (clamp(hc.passive.healthySuccesses), clamp(hc.passive.unhealthyHTTPFailures),
                                  clamp(hc.passive.unhealthyTCPFailures), clamp(hc.passive.unhealthyTimeouts)),
                         healthyStatuses: StatusSet(hc.passive.healthyHTTPStatuses),
                         unhealthyStatuses: StatusSet(hc.passive.unhealthyHTTPStatuses))
        enabled = hc.checkerEnabled
        threshold = hc.threshold
    }

    /// The counter an outcome feeds (0 success, 1 http, 2 tcp, 3 timeout), or nil when it is ignored
    /// (a status in neither list: no count and no reset).
    @inline(__always) func counterKind(_ outcome: HealthOutcome, _ l: Limits) -> Int? {
        switch outcome {
        case .success: return 0
        case .tcpFailure: return 2
        case .timeout: return 3
        case .httpStatus(let s):
            if s == 0 { return 1 }
            if l.healthyStatuses.contains(s) { return 0 }
            if l.unhealthyStatuses.contains(s) { return 1 }
            return nil
        }
    }
}

/// A bitset of HTTP statuses 0..1023 (inline, 128 bytes).
struct StatusSet: Sendable {
    var w: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
            UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    init(_ statuses: [Int]) {
        for s in statuses where s >= 0 && s < 1024 {
            withUnsafeMutableBytes(of: &w) { raw in
                let p = raw.bindMemory(to: UInt64.self)
                p[s >> 6] |= 1 << UInt64(s & 63)
            }
        }
    }
    @inline(__always) func contains(_ s: Int) -> Bool {
        guard s >= 0, s < 1024 else { return false }
        return withUnsafeBytes(of: w) { raw in
            raw.load(fromByteOffset: (s >> 6) * 8, as: UInt64.self) & (1 << UInt64(s & 63)) != 0
        }
    }
}

extension PeerStateTable {
    /// `nowSeconds` NaN ⇒ read the clock here (only transitions need the time; the per-request path passes NaN).
    private func setTransitionInfo(_ slot: PeerSlot, _ reason: TransitionReason, _ nowSeconds: Double) {
        let now = nowSeconds.isNaN ? PeerClock.unixSeconds() : nowSeconds
        gw_atomic_store_u64(u64(slot, Int32(GW_PEER_OFF_LAST_TRANSITION)), UInt64(max(0, now * 1000)))
        gw_atomic_store_u32(u32(slot, Int32(GW_PEER_OFF_LAST_REASON)), reason.rawValue)
        bumpEpoch()
    }

    /// Feeds one observation into the Kong health state machine (KONG.md §5.2–5.4) for `slot`, from any process.
    ///
    /// - A status in `healthy.http_statuses` (or `.success`) counts SUCCESS; in `unhealthy.http_statuses` or 0
    ///   counts HTTP; `.tcpFailure` TCP; `.timeout` TIMEOUT; a status in neither list is ignored.
    /// - A counter whose limit is 0 is disabled: the report is ignored entirely (no count, no reset) as in
    ///   lua-resty-healthcheck.
    /// - Counting a success clears the three failure counters; counting a failure clears the success counter.
    /// - Nothing is counted while already fully in the reported state (successes while HEALTHY without failures,
    ///   failures while UNHEALTHY without successes).
    /// - Reaching a limit (`>=`) sets the state and clears the manual flag; a HEALTHY⇄UNHEALTHY change is
    ///   returned (and timestamped with `now`, unix seconds; NaN = read the clock only then). Passive successes
    ///   can only count while traffic still reaches an address, so a passive ejection is recovered by active
    ///   probes or a manual set.
    ///
    /// The whole update is one CAS on the packed health word, so concurrent reports from many processes are safe.
    @discardableResult
    public func report(_ slot: PeerSlot, _ outcome: HealthOutcome, source: HealthSource, policy: HealthPolicy,
                       now: Double) -> HealthTransition? {
        guard let k = source == .active ? policy.counterKind(outcome, policy.active)
                                        : policy.counterKind(outcome, policy.passive) else { return nil }
        let limit = source == .active ? policy.active.limit(k) : policy.passive.limit(k)
        guard limit > 0 else { return nil }
        let p = u64(slot, Int32(GW_PEER_OFF_HEALTH))
        let reportsHealthy = k == 0
        while true {
            let old = gw_atomic_load_u64(p)
            let w = HealthWord(raw: old)
            if reportsHealthy == w.healthy && !w.intermediate { return nil }   // already fully there
            let ctr = min(255, w.counter(k) + 1)
            var counters: UInt64
            if reportsHealthy {
                counters = UInt64(ctr)                                          // failures cleared
            } else {
                counters = (old & HealthWord.failuresMask) & ~(0xFF << UInt64(8 * k))
                counters |= UInt64(ctr) << UInt64(8 * k)                        // success cleared
            }
            var new = old & ~HealthWord.countersMask
            var transition: HealthTransition? = nil
            if ctr >= limit {
                // Full state reached: intermediate/manual flags cleared; counters kept (lua-resty-healthcheck
                // clears them only through a report of the opposite kind or a manual set).
                new = (old & ~(HealthWord.countersMask | HealthWord.intermediateBit | HealthWord.manualBit
                               | HealthWord.unhealthyBit)) | counters
                if !reportsHealthy { new |= HealthWord.unhealthyBit }
                if reportsHealthy != w.healthy {
                    new = (new & 0x0000_FFFF_FFFF_FFFF) | ((old >> 48 &+ 1) << 48)
                    transition = HealthTransition(slot: slot, wasHealthy: w.healthy, isHealthy: reportsHealthy,
                                                  reason: TransitionReason(rawValue: UInt32(k + 1))!, source: source)
                }
            } else {
                new |= counters
                if !w.intermediate {
                    if w.healthy && counters & HealthWord.failuresMask != 0 { new |= HealthWord.intermediateBit }
                    if !w.healthy && counters & 0xFF != 0 { new |= HealthWord.intermediateBit }
                }
            }
            if gw_atomic_cas_u64(p, old, new) != 0 {
                if let t = transition { setTransitionInfo(slot, t.reason, now) }
                return transition
            }
        }
    }

    /// `report` with the upstream's configuration (compiles a `HealthPolicy`: use the policy overload per request).
    @discardableResult
    public func report(_ slot: PeerSlot, _ outcome: HealthOutcome, source: HealthSource, config: Healthchecks,
                       now: Double) -> HealthTransition? {
        report(slot, outcome, source: source, policy: HealthPolicy(config), now: now)
    }

    /// Manual override (`PUT /upstreams/{u}/targets/{t}/healthy|unhealthy`): sets the state, clears the counters,
    /// sets the manual flag. The state persists until counters flip it again. Returns the transition if the
    /// state changed.
    @discardableResult
    public func setHealthy(_ slot: PeerSlot, _ healthy: Bool, now: Double) -> HealthTransition? {
        let p = u64(slot, Int32(GW_PEER_OFF_HEALTH))
        while true {
            let old = gw_atomic_load_u64(p)
            var new = ((old >> 48 &+ 1) << 48) | HealthWord.manualBit
            if !healthy { new |= HealthWord.unhealthyBit }
            if gw_atomic_cas_u64(p, old, new) != 0 {
                setTransitionInfo(slot, .manual, now)
                let was = HealthWord(raw: old).healthy
                return was == healthy ? nil : HealthTransition(slot: slot, wasHealthy: was, isHealthy: healthy,
                                                                reason: .manual, source: nil)
            }
        }
    }

    /// The master calls this for an address that is no longer in the configuration (target deleted, upstream
    /// deleted, DNS no longer returns it): health back to HEALTHY with zero counters, latency EWMA and DNS state
    /// cleared, record marked retired. The key stays (slots cached by workers remain valid); if the address comes
    /// back (`ensureSlot`) it starts healthy, as a re-created Kong target does. In-flight counts are left alone.
    /// After the grace period the master may re-key the record for another address.
    @discardableResult
    public func forget(_ slot: PeerSlot, now: Double) -> HealthTransition? {
        let p = u64(slot, Int32(GW_PEER_OFF_HEALTH))
        while true {
            let old = gw_atomic_load_u64(p)
            let new = (old >> 48 &+ 1) << 48
            if gw_atomic_cas_u64(p, old, new) != 0 {
                gw_atomic_store_u64(u64(slot, Int32(GW_PEER_OFF_EWMA)), 0)
                gw_atomic_store_u32(u32(slot, Int32(GW_PEER_OFF_DNS_STATE)), 0)
                let t = now.isNaN ? PeerClock.unixSeconds() : now
                gw_atomic_store_u64(u64(slot, Int32(GW_PEER_OFF_RETIRED)), max(1, UInt64(max(0, t * 1000))))
                setTransitionInfo(slot, .reset, now)
                let was = HealthWord(raw: old).healthy
                return was ? nil : HealthTransition(slot: slot, wasHealthy: false, isHealthy: true, reason: .reset,
                                                     source: nil)
            }
        }
    }
}
