import Testing
import GWJSON
import GWStore
@testable import GWAdmin

// The TLS entities in the SQLite store, the declarative round trip (db_export → db_import) and the worker
// document (a ConfigSnapshot with certificates and snis that SNIIndex resolves).

private let crt = """
-----BEGIN CERTIFICATE-----
MIIBfjCCASWgAwIBAgIUT9wUfgrG50MLONQmZ84XkkTxJokwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdW5pdC50ZXN0MCAXDTI2MTIwNzAzMDM0NVoYDzIxMjYxMTEz
MDMwMzQ1WjAUMRIwEAYDVQQDDAl1bml0LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAT42Sn0HxshglKfrzMQ/SJ4Jk1KSwY4wbWqKqN++++vsg2fEujFw6q/
eFLZPgozQQaRbvylI9Xda9rca/C8AmPxo1MwUTAdBgNVHQ4EFgQUQ7sPRsbeK2uX
h8Ao75RqgH88XeIwHwYDVR0jBBgwFoAUQ7sPRsbeK2uXh8Ao75RqgH88XeIwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAcEAfjj5pKAK8UsogRqC3f
etxYpFhuln1O8CnbELKsfAIgf4qNJT1RJdi0M2iH57JKxNJNb+ecp8WidMiyjG4x
K7U=
-----END CERTIFICATE-----
"""
private let key = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcmzjDubUDQ83pI3r
BuVhwXsU+ueMVOgfarP2YS0sV6+hRANCAAT42Sn0HxshglKfrzMQ/SJ4Jk1KSwY4
wbWqKqN++++vsg2fEujFw6q/eFLZPgozQQaRbvylI9Xda9rca/C8AmPx
-----END PRIVATE KEY-----
"""

@Suite struct CertificateStoreTests {
    @Test func persistedExportedImportedAndPublished() throws {
        let h = try Harness()
        let (s, c) = h.req("POST", "/certificates", ["cert": .string(crt), "key": .string(key), "snis": ["b.unit.test", "*.unit.test"]])
        #expect(s == 201)
        #expect(c["snis"] == ["*.unit.test", "b.unit.test"])
        #expect(h.store.all(.certificates).first?["snis"] == nil)      // transient: rows of snis
        try h.reopen()
        let (s2, c2) = h.req("GET", "/certificates/b.unit.test")
        #expect(s2 == 200 && c2["id"] == c["id"] && c2["snis"] == ["*.unit.test", "b.unit.test"])
        // db_export → db_import into an empty store.
        let exported = h.api.dbExport()
        #expect(exported.contains("certificates:") && exported.contains("snis:"))
        let h2 = try Harness()
        try h2.api.dbImport(Array(exported.utf8))
        let (s3, c3) = h2.req("GET", "/certificates/*.unit.test")
        #expect(s3 == 200 && c3["id"] == c["id"] && c3["cert"] == .string(crt))
        // The worker document decodes, and the SNI index resolves the names.
        let snap = try ConfigSnapshot.decode(bytes: h2.api.publishedDocument(generation: 1))
        #expect(snap.certificates.count == 1 && snap.snis.count == 2)
        let idx = SNIIndex(snap.snis)
        #expect(idx.certificateID(for: "x.unit.test") == c["id"]?.stringValue)
        #expect(idx.certificateID(for: "unit.test") == nil)
        // Deleting the certificate takes its snis.
        #expect(h2.req("DELETE", "/certificates/\(c["id"]!.stringValue!)").0 == 204)
        #expect(h2.store.count(.snis) == 0)
    }

    @Test func caCertificateNeedsCAConstraint() throws {
        let h = try Harness()
        // req -x509 marks the self-signed certificate CA:TRUE (OpenSSL's default v3_ca): accepted.
        let (s, b) = h.req("POST", "/ca_certificates", ["cert": .string(crt)])
        #expect(s == 201)
        #expect(b["cert_digest"]?.stringValue?.count == 64)
        let (s2, b2) = h.req("POST", "/ca_certificates", ["cert": .string(crt)])
        #expect(s2 == 409 && b2["name"] == "unique constraint violation")
    }
}
