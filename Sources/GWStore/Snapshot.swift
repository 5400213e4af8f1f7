// The worker configuration document: `{"generation":N,"services":[...],"routes":[...],"upstreams":[...],
// "targets":[...]}` where each element is the entity exactly as the Admin API returns it (Kong JSON shape).
// `ConfigSnapshot.decode` turns it into typed entities; `ConfigSnapshot.document`/`json` build it.
// Decoding is lenient about absent fields (Kong defaults apply) but strict about wrong types.
import GWJSON

/// A malformed worker document.
public struct SnapshotError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Field readers

struct Fields {
    let obj: JSONObject
    let entity: String

    init(_ v: JSON, entity: String) throws(SnapshotError) {
        guard case .object(let o) = v else { throw SnapshotError("\(entity): expected an object") }
        obj = o; self.entity = entity
    }

    func fail(_ key: String, _ what: String) -> SnapshotError { SnapshotError("\(entity).\(key): expected \(what)") }

    func present(_ key: String) -> JSON? {
        guard let v = obj[key], !v.isNull else { return nil }
        return v
    }
    func string(_ key: String) throws(SnapshotError) -> String {
        guard let v = present(key) else { throw SnapshotError("\(entity).\(key): required field missing") }
        guard let s = v.stringValue else { throw fail(key, "a string") }
        return s
    }
    func optString(_ key: String) throws(SnapshotError) -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v.stringValue else { throw fail(key, "a string") }
        return s
    }
    func string(_ key: String, default d: String) throws(SnapshotError) -> String { try optString(key) ?? d }
    func int(_ key: String, default d: Int) throws(SnapshotError) -> Int {
        guard let v = present(key) else { return d }
        guard let i = v.intValue else { throw fail(key, "an integer") }
        return i
    }
    func double(_ key: String, default d: Double) throws(SnapshotError) -> Double {
        guard let v = present(key) else { return d }
        guard let x = v.doubleValue else { throw fail(key, "a number") }
        return x
    }
    func bool(_ key: String, default d: Bool) throws(SnapshotError) -> Bool {
        guard let v = present(key) else { return d }
        guard let b = v.boolValue else { throw fail(key, "a boolean") }
        return b
    }
    func strings(_ key: String) throws(SnapshotError) -> [String]? {
        guard let v = present(key) else { return nil }
        guard let a = v.stringArrayValue else { throw fail(key, "an array of strings") }
        return a
    }
    func ints(_ key: String, default d: [Int]) throws(SnapshotError) -> [Int] {
        guard let v = present(key) else { return d }
        guard let a = v.arrayValue else { throw fail(key, "an array of integers") }
        var out: [Int] = []
        for e in a { guard let i = e.intValue else { throw fail(key, "an array of integers") }; out.append(i) }
        return out
    }
    func headerMap(_ key: String) throws(SnapshotError) -> [String: [String]]? {
        guard let v = present(key) else { return nil }
        guard let o = v.objectValue else { throw fail(key, "a map") }
        var out: [String: [String]] = [:]
        for (k, e) in o {
            if let s = e.stringValue { out[k] = [s]; continue }
            guard let a = e.stringArrayValue else { throw fail(key, "a map of string arrays") }
            out[k] = a
        }
        return out
    }
    func record(_ key: String) throws(SnapshotError) -> Fields? {
        guard let v = present(key) else { return nil }
        return try Fields(v, entity: "\(entity).\(key)")
    }
    /// Foreign key `{"id": ...}` (or a bare id string).
    func foreignID(_ key: String) throws(SnapshotError) -> String? {
        guard let v = present(key) else { return nil }
        if let s = v.stringValue { return s }
        guard let id = v["id"]?.stringValue else { throw fail(key, "a foreign key {\"id\": ...}") }
        return id
    }
}

// MARK: - Decoding

extension Service {
    public static func decode(json v: JSON) throws(SnapshotError) -> Service {
        let f = try Fields(v, entity: "service")
        var s = Service(id: try f.string("id"), name: try f.optString("name"),
                       protocolName: try f.string("protocol", default: "http"), host: try f.string("host"),
                       port: try f.int("port", default: 80), path: try f.optString("path"),
                       retries: try f.int("retries", default: 5),
                       connectTimeout: try f.int("connect_timeout", default: 60000),
                       writeTimeout: try f.int("write_timeout", default: 60000),
                       readTimeout: try f.int("read_timeout", default: 60000),
                       enabled: try f.bool("enabled", default: true))
        if case .bool(let b)? = v["tls_verify"] { s.tlsVerify = b }
        s.tlsVerifyDepth = v["tls_verify_depth"]?.intValue
        s.caCertificateIDs = try f.strings("ca_certificates")
        s.clientCertificateID = try f.foreignID("client_certificate")
        return s
    }

    public var json: JSON {
        ["id": .string(id), "name": JSON(name), "protocol": .string(protocolName), "host": .string(host),
         "port": JSON(port), "path": JSON(path), "retries": JSON(retries), "connect_timeout": JSON(connectTimeout),
         "write_timeout": JSON(writeTimeout), "read_timeout": JSON(readTimeout), "enabled": .bool(enabled),
         "tls_verify": tlsVerify.map(JSON.bool) ?? .null, "tls_verify_depth": JSON(tlsVerifyDepth),
         "ca_certificates": JSON(caCertificateIDs),
         "client_certificate": clientCertificateID.map { ["id": .string($0)] } ?? .null]
    }
}

extension Route {
    public static func decode(json v: JSON) throws(SnapshotError) -> Route {
        let f = try Fields(v, entity: "route")
        var r = Route(id: try f.string("id"), name: try f.optString("name"),
                     protocols: try f.strings("protocols") ?? ["http", "https"], methods: try f.strings("methods"),
                     hosts: try f.strings("hosts"), paths: try f.strings("paths"), headers: try f.headerMap("headers"),
                     stripPath: try f.bool("strip_path", default: true),
                     preserveHost: try f.bool("preserve_host", default: false),
                     regexPriority: try f.int("regex_priority", default: 0),
                     pathHandling: try f.string("path_handling", default: "v0"), serviceID: try f.foreignID("service"),
                     createdAt: try f.int("created_at", default: 0))
        r.requestBuffering = try f.bool("request_buffering", default: true)
        r.snis = try f.strings("snis")
        return r
    }

    public var json: JSON {
        var h: JSON = .null
        if let headers {
            var o = JSONObject()
            for k in headers.keys.sorted() { o[k] = JSON(headers[k]) }
            h = .object(o)
        }
        return ["id": .string(id), "name": JSON(name), "protocols": JSON(protocols), "methods": JSON(methods),
                "hosts": JSON(hosts), "paths": JSON(paths), "headers": h, "strip_path": .bool(stripPath),
                "preserve_host": .bool(preserveHost), "regex_priority": JSON(regexPriority),
                "path_handling": .string(pathHandling), "service": serviceID.map { ["id": .string($0)] } ?? .null,
                "created_at": JSON(createdAt), "request_buffering": .bool(requestBuffering), "snis": JSON(snis)]
    }
}

extension Healthchecks {
    public static func decode(json v: JSON?) throws(SnapshotError) -> Healthchecks {
        var h = Healthchecks()
        guard let v, !v.isNull else { return h }
        let f = try Fields(v, entity: "healthchecks")
        h.threshold = try f.double("threshold", default: 0)
        if let a = try f.record("active") {
            h.active.type = try a.string("type", default: "http")
            h.active.timeout = try a.double("timeout", default: 1)
            h.active.concurrency = try a.int("concurrency", default: 10)
            h.active.httpPath = try a.string("http_path", default: "/")
            h.active.httpsSni = try a.optString("https_sni")
            h.active.httpsVerifyCertificate = try a.bool("https_verify_certificate", default: true)
            h.active.headers = try a.headerMap("headers")
            if let hh = try a.record("healthy") {
                h.active.healthyInterval = try hh.double("interval", default: 0)
                h.active.healthyHTTPStatuses = try hh.ints("http_statuses", default: h.active.healthyHTTPStatuses)
                h.active.healthySuccesses = try hh.int("successes", default: 0)
            }
            if let u = try a.record("unhealthy") {
                h.active.unhealthyInterval = try u.double("interval", default: 0)
                h.active.unhealthyHTTPStatuses = try u.ints("http_statuses", default: h.active.unhealthyHTTPStatuses)
                h.active.unhealthyTCPFailures = try u.int("tcp_failures", default: 0)
                h.active.unhealthyTimeouts = try u.int("timeouts", default: 0)
                h.active.unhealthyHTTPFailures = try u.int("http_failures", default: 0)
            }
        }
        if let p = try f.record("passive") {
            h.passive.type = try p.string("type", default: "http")
            if let hh = try p.record("healthy") {
                h.passive.healthyHTTPStatuses = try hh.ints("http_statuses", default: h.passive.healthyHTTPStatuses)
                h.passive.healthySuccesses = try hh.int("successes", default: 0)
            }
            if let u = try p.record("unhealthy") {
                h.passive.unhealthyHTTPStatuses = try u.ints("http_statuses", default: h.passive.unhealthyHTTPStatuses)
                h.passive.unhealthyTCPFailures = try u.int("tcp_failures", default: 0)
                h.passive.unhealthyTimeouts = try u.int("timeouts", default: 0)
                h.passive.unhealthyHTTPFailures = try u.int("http_failures", default: 0)
            }
        }
        return h
    }

    static func number(_ d: Double) -> JSON { d == d.rounded() && abs(d) < 1e15 ? .int(Int64(d)) : .double(d) }

    public var json: JSON {
        var hdrs: JSON = .null
        if let headers = active.headers {
            var o = JSONObject()
            for k in headers.keys.sorted() { o[k] = JSON(headers[k]) }
            hdrs = .object(o)
        }
        return [
            "threshold": Healthchecks.number(threshold),
            "active": [
                "type": .string(active.type), "timeout": Healthchecks.number(active.timeout),
                "concurrency": JSON(active.concurrency), "http_path": .string(active.httpPath),
                "https_sni": JSON(active.httpsSni), "https_verify_certificate": .bool(active.httpsVerifyCertificate),
                "headers": hdrs,
                "healthy": ["interval": Healthchecks.number(active.healthyInterval),
                            "http_statuses": JSON(active.healthyHTTPStatuses), "successes": JSON(active.healthySuccesses)],
                "unhealthy": ["interval": Healthchecks.number(active.unhealthyInterval),
                              "http_statuses": JSON(active.unhealthyHTTPStatuses),
                              "tcp_failures": JSON(active.unhealthyTCPFailures), "timeouts": JSON(active.unhealthyTimeouts),
                              "http_failures": JSON(active.unhealthyHTTPFailures)],
            ],
            "passive": [
                "type": .string(passive.type),
                "healthy": ["http_statuses": JSON(passive.healthyHTTPStatuses), "successes": JSON(passive.healthySuccesses)],
                "unhealthy": ["http_statuses": JSON(passive.unhealthyHTTPStatuses),
                              "tcp_failures": JSON(passive.unhealthyTCPFailures),
                              "timeouts": JSON(passive.unhealthyTimeouts),
                              "http_failures": JSON(passive.unhealthyHTTPFailures)],
            ],
        ]
    }
}

extension Upstream {
    public static func decode(json v: JSON) throws(SnapshotError) -> Upstream {
        let f = try Fields(v, entity: "upstream")
        var u = Upstream(id: try f.string("id"), name: try f.string("name"),
                         algorithm: try f.string("algorithm", default: "round-robin"),
                         hashOn: try f.string("hash_on", default: "none"),
                         hashFallback: try f.string("hash_fallback", default: "none"),
                         hashOnHeader: try f.optString("hash_on_header"),
                         hashFallbackHeader: try f.optString("hash_fallback_header"),
                         hashOnCookie: try f.optString("hash_on_cookie"),
                         hashOnCookiePath: try f.string("hash_on_cookie_path", default: "/"),
                         hashOnQueryArg: try f.optString("hash_on_query_arg"),
                         hashFallbackQueryArg: try f.optString("hash_fallback_query_arg"),
                         hashOnURICapture: try f.optString("hash_on_uri_capture"),
                         hashFallbackURICapture: try f.optString("hash_fallback_uri_capture"),
                         slots: try f.int("slots", default: 10000), hostHeader: try f.optString("host_header"),
                         healthchecks: try Healthchecks.decode(json: f.present("healthchecks")))
        u.clientCertificateID = try f.foreignID("client_certificate")
        return u
    }

    public var json: JSON {
        ["id": .string(id), "name": .string(name), "algorithm": .string(algorithm), "hash_on": .string(hashOn),
         "hash_fallback": .string(hashFallback), "hash_on_header": JSON(hashOnHeader),
         "hash_fallback_header": JSON(hashFallbackHeader), "hash_on_cookie": JSON(hashOnCookie),
         "hash_on_cookie_path": .string(hashOnCookiePath), "hash_on_query_arg": JSON(hashOnQueryArg),
         "hash_fallback_query_arg": JSON(hashFallbackQueryArg), "hash_on_uri_capture": JSON(hashOnURICapture),
         "hash_fallback_uri_capture": JSON(hashFallbackURICapture), "slots": JSON(slots),
         "host_header": JSON(hostHeader), "healthchecks": healthchecks.json,
         "client_certificate": clientCertificateID.map { ["id": .string($0)] } ?? .null]
    }
}

extension Target {
    /// Splits a normalised `host:port` / `[v6]:port` target string.
    public static func splitHostPort(_ target: String) -> (host: String, port: Int)? {
        if target.hasPrefix("[") {
            guard let close = target.firstIndex(of: "]") else { return nil }
            let host = String(target[target.index(after: target.startIndex)..<close])
            let rest = target[target.index(after: close)...]
            if rest.isEmpty { return (host, 8000) }
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else { return nil }
            return (host, p)
        }
        if let colon = target.lastIndex(of: ":") {
            guard let p = Int(target[target.index(after: colon)...]) else { return nil }
            return (String(target[..<colon]), p)
        }
        return (target, 8000)
    }

    public static func decode(json v: JSON) throws(SnapshotError) -> Target {
        let f = try Fields(v, entity: "target")
        let t = try f.string("target")
        guard let upstreamID = try f.foreignID("upstream") else { throw SnapshotError("target.upstream: required field missing") }
        guard let (host, port) = splitHostPort(t) else { throw SnapshotError("target.target: invalid value '\(t)'") }
        return Target(id: try f.string("id"), upstreamID: upstreamID, target: t, host: host, port: port,
                      weight: try f.int("weight", default: 100), createdAt: try f.double("created_at", default: 0))
    }

    public var json: JSON {
        ["id": .string(id), "upstream": ["id": .string(upstreamID)], "target": .string(target), "weight": JSON(weight),
         "created_at": .double(createdAt)]
    }
}

extension ConfigSnapshot {
    /// Decodes the worker document.
    public static func decode(json v: JSON) throws(SnapshotError) -> ConfigSnapshot {
        guard case .object(let o) = v else { throw SnapshotError("configuration document: expected an object") }
        var s = ConfigSnapshot()
        if let g = o["generation"], !g.isNull {
            guard let n = g.int64Value, n >= 0 else { throw SnapshotError("generation: expected a non-negative integer") }
            s.generation = UInt64(n)
        }
        for key in ConfigSnapshot.entityKeys {
            guard let v = o[key], !v.isNull else { continue }
            guard let a = v.arrayValue else { throw SnapshotError("\(key): expected an array") }
            for e in a { try s.append(key, e) }
        }
        return s
    }

    /// The document's entity arrays, in the order they are decoded.
    public static let entityKeys = ["services", "routes", "upstreams", "targets", "consumers", "plugins",
                                    "keyauth_credentials", "basicauth_credentials", "acls",
                                    "certificates", "snis", "ca_certificates"]

    /// Decodes one element of the entity array `key` and appends it.
    public mutating func append(_ key: String, _ e: JSON) throws(SnapshotError) {
        switch key {
        case "services": services.append(try Service.decode(json: e))
        case "routes": routes.append(try Route.decode(json: e))
        case "upstreams": upstreams.append(try Upstream.decode(json: e))
        case "targets": targets.append(try Target.decode(json: e))
        case "consumers": consumers.append(try Consumer.decode(json: e))
        case "plugins": plugins.append(try Plugin.decode(json: e))
        case "keyauth_credentials": keyauthCredentials.append(try KeyAuthCredential.decode(json: e))
        case "basicauth_credentials": basicauthCredentials.append(try BasicAuthCredential.decode(json: e))
        case "acls": acls.append(try ACLGroup.decode(json: e))
        case "certificates": certificates.append(try Certificate.decode(json: e))
        case "snis": snis.append(try SNI.decode(json: e))
        case "ca_certificates": caCertificates.append(try CACertificate.decode(json: e))
        default: throw SnapshotError("\(key): not an entity array")
        }
    }

    /// Parses and decodes the worker document from bytes.
    public static func decode(bytes: some Collection<UInt8>) throws(SnapshotError) -> ConfigSnapshot {
        let v: JSON
        do { v = try JSON.parse(bytes) } catch { throw SnapshotError("invalid JSON: \(error)") }
        return try decode(json: v)
    }

    /// The worker document for typed entities.
    public var json: JSON {
        ConfigSnapshot.document(generation: generation, services: services.map(\.json), routes: routes.map(\.json),
                                upstreams: upstreams.map(\.json), targets: targets.map(\.json),
                                consumers: consumers.map(\.json), plugins: plugins.map(\.json),
                                keyauthCredentials: keyauthCredentials.map(\.json),
                                basicauthCredentials: basicauthCredentials.map(\.json), acls: acls.map(\.json),
                                certificates: certificates.map(\.json), snis: snis.map(\.json),
                                caCertificates: caCertificates.map(\.json))
    }

    /// Builds the worker document from entities in Admin API JSON shape (what the master's store holds).
    public static func document(generation: UInt64, services: [JSON], routes: [JSON], upstreams: [JSON],
                                targets: [JSON], consumers: [JSON] = [], plugins: [JSON] = [],
                                keyauthCredentials: [JSON] = [], basicauthCredentials: [JSON] = [],
                                acls: [JSON] = [], certificates: [JSON] = [], snis: [JSON] = [],
                                caCertificates: [JSON] = []) -> JSON {
        ["generation": .int(Int64(clamping: generation)), "services": .array(services), "routes": .array(routes),
         "upstreams": .array(upstreams), "targets": .array(targets), "consumers": .array(consumers),
         "plugins": .array(plugins), "keyauth_credentials": .array(keyauthCredentials),
         "basicauth_credentials": .array(basicauthCredentials), "acls": .array(acls),
         "certificates": .array(certificates), "snis": .array(snis), "ca_certificates": .array(caCertificates)]
    }
}
