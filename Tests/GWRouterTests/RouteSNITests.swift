import Testing
import GWStore
import GWRouter

// Routes' `snis` (Kong's ATC tls.sni of traditional_compatible): `*.x` ends with `.x`, `x.*` starts with
// `x.`, else equality after one trailing dot of the client's name is stripped; TLS connections only.

private func sniMatch(_ r: Router, _ sni: String?, tls: Bool = true, path: String = "/") -> String? {
    guard let sni else {
        return r.match(method: "GET", host: "h", normalizedPath: path, headers: nil, listenPort: 8443,
                       tls: ConnectionTLS(isTLS: tls, sni: nil))?.route.id
    }
    var bytes = Array(sni.utf8)
    return bytes.withUnsafeMutableBytes { b in
        r.match(method: "GET", host: "h", normalizedPath: path, headers: nil, listenPort: 8443,
                tls: ConnectionTLS(isTLS: tls, sni: UnsafeRawBufferPointer(b)))?.route.id
    }
}

@Test func routeSNIPatterns() {
    var exact = Route(id: "00000000-0000-4000-8000-000000000001", protocols: ["https"], paths: ["/"], serviceID: svc.id)
    exact.snis = ["example.com"]
    var prefix = Route(id: "00000000-0000-4000-8000-000000000002", protocols: ["https"], paths: ["/"], serviceID: svc.id)
    prefix.snis = ["*.wild.test"]
    var suffix = Route(id: "00000000-0000-4000-8000-000000000003", protocols: ["https"], paths: ["/"], serviceID: svc.id)
    suffix.snis = ["shop.*"]
    let r = router([exact, prefix, suffix])
    #expect(sniMatch(r, "example.com") == exact.id)
    #expect(sniMatch(r, "example.com.") == exact.id)          // one trailing dot stripped
    #expect(sniMatch(r, "www.example.com") == nil)
    #expect(sniMatch(r, "a.wild.test") == prefix.id)
    #expect(sniMatch(r, "a.b.wild.test") == prefix.id)        // "ends with .wild.test"
    #expect(sniMatch(r, "wild.test") == nil)
    #expect(sniMatch(r, "shop.example.org") == suffix.id)
    #expect(sniMatch(r, "shopping.example.org") == nil)
    #expect(sniMatch(r, nil) == nil)                           // TLS without SNI: no route with snis
    // Plain connections ignore snis (the route is selected, then answered 426).
    #expect(sniMatch(r, nil, tls: false) != nil)
}

@Test func routeSNIWeighsInPriority() {
    let plain = Route(id: "00000000-0000-4000-8000-000000000011", protocols: ["https"], paths: ["/"], serviceID: svc.id)
    var withSNI = Route(id: "00000000-0000-4000-8000-000000000012", protocols: ["https"], paths: ["/"], serviceID: svc.id,
                        createdAt: 5)
    withSNI.snis = ["a.test"]
    let r = router([plain, withSNI])
    #expect(sniMatch(r, "a.test") == withSNI.id)
    #expect(sniMatch(r, "b.test") == plain.id)
}
