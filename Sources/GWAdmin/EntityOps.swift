// Entity write pipeline: form coercion, shorthands, defaults / PATCH merge, auto fields, schema validation,
// entity checks, foreign-key resolution and uniqueness (KONG.md §1, §2.6).
import GWJSON
import GWPlugins

enum WriteMode { case insert, upsert, update }

/// (status, body) failure of an entity operation.
struct OpFailure: Error { let status: Int; let body: JSON
    init(_ r: (Int, JSON)) { status = r.0; body = r.1 }
}

extension AdminAPI {
    /// The config schema of plugin `name` if the data path runs it (`AdminContext.availablePlugins`), else nil.
    func pluginDef(_ name: String) -> Schemas.PluginDef? {
        context.availablePlugins.contains(name) ? Schemas.plugins[name] : nil
    }

    /// Plugins accepted by this Admin API, sorted.
    var enabledPlugins: [String] { Schemas.plugins.keys.filter { context.availablePlugins.contains($0) }.sorted() }

    func schemaFields(_ kind: EntityKind, pluginName: String?) -> [Field] {
        kind == .plugins ? Schemas.pluginFields(pluginName) : Schemas.of(kind).fields
    }

    /// Builds the full document to store. `input` is the request body (already decoded), `existing` the stored
    /// document for upsert/update. Throws OpFailure with Kong's error body.
    func prepare(_ kind: EntityKind, input rawInput: JSONObject, existing: JSON?, mode: WriteMode, form: Bool,
                 forcedID: String? = nil) throws(OpFailure) -> JSON {
        var input = rawInput
        let schema = Schemas.of(kind)
        var pluginName: String? = nil
        if kind == .plugins {
            pluginName = input["name"]?.stringValue ?? (mode == .update ? existing?["name"]?.stringValue : nil)
            if let n = pluginName, pluginDef(n) == nil {
                throw OpFailure(Kong.schemaViolation(field: "name",
                    "plugin '\(n)' not enabled; add it to the 'plugins' configuration property"))
            }
        }
        let fields = schemaFields(kind, pluginName: pluginName)
        let ttl = try credentialInput(kind, &input, mode: mode)
        if form {
            input = Schema.coerceRecord(input, fields)
            if kind == .services, case .string(let s)? = rawInput["url"], s.isEmpty { input["url"] = nil }
        }
        // Shorthands.
        if kind == .services, let url = input.removeValue(forKey: "url") {
            guard case .string(let s) = url else {
                throw OpFailure(Kong.schemaViolation(field: "url", "expected a string"))
            }
            for (k, v) in AdminAPI.parseServiceURL(s) { input[k] = v }
        }
        if kind == .upstreams { AdminAPI.applyUpstreamShorthands(&input) }
        if kind == .plugins && pluginName == "rate-limiting" { try AdminAPI.applyRateLimitingShorthands(&input) }
        if kind == .targets, let t = input["target"], case .string(let s) = t {
            guard let n = Validators.normalizeTarget(s) else {
                // kong/db/dao/targets.lua: insert's format_target has the bare message; PUT/PATCH (update_entity)
                // fail in the schema's validate_target, which names the value.
                throw OpFailure(Kong.schemaViolation(field: "target", mode == .insert
                    ? "Invalid target; not a valid hostname or ip address"
                    : "Invalid target ('\(s)'); not a valid hostname or ip address"))
            }
            input["target"] = .string(n)
        }
        // Immutable / auto fields from the input are not trusted on update.
        var doc: JSONObject
        switch mode {
        case .update:
            input["id"] = nil
            input["created_at"] = nil
            input["updated_at"] = nil
            doc = Schema.merge(existing?.objectValue ?? JSONObject(), input, fields)
        case .insert, .upsert:
            input["created_at"] = nil
            input["updated_at"] = nil
            if let forcedID { input["id"] = .string(forcedID) }
            if let existing, let id = existing["id"] { input["id"] = id }
            doc = Schema.fillDefaults(input, fields)
            if kind == .routes, rawInput["strip_path"] == nil, mode != .update,
               let p = doc["protocols"]?.stringArrayValue, p.contains(where: { $0 == "grpc" || $0 == "grpcs" }) {
                doc["strip_path"] = false
            }
        }
        // Auto fields.
        if doc["id"] == nil || doc["id"]!.isNull { doc["id"] = .string(UUID4.generate()) }
        let now: JSON = schema.msTimestamps ? .double(Clock.millisSeconds()) : .int(Clock.seconds())
        if mode == .insert || existing == nil {
            doc["created_at"] = now
        } else {
            doc["created_at"] = existing?["created_at"] ?? now
        }
        if !Credentials.isCredential(kind) { doc["updated_at"] = now }
        doc["expires_at"] = nil
        try resolveForeign(kind, &doc)
        CertificateSchemas.transform(kind, &doc)
        if kind == .plugins && pluginName == "rate-limiting" { AdminAPI.rateLimitingLegacyFields(&doc, add: false) }
        // Validate.
        var errs = Errors()
        var vfields = fields
        // auto fields are always valid
        vfields.removeAll { $0.auto }
        var check = doc
        check["created_at"] = nil
        check["updated_at"] = nil
        Schema.validateRecord(check, vfields, into: &errs)
        entityChecks(kind, doc, &errs)
        CertificateSchemas.check(kind, doc, &errs)
        if kind == .basicauthCredentials { AdminAPI.passwordTransformationCheck(input, existing: existing, mode: mode, &errs) }
        if !errs.isEmpty { throw OpFailure(Kong.schemaViolation(errs)) }
        // Foreign keys.
        for (f, parent) in schema.foreign {
            guard case .object(let ref)? = doc[f] else { continue }
            let key: JSON = .object(ref)
            var found: JSON? = nil
            if let id = ref["id"]?.stringValue {
                found = store.get(parent, id: id)
            } else if let ek = Schemas.of(parent).endpointKey, let v = ref[ek]?.stringValue {
                found = store.find(parent, field: ek, value: v)
            } else if let v = ref["name"]?.stringValue {
                found = store.find(parent, field: "name", value: v)
            }
            guard let found, let fid = found["id"] else {
                throw OpFailure(Kong.foreignKeyViolation(field: f, key: key, parent: parent))
            }
            doc[f] = ["id": fid]
        }
        credentialFinish(kind, &doc, input: input, ttl: ttl)
        if kind == .certificates { doc["snis"] = nil }   // transient: rows of `snis` (CertificateOps)
        if kind == .plugins { try checkPluginProtocols(doc) }
        if kind == .plugins && pluginName == "rate-limiting" { AdminAPI.rateLimitingLegacyFields(&doc, add: true) }
        let result = JSON.object(doc)
        try checkUnique(kind, result)
        return result
    }

    /// Kong's `resolve_foreign` (kong/db/dao/init.lua), before validation: a foreign reference without a valid
    /// primary key is looked up by each unique field of the parent it gives with a valid value, in schema
    /// order; found → `{id}`; not found → code 13 `foreign keys unresolved`.
    func resolveForeign(_ kind: EntityKind, _ doc: inout JSONObject) throws(OpFailure) {
        var unresolved: [(String, [(String, String)])] = []
        for (f, parent) in Schemas.of(kind).foreign {
            guard case .object(let ref)? = doc[f] else { continue }
            if let id = ref["id"]?.stringValue, UUID4.isValid(id) { continue }
            let parentFields = Schemas.of(parent).fields
            var errs: [(String, String)] = []
            for u in AdminAPI.uniqueFields(parent) {
                guard let v = ref[u], !v.isNull, let s = v.stringValue,
                      let uf = parentFields.first(where: { $0.name == u }), Schema.validate(v, uf) == nil else { continue }
                if let found = store.find(parent, field: u, value: s), let fid = found["id"] {
                    doc[f] = .object(JSONObject([("id", fid)]))
                    break
                }
                errs.append((u, "the foreign key cannot be resolved with '\(Kong.pretty(.object(JSONObject([(u, v)]))))' "
                                + "for an existing '\(parent.rawValue)' entity"))
            }
            if !errs.isEmpty { unresolved.append((f, errs)) }
        }
        if !unresolved.isEmpty { throw OpFailure(Kong.foreignKeysUnresolved(unresolved)) }
    }

    /// The parent's unique (or endpoint-key) fields, in Kong's schema order.
    static func uniqueFields(_ kind: EntityKind) -> [String] {
        switch kind {
        case .services, .routes, .upstreams: ["name"]
        case .consumers: ["username", "custom_id"]
        default: []
        }
    }

    /// Kong's `check_protocols_match` (kong/db/dao/plugins.lua): a plugin's protocols must overlap its
    /// route's, and, scoped to a service, those of at least one route of that service (a service without
    /// routes accepts any).
    func checkPluginProtocols(_ doc: JSONObject) throws(OpFailure) {
        guard let protocols = doc["protocols"]?.arrayValue?.compactMap(\.stringValue) else { return }
        let mine = Set(protocols)
        func overlaps(_ route: JSON) -> Bool {
            let theirs = route["protocols"]?.arrayValue?.compactMap(\.stringValue) ?? ["http", "https"]
            return theirs.contains { mine.contains($0) }
        }
        if let rid = doc["route"]?["id"]?.stringValue, let route = store.get(.routes, id: rid), !overlaps(route) {
            throw OpFailure(Kong.schemaViolation(field: "protocols", "must match the associated route's protocols"))
        }
        if let sid = doc["service"]?["id"]?.stringValue {
            let routes = store.referencing(.routes, field: "service", id: sid)
            if !routes.isEmpty && !routes.contains(where: overlaps) {
                throw OpFailure(Kong.schemaViolation(field: "protocols",
                                                     "must match the protocols of at least one route pointing to this Plugin's service"))
            }
        }
    }

    func checkUnique(_ kind: EntityKind, _ doc: JSON) throws(OpFailure) {
        let id = doc["id"]?.stringValue ?? ""
        let now = Int(Clock.seconds())
        func clash(_ field: String) throws(OpFailure) {
            guard let v = doc[field]?.stringValue else { return }
            if let other = store.find(kind, field: field, value: v), other["id"]?.stringValue != id,
               !Credentials.isExpired(kind, other, now: now) {
                throw OpFailure(Kong.unique(.object(JSONObject([(field, .string(v))]))))
            }
        }
        switch kind {
        case .services, .routes, .upstreams: try clash("name")
        case .consumers: try clash("username"); try clash("custom_id")
        case .keyauthCredentials: try clash("key")
        case .basicauthCredentials: try clash("username")
        case .snis: try clash("name")
        case .caCertificates: try clash("cert_digest")
        case .certificates: break
        case .acls:
            let c = doc["consumer"]?["id"]?.stringValue ?? "", g = doc["group"]?.stringValue ?? ""
            if let other = store.findByCacheKey(.acls, AdminStore.aclCacheKey(consumerID: c, group: g)),
               other["id"]?.stringValue != id {
                throw OpFailure(Kong.unique(["consumer": ["id": .string(c)], "group": .string(g)]))
            }
        case .targets:
            let up = doc["upstream"]?["id"]?.stringValue ?? ""
            let t = doc["target"]?.stringValue ?? ""
            if let other = store.findByCacheKey(.targets, AdminStore.targetCacheKey(upstreamID: up, target: t)),
               other["id"]?.stringValue != id {
                throw OpFailure(Kong.unique(["target": .string(t), "upstream": ["id": .string(up)]]))
            }
        case .plugins:
            try clash("instance_name")
            let key = AdminStore.pluginCacheKey(doc)
            if let other = store.findByCacheKey(.plugins, key), other["id"]?.stringValue != id {
                func ref(_ f: String) -> JSON { doc[f].flatMap { $0.isNull ? nil : ["id": $0["id"] ?? .null] } ?? .null }
                throw OpFailure(Kong.unique(["consumer": ref("consumer"), "name": doc["name"] ?? .null,
                                             "route": ref("route"), "service": ref("service")]))
            }
        }
    }

    // MARK: shorthands

    /// LuaSocket-like `url.parse` for the services `url` shorthand.
    static func parseServiceURL(_ s: String) -> [(String, JSON)] {
        var scheme: String? = nil
        var rest = Substring(s)
        if let r = s.firstRange(of: "://") {
            scheme = String(s[..<r.lowerBound]).lowercased()
            rest = s[r.upperBound...]
        } else {
            // No authority: everything is a path (so "invalid url" yields host missing + bad path).
            return [("protocol", "http"), ("host", .null), ("port", 80), ("path", .string(s))]
        }
        var authority = rest
        var path: String? = nil
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            authority = rest[..<slash]
            let p = rest[slash...]
            let cut = p.firstIndex(where: { $0 == "?" || $0 == "#" }) ?? p.endIndex
            path = p[..<cut].isEmpty ? nil : String(p[..<cut])
        }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host: String? = nil
        var port: Int? = nil
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[...close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { port = Int(after.dropFirst()) }
        } else if let c = authority.lastIndex(of: ":") {
            host = String(authority[..<c])
            port = Int(authority[authority.index(after: c)...])
        } else if !authority.isEmpty {
            host = String(authority)
        }
        if let h = host, h.isEmpty { host = nil }
        let proto = scheme ?? (port == 443 ? "https" : "http")
        let finalPort = port ?? (proto == "https" ? 443 : 80)
        return [("protocol", .string(proto)), ("host", JSON(host)), ("port", JSON(finalPort)), ("path", JSON(path))]
    }

    static func applyUpstreamShorthands(_ input: inout JSONObject) {
        if let h = input["hash_on"]?.stringValue {
            if h == "none" {
                if input["algorithm"] == nil { input["algorithm"] = "round-robin" }
            } else {
                input["algorithm"] = "consistent-hashing"
            }
        }
        if let a = input["algorithm"]?.stringValue, a == "least-connections" || a == "latency" {
            input["hash_on"] = "none"
        }
    }

    // MARK: entity checks

    /// Protocols the data path proxies (HTTP/1.x over TCP or TLS).
    static let proxiedProtocols: Set<String> = ["http", "https"]
    /// Kong's stream-subsystem protocols.
    static let streamProtocols: Set<String> = ["tcp", "tls", "tls_passthrough", "udp"]
    static func unsupportedProtocol(_ p: String) -> String {
        "protocol '\(p)' is not supported by this gateway yet (only 'http' and 'https' are proxied)"
    }

    func entityChecks(_ kind: EntityKind, _ d: JSONObject, _ e: inout Errors) {
        func str(_ k: String) -> String? { d[k]?.stringValue }
        func isSet(_ k: String) -> Bool {
            guard let v = d[k], !v.isNull else { return false }
            if let a = v.arrayValue { return !a.isEmpty }
            if let o = v.objectValue { return !o.isEmpty }
            return true
        }
        switch kind {
        case .services:
            let proto = str("protocol") ?? "http"
            let conditional = "failed conditional validation given value of field 'protocol'"
            if ["tcp", "tls", "udp", "grpc", "grpcs"].contains(proto), isSet("path") {
                e.field("path", "value must be null"); e.addEntity(conditional)
            }
            if !["https", "tls"].contains(proto) {
                for f in ["client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates"] where isSet(f) {
                    e.field(f, "value must be null"); e.addEntity(conditional)
                }
            } else if let cas = d["ca_certificates"]?.stringArrayValue {
                // The trust store is built from these rows: one that does not exist could verify nothing.
                for id in cas where UUID4.isValid(id) && store.get(.caCertificates, id: id.lowercased()) == nil {
                    e.field("ca_certificates", "ca certificate \(id) does not exist")
                    break
                }
            }
            // Refused rather than stored and skipped: the data path proxies HTTP/1.1 over TCP or TLS only
            // (no gRPC framing, no stream proxy), so such a service could never be reached as configured.
            if !Self.proxiedProtocols.contains(proto), Validators.protocols.contains(proto) {
                e.field("protocol", Self.unsupportedProtocol(proto))
            }
        case .routes:
            guard let protos = d["protocols"]?.stringArrayValue, !protos.isEmpty else { return }
            let groups: [[String]] = [["http", "https"], ["tcp", "tls", "udp"], ["tls_passthrough"], ["grpc", "grpcs"]]
            let used = groups.filter { g in protos.contains { g.contains($0) } }
            if used.count > 1 {
                e.field("protocols", "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp'), ('tls_passthrough'), ('grpc', 'grpcs')")
                return
            }
            if let p = protos.first(where: { !Self.proxiedProtocols.contains($0) && Validators.protocols.contains($0) }) {
                e.field("protocols", Self.unsupportedProtocol(p))
            }
            let ps = Set(protos)
            if isSet("snis") && ps.isDisjoint(with: ["grpcs", "https", "tls", "tls_passthrough"]) {
                e.field("snis", "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'")
            }
            if case .object(let h)? = d["headers"], h.keys.contains(where: { $0.lowercased() == "host" }) {
                e.field("headers", "cannot contain 'host' header, which must be specified in the 'hosts' attribute")
            }
            let group = used.first ?? groups[0]
            func quoted(_ xs: [String]) -> String { xs.map { "'\($0)'" }.joined(separator: ", ") }
            if group == groups[0] {
                for f in ["sources", "destinations"] where isSet(f) {
                    e.field(f, "cannot set '\(f)' when 'protocols' is 'http' or 'https'")
                }
                var need = ["methods", "hosts", "headers", "paths"]
                if ps.contains("https") { need.append("snis") }
                if !need.contains(where: isSet) {
                    let p = ps.contains("https") ? "https" : "http"
                    e.addEntity("must set one of \(quoted(need)) when 'protocols' is '\(p)'")
                }
            } else if group == groups[1] || group == groups[2] {
                for f in ["methods", "hosts", "paths", "headers"] where isSet(f) {
                    e.field(f, "cannot set '\(f)' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'")
                }
            }
            if group == groups[0] {
            } else if group == groups[1] {
                if !["sources", "destinations", "snis"].contains(where: isSet) {
                    e.addEntity("must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'")
                }
            } else if group == groups[2] {
                if !isSet("snis") { e.addEntity("must set snis when 'protocols' is 'tls_passthrough'") }
            } else {
                for f in ["methods", "sources", "destinations"] where isSet(f) {
                    e.field(f, "cannot set '\(f)' when 'protocols' is 'grpc' or 'grpcs'")
                }
                if d["strip_path"]?.boolValue == true {
                    e.field("strip_path", "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'")
                }
                var need = ["hosts", "headers", "paths"]
                if ps.contains("grpcs") { need.append("snis") }
                if !need.contains(where: isSet) {
                    let p = ps.contains("grpcs") ? "grpcs" : "grpc"
                    e.addEntity("must set one of \(quoted(need)) when 'protocols' is '\(p)'")
                }
            }
        case .upstreams:
            let on = str("hash_on") ?? "none"
            let fb = str("hash_fallback") ?? "none"
            let allowedFallback: [String: [String]] = [
                "none": ["none"], "cookie": ["none"],
                "consumer": ["none", "ip", "header", "cookie", "path", "query_arg", "uri_capture"],
                "ip": ["none", "consumer", "header", "cookie", "path", "query_arg", "uri_capture"],
                "path": ["none", "consumer", "ip", "header", "cookie", "query_arg", "uri_capture"],
            ]
            func conditional(_ ifField: String, _ field: String, _ msg: String) {
                e.field(field, msg)
                e.addEntity("failed conditional validation given value of field '\(ifField)'")
            }
            if on == "header" && !isSet("hash_on_header") { conditional("hash_on", "hash_on_header", "required field missing") }
            if fb == "header" && !isSet("hash_fallback_header") { conditional("hash_fallback", "hash_fallback_header", "required field missing") }
            if on == "cookie" && !isSet("hash_on_cookie") { conditional("hash_on", "hash_on_cookie", "required field missing") }
            else if fb == "cookie" && !isSet("hash_on_cookie") { conditional("hash_fallback", "hash_on_cookie", "required field missing") }
            if on == "query_arg" && !isSet("hash_on_query_arg") { conditional("hash_on", "hash_on_query_arg", "required field missing") }
            if fb == "query_arg" && !isSet("hash_fallback_query_arg") { conditional("hash_fallback", "hash_fallback_query_arg", "required field missing") }
            if on == "uri_capture" && !isSet("hash_on_uri_capture") { conditional("hash_on", "hash_on_uri_capture", "required field missing") }
            if fb == "uri_capture" && !isSet("hash_fallback_uri_capture") { conditional("hash_fallback", "hash_fallback_uri_capture", "required field missing") }
            if let allowed = allowedFallback[on], !allowed.contains(fb) {
                conditional("hash_on", "hash_fallback", "expected one of: " + allowed.joined(separator: ", "))
            }
            for (a, b) in [("hash_on_header", "hash_fallback_header"), ("hash_on_query_arg", "hash_fallback_query_arg"),
                           ("hash_on_uri_capture", "hash_fallback_uri_capture")] {
                if let x = str(a), let y = str(b), x.lowercased() == y.lowercased() {
                    e.addEntity("values of these fields must be distinct: '\(a)', '\(b)'")
                }
            }
        case .consumers:
            if !isSet("username") && !isSet("custom_id") {
                e.addEntity("at least one of these fields must be non-empty: 'custom_id', 'username'")
            }
        case .plugins:
            // Kong runs a plugin on HTTP traffic when one of its protocols belongs to the http subsystem
            // (grpc, grpcs, http, https); a stream protocol would only ever apply to stream traffic,
            // which this gateway does not proxy.
            if let protos = d["protocols"]?.stringArrayValue,
               let p = protos.first(where: { Self.streamProtocols.contains($0) }) {
                e.field("protocols", Self.unsupportedProtocol(p))
            }
            guard let name = str("name"), case .object(let cfg)? = d["config"] else { return }
            // typedefs.no_consumer (KONG-PLUGINS.md §1.3).
            if ["key-auth", "basic-auth", "acl", "cors", "bot-detection"].contains(name), isSet("consumer") {
                e.field("consumer", "value must be null")
            }
            if name == "acl" { AdminAPI.aclConfigChecks(cfg, &e) }
            if name == "rate-limiting" {
                let vals = Schemas.periods.map { (p: $0, v: cfg[$0]?.doubleValue) }
                if vals.allSatisfy({ $0.v == nil }) {
                    e.addEntity("at least one of these fields must be non-empty: " +
                                Schemas.periods.map { "'config.\($0)'" }.joined(separator: ", "))
                } else {
                    let present = vals.compactMap { x in x.v.map { (x.p, $0) } }
                    outer: for i in 0..<present.count {
                        for j in (i + 1)..<present.count where present[j].1 < present[i].1 {
                            func f(_ d: Double) -> String {
                                let r = (d * 10).rounded() / 10
                                return r == r.rounded() ? "\(Int64(r)).0" : "\(r)"
                            }
                            e.set(["config"], .string("The limit for \(present[j].0)(\(f(present[j].1))) cannot be lower than the limit for \(present[i].0)(\(f(present[i].1)))"))
                            break outer
                        }
                    }
                }
                if cfg["policy"]?.stringValue == "redis", cfg["redis"]?["host"]?.stringValue == nil {
                    e.set(["config", "redis", "host"], .string("required field missing"))
                    e.addEntity("failed conditional validation given value of field 'config.policy'")
                }
                if cfg["limit_by"]?.stringValue == "header", cfg["header_name"]?.stringValue == nil {
                    e.set(["config", "header_name"], .string("required field missing"))
                    e.addEntity("failed conditional validation given value of field 'config.limit_by'")
                }
                if cfg["limit_by"]?.stringValue == "path", cfg["path"]?.stringValue == nil {
                    e.set(["config", "path"], .string("required field missing"))
                    e.addEntity("failed conditional validation given value of field 'config.limit_by'")
                }
                AdminAPI.rateLimitingPolicyChecks(cfg, &e, databaseOff: context.databaseOff, sharedDatabase: context.sharedDatabase)   // RateLimitingSchema.swift
            }
            if name == "cors", case .array(let origins)? = cfg["origins"] {
                // Kong's validate_asterisk_or_regex: "*" or a regex PCRE compiles.
                var errs: [JSON] = []
                for (i, o) in origins.enumerated() {
                    guard let v = o.stringValue, v != "*" else { continue }
                    if Regex.compile(v).0 == nil {
                        while errs.count < i { errs.append(.null) }
                        errs.append(.string("'\(v)' is not a valid regex"))
                    }
                }
                if !errs.isEmpty { e.set(["config", "origins"], .array(errs)) }
            }
            if name == "proxy-cache", let dict = cfg["memory"]?["dictionary_name"]?.stringValue, dict != "kong_db_cache" {
                // One node-wide store (proxy_cache_size); Kong answers an unknown dictionary the same way.
                e.set(["config", "memory", "dictionary_name"], .string("missing shared dict '\(dict)'"))
            }
            TransformerSchemas.check(name, cfg, &e)
            AccessControlSchemas.check(name, cfg, &e)
            LogSchemas.check(name, cfg, &e)
        case .targets, .keyauthCredentials, .basicauthCredentials, .acls, .certificates, .snis, .caCertificates:
            break
        }
    }
}
