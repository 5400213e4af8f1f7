import Testing
import GWJSON
import GWStore
@testable import GWAdmin

final class FakeHealth: AdminHealthProvider {
    var checker = true
    var set: [(String, String?, Bool)] = []
    func targetHealth(upstream: Upstream, targets: [Target]) -> [TargetHealth] {
        targets.map { t in
            let h = t.weight == 0 ? "HEALTHCHECKS_OFF" : (t.port == 9999 ? "UNHEALTHY" : "HEALTHY")
            return TargetHealth(targetID: t.id, health: h, addresses: [AddressHealth(ip: t.host, port: t.port, weight: t.weight, health: h)])
        }
    }
    func setTargetHealth(upstream: Upstream, target: Target, address: String?, healthy: Bool) -> Bool {
        guard checker else { return false }
        set.append((target.target, address, healthy))
        return true
    }
}

@Suite struct UpstreamTests {
    @Test func defaultsIncludeFullHealthchecks() throws {
        let h = try Harness()
        let (st, u) = h.req("POST", "/upstreams", ["name": "up.test"])
        #expect(st == 201)
        #expect(u["algorithm"] == "round-robin" && u["hash_on"] == "none" && u["hash_fallback"] == "none")
        #expect(u["slots"] == 10000 && u["hash_on_cookie_path"] == "/" && u["use_srv_name"] == false)
        #expect(u["healthchecks"] == Healthchecks().json)
    }

    @Test func nameValidation() throws {
        let h = try Harness()
        #expect(h.req("POST", "/upstreams", ["name": "10.0.0.1"]).1["fields"]?["name"] == "Invalid name ('10.0.0.1'); no ip addresses allowed")
        #expect(h.req("POST", "/upstreams", ["name": "a.test:80"]).1["fields"]?["name"] == "Invalid name ('a.test:80'); no port allowed")
        #expect(h.req("POST", "/upstreams", ["name": "a b"]).1["fields"]?["name"] == "Invalid name ('a b'); must be a valid hostname")
        #expect(h.req("POST", "/upstreams", [:]).1["message"] == "schema violation (name: required field missing)")
    }

    @Test func hashSideEffects() throws {
        let h = try Harness()
        var u = h.req("POST", "/upstreams", ["name": "a", "hash_on": "header", "hash_on_header": "x-k"]).1
        #expect(u["algorithm"] == "consistent-hashing")
        u = h.req("PATCH", "/upstreams/a", ["hash_on": "none"]).1
        #expect(u["algorithm"] == "round-robin" && u["hash_on"] == "none")
        u = h.req("PATCH", "/upstreams/a", ["hash_on": "ip", "algorithm": "round-robin"]).1
        #expect(u["algorithm"] == "consistent-hashing")
        u = h.req("PATCH", "/upstreams/a", ["algorithm": "least-connections"]).1
        #expect(u["algorithm"] == "least-connections" && u["hash_on"] == "none")
        u = h.req("POST", "/upstreams", ["name": "b", "algorithm": "consistent-hashing"]).1
        #expect(u["algorithm"] == "consistent-hashing" && u["hash_on"] == "none")
        let r = h.req("POST", "/upstreams", ["name": "c", "hash_on": "header"])
        #expect(r.1["fields"] == ["hash_on_header": "required field missing",
                                  "@entity": ["failed conditional validation given value of field 'hash_on'"]])
        let r2 = h.req("POST", "/upstreams", ["name": "d", "hash_on": "none", "hash_fallback": "ip"])
        #expect(r2.1["fields"]?["hash_fallback"] == "expected one of: none")
    }

    @Test func healthchecksPatchDeepMerge() throws {
        let h = try Harness()
        h.req("POST", "/upstreams", ["name": "a", "healthchecks": ["active": ["healthy": ["interval": 5]]]])
        var u = h.req("GET", "/upstreams/a").1
        #expect(u["healthchecks"]?["active"]?["healthy"]?["interval"] == 5)
        #expect(u["healthchecks"]?["active"]?["healthy"]?["http_statuses"] == [200, 302])
        u = h.req("PATCH", "/upstreams/a", ["healthchecks": ["active": ["unhealthy": ["tcp_failures": 3]]]]).1
        #expect(u["healthchecks"]?["active"]?["healthy"]?["interval"] == 5)
        #expect(u["healthchecks"]?["active"]?["unhealthy"]?["tcp_failures"] == 3)
        #expect(u["healthchecks"]?["active"]?["timeout"] == 1)
        let r = h.req("PATCH", "/upstreams/a", ["healthchecks": ["active": ["timeout": 70000]]])
        #expect(r.0 == 400)
        #expect(r.1["fields"] == ["healthchecks": ["active": ["timeout": "value should be between 0 and 65535"]]])
        #expect(r.1["message"] == "schema violation (healthchecks.active: {\n  timeout = \"value should be between 0 and 65535\"\n})")
        let r2 = h.req("PATCH", "/upstreams/a", ["healthchecks": ["threshold": 101]])
        #expect(r2.1["message"] == "schema violation (healthchecks.threshold: value should be between 0 and 100)")
    }

    @Test func deleteCascadesTargets() throws {
        let h = try Harness()
        h.req("POST", "/upstreams", ["name": "a"])
        h.req("POST", "/upstreams/a/targets", ["target": "10.0.0.1:80"])
        #expect(h.store.count(.targets) == 1)
        #expect(h.req("DELETE", "/upstreams/a").0 == 204)
        #expect(h.store.count(.targets) == 0)
    }
}

@Suite struct TargetTests {
    @Test func normalisationAndDefaults() throws {
        let h = try Harness()
        h.req("POST", "/upstreams", ["name": "a"])
        var t = h.req("POST", "/upstreams/a/targets", ["target": "konghq.test"])
        #expect(t.0 == 201 && t.1["target"] == "konghq.test:8000" && t.1["weight"] == 100)
        #expect(t.1["created_at"]?.doubleValue != nil)
        t = h.req("POST", "/upstreams/a/targets", ["target": "[::1]"])
        #expect(t.1["target"] == "[0000:0000:0000:0000:0000:0000:0000:0001]:8000")
        t = h.req("POST", "/upstreams/a/targets", ["target": "[fe80::1]:81"])
        #expect(t.1["target"] == "[fe80:0000:0000:0000:0000:0000:0000:0001]:81")
        t = h.req("POST", "/upstreams/a/targets", ["target": "not a host"])
        #expect(t.0 == 400 && t.1["fields"]?["target"] == "Invalid target; not a valid hostname or ip address")
        t = h.req("POST", "/upstreams/a/targets", ["target": "b.test", "weight": 70000])
        #expect(t.1["fields"]?["weight"] == "value should be between 0 and 65535")
        #expect(h.req("POST", "/upstreams/nope/targets", ["target": "b.test"]).0 == 404)
    }

    @Test func duplicateIs409() throws {
        let h = try Harness()
        let up = h.req("POST", "/upstreams", ["name": "a"]).1
        #expect(h.req("POST", "/upstreams/a/targets", ["target": "h.test"]).0 == 201)
        let r = h.req("POST", "/upstreams/a/targets", ["target": "h.test:8000"])
        #expect(r.0 == 409 && r.1["code"] == 5)
        #expect(r.1["fields"] == ["target": "h.test:8000", "upstream": ["id": up["id"]!]])
        // Same target on another upstream is fine.
        h.req("POST", "/upstreams", ["name": "b"])
        #expect(h.req("POST", "/upstreams/b/targets", ["target": "h.test"]).0 == 201)
    }

    @Test func lookupUpdateDelete() throws {
        let h = try Harness()
        h.req("POST", "/upstreams", ["name": "a"])
        h.req("POST", "/upstreams", ["name": "b"])
        let t = h.req("POST", "/upstreams/a/targets", ["target": "10.0.0.1:80", "weight": 5]).1
        let id = t["id"]!.stringValue!
        #expect(h.req("GET", "/upstreams/a/targets/10.0.0.1:80").1["id"] == t["id"])
        #expect(h.req("GET", "/upstreams/a/targets/\(id)").0 == 200)
        #expect(h.req("GET", "/upstreams/b/targets/\(id)").0 == 404)
        var r = h.req("PATCH", "/upstreams/a/targets/10.0.0.1:80", ["weight": 0])
        #expect(r.0 == 200 && r.1["weight"] == 0)
        r = h.req("PUT", "/upstreams/a/targets/\(id)", ["target": "10.0.0.2"])
        #expect(r.0 == 200 && r.1["target"] == "10.0.0.2:8000" && r.1["weight"] == 100 && r.1["id"] == t["id"])
        #expect(h.req("PUT", "/upstreams/a/targets/10.9.9.9:1", ["weight": 1]).0 == 404)
        #expect(h.req("PUT", "/upstreams/a/targets", ["target": "x.test"]).0 == 405)
        #expect(h.req("DELETE", "/upstreams/a/targets").0 == 405)
        #expect(h.req("DELETE", "/upstreams/a/targets/10.0.0.2:8000").0 == 204)
        #expect(h.store.count(.targets) == 0)
        #expect(h.req("GET", "/targets").0 == 404)
        #expect(h.req("GET", "/targets/\(id)").1 == ["message": "Not found"])
    }

    @Test func listNewestFirstIncludingWeightZeroAndAll() throws {
        let h = try Harness()
        h.req("POST", "/upstreams", ["name": "a"])
        h.req("POST", "/upstreams/a/targets", ["target": "a.test:1", "weight": 0])
        h.req("POST", "/upstreams/a/targets", ["target": "b.test:1"])
        h.req("POST", "/upstreams/a/targets", ["target": "c.test:1"])
        let list = h.req("GET", "/upstreams/a/targets").1["data"]!.arrayValue!
        #expect(list.count == 3)
        let all = h.req("GET", "/upstreams/a/targets/all").1["data"]!.arrayValue!
        #expect(all.map { $0["target"]!.stringValue! } == ["a.test:1", "b.test:1", "c.test:1"])
        let page = h.req("GET", "/upstreams/a/targets?size=2").1
        #expect(page["data"]?.arrayValue?.count == 2 && page["next"]?.stringValue == "/upstreams/a/targets?offset=2")
        let page2 = h.req("GET", "/upstreams/a/targets?offset=2&size=2").1
        #expect(page2["data"]?.arrayValue?.count == 1 && page2["next"] == .null)
        #expect(h.req("GET", "/upstreams/a/targets?offset=9223372036854775807").0 == 400)
        #expect(h.req("GET", "/tags?offset=\(Base64.encode("9223372036854775807"))").0 == 400)
    }

    @Test func healthEndpoints() throws {
        let h = try Harness()
        let fake = FakeHealth()
        h.api.context.health = fake
        let up = h.req("POST", "/upstreams", ["name": "a"]).1
        h.req("POST", "/upstreams/a/targets", ["target": "127.0.0.1:9001"])
        h.req("POST", "/upstreams/a/targets", ["target": "127.0.0.1:9999"])
        var r = h.req("GET", "/upstreams/a/health")
        #expect(r.0 == 200 && r.1["data"]?.arrayValue?.count == 2 && r.1["node_id"]?.stringValue?.count == 36)
        let rows = r.1["data"]!.arrayValue!
        let healthy = rows.first { $0["target"] == "127.0.0.1:9001" }!
        #expect(healthy["health"] == "HEALTHY")
        #expect(healthy["data"]?["addresses"]?[0] == ["ip": "127.0.0.1", "port": 9001, "weight": 100, "health": "HEALTHY"])
        #expect(healthy["data"]?["weight"] == ["total": 100, "unavailable": 0, "available": 100])
        #expect(rows.first { $0["target"] == "127.0.0.1:9999" }!["health"] == "UNHEALTHY")
        r = h.req("GET", "/upstreams/a/health?balancer_health=1")
        #expect(r.1["data"]?["id"] == up["id"]!)
        #expect(r.1["data"]?["health"] == "HEALTHCHECKS_OFF" && r.1["data"]?["balancer_health"] == "HEALTHY")
        #expect(r.1["data"]?["details"]?["weight"] == ["total": 200, "unavailable": 100, "available": 100])
        #expect(h.req("PUT", "/upstreams/a/targets/127.0.0.1:9001/unhealthy").0 == 204)
        #expect(h.req("PUT", "/upstreams/a/targets/127.0.0.1:9001/127.0.0.1:9001/healthy").0 == 204)
        #expect(fake.set.count == 2 && fake.set[0].2 == false && fake.set[1].1 == "127.0.0.1:9001")
        fake.checker = false
        #expect(h.req("PUT", "/upstreams/a/targets/127.0.0.1:9001/healthy") == (400, ["message": "no healthchecker found for a"]))
        #expect(h.req("PUT", "/upstreams/a/targets/1.1.1.1:1/healthy").0 == 404)
        #expect(h.req("POST", "/upstreams/a/targets/127.0.0.1:9001/healthy").0 == 405)
    }

    @Test func healthWithoutProviderIsOff() throws {
        let h = try Harness()
        h.req("POST", "/upstreams", ["name": "a"])
        h.req("POST", "/upstreams/a/targets", ["target": "127.0.0.1:9001"])
        let r = h.req("GET", "/upstreams/a/health")
        #expect(r.1["data"]?[0]?["health"] == "HEALTHCHECKS_OFF")
        #expect(h.req("PUT", "/upstreams/a/targets/127.0.0.1:9001/healthy") == (400, ["message": "no healthchecker found for a"]))
    }
}
