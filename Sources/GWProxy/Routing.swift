// The router call, isolated: GWRouter's match → RouteDecision (service plan, Host/HTTPS flags, prefix,
// captures) + the upstream path written into the connection's reused buffer.
//
// Fast path (ASCII path already in normal form, ASCII Host, prefix or path-less route): the router
// answers with an entry rank on bytes, the decision for that rank is built once per configuration
// and shared by every request that hits it, and the upstream URI is written byte by byte: no String,
// no RouteMatch, no allocation. Everything else (paths to normalize, non-ASCII bytes, regex routes
// with their captures) takes the String path, which is the reference behaviour.
import GWHTTP
import GWPlugins
import GWRouter
import GWStore

/// Where a matched request goes. Shared (one per router entry and configuration) on the fast path.
final class RouteDecision {
    let plan: ServicePlan?
    /// The plugins that may run for this route and its service (PluginSet.plan, resolved once).
    let pluginPlan: PluginPlan
    let routeID: String
    let serviceID: String?
    let preserveHost: Bool
    /// The route's `request_buffering`: read the whole body before connecting upstream.
    let requestBuffering: Bool
    let requiresHTTPS: Bool          // the route's protocols lack "http": 426 on the plain listener
    let strippedPrefix: String?      // for X-Forwarded-Prefix
    let captures: [String: String]
    // inputs of the upstream URI (fast path)
    let isRegex: Bool
    let stripPath: Bool
    let stripPrefix: [UInt8]         // what strip_path removes: the matched prefix, or "/"
    let servicePath: [UInt8]         // service.path, or "/"

    init(plan: ServicePlan?, plugins: PluginSet, route: Route, service: Service?, matchedPrefix: String?,
         forwardedPrefix: String?, captures: [String: String], isRegex: Bool, requiresHTTPS: Bool) {
        self.plan = plan
        routeID = route.id
        serviceID = service?.id
        pluginPlan = plugins.isEmpty ? PluginPlan.empty : plugins.plan(routeID: route.id, serviceID: service?.id)
        preserveHost = route.preserveHost
        requestBuffering = route.requestBuffering
        self.requiresHTTPS = requiresHTTPS
        strippedPrefix = forwardedPrefix
        self.captures = captures
        self.isRegex = isRegex
        stripPath = route.stripPath
        stripPrefix = Array(((route.stripPath ? matchedPrefix : nil) ?? "/").utf8)
        servicePath = Array((service?.path ?? "/").utf8)
    }
}

/// Per-configuration cache of fast-path decisions, indexed by router entry rank. Worker-loop confined.
final class RouteCache {
    let config: RuntimeConfig
    private var decisions: [RouteDecision?]

    init(config: RuntimeConfig) {
        self.config = config
        decisions = Array(repeating: nil, count: config.router.entryCount)
    }

    private func decision(rank: Int) -> RouteDecision {
        if let d = decisions[rank] { return d }
        let router = config.router
        let info = router.entryInfo(rank: rank)
        let route = info.route
        let service = info.service
        var forwarded: String? = nil
        if route.stripPath, let p = info.prefix, p != "/" { forwarded = p }
        let d = RouteDecision(plan: service.flatMap { config.plans[$0.id] }, plugins: config.pluginSet, route: route, service: service,
                              matchedPrefix: info.prefix, forwardedPrefix: forwarded, captures: [:],
                              isRegex: info.isRegex, requiresHTTPS: !route.protocols.contains("http"))
        decisions[rank] = d
        return d
    }

    /// Routes the request whose head `request` holds; on a match the upstream path (+ `?query`) replaces
    /// the content of `upstreamPath`. (The parser is passed, not its head, which would be copied.)
    /// `tls`: the connection's TLS side (routes' `snis`; its SNI bytes are valid during the call).
    func route(_ request: HTTPRequestParser, listenPort: Int, tls: ConnectionTLS = .plain, upstreamPath: inout FlatArray<UInt8>) -> RouteDecision? {
        // The head is read as `request.head` (borrowed in place) everywhere: capturing it in the closures
        // below would copy it.
        let hostASCII: Bool
        if config.router.matchesHosts, let hi = request.head.hostIndex {   // (read only when a route has hosts)
            let f = request.head.headers.fields[hi]
            hostASCII = request.head.headers.storage.withUnsafeBytes { st in
                var ok = true
                for b in st[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)] where b >= 0x80 { ok = false; break }
                return ok
            }
        } else {
            hostASCII = true
        }
        // (through the head's address: `request.head` passed on from inside this closure over its target
        // was copied, four retains and releases)
        let head = request.headPointer
        let fast: RouteDecision?? = head.pointee.target.withUnsafeBytes { t -> RouteDecision?? in
            let path = UnsafeRawBufferPointer(rebasing: t[head.pointee.pathStart ..< head.pointee.queryStart])
            guard hostASCII, KongPath.isNormalizedASCII(path) else { return nil }   // → String path
            guard let rank = config.router.matchRank(headAt: head, path: path, listenPort: listenPort, tls: tls) else {
                return .some(nil)
            }
            let d = decision(rank: rank)
            if d.isRegex { return nil }   // captures and matched text: String path
            let query = head.pointee.queryStart < t.count ? UnsafeRawBufferPointer(rebasing: t[(head.pointee.queryStart + 1)...]) : nil
            upstreamPath.removeAll()
            d.stripPrefix.withUnsafeBytes { pre in
                d.servicePath.withUnsafeBytes { base in
                    KongPath.appendUpstreamURI(requestPath: path, matchedPrefix: pre, stripPath: d.stripPath,
                                               servicePath: base, query: query, into: &upstreamPath)
                }
            }
            return .some(d)
        }
        if let r = fast { return r }
        return routeSlow(request.head, listenPort: listenPort, tls: tls, upstreamPath: &upstreamPath)
    }

    /// The reference path: String normalization, RouteMatch, String upstream URI.
    private func routeSlow(_ head: HTTPRequestHead, listenPort: Int, tls: ConnectionTLS, upstreamPath: inout FlatArray<UInt8>) -> RouteDecision? {
        let normalized = KongPath.normalize(head.pathBytes)
        guard let m = config.router.match(head: head, normalizedPath: normalized, listenPort: listenPort, tls: tls) else { return nil }
        let uri = m.upstreamURI(normalizedPath: normalized, query: head.query)
        var captures: [String: String] = [:]
        if !m.captures.isEmpty || !m.namedCaptures.isEmpty {
            for (i, c) in m.captures.enumerated() { if let c { captures[String(i)] = c } }
            for (n, v) in m.namedCaptures { captures[n] = v }
        }
        upstreamPath.removeAll()
        upstreamPath.append(contentsOf: uri.utf8)
        return RouteDecision(plan: m.service.flatMap { config.plans[$0.id] }, plugins: config.pluginSet, route: m.route, service: m.service,
                             matchedPrefix: m.matchedPathText, forwardedPrefix: m.forwardedPrefix, captures: captures,
                             isRegex: true, requiresHTTPS: m.requiresHTTPS)
    }
}
