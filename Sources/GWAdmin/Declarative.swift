// Kong declarative configuration (KONG.md §6.4): parse (YAML via libyaml, YAML.swift, or JSON), validate through the same
// entity pipeline as the Admin API (in a scratch in-memory store), import (upsert) / load (replace) / export.
import GWJSON

/// An invalid declarative configuration; `fields` mirrors the document structure (code 14 body).
public struct DeclarativeError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var fields: JSON
    /// Kong's `flattened_errors` (POST /config?flatten_errors=1): one entry per invalid entity.
    public var flattened: [JSON] = []
    public init(_ message: String, fields: JSON = .object(JSONObject())) { self.message = message; self.fields = fields }
    public var description: String { message }
}

public enum DeclarativeFormat: Sendable { case yaml, json }

/// Result of validating a declarative document: the store operations and per-kind counts.
public struct DeclarativeResult {
    public var ops: [StoreOp]
    public var entities: [EntityKind: [JSON]]
}

extension AdminAPI {
    // MARK: parsing

    /// Parses JSON (when the text starts with `{`) or YAML into JSON.
    public static func parseDeclarativeText(_ bytes: [UInt8]) throws(DeclarativeError) -> JSON {
        let firstNonWS = bytes.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }
        if firstNonWS == nil { throw DeclarativeError("expected a declarative configuration") }
        if firstNonWS == UInt8(ascii: "{") {
            do { return try JSON.parse(bytes) } catch {
                throw DeclarativeError("failed parsing declarative configuration: \(error)")
            }
        }
        let doc: JSON?
        do { doc = try YAML.parse(bytes) } catch {
            throw DeclarativeError("failed parsing declarative configuration: \(error)")
        }
        guard let doc else { throw DeclarativeError("expected a declarative configuration") }
        return doc
    }

    public static func yamlString(_ v: JSON) -> String { YAML.emit(v) }

    // MARK: validation into ops

    static let topLevelKeys: Set<String> = ["_format_version", "_transform", "_comment", "_ignore", "_workspace",
                                            "services", "routes", "upstreams", "targets", "consumers", "plugins",
                                            "keyauth_credentials", "basicauth_credentials", "acls",
                                            "certificates", "snis", "ca_certificates"]

    /// Validates a declarative document. With `onto` = true the current store content is the starting point
    /// (db_import upsert semantics); otherwise the document describes the whole configuration.
    public func declarative(_ doc: JSON, onto: Bool) throws(DeclarativeError) -> DeclarativeResult {
        guard case .object(let top) = doc else { throw DeclarativeError("expected an object", fields: .null) }
        var topErrs = JSONObject()
        switch top["_format_version"] {
        case .string(let v)? where ["1.1", "2.1", "3.0"].contains(v): break
        case nil, .null?: topErrs["_format_version"] = "required field missing"
        case .string?: topErrs["_format_version"] = "expected one of: 1.1, 2.1, 3.0"
        default: topErrs["_format_version"] = "expected a string"
        }
        for (k, _) in top where !AdminAPI.topLevelKeys.contains(k) && !k.hasPrefix("_") { topErrs[k] = "unknown field" }
        if !topErrs.isEmpty {
            throw DeclarativeError("declarative config is invalid: \(Kong.pretty(.object(topErrs)))", fields: .object(topErrs))
        }
        let scratchStore: AdminStore
        do { scratchStore = try AdminStore(path: ":memory:") } catch { throw DeclarativeError(error.message) }
        scratchStore.mirrorOnly = true
        var scratchContext = AdminContext()
        scratchContext.availablePlugins = context.availablePlugins
        scratchContext.databaseOff = context.databaseOff         // rate-limiting's policy checks
        scratchContext.sharedDatabase = context.sharedDatabase
        let scratch = AdminAPI(store: scratchStore, context: scratchContext)
        // `_transform: false` (db_export's documents): passwords are already hashed (kong/db/declarative/import.lua).
        scratch.transformPasswords = top["_transform"]?.boolValue ?? true
        if onto {
            var seed: [StoreOp] = []
            for kind in EntityKind.allCases { for d in store.all(kind) { seed.append(.put(kind, d)) } }
            do { try scratchStore.write(seed) } catch { throw DeclarativeError(error.message) }
        }
        var b = DeclarativeBuilder(api: scratch)
        b.run(top)
        if !b.errors.isEmpty {
            let f = JSON.object(b.errors)
            var e = DeclarativeError("declarative config is invalid: \(Kong.pretty(f))", fields: f)
            e.flattened = b.flat
            throw e
        }
        var ents: [EntityKind: [JSON]] = [:]
        var ops: [StoreOp] = []
        for kind in EntityKind.allCases {
            let docs = b.touched[kind].map { ids in ids.compactMap { scratchStore.get(kind, id: $0) } } ?? []
            ents[kind] = docs
            for d in docs { ops.append(.put(kind, d)) }
        }
        if !onto {
            ops = []
            for kind in EntityKind.allCases { for d in scratchStore.all(kind) { ops.append(.put(kind, d)) } }
        }
        return DeclarativeResult(ops: ops, entities: ents)
    }

    /// `gateway config parse`: validates text; returns entity counts.
    public func parseDeclarative(_ bytes: [UInt8]) throws(DeclarativeError) -> [EntityKind: Int] {
        let r = try declarative(AdminAPI.parseDeclarativeText(bytes), onto: false)
        return r.entities.mapValues(\.count)
    }

    /// `gateway config db_import`: upserts the document's entities into the store (one transaction).
    @discardableResult
    public func dbImport(_ bytes: [UInt8]) throws(DeclarativeError) -> [EntityKind: Int] {
        let r = try declarative(AdminAPI.parseDeclarativeText(bytes), onto: true)
        do { try store.write(r.ops) } catch { throw DeclarativeError(error.message) }
        context.onChange()
        return r.entities.mapValues(\.count)
    }

    /// DB-less load / `POST /config`: replaces the whole configuration.
    @discardableResult
    public func loadDeclarative(_ doc: JSON) throws(DeclarativeError) -> DeclarativeResult {
        let r = try declarative(doc, onto: false)
        do { try store.replaceAll(with: r.ops) } catch { throw DeclarativeError(error.message) }
        configHash = AdminAPI.declarativeHash(doc)
        context.onChange()
        return r
    }

    public func loadDeclarative(bytes: [UInt8]) throws(DeclarativeError) {
        try loadDeclarative(AdminAPI.parseDeclarativeText(bytes))
    }

    /// `gateway config db_export`: the store as a declarative document (flat lists, foreign keys as ids, no nulls).
    public func exportDocument() -> JSON {
        let now = Int(Clock.seconds())
        func clean(_ v: JSON) -> JSON {
            switch v {
            case .object(let o):
                var out = JSONObject()
                for (k, e) in o where !e.isNull {
                    if case .object(let fo) = e, fo.count == 1, let id = fo["id"]?.stringValue,
                       ["service", "route", "consumer", "upstream", "certificate", "client_certificate"].contains(k) {
                        out[k] = .string(id)
                    } else {
                        out[k] = clean(e)
                    }
                }
                return .object(out)
            case .array(let a): return .array(a.map(clean))
            default: return v
            }
        }
        var o: JSONObject = ["_format_version": "3.0", "_transform": false]
        for kind in [EntityKind.certificates, .snis, .caCertificates, .services, .routes, .consumers, .keyauthCredentials, .basicauthCredentials, .acls,
                     .plugins, .upstreams, .targets] {
            let all = store.all(kind).filter { !Credentials.isExpired(kind, $0, now: now) }
                .map { Credentials.present(kind, $0, now: now) }
            if !all.isEmpty { o[kind.rawValue] = .array(all.map(clean)) }
        }
        return .object(o)
    }

    public func dbExport(format: DeclarativeFormat = .yaml) -> String {
        let doc = exportDocument()
        return format == .json ? doc.serializedString : AdminAPI.yamlString(doc)
    }

    // MARK: /config (DB-less only)

    /// 32 hex digits identifying a declarative document (keys sorted recursively, compact JSON, SHA-1 prefix).
    static func declarativeHash(_ doc: JSON) -> String {
        func canon(_ v: JSON) -> JSON {
            switch v {
            case .object(let o): return .object(JSONObject(o.sortedByKey().pairs.map { ($0.key, canon($0.value)) }))
            case .array(let a): return .array(a.map(canon))
            default: return v
            }
        }
        return SHA1.hash(canon(doc).serialized()).prefix(16).map { b in
            let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h
        }.joined()
    }

    func getConfig(_ req: Req) throws(OpFailure) -> Result {
        guard context.databaseOff else {
            throw OpFailure((400, ["message": "this endpoint is only available when Kong is configured to not use a database"]))
        }
        return (200, ["config": .string(AdminAPI.yamlString(exportDocument()))])
    }

    func postConfig(_ req: Req) throws(OpFailure) -> Result {
        guard context.databaseOff else {
            throw OpFailure((400, ["message": "this endpoint is only available when Kong is configured to not use a database"]))
        }
        let ct = (req.raw.headerValues("Content-Type").first ?? "").lowercased()
        var doc: JSON
        do throws(DeclarativeError) {
            if ct.hasPrefix("application/json") || ct.hasPrefix("application/x-www-form-urlencoded") || ct.hasPrefix("multipart/") {
                let o: JSONObject
                do { (o, _) = try body(req) } catch { throw DeclarativeError("expected a declarative configuration") }
                if let c = o["config"] {
                    guard let s = c.stringValue else { throw DeclarativeError("expected a declarative configuration") }
                    doc = try AdminAPI.parseDeclarativeText(Array(s.utf8))
                } else {
                    if o.isEmpty { throw DeclarativeError("expected a declarative configuration") }
                    doc = .object(o)
                }
            } else {
                doc = try AdminAPI.parseDeclarativeText(req.raw.body)
            }
            let wantHash = req.q("check_hash").map { $0 == "1" || $0 == "true" } ?? false
            let newHash = AdminAPI.declarativeHash(doc)
            if wantHash, newHash == configHash { return (304, .null) }
            let r = try declarative(doc, onto: false)
            do { try store.replaceAll(with: r.ops) } catch { throw DeclarativeError(error.message) }
            configHash = newHash
            context.onChange()
            var out = JSONObject()
            for kind in EntityKind.allCases {
                var m = JSONObject()
                for d in store.all(kind) { if let id = d["id"]?.stringValue { m[id] = present(kind, d) } }
                out[kind.rawValue] = .object(m)
            }
            return (201, .object(out))
        } catch {
            if error.message == "expected a declarative configuration" {
                throw OpFailure((400, ["message": "expected a declarative configuration"]))
            }
            var (status, body) = Kong.invalidDeclarative(error.fields, message: error.message)
            if let f = req.q("flatten_errors"), f == "1" || f == "true" { body["flattened_errors"] = .array(error.flattened) }
            throw OpFailure((status, body))
        }
    }
}

/// Walks a declarative document, inserting entities into a scratch AdminAPI in dependency order.
struct DeclarativeBuilder {
    let api: AdminAPI
    var errors = JSONObject()
    var touched: [EntityKind: [String]] = [:]
    var declaredIDs: [EntityKind: Set<String>] = [:]
    var declaredKeys: [EntityKind: Set<String>] = [:]
    var legacyFormat = false

    init(api: AdminAPI) { self.api = api }

    var flat: [JSON] = []

    mutating func setError(_ path: [String], _ err: JSON) {
        var e = Errors(); e.fields = errors; e.set(path, err); errors = e.fields
    }

    /// Records an entity error both in the nested `fields` and in Kong's flattened form.
    mutating func entityError(_ kind: EntityKind, _ entity: JSON, _ path: [String], _ err: JSON) {
        setError(path, err)
        var list: [JSON] = []
        func walk(_ prefix: String, _ v: JSON) {
            switch v {
            case .string(let m): list.append(["field": .string(prefix), "message": .string(m), "type": "field"])
            case .object(let o):
                for (k, x) in o.sortedByKey() {
                    if k == "@entity", case .array(let a) = x {
                        for m in a { list.append(["message": m, "type": "entity"]) }
                    } else {
                        walk(prefix.isEmpty ? k : "\(prefix).\(k)", x)
                    }
                }
            default: list.append(["field": .string(prefix), "message": .string(v.serializedString), "type": "field"])
            }
        }
        if case .string(let m) = err { list.append(["message": .string(m), "type": "entity"]) } else { walk("", err) }
        var entry: JSONObject = ["entity_type": .string(kind.singular), "entity": entity, "errors": .array(list)]
        let ek = Schemas.of(kind).endpointKey ?? "name"
        entry["entity_name"] = entity[ek] ?? .null
        entry["entity_id"] = entity["id"] ?? .null
        entry["entity_tags"] = entity["tags"] ?? .null
        flat.append(.object(entry))
    }

    static func ref(_ v: JSON?, keyField: String) -> JSON? {
        guard let v, !v.isNull else { return nil }
        if let s = v.stringValue { return UUID4.isValid(s) ? ["id": .string(s)] : .object(JSONObject([(keyField, .string(s))])) }
        return v
    }

    /// Deterministic id unless given; reuse the id of an existing entity with the same endpoint key.
    func idFor(_ kind: EntityKind, _ o: JSONObject, seed: String) -> String {
        if let id = o["id"]?.stringValue { return id }
        if let ek = Schemas.of(kind).endpointKey, kind != .targets, let v = o[ek]?.stringValue,
           let existing = api.store.find(kind, field: ek, value: v), let id = existing["id"]?.stringValue {
            return id
        }
        return UUID4.v5("\(kind.rawValue):\(seed)")
    }

    /// Inserts one entity; returns its id or nil (error recorded at `path`).
    mutating func add(_ kind: EntityKind, _ raw: JSON, path: [String], inject: [(String, JSON)], seed: String,
                      strip: [String]) -> String? {
        guard case .object(var o) = raw else { entityError(kind, raw, path, "expected a record"); return nil }
        for k in strip { o[k] = nil }
        o["_comment"] = nil
        o["_ignore"] = nil
        for (k, v) in inject { o[k] = v }
        switch kind {
        case .routes:
            if let r = DeclarativeBuilder.ref(o["service"], keyField: "name") { o["service"] = r }
            if legacyFormat, let paths = o["paths"]?.stringArrayValue {
                // _format_version 1.1 / 2.1: regex-looking paths get the "~" prefix (KONG.md §6.4).
                let special: Set<Character> = ["(", ")", "[", "]", "{", "}", "*", "+", "?", "^", "$", "|", "\\"]
                o["paths"] = JSON(paths.map { p in
                    !p.hasPrefix("~") && p.contains(where: special.contains) ? "~" + p : p
                })
            }
        case .targets: if let r = DeclarativeBuilder.ref(o["upstream"], keyField: "name") { o["upstream"] = r }
        case .snis: if let r = DeclarativeBuilder.ref(o["certificate"], keyField: "id") { o["certificate"] = r }
        case .services, .upstreams:
            if let r = DeclarativeBuilder.ref(o["client_certificate"], keyField: "id") { o["client_certificate"] = r }
        case .keyauthCredentials, .basicauthCredentials, .acls:
            if let r = DeclarativeBuilder.ref(o["consumer"], keyField: "username") { o["consumer"] = r }
        case .plugins:
            for (f, key) in [("service", "name"), ("route", "name"), ("consumer", "username")] {
                if let r = DeclarativeBuilder.ref(o[f], keyField: key) { o[f] = r }
            }
        default: break
        }
        let createdAt = o["created_at"]
        if kind == .targets, let t = o["target"]?.stringValue, let n = Validators.normalizeTarget(t) { o["target"] = .string(n) }
        if let ek = Schemas.of(kind).endpointKey, kind != .targets, let v = o[ek]?.stringValue {
            if !declaredKeys[kind, default: []].insert(v).inserted {
                entityError(kind, raw, path, .string("uniqueness violation: '\(kind.rawValue)' entity with \(ek) set to '\(v)' already declared"))
                return nil
            }
        }
        let id = idFor(kind, o, seed: seed)
        if declaredIDs[kind, default: []].contains(id) {
            entityError(kind, raw, path, .string("uniqueness violation: '\(kind.rawValue)' entity with primary key set to '\(id)' already declared"))
            return nil
        }
        declaredIDs[kind, default: []].insert(id)
        o["id"] = .string(id)
        let existing = api.store.get(kind, id: id)
        do {
            var doc = try api.prepare(kind, input: o, existing: existing, mode: .upsert, form: false)
            if let c = createdAt, c.isNumber { doc["created_at"] = c }
            try api.store.write([.put(kind, doc)])
            touched[kind, default: []].append(id)
            return id
        } catch let f as OpFailure {
            if f.status == 409, case .object(let fields)? = f.body["fields"], let (k, v) = fields.pairs.first, fields.count == 1 {
                entityError(kind, raw, path, .string("uniqueness violation: '\(kind.rawValue)' entity with \(k) set to '\(v.stringValue ?? v.serializedString)' already declared"))
            } else if let fields = f.body["fields"] {
                entityError(kind, raw, path, fields)
            } else {
                entityError(kind, raw, path, f.body["message"] ?? "invalid")
            }
            return nil
        } catch {
            entityError(kind, raw, path, .string("\(error)"))
            return nil
        }
    }

    mutating func list(_ top: JSONObject, _ key: String) -> [JSON] {
        guard let v = top[key], !v.isNull else { return [] }
        guard let a = v.arrayValue else { setError([key], "expected an array"); return [] }
        return a
    }

    mutating func run(_ top: JSONObject) {
        legacyFormat = top["_format_version"]?.stringValue != "3.0"
        var pendingPlugins: [(JSON, [String], [(String, JSON)], String)] = []
        var pendingRoutes: [(JSON, [String], [(String, JSON)], String)] = []
        // TLS entities first: services reference certificates (client_certificate) and CA certificates.
        for (i, c) in list(top, "certificates").enumerated() {
            let path = ["certificates", String(i + 1)]
            guard let cid = add(.certificates, c, path: path, inject: [], seed: c["cert"]?.stringValue ?? "#\(i)",
                                strip: ["snis"]) else { continue }
            for (j, n) in (c["snis"]?.arrayValue ?? []).enumerated() {
                let sni: JSON = n.stringValue.map { ["name": .string($0)] } ?? n   // a name, or an sni record
                _ = add(.snis, sni, path: path + ["snis", String(j + 1)], inject: [("certificate", ["id": .string(cid)])],
                        seed: sni["name"]?.stringValue ?? "\(cid)#\(j)", strip: [])
            }
        }
        for (i, n) in list(top, "snis").enumerated() {
            _ = add(.snis, n, path: ["snis", String(i + 1)], inject: [], seed: n["name"]?.stringValue ?? "#\(i)", strip: [])
        }
        for (i, c) in list(top, "ca_certificates").enumerated() {
            _ = add(.caCertificates, c, path: ["ca_certificates", String(i + 1)], inject: [],
                    seed: c["cert"]?.stringValue ?? "#\(i)", strip: [])
        }
        for (i, s) in list(top, "services").enumerated() {
            let path = ["services", String(i + 1)]
            guard let sid = add(.services, s, path: path, inject: [], seed: s["name"]?.stringValue ?? "#\(i)",
                                strip: ["routes", "plugins"]) else { continue }
            for (j, r) in (s["routes"]?.arrayValue ?? []).enumerated() {
                pendingRoutes.append((r, path + ["routes", String(j + 1)], [("service", ["id": .string(sid)])],
                                      r["name"]?.stringValue ?? "\(sid)#\(j)"))
            }
            for (j, p) in (s["plugins"]?.arrayValue ?? []).enumerated() {
                pendingPlugins.append((p, path + ["plugins", String(j + 1)], [("service", ["id": .string(sid)])], sid))
            }
        }
        for (i, r) in list(top, "routes").enumerated() {
            pendingRoutes.append((r, ["routes", String(i + 1)], [], r["name"]?.stringValue ?? "#\(i)"))
        }
        for (r, path, inj, seed) in pendingRoutes {
            guard let rid = add(.routes, r, path: path, inject: inj, seed: seed, strip: ["plugins"]) else { continue }
            for (j, p) in (r["plugins"]?.arrayValue ?? []).enumerated() {
                pendingPlugins.append((p, path + ["plugins", String(j + 1)], [("route", ["id": .string(rid)])], rid))
            }
        }
        for (i, c) in list(top, "consumers").enumerated() {
            let path = ["consumers", String(i + 1)]
            let seed = c["username"]?.stringValue ?? c["custom_id"]?.stringValue ?? "#\(i)"
            guard let cid = add(.consumers, c, path: path, inject: [], seed: seed,
                                strip: ["plugins", "keyauth_credentials", "basicauth_credentials", "acls"]) else { continue }
            for (kind, field) in [(EntityKind.keyauthCredentials, "key"), (.basicauthCredentials, "username"), (.acls, "group")] {
                for (j, k) in (c[kind.rawValue]?.arrayValue ?? []).enumerated() {
                    _ = add(kind, k, path: path + [kind.rawValue, String(j + 1)], inject: [("consumer", ["id": .string(cid)])],
                            seed: "\(cid):\(k[field]?.stringValue ?? "#\(j)")", strip: [])
                }
            }
            for (j, p) in (c["plugins"]?.arrayValue ?? []).enumerated() {
                pendingPlugins.append((p, path + ["plugins", String(j + 1)], [("consumer", ["id": .string(cid)])], cid))
            }
        }
        var pendingTargets: [(JSON, [String], [(String, JSON)], String)] = []
        for (i, u) in list(top, "upstreams").enumerated() {
            let path = ["upstreams", String(i + 1)]
            guard let uid = add(.upstreams, u, path: path, inject: [], seed: u["name"]?.stringValue ?? "#\(i)",
                                strip: ["targets"]) else { continue }
            for (j, t) in (u["targets"]?.arrayValue ?? []).enumerated() {
                let norm = t["target"]?.stringValue.flatMap(Validators.normalizeTarget) ?? "#\(j)"
                pendingTargets.append((t, path + ["targets", String(j + 1)], [("upstream", ["id": .string(uid)])], "\(uid):\(norm)"))
            }
        }
        for (i, t) in list(top, "targets").enumerated() {
            let norm = t["target"]?.stringValue.flatMap(Validators.normalizeTarget) ?? "#\(i)"
            let up = t["upstream"]?.stringValue ?? t["upstream"]?["id"]?.stringValue ?? t["upstream"]?["name"]?.stringValue ?? ""
            pendingTargets.append((t, ["targets", String(i + 1)], [], "\(up):\(norm)"))
        }
        for (t, path, inj, seed) in pendingTargets {
            _ = add(.targets, t, path: path, inject: inj, seed: seed, strip: [])
        }
        for (kind, field) in [(EntityKind.keyauthCredentials, "key"), (.basicauthCredentials, "username"), (.acls, "group")] {
            for (i, k) in list(top, kind.rawValue).enumerated() {
                let c = k["consumer"].map { $0.stringValue ?? $0.serializedString } ?? ""
                _ = add(kind, k, path: [kind.rawValue, String(i + 1)], inject: [],
                        seed: kind == .acls ? "\(c):\(k[field]?.stringValue ?? "#\(i)")" : k[field]?.stringValue ?? "#\(i)",
                        strip: [])
            }
        }
        for (i, p) in list(top, "plugins").enumerated() {
            pendingPlugins.append((p, ["plugins", String(i + 1)], [], "global#\(i)"))
        }
        for (p, path, inj, scope) in pendingPlugins {
            let seed = "\(p["name"]?.stringValue ?? "?"):\(scope):\(p["instance_name"]?.stringValue ?? "")" +
                ":\(p["service"].map { $0.serializedString } ?? ""):\(p["route"].map { $0.serializedString } ?? ""):\(p["consumer"].map { $0.serializedString } ?? "")"
            _ = add(.plugins, p, path: path, inject: inj, seed: seed, strip: [])
        }
    }
}
