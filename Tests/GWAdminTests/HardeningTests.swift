// Issue #13 Admin API defects: foreign keys by name (code 13), references without a primary key,
// values inside a reference validated against the parent's schema (defect 4); endpoint keys that can
// never be valid (code 10, defect 5); the target message of POST vs PUT/PATCH (defect 6); methods the
// Admin API does not serve (defect 10). Expected bodies from Kong's spec 09-routes_routes_spec.lua,
// 07-upstreams_routes_spec.lua and 08-targets_routes_spec.lua.
import Testing
import GWJSON
@testable import GWAdmin

private let protocolsMsg = "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"

@Suite struct ForeignKeyResolutionTests {
    @Test func unknownNameIsCode13() throws {
        let h = try Harness()
        let r = h.req("POST", "/routes", ["methods": ["GET"], "service": ["name": "non-existing"]])
        let msg = "the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity"
        #expect(r.0 == 400)
        #expect(r.1 == ["code": 13, "name": "foreign keys unresolved",
                        "message": .string("foreign key unresolved (service.name: \(msg))"),
                        "fields": ["service": ["name": .string(msg)]]])
    }

    @Test func twoUnresolvedAreCounted() throws {
        let h = try Harness()
        let r = h.req("POST", "/plugins", ["name": "key-auth", "service": ["name": "s1"], "route": ["name": "r1"]])
        #expect(r.0 == 400 && r.1["code"] == 13)
        #expect(r.1["message"]?.stringValue?.hasPrefix("2 foreign keys unresolved (route.name: ") == true)
        #expect(r.1["fields"]?["service"]?["name"] != nil && r.1["fields"]?["route"]?["name"] != nil)
    }

    @Test func knownNameResolvesToID() throws {
        let h = try Harness()
        let svc = h.req("POST", "/services", ["name": "svc", "host": "a.test"]).1
        let r = h.req("POST", "/routes", ["paths": ["/x"], "service": ["name": "svc"]])
        #expect(r.0 == 201 && r.1["service"] == ["id": svc["id"]!])
    }

    @Test func referenceWithoutPrimaryKey() throws {
        let h = try Harness()
        let expected: JSON = ["code": 2, "name": "schema violation", "message": "schema violation (service.id: missing primary key)",
                              "fields": ["service": ["id": "missing primary key"]]]
        var r = h.req("POST", "/routes", ["methods": ["GET"], "service": ["protocol": "http"]])
        #expect(r.0 == 400 && r.1 == expected)
        r = h.req("POST", "/routes", ["methods": ["GET"], "service": ["name": .null]])
        #expect(r.0 == 400 && r.1 == expected)
        r = h.form("POST", "/routes", "methods=GET&service.name=")
        #expect(r.0 == 400 && r.1 == expected)
    }

    @Test func invalidValueInsideReference() throws {
        let h = try Harness()
        let r = h.req("POST", "/routes", ["methods": ["GET"], "protocols": ["foo", "http"], "service": ["protocol": "foo"]])
        #expect(r.0 == 400)
        #expect(r.1["message"] == .string("2 schema violations (protocols.1: \(protocolsMsg); service.protocol: \(protocolsMsg))"))
        #expect(r.1["fields"] == ["protocols": [.string(protocolsMsg)], "service": ["protocol": .string(protocolsMsg)]])
        let u = h.req("POST", "/routes", ["methods": ["GET"], "service": ["bogus": 1]])
        #expect(u.1["fields"] == ["service": ["bogus": "unknown field"]])
    }

    @Test func unknownIDStaysCode4() throws {
        let h = try Harness()
        let r = h.req("POST", "/routes", ["paths": ["/x"], "service": ["id": "0b9e3e4a-0c8b-4b0e-9d6c-1e2f3a4b5c6d"]])
        #expect(r.0 == 400 && r.1["code"] == 4)
    }
}

@Suite struct EndpointKeyTests {
    @Test func ipAddressAsUpstreamName() throws {
        let h = try Harness()
        let expected: JSON = ["code": 10, "name": "invalid unique name",
                              "message": "Invalid name ('1.2.3.4'); no ip addresses allowed"]
        for m in ["PUT", "GET", "PATCH", "DELETE"] {
            let r = h.req(m, "/upstreams/1.2.3.4", m == "PUT" || m == "PATCH" ? ["created_at": 1461276890000] : nil)
            #expect(r.0 == 400, "\(m)")
            #expect(r.1 == expected, "\(m)")
        }
        #expect(h.req("GET", "/upstreams/1.2.3.4/targets").1 == expected)
        // a valid name that does not exist is still a 404
        #expect(h.req("GET", "/upstreams/missing.test").0 == 404)
    }

    @Test func putWithIDStillValidatesBody() throws {
        let h = try Harness()
        let r = h.req("PUT", "/upstreams/00000000-0000-0000-0000-000000000001", JSON.object(JSONObject()))
        #expect(r.0 == 400 && r.1["message"] == "schema violation (name: required field missing)")
    }
}

@Suite struct TargetMessageTests {
    @Test func insertHasTheBareMessageUpdatesNameTheValue() throws {
        let h = try Harness()
        h.req("POST", "/upstreams", ["name": "a"])
        var r = h.req("POST", "/upstreams/a/targets", ["target": "some invalid host name"])
        #expect(r.0 == 400 && r.1["message"] == "schema violation (target: Invalid target; not a valid hostname or ip address)")
        #expect(r.1["fields"] == ["target": "Invalid target; not a valid hostname or ip address"])
        let t = h.req("POST", "/upstreams/a/targets", ["target": "b.test:80"])
        let id = t.1["id"]!.stringValue!
        for m in ["PATCH", "PUT"] {
            r = h.req(m, "/upstreams/a/targets/\(id)", ["target": "hostname:1.0"])
            #expect(r.0 == 400, "\(m)")
            #expect(r.1["fields"] == ["target": "Invalid target ('hostname:1.0'); not a valid hostname or ip address"], "\(m)")
        }
    }
}

@Suite struct AdminMethodTests {
    @Test func unknownMethodIs405() throws {
        let h = try Harness()
        for m in ["QUERY", "PURGE", "PROPFIND"] {
            let r = h.req(m, "/services")
            #expect(r.0 == 405 && r.1 == ["message": "Method not allowed"], "\(m)")
        }
    }
}
