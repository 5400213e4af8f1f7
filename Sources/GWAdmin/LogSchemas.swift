// Config schemas of the logging plugins (Kong 3.10 `kong/plugins/{file,tcp,udp,http}-log/schema.lua`,
// `kong/tools/queue_schema.lua`): fields, defaults and Kong's messages ("not a valid filename"). What
// the worker cannot do is refused with a 400 field error (`check`): `custom_fields_by_lua` (no Lua),
// tcp-log `tls` / `tls_sni` (no TLS yet), host names in `host` / `http_endpoint` (the worker has no
// resolver of its own: IP literals and `localhost` only), https endpoints.
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

    static let names: Set<String> = ["file-log", "tcp-log", "udp-log", "http-log"]

    /// A host the worker can reach without a resolver.
    static func reachable(_ host: String) -> Bool {
        if host == "localhost" { return true }
        guard let hp = Validators.parseHostPort(host) else { return false }
        return hp.kind != .name
    }

    /// Refusals of values the worker would not honour.
    static func check(_ name: String, _ cfg: JSONObject, _ e: inout Errors) {
        guard names.contains(name) else { return }
        if case .object(let code)? = cfg["custom_fields_by_lua"], !code.isEmpty {
            e.set(["config", "custom_fields_by_lua"], .string("custom_fields_by_lua is not supported by this gateway (no Lua)"))
        }
        if name == "tcp-log" || name == "udp-log", let h = cfg["host"]?.stringValue, Validators.parseHostPort(h) != nil, !reachable(h) {
            e.set(["config", "host"], .string("host names are not supported by this gateway yet; use an IP address or localhost"))
        }
        if name == "tcp-log" {
            if cfg["tls"]?.boolValue == true {
                e.set(["config", "tls"], .string("tls is not supported by this gateway yet"))
            }
            if let sni = cfg["tls_sni"], !sni.isNull {
                e.set(["config", "tls_sni"], .string("tls_sni is not supported by this gateway yet (no tls)"))
            }
        }
    }
}
