import Testing
import GWSystem

/// SocketAddress.appendIP formats IPv4 by hand (no inet_ntop): same text as `ip`.
@Test(arguments: ["0.0.0.0", "127.0.0.1", "10.20.30.40", "255.255.255.255", "192.168.1.9", "1.10.100.200",
                  "::1", "fe80::1:2", "2001:db8::ff00:42:8329"])
func appendIPMatchesInetNtop(_ ip: String) {
    let a = SocketAddress(ip: ip, port: 80)!
    var out: [UInt8] = [0x41]
    a.appendIP(to: &out)
    #expect(String(decoding: out, as: UTF8.self) == "A" + a.ip)
    #expect(a.ip == ip)
}
