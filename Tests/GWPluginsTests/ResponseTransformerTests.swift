import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// Scenarios of Kong's spec/03-plugins/15-response-transformer/01-header_transformer_spec.lua, without sockets.
@Suite struct ResponseTransformerTests {
    func filter(_ config: JSON, _ upstream: [(String, String)], edits: (PluginContext) -> Void = { _ in }) -> PluginContext {
        let s = compile(ConfigSnapshot(plugins: [plugin("response-transformer", route: "r1", config)]))
        #expect(s.errors.isEmpty)
        let req = get("/")
        let ctx = run(s, req)
        edits(ctx)
        var h = HTTPHeaders()
        for (n, v) in upstream { h.append(name: n, value: v) }
        PluginRuntime.headerFilter(ctx, req.head, status: 200, headers: h)
        return ctx
    }
    func values(_ c: PluginContext, _ name: String, _ upstream: [(String, String)]) -> [String] {
        var h = HTTPHeaders()
        for (n, v) in upstream { h.append(name: n, value: v) }
        var out: [String] = []
        c.responseHeaders.forEachValue(of: Array(name.utf8), original: h) { v in out.append(String(decoding: v, as: UTF8.self)); return true }
        return out
    }

    let up = [("h1", "value1"), ("h2", "value2-a"), ("h2", "value2-b"), ("Content-Type", "application/json")]

    @Test func remove() {
        let c = filter(["remove": ["headers": ["h1", "h2"]]], up)
        #expect(values(c, "h1", up).isEmpty && values(c, "h2", up).isEmpty)
        #expect(values(c, "content-type", up) == ["application/json"])
    }

    @Test func rename() {
        let c = filter(["rename": ["headers": ["h1:h3", "h2:h4", "missing:h5"]]], up)
        #expect(values(c, "h1", up).isEmpty && values(c, "h3", up) == ["value1"])
        #expect(values(c, "h2", up).isEmpty && values(c, "h4", up) == ["value2-a", "value2-b"])
        #expect(values(c, "h5", up).isEmpty)
    }

    @Test func replace() {
        let c = filter(["replace": ["headers": ["h1:v1", "h2:v2", "h3:v3"]]], up)
        #expect(values(c, "h1", up) == ["v1"] && values(c, "h2", up) == ["v2"])
        #expect(values(c, "h3", up).isEmpty, "absent headers are not replaced")
    }

    @Test func add() {
        let c = filter(["add": ["headers": ["h1:v1", "h3:v3"]]], up)
        #expect(values(c, "h1", up) == ["value1"], "existing headers are not overridden")
        #expect(values(c, "h3", up) == ["v3"])
    }

    @Test func append() {
        let c = filter(["append": ["headers": ["h1:v1", "h3:v3", "h3:v4"]]], up)
        #expect(values(c, "h1", up) == ["value1", "v1"])
        #expect(values(c, "h3", up) == ["v3", "v4"])
    }

    @Test func orderAndEarlierPluginEdits() {
        // remove then add: the name is absent when add runs; a header an earlier plugin set counts as present
        let c = filter(["remove": ["headers": ["h1"]], "add": ["headers": ["h1:again", "x-set:nope"]],
                        "replace": ["headers": ["x-set:yes"]]], up) { $0.responseHeaders.set("x-set", "before") }
        #expect(values(c, "h1", up) == ["again"])
        #expect(values(c, "x-set", up) == ["yes"])
    }

    @Test func generatedResponse() {
        // a response the gateway produced (e.g. an auth 401) goes through header_filter with no upstream headers
        let c = filter(["add": ["headers": ["x-added:1"]], "replace": ["headers": ["x-none:1"]]], [])
        #expect(c.responseHeaders.value(of: "x-added") == "1" && c.responseHeaders.value(of: "x-none") == nil)
    }

    /// Kong's 02-body_transformer_spec.lua: remove → rename → replace → add → append, json_types casts.
    @Test func jsonBodies() {
        let ctx = filter(["remove": ["json": ["p1"]], "rename": ["json": ["p2:renamed"]],
                          "replace": ["json": ["p3:42", "absent:x"], "json_types": ["number", "string"]],
                          "add": ["json": ["p3:no", "flag:true", "num:x1"], "json_types": ["string", "boolean", "number"]],
                          "append": ["json": ["list:a", "p4:b"]]], up)
        #expect(ctx.holdResponseBody, "a JSON response is held")
        let out = PluginRuntime.transformResponseBody(ctx, Array(#"{"p1":"v1","p2":"v2","p3":"v3","p4":"s"}"#.utf8))
        #expect(out.map { String(decoding: $0, as: UTF8.self) } == #"{"p3":42,"p4":["s","b"],"renamed":"v2","flag":true,"list":["a"]}"#)
        #expect(PluginRuntime.transformResponseBody(ctx, Array("[1]".utf8)) == nil, "not an object: untouched")
        let text = filter(["remove": ["json": ["p1"]]], [("Content-Type", "text/plain")])
        #expect(!text.holdResponseBody)
        let headersOnly = filter(["add": ["headers": ["x:1"]]], up)
        #expect(!headersOnly.holdResponseBody)
    }
}
