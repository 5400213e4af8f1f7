// lua_ssl_trusted_certificate / lua_ssl_verify_depth (CosocketTLS.swift): Kong's defaults, files read at
// load, `system` joined with files, Kong's conf_loader error for a file without a certificate.
import Testing
@testable import GWConfig
#if canImport(Glibc)
import Glibc
#endif

private func temp(_ text: String) -> String {
    let path = "/tmp/gwcosocket-\(getpid())-\(Int.random(in: 0..<1_000_000)).pem"
    let f = fopen(path, "w")!
    fputs(text, f)
    fclose(f)
    return path
}

private let fakeCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

@Suite struct CosocketTLSTests {
    @Test func defaultsAreSystemAndDepthOne() throws {
        let c = try ConfigLoader.load(path: nil, environment: [:])
        #expect(c.cosocketTLS.caPEM == nil && c.cosocketTLS.verifyDepth == 1)
        #expect(c.entries.contains { $0 == ("lua_ssl_trusted_certificate", "system") })
    }

    @Test func filesAreReadAndJoined() throws {
        let a = temp(fakeCA), b = temp("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n")
        defer { unlink(a); unlink(b) }
        let c = try ConfigLoader.load(path: nil, overrides: ["lua_ssl_trusted_certificate": "\(a), \(b)",
                                                             "lua_ssl_verify_depth": "3"], environment: [:])
        let pem = try #require(c.cosocketTLS.caPEM)
        #expect(pem.contains("MIIB") && pem.contains("MIIC") && c.cosocketTLS.verifyDepth == 3)
        if access(CosocketTLSSettings.systemBundle, R_OK) == 0 {
            let s = try ConfigLoader.load(path: nil, overrides: ["lua_ssl_trusted_certificate": "system,\(a)"], environment: [:])
            #expect((s.cosocketTLS.caPEM?.count ?? 0) > pem.count / 2 + 100)   // the bundle's text joined with the file
        }
    }

    @Test func postgresVerifiesAgainstTheOneFile() throws {
        let a = temp(fakeCA), b = temp(fakeCA)
        defer { unlink(a); unlink(b) }
        #expect(try ConfigLoader.load(path: nil, environment: [:]).postgres.sslRootCert == CosocketTLSSettings.systemBundle)
        let one = try ConfigLoader.load(path: nil, overrides: ["lua_ssl_trusted_certificate": a], environment: [:])
        #expect(one.postgres.sslRootCert == a)
        // Several files: fine unless PostgreSQL must verify with them (libpq reads one file).
        let pg = ["database": "postgres", "pg_ssl": "on", "pg_ssl_verify": "on", "lua_ssl_trusted_certificate": "\(a),\(b)"]
        #expect(throws: ConfigError.self) { _ = try ConfigLoader.load(path: nil, overrides: pg, environment: [:]) }
        var noVerify = pg
        noVerify["pg_ssl_verify"] = "off"
        #expect(try ConfigLoader.load(path: nil, overrides: noVerify, environment: [:]).cosocketTLS.files == [a, b])
    }

    @Test func kongErrors() {
        let notPEM = temp("hello")
        defer { unlink(notPEM) }
        for path in ["/nonexistent/ca.pem", notPEM] {
            do {
                _ = try ConfigLoader.load(path: nil, overrides: ["lua_ssl_trusted_certificate": path], environment: [:])
                Issue.record("accepted \(path)")
            } catch {
                #expect(error.message == "lua_ssl_trusted_certificate: failed loading certificate from \(path)")
            }
        }
        #expect(throws: ConfigError.self) {
            _ = try ConfigLoader.load(path: nil, overrides: ["lua_ssl_verify_depth": "-1"], environment: [:])
        }
    }
}
