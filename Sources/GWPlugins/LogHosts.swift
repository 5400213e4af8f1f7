// Host names of the logging plugins' destinations (tcp-log / udp-log `host`, http-log's
// `http_endpoint` host) and of rate-limiting's Redis (`config.redis.host` with `policy = redis`),
// resolved by the master like service hosts: the workers have no resolver.
// The master resolves every name the enabled instances use (c-ares, re-resolved on TTL; an answer that
// changes publishes a new generation) and publishes the addresses in `service_addresses` under the
// key "host:<name>" (service ids are UUIDs: no clash), so the full document and the deltas carry them
// with no new field. A worker's PluginSet hands them to the handlers (`PluginEnvironment.hosts`),
// which use the first address; a name without an answer yet leaves the instance without a
// destination: its entries are dropped, counted and reported at most once per interval.
//
// Invariant: IP literals and `localhost` (127.0.0.1, as Kong's hosts file) never need a lookup.
import GWJSON
import GWStore
import GWSystem

public enum LogHosts {
    /// The `service_addresses` key of a log destination's host name.
    public static let keyPrefix = "host:"

    /// True when `host` needs the master's resolver (not an IP literal, not localhost).
    public static func isName(_ host: String) -> Bool {
        var h = Substring(host)
        if h.hasPrefix("["), h.hasSuffix("]") { h = h.dropFirst().dropLast() }
        return !(h.isEmpty || h == "localhost" || SocketAddress(ip: String(h), port: 0) != nil)
    }

    /// The host names the enabled logging instances (and Redis-backed rate-limiting instances) of
    /// `snapshot` send to.
    public static func names(in snapshot: ConfigSnapshot) -> Set<String> {
        var out = Set<String>()
        for p in snapshot.plugins where p.enabled {
            var host: String? = nil
            switch p.name {
            case "tcp-log", "udp-log": host = p.config["host"]?.stringValue
            case "http-log": host = p.config["http_endpoint"]?.stringValue.flatMap { HTTPLogTarget.split($0)?.host }
            case "rate-limiting" where p.config["policy"]?.stringValue == "redis":
                host = p.config["redis"]?.objectValue?["host"]?.stringValue
            default: break
            }
            if let h = host, isName(h) { out.insert(h.lowercased()) }
        }
        return out
    }

    /// Name → addresses (IP strings), from the published `service_addresses`.
    public static func resolved(from addresses: [String: [PublishedAddress]]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (k, v) in addresses where k.hasPrefix(keyPrefix) { out[String(k.dropFirst(keyPrefix.count))] = v.map(\.ip) }
        return out
    }

    /// The address of `host`:`port` for a handler: an IP literal or localhost as is, a name through the
    /// master's answer (nil: no answer yet, or the name failed).
    static func address(_ host: String, _ port: Int, _ env: PluginEnvironment) -> SocketAddress? {
        if let a = LogSinks.address(host, port) { return a }
        guard let ips = env.hosts[host.lowercased()] else { return nil }
        for ip in ips { if let a = SocketAddress(ip: ip, port: port) { return a } }
        return nil
    }
}
