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

func timeMatches(_ r: Router, _ n: Int) -> (Double, Int) {
    var found = 0
    let iterations = 20_000
    var h = HTTPHeaders()
    h.append(name: "X-Tenant", value: "t\(n - 1)")
    let t0 = nowNanos()
    for k in 0..<iterations {
        let i = (k * 7919) % n
        let id: String?
        switch i % 4 {
        case 0: id = r.match(method: "GET", host: "any.test", normalizedPath: "/svc\(i)/api/x", headers: nil, listenPort: 8000)?.route.id
        case 1: id = r.match(method: "GET", host: "h\(i).example.test", normalizedPath: "/", headers: nil, listenPort: 8000)?.route.id
        case 2: id = r.match(method: "POST", host: "shared.test", normalizedPath: "/p\(i)", headers: nil, listenPort: 8000)?.route.id
        default: id = r.match(method: "GET", host: "h\(i).example.test", normalizedPath: "/x", headers: h, listenPort: 8000)?.route.id
        }
        if id == "r\(i)" || (i % 4 == 3 && id == nil) { found += 1 }
    }
    let dt = Double(nowNanos() - t0) / Double(iterations)
    return (dt, found)
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
    let (tBig, _) = timeMatches(big, 10_000)
    let (tSmall, _) = timeMatches(small, 12)
    print("router match: 12 routes \(Int(tSmall)) ns/match, 10000 routes \(Int(tBig)) ns/match")
}
