import GWStore

/// Kong's balancing algorithms (`upstreams.algorithm`). The balancer switches on this enum per pick: no
/// existential, no dynamic dispatch.
public enum BalancingAlgorithm: String, Sendable, CaseIterable {
    case roundRobin = "round-robin"
    case consistentHashing = "consistent-hashing"
    case leastConnections = "least-connections"
    case latency = "latency"

    /// The implementation for a Kong algorithm name; nil for unknown names.
    public init?(kongName: String) { self.init(rawValue: kongName) }
}

/// One address of an upstream as the balancer sees it: a target resolved to an IP (by the caller), the target's
/// weight, and its record in the shared peer table.
public struct ResolvedAddress: Sendable, Equatable {
    public var address: PeerAddress
    public var weight: Int
    public var slot: PeerSlot
    /// The target's host as configured (for the Host header and logs); nil ⇒ the IP.
    public var hostname: String?

    public init(address: PeerAddress, weight: Int, slot: PeerSlot, hostname: String? = nil) {
        self.address = address; self.weight = max(0, min(weight, 65535)); self.slot = slot; self.hostname = hostname
    }

    /// Nil when `ip` is not an IPv4/IPv6 literal or the port is out of range.
    public init?(ip: String, port: Int, weight: Int, slot: PeerSlot, hostname: String? = nil) {
        guard let a = PeerAddress(ip: ip, port: port) else { return nil }
        self.init(address: a, weight: weight, slot: slot, hostname: hostname)
    }
}

/// The result of a pick. Pass it back to `release` exactly once.
public struct PeerPick: Sendable, Equatable {
    /// Index into the balancer's `addresses`.
    public var index: Int
    public var slot: PeerSlot
    public var address: PeerAddress
}

/// Addresses already tried by this request (retries): a fixed inline set of up to 8 slots, no allocation.
/// Further inserts are ignored once full (service.retries defaults to 5 ⇒ at most 6 tries).
public struct TriedPeers: Sendable {
    private var s: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0, 0)
    public private(set) var count = 0
    public static let capacity = 8

    public init() {}

    public mutating func insert(_ slot: PeerSlot) {
        guard count < TriedPeers.capacity, !contains(slot) else { return }
        withUnsafeMutableBytes(of: &s) { $0.storeBytes(of: slot.index, toByteOffset: count * 4, as: UInt32.self) }
        count += 1
    }
    public mutating func insert(_ pick: PeerPick) { insert(pick.slot) }

    @inline(__always) public func contains(_ slot: PeerSlot) -> Bool {
        if count == 0 { return false }
        return withUnsafeBytes(of: s) { raw in
            for i in 0..<count where raw.load(fromByteOffset: i * 4, as: UInt32.self) == slot.index { return true }
            return false
        }
    }
}

/// The per-worker balancer of one upstream (Kong `ring-balancer`), rebuilt whenever the upstream or its targets
/// change. All health and load state lives in the shared `PeerStateTable` (keyed by upstream name + address), so a
/// rebuild loses nothing; what is per worker is only derived, immutable structure (RR sequence, CH ring) plus a
/// cursor and an RNG.
///
/// Per pick: no allocation, O(1) (round-robin, least-connections/latency above 64 addresses via power-of-8 choices)
/// or O(log n) (consistent hashing), plus the skips over unhealthy/tried entries. Health is read from shared memory
/// on every pick, so a transition made by any process is seen on the next request.
public final class UpstreamBalancer {
    public let upstreamName: String
    public let algorithm: BalancingAlgorithm
    public let policy: HealthPolicy
    public let table: PeerStateTable
    /// Every address given at build time, weight 0 included (in the order given).
    public let addresses: [ResolvedAddress]
    /// Sum of the weights (Kong `totalWeight`).
    public let totalWeight: Int

    // Flattened hot data (indices into `addresses`).
    private let eligible: [UInt32]          // weight > 0, sorted by address
    private let slotIndex: [UInt32]         // per address
    private let weights: [UInt32]           // per address

    // round-robin
    private let sequence: [UInt32]
    private var cursor = 0
    // consistent-hashing
    private let ringHashes: [UInt32]
    private let ringAddress: [UInt32]
    // least-connections / latency
    private var scanStart = 0
    private var rng: UInt64

    // cached availability, recomputed when the table's transition epoch moves
    private var cachedEpoch: UInt64 = .max
    private var cachedAvailable = 0

    /// Largest precomputed round-robin sequence (weights are scaled down proportionally beyond it).
    public static let maxSequenceLength = 1 << 16
    /// Continuum points per address for an average weight (Kong: 160), and the total cap.
    public static let pointsPerAddress = 160
    public static let maxRingPoints = 1 << 18
    /// Above this many addresses, least-connections and latency sample `sampleCount` candidates.
    public static let exactScanLimit = 64
    public static let sampleCount = 8

    /// Builds the balancer. `seed` varies the round-robin start and sampling per worker (e.g. the pid); with the
    /// same configuration every worker builds the same sequence and the same ring.
    public init(upstream: Upstream, addresses: [ResolvedAddress], table: PeerStateTable, seed: UInt64 = 0) {
        self.upstreamName = upstream.name
        self.algorithm = BalancingAlgorithm(kongName: upstream.algorithm) ?? .roundRobin
        self.policy = HealthPolicy(upstream.healthchecks)
        self.table = table
        self.addresses = addresses
        self.totalWeight = addresses.reduce(0) { $0 + $1.weight }
        self.slotIndex = addresses.map { $0.slot.index }
        self.weights = addresses.map { UInt32($0.weight) }
        let elig = addresses.indices.filter { addresses[$0].weight > 0 }
            .sorted { (addresses[$0].address, $0) < (addresses[$1].address, $1) }
            .map { UInt32($0) }
        self.eligible = elig
        var z = seed &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        self.rng = (z ^ (z >> 31)) | 1

        switch algorithm {
        case .roundRobin:
            sequence = UpstreamBalancer.smoothSequence(eligible: elig, weights: addresses.map(\.weight))
            ringHashes = []; ringAddress = []
        case .consistentHashing:
            sequence = []
            (ringHashes, ringAddress) = UpstreamBalancer.buildRing(eligible: elig, addresses: addresses)
        case .leastConnections, .latency:
            sequence = []; ringHashes = []; ringAddress = []
        }
        if !sequence.isEmpty { cursor = Int(truncatingIfNeeded: rng % UInt64(sequence.count)) }
        if !elig.isEmpty { scanStart = Int(truncatingIfNeeded: rng % UInt64(elig.count)) }
        if algorithm == .latency { seedLatencies() }
    }

    /// Convenience: builds from Kong entities whose target hosts are IP literals, finding (not inserting) each
    /// address's slot in the table (the worker path). Targets that do not parse or have no slot are skipped.
    public convenience init(upstream: Upstream, targets: [Target], table: PeerStateTable, seed: UInt64 = 0) {
        var list: [ResolvedAddress] = []
        for t in targets {
            guard let a = PeerAddress(ip: t.host, port: t.port),
                  let s = table.findSlot(upstream: upstream.name, address: a) else { continue }
            list.append(ResolvedAddress(address: a, weight: t.weight, slot: s, hostname: t.host))
        }
        self.init(upstream: upstream, addresses: list, table: table, seed: seed)
    }

    // MARK: health of the balancer

    @inline(__always) private func usable(_ i: Int) -> Bool {
        !policy.enabled || table.isHealthy(PeerSlot(index: slotIndex[i]))
    }

    /// Sum of the weights of the addresses currently available (all of them when health checks are off).
    public var availableWeight: Int {
        let epoch = table.transitionEpoch
        if epoch != cachedEpoch {
            var sum = 0
            for i in 0..<addresses.count where weights[i] > 0 && usable(i) { sum += Int(weights[i]) }
            cachedAvailable = sum
            cachedEpoch = epoch
        }
        return cachedAvailable
    }

    /// Kong's balancer health (KONG.md §4.2): `totalWeight > 0 && available / total * 100 > threshold` (strict).
    /// No targets (or only weight 0) ⇒ unhealthy ⇒ the proxy answers 503
    /// `failure to get a peer from the ring-balancer`.
    public func isHealthy(threshold: Double) -> Bool {
        guard totalWeight > 0 else { return false }
        return Double(availableWeight) * 100 / Double(totalWeight) > threshold
    }

    /// `isHealthy(threshold:)` with the upstream's `healthchecks.threshold`.
    public var isHealthy: Bool { isHealthy(threshold: policy.threshold) }

    // MARK: pick / release

    /// Picks a peer for one try. `hash` is the request key hash (consistent-hashing; see `hashKey`); `tried` holds
    /// the addresses that already failed for this request: they are avoided while another healthy address exists.
    /// Returns nil when the balancer is unhealthy (threshold rule) or no address is available: answer 503.
    /// The pick increments the address's shared in-flight count; call `release` exactly once.
    public func pick(hash: UInt32? = nil, excluding tried: TriedPeers = TriedPeers()) -> PeerPick? {
        guard !eligible.isEmpty, isHealthy else { return nil }
        let found: Int?
        switch algorithm {
        case .roundRobin: found = pickRoundRobin(tried)
        case .consistentHashing: found = pickHashed(hash ?? UpstreamBalancer.emptyKeyHash, tried)
        case .leastConnections: found = pickScored(tried, latency: false)
        case .latency: found = pickScored(tried, latency: true)
        }
        guard let i = found else { return nil }
        let slot = PeerSlot(index: slotIndex[i])
        table.incrementActive(slot)
        return PeerPick(index: i, slot: slot, address: addresses[i].address)
    }

    /// Ends a pick: decrements the shared in-flight count, counts the request (a failure when the outcome is a
    /// TCP error, timeout, unparsable or 5xx status), folds `latencyMicros` (connect + response time; nil = no
    /// sample) into the shared EWMA, and reports `outcome` to the passive health checker (nil = do not report,
    /// e.g. a response generated by the gateway itself). Returns the health transition this caused, if any.
    @discardableResult
    public func release(_ pick: PeerPick, latencyMicros: Int?, outcome: HealthOutcome?,
                        nowMillis: UInt64 = PeerClock.monotonicMillis()) -> HealthTransition? {
        table.decrementActive(pick.slot)
        var failed = false
        if let o = outcome {
            switch o {
            case .tcpFailure, .timeout: failed = true
            case .httpStatus(let s): failed = s == 0 || s >= 500
            case .success: failed = false
            }
        }
        table.countRequest(pick.slot, failed: failed)
        if let l = latencyMicros { table.recordLatency(pick.slot, micros: l, nowMillis: nowMillis) }
        guard policy.enabled, let o = outcome else { return nil }
        return table.report(pick.slot, o, source: .passive, policy: policy, now: .nan)
    }

    // MARK: round-robin

    private func pickRoundRobin(_ tried: TriedPeers) -> Int? {
        let n = sequence.count
        var fallback: Int? = nil
        var c = cursor
        for _ in 0..<n {
            let i = Int(sequence[c])
            c += 1
            if c == n { c = 0 }
            if usable(i) {
                if tried.count == 0 || !tried.contains(PeerSlot(index: slotIndex[i])) { cursor = c; return i }
                if fallback == nil { fallback = i }
            }
        }
        cursor = c
        return fallback
    }

    /// nginx's smooth weighted round-robin order over `weight / gcd` (ties → the earlier address), so one cycle
    /// gives exact proportions without bursts. When `sum(weight/gcd)` exceeds `maxSequenceLength`, weights are
    /// scaled down proportionally (each eligible address keeps ≥ 1 entry). Exact nginx simulation costs
    /// O(n · length); above 4M steps an equivalent-proportion stride schedule (earliest `(2c+1)/w` deadline, heap,
    /// O(length · log n)) is used instead.
    static func smoothSequence(eligible: [UInt32], weights: [Int]) -> [UInt32] {
        let n = eligible.count
        guard n > 0 else { return [] }
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let g = eligible.reduce(0) { gcd($0, weights[Int($1)]) }
        var w = eligible.map { weights[Int($0)] / max(g, 1) }
        var total = w.reduce(0, +)
        let cap = max(maxSequenceLength, n)
        if total > cap {
            w = w.map { max(1, Int((UInt64($0) * UInt64(cap)) / UInt64(total))) }
            total = w.reduce(0, +)
        }
        var out = [UInt32]()
        out.reserveCapacity(total)
        if n * total <= 4_000_000 {
            var current = [Int](repeating: 0, count: n)
            for _ in 0..<total {
                var best = -1
                for j in 0..<n {
                    current[j] += w[j]
                    if best < 0 || current[j] > current[best] { best = j }
                }
                current[best] -= total
                out.append(eligible[best])
            }
            return out
        }
        // Stride schedule: deadline of entry j after c picks = (2c+1)/w[j]; min-heap on (deadline, j).
        var count = [Int](repeating: 0, count: n)
        var heap = Array(0..<n)
        @inline(__always) func less(_ a: Int, _ b: Int) -> Bool {
            let l = UInt64(2 * count[a] + 1) * UInt64(w[b]), r = UInt64(2 * count[b] + 1) * UInt64(w[a])
            return l != r ? l < r : a < b
        }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && less(heap[l], heap[m]) { m = l }
                if r < n && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m); i = m
            }
        }
        for i in stride(from: n / 2 - 1, through: 0, by: -1) { siftDown(i) }
        for _ in 0..<total {
            let j = heap[0]
            out.append(eligible[j])
            count[j] += 1
            siftDown(0)
        }
        return out
    }

    // MARK: consistent hashing

    /// The hash used when a request has no key (Kong hashes "": every such request goes to one address).
    public static let emptyKeyHash: UInt32 = xxHash32([UInt8]())

    /// The request-key hash for consistent hashing: xxHash32 (seed 0) of the key's UTF-8 bytes. Identical in every
    /// worker and process.
    @inline(__always) public static func hashKey(_ key: String) -> UInt32 { xxHash32(key) }
    @inline(__always) public static func hashKey(_ key: UnsafeRawBufferPointer) -> UInt32 { xxHash32(key) }

    /// Continuum: each eligible address gets `160 · weight / meanWeight` points (≥ 1; Kong's formula, so a target's
    /// points do not change when others are added), scaled down when the total exceeds `maxRingPoints`. Point `i`
    /// of an address hashes (xxHash32) its 16 IP bytes, port, family and `i`. Sorted by (hash, address order), so
    /// every worker builds the same ring.
    static func buildRing(eligible: [UInt32], addresses: [ResolvedAddress]) -> ([UInt32], [UInt32]) {
        guard !eligible.isEmpty else { return ([], []) }
        let n = eligible.count
        let totalW = eligible.reduce(0) { $0 + addresses[Int($1)].weight }
        var perAvg = Double(pointsPerAddress)
        if n * pointsPerAddress > maxRingPoints { perAvg = Double(maxRingPoints) / Double(n) }
        var points: [UInt64] = []
        points.reserveCapacity(min(maxRingPoints * 2, n * pointsPerAddress * 2))
        var buf = [UInt8](repeating: 0, count: 24)
        for (order, ai) in eligible.enumerated() {
            let a = addresses[Int(ai)]
            let share = Double(a.weight) * Double(n) / Double(totalW)
            let count = max(1, Int(perAvg * share))
            var raw = a.address.rawBytes
            withUnsafeBytes(of: &raw) { src in for k in 0..<16 { buf[k] = src[k] } }
            buf[16] = UInt8(a.address.port >> 8); buf[17] = UInt8(a.address.port & 0xFF); buf[18] = a.address.family
            for i in 0..<count {
                buf[20] = UInt8(i & 0xFF); buf[21] = UInt8((i >> 8) & 0xFF)
                buf[22] = UInt8((i >> 16) & 0xFF); buf[23] = UInt8((i >> 24) & 0xFF)
                let h = xxHash32(buf)
                points.append(UInt64(h) << 32 | UInt64(order))
            }
        }
        points.sort()
        return (points.map { UInt32(truncatingIfNeeded: $0 >> 32) },
                points.map { eligible[Int(truncatingIfNeeded: $0 & 0xFFFF_FFFF)] })
    }

    private func pickHashed(_ hash: UInt32, _ tried: TriedPeers) -> Int? {
        let n = ringHashes.count
        guard n > 0 else { return nil }
        // lower bound: first point with hash >= key hash (wraps to 0)
        var lo = 0, hi = n
        while lo < hi {
            let mid = (lo + hi) >> 1
            if ringHashes[mid] < hash { lo = mid + 1 } else { hi = mid }
        }
        var p = lo == n ? 0 : lo
        var fallback: Int? = nil
        for _ in 0..<n {
            let i = Int(ringAddress[p])
            if usable(i) {
                if tried.count == 0 || !tried.contains(PeerSlot(index: slotIndex[i])) { return i }
                if fallback == nil { fallback = i }
            }
            p += 1
            if p == n { p = 0 }
        }
        return fallback
    }

    // MARK: least-connections / latency

    @inline(__always) private func nextRandom() -> UInt64 {
        rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27
        return rng &* 0x2545_F491_4F6C_DD1D
    }

    /// Score numerator: LC `(active + 1)`, latency `ewma` (µs; 0 = never sampled ⇒ best). Compared as
    /// `num_a · w_b < num_b · w_a`, i.e. lowest `num / weight`.
    @inline(__always) private func scoreNumerator(_ i: Int, latency: Bool) -> UInt64 {
        let s = PeerSlot(index: slotIndex[i])
        return latency ? UInt64(table.ewmaMicros(s)) : UInt64(table.activeConnections(s) + 1)
    }

    /// Running best of a least-connections / latency scan (a struct, so nothing is boxed on the heap).
    private struct ScoredChoice {
        var best = -1
        var bestNum: UInt64 = 0
        var bestWeight: UInt64 = 1
        var fallback = -1
    }

    @inline(__always) private func consider(_ i: Int, _ c: inout ScoredChoice, _ tried: TriedPeers, _ latency: Bool) {
        guard usable(i) else { return }
        if tried.count > 0 && tried.contains(PeerSlot(index: slotIndex[i])) {
            if c.fallback < 0 { c.fallback = i }
            return
        }
        let num = scoreNumerator(i, latency: latency)
        let w = UInt64(weights[i])
        if c.best < 0 || num * c.bestWeight < c.bestNum * w { c.best = i; c.bestNum = num; c.bestWeight = w }
    }

    private func pickScored(_ tried: TriedPeers, latency: Bool) -> Int? {
        let n = eligible.count
        var c = ScoredChoice()
        if n <= UpstreamBalancer.exactScanLimit {
            // Exact scan from a rotating start so that ties spread evenly.
            var j = scanStart
            for _ in 0..<n {
                consider(Int(eligible[j]), &c, tried, latency)
                j += 1
                if j == n { j = 0 }
            }
            scanStart += 1
            if scanStart >= n { scanStart = 0 }
        } else {
            // Power of k choices: O(1) per pick.
            for _ in 0..<UpstreamBalancer.sampleCount {
                consider(Int(eligible[Int(truncatingIfNeeded: nextRandom() % UInt64(n))]), &c, tried, latency)
            }
            if c.best < 0 {
                // Every sample unusable (mass outage or many retries): fall back to a full scan.
                var j = Int(truncatingIfNeeded: nextRandom() % UInt64(n))
                for _ in 0..<n {
                    consider(Int(eligible[j]), &c, tried, latency)
                    j += 1
                    if j == n { j = 0 }
                }
            }
        }
        if c.best >= 0 { return c.best }
        return c.fallback >= 0 ? c.fallback : nil
    }

    /// Kong "slow start": addresses without a latency sample start at the average EWMA of the sampled ones.
    private func seedLatencies() {
        var sum: UInt64 = 0, sampled: UInt64 = 0
        for i in eligible {
            let e = table.ewmaMicros(PeerSlot(index: slotIndex[Int(i)]))
            if e > 0 { sum += UInt64(e); sampled += 1 }
        }
        guard sampled > 0, sampled < UInt64(eligible.count) else { return }
        let avg = UInt32(sum / sampled)
        let now = PeerClock.monotonicMillis()
        for i in eligible { table.seedLatency(PeerSlot(index: slotIndex[Int(i)]), micros: avg, nowMillis: now) }
    }
}
