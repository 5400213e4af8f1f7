import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// key-auth scenarios from Kong's spec/03-plugins/09-key-auth/02-access_spec.lua, without sockets.
@Suite struct KeyAuthTests {
    let bob = Consumer(id: "c-bob", username: "bob")
    func snap(_ config: JSON = [:], extra: [Plugin] = [], consumers: [Consumer] = []) -> ConfigSnapshot {
        ConfigSnapshot(consumers: [bob] + consumers, plugins: [plugin("key-auth", route: "r1", config)] + extra,
                       keyauthCredentials: [KeyAuthCredential(id: "cred-1", consumerID: "c-bob", key: "kong")])
    }

    @Test func noKeyIs401WithWWWAuthenticate() {
        let set = compile(snap())
        let ctx = run(set, get("/request"))
        #expect(ctx.exitStatus == 401 && ctx.exitMessage == "No API key found in request")
        #expect(ctx.responseHeaders.value(of: "WWW-Authenticate") == "Key")
        let realm = run(compile(snap(["realm": "test-realm"])), get("/request"))
        #expect(realm.responseHeaders.value(of: "www-authenticate") == "Key realm=\"test-realm\"")
        #expect(run(set, get("/request?apikey")).exitMessage == "No API key found in request")
        #expect(run(set, get("/request", [("apikey", "")])).exitMessage == "No API key found in request")
    }

    @Test func keyInQueryAndHeader() {
        let set = compile(snap())
        var ctx = run(set, get("/request?apikey=kong"))
        #expect(ctx.exitStatus == 0 && ctx.consumer?.id == "c-bob")
        #expect(ctx.upstreamValue(of: "X-Consumer-Username") == "bob")
        #expect(ctx.upstreamValue(of: "X-Consumer-ID") == "c-bob")
        #expect(ctx.upstreamValue(of: "X-Credential-Identifier") == "cred-1")
        #expect(ctx.upstreamClears("X-Anonymous-Consumer") && ctx.upstreamClears("X-Consumer-Custom-ID"))
        ctx = run(set, get("/request", [("APIKEY", "kong")]))
        #expect(ctx.exitStatus == 0 && ctx.consumer?.id == "c-bob")
        ctx = run(set, get("/request?apikey=123"))
        #expect(ctx.exitStatus == 401 && ctx.exitMessage == "Unauthorized")
        ctx = run(set, get("/request?apikey=kong&apikey=kong"))
        #expect(ctx.exitStatus == 401 && ctx.exitMessage == "Duplicate API key found")
        ctx = run(set, get("/request", [("apikey", "kong"), ("apikey", "kong")]))
        #expect(ctx.exitMessage == "Duplicate API key found")
        ctx = run(set, get("/request?ap%69key=ko%6Eg"))
        #expect(ctx.exitStatus == 0, "percent-encoded name and value are decoded")
    }

    @Test func underscoreAndDashAreOneHeaderName() {
        let set = compile(snap(["key_names": ["api_key"]]))
        #expect(run(set, get("/r", [("api-key", "kong")])).exitStatus == 0)
        #expect(run(set, get("/r", [("Api_Key", "kong")])).exitStatus == 0)
        #expect(run(set, get("/r?api_key=kong")).exitStatus == 0)
        #expect(run(set, get("/r?api-key=kong")).exitStatus == 401, "query names are exact")
    }

    @Test func flagsAndPreflight() {
        #expect(run(compile(snap(["key_in_query": false])), get("/r?apikey=kong")).exitStatus == 401)
        #expect(run(compile(snap(["key_in_header": false])), get("/r", [("apikey", "kong")])).exitStatus == 401)
        #expect(run(compile(snap(["run_on_preflight": false])), get("/r", method: "OPTIONS")).exitStatus == 0)
        #expect(run(compile(snap()), get("/r", method: "OPTIONS")).exitStatus == 401)
    }

    @Test func hideCredentials() {
        let set = compile(snap(["hide_credentials": true]))
        var ctx = run(set, get("/request?c=value1&b=value2&apikey=kong&a=value3"))
        #expect(ctx.exitStatus == 0 && ctx.replacesQuery)
        #expect(String(decoding: ctx.upstreamQuery, as: UTF8.self) == "c=value1&b=value2&a=value3")
        #expect(ctx.upstreamHeaders.removes("apikey"))
        ctx = run(set, get("/request?apikey=kong"))
        #expect(ctx.replacesQuery && ctx.upstreamQuery.isEmpty)
        ctx = run(set, get("/request", [("apikey", "kong")]))
        #expect(ctx.exitStatus == 0 && ctx.upstreamHeaders.removes("apikey") && !ctx.replacesQuery)
    }

    @Test func anonymous() {
        let anon = Consumer(id: "c-anon", username: "anon")
        var ctx = run(compile(snap(["anonymous": "c-anon"], consumers: [anon])), get("/r"))
        #expect(ctx.exitStatus == 0 && ctx.consumer?.id == "c-anon" && ctx.credential == nil)
        #expect(ctx.upstreamValue(of: "X-Anonymous-Consumer") == "true")
        ctx = run(compile(snap(["anonymous": "anon"], consumers: [anon])), get("/r?apikey=nope"))
        #expect(ctx.consumer?.id == "c-anon", "by username too")
        ctx = run(compile(snap(["anonymous": .string(uuidA)])), get("/r"))
        #expect(ctx.exitStatus == 500 && ctx.exitMessage == "anonymous consumer \(uuidA) is configured but doesn't exist")
    }

    @Test func contextReuseAllocatesNoNewState() {
        let set = compile(snap(["hide_credentials": true]))
        let ctx = PluginContext(clientIP: "127.0.0.1")
        let req = get("/request?x=1&apikey=kong")
        for _ in 0 ..< 3 { run(set, req, ctx: ctx); #expect(ctx.exitStatus == 0 && ctx.consumer?.username == "bob") }
        run(set, get("/request"), ctx: ctx)
        #expect(ctx.exitStatus == 401 && ctx.consumer == nil)
    }
}
