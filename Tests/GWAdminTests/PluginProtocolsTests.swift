import Testing
import GWJSON
@testable import GWAdmin

/// Kong's check_protocols_match (spec/02-integration/03-db/03-plugins_spec.lua).
@Suite struct PluginProtocolsTests {
    @Test func pluginProtocolsMustMatchTheRouteOrAServiceRoute() throws {
        let h = try Harness()
        h.req("POST", "/services", ["name": "s", "url": "http://127.0.0.1:9"])
        let r = h.req("POST", "/services/s/routes", ["name": "r", "paths": ["/"], "protocols": ["https"]]).1
        var p = h.req("POST", "/plugins", ["name": "key-auth", "protocols": ["http"], "route": ["id": r["id"]!]])
        #expect(p.0 == 400 && p.1["fields"]?["protocols"] == "must match the associated route's protocols")
        #expect(p.1["message"] == "schema violation (protocols: must match the associated route's protocols)")
        p = h.req("POST", "/plugins", ["name": "key-auth", "protocols": ["http"], "service": ["name": "s"]])
        #expect(p.0 == 400 && p.1["fields"]?["protocols"] == "must match the protocols of at least one route pointing to this Plugin's service")
        #expect(h.req("POST", "/plugins", ["name": "key-auth", "protocols": ["https"], "route": ["id": r["id"]!]]).0 == 201)
        // A service without routes accepts any protocols.
        h.req("POST", "/services", ["name": "lonely", "url": "http://127.0.0.1:9"])
        #expect(h.req("POST", "/plugins", ["name": "key-auth", "protocols": ["http"], "service": ["name": "lonely"]]).0 == 201)
        // PATCH is checked against the merged entity.
        let pid = h.req("GET", "/routes/r/plugins").1["data"]![0]!["id"]!.stringValue!
        #expect(h.req("PATCH", "/plugins/\(pid)", ["protocols": ["http"]]).0 == 400)
        #expect(h.store.count(.plugins) == 2)
    }

    @Test func proxyCacheHasOneDictionary() throws {
        let h = try Harness()
        let r = h.req("POST", "/plugins", ["name": "proxy-cache", "config": ["strategy": "memory", "memory": ["dictionary_name": "other"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["memory"]?["dictionary_name"] == "missing shared dict 'other'")
        #expect(h.req("POST", "/plugins", ["name": "proxy-cache", "config": ["strategy": "memory"]]).0 == 201)
    }
}
