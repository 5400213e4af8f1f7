import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// Scenarios of Kong's spec/03-plugins/36-request-transformer/02-access_spec.lua, without sockets.
@Suite struct RequestTransformerTests {
    func set(_ config: JSON) -> PluginSet { compile(ConfigSnapshot(plugins: [plugin("request-transformer", route: "r1", config)])) }
    func query(_ c: PluginContext) -> String { String(decoding: c.upstreamQuery, as: UTF8.self) }

    @Test func addDoesNotOverride() {
        let s = set(["add": ["headers": ["h1:v1", "h2:value:2"], "querystring": ["q1:v1"]]])
        let ctx = run(s, get("/?q1=v2&q2=v1", [("h1", "v2")]))
        #expect(ctx.exitStatus == 0)
        #expect(ctx.upstreamHeaders.value(of: "h1") == nil, "existing header untouched")
        #expect(ctx.upstreamHeaders.value(of: "h2") == "value:2", "value keeps its later colons")
        #expect(query(ctx) == "q1=v2&q2=v1")
        let absent = run(s, get("/?q2=v1"))
        #expect(query(absent) == "q1=v1&q2=v1", "sorted like set_query")
    }

    @Test func replaceOnlyExisting() {
        let s = set(["replace": ["headers": ["h1:v1", "host:new.test"], "querystring": ["q1:v1"]]])
        let ctx = run(s, get("/?q1=v2&q2=v1", [("h1", "v2")]))
        #expect(ctx.upstreamHeaders.value(of: "h1") == "v1")
        #expect(ctx.upstreamHeaders.value(of: "host") == "new.test", "Host can always be replaced")
        #expect(query(ctx) == "q1=v1&q2=v1")
        let none = run(s, get("/?q2=v1"))
        #expect(none.upstreamHeaders.value(of: "h1") == nil)
        #expect(query(none) == "q2=v1")
    }

    @Test func hostNeverAdded() {
        let ctx = run(set(["add": ["headers": ["host:x.test"]], "append": ["headers": ["host:y.test"]]]), get("/"))
        #expect(ctx.upstreamHeaders.isEmpty)
    }

    @Test func appendTwoValues() {
        let s = set(["append": ["headers": ["h1:v1", "h1:v2"], "querystring": ["p1:anything:1", "p1:a2"]]])
        let ctx = run(s, get("/"))
        #expect(ctx.upstreamHeaders.count == 2 && ctx.upstreamHeaders.ops.allSatisfy { $0 == .add })
        #expect(query(ctx) == "p1=anything%3A1&p1=a2")
        let existing = run(s, get("/?p1=x&b"))
        #expect(query(existing) == "b&p1=x&p1=anything%3A1&p1=a2")
        let bare = run(s, get("/?p1"))
        #expect(query(bare) == "p1=anything%3A1&p1=a2", "append to a bare argument (true) replaces it")
    }

    @Test func renameAndRemove() {
        let s = set(["rename": ["headers": ["x-to-rename:x-is-renamed"], "querystring": ["originalparam:renamedparam"]],
                     "remove": ["headers": ["x-to-remove"], "querystring": ["toremovequery"]]])
        let ctx = run(s, get("/?originalparam=yes&toremovequery=yes&nottoremove=yes",
                             [("X-To-Rename", "a"), ("x-to-rename", "b"), ("x-to-remove", "yes")]))
        #expect(ctx.upstreamHeaders.removes("x-to-remove"))
        #expect(ctx.upstreamHeaders.removes("x-to-rename"))
        var values: [String] = []
        ctx.upstreamHeaders.forEachValue(of: Array("x-is-renamed".utf8), original: HTTPHeaders()) { v in
            values.append(String(decoding: v, as: UTF8.self)); return true
        }
        #expect(values == ["a", "b"])
        #expect(query(ctx) == "nottoremove=yes&renamedparam=yes")
        // rename of an absent argument clears the new name (Kong's table semantics)
        let absent = run(s, get("/?renamedparam=old"))
        #expect(query(absent) == "")
        // nothing to remove: no header edit
        #expect(run(s, get("/")).upstreamHeaders.isEmpty)
    }

    @Test func removeThenAddSeesTheRemoval() {
        let ctx = run(set(["remove": ["headers": ["h1"]], "add": ["headers": ["h1:new"]]]), get("/", [("h1", "old")]))
        #expect(ctx.upstreamHeaders.value(of: "h1") == "new")
    }

    @Test func templates() {
        let s = set(["add": ["headers": ["x-test-header:$(query_params.q1)", "x-cap:$(uri_captures[\"user1\"])"],
                             "querystring": ["uri_param1:$(uri_captures.user1 or 'default1')", "uri_param2:$(headers.host)",
                                             "h:$(headers['x-missing'])", "e:$('$(uri_captures.user1)')"]]])
        let c = PluginContext(clientIP: "127.0.0.1")
        c.reset()
        c.uriCaptures = ["user1": "foo", "0": "/requests/user1/foo", "1": "foo"]
        c.routeID = "r1"; c.serviceID = "s1"
        PluginRuntime.access(s.plan(routeID: "r1", serviceID: "s1"), c, get("/requests/user1/foo?q1=20").head)
        #expect(c.exitStatus == 0)
        #expect(c.upstreamHeaders.value(of: "x-test-header") == "20")
        #expect(c.upstreamHeaders.value(of: "x-cap") == "foo")
        #expect(query(c) == "e=%24%28uri_captures.user1%29&h=&q1=20&uri_param1=foo&uri_param2=test")
        // missing capture: the `or` default
        let d = run(s, get("/requests/?q1=20"))
        #expect(query(d) == "e=%24%28uri_captures.user1%29&h=&q1=20&uri_param1=default1&uri_param2=test")
    }

    @Test func templatesSeeOldValues() {
        let s = set(["remove": ["headers": ["x-remove-header"]], "replace": ["headers": ["x-replace-header:the new value"]],
                     "add": ["headers": ["x-test-header:$(headers['x-remove-header'])", "x-old:$(headers.x_replace_header)"]]])
        let ctx = run(s, get("/", [("x-remove-header", "its a test"), ("x-replace-header", "the old value")]))
        #expect(ctx.upstreamHeaders.removes("x-remove-header"))
        #expect(ctx.upstreamHeaders.value(of: "x-test-header") == "its a test")
        #expect(ctx.upstreamHeaders.value(of: "x-old") == "the old value")
        #expect(ctx.upstreamHeaders.value(of: "x-replace-header") == "the new value")
    }

    @Test func badTemplateIs500() {
        for bad in ["q1:$(ERROR())", "q1:$(10 * uri_captures.user1)", "q1:$(shared.my_version)"] {
            let ctx = run(set(["add": ["querystring": .array([.string(bad)])]]), get("/"))
            #expect(ctx.exitStatus == 500 && ctx.exitMessage == "An unexpected error occurred", "\(bad)")
            #expect(ctx.failure != nil)
        }
        let uri = run(set(["replace": ["uri": "/requests/user2/$(10 * uri_captures.user1)"]]), get("/"))
        #expect(uri.exitStatus == 500)
    }

    @Test func httpMethodAndUri() {
        let ctx = PluginContext(clientIP: "127.0.0.1")
        ctx.reset()
        ctx.uriCaptures = ["user1": "foo", "user2": "bar", "0": "/requests/user1/foo/user2/bar"]
        ctx.routeID = "r1"; ctx.serviceID = "s1"
        let s = set(["http_method": "POST", "replace": ["uri": "/requests/user2/$(uri_captures.user2)/user1/$(uri_captures.user1) x"]])
        PluginRuntime.access(s.plan(routeID: "r1", serviceID: "s1"), ctx, get("/requests/user1/foo/user2/bar?a=1").head)
        #expect(ctx.exitStatus == 0)
        #expect(ctx.upstreamMethod == "POST")
        #expect(ctx.replacesPath && String(decoding: ctx.upstreamPath, as: UTF8.self) == "/requests/user2/bar/user1/foo%20x")
        #expect(!ctx.replacesQuery, "the query is left alone")
        ctx.reset()
        #expect(!ctx.replacesPath && ctx.upstreamPath.isEmpty && ctx.upstreamMethod == nil && ctx.uriCaptures.isEmpty)
        // by index; a path not starting with '/' fails like set_path
        let idx = set(["replace": ["uri": "/requests$(uri_captures[0])"]])
        ctx.uriCaptures = ["0": "/user1/foo"]
        ctx.routeID = "r1"; ctx.serviceID = "s1"
        PluginRuntime.access(idx.plan(routeID: "r1", serviceID: "s1"), ctx, get("/user1/foo").head)
        #expect(String(decoding: ctx.upstreamPath, as: UTF8.self) == "/requests/user1/foo")
        #expect(run(set(["replace": ["uri": "$(uri_captures.x)"]]), get("/")).exitStatus == 500)
    }

    @Test func bodyConfigsCompileAndAskForTheBody() {
        let s1 = set(["add": ["body": ["a:b"]]])
        #expect(s1.errors.isEmpty && s1.plan(routeID: "r1", serviceID: "s1").needsRequestBody)
        let s2 = set(["http_method": "GET"])
        #expect(s2.errors.isEmpty && s2.plan(routeID: "r1", serviceID: "s1").needsRequestBody)
        let s3 = set(["add": ["headers": ["a:b"]]])
        #expect(s3.errors.isEmpty && !s3.plan(routeID: "r1", serviceID: "s1").needsRequestBody)
    }

    @Test func templateParser() {
        #expect(TransformTemplate("plain").isLiteral)
        #expect(TransformTemplate("a $(headers.x) b").unsupported == nil)
        #expect(TransformTemplate("$(query_params[\"a b\"] or \"d\")").unsupported == nil)
        #expect(TransformTemplate("$(uri_captures[1])").unsupported == nil)
        #expect(TransformTemplate("$(uri_captures user2)").unsupported != nil)
        #expect(TransformTemplate("$(type(headers.x))").unsupported != nil)
        #expect(TransformTemplate("$(headers.x or headers.y)").unsupported != nil)
        #expect(TransformTemplate("$(unbalanced").isLiteral)
    }
}
