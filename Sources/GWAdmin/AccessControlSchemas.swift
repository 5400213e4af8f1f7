// Config schemas of ip-restriction, request-termination, bot-detection and correlation-id (Kong 3.10
// `kong/plugins/<name>/schema.lua`): fields, defaults and Kong's messages ("invalid ip or cidr range:
// '…'", "not a valid regex: …", request-termination's custom_validator, ip-restriction's
// at_least_one_of). Entity-level checks run from EntityOps' entityChecks (`check`).
import GWJSON
import GWPlugins

enum AccessControlSchemas {
    /// Kong's `is_regex` (`ngx.re.match("any string", value)` succeeds): PCRE2 compiles it.
    static let isRegex: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        return Regex.compile(s, utf: false).0 == nil ? "not a valid regex: \(s)" : nil
    }

    /// An HTTP header name we can write (RFC 9110 token); Kong's typedefs.header_name message.
    static let tokenHeaderName: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        let ok = !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
        return ok ? nil : "bad header name '\(s)', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    }

    static let plugins: [String: Schemas.PluginDef] = [
        "ip-restriction": Schemas.PluginDef(priority: 990, config: [
            Field("allow", .array(.element(.string, custom: Validators.ipOrCIDR))),
            Field("deny", .array(.element(.string, custom: Validators.ipOrCIDR))),
            Field("status", .number),
            Field("message", .string),
        ]),
        "request-termination": Schemas.PluginDef(priority: 2, config: [
            Field("status_code", .integer, required: true, default: 503, between: (100, 599)),
            Field("message", .string),
            Field("content_type", .string),
            Field("body", .string),
            Field("echo", .boolean, required: true, default: false),
            Field("trigger", .string, custom: Validators.headerName),
        ]),
        "bot-detection": Schemas.PluginDef(priority: 2500, config: [
            Field("allow", .array(.element(.string, custom: isRegex)), default: []),
            Field("deny", .array(.element(.string, custom: isRegex)), default: []),
        ]),
        "correlation-id": Schemas.PluginDef(priority: 100001, config: [
            Field("header_name", .string, default: "Kong-Request-ID", custom: tokenHeaderName),
            Field("generator", .string, required: true, default: "uuid#counter", oneOf: ["uuid", "uuid#counter", "tracker"]),
            Field("echo_downstream", .boolean, required: true, default: false),
        ]),
    ]

    /// Entity checks of these plugins (run after the field checks, on the config with defaults).
    static func check(_ name: String, _ cfg: JSONObject, _ e: inout Errors) {
        switch name {
        case "ip-restriction":
            // at_least_one_of: an empty array counts as empty.
            func nonEmpty(_ k: String) -> Bool {
                guard let v = cfg[k], !v.isNull else { return false }
                return v.arrayValue.map { !$0.isEmpty } ?? true
            }
            if !nonEmpty("allow") && !nonEmpty("deny") {
                e.addEntity("at least one of these fields must be non-empty: 'config.allow', 'config.deny'")
            }
        case "request-termination":
            func present(_ k: String) -> Bool { (cfg[k]?.stringValue).map { !$0.isEmpty } ?? false }
            if present("message") && (present("content_type") || present("body")) {
                e.set(["config"], .string("message cannot be used with content_type or body"))
            } else if present("content_type") && !present("body") {
                e.set(["config"], .string("content_type requires a body"))
            } else if cfg["echo"]?.boolValue == true && (present("content_type") || present("body")) {
                e.set(["config"], .string("echo cannot be used with content_type and body"))
            }
        default:
            break
        }
    }
}
