// Config schemas of request-transformer and response-transformer (Kong 3.10
// `kong/plugins/request-transformer/schema.lua`, `kong/plugins/response-transformer/schema.lua`): fields,
// defaults and Kong's messages ("invalid value: …" for `^[^:]+:.*$`, "'…' is not a valid header",
// "key '…' has no value"). What the runtime cannot do yet is refused in EntityOps' entityChecks.
import GWJSON
import GWPlugins

enum TransformerSchemas {
    /// Kong's `name:value` split (`^([^:]+):*(.-)$`).
    static func split(_ s: String) -> (name: String, value: String)? {
        guard let colon = s.firstIndex(of: ":") else { return s.isEmpty ? nil : (s, "") }
        guard colon != s.startIndex else { return nil }
        var v = colon
        while v < s.endIndex, s[v] == ":" { v = s.index(after: v) }
        return (String(s[..<colon]), String(s[v...]))
    }

    /// kong.tools.http.validate_header_name: `^[a-zA-Z0-9-_]+$`.
    static func validHeaderName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
    }

    static let colonMatch: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        guard let colon = s.firstIndex(of: ":"), colon != s.startIndex else { return "invalid value: \(s)" }
        return nil
    }

    /// validate_headers (name only).
    static let headerEntry: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        let name = split(s)?.name ?? s
        return validHeaderName(name) ? nil : "'\(name)' is not a valid header"
    }

    /// `^[^:]+:.*$` then validate_headers (name, and the value when `value` is set: rename).
    static func colonHeader(value: Bool) -> @Sendable (JSON) -> String? {
        { v in
            guard let s = v.stringValue else { return nil }
            if let err = colonMatch(v) { return err }
            guard let (n, val) = split(s) else { return "invalid value: \(s)" }
            if !validHeaderName(n) { return "'\(n)' is not a valid header" }
            if value && !validHeaderName(val) { return "'\(val)' is not a valid header" }
            return nil
        }
    }

    /// request-transformer's check_for_value (the template part is checked in entityChecks).
    static let checkForValue: @Sendable (JSON) -> String? = { v in
        guard let s = v.stringValue else { return nil }
        guard let (n, val) = split(s), !val.isEmpty else { return "key '\(split(s)?.name ?? s)' has no value" }
        _ = n
        return nil
    }

    static func array(_ custom: (@Sendable (JSON) -> String?)? = nil, oneOf: [String]? = nil) -> FType {
        .array(.element(.string, oneOf: oneOf, custom: custom))
    }
    static func list(_ name: String, _ t: FType) -> Field { Field(name, t, required: true, default: []) }

    static let requestTransformer: [Field] = {
        func colonRecord(rename: Bool, uri: Bool) -> FType {
            var f = [list("body", array(checkForValue)),
                     list("headers", array(colonHeader(value: rename))),
                     list("querystring", array(checkForValue))]
            if uri { f.append(Field("uri", .string)) }
            return .record(f)
        }
        return [
            Field("http_method", .string, custom: { v in
                guard let s = v.stringValue else { return nil }
                return !s.isEmpty && s.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) ? nil : "invalid value: \(s)"
            }),
            Field("remove", .record([list("body", array()), list("headers", array(headerEntry)), list("querystring", array())])),
            Field("rename", colonRecord(rename: true, uri: false)),
            Field("replace", colonRecord(rename: false, uri: true)),
            Field("add", colonRecord(rename: false, uri: false)),
            Field("append", colonRecord(rename: false, uri: false)),
        ]
    }()

    static let responseTransformer: [Field] = {
        let colonRecord = FType.record([
            list("json", array(colonMatch)),
            list("json_types", array(oneOf: ["boolean", "number", "string"])),
            list("headers", array(colonMatch)),
        ])
        return [
            Field("remove", .record([list("json", array()), list("headers", array())])),
            Field("rename", .record([list("json", array(colonMatch)), list("headers", array(colonHeader(value: true)))])),
            Field("replace", colonRecord),
            Field("add", colonRecord),
            Field("append", colonRecord),
        ]
    }()

    /// Refusals of what the runtime does not do yet, and of templates it cannot render.
    static func check(_ name: String, _ cfg: JSONObject, _ e: inout Errors) {
        if name == "request-transformer" {
            for section in ["remove", "rename", "replace", "add", "append"] {
                guard let sec = cfg[section]?.objectValue else { continue }
                for field in ["headers", "querystring", "body"] {
                    guard let entries = sec[field]?.arrayValue else { continue }
                    for entry in entries {
                        guard let s = entry.stringValue, let (_, value) = split(s), !value.isEmpty,
                              let bad = TransformTemplate(value).unsupported else { continue }
                        e.set(["config", section, field], .string(unsupported(value, bad)))
                        break
                    }
                }
            }
            if let uri = cfg["replace"]?["uri"]?.stringValue, let bad = TransformTemplate(uri).unsupported {
                e.set(["config", "replace", "uri"], .string(unsupported(uri, bad)))
            }
        }
    }

    static func unsupported(_ value: String, _ expr: String) -> String {
        "value '\(value)' is not in supported format, error:template expression '\(expr)' is not supported by this gateway (\(TransformTemplate.supportedForms))"
    }
}
