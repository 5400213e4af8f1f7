import Glibc
import GWStore
@testable import GWBalancer

/// A real MAP_SHARED anonymous segment holding a formatted peer table (never unmapped: tests are short-lived).
func makeSharedTable(capacity: Int = 1024) -> PeerStateTable {
    let size = PeerStateTable.bytesNeeded(capacity: capacity)
    let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
    precondition(p != MAP_FAILED && p != nil)
    let t = PeerStateTable(base: p!, size: size)
    t.format()
    return t
}

func upstream(_ name: String = "svc.upstream", algorithm: String = "round-robin",
              configure: (inout Healthchecks) -> Void = { _ in }) -> Upstream {
    var hc = Healthchecks()
    configure(&hc)
    return Upstream(id: "id-\(name)", name: name, algorithm: algorithm, healthchecks: hc)
}

/// Addresses 10.0.x.y:8000 with the given weights, slots ensured (master side) in `table`.
func addresses(_ weights: [Int], table: PeerStateTable, upstream: String = "svc.upstream",
               base: Int = 1, port: Int = 8000) -> [ResolvedAddress] {
    weights.enumerated().map { (i, w) in
        let n = base + i
        let ip = "10.\(n >> 16 & 255).\(n >> 8 & 255).\(n & 255)"
        let slot = table.ensureSlot(upstream: upstream, ip: ip, port: port)!
        return ResolvedAddress(ip: ip, port: port, weight: w, slot: slot)!
    }
}

/// Passive circuit breaker enabled with the given failure limits.
func passiveHC(http: Int = 0, tcp: Int = 0, timeouts: Int = 0, successes: Int = 0) -> (inout Healthchecks) -> Void {
    { hc in
        hc.passive.unhealthyHTTPFailures = http
        hc.passive.unhealthyTCPFailures = tcp
        hc.passive.unhealthyTimeouts = timeouts
        hc.passive.healthySuccesses = successes
    }
}

func counts(_ picks: [Int], _ n: Int) -> [Int] {
    var c = [Int](repeating: 0, count: n)
    for p in picks { c[p] += 1 }
    return c
}

func longestRun(_ seq: [Int]) -> [Int: Int] {
    var best: [Int: Int] = [:]
    var i = 0
    while i < seq.count {
        var j = i
        while j < seq.count && seq[j] == seq[i] { j += 1 }
        best[seq[i]] = max(best[seq[i]] ?? 0, j - i)
        i = j
    }
    return best
}

/// Reference nginx smooth weighted round-robin (ngx_http_upstream_get_peer), `count` picks.
func nginxSmooth(_ weights: [Int], count: Int) -> [Int] {
    var current = [Int](repeating: 0, count: weights.count)
    let total = weights.reduce(0, +)
    var out: [Int] = []
    for _ in 0..<count {
        var best = -1
        for j in weights.indices where weights[j] > 0 {
            current[j] += weights[j]
            if best < 0 || current[j] > current[best] { best = j }
        }
        current[best] -= total
        out.append(best)
    }
    return out
}

/// Picks and immediately releases, returning address indices.
func pickMany(_ b: UpstreamBalancer, _ n: Int, hash: UInt32? = nil) -> [Int] {
    var out: [Int] = []
    for _ in 0..<n {
        guard let p = b.pick(hash: hash) else { out.append(-1); continue }
        b.release(p, latencyMicros: nil, outcome: nil)
        out.append(p.index)
    }
    return out
}
