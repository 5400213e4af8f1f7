import Testing
import GWStore
import GWHTTP
import GWRouter

// The byte-level fast path (Router.matchRank + KongPath.appendUpstreamURI) must choose the same route and
// build the same upstream URI as the String path (Router.match + RouteMatch.upstreamURI).

private func parse(_ raw: String) -> HTTPRequestParser {
    let p = HTTPRequestParser()
    _ = Array(raw.utf8).withUnsafeBytes { p.execute($0) }
    return p
}

private func fastURI(_ r: Router, _ head: HTTPRequestHead, listenPort: Int = 8000) -> (id: String, uri: String)?? {
    head.target.withUnsafeBytes { t -> (id: String, uri: String)?? in
        let path = UnsafeRawBufferPointer(rebasing: t[head.pathStart ..< head.queryStart])
        guard KongPath.isNormalizedASCII(path) else { return nil }
        guard let rank = r.matchRank(head: head, path: path, listenPort: listenPort) else { return .some(nil) }
        let info = r.entryInfo(rank: rank)
        let route = info.route
        if info.isRegex { return .some((route.id, "<regex>")) }
        let service = info.service
        let pre = Array(((route.stripPath ? info.prefix : nil) ?? "/").utf8)
        let base = Array((service?.path ?? "/").utf8)
        let query = head.queryStart < t.count ? UnsafeRawBufferPointer(rebasing: t[(head.queryStart + 1)...]) : nil
        var out = FlatArray<UInt8>()
        pre.withUnsafeBytes { p in
            base.withUnsafeBytes { b in
                KongPath.appendUpstreamURI(requestPath: path, matchedPrefix: p, stripPath: route.stripPath,
                                           servicePath: b, query: query, into: &out)
            }
        }
        return .some((route.id, String(decoding: out, as: UTF8.self)))
    }
}

private func slowURI(_ r: Router, _ head: HTTPRequestHead, listenPort: Int = 8000) -> (id: String, uri: String)? {
    let norm = KongPath.normalize(head.pathBytes)
    guard let m = r.match(head: head, normalizedPath: norm, listenPort: listenPort) else { return nil }
    if m.matchedRoutePath?.hasPrefix("~") == true { return (m.route.id, "<regex>") }
    return (m.route.id, m.upstreamURI(normalizedPath: norm, query: head.query))
}

@Test(arguments: pathCases)
func byteUpstreamPathTable(_ c: PathCase) {
    let service = Service(id: "s", host: "h", path: c.servicePath)
    let route = Route(id: "r", hosts: c.routePath == nil ? ["h.test"] : nil, paths: c.routePath.map { [$0] },
                      stripPath: c.strip, serviceID: "s")
    let r = Router(snapshot: ConfigSnapshot(services: [service], routes: [route]))
    let p = parse("GET \(c.request) HTTP/1.1\r\nHost: h.test\r\n\r\n")
    guard case .some(let fast) = fastURI(r, p.head) else { return }   // needs normalization: String path only
    #expect(fast?.uri == c.expected)
}

@Test func byteMatchAgreesWithStringMatch() {
    let services = [Service(id: "s1", host: "a"), Service(id: "s2", host: "b", path: "/base"),
                    Service(id: "s3", host: "c", path: "/base/")]
    let routes = [
        Route(id: "root", paths: ["/"], serviceID: "s1"),
        Route(id: "api", paths: ["/api", "/v1/api/"], serviceID: "s2", createdAt: 1),
        Route(id: "api-nostrip", paths: ["/keep"], stripPath: false, serviceID: "s3", createdAt: 2),
        Route(id: "get-only", methods: ["GET"], paths: ["/m"], serviceID: "s2", createdAt: 3),
        Route(id: "post-only", methods: ["POST", "PURGE"], paths: ["/m"], serviceID: "s3", createdAt: 4),
        Route(id: "host", hosts: ["example.com", "*.wild.test", "pre.*", "ported.test:9000"], paths: ["/h"],
              serviceID: "s1", createdAt: 5),
        Route(id: "host-only", hosts: ["only.test"], serviceID: "s3", createdAt: 6),
        Route(id: "hdr", paths: ["/hdr"], headers: ["x-version": ["v1", "V2"]], serviceID: "s2", createdAt: 7),
        Route(id: "re", paths: ["~/re/(?<n>\\d+)$"], serviceID: "s1", createdAt: 8),
        Route(id: "noservice", paths: ["/nos"], createdAt: 9),
    ]
    let r = Router(snapshot: ConfigSnapshot(services: services, routes: routes))
    let methods = ["GET", "POST", "PURGE", "DELETE"]
    let hosts = [nil, "example.com", "EXAMPLE.com:8000", "x.wild.test", "pre.anything", "ported.test:9000",
                 "ported.test:9001", "only.test", "ONLY.test:80", "[::1]:8000", "h:"]
    let paths = ["/", "/api", "/api/", "/apix", "/api/x?q=1&b", "/v1/api/z", "/keep/a", "/keepx", "/m", "/m/1",
                 "/h", "/h/x", "/hdr", "/re/12", "/re/x", "/nos/1", "/other?", "*", "/a%20b", "/a//b", "/x/./y"]
    let headerSets: [[(String, String)]] = [[], [("X-Version", "v2")], [("x-version", "v3")]]
    var compared = 0
    for m in methods {
        for h in hosts {
            for path in paths {
                for hs in headerSets {
                    var raw = "\(m) \(path) HTTP/1.1\r\n"
                    raw += "Host: \(h ?? "")\r\n"
                    for (n, v) in hs { raw += "\(n): \(v)\r\n" }
                    raw += "\r\n"
                    let p = parse(raw)
                    guard p.head.hostIndex != nil || h == nil else { continue }
                    let slow = slowURI(r, p.head)
                    guard case .some(let fast) = fastURI(r, p.head) else { continue }
                    #expect(fast?.id == slow?.id, "\(raw)")
                    #expect(fast?.uri == slow?.uri, "\(raw)")
                    compared += 1
                }
            }
        }
    }
    #expect(compared > 1000)
}
