import Testing
import GWStore
import GWHTTP
import GWRouter

let svc = Service(id: "s1", host: "upstream.test")

func router(_ routes: [Route], services: [Service] = [svc]) -> Router {
    Router(snapshot: ConfigSnapshot(services: services, routes: routes))
}

func matchID(_ r: Router, _ method: String = "GET", host: String? = nil, path: String,
             headers: [(String, String)] = [], port: Int = 8000) -> String? {
    var h = HTTPHeaders()
    for (n, v) in headers { h.append(name: n, value: v) }
    return r.match(method: method, host: host, normalizedPath: KongPath.normalize(Array(path.utf8)), headers: h,
                   listenPort: port)?.route.id
}

@Test func kongDocExample() {
    let r = router([
        Route(id: "A", hosts: ["api.test"], serviceID: "s1"),
        Route(id: "B", paths: ["/v1"], serviceID: "s1"),
        Route(id: "C", hosts: ["api.test"], paths: ["/v1"], serviceID: "s1"),
    ])
    #expect(matchID(r, host: "api.test", path: "/v1/x") == "C")
    #expect(matchID(r, host: "other", path: "/v1/x") == "B")
    #expect(matchID(r, host: "api.test", path: "/x") == "A")
    #expect(matchID(r, host: "other", path: "/x") == nil)
}

@Test func longestPrefixAndStringPrefix() {
    let r = router([
        Route(id: "short", paths: ["/v1"], serviceID: "s1"),
        Route(id: "long", paths: ["/v1/users"], serviceID: "s1"),
        Route(id: "route", paths: ["/route"], serviceID: "s1"),
    ])
    #expect(matchID(r, path: "/v1/users/1") == "long")
    #expect(matchID(r, path: "/v1/other") == "short")
    #expect(matchID(r, path: "/v1users") == "short")      // plain string prefix, not segment-aware
    #expect(matchID(r, path: "/routereq") == "route")
    #expect(matchID(r, path: "/Route") == nil)            // case-sensitive
}

@Test func regexBeatsPrefixAndRegexPriority() {
    let r = router([
        Route(id: "prefix", paths: ["/v1/users"], serviceID: "s1"),
        Route(id: "re", paths: ["~/v1/.*"], serviceID: "s1"),
    ])
    #expect(matchID(r, path: "/v1/users/1") == "re")
    let r2 = router([
        Route(id: "low", paths: ["~/a/\\d+"], regexPriority: 1, serviceID: "s1"),
        Route(id: "high", paths: ["~/a/.*"], regexPriority: 5, serviceID: "s1"),
    ])
    #expect(matchID(r2, path: "/a/12") == "high")
    #expect(matchID(r2, path: "/a/x") == "high")
    // anchored at start only
    let r3 = router([Route(id: "re", paths: ["~/b/(?<id>\\d+)"], serviceID: "s1")])
    #expect(matchID(r3, path: "/x/b/1") == nil)
    let m = r3.match(method: "GET", host: nil, normalizedPath: "/b/42/tail", headers: nil, listenPort: 8000)
    #expect(m?.matchedPathText == "/b/42")
    #expect(m?.capture(named: "id") == "42")
    #expect(m?.captures == ["/b/42", "42"])
    #expect(m?.forwardedPrefix == "/b/42")
}

@Test func hostsWildcardsAndPorts() {
    let r = router([
        Route(id: "plain", hosts: ["api.example.com"], serviceID: "s1"),
        Route(id: "suffix", hosts: ["*.example.com"], serviceID: "s1"),
        Route(id: "prefixw", hosts: ["example.*"], serviceID: "s1"),
        Route(id: "port", hosts: ["ported.test:9000"], serviceID: "s1"),
    ])
    #expect(matchID(r, host: "api.example.com", path: "/") == "plain")      // plain-host bit beats wildcard
    #expect(matchID(r, host: "api.example.com:8000", path: "/") == "plain")
    #expect(matchID(r, host: "a.b.example.com", path: "/") == "suffix")
    #expect(matchID(r, host: "example.com", path: "/") == "prefixw")
    #expect(matchID(r, host: "example", path: "/") == nil)
    #expect(matchID(r, host: "xexample.com", path: "/") == nil)
    #expect(matchID(r, host: "example.org", path: "/") == "prefixw")
    #expect(matchID(r, host: "ported.test:9000", path: "/") == "port")
    #expect(matchID(r, host: "ported.test", path: "/", port: 9000) == "port")   // listening port
    #expect(matchID(r, host: "ported.test", path: "/", port: 8000) == nil)
    #expect(matchID(r, host: "ported.test:9001", path: "/", port: 9000) == nil)
    #expect(matchID(r, host: "API.Example.COM", path: "/") == "plain")
    #expect(matchID(r, host: nil, path: "/") == nil)
}

@Test func methodsAndWeights() {
    let r = router([
        Route(id: "get", methods: ["GET"], paths: ["/m"], serviceID: "s1"),
        Route(id: "post", methods: ["POST", "PUT"], paths: ["/m"], serviceID: "s1"),
        Route(id: "pathonly", paths: ["/m/longer/than/others"], serviceID: "s1"),
    ])
    #expect(matchID(r, "GET", path: "/m/longer/than/others") == "get")      // weight 2 beats longer prefix
    #expect(matchID(r, "PUT", path: "/m") == "post")
    #expect(matchID(r, "DELETE", path: "/m/longer/than/others") == "pathonly")
    #expect(matchID(r, "DELETE", path: "/m") == nil)
}

@Test func headersMatching() {
    let r = router([
        Route(id: "one", paths: ["/h"], headers: ["x-version": ["v1", "V2"]], serviceID: "s1"),
        Route(id: "two", paths: ["/h"], headers: ["x-version": ["v1"], "x-region": ["~*^eu-"]], serviceID: "s1"),
        Route(id: "none", paths: ["/h"], serviceID: "s1"),
    ])
    #expect(matchID(r, path: "/h", headers: [("X-Version", "V1"), ("X-Region", "EU-west")]) == "two")
    #expect(matchID(r, path: "/h", headers: [("x-version", "v2")]) == "one")
    #expect(matchID(r, path: "/h", headers: [("x-version", "v3"), ("x-version", "v1")]) == "one")   // any value
    #expect(matchID(r, path: "/h", headers: [("x-version", "v3")]) == "none")
    #expect(matchID(r, path: "/h", headers: [("x-version", "v1"), ("x-region", "us-1")]) == "one")
}

@Test func tieBreakCreatedAtThenID() {
    let r = router([
        Route(id: "b", paths: ["/t"], serviceID: "s1", createdAt: 10),
        Route(id: "a", paths: ["/t"], serviceID: "s1", createdAt: 20),
        Route(id: "c", paths: ["/t"], serviceID: "s1", createdAt: 10),
    ])
    #expect(matchID(r, path: "/t") == "b")
}

@Test func servicesAndProtocols() {
    let disabled = Service(id: "off", host: "x", enabled: false)
    let r = router([
        Route(id: "disabled", paths: ["/d"], serviceID: "off"),
        Route(id: "fallback", paths: ["/"], serviceID: "s1"),
        Route(id: "noservice", paths: ["/n"]),
        Route(id: "tcp", protocols: ["tcp"], paths: ["/tcp"], serviceID: "s1"),
        Route(id: "httpsonly", protocols: ["https"], paths: ["/secure"], serviceID: "s1"),
    ], services: [svc, disabled])
    #expect(matchID(r, path: "/d") == "fallback")
    let m = r.match(method: "GET", host: nil, normalizedPath: "/n", headers: nil, listenPort: 8000)
    #expect(m?.route.id == "noservice" && m?.service == nil)
    #expect(matchID(r, path: "/tcp") == "fallback")
    #expect(r.match(method: "GET", host: nil, normalizedPath: "/secure", headers: nil, listenPort: 8000)?.requiresHTTPS == true)
    #expect(r.match(method: "GET", host: nil, normalizedPath: "/d", headers: nil, listenPort: 8000)?.service?.id == "s1")
}

@Test func invalidRegexReported() {
    let r = router([Route(id: "bad", paths: ["~/(unclosed"], serviceID: "s1"), Route(id: "ok", paths: ["/"], serviceID: "s1")])
    #expect(r.buildErrors.count == 1)
    #expect(r.buildErrors.first?.routeID == "bad")
    #expect(matchID(r, path: "/x") == "ok")
}

@Test func matchFromParsedHead() {
    let p = HTTPRequestParser()
    _ = Array("POST /api/%75sers//x/../y?z=1 HTTP/1.1\r\nHost: api.test:8443\r\n\r\n".utf8).withUnsafeBytes { p.execute($0) }
    let r = router([Route(id: "u", methods: ["POST"], hosts: ["api.test"], paths: ["/api/users/y"], serviceID: "s1")])
    let path = KongPath.normalize(p.head.pathBytes)
    #expect(path == "/api/users/y")
    let m = r.match(head: p.head, normalizedPath: path, listenPort: 8000)
    #expect(m?.route.id == "u")
    #expect(m?.upstreamURI(normalizedPath: path, query: p.head.query) == "/?z=1")
}

@Test(arguments: [
    ("/", "/"), ("", ""), ("/a/b", "/a/b"), ("/a//b///c", "/a/b/c"), ("/a/./b", "/a/b"), ("/a/b/../c", "/a/c"),
    ("/a/b/..", "/a/"), ("/a/.", "/a/"), ("/../a", "/a"), ("/%61%62c", "/abc"), ("/a%2Fb", "/a%2Fb"),
    ("/a%2fb", "/a%2Fb"), ("/route%2E%2E/req", "/route../req"), ("/%2e%2e/x", "/x"), ("/a%20b", "/a b"),
    ("/a%3fb", "/a%3Fb"), ("/%7euser", "/~user"), ("/bad%zz", "/bad%zz"),
])
func normalization(_ input: String, _ expected: String) {
    #expect(KongPath.normalize(Array(input.utf8)) == expected)
}

@Test func escape() {
    #expect(KongPath.escape("/a b/c") == "/a%20b/c")
    #expect(KongPath.escape("/ok-._~!$&'()*+,;=:@%2F") == "/ok-._~!$&'()*+,;=:@%2F")
    #expect(KongPath.escape("/caf\u{e9}") == "/caf%C3%A9")
}

struct PathCase: Sendable, CustomStringConvertible {
    var servicePath: String?
    var routePath: String?
    var strip: Bool
    var request: String
    var expected: String
    var description: String { "\(servicePath ?? "nil") \(routePath ?? "host") strip=\(strip) \(request)" }
}

// KONG.md §3.3 (spec/fixtures/router_path_handling_tests.lua, v0 rows); "any" rows expanded to both.
let pathCases: [PathCase] = [
    .init(servicePath: "/", routePath: "/", strip: true, request: "/route/req", expected: "/route/req"),
    .init(servicePath: "/", routePath: "/", strip: false, request: "/route/req", expected: "/route/req"),
    .init(servicePath: "/", routePath: "/route", strip: false, request: "/routereq", expected: "/routereq"),
    .init(servicePath: "/", routePath: "/route", strip: true, request: "/route", expected: "/"),
    .init(servicePath: "/", routePath: "/route", strip: true, request: "/route/", expected: "/"),
    .init(servicePath: "/", routePath: "/route", strip: true, request: "/routereq", expected: "/req"),
    .init(servicePath: "/srv", routePath: "/rou", strip: false, request: "/roureq", expected: "/srv/roureq"),
    .init(servicePath: "/srv", routePath: "/rou", strip: true, request: "/roureq", expected: "/srv/req"),
    .init(servicePath: "/srv/", routePath: "/rou", strip: true, request: "/rou", expected: "/srv"),
    .init(servicePath: "/service", routePath: "/", strip: true, request: "/", expected: "/service"),
    .init(servicePath: "/service", routePath: "/", strip: false, request: "/", expected: "/service"),
    .init(servicePath: "/service", routePath: "/", strip: true, request: "/route/", expected: "/service/route/"),
    .init(servicePath: "/service", routePath: "/", strip: false, request: "/route/", expected: "/service/route/"),
    .init(servicePath: "/service", routePath: "/route", strip: false, request: "/route", expected: "/service/route"),
    .init(servicePath: "/service", routePath: "/route", strip: true, request: "/route", expected: "/service"),
    .init(servicePath: "/service", routePath: "/route", strip: true, request: "/route/", expected: "/service/"),
    .init(servicePath: "/service", routePath: "/route", strip: true, request: "/routereq", expected: "/service/req"),
    .init(servicePath: "/service", routePath: "/route/", strip: true, request: "/route/", expected: "/service/"),
    .init(servicePath: "/service/", routePath: "/route", strip: true, request: "/route", expected: "/service"),
    .init(servicePath: "/service/", routePath: "/route", strip: false, request: "/route/", expected: "/service/route/"),
    .init(servicePath: "/service/", routePath: nil, strip: true, request: "/route", expected: "/service/route"),
    .init(servicePath: "/service/", routePath: nil, strip: false, request: "/route", expected: "/service/route"),
    .init(servicePath: "/service", routePath: "/route", strip: true, request: "/route%2E%2E/req", expected: "/service/req"),
    .init(servicePath: "/service", routePath: "/route", strip: false, request: "/route%2E/req", expected: "/service/route./req"),
    .init(servicePath: nil, routePath: "/route", strip: true, request: "/route/x", expected: "/x"),
]

@Test(arguments: pathCases)
func upstreamPathTable(_ c: PathCase) {
    let service = Service(id: "s", host: "h", path: c.servicePath)
    let route = Route(id: "r", hosts: c.routePath == nil ? ["h.test"] : nil, paths: c.routePath.map { [$0] },
                      stripPath: c.strip, serviceID: "s")
    let r = Router(snapshot: ConfigSnapshot(services: [service], routes: [route]))
    let norm = KongPath.normalize(Array(c.request.utf8))
    let m = r.match(method: "GET", host: "h.test", normalizedPath: norm, headers: nil, listenPort: 8000)
    #expect(m != nil)
    #expect(m?.upstreamURI(normalizedPath: norm, query: nil) == c.expected)
}

@Test func queryAppendedUnchanged() {
    let r = router([Route(id: "q", paths: ["/q"], serviceID: "s1")])
    let m = r.match(method: "GET", host: nil, normalizedPath: "/q/x", headers: nil, listenPort: 8000)
    #expect(m?.upstreamURI(normalizedPath: "/q/x", query: "") == "/x?")
    #expect(m?.upstreamURI(normalizedPath: "/q/x", query: "a=%20b&c") == "/x?a=%20b&c")
    #expect(m?.forwardedPrefix == "/q")
}

@Test(arguments: [("a.test", "a.test", 80), ("a.test:8000", "a.test", 8000), ("[::1]:9000", "[::1]", 9000),
                  ("[::1]", "[::1]", 80), ("::1", "::1", 80), ("h:", "h", 80)])
func hostPortSplit(_ raw: String, _ host: String, _ port: Int) {
    let (h, p) = Router.splitHostPort(raw, defaultPort: 80)
    #expect(String(h) == host && p == port)
}

@Test func routeConvenience() {
    let p = HTTPRequestParser()
    _ = Array("GET http://api.test/v1/./x?y HTTP/1.1\r\nHost: api.test\r\n\r\n".utf8).withUnsafeBytes { p.execute($0) }
    let r = router([Route(id: "v1", paths: ["/v1"], serviceID: "s1")])
    let res = r.route(head: p.head, listenPort: 8000)
    #expect(res?.match.route.id == "v1")
    #expect(res?.normalizedPath == "/v1/x")
    #expect(res.map { $0.match.upstreamURI(normalizedPath: $0.normalizedPath, query: p.head.query) } == "/x?y")
}
