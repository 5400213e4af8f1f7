// Admin API behaviour of the TLS entities beyond the generic CRUD (kong/api/routes/certificates.lua,
// kong/db/dao/certificates.lua, snis.lua, ca_certificates.lua):
// - `/certificates/{x}`: x is an id or an SNI name resolved to its certificate; an unknown name is
//   404 `SNI not found`, except PUT, which creates a certificate with a new id holding that name;
// - the `snis` shorthand of a certificate: a POST/PUT/PATCH carrying it replaces the certificate's
//   SNI rows (duplicates and names of another certificate refused before anything is written; JSON
//   null clears them); reads add `snis`, sorted, `[]` when none;
// - deletes: a certificate takes its SNIs with it and is refused while a service or upstream uses it
//   as client_certificate; a CA certificate is refused while a service lists it (code 19).
import GWJSON

extension AdminAPI {
    /// Names of the SNIs of certificate `id`, sorted.
    func sniNames(certificate id: String) -> [String] {
        store.referencing(.snis, field: "certificate", id: id).compactMap { $0["name"]?.stringValue }.sorted()
    }

    /// A certificate document as the Admin API shows it (with `snis`).
    func presentCertificate(_ doc: JSON) -> JSON {
        guard case .object(var o) = doc, let id = o["id"]?.stringValue else { return doc }
        o["snis"] = JSON(sniNames(certificate: id))
        return .object(o)
    }

    /// `/certificates...`: resolves an SNI name in the second segment, then the generic entity routes.
    func certificateRoutes(_ req: Req, _ extra: inout [(String, String)]) throws(OpFailure) -> Result {
        let s = req.segs
        guard s.count >= 2, !UUID4.isValid(s[1]), req.method != "OPTIONS" else {
            return try entityRoutes(.certificates, req, &extra)
        }
        if let sni = store.find(.snis, field: "name", value: s[1]), let cid = sni["certificate"]?["id"]?.stringValue {
            var segs = s
            segs[1] = cid
            return try entityRoutes(.certificates, Req(method: req.method, segs: segs, path: req.path, query: req.query,
                                                       raw: req.raw), &extra)
        }
        if s.count == 2 && req.method == "PUT" {
            return try upsert(.certificates, UUID4.generate(), req, parent: nil, urlSNI: s[1])
        }
        return (404, ["message": "SNI not found"])
    }

    /// The snis rows to write with certificate `doc` (already prepared) for the request body `input`.
    func certificateSNIOps(_ doc: JSON, input: JSONObject, form: Bool, urlSNI: String?) throws(OpFailure) -> [StoreOp] {
        guard let certID = doc["id"]?.stringValue else { return [] }
        var names: [String]? = nil
        if let v = input["snis"] {
            if v.isNull { names = [] } else {
                let c = form ? (Schema.coerceRecord(["snis": v], CertificateSchemas.certificate.fields)["snis"] ?? v) : v
                guard let list = c.stringArrayValue else {
                    throw OpFailure(Kong.schemaViolation(field: "snis", "expected an array"))
                }
                names = list
            }
        }
        if let urlSNI, !(names ?? []).contains(urlSNI) { names = (names ?? []) + [urlSNI] }
        guard let list = names else { return [] }
        var seen = Set<String>()
        for n in list where !seen.insert(n).inserted {
            throw OpFailure(Kong.schemaViolation(field: "snis", "\(n) is duplicated"))
        }
        for n in list {
            if let e = Validators.sniName(.string(n)) { throw OpFailure(Kong.schemaViolation(field: "snis", e)) }
            if let other = store.find(.snis, field: "name", value: n), let oc = other["certificate"]?["id"]?.stringValue,
               oc != certID {
                throw OpFailure(Kong.schemaViolation(field: "snis", "\(n) already associated with existing certificate '\(oc)'"))
            }
        }
        var ops: [StoreOp] = []
        var have = Set<String>()
        for row in store.referencing(.snis, field: "certificate", id: certID) {
            guard let id = row["id"]?.stringValue, let n = row["name"]?.stringValue else { continue }
            if seen.contains(n) { have.insert(n) } else { ops.append(.delete(.snis, id)) }
        }
        let now = JSON.int(Clock.seconds())
        for n in list.sorted() where !have.contains(n) {
            ops.append(.put(.snis, ["id": .string(UUID4.generate()), "name": .string(n), "created_at": now,
                                    "updated_at": now, "tags": .null, "certificate": ["id": .string(certID)]]))
        }
        return ops
    }

    /// Extra rules of the TLS entities on delete: cascade and references (see the file comment).
    func certificateDeleteOps(_ kind: EntityKind, id: String) throws(OpFailure) -> [StoreOp] {
        switch kind {
        case .certificates:
            for k in [EntityKind.services, .upstreams] where !store.referencing(k, field: "client_certificate", id: id).isEmpty {
                throw OpFailure(Kong.referencedBy(k, .certificates))
            }
            return store.referencing(.snis, field: "certificate", id: id).compactMap { d in
                d["id"]?.stringValue.map { .delete(.snis, $0) }
            }
        case .caCertificates:
            for svc in store.all(.services) where svc["ca_certificates"]?.stringArrayValue?.contains(where: { $0.lowercased() == id }) == true {
                let sid = svc["id"]?.stringValue ?? ""
                throw OpFailure((400, ["code": 19, "name": "referenced by others",
                                       "message": .string("ca certificate \(id) is still referenced by services (id = \(sid))")]))
            }
            return []
        default:
            return []
        }
    }
}
