// Routes' `snis` against the TLS server name of the connection (KONG-TLS-CLUSTER.md A.2, Kong's ATC
// `tls.sni` condition of traditional_compatible): `*.x` means "ends with `.x`", `x.*` means "starts
// with `x.`", anything else is equality after one trailing dot of the client's name is stripped. The
// condition is evaluated on TLS connections only: a plain request that matches everything else still
// selects the route (and gets the 426 or the redirect of an https-only route). A TLS connection
// without SNI matches no route that has `snis`. Pure byte comparisons, no allocation.

/// The TLS side of a connection as the router sees it.
public struct ConnectionTLS {
    public var isTLS: Bool
    /// The client's server name (valid during the match call only); nil: none sent.
    public var sni: UnsafeRawBufferPointer?
    public init(isTLS: Bool, sni: UnsafeRawBufferPointer?) { self.isTLS = isTLS; self.sni = sni }
    public static var plain: ConnectionTLS { ConnectionTLS(isTLS: false, sni: nil) }
}

struct SNIPattern {
    enum Kind { case exact, endsWith, startsWith }
    let kind: Kind
    let bytes: [UInt8]

    init(_ s: String) {
        let u = Array(s.utf8)
        if u.first == UInt8(ascii: "*"), u.count > 1 { kind = .endsWith; bytes = Array(u.dropFirst()) }        // ".x"
        else if u.last == UInt8(ascii: "*"), u.count > 1 { kind = .startsWith; bytes = Array(u.dropLast()) }   // "x."
        else { kind = .exact; bytes = u }
    }

    func matches(_ name: UnsafeRawBufferPointer) -> Bool {
        switch kind {
        case .endsWith: return name.count >= bytes.count && name[(name.count - bytes.count)...].elementsEqual(bytes)
        case .startsWith: return name.count >= bytes.count && name.starts(with: bytes)
        case .exact:
            var n = name.count
            if n > 0 && name[n - 1] == UInt8(ascii: ".") { n -= 1 }
            return n == bytes.count && name[0 ..< n].elementsEqual(bytes)
        }
    }

    /// True when `patterns` is empty, the connection is plain, or its SNI matches one of them.
    static func allow(_ patterns: [SNIPattern], _ tls: ConnectionTLS) -> Bool {
        if patterns.isEmpty || !tls.isTLS { return true }
        guard let name = tls.sni, name.count > 0 else { return false }
        for p in patterns where p.matches(name) { return true }
        return false
    }
}
