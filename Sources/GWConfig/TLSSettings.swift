// The TLS keys of gateway.conf (Kong's names, defaults and precedence, KONG-TLS-CLUSTER.md A.2):
// ssl_cert / ssl_cert_key (comma lists of paths or PEM, paired), ssl_cipher_suite (modern,
// intermediate, old or custom; the named suites override ssl_protocols, ssl_ciphers and
// ssl_prefer_server_ciphers), ssl_session_tickets, ssl_session_timeout, ssl_session_cache_size (the bytes of the session cache all
// workers share in the shared segment, 32k to 1g).
// Invariant: a value here is valid; OpenSSL is not touched here (GWTLS builds the context).

/// What the proxy's TLS listeners use.
public struct TLSSettings: Sendable, Equatable {
    public enum TLSProtocol: String, Sendable, CaseIterable {
        case tls1 = "TLSv1", tls11 = "TLSv1.1", tls12 = "TLSv1.2", tls13 = "TLSv1.3"
    }
    /// Certificate / key pairs as given (paths or PEM); empty: the generated defaults in <prefix>/ssl.
    public var certificates: [(cert: String, key: String)]
    public var protocols: [TLSProtocol]
    /// OpenSSL cipher list for TLS <= 1.2 (empty: none listed, as `modern`).
    public var ciphers: String
    public var preferServerCiphers: Bool
    /// `old`: OpenSSL 3 needs @SECLEVEL=0 for TLS 1.0/1.1 (Kong's ssl_conf_command).
    public var securityLevel0: Bool
    public var sessionTickets: Bool
    public var sessionTimeout: Int
    public var sessionCacheSize: Int

    public static func == (a: TLSSettings, b: TLSSettings) -> Bool {
        a.certificates.map { $0.cert + "\u{0}" + $0.key } == b.certificates.map { $0.cert + "\u{0}" + $0.key }
            && a.protocols == b.protocols && a.ciphers == b.ciphers && a.preferServerCiphers == b.preferServerCiphers
            && a.securityLevel0 == b.securityLevel0 && a.sessionTickets == b.sessionTickets
            && a.sessionTimeout == b.sessionTimeout && a.sessionCacheSize == b.sessionCacheSize
    }

    /// Kong's `intermediate` list (Mozilla's, kong/conf_loader/constants.lua).
    public static let intermediateCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        + "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
    public static let oldCiphers = intermediateCiphers + ":ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"
        + "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
        + "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:"
        + "AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:DES-CBC3-SHA"

    /// Reads the keys through `v` (the value) and reports errors through `bad(key, why)`.
    static func parse(_ v: (String) -> String, _ bad: (String, String) -> ConfigError,
                      seconds: (String) throws(ConfigError) -> Int, size: (String) throws(ConfigError) -> Int,
                      bool: (String) throws(ConfigError) -> Bool) throws(ConfigError) -> TLSSettings {
        func list(_ k: String) -> [String] {
            v(k).split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
        }
        let certs = list("ssl_cert"), keys = list("ssl_cert_key")
        if !certs.isEmpty && keys.isEmpty { throw bad("ssl_cert", "ssl_cert_key must be specified") }
        if certs.isEmpty && !keys.isEmpty { throw bad("ssl_cert_key", "ssl_cert must be specified") }
        if certs.count != keys.count {
            throw bad("ssl_cert", "ssl_cert was specified \(certs.count) times while ssl_cert_key was specified \(keys.count) times")
        }
        var protocols: [TLSProtocol] = []
        for p in v("ssl_protocols").split(separator: " ").map(String.init) where !p.isEmpty {
            guard let proto = TLSProtocol(rawValue: p) else { throw bad("ssl_protocols", "expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3") }
            protocols.append(proto)
        }
        var s = TLSSettings(certificates: Array(zip(certs, keys)), protocols: protocols, ciphers: v("ssl_ciphers"),
                            preferServerCiphers: try bool("ssl_prefer_server_ciphers"), securityLevel0: false,
                            sessionTickets: try bool("ssl_session_tickets"), sessionTimeout: try seconds("ssl_session_timeout"),
                            sessionCacheSize: try size("ssl_session_cache_size"))
        // The shared session cache (GWTLS.SessionCache): at least nginx's smallest zone (8 pages), at most 1g.
        guard s.sessionCacheSize >= 32 << 10, s.sessionCacheSize <= 1 << 30 else {
            throw bad("ssl_session_cache_size", "must be between 32k and 1g")
        }
        switch v("ssl_cipher_suite") {
        case "modern": s.protocols = [.tls13]; s.ciphers = ""; s.preferServerCiphers = false
        case "intermediate": s.protocols = [.tls12, .tls13]; s.ciphers = intermediateCiphers; s.preferServerCiphers = false
        case "old":
            s.protocols = [.tls1, .tls11, .tls12, .tls13]; s.ciphers = oldCiphers; s.preferServerCiphers = true
            s.securityLevel0 = true
        case "custom":
            if s.protocols.isEmpty { throw bad("ssl_protocols", "at least one protocol is needed") }
        case let x: throw bad("ssl_cipher_suite", "Undefined cipher suite \(x)")
        }
        return s
    }
}
