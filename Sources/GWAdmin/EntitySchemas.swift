// Kong entity schemas (KONG.md §1) expressed with the Schema engine, plus their entity checks and shorthands.
import GWJSON

struct EntitySchema: Sendable {
    let kind: EntityKind
    let fields: [Field]
    /// Endpoint key used for `/E/{key}` lookups.
    let endpointKey: String?
    /// Foreign fields (name → referenced kind).
    let foreign: [(String, EntityKind)]
    /// Integer-second timestamps (all but targets, which use s.ms).
    let msTimestamps: Bool
}

enum Validators {
    static let protocols = ["grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"]

    static func isNameChar(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x2D
            || c == 0x5F || c == 0x7E || c >= 0x80
    }
    static let utf8Name: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        if s.utf8.allSatisfy(isNameChar) { return nil }
        return "invalid value '\(s)': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
    }
    static let tag: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        for c in s.utf8 where c < 0x80 && (c < 0x21 || c > 0x7E || c == 0x2C || c == 0x2F) {
            return "invalid tag '\(s)': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
        }
        return nil
    }
    static let uuid: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        return UUID4.isValid(s) ? nil : "expected a valid UUID"
    }

    // MARK: hosts / IPs

    static func isIPv4(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let n = Int(p), n <= 255 else { return false }
        }
        return true
    }

    /// Expands an IPv6 address to 8 groups of 4 hex digits; nil if invalid.
    static func expandIPv6(_ s: Substring) -> String? {
        var str = String(s)
        var tail: [String] = []
        if let lastColon = str.lastIndex(of: ":"), str[str.index(after: lastColon)...].contains(".") {
            let v4 = str[str.index(after: lastColon)...]
            guard isIPv4(v4) else { return nil }
            let o = v4.split(separator: ".").map { Int($0)! }
            tail = [String(o[0] << 8 | o[1], radix: 16), String(o[2] << 8 | o[3], radix: 16)]
            str = String(str[...lastColon]) + "0"
            // replace the trailing "0" placeholder later by dropping last group
        }
        var dbl: [String] = []
        if let r = str.firstRange(of: "::") {
            dbl = [String(str[..<r.lowerBound]), String(str[r.upperBound...])]
            if dbl[1].contains("::") { return nil }
        } else { dbl = [str] }
        guard dbl.count <= 2 else { return nil }
        func groups(_ x: String) -> [String]? {
            if x.isEmpty { return [] }
            let g = x.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            for e in g { guard !e.isEmpty, e.count <= 4, e.allSatisfy({ $0.isHexDigit }) else { return nil } }
            return g
        }
        guard var head = groups(dbl[0]) else { return nil }
        var rest: [String] = []
        if dbl.count == 2 { guard let r = groups(dbl[1]) else { return nil }; rest = r }
        if !tail.isEmpty {
            if dbl.count == 2 && !rest.isEmpty { rest.removeLast(); rest += tail } else if dbl.count == 1 { head.removeLast(); head += tail } else { return nil }
        }
        var all: [String]
        if dbl.count == 2 {
            let missing = 8 - head.count - rest.count
            guard missing >= 1 else { return nil }
            all = head + Array(repeating: "0", count: missing) + rest
        } else {
            all = head
        }
        guard all.count == 8 else { return nil }
        return all.map { String(repeating: "0", count: 4 - $0.count) + $0.lowercased() }.joined(separator: ":")
    }

    static func isHostname(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        let labels = s.split(separator: ".", omittingEmptySubsequences: false)
        for (i, l) in labels.enumerated() {
            if l.isEmpty { if i == labels.count - 1 && i > 0 { continue }; return false }
            guard l.utf8.count <= 63 else { return false }
            for c in l.utf8 {
                let ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
                if !ok { return false }
            }
            if l.hasPrefix("-") || l.hasSuffix("-") { return false }
        }
        return true
    }

    enum HostKind { case name, ipv4, ipv6 }

    /// Splits `host[:port]` / `[v6][:port]`; nil if malformed.
    static func parseHostPort(_ s: String) -> (host: String, kind: HostKind, port: Int?)? {
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let inner = s[s.index(after: s.startIndex)..<close]
            guard let exp = expandIPv6(inner) else { return nil }
            let rest = s[s.index(after: close)...]
            if rest.isEmpty { return (exp, .ipv6, nil) }
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), p >= 0, p <= 65535 else { return nil }
            return (exp, .ipv6, p)
        }
        let colons = s.filter { $0 == ":" }.count
        if colons > 1 {
            guard let exp = expandIPv6(Substring(s)) else { return nil }
            return (exp, .ipv6, nil)
        }
        var host = Substring(s)
        var port: Int? = nil
        if colons == 1 {
            let c = s.firstIndex(of: ":")!
            host = s[..<c]
            guard let p = Int(s[s.index(after: c)...]), p >= 0, p <= 65535 else { return nil }
            port = p
        }
        if isIPv4(host) { return (String(host), .ipv4, port) }
        // Looks like an IPv4 address (4 numeric labels) but is not a valid one (as Kong's hostname_type).
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count == 4, labels.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigitChar) }) { return nil }
        if isHostname(host) { return (String(host), .name, port) }
        return nil
    }

    static let host: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        guard let hp = parseHostPort(s) else { return "invalid value: \(s)" }
        if hp.port != nil { return "must not have a port" }
        return nil
    }

    static let hostWithOptionalPort: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        return parseHostPort(s) == nil ? "invalid value: \(s)" : nil
    }

    static let sni: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        guard let hp = parseHostPort(s) else { return "invalid value: \(s)" }
        if hp.port != nil { return "must not have a port" }
        if hp.kind != .name { return "must not be an IP" }
        return nil
    }

    static let wildcardHost: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        let stars = s.filter { $0 == "*" }.count
        if stars > 1 { return "invalid wildcard: must have at most one wildcard" }
        var check = s
        if stars == 1 {
            var hostPart = Substring(s)
            if let c = s.lastIndex(of: ":"), !s.contains("[") { hostPart = s[..<c] }
            if hostPart.hasPrefix("*.") { check = "x" + s.dropFirst() } else if hostPart.hasSuffix(".*") {
                check = String(hostPart.dropLast()) + "x" + s[hostPart.endIndex...]
            } else { return "invalid wildcard: must be placed at leftmost or rightmost label" }
        }
        return parseHostPort(check) == nil ? "invalid value: \(s)" : nil
    }

    static let reservedPathChars = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%".utf8)

    /// Kong's `typedefs.path` checks (without the leading-slash check).
    static func pathBody(_ s: String) -> String? {
        if s.contains("//") { return "must not have empty segments" }
        let u = Array(s.utf8)
        for c in u where !reservedPathChars.contains(c) {
            return "invalid path: '\(s)' (characters outside of the reserved list of RFC 3986 found)"
        }
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%") {
                guard i + 2 < u.count, URLCoding.hex(u[i + 1]) != nil, URLCoding.hex(u[i + 2]) != nil else {
                    let end = min(u.count, i + 3)
                    return "invalid url-encoded value: '\(String(decoding: u[i..<end], as: UTF8.self))'"
                }
                i += 3
            } else { i += 1 }
        }
        return nil
    }

    static let path: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        guard s.hasPrefix("/") else { return "should start with: /" }
        return pathBody(s)
    }

    /// Normalises a prefix path as Kong does: decode %XX of unreserved chars, uppercase other escapes, remove dot segments.
    static func normalizePath(_ s: String) -> String {
        let u = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%"), i + 2 < u.count, let h = URLCoding.hex(u[i + 1]), let l = URLCoding.hex(u[i + 2]) {
                let c = h << 4 | l
                if URLCoding.unreserved.contains(c) { out.append(c) } else {
                    out.append(UInt8(ascii: "%"))
                    out.append(contentsOf: String(c >> 4, radix: 16, uppercase: true).utf8)
                    out.append(contentsOf: String(c & 15, radix: 16, uppercase: true).utf8)
                }
                i += 3
            } else { out.append(u[i]); i += 1 }
        }
        let decoded = String(decoding: out, as: UTF8.self)
        // remove dot segments
        var segs: [Substring] = []
        let parts = decoded.split(separator: "/", omittingEmptySubsequences: false)
        for (idx, p) in parts.enumerated() {
            if p == "." { if idx == parts.count - 1 { segs.append("") }; continue }
            if p == ".." { if segs.count > 1 { segs.removeLast() }; if idx == parts.count - 1 { segs.append("") }; continue }
            segs.append(p)
        }
        return segs.joined(separator: "/")
    }

    static let routerPath: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        if s.hasPrefix("~/") {
            var depth = 0
            var esc = false
            for c in s.dropFirst() {
                if esc { esc = false; continue }
                if c == "\\" { esc = true } else if c == "(" { depth += 1 } else if c == ")" { depth -= 1; if depth < 0 { break } }
            }
            if depth != 0 { return "invalid regex: '\(s.dropFirst())' (PCRE returned: missing closing parenthesis)" }
            return nil
        }
        guard s.hasPrefix("/") else { return "should start with: / (fixed path) or ~/ (regex path)" }
        if let e = pathBody(s) { return e }
        let n = normalizePath(s)
        if n != s { return "non-normalized path, consider use '\(n)' instead" }
        return nil
    }

    /// typedefs.ip_or_cidr: IPv4/IPv6 address with optional /prefix.
    static let ipOrCIDR: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        var addr = Substring(s)
        var bits: Int? = nil
        if let slash = s.firstIndex(of: "/") {
            addr = s[..<slash]
            guard let b = Int(s[s.index(after: slash)...]), b >= 0 else { return "invalid ip or cidr range: '\(s)'" }
            bits = b
        }
        if isIPv4(addr) { return (bits ?? 0) <= 32 ? nil : "invalid ip or cidr range: '\(s)'" }
        if expandIPv6(addr) != nil { return (bits ?? 0) <= 128 ? nil : "invalid ip or cidr range: '\(s)'" }
        return "invalid ip or cidr range: '\(s)'"
    }

    static let method: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        return !s.isEmpty && s.unicodeScalars.allSatisfy({ $0.value >= 0x41 && $0.value <= 0x5A }) ? nil : "invalid value: \(s)"
    }

    static let headerName: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        let ok = s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
        return ok ? nil : "bad header name '\(s)', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    }

    static let upstreamName: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        guard let hp = parseHostPort(s) else { return "Invalid name ('\(s)'); must be a valid hostname" }
        if hp.kind != .name { return "Invalid name ('\(s)'); no ip addresses allowed" }
        if hp.port != nil { return "Invalid name ('\(s)'); no port allowed" }
        return nil
    }

    /// Target normalisation: `host[:port]` with default port 8000, IPv6 expanded in brackets.
    static func normalizeTarget(_ s: String) -> String? {
        guard let hp = parseHostPort(s) else { return nil }
        let port = hp.port ?? 8000
        switch hp.kind {
        case .ipv6: return "[\(hp.host)]:\(port)"
        default: return "\(hp.host):\(port)"
        }
    }
}

// MARK: - Schemas

enum Schemas {
    static let idField = Field("id", .string, custom: Validators.uuid)
    static let createdAt = Field("created_at", .integer, auto: true)
    static let updatedAt = Field("updated_at", .integer, auto: true)
    static let tags = Field("tags", .set(.element(.string, custom: Validators.tag)))

    static let service = EntitySchema(kind: .services, fields: [
        idField, createdAt, updatedAt,
        Field("name", .string, custom: Validators.utf8Name),
        Field("retries", .integer, default: 5, between: (0, 32767)),
        Field("protocol", .string, required: true, default: "http", oneOf: Validators.protocols),
        Field("host", .string, required: true, custom: Validators.host),
        Field("port", .integer, required: true, default: 80, between: (0, 65535)),
        Field("path", .string, custom: Validators.path),
        Field("connect_timeout", .integer, default: 60000, between: (1, 2147483646)),
        Field("write_timeout", .integer, default: 60000, between: (1, 2147483646)),
        Field("read_timeout", .integer, default: 60000, between: (1, 2147483646)),
        tags,
        Field("client_certificate", .foreign(.certificates)),
        Field("tls_verify", .boolean),
        Field("tls_verify_depth", .integer, between: (0, 64)),
        Field("ca_certificates", .array(.element(.string, custom: Validators.uuid))),
        Field("enabled", .boolean, required: true, default: true),
    ], endpointKey: "name", foreign: [("client_certificate", .certificates)], msTimestamps: false)

    static let route = EntitySchema(kind: .routes, fields: [
        idField, createdAt, updatedAt,
        Field("name", .string, custom: Validators.utf8Name),
        Field("protocols", .set(.element(.string, oneOf: Validators.protocols)), required: true,
              default: ["http", "https"], lenMin: 1),
        Field("methods", .set(.element(.string, custom: Validators.method))),
        Field("hosts", .array(.element(.string, custom: Validators.wildcardHost))),
        Field("paths", .array(.element(.string, custom: Validators.routerPath))),
        Field("headers", .map(.element(.array(.element(.string))))),
        Field("https_redirect_status_code", .integer, required: true, default: 426, oneOfInts: [426, 301, 302, 307, 308]),
        Field("regex_priority", .integer, default: 0),
        Field("strip_path", .boolean, required: true, default: true),
        Field("path_handling", .string, default: "v0", oneOf: ["v0", "v1"]),
        Field("preserve_host", .boolean, required: true, default: false),
        Field("request_buffering", .boolean, required: true, default: true),
        Field("response_buffering", .boolean, required: true, default: true),
        Field("snis", .set(.element(.string, custom: Validators.sniName))),
        Field("sources", .set(.element(.record([Field("ip", .string, custom: Validators.ipOrCIDR),
                                                Field("port", .integer, between: (0, 65535))])))),
        Field("destinations", .set(.element(.record([Field("ip", .string, custom: Validators.ipOrCIDR),
                                                     Field("port", .integer, between: (0, 65535))])))),
        tags,
        Field("service", .foreign(.services)),
    ], endpointKey: "name", foreign: [("service", .services)], msTimestamps: false)

    static func statuses(_ d: [Int]) -> Field {
        Field("http_statuses", .array(.element(.integer, between: (100, 999))), default: JSON(d))
    }
    static func counter(_ n: String) -> Field { Field(n, .integer, default: 0, between: (0, 255)) }
    static func seconds(_ n: String, _ d: JSON) -> Field { Field(n, .number, default: d, between: (0, 65535)) }
    static let hcTypes = ["tcp", "http", "https", "grpc", "grpcs"]

    static let healthchecks = Field("healthchecks", .record([
        Field("active", .record([
            Field("type", .string, default: "http", oneOf: hcTypes),
            seconds("timeout", 1),
            Field("concurrency", .integer, default: 10, between: (1, 2147483648)),
            Field("http_path", .string, default: "/", custom: Validators.path),
            Field("https_sni", .string, custom: Validators.sni),
            Field("https_verify_certificate", .boolean, default: true),
            Field("headers", .map(.element(.array(.element(.string))))),
            Field("healthy", .record([seconds("interval", 0), statuses([200, 302]), counter("successes")])),
            Field("unhealthy", .record([seconds("interval", 0), statuses([429, 404, 500, 501, 502, 503, 504, 505]),
                                        counter("tcp_failures"), counter("timeouts"), counter("http_failures")])),
        ])),
        Field("passive", .record([
            Field("type", .string, default: "http", oneOf: hcTypes),
            Field("healthy", .record([statuses([200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303,
                                                304, 305, 306, 307, 308]), counter("successes")])),
            Field("unhealthy", .record([statuses([429, 500, 503]), counter("tcp_failures"), counter("timeouts"),
                                        counter("http_failures")])),
        ])),
        Field("threshold", .number, default: 0, between: (0, 100)),
    ]))

    static let hashOn = ["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]

    static let upstream = EntitySchema(kind: .upstreams, fields: [
        idField, createdAt, updatedAt,
        Field("name", .string, required: true, custom: Validators.upstreamName),
        Field("algorithm", .string, default: "round-robin",
              oneOf: ["consistent-hashing", "least-connections", "round-robin", "latency"]),
        Field("hash_on", .string, default: "none", oneOf: hashOn),
        Field("hash_fallback", .string, default: "none", oneOf: hashOn),
        Field("hash_on_header", .string, custom: Validators.headerName),
        Field("hash_fallback_header", .string, custom: Validators.headerName),
        Field("hash_on_cookie", .string),
        Field("hash_on_cookie_path", .string, default: "/", custom: Validators.path),
        Field("hash_on_query_arg", .string, lenMin: 1),
        Field("hash_fallback_query_arg", .string, lenMin: 1),
        Field("hash_on_uri_capture", .string, lenMin: 1),
        Field("hash_fallback_uri_capture", .string, lenMin: 1),
        Field("slots", .integer, default: 10000, between: (10, 65536)),
        healthchecks,
        tags,
        Field("host_header", .string, custom: Validators.hostWithOptionalPort),
        Field("client_certificate", .foreign(.certificates)),
        Field("use_srv_name", .boolean, default: false),
    ], endpointKey: "name", foreign: [("client_certificate", .certificates)], msTimestamps: false)

    static let target = EntitySchema(kind: .targets, fields: [
        idField,
        Field("created_at", .number, auto: true), Field("updated_at", .number, auto: true),
        Field("upstream", .foreign(.upstreams), required: true),
        Field("target", .string, required: true),
        Field("weight", .integer, default: 100, between: (0, 65535)),
        tags,
    ], endpointKey: "target", foreign: [("upstream", .upstreams)], msTimestamps: true)

    static let consumer = EntitySchema(kind: .consumers, fields: [
        idField, createdAt, updatedAt,
        Field("username", .string), Field("custom_id", .string), tags,
    ], endpointKey: "username", foreign: [], msTimestamps: false)

    static let plugin = EntitySchema(kind: .plugins, fields: [
        idField, createdAt, updatedAt,
        Field("name", .string, required: true),
        Field("instance_name", .string, custom: Validators.utf8Name),
        Field("route", .foreign(.routes)),
        Field("service", .foreign(.services)),
        Field("consumer", .foreign(.consumers)),
        Field("config", .record([])),  // replaced per plugin
        Field("protocols", .set(.element(.string, oneOf: Validators.protocols)), required: true,
              default: ["grpc", "grpcs", "http", "https"]),
        Field("enabled", .boolean, required: true, default: true),
        tags,
        Field("ordering", .record([]), nullableRecord: true),
    ], endpointKey: "instance_name",
       foreign: [("route", .routes), ("service", .services), ("consumer", .consumers)], msTimestamps: false)

    static func of(_ kind: EntityKind) -> EntitySchema {
        switch kind {
        case .keyauthCredentials: keyauthCredential
        case .basicauthCredentials: basicauthCredential
        case .acls: acl
        case .services: service
        case .routes: route
        case .upstreams: upstream
        case .targets: target
        case .consumers: consumer
        case .plugins: plugin
        case .certificates: CertificateSchemas.certificate
        case .snis: CertificateSchemas.sni
        case .caCertificates: CertificateSchemas.caCertificate
        }
    }

    // MARK: plugin configs (KONG.md §1.7)

    struct PluginDef: Sendable {
        let priority: Int
        let config: [Field]
    }

    static let periods = ["second", "minute", "hour", "day", "month", "year"]

    static let plugins: [String: PluginDef] = [
        "key-auth": PluginDef(priority: 1250, config: [
            Field("key_names", .array(.element(.string, custom: Validators.headerName)), required: true, default: ["apikey"]),
            Field("hide_credentials", .boolean, required: true, default: false),
            Field("anonymous", .string),
            Field("key_in_header", .boolean, required: true, default: true),
            Field("key_in_query", .boolean, required: true, default: true),
            Field("key_in_body", .boolean, required: true, default: false),
            Field("run_on_preflight", .boolean, required: true, default: true),
            Field("realm", .string),
        ]),
        "basic-auth": PluginDef(priority: 1100, config: [
            Field("anonymous", .string),
            Field("hide_credentials", .boolean, required: true, default: false),
            Field("realm", .string, required: true, default: "service"),
        ]),
        "acl": PluginDef(priority: 950, config: [
            Field("allow", .array(.element(.string))),
            Field("deny", .array(.element(.string))),
            Field("hide_groups_header", .boolean, required: true, default: false),
            Field("always_use_authenticated_groups", .boolean, required: true, default: false),
        ]),
        "rate-limiting": PluginDef(priority: 910, config: periods.map { Field($0, .number, greaterThan: 0) } + [
            Field("limit_by", .string, default: "consumer", oneOf: ["consumer", "credential", "ip", "service", "header", "path"]),
            Field("header_name", .string),
            Field("path", .string, custom: Validators.path),
            Field("policy", .string, default: "local", oneOf: ["local", "cluster", "redis"]),
            Field("fault_tolerant", .boolean, required: true, default: true),
            Field("hide_client_headers", .boolean, required: true, default: false),
            Field("error_code", .number, default: 429, greaterThan: 0),
            Field("error_message", .string, default: "API rate limit exceeded"),
            Field("sync_rate", .number, default: -1),
            Field("redis", .record([
                Field("host", .string, custom: Validators.host), Field("port", .integer, default: 6379, between: (0, 65535)),
                Field("timeout", .integer, default: 2000, between: (0, 2147483646)), Field("username", .string),
                Field("password", .string), Field("database", .integer, default: 0), Field("ssl", .boolean, default: false),
                Field("ssl_verify", .boolean, default: false), Field("server_name", .string, custom: Validators.sni),
            ])),
        ]),
        "proxy-cache": PluginDef(priority: 100, config: [
            Field("response_code", .array(.element(.integer, between: (100, 900))), required: true, default: [200, 301, 404],
                  lenMin: 1),
            Field("request_method", .array(.element(.string, oneOf: ["HEAD", "GET", "POST", "PATCH", "PUT"])),
                  required: true, default: ["GET", "HEAD"]),
            Field("content_type", .array(.element(.string)), required: true, default: ["text/plain", "application/json"]),
            Field("cache_ttl", .integer, default: 300, greaterThan: 0),
            Field("strategy", .string, required: true, oneOf: ["memory"]),
            Field("cache_control", .boolean, required: true, default: false),
            Field("ignore_uri_case", .boolean, default: false),
            Field("storage_ttl", .integer),
            Field("memory", .record([Field("dictionary_name", .string, required: true, default: "kong_db_cache")])),
            Field("vary_query_params", .array(.element(.string))),
            Field("vary_headers", .array(.element(.string))),
            Field("response_headers", .record([
                Field("age", .boolean, required: true, default: true),
                Field("X-Cache-Status", .boolean, required: true, default: true),
                Field("X-Cache-Key", .boolean, required: true, default: true),
            ])),
        ]),
        "cors": PluginDef(priority: 2000, config: [
            Field("origins", .array(.element(.string))),
            Field("headers", .array(.element(.string))),
            Field("exposed_headers", .array(.element(.string))),
            Field("methods", .array(.element(.string, oneOf: ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS",
                                                              "TRACE", "CONNECT"])),
                  default: ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"]),
            Field("max_age", .number),
            Field("credentials", .boolean, required: true, default: false),
            Field("private_network", .boolean, required: true, default: false),
            Field("preflight_continue", .boolean, required: true, default: false),
            Field("allow_origin_absent", .boolean, required: true, default: true),
        ]),
        "request-size-limiting": PluginDef(priority: 951, config: [
            Field("allowed_payload_size", .integer, required: true, default: 128),
            Field("size_unit", .string, required: true, default: "megabytes", oneOf: ["megabytes", "kilobytes", "bytes"]),
            Field("require_content_length", .boolean, required: true, default: false),
        ]),
        "request-transformer": PluginDef(priority: 801, config: TransformerSchemas.requestTransformer),
        "response-transformer": PluginDef(priority: 800, config: TransformerSchemas.responseTransformer),
        "file-log": PluginDef(priority: 9, config: LogSchemas.fileLog),
        "tcp-log": PluginDef(priority: 7, config: LogSchemas.tcpLog),
        "udp-log": PluginDef(priority: 8, config: LogSchemas.udpLog),
        "http-log": PluginDef(priority: 12, config: LogSchemas.httpLog),
    ].merging(AccessControlSchemas.plugins) { a, _ in a }.merging(MetricsSchemas.plugins) { a, _ in a }

    /// The plugin schema with the `config` record of `name` (or an empty record for unknown names).
    static func pluginFields(_ name: String?) -> [Field] {
        let cfg = name.flatMap { plugins[$0]?.config } ?? []
        return plugin.fields.map { f in
            f.name == "config" ? Field("config", .record(cfg)) : f
        }
    }
}

extension Character {
    var isASCIIDigitChar: Bool { isASCII && isNumber }
}
