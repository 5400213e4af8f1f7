import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// Scenarios of Kong's spec/03-plugins/13-cors/01-access_spec.lua, without sockets.
@Suite struct CorsTests {
    func set(_ config: JSON) -> PluginSet { compile(ConfigSnapshot(plugins: [plugin("cors", route: "r1", config)])) }

    /// access, then header_filter as the data path does for a proxied response.
    func proxied(_ s: PluginSet, _ req: HTTPRequestParser, upstream: HTTPHeaders = HTTPHeaders()) -> PluginContext {
        let ctx = run(s, req)
        PluginRuntime.headerFilter(ctx, req.head, status: ctx.exitStatus == 0 ? 200 : ctx.exitStatus, headers: upstream)
        return ctx
    }

    @Test func defaultPreflight() {
        let ctx = proxied(set([:]), get("/", [("Origin", "origin1.test"), ("Access-Control-Request-Method", "GET")], method: "OPTIONS"))
        #expect(ctx.exitStatus == 200 && ctx.exitBody.isEmpty && ctx.exitMessage == nil)
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Methods") == "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT")
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Origin") == "*")
        #expect(ctx.responseHeaders.value(of: "Vary") == nil && ctx.responseHeaders.value(of: "Access-Control-Max-Age") == nil)
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Headers") == nil)
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Credentials") == nil)
    }

    @Test func configuredPreflight() {
        let s = set(["origins": ["example.test"], "methods": ["GET"], "headers": ["origin", "type", "accepts"],
                     "exposed_headers": ["x-auth-token"], "max_age": 23, "credentials": true])
        let ctx = proxied(s, get("/", [("Origin", "example.test"), ("Access-Control-Request-Method", "GET")], method: "OPTIONS"))
        #expect(ctx.exitStatus == 200)
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Origin") == "example.test")
        #expect(ctx.responseHeaders.value(of: "Access-Control-Max-Age") == "23")
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Headers") == "origin,type,accepts")
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Methods") == "GET")
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Credentials") == "true")
        #expect(ctx.responseHeaders.value(of: "Vary") == "Origin")
        #expect(ctx.responseHeaders.value(of: "Access-Control-Expose-Headers") == nil, "not on preflights")
        // Simple request: origin, credentials and expose headers; Vary added to the upstream's.
        let simple = proxied(s, get("/", [("Origin", "example.test")]))
        #expect(simple.exitStatus == 0)
        #expect(simple.responseHeaders.value(of: "Access-Control-Allow-Origin") == "example.test")
        #expect(simple.responseHeaders.value(of: "Access-Control-Expose-Headers") == "x-auth-token")
        #expect(simple.responseHeaders.ops.contains(.add))
    }

    @Test func starWithCredentialsEchoesOrigin() {
        let ctx = proxied(set(["origins": ["*"], "credentials": true]), get("/", [("Origin", "http://origin5.test")]))
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Origin") == "http://origin5.test")
        #expect(ctx.responseHeaders.value(of: "Access-Control-Allow-Credentials") == "true")
        #expect(ctx.responseHeaders.value(of: "Vary") == "Origin")
    }

    @Test func regexAndPlainLists() {
        let s = set(["origins": ["http://www.example.net", "(.*[.])?example\\.org", "http://sub\\.example\\.com:\\d+"]])
        func acao(_ origin: String) -> String? {
            let c = proxied(s, get("/", [("Origin", origin)]))
            return c.responseHeaders.removes("Access-Control-Allow-Origin") ? nil : c.responseHeaders.value(of: "Access-Control-Allow-Origin")
        }
        #expect(acao("http://www.example.net") == "http://www.example.net")
        #expect(acao("http://www.example.net:80") == "http://www.example.net", "default port dropped")
        #expect(acao("https://api.example.org") == "https://api.example.org", "regex matched on the host")
        #expect(acao("https://example.org.evil.test") == nil, "regexes are anchored at the end")
        #expect(acao("http://sub.example.com:8080") == "http://sub.example.com:8080", "with ':' matched on scheme://host:port")
        #expect(acao("http://evil.test") == nil)
        let removed = proxied(s, get("/", [("Origin", "http://evil.test")]))
        #expect(removed.responseHeaders.removes("Access-Control-Allow-Origin"), "the upstream's ACAO is removed too")
    }

    @Test func preflightContinueAndNonPreflightOptions() {
        let cont = proxied(set(["preflight_continue": true]), get("/", [("Origin", "a.test"), ("Access-Control-Request-Method", "GET")], method: "OPTIONS"))
        #expect(cont.exitStatus == 0 && cont.responseHeaders.isEmpty)
        let plain = proxied(set([:]), get("/", [("Origin", "a.test")], method: "OPTIONS"))
        #expect(plain.exitStatus == 0, "an OPTIONS without Access-Control-Request-Method is proxied")
        #expect(plain.responseHeaders.value(of: "Access-Control-Allow-Origin") == "*")
        let absent = proxied(set(["allow_origin_absent": false]), get("/"))
        #expect(absent.responseHeaders.isEmpty)
    }

    @Test func badRegexFailsToCompile() {
        let s = set(["origins": ["(unclosed", "b.test"]])
        #expect(s.errors.count == 1 && s.errors[0].contains("not a valid regex"))
    }
}
