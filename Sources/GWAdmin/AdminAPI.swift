// The Kong Admin API as a pure request → response engine over an AdminStore (KONG.md §2).
//
// Use from the master process (single-threaded; not Sendable):
//   let store = try AdminStore(path: "<prefix>/gateway.db")        // or ":memory:" for database = off
//   let api = AdminAPI(store: store, context: AdminContext(nodeInfo:serverStatus:health:adminToken:databaseOff:onChange:))
//   try api.loadDeclarative(path:)                                  // DB-less startup (replaces everything)
//   let resp = api.handle(AdminRequest(method:target:headers:body:)) // status, headers (no Content-Length), body
//   let doc = api.publishedDocument(generation: n)                  // worker document (GWStore.ConfigSnapshot)
//   Declarative.parseFile(path:) / importFile(path:into:) / exportFile(path:from:)   // CLI `gateway config ...`
// `context.onChange()` runs after every committed configuration write. HEAD responses carry the GET body so the
// server can send the right Content-Length; the server must not transmit it. `Server` defaults to gateway/0.1.0.
import GWJSON
import GWStore

public final class AdminAPI {
    public static let kongVersion = "3.10.0"
    public static let gatewayVersion = "0.1.0"
    /// Default `Server` header (we identify as ourselves; Kong sends `kong/3.10.0`).
    public static let defaultServerHeader = "gateway/0.1.0"

    public let store: AdminStore
    public var context: AdminContext
    /// Hash of the last declarative configuration loaded (DB-less `configuration_hash`, `check_hash`).
    public internal(set) var configHash: String?
    /// Hash basic-auth passwords on write (Kong's schema transformations); a declarative document with
    /// `_transform: false` (what db_export writes) carries hashes already.
    var transformPasswords = true

    public init(store: AdminStore, context: AdminContext) {
        self.store = store
        self.context = context
    }

    typealias Result = (Int, JSON)

    struct Req {
        let method: String
        let segs: [String]
        let path: String          // without trailing slash, as in the URL
        let query: [(String, String)]
        let raw: AdminRequest
        func q(_ k: String) -> String? { query.last { $0.0 == k }?.1 }
    }

    // MARK: entry point

    /// `checkToken: false`: the Status API (status_listen), which Kong serves without Admin API credentials.
    public func handle(_ req: AdminRequest, checkToken: Bool = true) -> AdminResponse {
        let start = Clock.monotonicMs()
        var headers: [(String, String)] = [("Content-Type", "application/json; charset=utf-8")]
        let origin = req.headerValues("Origin").first
        headers.append(("Access-Control-Allow-Origin", origin ?? "*"))
        if origin != nil { headers.append(("Vary", "Origin")) }
        headers.append(("Server", context.serverHeader))

        var status: Int
        var body: JSON?
        var extra: [(String, String)] = []
        // CORS preflights (OPTIONS) carry no credentials and reveal nothing: they skip the token check.
        if checkToken, let token = context.adminToken, req.method.uppercased() != "OPTIONS",
           req.headerValues("Kong-Admin-Token").first != token {
            (status, body) = (401, ["message": "Invalid credentials. Token or User credentials required"])
        } else {
            let r = dispatch(req, &extra)
            status = r.0
            body = r.1
        }
        headers += extra
        var bytes: [UInt8] = []
        if let body, !body.isNull, status != 204, status != 304 { bytes = body.serialized() }
        // HEAD: the body of the equivalent GET is returned so the server can send its Content-Length;
        // the HTTP server must not transmit it.
        if status == 204 || status == 415 { headers.removeAll { $0.0 == "Content-Type" } }
        let latency = Int((Clock.monotonicMs() - start).rounded(.up))
        headers.append(("X-Kong-Admin-Latency", String(latency)))
        return AdminResponse(status: status, headers: headers, body: bytes)
    }

    func dispatch(_ raw: AdminRequest, _ extra: inout [(String, String)]) -> (Int, JSON?) {
        let target = raw.target
        let qmark = target.firstIndex(of: "?")
        let pathPart = qmark.map { target[..<$0] } ?? Substring(target)
        let queryPart = qmark.map { target[target.index(after: $0)...] } ?? ""
        var path = String(pathPart)
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let segs = path.split(separator: "/").map { URLCoding.decode($0, plusAsSpace: false) }
        var method = raw.method.uppercased()
        if method == "HEAD" { method = "GET" }
        let req = Req(method: method, segs: segs, path: path, query: URLCoding.parsePairs(queryPart), raw: raw)
        do throws(OpFailure) {
            let r = try route(req, &extra)
            return (r.0, r.1)
        } catch {
            return (error.status, error.body)
        }
    }

    static let notFound: Result = (404, ["message": "Not found"])
    static let notAllowed: Result = (405, ["message": "Method not allowed"])

    func options(_ allow: [String], _ extra: inout [(String, String)]) -> Result {
        let a = (allow + ["OPTIONS"]).sorted().joined(separator: ", ")
        extra.append(("Allow", a))
        extra.append(("Access-Control-Allow-Methods", a))
        extra.append(("Access-Control-Allow-Headers", "Content-Type"))
        return (204, .null)
    }

    /// Method dispatch helper: OPTIONS / 405 handled uniformly.
    func methods(_ req: Req, _ extra: inout [(String, String)],
                 _ table: [(String, () throws -> Result)]) throws(OpFailure) -> Result {
        if req.method == "OPTIONS" {
            var allow = table.map(\.0)
            if allow.contains("GET") { allow.append("HEAD") }
            return options(allow, &extra)
        }
        for (m, f) in table where m == req.method {
            do { return try f() } catch let e as OpFailure { throw e } catch { throw OpFailure(Kong.databaseError()) }
        }
        return AdminAPI.notAllowed
    }

    // MARK: routing

    func route(_ req: Req, _ extra: inout [(String, String)]) throws(OpFailure) -> Result {
        let s = req.segs
        guard let first = s.first else {
            return try methods(req, &extra, [("GET", { self.root() })])
        }
        switch first {
        case "status" where s.count == 1:
            return try methods(req, &extra, [("GET", { self.status(req) })])
        case "status" where s.count == 2 && s[1] == "ready":
            return try methods(req, &extra, [("GET", {
                if self.context.draining { return (503, ["message": "draining"]) }
                if let reason = self.context.readiness?() { return (503, ["message": .string(reason)]) }
                if self.context.databaseOff && self.configHash == nil {
                    return (503, ["message": "no configuration available (empty configuration present)"])
                }
                return (200, ["message": "ready"])
            }), ("POST", {
                // kong/status/ready.lua: status=draining → 204; any other body → 400 (no body).
                let body = try? self.body(req).0
                if body?["status"]?.stringValue == "draining" { self.context.draining = true; return (204, .null) }
                return (400, .null)
            })])
        case "services", "routes", "upstreams", "consumers", "plugins", "snis", "ca_certificates":
            return try entityRoutes(EntityKind(rawValue: first)!, req, &extra)
        case "certificates":
            return try certificateRoutes(req, &extra)
        case "key-auths":
            return try entityRoutes(.keyauthCredentials, req, &extra)
        case "basic-auths":
            return try entityRoutes(.basicauthCredentials, req, &extra)
        case "acls":
            return try entityRoutes(.acls, req, &extra)
        case "tags":
            if s.count == 1 { return try methods(req, &extra, [("GET", { try self.tags(req, nil) })]) }
            if s.count == 2 { return try methods(req, &extra, [("GET", { try self.tags(req, s[1]) })]) }
        case "schemas":
            return try schemas(req, &extra)
        case "config" where s.count == 1:
            return try methods(req, &extra, [("GET", { try self.getConfig(req) }), ("POST", { try self.postConfig(req) })])
        case "timers" where s.count == 1:
            return try methods(req, &extra, [("GET", {
                (200, ["worker": ["id": 0, "count": 1],
                       "stats": ["sys": ["running": 0, "pending": 0, "waiting": 0, "total": 0], "timers": .object(JSONObject())]])
            })])
        case "cache" where s.count <= 2:
            // No node-level entity cache: reads miss, purges succeed.
            if s.count == 1 { return try methods(req, &extra, [("DELETE", { (204, .null) })]) }
            return try methods(req, &extra, [("GET", { AdminAPI.notFound }), ("DELETE", { (204, .null) })])
        case "debug" where s.count >= 3 && s[1] == "node" && s[2] == "log-level":
            let levels = ["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"]
            if s.count == 3 {
                return try methods(req, &extra, [("GET", {
                    (200, ["message": .string("log level: \(self.context.logLevel?() ?? "notice")")])
                })])
            }
            if s.count == 4 {
                return try methods(req, &extra, [("PUT", {
                    guard levels.contains(s[3]) else { return (400, ["message": .string("unknown log level: \(s[3])")]) }
                    guard let set = self.context.setLogLevel else { return AdminAPI.notAllowed }
                    if self.context.logLevel?() == s[3] { return (200, ["message": .string("log level is already \(s[3])")]) }
                    set(s[3])
                    return (200, ["message": "log level changed"])
                })])
            }
        case "proxy-cache":
            return try proxyCache(req, &extra)
        case "endpoints" where s.count == 1:
            return try methods(req, &extra, [("GET", { self.endpoints() })])
        default:
            break
        }
        return AdminAPI.notFound
    }

    static let nested: [EntityKind: [EntityKind]] = [
        .services: [.routes, .plugins], .routes: [.plugins], .consumers: [.plugins, .keyauthCredentials, .basicauthCredentials, .acls],
        .upstreams: [.targets], .certificates: [.snis],
    ]
    /// URL segment of a nested collection.
    static func urlName(_ k: EntityKind) -> String {
        switch k {
        case .keyauthCredentials: "key-auth"
        case .basicauthCredentials: "basic-auth"
        default: k.rawValue
        }
    }
    static let foreignFields: [EntityKind: [(String, EntityKind)]] = [
        .routes: [("service", .services)],
        .plugins: [("route", .routes), ("service", .services), ("consumer", .consumers)],
        .keyauthCredentials: [("consumer", .consumers)],
        .basicauthCredentials: [("consumer", .consumers)],
        .acls: [("consumer", .consumers)],
    ]

    func entityRoutes(_ kind: EntityKind, _ req: Req, _ extra: inout [(String, String)]) throws(OpFailure) -> Result {
        let s = req.segs
        if s.count == 1 {
            return try methods(req, &extra, [
                ("GET", { try self.list(kind, req, parent: nil) }),
                ("POST", { try self.create(kind, req, parent: nil) }),
            ])
        }
        if kind == .plugins && s[1] == "enabled" && s.count == 2 {
            return try methods(req, &extra, [("GET", { (200, ["enabled_plugins": JSON(self.enabledPlugins)]) })])
        }
        let key = s[1]
        if req.method != "OPTIONS" { try checkEndpointKey(kind, key) }
        if s.count == 2 {
            return try methods(req, &extra, [
                ("GET", { try self.getOne(kind, key, parent: nil) }),
                ("PUT", { try self.upsert(kind, key, req, parent: nil) }),
                ("PATCH", { try self.update(kind, key, req, parent: nil) }),
                ("DELETE", { try self.delete(kind, key, parent: nil) }),
            ])
        }
        let sub = s[2]
        if kind == .upstreams && sub == "health" && s.count == 3 {
            return try methods(req, &extra, [("GET", { try self.health(key, req) })])
        }
        if let (field, parentKind) = AdminAPI.foreignFields[kind]?.first(where: { $0.0 == sub }), s.count == 3 {
            return try methods(req, &extra, [
                ("GET", { try self.foreignGet(kind, key, field, parentKind) }),
                ("PUT", { try self.foreignWrite(kind, key, field, parentKind, req, patch: false) }),
                ("PATCH", { try self.foreignWrite(kind, key, field, parentKind, req, patch: true) }),
                ("DELETE", { try self.foreignDelete(kind, key, field) }),
            ])
        }
        guard let child = AdminAPI.nested[kind]?.first(where: { AdminAPI.urlName($0) == sub }) else {
            return AdminAPI.notFound
        }
        let parentRef = (kind: kind, key: key)
        if s.count == 3 {
            if child == .targets {
                return try methods(req, &extra, [
                    ("GET", { try self.listTargets(req, parentRef.key) }),
                    ("POST", { try self.create(child, req, parent: parentRef) }),
                ])
            }
            return try methods(req, &extra, [
                ("GET", { try self.list(child, req, parent: parentRef) }),
                ("POST", { try self.create(child, req, parent: parentRef) }),
            ])
        }
        let childKey = s[3]
        if child == .targets {
            if childKey == "all" && s.count == 4 {
                return try methods(req, &extra, [("GET", { try self.list(.targets, req, parent: parentRef) })])
            }
            if s.count == 5 && (s[4] == "healthy" || s[4] == "unhealthy") {
                return try methods(req, &extra, [("PUT", { try self.setHealth(key, childKey, nil, s[4] == "healthy") })])
            }
            if s.count == 6 && (s[5] == "healthy" || s[5] == "unhealthy") {
                return try methods(req, &extra, [("PUT", { try self.setHealth(key, childKey, s[4], s[5] == "healthy") })])
            }
        }
        if s.count == 4 {
            return try methods(req, &extra, [
                ("GET", { try self.getOne(child, childKey, parent: parentRef) }),
                ("PUT", { try self.upsert(child, childKey, req, parent: parentRef) }),
                ("PATCH", { try self.update(child, childKey, req, parent: parentRef) }),
                ("DELETE", { try self.delete(child, childKey, parent: parentRef) }),
            ])
        }
        return AdminAPI.notFound
    }

    // MARK: lookups

    /// `/E/{x}`: by id when `x` is a UUID, else by endpoint key.
    func lookup(_ kind: EntityKind, _ key: String) -> JSON? {
        let found: JSON?
        if UUID4.isValid(key) {
            found = store.get(kind, id: key.lowercased()) ?? store.get(kind, id: key)
        } else if kind == .targets {
            return nil
        } else if let ek = Schemas.of(kind).endpointKey {
            found = store.find(kind, field: ek, value: key)
        } else {
            return nil
        }
        if let found, Credentials.isExpired(kind, found, now: Int(Clock.seconds())) { return nil }
        return found
    }

    typealias ParentRef = (kind: EntityKind, key: String)

    /// Kong's validate_unique_row_method (kong/db/dao/init.lua): `/E/{x}` with `x` not a UUID selects by the
    /// endpoint key, whose value must pass the field's validation, else 400 code 10 `invalid unique <field>`
    /// with the field's message and no `fields` (`PUT /upstreams/1.2.3.4`).
    func checkEndpointKey(_ kind: EntityKind, _ key: String) throws(OpFailure) {
        guard !UUID4.isValid(key), kind != .targets, let ek = Schemas.of(kind).endpointKey,
              let f = Schemas.of(kind).fields.first(where: { $0.name == ek }),
              case .string(let msg)? = Schema.validate(.string(key), f) else { return }
        throw OpFailure((400, ["code": 10, "name": .string("invalid unique \(ek)"), "message": .string(msg)]))
    }

    /// Field of `child` that points to `parent`.
    static func parentField(_ parent: EntityKind) -> String { parent.singular }

    func resolveParent(_ p: ParentRef?) throws(OpFailure) -> JSON? {
        guard let p else { return nil }
        guard let d = lookup(p.kind, p.key) else { throw OpFailure(AdminAPI.notFound) }
        return d
    }

    func belongs(_ doc: JSON, to parent: JSON?, _ pkind: EntityKind?) -> Bool {
        guard let parent, let pkind else { return true }
        return doc[AdminAPI.parentField(pkind)]?["id"] == parent["id"]
    }

    /// Child lookup under a parent; targets by id or normalised target string within the upstream.
    func lookupChild(_ kind: EntityKind, _ key: String, parent: JSON?, pkind: EntityKind?) -> JSON? {
        if kind == .targets, let parent, let upID = parent["id"]?.stringValue {
            if UUID4.isValid(key), let d = store.get(.targets, id: key.lowercased()) {
                return belongs(d, to: parent, pkind) ? d : nil
            }
            let norm = Validators.normalizeTarget(key) ?? key
            return store.referencing(.targets, field: "upstream", id: upID)
                .filter { $0["target"]?.stringValue == norm }
                .max { ($0["created_at"]?.doubleValue ?? 0) < ($1["created_at"]?.doubleValue ?? 0) }
        }
        if kind == .acls, !UUID4.isValid(key) { return aclByGroup(key, consumer: parent) }
        guard let d = lookup(kind, key) else { return nil }
        return belongs(d, to: parent, pkind) ? d : nil
    }

    // MARK: body

    func body(_ req: Req) throws(OpFailure) -> (JSONObject, Bool) {
        let cts = req.raw.headerValues("Content-Type")
        if cts.count > 1 { throw OpFailure((400, ["message": "Multiple Content-Type headers not allowed"])) }
        let ct = (cts.first ?? "").lowercased()
        let body = req.raw.body
        if ct.isEmpty {
            if body.isEmpty || body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return (JSONObject(), false) }
            throw OpFailure((415, .null))
        }
        if ct.hasPrefix("application/json") {
            guard let v = try? JSON.parse(body), case .object(let o) = v else {
                throw OpFailure((400, ["message": "Cannot parse JSON body"]))
            }
            return (o, false)
        }
        if ct.hasPrefix("application/x-www-form-urlencoded") {
            let pairs = URLCoding.parsePairs(Substring(String(decoding: body, as: UTF8.self)))
            if pairs.count > 1000 { throw OpFailure((400, ["message": "Too many arguments"])) }
            return (FormDecoder.build(pairs), true)
        }
        if ct.hasPrefix("multipart/form-data") {
            var boundary: String?
            for p in ct.split(separator: ";") {
                let t = p.trimmingSpaces
                if t.hasPrefix("boundary=") {
                    // take the boundary with original case from the raw header
                    let rawCT = cts.first!
                    if let r = rawCT.firstRange(of: "boundary=") ?? rawCT.lowercased().firstRange(of: "boundary=") {
                        var b = String(rawCT[r.upperBound...])
                        if let semi = b.firstIndex(of: ";") { b = String(b[..<semi]) }
                        b = b.trimmingSpaces
                        if b.hasPrefix("\"") && b.hasSuffix("\"") && b.count >= 2 { b = String(b.dropFirst().dropLast()) }
                        boundary = b
                    }
                    _ = t
                }
            }
            guard let boundary, let pairs = FormDecoder.multipart(body, boundary: boundary) else {
                throw OpFailure((400, ["message": "Cannot parse multipart body"]))
            }
            if pairs.count > 1000 { throw OpFailure((400, ["message": "Too many arguments"])) }
            return (FormDecoder.build(pairs), true)
        }
        throw OpFailure((415, .null))
    }

    func refuseWhenDBLess(_ verb: String, _ kind: EntityKind) throws(OpFailure) {
        if context.databaseOff { throw OpFailure(Kong.operationUnsupported(verb, kind.rawValue)) }
    }

    func commit(_ ops: [StoreOp]) throws(OpFailure) {
        var ops = ops
        var keyauthPuts = Set<String>()
        for case .put(.keyauthCredentials, let d) in ops { if let id = d["id"]?.stringValue { keyauthPuts.insert(id) } }
        if !keyauthPuts.isEmpty { ops = purgeExpiredOps(keep: keyauthPuts) + ops }
        do { try store.write(ops) } catch { throw OpFailure(Kong.databaseError()) }
        if store.writeSink == nil { context.onChange() }
    }

    // MARK: CRUD

    func getOne(_ kind: EntityKind, _ key: String, parent: ParentRef?) throws(OpFailure) -> Result {
        let p = try resolveParent(parent)
        guard let d = lookupChild(kind, key, parent: p, pkind: parent?.kind) else { return AdminAPI.notFound }
        return (200, present(kind, d))
    }

    func inject(_ input: inout JSONObject, parent: JSON?, pkind: EntityKind?) {
        guard let parent, let pkind else { return }
        input[AdminAPI.parentField(pkind)] = ["id": parent["id"] ?? .null]
    }

    func create(_ kind: EntityKind, _ req: Req, parent: ParentRef?) throws(OpFailure) -> Result {
        try refuseWhenDBLess("create", kind)
        let p = try resolveParent(parent)
        var (input, form) = try body(req)
        inject(&input, parent: p, pkind: parent?.kind)
        if let id = input["id"]?.stringValue, UUID4.isValid(id), store.get(kind, id: id) != nil {
            throw OpFailure(Kong.primaryKeyViolation(id))
        }
        let doc = try prepare(kind, input: input, existing: nil, mode: .insert, form: form)
        try commit([.put(kind, doc)] + (kind == .certificates ? certificateSNIOps(doc, input: input, form: form, urlSNI: nil) : []))
        return (201, present(kind, doc))
    }

    func upsert(_ kind: EntityKind, _ key: String, _ req: Req, parent: ParentRef?, urlSNI: String? = nil) throws(OpFailure) -> Result {
        try refuseWhenDBLess("create or update", kind)
        let p = try resolveParent(parent)
        var (input, form) = try body(req)
        if kind == .targets {
            // PUT on a target is an update (KONG.md §2.1).
            guard let existing = lookupChild(kind, key, parent: p, pkind: parent?.kind) else { return AdminAPI.notFound }
            inject(&input, parent: p, pkind: parent?.kind)
            let doc = try prepare(kind, input: input, existing: existing, mode: .upsert, form: form)
            try commit([.put(kind, doc)])
            return (200, doc)
        }
        // Nested PUT upserts the child under this parent (moving it if it belonged to another one), as Kong does.
        var existing = lookup(kind, key)
        inject(&input, parent: p, pkind: parent?.kind)
        var forcedID: String? = nil
        if kind == .acls, !UUID4.isValid(key) {
            // `/consumers/{c}/acls/{group}` (kong/plugins/acl/api.lua): the consumer's row of that group, else a new one.
            guard p != nil else { return AdminAPI.notFound }
            existing = aclByGroup(key, consumer: p)
            forcedID = existing?["id"]?.stringValue ?? UUID4.generate()
            if input["group"] == nil { input["group"] = .string(key) }
        } else if UUID4.isValid(key) {
            forcedID = key.lowercased()
        } else if let ek = Schemas.of(kind).endpointKey {
            input[ek] = .string(key)
        }
        if existing == nil, let fid = forcedID { existing = store.get(kind, id: fid) }
        let doc = try prepare(kind, input: input, existing: existing, mode: .upsert, form: form, forcedID: forcedID)
        try commit([.put(kind, doc)] + (kind == .certificates ? certificateSNIOps(doc, input: input, form: form, urlSNI: urlSNI) : []))
        return (200, present(kind, doc))
    }

    func update(_ kind: EntityKind, _ key: String, _ req: Req, parent: ParentRef?) throws(OpFailure) -> Result {
        try refuseWhenDBLess("update", kind)
        let p = try resolveParent(parent)
        let (input, form) = try body(req)
        guard let existing = lookupChild(kind, key, parent: p, pkind: parent?.kind) else {
            if p != nil { return AdminAPI.notFound }
            if UUID4.isValid(key) { throw OpFailure(Kong.notFoundEntity(["id": .string(key)], byPrimaryKey: true)) }
            let ek = Schemas.of(kind).endpointKey ?? "id"
            throw OpFailure(Kong.notFoundEntity(.object(JSONObject([(ek, .string(key))])), byPrimaryKey: false))
        }
        var patch = input
        if let p, let pk = parent?.kind, patch[AdminAPI.parentField(pk)] == nil { inject(&patch, parent: p, pkind: pk) }
        let doc = try prepare(kind, input: patch, existing: existing, mode: .update, form: form)
        try commit([.put(kind, doc)] + (kind == .certificates ? certificateSNIOps(doc, input: patch, form: form, urlSNI: nil) : []))
        return (200, present(kind, doc))
    }

    /// Ops deleting `doc` with cascades; throws on restrict.
    func deleteOps(_ kind: EntityKind, _ doc: JSON) throws(OpFailure) -> [StoreOp] {
        guard let id = doc["id"]?.stringValue else { return [] }
        var ops: [StoreOp] = []
        switch kind {
        case .services:
            if !store.referencing(.routes, field: "service", id: id).isEmpty {
                throw OpFailure(Kong.referencedBy(.routes, .services))
            }
            for pl in store.referencing(.plugins, field: "service", id: id) { ops.append(.delete(.plugins, pl["id"]!.stringValue!)) }
        case .routes:
            for pl in store.referencing(.plugins, field: "route", id: id) { ops.append(.delete(.plugins, pl["id"]!.stringValue!)) }
        case .consumers:
            for pl in store.referencing(.plugins, field: "consumer", id: id) { ops.append(.delete(.plugins, pl["id"]!.stringValue!)) }
            for k in [EntityKind.keyauthCredentials, .basicauthCredentials, .acls] {
                for c in store.referencing(k, field: "consumer", id: id) { ops.append(.delete(k, c["id"]!.stringValue!)) }
            }
        case .upstreams:
            for t in store.referencing(.targets, field: "upstream", id: id) { ops.append(.delete(.targets, t["id"]!.stringValue!)) }
        case .certificates, .caCertificates: ops += try certificateDeleteOps(kind, id: id)
        case .targets, .plugins, .keyauthCredentials, .basicauthCredentials, .acls, .snis: break
        }
        ops.append(.delete(kind, id))
        return ops
    }

    func delete(_ kind: EntityKind, _ key: String, parent: ParentRef?) throws(OpFailure) -> Result {
        try refuseWhenDBLess("remove", kind)
        let p = try resolveParent(parent)
        guard let doc = lookupChild(kind, key, parent: p, pkind: parent?.kind) else {
            // Nested: a missing child, or one of another parent, is 404 (kong/api/endpoints.lua); top level: 204.
            return p != nil ? AdminAPI.notFound : (204, .null)
        }
        try commit(try deleteOps(kind, doc))
        return (204, .null)
    }

    // MARK: foreign sub-resources (/routes/{r}/service, /plugins/{p}/consumer ...)

    func foreignGet(_ kind: EntityKind, _ key: String, _ field: String, _ pkind: EntityKind) throws(OpFailure) -> Result {
        guard let d = lookup(kind, key), let fid = d[field]?["id"]?.stringValue, let f = store.get(pkind, id: fid) else {
            return AdminAPI.notFound
        }
        return (200, f)
    }

    func foreignWrite(_ kind: EntityKind, _ key: String, _ field: String, _ pkind: EntityKind, _ req: Req,
                      patch: Bool) throws(OpFailure) -> Result {
        try refuseWhenDBLess(patch ? "update" : "create or update", pkind)
        guard let d = lookup(kind, key) else { return AdminAPI.notFound }
        let (input, form) = try body(req)
        guard let fid = d[field]?["id"]?.stringValue, let f = store.get(pkind, id: fid) else {
            if patch { return AdminAPI.notFound }
            // PUT on an unset foreign entity creates it and associates it (kong/api/endpoints.lua).
            let created = try prepare(pkind, input: input, existing: nil, mode: .upsert, form: form,
                                      forcedID: UUID4.generate())
            var child = d
            child[field] = ["id": created["id"] ?? .null]
            child["updated_at"] = .int(Clock.seconds())
            try commit([.put(pkind, created), .put(kind, child)])
            return (200, created)
        }
        let doc = try prepare(pkind, input: input, existing: f, mode: patch ? .update : .upsert, form: form,
                              forcedID: patch ? nil : fid)
        try commit([.put(pkind, doc)])
        return (200, doc)
    }

    func foreignDelete(_ kind: EntityKind, _ key: String, _ field: String) throws(OpFailure) -> Result {
        guard let d = lookup(kind, key), let v = d[field], !v.isNull else { return AdminAPI.notFound }
        return AdminAPI.notAllowed
    }
}
