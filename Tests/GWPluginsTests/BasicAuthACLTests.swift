import Testing
import CCrypto
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// Scenarios of Kong's spec/03-plugins/10-basic-auth/03-access_spec.lua and 18-acl/02-access_spec.lua.
@Suite struct BasicAuthACLTests {
    let bob = Consumer(id: "c-bob", username: "bob")
    func kongHash(_ password: String, _ consumer: String) -> String {
        var d = [UInt8](repeating: 0, count: 20)
        let b = Array((password + consumer).utf8)
        b.withUnsafeBufferPointer { _ = SHA1($0.baseAddress, $0.count, &d) }
        return d.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
    func snap(_ plugins: [Plugin], acls: [ACLGroup] = []) -> ConfigSnapshot {
        ConfigSnapshot(consumers: [bob, Consumer(id: "c-al", username: "alice")], plugins: plugins,
                       keyauthCredentials: [KeyAuthCredential(id: "k-al", consumerID: "c-al", key: "alice-key"),
                                            KeyAuthCredential(id: "k-old", consumerID: "c-al", key: "old", expiresAt: 1000)],
                       basicauthCredentials: [BasicAuthCredential(id: "b1", consumerID: "c-bob", username: "bob",
                                                                   passwordHash: kongHash("kong", "c-bob")),
                                              BasicAuthCredential(id: "b2", consumerID: "c-bob", username: "colon",
                                                                   passwordHash: kongHash("a:b:c", "c-bob"))],
                       acls: acls)
    }
    func basic(_ s: String) -> String { "Basic " + base64(Array(s.utf8)) }

    @Test func basicAuth() {
        let set = compile(snap([plugin("basic-auth", route: "r1")]))
        var ctx = run(set, get("/"))
        #expect(ctx.exitStatus == 401 && ctx.exitMessage == "Unauthorized")
        #expect(ctx.responseHeaders.value(of: "WWW-Authenticate") == "Basic realm=\"service\"")
        #expect(run(set, get("/", [("Authorization", "foobar")])).exitStatus == 401)
        ctx = run(set, get("/", [("Authorization", "Basic Ym9iOmtvbmc=")]))
        #expect(ctx.exitStatus == 0 && ctx.upstreamValue(of: "X-Credential-Identifier") == "bob")
        #expect(ctx.upstreamValue(of: "X-Consumer-Username") == "bob")
        #expect(run(set, get("/", [("Proxy-Authorization", basic("bob:kong"))])).exitStatus == 0)
        #expect(run(set, get("/", [("Authorization", basic("colon:a:b:c"))])).exitStatus == 0, "split at the first ':'")
        #expect(run(set, get("/", [("Authorization", basic("bob:wrong"))])).exitStatus == 401)
        #expect(run(set, get("/", [("Authorization", basic("nobody:kong"))])).exitStatus == 401)
        #expect(run(set, get("/", [("Authorization", "basic   " + base64(Array("bob:kong".utf8)))])).exitStatus == 0)
        let hidden = run(compile(snap([plugin("basic-auth", route: "r1", ["hide_credentials": true])])), get("/", [("Authorization", basic("bob:kong"))]))
        #expect(hidden.upstreamHeaders.removes("Authorization"))
    }

    @Test func keyAuthTTL() {
        let set = compile(snap([plugin("key-auth", route: "r1")]))
        #expect(run(set, get("/?apikey=old"), now: 999).exitStatus == 0)
        #expect(run(set, get("/?apikey=old"), now: 1000).exitStatus == 401)
    }

    @Test func logicalAndOr() {
        // AND: both required; key-auth (1250) fails first → its 401 and WWW-Authenticate.
        let and = compile(snap([plugin("key-auth", route: "r1"), plugin("basic-auth", route: "r1")]))
        var ctx = run(and, get("/", [("Authorization", basic("bob:kong"))]))
        #expect(ctx.exitStatus == 401 && ctx.responseHeaders.value(of: "WWW-Authenticate") == "Key")
        ctx = run(and, get("/?apikey=alice-key", [("Authorization", basic("bob:kong"))]))
        #expect(ctx.exitStatus == 0 && ctx.consumer?.id == "c-bob", "the last authenticated consumer wins")
        // OR: both anonymous; either credential passes, none → anonymous.
        let anon = Consumer(id: "c-anon", username: "anon")
        let or = compile(ConfigSnapshot(consumers: [bob, anon], plugins: [
            plugin("key-auth", route: "r1", ["anonymous": "anon"]), plugin("basic-auth", route: "r1", ["anonymous": "anon"])],
            basicauthCredentials: [BasicAuthCredential(id: "b1", consumerID: "c-bob", username: "bob", passwordHash: kongHash("kong", "c-bob"))]))
        ctx = run(or, get("/", [("Authorization", basic("bob:kong"))]))
        #expect(ctx.consumer?.id == "c-bob" && ctx.upstreamClears("X-Anonymous-Consumer"))
        ctx = run(or, get("/"))
        #expect(ctx.exitStatus == 0 && ctx.consumer?.id == "c-anon" && ctx.upstreamValue(of: "X-Anonymous-Consumer") == "true")
    }

    @Test func acl() {
        let acls = [ACLGroup(id: "a1", consumerID: "c-bob", group: "admin"), ACLGroup(id: "a2", consumerID: "c-al", group: "pro"),
                    ACLGroup(id: "a3", consumerID: "c-al", group: "hello")]
        let allow = compile(snap([plugin("key-auth", route: "r1"), plugin("basic-auth", route: "r9"),
                                  plugin("acl", route: "r1", ["allow": ["admin"]])], acls: acls))
        let b = compile(snap([plugin("basic-auth", route: "r1"), plugin("acl", route: "r1", ["allow": ["admin"]])], acls: acls))
        var ctx = run(b, get("/", [("Authorization", basic("bob:kong"))]))
        #expect(ctx.exitStatus == 0 && ctx.upstreamHeaders.value(of: "X-Consumer-Groups") == "admin")
        ctx = run(allow, get("/?apikey=alice-key"))
        #expect(ctx.exitStatus == 403 && ctx.exitMessage == "You cannot consume this service")
        let deny = compile(snap([plugin("key-auth", route: "r1"), plugin("acl", route: "r1", ["deny": ["pro"]])], acls: acls))
        #expect(run(deny, get("/?apikey=alice-key")).exitStatus == 403)
        let two = compile(snap([plugin("key-auth", route: "r1"), plugin("acl", route: "r1", ["allow": ["hello"]])], acls: acls))
        #expect(run(two, get("/?apikey=alice-key")).upstreamHeaders.value(of: "X-Consumer-Groups") == "pro, hello")
        let hidden = compile(snap([plugin("key-auth", route: "r1"), plugin("acl", route: "r1", ["allow": ["hello"], "hide_groups_header": true])], acls: acls))
        #expect(run(hidden, get("/?apikey=alice-key")).upstreamHeaders.value(of: "X-Consumer-Groups") == nil)
        // No auth plugin: 401.
        let none = compile(snap([plugin("acl", route: "r1", ["allow": ["admin"]])], acls: acls))
        ctx = run(none, get("/"))
        #expect(ctx.exitStatus == 401 && ctx.exitMessage == "Unauthorized")
    }
}

func base64(_ b: [UInt8]) -> String {
    let t = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i < b.count {
        let n = min(3, b.count - i)
        var v = UInt32(b[i]) << 16
        if n > 1 { v |= UInt32(b[i + 1]) << 8 }
        if n > 2 { v |= UInt32(b[i + 2]) }
        out.append(t[Int(v >> 18 & 63)]); out.append(t[Int(v >> 12 & 63)])
        out.append(n > 1 ? t[Int(v >> 6 & 63)] : 0x3D); out.append(n > 2 ? t[Int(v & 63)] : 0x3D)
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
