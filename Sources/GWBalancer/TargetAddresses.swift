// Targets → addresses from DNS answers, Kong's rules (KONG.md §4.2, `kong/runloop/balancer/targets.lua`),
// as pure functions: the master's resolver (GWServer.DNSResolver) feeds them, unit tests check them.

/// One DNS answer for a target's host name, already reduced to an IP address.
/// `srvPort`/`srvWeight` are set when the address came from an SRV record.
public struct DNSAddress: Sendable, Equatable, Hashable {
    public var ip: String
    public var srvPort: Int?
    public var srvWeight: Int?

    public init(ip: String, srvPort: Int? = nil, srvWeight: Int? = nil) {
        self.ip = ip; self.srvPort = srvPort; self.srvWeight = srvWeight
    }
}

/// One SRV record (RFC 2782) as `ares_parse_srv_reply` gives it.
public struct SRVRecord: Sendable, Equatable {
    public var target: String
    public var port: Int
    public var priority: Int
    public var weight: Int

    public init(target: String, port: Int, priority: Int, weight: Int) {
        self.target = target; self.port = port; self.priority = priority; self.weight = weight
    }
}

public enum TargetAddresses {
    /// Kong uses only the records of the best (lowest) SRV priority.
    public static func topPriority(_ records: [SRVRecord]) -> [SRVRecord] {
        guard let best = records.map(\.priority).min() else { return [] }
        return records.filter { $0.priority == best }
    }

    /// The balancer addresses of a target: A/AAAA answers get the target's port and full weight each
    /// (3 IPs at weight 100 contribute 300); SRV answers get the SRV port (the target's if the SRV port is 0)
    /// and the SRV weight (0 → 1). A weight-0 target stays at weight 0 whatever its records say.
    /// Duplicates (same ip and port) are merged, keeping the first.
    public static func expand(_ answers: [DNSAddress], targetPort: Int, targetWeight: Int)
        -> [(ip: String, port: Int, weight: Int)] {
        var out: [(ip: String, port: Int, weight: Int)] = []
        var seen = Set<String>()
        for a in answers {
            var port = targetPort
            var weight = targetWeight
            if let p = a.srvPort, p != 0 { port = p }
            if let w = a.srvWeight { weight = w == 0 ? 1 : w }
            if targetWeight == 0 { weight = 0 }
            guard seen.insert("\(a.ip)|\(port)").inserted else { continue }
            out.append((a.ip, port, weight))
        }
        return out
    }

    /// Seconds until a DNS answer must be re-queried: TTL 0 (and hosts-file answers, which carry no TTL)
    /// are re-checked every 60 s as Kong does for TTL-0 names; others after their TTL, at least 1 s.
    public static func refreshDelay(ttl: Int?) -> Double {
        guard let t = ttl, t > 0 else { return 60 }
        return Double(t)
    }

    /// Kong retries a failed name every 30 s.
    public static let failureRetry: Double = 30

    /// The smallest TTL of the answer section of a raw DNS message (RFC 1035 §4.1), nil if the message is
    /// malformed or has no answers. `ares_parse_srv_reply` does not return TTLs, so the SRV path reads them here.
    public static func minAnswerTTL(_ msg: UnsafeRawBufferPointer) -> Int? {
        let n = msg.count
        guard n >= 12 else { return nil }
        func u16(_ i: Int) -> Int { Int(msg[i]) << 8 | Int(msg[i + 1]) }
        let qd = u16(4), an = u16(6)
        var i = 12
        func skipName() -> Bool {
            while i < n {
                let l = Int(msg[i])
                if l == 0 { i += 1; return true }
                if l & 0xC0 == 0xC0 { i += 2; return i <= n }
                i += 1 + l
            }
            return false
        }
        for _ in 0..<qd {
            guard skipName(), i + 4 <= n else { return nil }
            i += 4
        }
        var best: Int?
        for _ in 0..<an {
            guard skipName(), i + 10 <= n else { return best }
            let ttl = Int(msg[i + 4]) << 24 | Int(msg[i + 5]) << 16 | Int(msg[i + 6]) << 8 | Int(msg[i + 7])
            let rdlen = u16(i + 8)
            best = min(best ?? ttl, ttl)
            i += 10 + rdlen
            guard i <= n else { return best }
        }
        return best
    }
}
