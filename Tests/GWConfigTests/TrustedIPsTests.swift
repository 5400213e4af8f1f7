// trusted_ips / real_ip_header / real_ip_recursive (issue #13 defect 1): parsing with Kong's error, block
// matching (IPv4 blocks match v4-mapped peers), and nginx realip's right-to-left address search.
import Testing
import GWConfig
import GWSystem

private func addr(_ ip: String) -> SocketAddress { SocketAddress(ip: ip, port: 1)! }

private func realIP(_ t: TrustedIPs, _ value: String, recursive: Bool) -> String? {
    var v = value
    return v.withUTF8 { t.forwardedAddress($0, recursive: recursive)?.ip }
}

@Suite struct TrustedIPsTests {
    @Test func blocksMatch() throws {
        let t = try TrustedIPs(parsing: "10.0.0.0/8, 192.168.1.7,2001:db8::/32, unix:")
        #expect(t.contains(addr("10.200.3.4")) && t.contains(addr("192.168.1.7")))
        #expect(!t.contains(addr("11.0.0.1")) && !t.contains(addr("192.168.1.8")))
        #expect(t.contains(addr("2001:db8:1::5")) && !t.contains(addr("2001:db9::1")))
        #expect(t.contains(addr("::ffff:10.1.2.3")))
        #expect(t.trustsUnix)
        let all = try TrustedIPs(parsing: "0.0.0.0/0,::/0")
        #expect(all.contains(addr("8.8.8.8")) && all.contains(addr("::1")))
        #expect(!(try TrustedIPs(parsing: "")).contains(addr("127.0.0.1")))
    }

    @Test func badItemsAreKongsError() {
        for bad in ["not-an-ip", "10.0.0.0/33", "::/129", "1.2.3.4/x", "1.2.3"] {
            #expect(throws: ConfigError.self) { _ = try TrustedIPs(parsing: bad) }
        }
        do {
            _ = try ConfigLoader.load(path: nil, overrides: ["trusted_ips": "x"], environment: [:])
            Issue.record("accepted")
        } catch {
            #expect(error.message.contains("trusted_ips must be a comma separated list in the form of IPv4 or IPv6 "
                                           + "address or CIDR block or 'unix:', got 'x'"))
        }
    }

    @Test func realIPSearch() throws {
        let t = try TrustedIPs(parsing: "10.0.0.0/8")
        #expect(realIP(t, "1.1.1.1, 10.0.0.5", recursive: false) == "10.0.0.5")
        #expect(realIP(t, "1.1.1.1, 10.0.0.5", recursive: true) == "1.1.1.1")
        #expect(realIP(t, "10.0.0.1,10.0.0.5", recursive: true) == "10.0.0.1")   // all trusted: the leftmost
        #expect(realIP(t, "2.2.2.2:8080", recursive: false) == "2.2.2.2")
        #expect(realIP(t, "[2001:db8::1]:443", recursive: false) == "2001:db8::1")
        #expect(realIP(t, "2001:db8::2", recursive: false) == "2001:db8::2")
        #expect(realIP(t, "junk, 10.0.0.5", recursive: true) == "10.0.0.5")      // stops at what does not parse
        #expect(realIP(t, "junk", recursive: false) == nil)
        #expect(realIP(t, " , ", recursive: false) == nil)
    }

    @Test func configKeys() throws {
        let c = try ConfigLoader.load(path: nil, overrides: ["trusted_ips": "127.0.0.1", "nginx_proxy_real_ip_header":
            "X-Forwarded-For", "real_ip_recursive": "on", "nginx_http_underscores_in_headers": "off"], environment: [:])
        #expect(c.realIPHeader == "X-Forwarded-For" && c.realIPRecursive && !c.underscoresInHeaders)
        #expect(c.trustedIPs.contains(addr("127.0.0.1")))
        let d = try ConfigLoader.load(path: nil, environment: [:])
        #expect(d.trustedIPs.isEmpty && d.realIPHeader == "X-Real-IP" && !d.realIPRecursive && d.underscoresInHeaders)
        #expect(throws: ConfigError.self) {
            _ = try ConfigLoader.load(path: nil, overrides: ["real_ip_header": "proxy_protocol"], environment: [:])
        }
    }
}
