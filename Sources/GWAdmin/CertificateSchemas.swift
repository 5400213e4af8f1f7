// Schemas and checks of Kong's TLS entities (KONG-TLS-CLUSTER.md A.1): certificates (cert, key,
// cert_alt, key_alt, tags, the transient `snis` shorthand), snis (a wildcard host name and its
// certificate) and ca_certificates (one CA certificate, cert_digest computed on write). PEM texts are
// parsed with OpenSSL (GWTLS.PEM); messages are Kong's. A stored certificate document never holds
// `snis`: they are rows of the snis table (CertificateOps.swift presents them).
import GWJSON
import GWTLS

extension Validators {
    /// Kong's `typedefs.wildcard_host` (SNI names): one `*`, leftmost or rightmost; then a host name
    /// without a port that is not an IP address.
    static let sniName: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        if s == "*" { return nil }
        if let i = s.firstIndex(of: "*"), i != s.startIndex, i != s.index(before: s.endIndex) {
            return "wildcard must be leftmost or rightmost character"
        }
        if s.filter({ $0 == "*" }).count > 1 { return "only one wildcard must be specified" }
        let mock = s.replacingStars()
        guard let hp = parseHostPort(mock) else { return "invalid value: \(s)" }
        if hp.port != nil { return "must not have a port" }
        if hp.kind != .name { return "must not be an IP" }
        return nil
    }

    /// typedefs.certificate: a PEM certificate OpenSSL reads.
    static let certificatePEM: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        if case .failure(let e) = PEM.inspectCertificate(s) { return "invalid certificate: x509.new: \(e.description)" }
        return nil
    }

    /// typedefs.key: a PEM private key OpenSSL reads.
    static let keyPEM: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        if let e = PEM.checkKey(s) { return "invalid key: pkey.new:load_key: \(e)" }
        return nil
    }
}

extension String {
    fileprivate func replacingStars() -> String { String(map { $0 == "*" ? "x" : $0 }) }
}

enum CertificateSchemas {
    static let certificate = EntitySchema(kind: .certificates, fields: [
        Schemas.idField, Schemas.createdAt, Schemas.updatedAt,
        Field("cert", .string, required: true, custom: Validators.certificatePEM),
        Field("key", .string, required: true, custom: Validators.keyPEM),
        Field("cert_alt", .string, custom: Validators.certificatePEM),
        Field("key_alt", .string, custom: Validators.keyPEM),
        Schemas.tags,
        // Transient: creates / deletes rows of `snis` (CertificateOps), never stored in the document.
        Field("snis", .array(.element(.string, custom: Validators.sniName))),
    ], endpointKey: nil, foreign: [], msTimestamps: false)

    static let sni = EntitySchema(kind: .snis, fields: [
        Schemas.idField,
        Field("name", .string, required: true, custom: Validators.sniName),
        Schemas.createdAt, Schemas.updatedAt, Schemas.tags,
        Field("certificate", .foreign(.certificates), required: true),
    ], endpointKey: "name", foreign: [("certificate", .certificates)], msTimestamps: false)

    static let caCertificate = EntitySchema(kind: .caCertificates, fields: [
        Schemas.idField, Schemas.createdAt, Schemas.updatedAt,
        Field("cert", .string, required: true, custom: Validators.certificatePEM),
        Field("cert_digest", .string),
        Schemas.tags,
    ], endpointKey: nil, foreign: [], msTimestamps: false)

    /// Kong's transformations on write: `cert_digest` of a CA certificate.
    static func transform(_ kind: EntityKind, _ doc: inout JSONObject) {
        guard kind == .caCertificates, let pem = doc["cert"]?.stringValue,
              case .success(let info) = PEM.inspectCertificate(pem) else { return }
        doc["cert_digest"] = .string(info.sha256)
    }

    /// Entity checks (after the field checks, only on fields that passed them).
    static func check(_ kind: EntityKind, _ d: JSONObject, _ e: inout Errors) {
        func pem(_ k: String) -> String? {
            guard let s = d[k]?.stringValue, e.fields[k] == nil else { return nil }
            return s
        }
        switch kind {
        case .certificates:
            let hasCertAlt = !(d["cert_alt"]?.isNull ?? true), hasKeyAlt = !(d["key_alt"]?.isNull ?? true)
            if hasCertAlt != hasKeyAlt {
                e.addEntity("all or none of these fields must be set: 'cert_alt', 'key_alt'")
                return
            }
            if let c = pem("cert"), let k = pem("key"), !PEM.matches(certificate: c, key: k) {
                e.addEntity("certificate does not match key")
            }
            if let c = pem("cert_alt"), let k = pem("key_alt") {
                if !PEM.matches(certificate: c, key: k) {
                    e.addEntity("alternative certificate does not match key")
                } else if let main = pem("cert"), case .success(let a) = PEM.inspectCertificate(main),
                          case .success(let b) = PEM.inspectCertificate(c), a.keyType == b.keyType {
                    e.addEntity("certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type")
                }
            }
        case .caCertificates:
            guard let c = pem("cert"), case .success(let info) = PEM.inspectCertificate(c) else { return }
            if info.count > 1 {
                e.addEntity("please submit only one certificate at a time")
            } else if info.expired {
                e.addEntity("certificate expired, \"Not After\" time is in the past")
            } else if !info.isCA {
                e.addEntity("certificate does not appear to be a CA because it is missing the \"CA\" basic constraint")
            }
        default:
            break
        }
    }
}
