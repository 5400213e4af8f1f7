import Testing
import GWJSON
@testable import GWStore

@Suite struct SnapshotTests {
    let doc = #"""
    {"generation":7,
     "services":[{"id":"s1","name":"svc","protocol":"https","host":"example.test","port":443,"path":"/api",
                  "retries":3,"connect_timeout":1000,"write_timeout":2000,"read_timeout":3000,"enabled":false,
                  "tags":null,"created_at":1700000000,"updated_at":1700000000,"client_certificate":null}],
     "routes":[{"id":"r1","name":null,"protocols":["http"],"methods":["GET"],"hosts":["a.test"],"paths":["/x","~/y$"],
                "headers":{"x-v":["1","2"]},"strip_path":false,"preserve_host":true,"regex_priority":5,
                "path_handling":"v1","service":{"id":"s1"},"created_at":1700000001,"snis":null},
               {"id":"r2","paths":["/"],"service":null}],
     "upstreams":[{"id":"u1","name":"up","algorithm":"consistent-hashing","hash_on":"header","hash_on_header":"x-k",
                   "hash_fallback":"none","slots":100,"host_header":"h.test",
                   "healthchecks":{"threshold":25,"active":{"type":"https","timeout":2.5,"http_path":"/hc",
                     "healthy":{"interval":5,"successes":2,"http_statuses":[200]},
                     "unhealthy":{"interval":1,"tcp_failures":3,"http_failures":4,"timeouts":5,"http_statuses":[500]}},
                     "passive":{"unhealthy":{"http_failures":2}}}}],
     "targets":[{"id":"t1","upstream":{"id":"u1"},"target":"10.0.0.1:8080","weight":50,"created_at":1700000000.123},
                {"id":"t2","upstream":{"id":"u1"},"target":"[::1]:9000","weight":0,"created_at":1700000001.5},
                {"id":"t3","upstream":{"id":"u1"},"target":"host.test:8000"}]}
    """#

    @Test func decodesFullDocument() throws {
        let s = try ConfigSnapshot.decode(bytes: Array(doc.utf8))
        #expect(s.generation == 7)
        #expect(s.services == [Service(id: "s1", name: "svc", protocolName: "https", host: "example.test", port: 443,
                                       path: "/api", retries: 3, connectTimeout: 1000, writeTimeout: 2000,
                                       readTimeout: 3000, enabled: false)])
        #expect(s.routes.count == 2)
        #expect(s.routes[0] == Route(id: "r1", protocols: ["http"], methods: ["GET"], hosts: ["a.test"],
                                     paths: ["/x", "~/y$"], headers: ["x-v": ["1", "2"]], stripPath: false,
                                     preserveHost: true, regexPriority: 5, pathHandling: "v1", serviceID: "s1",
                                     createdAt: 1700000001))
        #expect(s.routes[1] == Route(id: "r2", paths: ["/"]))
        let u = try #require(s.upstreams.first)
        #expect(u.algorithm == "consistent-hashing" && u.hashOn == "header" && u.hashOnHeader == "x-k")
        #expect(u.slots == 100 && u.hostHeader == "h.test")
        #expect(u.healthchecks.threshold == 25)
        #expect(u.healthchecks.active.type == "https" && u.healthchecks.active.timeout == 2.5)
        #expect(u.healthchecks.active.httpPath == "/hc")
        #expect(u.healthchecks.active.healthyInterval == 5 && u.healthchecks.active.healthySuccesses == 2)
        #expect(u.healthchecks.active.healthyHTTPStatuses == [200])
        #expect(u.healthchecks.active.unhealthyTCPFailures == 3 && u.healthchecks.active.unhealthyTimeouts == 5)
        #expect(u.healthchecks.passive.unhealthyHTTPFailures == 2)
        #expect(u.healthchecks.passive.unhealthyHTTPStatuses == [429, 500, 503])
        #expect(u.healthchecks.active.concurrency == 10)
        #expect(u.healthchecks.checkerEnabled)
        #expect(s.targets[0] == Target(id: "t1", upstreamID: "u1", target: "10.0.0.1:8080", host: "10.0.0.1",
                                       port: 8080, weight: 50, createdAt: 1700000000.123))
        #expect(s.targets[1].host == "::1" && s.targets[1].port == 9000 && s.targets[1].weight == 0)
        #expect(s.targets[2].host == "host.test" && s.targets[2].port == 8000 && s.targets[2].weight == 100)
    }

    @Test func roundTripsThroughJSON() throws {
        let s = try ConfigSnapshot.decode(bytes: Array(doc.utf8))
        let again = try ConfigSnapshot.decode(bytes: s.json.serialized())
        #expect(again.generation == s.generation)
        #expect(again.services == s.services)
        #expect(again.routes == s.routes)
        #expect(again.upstreams == s.upstreams)
        #expect(again.targets == s.targets)
    }

    @Test func defaultHealthchecksSerializeLikeKong() {
        let j = Healthchecks().json
        #expect(j.serializedString == #"{"threshold":0,"active":{"type":"http","timeout":1,"concurrency":10,"http_path":"/","https_sni":null,"https_verify_certificate":true,"headers":null,"healthy":{"interval":0,"http_statuses":[200,302],"successes":0},"unhealthy":{"interval":0,"http_statuses":[429,404,500,501,502,503,504,505],"tcp_failures":0,"timeouts":0,"http_failures":0}},"passive":{"type":"http","healthy":{"http_statuses":[200,201,202,203,204,205,206,207,208,226,300,301,302,303,304,305,306,307,308],"successes":0},"unhealthy":{"http_statuses":[429,500,503],"tcp_failures":0,"timeouts":0,"http_failures":0}}}"#)
    }

    @Test func emptyDocument() throws {
        let s = try ConfigSnapshot.decode(json: ["generation": 0, "services": [], "routes": []])
        #expect(s.generation == 0 && s.services.isEmpty && s.routes.isEmpty && s.targets.isEmpty)
    }

    @Test func wrongTypesAreErrors() {
        #expect(throws: SnapshotError("service.port: expected an integer")) {
            try ConfigSnapshot.decode(json: ["services": [["id": "a", "host": "h", "port": "80"]]])
        }
        #expect(throws: SnapshotError("service.host: required field missing")) {
            try ConfigSnapshot.decode(json: ["services": [["id": "a"]]])
        }
        #expect(throws: SnapshotError("routes: expected an array")) {
            try ConfigSnapshot.decode(json: ["routes": 1])
        }
        #expect(throws: SnapshotError.self) { try ConfigSnapshot.decode(bytes: Array("{".utf8)) }
    }

    @Test func hostPortSplitting() {
        #expect(Target.splitHostPort("a.test:81")! == ("a.test", 81))
        #expect(Target.splitHostPort("[fe80::1]:81")! == ("fe80::1", 81))
        #expect(Target.splitHostPort("a.test")! == ("a.test", 8000))
        #expect(Target.splitHostPort("a.test:x") == nil)
    }
}

@Suite struct PluginSnapshotTests {
    @Test func decodesConsumersPluginsCredentials() throws {
        let doc = #"""
        {"generation":3,"consumers":[{"id":"c1","username":"bob","custom_id":null,"tags":null}],
         "plugins":[{"id":"p1","name":"key-auth","instance_name":null,"route":{"id":"r1"},"service":null,"consumer":null,
                     "config":{"key_names":["apikey"],"hide_credentials":false},"protocols":["http"],"enabled":false},
                    {"id":"p2","name":"cors"}],
         "keyauth_credentials":[{"id":"k1","consumer":{"id":"c1"},"key":"secret","created_at":1}]}
        """#
        let s = try ConfigSnapshot.decode(bytes: Array(doc.utf8))
        #expect(s.consumers == [Consumer(id: "c1", username: "bob")])
        #expect(s.plugins[0] == Plugin(id: "p1", name: "key-auth", routeID: "r1",
                                       config: ["key_names": ["apikey"], "hide_credentials": false],
                                       protocols: ["http"], enabled: false))
        #expect(s.plugins[1].enabled && s.plugins[1].protocols == ["grpc", "grpcs", "http", "https"])
        #expect(s.keyauthCredentials == [KeyAuthCredential(id: "k1", consumerID: "c1", key: "secret")])
        let again = try ConfigSnapshot.decode(bytes: s.json.serialized())
        #expect(again.plugins == s.plugins && again.consumers == s.consumers && again.keyauthCredentials == s.keyauthCredentials)
        #expect(throws: SnapshotError("keyauth_credential.consumer: required field missing")) {
            try ConfigSnapshot.decode(json: ["keyauth_credentials": [["id": "k", "key": "x"]]])
        }
    }
}
