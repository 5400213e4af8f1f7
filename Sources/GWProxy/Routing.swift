// The router call, isolated: GWRouter's match result → RouteDecision (upstream path, prefix,
// captures, service plan).
import GWHTTP
import GWRouter
import GWStore

extension RuntimeConfig {
    func route(_ head: HTTPRequestHead, listenPort: Int) -> RouteDecision? {
        let normalized = KongPath.normalize(head.pathBytes)
        guard let m = router.match(head: head, normalizedPath: normalized, listenPort: listenPort) else { return nil }
        let uri = m.upstreamURI(normalizedPath: normalized, query: head.query)
        var captures: [String: String] = [:]
        if !m.captures.isEmpty || !m.namedCaptures.isEmpty {
            for (i, c) in m.captures.enumerated() { if let c { captures[String(i)] = c } }
            for (n, v) in m.namedCaptures { captures[n] = v }
        }
        return RouteDecision(route: m.route, plan: m.service.flatMap { plans[$0.id] }, upstreamPath: Array(uri.utf8),
                             strippedPrefix: m.forwardedPrefix, captures: captures,
                             requiresHTTPS: m.requiresHTTPS)
    }
}
