// Collection listing with pagination and tag filters (KONG.md §2.3, §2.4), node/status/health endpoints,
// and the worker document.
import Glibc
import GWJSON
import GWStore

extension AdminAPI {
    enum TagFilter { case none, all([String]), any([String]) }

    func tagFilter(_ req: Req) throws(OpFailure) -> TagFilter {
        guard let t = req.q("tags") else { return .none }
        if t.isEmpty { throw OpFailure(Kong.invalidOptions("tags", "cannot be null")) }
        let hasComma = t.contains(","), hasSlash = t.contains("/")
        if hasComma && hasSlash { throw OpFailure(Kong.invalidOptions("tags", "invalid filter syntax")) }
        let parts = t.split(separator: hasSlash ? "/" : ",", omittingEmptySubsequences: false).map(String.init)
        if parts.contains(where: \.isEmpty) { throw OpFailure(Kong.invalidOptions("tags", "invalid filter syntax")) }
        if parts.count > 5 { throw OpFailure(Kong.invalidOptions("tags", "cannot query more than 5 tags")) }
        return hasSlash ? .any(parts) : .all(parts)
    }

    static func matches(_ doc: JSON, _ f: TagFilter) -> Bool {
        switch f {
        case .none: return true
        case .all(let ts):
            let have = Set(doc["tags"]?.stringArrayValue ?? [])
            return ts.allSatisfy(have.contains)
        case .any(let ts):
            let have = Set(doc["tags"]?.stringArrayValue ?? [])
            return ts.contains(where: have.contains)
        }
    }

    func pageSize(_ req: Req) throws(OpFailure) -> Int {
        guard let s = req.q("size") else { return 100 }
        guard let d = Double(s) else { throw OpFailure(Kong.invalidSize("size must be a number")) }
        guard d == d.rounded(), d >= 1, d <= 1000 else {
            throw OpFailure(Kong.invalidSize("size must be an integer between 1 and 1000"))
        }
        return Int(d)
    }

    /// Paginated list of `kind` (optionally under a parent), ordered by insertion.
    func list(_ kind: EntityKind, _ req: Req, parent: ParentRef?) throws(OpFailure) -> Result {
        let p = try resolveParent(parent)
        let size = try pageSize(req)
        let filter = try tagFilter(req)
        if kind == .consumers, parent == nil, let cid = req.q("custom_id") {
            if cid.isEmpty { throw OpFailure((400, ["message": "custom_id must be an unempty string"])) }
            let found = store.find(.consumers, field: "custom_id", value: cid)
            return (200, ["data": .array(found.map { [$0] } ?? []), "next": .null])
        }
        var startSeq: Int64 = 0
        if let off = req.q("offset") {
            guard let dec = Base64.decode(off), let n = Int64(dec) else { throw OpFailure(Kong.invalidOffset(off)) }
            startSeq = n
        }
        var items: [JSON]
        if let p, let pk = parent?.kind {
            items = store.referencing(kind, field: AdminAPI.parentField(pk), id: p["id"]?.stringValue ?? "")
        } else {
            items = store.all(kind)
        }
        var page: [JSON] = []
        var nextSeq: Int64? = nil
        let now = Int(Clock.seconds())
        for d in items {
            guard let id = d["id"]?.stringValue, let seq = store.seq(kind, id: id), seq >= startSeq else { continue }
            guard AdminAPI.matches(d, filter), !Credentials.isExpired(kind, d, now: now) else { continue }
            if page.count == size { nextSeq = seq; break }
            page.append(kind == .keyauthCredentials ? Credentials.present(kind, d, now: now)
                        : kind == .certificates ? presentCertificate(d) : d)
        }
        var out: JSONObject = ["data": .array(page)]
        if let nextSeq {
            let off = Base64.encode(String(nextSeq))
            var next = "\(req.path)?offset=\(URLCoding.escape(off))"
            if let t = req.q("tags") { next += "&tags=\(URLCoding.escape(t))" }
            if parent == nil, req.q("size") != nil { next += "&size=\(size)" }
            out["offset"] = .string(off)
            out["next"] = .string(next)
        } else {
            out["next"] = .null
        }
        return (200, .object(out))
    }

    /// Targets of an upstream, newest first (created_at desc, id desc), de-duplicated by target string.
    func upstreamTargets(_ upstreamID: String) -> [JSON] {
        let all = store.referencing(.targets, field: "upstream", id: upstreamID).sorted { a, b in
            let ca = a["created_at"]?.doubleValue ?? 0, cb = b["created_at"]?.doubleValue ?? 0
            if ca != cb { return ca > cb }
            return (a["id"]?.stringValue ?? "") > (b["id"]?.stringValue ?? "")
        }
        var seen = Set<String>()
        return all.filter { seen.insert($0["target"]?.stringValue ?? "").inserted }
    }

    /// `GET /upstreams/{u}/targets`: in-memory pagination with numeric offsets.
    func listTargets(_ req: Req, _ upKey: String) throws(OpFailure) -> Result {
        guard let up = lookup(.upstreams, upKey), let upID = up["id"]?.stringValue else { return AdminAPI.notFound }
        let size = try pageSize(req)
        let filter = try tagFilter(req)
        var start = 0
        if let off = req.q("offset") {
            guard let n = Int(off) ?? Base64.decode(off).flatMap({ Int($0) }), n >= 0, n < Int(Int32.max) else {
                throw OpFailure(Kong.invalidOffset(off))
            }
            start = n
        }
        let items = upstreamTargets(upID).filter { AdminAPI.matches($0, filter) }
        let page = start < items.count ? Array(items[start..<min(items.count, start + size)]) : []
        var out: JSONObject = ["data": .array(page)]
        if start + size < items.count {
            let off = String(start + size)
            out["offset"] = .string(off)
            var next = "\(req.path)?offset=\(off)"
            if let t = req.q("tags") { next += "&tags=\(URLCoding.escape(t))" }
            out["next"] = .string(next)
        } else {
            out["next"] = .null
        }
        return (200, .object(out))
    }

    // MARK: tags

    func tags(_ req: Req, _ tag: String?) throws(OpFailure) -> Result {
        let size = try pageSize(req)
        var start = 0
        if let off = req.q("offset") {
            guard let dec = Base64.decode(off), let n = Int(dec), n >= 0, n < Int(Int32.max) else {
                throw OpFailure(Kong.invalidOffset(off))
            }
            start = n
        }
        var rows: [JSON] = []
        let now = Int(Clock.seconds())
        for kind in EntityKind.allCases {
            for d in store.all(kind) where !Credentials.isExpired(kind, d, now: now) {
                for t in d["tags"]?.stringArrayValue ?? [] where tag == nil || tag == t {
                    rows.append(["entity_name": .string(kind.rawValue), "entity_id": d["id"] ?? .null, "tag": .string(t)])
                }
            }
        }
        let page = start < rows.count ? Array(rows[start..<min(rows.count, start + size)]) : []
        var out: JSONObject = ["data": .array(page)]
        if start + size < rows.count {
            let off = Base64.encode(String(start + size))
            out["offset"] = .string(off)
            out["next"] = .string("\(req.path)?offset=\(URLCoding.escape(off))")
        } else {
            out["next"] = .null
        }
        return (200, .object(out))
    }

    // MARK: node

    func root() -> Result {
        var plugins = JSONObject()
        for name in enabledPlugins {
            plugins[name] = ["version": .string(AdminAPI.kongVersion), "priority": JSON(Schemas.plugins[name]!.priority)]
        }
        var enabledInCluster = Set<String>()
        for p in store.all(.plugins) { if let n = p["name"]?.stringValue { enabledInCluster.insert(n) } }
        var o: JSONObject = [
            "tagline": "Welcome to kong",
            "version": .string(AdminAPI.kongVersion),
            "gateway_version": .string(AdminAPI.gatewayVersion),
            "edition": "community",
            "hostname": .string(AdminAPI.hostname()),
            "node_id": .string(store.nodeID),
            "timers": ["running": 0, "pending": 0],
            "lua_version": "none (Swift)",
            "plugins": ["available_on_server": .object(plugins),
                        "enabled_in_cluster": JSON(enabledInCluster.sorted())],
            "configuration": ["database": .string(context.databaseOff ? "off" : "sqlite")],
            "pids": ["master": .null, "workers": []],
        ]
        if case .object(let extra) = context.nodeInfo() { for (k, v) in extra { o[k] = v } }
        return (200, .object(o))
    }

    static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, 255) == 0 else { return "localhost" }
        let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    func status(_ req: Req) -> Result {
        // Kong: unit defaults to m; scale is tonumber(scale) (a non-number is ignored), checked by bytes_to_str.
        let unit = req.q("unit") ?? "m"
        let scale = req.q("scale").flatMap { Double($0) }.map { $0 < 0 ? -1 : Int($0) }
        let (memory, bad) = memoryJSON(unit: unit, scale: scale)
        if let bad { return (400, ["message": .string(bad)]) }
        var o: JSONObject = [
            "memory": memory ?? .null,
            "server": context.serverStatus(),
        ]
        if context.databaseOff {
            o["configuration_hash"] = .string(configurationHash())
        } else {
            o["database"] = ["reachable": .bool(context.databaseReachable?() ?? store.isReachable())]
        }
        return (200, .object(o))
    }

    /// DB-less `configuration_hash`: hash of the last loaded declarative document, zeros when none.
    func configurationHash() -> String { configHash ?? String(repeating: "0", count: 32) }

    func endpoints() -> Result {
        let list = ["/", "/status", "/config", "/tags", "/tags/{tags}", "/plugins/enabled", "/endpoints",
                    "/schemas/{name}", "/schemas/{name}/validate", "/schemas/plugins/{name}"] +
            ["services", "routes", "upstreams", "consumers", "plugins"].flatMap { ["/\($0)", "/\($0)/{\($0)}"] } +
            ["/services/{services}/routes", "/services/{services}/routes/{routes}", "/services/{services}/plugins",
             "/services/{services}/plugins/{plugins}", "/routes/{routes}/service", "/routes/{routes}/plugins",
             "/routes/{routes}/plugins/{plugins}", "/consumers/{consumers}/plugins",
             "/consumers/{consumers}/plugins/{plugins}", "/plugins/{plugins}/route", "/plugins/{plugins}/service",
             "/plugins/{plugins}/consumer", "/upstreams/{upstreams}/health", "/upstreams/{upstreams}/targets",
             "/upstreams/{upstreams}/targets/all", "/upstreams/{upstreams}/targets/{targets}",
             "/upstreams/{upstreams}/targets/{targets}/healthy", "/upstreams/{upstreams}/targets/{targets}/unhealthy",
             "/upstreams/{upstreams}/targets/{targets}/{address}/healthy",
             "/upstreams/{upstreams}/targets/{targets}/{address}/unhealthy",
             "/consumers/{consumers}/key-auth", "/consumers/{consumers}/key-auth/{keyauth_credentials}",
             "/key-auths", "/key-auths/{keyauth_credentials}", "/key-auths/{keyauth_credentials}/consumer",
             "/consumers/{consumers}/basic-auth", "/consumers/{consumers}/basic-auth/{basicauth_credentials}",
             "/basic-auths", "/basic-auths/{basicauth_credentials}", "/basic-auths/{basicauth_credentials}/consumer",
             "/consumers/{consumers}/acls", "/consumers/{consumers}/acls/{acls}", "/acls", "/acls/{acls}",
             "/acls/{acls}/consumer",
             "/certificates", "/certificates/{certificates}", "/certificates/{certificates}/snis",
             "/certificates/{certificates}/snis/{snis}", "/snis", "/snis/{snis}", "/ca_certificates",
             "/ca_certificates/{ca_certificates}",
             "/timers", "/debug/node/log-level", "/debug/node/log-level/{log_level}"]
        return (200, ["data": JSON(list.sorted())])
    }

    // MARK: health

    func typed(_ up: JSON) -> Upstream? { try? Upstream.decode(json: up) }

    func health(_ upKey: String, _ req: Req) throws(OpFailure) -> Result {
        guard let up = lookup(.upstreams, upKey), let upID = up["id"]?.stringValue, let u = typed(up) else {
            return AdminAPI.notFound
        }
        let docs = upstreamTargets(upID)
        let targets = docs.compactMap { try? Target.decode(json: $0) }
        let checker = u.healthchecks.checkerEnabled
        var healths: [String: TargetHealth] = [:]
        if let provider = context.health {
            for h in provider.targetHealth(upstream: u, targets: targets) { healths[h.targetID] = h }
        }
        func fallback(_ t: Target) -> TargetHealth {
            let state = (checker && t.weight > 0) ? "HEALTHY" : "HEALTHCHECKS_OFF"
            return TargetHealth(targetID: t.id, health: state,
                                addresses: [AddressHealth(ip: t.host, port: t.port, weight: t.weight, health: state)])
        }
        var total = 0, available = 0
        var rows: [JSON] = []
        var hosts: [JSON] = []
        for (doc, t) in zip(docs, targets) {
            let h = healths[t.id] ?? fallback(t)
            let tw = h.addresses.reduce(0) { $0 + $1.weight }
            let aw = h.addresses.filter { $0.health != "UNHEALTHY" }.reduce(0) { $0 + $1.weight }
            total += tw; available += aw
            let weight: JSON = ["total": JSON(tw), "unavailable": JSON(tw - aw), "available": JSON(aw)]
            let addrs = h.addresses.map { a -> JSON in
                ["ip": .string(a.ip), "port": JSON(a.port), "weight": JSON(a.weight), "health": .string(a.health)]
            }
            let dns: JSON = Validators.parseHostPort(t.host).map { $0.kind == .name ? "A" : "A" } ?? "A"
            let data: JSON = ["host": .string(t.host), "port": JSON(t.port), "dns": dns, "nodeWeight": JSON(t.weight),
                              "weight": weight, "addresses": .array(addrs)]
            var row = doc
            row["health"] = .string(h.health)
            row["data"] = data
            rows.append(row)
            var hostRow = data
            hostRow["addresses"] = .array(h.addresses.map { a -> JSON in
                ["ip": .string(a.ip), "port": JSON(a.port), "weight": JSON(a.weight), "healthy": .bool(a.health != "UNHEALTHY")]
            })
            hosts.append(hostRow)
        }
        if req.q("balancer_health") != nil {
            let pct = total > 0 ? Double(available) * 100 / Double(total) : 0
            let healthy = total > 0 && available > 0 && pct > u.healthchecks.threshold
            let bh = healthy ? "HEALTHY" : "UNHEALTHY"
            let data: JSON = ["health": .string(checker ? bh : "HEALTHCHECKS_OFF"), "balancer_health": .string(bh),
                              "id": .string(upID),
                              "details": ["healthy": .bool(healthy),
                                          "weight": ["total": JSON(total), "unavailable": JSON(total - available),
                                                     "available": JSON(available)],
                                          "hosts": .array(hosts)]]
            return (200, ["data": data, "next": .null, "node_id": .string(store.nodeID)])
        }
        return (200, ["data": .array(rows), "next": .null, "node_id": .string(store.nodeID)])
    }

    func setHealth(_ upKey: String, _ tKey: String, _ address: String?, _ healthy: Bool) throws(OpFailure) -> Result {
        guard let up = lookup(.upstreams, upKey), let u = typed(up) else { return AdminAPI.notFound }
        guard let td = lookupChild(.targets, tKey, parent: up, pkind: .upstreams), let t = try? Target.decode(json: td) else {
            return AdminAPI.notFound
        }
        guard let provider = context.health, provider.setTargetHealth(upstream: u, target: t, address: address, healthy: healthy) else {
            return (400, ["message": .string("no healthchecker found for \(u.name)")])
        }
        if let hook = context.onTargetHealth, let uid = up["id"]?.stringValue, let tid = td["id"]?.stringValue {
            hook(uid, tid, address, healthy)
        }
        return (204, .null)
    }

    // MARK: schemas

    static func describe(_ fields: [Field]) -> JSON {
        .array(fields.map { f -> JSON in
            var o = JSONObject()
            switch f.type {
            case .string: o["type"] = "string"
            case .integer: o["type"] = "integer"
            case .number: o["type"] = "number"
            case .boolean: o["type"] = "boolean"
            case .array: o["type"] = "array"
            case .set: o["type"] = "set"
            case .map: o["type"] = "map"
            case .record(let sub): o["type"] = "record"; o["fields"] = describe(sub)
            case .foreign(let k): o["type"] = "foreign"; o["reference"] = .string(k.rawValue)
            }
            if f.required { o["required"] = true }
            if let d = f.defaultValue { o["default"] = d }
            if let one = f.oneOf { o["one_of"] = JSON(one) }
            if f.auto { o["auto"] = true }
            return .object(JSONObject([(f.name, .object(o))]))
        })
    }

    func schemas(_ req: Req, _ extra: inout [(String, String)]) throws(OpFailure) -> Result {
        let s = req.segs
        if s.count == 3 && s[1] == "plugins" && s[2] == "validate" {
            return try methods(req, &extra, [("POST", {
                let (input, form) = try self.body(req)
                _ = try self.prepareForValidation(.plugins, input, form: form)
                return (200, ["message": "schema validation successful"])
            })])
        }
        if s.count == 3 && s[1] == "plugins" {
            guard let def = pluginDef(s[2]) else {
                return (404, ["message": .string("No plugin named '\(s[2])'")])
            }
            return try methods(req, &extra, [("GET", {
                (200, ["fields": AdminAPI.describe([Field("config", .record(def.config))])])
            })])
        }
        guard s.count >= 2, let kind = EntityKind(rawValue: s[1]) else {
            if s.count == 2 { return (404, ["message": .string("No entity named '\(s[1])'")]) }
            return AdminAPI.notFound
        }
        if s.count == 2 {
            return try methods(req, &extra, [("GET", { (200, ["fields": AdminAPI.describe(Schemas.of(kind).fields)]) })])
        }
        if s.count == 3 && s[2] == "validate" {
            return try methods(req, &extra, [("POST", {
                let (input, form) = try self.body(req)
                _ = try self.prepareForValidation(kind, input, form: form)
                return (200, ["message": "schema validation successful"])
            })])
        }
        return AdminAPI.notFound
    }

    func prepareForValidation(_ kind: EntityKind, _ input: JSONObject, form: Bool) throws(OpFailure) -> JSON {
        do {
            return try prepare(kind, input: input, existing: nil, mode: .insert, form: form)
        } catch {
            // Foreign references and uniqueness are not part of schema validation.
            if error.status == 400, error.body["code"]?.intValue == 4 { return .null }
            if error.status == 409 { return .null }
            throw error
        }
    }

    // MARK: worker document

    /// The worker configuration document (GWStore.ConfigSnapshot format) built from the store.
    public func publishedDocument(generation: UInt64) -> [UInt8] {
        publishedJSON(generation: generation).serialized()
    }

    /// The worker document as bytes: the store's serialized entities concatenated (no JSON tree of every
    /// entity is built or serialized), then `extra` top-level members. Same content as `publishedJSON`.
    public func publishedBytes(generation: UInt64, extra: [(String, JSON)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        out.append(contentsOf: Array("{\"generation\":\(generation)".utf8))
        for kind in EntityKind.allCases {       // raw values are the document's keys
            out.append(contentsOf: Array(",\"\(kind.rawValue)\":".utf8))
            store.appendSerializedArray(kind, into: &out)
        }
        for (key, value) in extra {
            out.append(UInt8(ascii: ","))
            JSON.string(key).write(into: &out)
            out.append(UInt8(ascii: ":"))
            value.write(into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The worker document as a JSON value (the publisher adds to it and serializes once).
    public func publishedJSON(generation: UInt64) -> JSON {
        ConfigSnapshot.document(generation: generation, services: store.all(.services), routes: store.all(.routes),
                                upstreams: store.all(.upstreams), targets: store.all(.targets),
                                consumers: store.all(.consumers), plugins: store.all(.plugins),
                                keyauthCredentials: store.all(.keyauthCredentials),
                                basicauthCredentials: store.all(.basicauthCredentials), acls: store.all(.acls),
                                certificates: store.all(.certificates), snis: store.all(.snis),
                                caCertificates: store.all(.caCertificates))
    }
}

extension AdminStore {
    func isReachable() -> Bool { (try? db.scalarInt("SELECT 1")) == 1 }
}
