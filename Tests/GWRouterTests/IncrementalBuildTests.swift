import Testing
import GWJSON
import GWStore
import GWHTTP
@testable import GWRouter

/// A router built from the previous generation (reusing compiled routes, by position when the delta's
/// `RouteChanges` are given) must answer exactly as one built from scratch.
@Suite struct IncrementalBuildTests {
    static let services = [Service(id: "s1", host: "a.test"), Service(id: "s2", host: "b.test")]

    static func routes(_ n: Int) -> [Route] {
        (0..<n).map { i in
            switch i % 5 {
            case 0: Route(id: "r\(i)", paths: ["/p\(i)"], serviceID: "s1", createdAt: 100)
            case 1: Route(id: "r\(i)", hosts: ["h\(i % 7).test"], paths: ["/p\(i / 2)"], serviceID: "s2", createdAt: 100 + i)
            case 2: Route(id: "r\(i)", methods: ["POST"], paths: ["~/re\(i % 3)/(?<n>\\d+)$"], regexPriority: i % 4,
                          serviceID: "s1", createdAt: 100)
            case 3: Route(id: "r\(i)", hosts: ["*.w\(i % 3).test"], serviceID: "s2", createdAt: 50)
            default: Route(id: "r\(i)", paths: ["/p\(i % 11)"], headers: ["x-t": ["v\(i % 2)"]], serviceID: "s1",
                           createdAt: 100)
            }
        }
    }

    static let probes: [(String, String?, String, [(String, String)])] = {
        var out: [(String, String?, String, [(String, String)])] = []
        for i in 0..<60 {
            out.append(("GET", nil, "/p\(i)/x", []))
            out.append(("GET", "h\(i % 7).test", "/p\(i)", []))
            out.append(("POST", "x.test", "/re\(i % 3)/\(i)", []))
            out.append(("GET", "q.w\(i % 3).test", "/", []))
            out.append(("GET", nil, "/p\(i % 11)", [("X-T", "v\(i % 2)")]))
        }
        out.append(("GET", nil, "/new/route", []))
        return out
    }()

    static func answers(_ r: Router) -> [String] {
        probes.map { p in
            var h = HTTPHeaders()
            for (n, v) in p.3 { h.append(name: n, value: v) }
            let m = r.match(method: p.0, host: p.1, normalizedPath: KongPath.normalize(Array(p.2.utf8)), headers: h,
                            listenPort: 8000)
            guard let m else { return "-" }
            return "\(m.route.id)/\(m.service?.id ?? "none")/\(m.routeIndex)/\(m.matchedPathText ?? "")"
        }
    }

    @Test func appendUpdateDeleteMatchAFreshBuild() {
        var snap = ConfigSnapshot(services: Self.services, routes: Self.routes(200))
        var r = Router(snapshot: snap)
        #expect(r.reusedRoutes == 0)

        // 1. one route appended (what a POST /routes delta does): positional reuse of all the others
        var next = snap
        next.routes.append(Route(id: "new", paths: ["/new"], serviceID: "s2", createdAt: 1))
        var inc = Router(snapshot: next, reusing: r, changes: RouteChanges(previousCount: 200, positions: [200]))
        #expect(inc.reusedRoutes == 200)
        #expect(Self.answers(inc) == Self.answers(Router(snapshot: next)))
        #expect(Self.answers(inc).last == "new/s2/200//new")
        snap = next; r = inc

        // 2. one route updated in place (its paths change): only that route is recompiled
        next = snap
        next.routes[10].paths = ["/moved"]
        inc = Router(snapshot: next, reusing: r, changes: RouteChanges(previousCount: 201, positions: [10]))
        #expect(inc.reusedRoutes == 200)
        #expect(Self.answers(inc) == Self.answers(Router(snapshot: next)))
        snap = next; r = inc

        // 3. a route deleted (positions shift; no RouteChanges): found by id, compared, reused
        next = snap
        next.routes.remove(at: 3)
        inc = Router(snapshot: next, reusing: r)
        #expect(inc.reusedRoutes == 200)
        #expect(Self.answers(inc) == Self.answers(Router(snapshot: next)))
        snap = next; r = inc

        // 4. a service disabled: its routes leave the router, the others keep answering
        next = snap
        next.services[1].enabled = false
        inc = Router(snapshot: next, reusing: r)
        #expect(Self.answers(inc) == Self.answers(Router(snapshot: next)))
        #expect(inc.entryCount < r.entryCount)
        snap = next; r = inc

        // 5. re-enabled, and many routes changed at once
        next = snap
        next.services[1].enabled = true
        for i in stride(from: 0, to: next.routes.count, by: 3) { next.routes[i].regexPriority += 1 }
        inc = Router(snapshot: next, reusing: r)
        #expect(Self.answers(inc) == Self.answers(Router(snapshot: next)))
    }

    /// Random in-place updates and appends, each applied with its `RouteChanges` (the positional fast
    /// path: copied runs, merged order, cached trie nodes), compared with a build from scratch every step.
    @Test func randomDeltasMatchFreshBuilds() {
        var g = SplitMix(seed: 42)
        var snap = ConfigSnapshot(services: Self.services, routes: Self.routes(120))
        var r = Router(snapshot: snap)
        for step in 0..<40 {
            var next = snap
            var positions: Set<Int> = []
            for _ in 0..<Int(g.next() % 4) + 1 {
                let i = Int(g.next() % UInt64(next.routes.count + 3))
                let variant = Int(g.next() % 6)
                var route = i < next.routes.count ? next.routes[i] : Route(id: "n\(step)-\(i)", serviceID: "s1", createdAt: step)
                switch variant {
                case 0: route.paths = ["/p\(g.next() % 60)"]
                case 1: route.paths = ["~/(unclosed"]                      // invalid: reported, left out
                case 2: route.protocols = ["grpc"]                         // not http: left out
                case 3: route.protocols = ["http"]; route.hosts = ["h\(g.next() % 7).test"]; route.paths = ["/p\(g.next() % 60)"]
                case 4: route.regexPriority = Int(g.next() % 5); route.paths = ["~/re\(g.next() % 3)/(?<n>\\d+)$"]
                default: route.hosts = nil; route.paths = nil; route.methods = ["POST"]
                }
                if i < next.routes.count { next.routes[i] = route; positions.insert(i) } else {
                    positions.insert(next.routes.count); next.routes.append(route)
                }
            }
            let inc = Router(snapshot: next, reusing: r, changes: RouteChanges(previousCount: snap.routes.count, positions: positions))
            let fresh = Router(snapshot: next)
            #expect(Self.answers(inc) == Self.answers(fresh), "step \(step)")
            #expect(inc.buildErrors == fresh.buildErrors, "step \(step)")
            #expect(inc.entryCount == fresh.entryCount, "step \(step)")
            snap = next; r = inc
        }
    }

    /// Deltas as the worker applies them (PublishedConfig.apply gives the RouteChanges): appends, in-place
    /// updates, deletions and service changes (enabled toggled), against a fresh build every step.
    @Test func publishedDeltasMatchFreshBuilds() throws {
        var g = SplitMix(seed: 7)
        var c = PublishedConfig(snapshot: ConfigSnapshot(generation: 1, services: Self.services, routes: Self.routes(150)))
        var r = Router(snapshot: c.snapshot)
        var fast = 0
        for step in 0..<60 {
            var d = ConfigDelta(generation: c.generation + 1, base: c.generation)
            let kind = g.next() % 5
            var dels = Set<String>()
            for _ in 0..<Int(g.next() % 3) + 1 {
                let i = Int(g.next() % UInt64(c.snapshot.routes.count))
                var route = c.snapshot.routes[i]
                switch kind {
                case 0, 1:       // delete (some), maybe with a put
                    dels.insert(route.id)
                case 2:          // update in place
                    route.paths = ["/p\(g.next() % 60)"]
                    route.hosts = g.next() % 2 == 0 ? nil : ["h\(g.next() % 7).test"]
                    d.puts["routes", default: []].append(route.json)
                default:         // new route
                    let nr = Route(id: "n\(step)-\(i)", hosts: g.next() % 3 == 0 ? ["h\(i % 7).test"] : nil,
                                   paths: ["/p\(g.next() % 60)"], serviceID: g.next() % 2 == 0 ? "s1" : "s2",
                                   createdAt: 100 + step)
                    d.puts["routes", default: []].append(nr.json)
                }
            }
            if !dels.isEmpty { d.deletes["routes"] = Array(dels) }
            if kind == 1 {     // and a service toggled
                var svc = c.snapshot.services[Int(g.next() % 2)]
                svc.enabled.toggle()
                d.puts["services"] = [svc.json]
            }
            let ch = try c.apply(d)
            if ch != nil { fast += 1 }
            let inc = Router(snapshot: c.snapshot, reusing: r, changes: ch)
            let fresh = Router(snapshot: c.snapshot)
            #expect(Self.answers(inc) == Self.answers(fresh), "step \(step)")
            #expect(inc.buildErrors == fresh.buildErrors, "step \(step)")
            #expect(inc.entryCount == fresh.entryCount, "step \(step)")
            r = inc
        }
        #expect(fast == 60)      // no service was deleted: every step took the positional path
    }

    @Test func invalidRegexStaysReportedWhenReused() {
        let bad = Route(id: "bad", paths: ["~/(unclosed"], serviceID: "s1")
        let snap = ConfigSnapshot(services: Self.services, routes: [bad, Route(id: "ok", paths: ["/ok"], serviceID: "s1")])
        let r = Router(snapshot: snap)
        #expect(r.buildErrors.map(\.routeID) == ["bad"])
        var next = snap
        next.routes.append(Route(id: "more", paths: ["/more"], serviceID: "s1"))
        let inc = Router(snapshot: next, reusing: r, changes: RouteChanges(previousCount: 2, positions: [2]))
        #expect(inc.buildErrors.map(\.routeID) == ["bad"])
        #expect(inc.reusedRoutes == 2)
    }

    /// The packed key used for sorting orders entries exactly as Kong's field-by-field comparison.
    @Test func priorityKeyOrdersLikeKongsComparison() {
        var entries: [Entry] = []
        var g = SystemRandomNumberGenerator()
        for i in 0..<400 {
            let e = Entry(methods: [], hosts: [], headers: [], path: .none, pathSource: nil,
                          weight: Int.random(in: 0...4, using: &g), plainHostOnly: Bool.random(using: &g),
                          headerCount: Int.random(in: 0...3, using: &g), isRegex: Bool.random(using: &g),
                          regexPriority: [Int.min, -5, 0, 3, Int.max].randomElement(using: &g)!,
                          prefixLength: Int.random(in: 0...5, using: &g) * 1000, createdAt: 1, id: "id\(i)")
            entries.append(e)
        }
        for a in entries.prefix(80) {
            for b in entries {
                let byFields = Entry.before(a, b) || (!Entry.before(b, a) && a.id < b.id)
                let byKey = a.priority != b.priority ? a.priority > b.priority : a.id < b.id
                if a.id != b.id { #expect(byFields == byKey) }
            }
        }
    }
}

/// Deterministic generator for reproducible random tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
