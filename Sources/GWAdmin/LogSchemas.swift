// Config schemas of the logging plugins (Kong 3.10 `kong/plugins/{file,tcp,udp,http}-log/schema.lua`,
// `kong/tools/queue_schema.lua`): fields, defaults and Kong's messages ("not a valid filename"). What
// the worker cannot do is refused with a 400 field error (`check`): `custom_fields_by_lua` (no Lua).
// Host names are accepted (the master resolves them for the workers, GWPlugins/LogHosts.swift), and
// TLS: tcp-log `tls` / `tls_sni`, http-log https endpoints (not verified, as Kong's loggers).
import GWJSON

enum LogSchemas {
    static let luaCode = Field("custom_fields_by_lua", .map(.element(.string)))
    static let host = Field("host", .string, required: true, custom: Validators.host)
    static let port = Field("port", .integer, required: true, between: (0, 65535))

    /// file-log's path: `^[^%s*&%%\`][^*&%%\`]*[^%s*&%%\`]$` (Lua pattern).
    static let filename: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        let b = Array(s.utf8)
        func bad(_ c: UInt8) -> Bool { c == 0x2A || c == 0x26 || c == 0x25 || c == 0x5C || c == 0x60 }
        func space(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }
        guard b.count >= 2, !bad(b[0]), !space(b[0]), !bad(b[b.count - 1]), !space(b[b.count - 1]),
              !b.contains(where: bad) else { return "not a valid filename" }
        return nil
    }

    static let fileLog: [Field] = [
        Field("path", .string, required: true, custom: filename),
        Field("reopen", .boolean, required: true, default: false),
        luaCode,
    ]
    static let tcpLog: [Field] = [
        host, port,
        Field("timeout", .number, default: 10000),
        Field("keepalive", .number, default: 60000),
        Field("tls", .boolean, required: true, default: false),
        Field("tls_sni", .string),
        luaCode,
    ]
    static let udpLog: [Field] = [
        host, port,
        Field("timeout", .number, default: 10000),
        luaCode,
    ]

    /// typedefs.url: "missing scheme in url" / "missing host in url" (socket.url's parse).
    static let url: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        guard let (scheme, rest) = splitScheme(s), !scheme.isEmpty,
              scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }) else { return "missing scheme in url" }
        var authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.isEmpty || authority.hasPrefix(":") { return "missing host in url" }
        return nil
    }

    /// "scheme://rest" → (scheme, rest).
    static func splitScheme(_ s: String) -> (Substring, Substring)? {
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == ":", s[s.index(after: i)...].hasPrefix("//") {
                return (s[..<i], s[s.index(i, offsetBy: 3)...])
            }
            i = s.index(after: i)
        }
        return nil
    }

    static let queue = Field("queue", .record([
        Field("max_batch_size", .integer, required: true, default: 1, between: (1, 1_000_000)),
        Field("max_coalescing_delay", .number, required: true, default: 1, between: (0, 3600)),
        Field("max_entries", .integer, required: true, default: 10000, between: (1, 1_000_000)),
        Field("max_bytes", .integer),
        Field("max_retry_time", .number, required: true, default: 60),
        Field("initial_retry_delay", .number, required: true, default: 0.01, between: (0.001, 1_000_000)),
        Field("max_retry_delay", .number, required: true, default: 60, between: (0.001, 1_000_000)),
        Field("concurrency_limit", .integer, required: true, default: 1, oneOfInts: [-1, 1]),
    ]))

    static let httpLog: [Field] = [
        Field("http_endpoint", .string, required: true, custom: url),
        Field("method", .string, default: "POST", oneOf: ["POST", "PUT", "PATCH"]),
        Field("content_type", .string, default: "application/json", oneOf: ["application/json", "application/json; charset=utf-8"]),
        Field("timeout", .number, default: 10000),
        Field("keepalive", .number, default: 60000),
        Field("retry_count", .integer),
        Field("queue_size", .integer),
        Field("flush_timeout", .number),
        Field("headers", .map(.element(.string))),
        queue,
        luaCode,
    ]

    static let names: Set<String> = ["file-log", "tcp-log", "udp-log", "http-log"]

    /// Refusals of values the worker would not honour.
    static func check(_ name: String, _ cfg: JSONObject, _ e: inout Errors) {
        guard names.contains(name) else { return }
        if case .object(let code)? = cfg["custom_fields_by_lua"], !code.isEmpty {
            e.set(["config", "custom_fields_by_lua"], .string("custom_fields_by_lua is not supported by this gateway (no Lua)"))
        }
        if name == "http-log" { httpLogChecks(cfg, &e) }
    }

    static func httpLogChecks(_ cfg: JSONObject, _ e: inout Errors) {
        guard let endpoint = cfg["http_endpoint"]?.stringValue, url(.string(endpoint)) == nil else { return }
        guard let (sch, rest) = splitScheme(endpoint) else { return }
        let scheme = sch.lowercased()
        var authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let userinfo = authority.contains("@")
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host = String(authority)
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            host = String(host[...close])
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        if case .object(let hs)? = cfg["headers"] {
            for k in hs.keys.sorted() {
                let l = k.lowercased()
                if !TransformerSchemas.validHeaderName(k) {
                    e.set(["config", "headers"], .string("bad header name '\(k)', allowed characters are A-Z, a-z, 0-9, '_', and '-'"))
                } else if l == "host" {
                    e.set(["config", "headers"], .string("cannot contain 'Host' header"))
                } else if l == "content-length" {
                    e.set(["config", "headers"], .string("cannot contain 'Content-Length' header"))
                } else if l == "content-type" {
                    e.set(["config", "headers"], .string("cannot contain 'Content-Type' header"))
                } else if l == "authorization" && userinfo {
                    e.set(["config"], .string("specifying both an 'Authorization' header and user info in 'http_endpoint' is not allowed"))
                }
            }
        }
        if scheme != "http" && scheme != "https" {
            e.set(["config", "http_endpoint"], .string("unsupported scheme '\(scheme)' (http and https only)"))
        } else if Validators.parseHostPort(host) == nil {
            e.set(["config", "http_endpoint"], .string("invalid host: \(host)"))
        }
    }
}
