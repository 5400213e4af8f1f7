import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// IP parsing, the compiled IP / CIDR matcher, and ip-restriction's decisions (Kong's
/// spec/03-plugins/17-ip-restriction/02-access_spec.lua), without sockets.
@Suite struct IPRestrictionTests {
    @Test func parsesAddresses() {
        #expect(IPAddress("127.0.0.1") == .v4(0x7F00_0001))
        #expect(IPAddress("255.255.255.255") == .v4(0xFFFF_FFFF))
        for bad in ["256.0.0.1", "1.2.3", "1.2.3.4.5", "1..2.3", "a.b.c.d", "", "1.2.3.4 ", "unix:/tmp/s", ":", ":::",
                    "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "1:", ":1", "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4"] {
            #expect(IPAddress(bad) == .none, "\(bad)")
        }
        #expect(IPAddress("::") == .v6(IP128(hi: 0, lo: 0)))
        #expect(IPAddress("::1") == .v6(IP128(hi: 0, lo: 1)))
        #expect(IPAddress("1::") == .v6(IP128(hi: 1 << 48, lo: 0)))
        #expect(IPAddress("2001:db8::ff00:42:8329") == .v6(IP128(hi: 0x2001_0DB8_0000_0000, lo: 0x0000_FF00_0042_8329)))
        #expect(IPAddress("2001:0DB8:0000:0000:0000:FF00:0042:8329") == IPAddress("2001:db8::ff00:42:8329"))
        #expect(IPAddress("::ffff:1.2.3.4") == .v6(IP128(hi: 0, lo: 0x0000_FFFF_0102_0304)))
        #expect(IPAddress("1:2:3:4:5:6:1.2.3.4") == .v6(IP128(hi: 0x0001_0002_0003_0004, lo: 0x0005_0006_0102_0304)))
        #expect(IPAddress("fe80::1%eth0") == .v6(IP128(hi: 0xFE80_0000_0000_0000, lo: 1)), "a zone is not part of the address")
        #expect(IPAddress("fe80::1:2:3:4") == .v6(IP128(hi: 0xFE80_0000_0000_0000, lo: 0x0001_0002_0003_0004)))
    }

    @Test func matchesListsAndCIDRs() throws {
        let m = try #require(IPMatcher(["10.0.0.0/8", "192.168.1.77/24", "127.0.0.1", "::1", "2001:db8::/32", "fe80::/10"]))
        #expect(m.matches(IPAddress("10.255.1.2")))
        #expect(!m.matches(IPAddress("11.0.0.1")))
        #expect(m.matches(IPAddress("192.168.1.1")), "host bits of a CIDR entry are masked")
        #expect(!m.matches(IPAddress("192.168.2.1")))
        #expect(m.matches(IPAddress("127.0.0.1")) && !m.matches(IPAddress("127.0.0.2")))
        #expect(m.matches(IPAddress("::1")) && !m.matches(IPAddress("::2")))
        #expect(m.matches(IPAddress("2001:db8:ffff::1")) && !m.matches(IPAddress("2001:db9::1")))
        #expect(m.matches(IPAddress("febf::1")) && !m.matches(IPAddress("fec0::1")))
        #expect(!m.matches(IPAddress("::ffff:127.0.0.1")), "an IPv4-mapped peer is IPv6, as binary_remote_addr")
        #expect(!m.matches(.none))
        let all = try #require(IPMatcher(["0.0.0.0/0"]))
        #expect(all.matches(IPAddress("1.2.3.4")) && !all.matches(IPAddress("::1")))
        let all6 = try #require(IPMatcher(["::/0"]))
        #expect(all6.matches(IPAddress("ffff::1")) && !all6.matches(IPAddress("1.2.3.4")))
        let odd = try #require(IPMatcher(["::/1", "8000::/65", "::1/128"]))
        #expect(odd.matches(IPAddress("7fff::1")) && odd.matches(IPAddress("8000::7fff:ffff:ffff:ffff")))
        #expect(!odd.matches(IPAddress("8000::8000:0:0:0")))
        for bad in [["hello"], ["1.2.3.4/33"], ["::/129"], ["1.2.3.4/a"], ["1.2.3.4/-1"]] { #expect(IPMatcher(bad) == nil, "\(bad)") }
    }

    func set(_ config: JSON) -> PluginSet { compile(ConfigSnapshot(plugins: [plugin("ip-restriction", route: "r1", config)])) }
    func status(_ s: PluginSet, _ ip: String) -> (Int, String?) {
        let c = run(s, get("/"), ctx: PluginContext(clientIP: ip))
        return (c.exitStatus, c.exitMessage)
    }

    @Test func denyFirstThenAllow() {
        #expect(status(set(["deny": ["127.0.0.1", "127.0.0.2"]]), "127.0.0.1") == (403, "IP address not allowed: 127.0.0.1"))
        #expect(status(set(["deny": ["127.0.0.2"]]), "127.0.0.1").0 == 0)
        #expect(status(set(["allow": ["127.0.0.2"]]), "127.0.0.1") == (403, "IP address not allowed: 127.0.0.1"))
        #expect(status(set(["allow": ["127.0.0.1"]]), "127.0.0.1").0 == 0)
        #expect(status(set(["deny": ["127.0.0.0/24"]]), "127.0.0.9").0 == 403)
        #expect(status(set(["allow": ["0.0.0.0/0"]]), "127.0.0.1").0 == 0)
        #expect(status(set(["allow": ["127.0.0.1"], "deny": ["127.0.0.1"]]), "127.0.0.1").0 == 403)
        #expect(status(set(["allow": ["127.0.0.0/24"], "deny": ["127.0.0.1"]]), "127.0.0.1").0 == 403)
        #expect(status(set(["allow": ["127.0.0.0/24"], "deny": ["127.0.0.1"]]), "127.0.0.2").0 == 0)
        #expect(status(set(["deny": ["127.0.0.0/24"], "status": 401, "message": "Forbidden"]), "127.0.0.1") == (401, "Forbidden"))
        #expect(status(set(["deny": ["::1"]]), "::1") == (403, "IP address not allowed: ::1"))
        #expect(status(set(["deny": ["::1"]]), "127.0.0.1").0 == 0)
    }

    @Test func unixSocketAndBadStatus() {
        #expect(status(set(["allow": ["127.0.0.1"]]), "unix:") ==
                (403, "Cannot identify the client IP address, unix domain sockets are not supported."))
        let c = run(set(["deny": ["127.0.0.1"], "status": 302]), get("/"))
        #expect(c.exitStatus == 500 && c.failure != nil, "kong.response.error refuses a status outside 400-599")
    }

    @Test func invalidListFailsToCompile() {
        for cfg: JSON in [["allow": ["x"]], [:], ["deny": []]] {
            #expect(compile(ConfigSnapshot(plugins: [plugin("ip-restriction", route: "r1", cfg)])).errors.count == 1)
        }
    }
}
