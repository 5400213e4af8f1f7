import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// request-termination (Kong's spec/03-plugins/14-request-termination/02-access_spec.lua), without sockets.
@Suite struct RequestTerminationTests {
    func set(_ name: String, _ config: JSON) -> PluginSet { compile(ConfigSnapshot(plugins: [plugin(name, route: "r1", config)])) }

    // MARK: request-termination

    @Test func terminationBodies() {
        var c = run(set("request-termination", [:]), get("/"))
        #expect(c.exitStatus == 503 && String(decoding: c.exitBody, as: UTF8.self) == #"{"message":"Service unavailable"}"#)
        #expect(c.exitContentType == "application/json; charset=utf-8" && c.exitMessage == nil)
        c = run(set("request-termination", ["status_code": 406, "message": "Invalid"]), get("/"))
        #expect(c.exitStatus == 406 && String(decoding: c.exitBody, as: UTF8.self) == #"{"message":"Invalid"}"#)
        c = run(set("request-termination", ["status_code": 451, "body": "<h1>x</h1>", "content_type": "text/html"]), get("/"))
        #expect(c.exitStatus == 451 && String(decoding: c.exitBody, as: UTF8.self) == "<h1>x</h1>" && c.exitContentType == "text/html")
        c = run(set("request-termination", ["body": "raw"]), get("/"))
        #expect(c.exitStatus == 503 && c.exitContentType == nil)
        c = run(set("request-termination", ["status_code": 204]), get("/"))
        #expect(c.exitStatus == 204 && c.exitBody.isEmpty && c.exitContentType == nil)
    }

    @Test func terminationTrigger() {
        let s = set("request-termination", ["trigger": "Gimme_An-Echo", "status_code": 404])
        #expect(run(s, get("/")).exitStatus == 0)
        #expect(run(s, get("/", [("gimme-an-echo", "x")])).exitStatus == 404)
        #expect(run(s, get("/?Gimme_An-Echo")).exitStatus == 404)
        #expect(run(s, get("/?gimme-an-echo=1")).exitStatus == 0, "query argument names are exact")
    }

    @Test func terminationEcho() throws {
        let snap = ConfigSnapshot(services: [Service(id: "s1", host: "up.test")],
                                  routes: [Route(id: "r1", hosts: ["api9.test"], serviceID: "s1")],
                                  plugins: [plugin("request-termination", route: "r1", ["echo": true, "status_code": 404])])
        let c = run(compile(snap), get("/status/200?hello=there&a=1&a=2&flag", [("X-Multi", "1"), ("x-multi", "2")]))
        #expect(c.exitStatus == 404)
        let doc = try JSON.parse(c.exitBody)
        #expect(doc["message"]?.stringValue == "Not found")
        #expect(doc["matched_route"]?["hosts"] == ["api9.test"] && doc["matched_service"]?["host"]?.stringValue == "up.test")
        let r = try #require(doc["request"])
        #expect(r["method"]?.stringValue == "GET" && r["path"]?.stringValue == "/status/200" && r["host"]?.stringValue == "test")
        #expect(r["query"] == ["hello": "there", "a": ["1", "2"], "flag": true])
        #expect(r["headers"]?["x-multi"] == ["1", "2"] && r["headers"]?["host"]?.stringValue == "test")
        #expect(r["raw_body"]?.stringValue == "" && r["body"] == nil)
        #expect(r["uri_captures"] == ["named": [:], "unnamed": []])
    }
}
