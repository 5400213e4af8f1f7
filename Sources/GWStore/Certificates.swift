// The TLS entities as the data path sees them (`certificates`, `snis`, `ca_certificates`, Kong's JSON
// shape as the Admin API stores them: a certificate's document carries no `snis`, they are rows of
// their own), and Kong's choice of a certificate for a TLS server name (`kong/runloop/certificate.lua`):
// exact name, then the prefix wildcard (`*.` + all but the first label, only with 3 labels or more),
// then the suffix wildcard (all but the last label + `.*`), then the `*` SNI; none → the default
// certificate. No SNI never consults `*`. An SNI that is not a valid wildcard host (an IP, a port,
// a misplaced `*`) gets the default. Invariant: pure values, no I/O.
import GWJSON

/// A certificate (`certificates`): PEM texts; the `_alt` pair is of another key type (RSA + ECDSA).
public struct Certificate: Sendable, Hashable {
    public var id: String
    public var cert: String
    public var key: String
    public var certAlt: String?
    public var keyAlt: String?
    public init(id: String, cert: String, key: String, certAlt: String? = nil, keyAlt: String? = nil) {
        self.id = id; self.cert = cert; self.key = key; self.certAlt = certAlt; self.keyAlt = keyAlt
    }

    public static func decode(json v: JSON) throws(SnapshotError) -> Certificate {
        let f = try Fields(v, entity: "certificate")
        return Certificate(id: try f.string("id"), cert: try f.string("cert"), key: try f.string("key"),
                           certAlt: try f.optString("cert_alt"), keyAlt: try f.optString("key_alt"))
    }
    public var json: JSON {
        ["id": .string(id), "cert": .string(cert), "key": .string(key), "cert_alt": JSON(certAlt), "key_alt": JSON(keyAlt)]
    }
    /// The (cert, key) pairs to load, the main one first.
    public var pairs: [(cert: String, key: String)] {
        var p = [(cert: cert, key: key)]
        if let certAlt, let keyAlt { p.append((certAlt, keyAlt)) }
        return p
    }
}

/// A server name of a certificate (`snis`).
public struct SNI: Sendable, Equatable {
    public var id: String
    public var name: String
    public var certificateID: String
    public init(id: String, name: String, certificateID: String) {
        self.id = id; self.name = name; self.certificateID = certificateID
    }
    public static func decode(json v: JSON) throws(SnapshotError) -> SNI {
        let f = try Fields(v, entity: "sni")
        guard let c = try f.foreignID("certificate") else { throw SnapshotError("sni.certificate: required field missing") }
        return SNI(id: try f.string("id"), name: try f.string("name"), certificateID: c)
    }
    public var json: JSON { ["id": .string(id), "name": .string(name), "certificate": ["id": .string(certificateID)]] }
}

/// A trusted CA certificate (`ca_certificates`) for services' `ca_certificates`.
public struct CACertificate: Sendable, Equatable {
    public var id: String
    public var cert: String
    public init(id: String, cert: String) { self.id = id; self.cert = cert }
    public static func decode(json v: JSON) throws(SnapshotError) -> CACertificate {
        let f = try Fields(v, entity: "ca_certificate")
        return CACertificate(id: try f.string("id"), cert: try f.string("cert"))
    }
    public var json: JSON { ["id": .string(id), "cert": .string(cert)] }
}

/// Kong's SNI → certificate choice over one configuration's `snis`.
public struct SNIIndex: Sendable {
    /// SNI name → certificate id.
    let byName: [String: String]
    public init(_ snis: [SNI]) {
        var m: [String: String] = [:]
        m.reserveCapacity(snis.count)
        for s in snis { m[s.name] = s.certificateID }
        byName = m
    }
    public var isEmpty: Bool { byName.isEmpty }

    /// The certificate id for the client's server name `sni` (nil: the default certificate).
    public func certificateID(for sni: String) -> String? {
        guard !byName.isEmpty, !sni.isEmpty else { return nil }
        for c in SNIIndex.candidates(sni) { if let id = byName[c] { return id } }
        return nil
    }

    /// The names looked up for `sni`, in Kong's order (exact, prefix wildcard, suffix wildcard, `*`);
    /// empty when `sni` is not a valid wildcard host (Kong: "invalid SNI ..., serving default SSL certificate").
    public static func candidates(_ sni: String) -> [String] {
        guard isValidName(sni) else { return [] }
        var out = [sni]
        let u = Array(sni.utf8)
        if u.first == UInt8(ascii: "*") || u.last == UInt8(ascii: "*") { return out + (sni == "*" ? [] : ["*"]) }
        let dots = u.indices.filter { u[$0] == UInt8(ascii: ".") }
        if dots.count >= 2 {   // 3 labels or more: *.rest
            out.append("*" + String(decoding: u[dots[0]...], as: UTF8.self))
        }
        if let last = dots.last {
            out.append(String(decoding: u[...last], as: UTF8.self) + "*")
        }
        out.append("*")
        return out
    }

    /// Kong's `typedefs.wildcard_host` on a server name: at most one `*`, first or last; no port; not
    /// an IP address; hostname characters.
    public static func isValidName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 253 else { return false }
        var stars = 0, digitsAndDotsOnly = true, dots = 0
        for (i, c) in u.enumerated() {
            switch c {
            case UInt8(ascii: "*"):
                stars += 1
                if i != 0 && i != u.count - 1 { return false }
                digitsAndDotsOnly = false
            case UInt8(ascii: "."): dots += 1
            case UInt8(ascii: "0")...UInt8(ascii: "9"): break
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"),
                 UInt8(ascii: "_"):
                digitsAndDotsOnly = false
            default: return false   // ':' (a port or IPv6), spaces, anything else
            }
        }
        if stars > 1 { return false }
        if digitsAndDotsOnly && dots == 3 { return false }   // an IPv4 address (or one out of range)
        return true
    }
}
