import Testing
import Glibc
import GWStore
import GWHTTP
import GWRouter

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func makeRoutes(_ n: Int) -> [Route] {
    var routes: [Route] = []
    for i in 0..<n {
        switch i % 4 {
        case 0: routes.append(Route(id: "r\(i)", paths: ["/svc\(i)/api"], serviceID: "s1", createdAt: i))
        case 1: routes.append(Route(id: "r\(i)", hosts: ["h\(i).example.test"], serviceID: "s1", createdAt: i))
        case 2: routes.append(Route(id: "r\(i)", methods: ["POST"], hosts: ["shared.test"], paths: ["/p\(i)"],
                                    serviceID: "s1", createdAt: i))
        default: routes.append(Route(id: "r\(i)", hosts: ["h\(i).example.test"], paths: ["/x"],
                                     headers: ["x-tenant": ["t\(i)"]], serviceID: "s1", createdAt: i))
        }
    }
    return routes
}

/// Inputs are built before timing (long hosts would otherwise allocate in the loop); returns ns per match.
func timeMatches(_ r: Router, _ n: Int) -> Double {
    struct Q { var method: String; var host: String; var path: String; var headers: HTTPHeaders? }
    var qs: [Q] = []
    for k in 0..<1000 {
        let i = (k * 7919) % n
        var h = HTTPHeaders()
        h.append(name: "X-Tenant", value: "t\(i)")
        switch i % 4 {
        case 0: qs.append(Q(method: "GET", host: "any.test", path: "/svc\(i)/api/x", headers: nil))
        case 1: qs.append(Q(method: "GET", host: "h\(i).example.test", path: "/", headers: nil))
        case 2: qs.append(Q(method: "POST", host: "shared.test", path: "/p\(i)", headers: nil))
        default: qs.append(Q(method: "GET", host: "h\(i).example.test", path: "/x", headers: h))
        }
    }
    var found = 0
    let t0 = nowNanos()
    for _ in 0..<20 {
        for q in qs where r.match(method: q.method, host: q.host, normalizedPath: q.path, headers: q.headers,
                                  listenPort: 8000) != nil { found += 1 }
    }
    let dt = Double(nowNanos() - t0) / Double(20 * qs.count)
    #expect(found == 20 * qs.count)
    return dt
}

@Test func tenThousandRoutes() {
    let big = Router(snapshot: ConfigSnapshot(services: [Service(id: "s1", host: "u")], routes: makeRoutes(10_000)))
    let small = Router(snapshot: ConfigSnapshot(services: [Service(id: "s1", host: "u")], routes: makeRoutes(12)))
    // Correctness on every route of the big table.
    for i in 0..<10_000 {
        var h = HTTPHeaders()
        h.append(name: "x-tenant", value: "t\(i)")
        let id: String?
        switch i % 4 {
        case 0: id = big.match(method: "GET", host: "any.test", normalizedPath: "/svc\(i)/api/x", headers: nil, listenPort: 8000)?.route.id
        case 1: id = big.match(method: "GET", host: "h\(i).example.test", normalizedPath: "/", headers: nil, listenPort: 8000)?.route.id
        case 2: id = big.match(method: "POST", host: "shared.test", normalizedPath: "/p\(i)", headers: nil, listenPort: 8000)?.route.id
        default: id = big.match(method: "GET", host: "h\(i).example.test", normalizedPath: "/x", headers: h, listenPort: 8000)?.route.id
        }
        #expect(id == "r\(i)", "route \(i)")
        if id != "r\(i)" { break }
    }
    // "/p1" prefix also matches "/p10".."/p19"...: the longest prefix wins.
    #expect(big.match(method: "POST", host: "shared.test", normalizedPath: "/p1002", headers: nil, listenPort: 8000)?.route.id == "r1002")
    #expect(big.match(method: "GET", host: "nope.test", normalizedPath: "/nothing", headers: nil, listenPort: 8000) == nil)
    let tBig = timeMatches(big, 10_000)
    let tSmall = timeMatches(small, 12)
    print("router match: 12 routes \(Int(tSmall)) ns/match, 10000 routes \(Int(tBig)) ns/match")
}
