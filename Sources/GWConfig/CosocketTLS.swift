// Kong's `lua_ssl_trusted_certificate` and `lua_ssl_verify_depth`: the trust store of the TLS
// connections Kong opens from Lua (cosockets), as opposed to proxied https traffic (services'
// `tls_verify`, `ca_certificates`). Here: Redis over TLS (rate-limiting `config.redis.ssl_verify`),
// active https health checks, and `pg_ssl_verify` (libpq reads one file: with pg_ssl_verify on, a list
// of several files is refused).
// `lua_ssl_trusted_certificate` is a comma-separated list of `system` (the OS bundle) and PEM files;
// the files are read when the configuration is loaded (start, reload, in each worker before its loop
// runs), never on a request. Invariant: `caPEM` holds at least one certificate when it is not nil.
import GWSystem

public struct CosocketTLSSettings: Sendable, Equatable {
    /// The trusted CA certificates as PEM text (every listed file, and the system bundle's text when
    /// `system` is listed with files); nil: `system` alone (OpenSSL's default verify paths).
    public var caPEM: String? = nil
    /// The longest chain accepted (Kong's default 1: the server certificate and its CA).
    public var verifyDepth = 1
    /// The files read, absolute (`system` as the bundle's path when listed with files); empty: `system` alone.
    public var files: [String] = []

    public init() {}

    static let keys: [(key: String, defaultValue: String)] = [
        ("lua_ssl_trusted_certificate", "system"), ("lua_ssl_verify_depth", "1"),
    ]

    /// Where Debian (and Kong's first choice) keeps the system bundle.
    static let systemBundle = "/etc/ssl/certs/ca-certificates.crt"

    static func parse(_ v: (String) -> String, _ bad: (String, String) -> ConfigError) throws(ConfigError) -> CosocketTLSSettings {
        var s = CosocketTLSSettings()
        guard let d = Int(v("lua_ssl_verify_depth").trimmingWhitespace()), (0...100).contains(d) else {
            throw bad("lua_ssl_verify_depth", "expected an integer between 0 and 100")
        }
        s.verifyDepth = d
        let entries = v("lua_ssl_trusted_certificate").split(separator: ",").map { String($0).trimmingWhitespace() }
            .filter { !$0.isEmpty }
        let files = entries.filter { $0 != "system" }
        guard !files.isEmpty else { return s }
        var pem = ""
        for e in entries {
            var path = e == "system" ? systemBundle : e
            if !path.hasPrefix("/") { path = ProcessControl.currentDirectory() + "/" + path }
            guard let bytes = ProcessControl.readFile(path),
                  String(decoding: bytes, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
                if e == "system" { continue }   // Kong: no system bundle found is only logged
                throw ConfigError("lua_ssl_trusted_certificate: failed loading certificate from \(path)")
            }
            pem += String(decoding: bytes, as: UTF8.self) + "\n"
            s.files.append(path)
        }
        s.caPEM = pem
        return s
    }
}
