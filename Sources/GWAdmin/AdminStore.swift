// Persistent entity store: one SQLite table per entity type (id primary key, unique key columns, JSON document,
// insertion sequence). Reads are served from an in-memory mirror loaded at open; every write is one SQLite
// transaction committed (synchronous=FULL, WAL) before the in-memory mirror changes and before any response.
import CSQLite
import GWJSON

/// Entity types stored by the Admin API.
public enum EntityKind: String, CaseIterable, Sendable {
    case services, routes, upstreams, targets, consumers, plugins
    case keyauthCredentials = "keyauth_credentials"
    case basicauthCredentials = "basicauth_credentials"
    case acls
    case certificates, snis
    case caCertificates = "ca_certificates"

    /// Kinds created by schema migration 1 (later kinds come with their own migrations).
    static let initialKinds: [EntityKind] = [.services, .routes, .upstreams, .targets, .consumers, .plugins]

    /// Singular name, as in Kong's `foreign key` / error messages.
    var singular: String {
        switch self {
        case .services: "service"
        case .routes: "route"
        case .upstreams: "upstream"
        case .targets: "target"
        case .consumers: "consumer"
        case .plugins: "plugin"
        case .keyauthCredentials: "keyauth_credential"
        case .basicauthCredentials: "basicauth_credential"
        case .acls: "acl"
        case .certificates: "certificate"
        case .snis: "sni"
        case .caCertificates: "ca_certificate"
        }
    }

    /// Extra indexed / unique columns: (column, unique).
    public var keyColumns: [(String, Bool)] {
        switch self {
        case .services: [("name", true)]
        case .routes: [("name", true), ("service_id", false)]
        case .upstreams: [("name", true)]
        case .targets: [("upstream_id", false), ("cache_key", true)]
        case .consumers: [("username", true), ("custom_id", true)]
        case .plugins: [("instance_name", true), ("cache_key", true), ("service_id", false), ("route_id", false),
                        ("consumer_id", false)]
        case .keyauthCredentials: [("key", true), ("consumer_id", false)]
        case .basicauthCredentials: [("username", true), ("consumer_id", false)]
        case .acls: [("cache_key", true), ("consumer_id", false)]
        case .certificates: []
        case .snis: [("name", true), ("certificate_id", false)]
        case .caCertificates: [("cert_digest", true)]
        }
    }

    /// Values of `keyColumns` for a document.
    public func keyValues(_ doc: JSON) -> [String?] {
        func fk(_ f: String) -> String? { doc[f]?["id"]?.stringValue }
        switch self {
        case .services, .upstreams: return [doc["name"]?.stringValue]
        case .routes: return [doc["name"]?.stringValue, fk("service")]
        case .targets:
            return [fk("upstream"), AdminStore.targetCacheKey(upstreamID: fk("upstream") ?? "", target: doc["target"]?.stringValue ?? "")]
        case .consumers: return [doc["username"]?.stringValue, doc["custom_id"]?.stringValue]
        case .plugins:
            return [doc["instance_name"]?.stringValue, AdminStore.pluginCacheKey(doc), fk("service"), fk("route"),
                    fk("consumer")]
        case .keyauthCredentials: return [doc["key"]?.stringValue, fk("consumer")]
        case .basicauthCredentials: return [doc["username"]?.stringValue, fk("consumer")]
        case .acls: return [MemTable.cacheKey(doc), fk("consumer")]
        case .certificates: return []
        case .snis: return [doc["name"]?.stringValue, fk("certificate")]
        case .caCertificates: return [doc["cert_digest"]?.stringValue]
        }
    }
}

/// One write in a transaction.
public enum StoreOp: Sendable {
    case put(EntityKind, JSON)      // insert or replace by "id"
    case delete(EntityKind, String) // by id
}

struct MemTable {
    static let indexed = ["name", "username", "custom_id", "instance_name", "key", "cert_digest"]
    var ids: [String] = []          // ordered by seq
    var docs: [String: JSON] = [:]
    /// Each document serialized (as stored in SQLite), so the publisher's full document is a
    /// concatenation instead of a serialization of every entity.
    var raw: [String: [UInt8]] = [:]
    var seqs: [String: Int64] = [:]
    /// field → value → id, for unique top-level string fields.
    var index: [String: [String: String]] = [:]

    static let foreignFields = ["service", "route", "consumer", "upstream", "certificate", "client_certificate"]
    /// foreign field → parent id → child ids.
    var refs: [String: [String: Set<String>]] = [:]

    static func cacheKey(_ doc: JSON) -> String? {
        if doc["target"] != nil, let up = doc["upstream"]?["id"]?.stringValue, let t = doc["target"]?.stringValue {
            return AdminStore.targetCacheKey(upstreamID: up, target: t)
        }
        if doc["config"] != nil, doc["name"] != nil { return AdminStore.pluginCacheKey(doc) }
        if let g = doc["group"]?.stringValue, let c = doc["consumer"]?["id"]?.stringValue {
            return AdminStore.aclCacheKey(consumerID: c, group: g)
        }
        return nil
    }

    mutating func unindex(_ doc: JSON, _ id: String) {
        for f in MemTable.indexed { if let v = doc[f]?.stringValue, index[f]?[v] == id { index[f]?[v] = nil } }
        if let ck = MemTable.cacheKey(doc), index["#cache_key"]?[ck] == id { index["#cache_key"]?[ck] = nil }
        for f in MemTable.foreignFields {
            guard let p = doc[f]?["id"]?.stringValue, refs[f]?[p] != nil else { continue }
            refs[f]![p]!.remove(id)
            // A parent without children leaves no entry: otherwise every parent ever referenced (a
            // service created and deleted) kept an empty set, and the master's memory grew with
            // every Admin API write (found by `make soak`).
            if refs[f]![p]!.isEmpty { refs[f]![p] = nil }
        }
    }

    mutating func reindex(_ doc: JSON, _ id: String) {
        for f in MemTable.indexed { if let v = doc[f]?.stringValue { index[f, default: [:]][v] = id } }
        if let ck = MemTable.cacheKey(doc) { index["#cache_key", default: [:]][ck] = id }
        for f in MemTable.foreignFields {
            if let p = doc[f]?["id"]?.stringValue { refs[f, default: [:]][p, default: []].insert(id) }
        }
    }

    /// Set when removals left `ids` stale; `compact()` rebuilds it from `seqs`.
    var dirty = false

    mutating func put(_ id: String, _ doc: JSON, seq: Int64, raw bytes: [UInt8]? = nil) {
        raw[id] = bytes ?? doc.serialized()
        if let old = docs[id] { unindex(old, id) }
        reindex(doc, id)
        if docs[id] == nil {
            // Appending keeps order because new seqs grow monotonically; loads come in seq order too.
            if !dirty { ids.append(id) }
            seqs[id] = seq
        }
        docs[id] = doc
    }
    mutating func remove(_ id: String) {
        guard let old = docs.removeValue(forKey: id) else { return }
        raw[id] = nil
        unindex(old, id)
        seqs[id] = nil
        dirty = true
    }
    mutating func compact() {
        guard dirty else { return }
        ids = seqs.sorted { $0.value < $1.value }.map(\.key)
        dirty = false
    }
}

public final class AdminStore {
    static func tableSQL(_ kind: EntityKind) -> String {
        let cols = kind.keyColumns.map { "\($0.0) TEXT" + ($0.1 ? " UNIQUE" : "") + ", " }.joined()
        let idx = kind.keyColumns.filter { !$0.1 }.map {
            "CREATE INDEX IF NOT EXISTS \(kind.rawValue)_\($0.0)_idx ON \(kind.rawValue)(\($0.0));"
        }.joined()
        return "CREATE TABLE IF NOT EXISTS \(kind.rawValue) (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, " +
            "created_at REAL NOT NULL DEFAULT 0, \(cols)doc TEXT NOT NULL);" + idx
    }

    /// Schema migrations; `PRAGMA user_version` = number applied. Append only.
    static let migrations: [String] = [
        // 1: initial schema
        EntityKind.initialKinds.map(tableSQL).joined() + "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);",
        // 2: key-auth credentials
        tableSQL(.keyauthCredentials),
        // 3: basic-auth credentials and ACL groups
        tableSQL(.basicauthCredentials) + tableSQL(.acls),
        // 4: TLS certificates, their SNIs and CA certificates
        tableSQL(.certificates) + tableSQL(.snis) + tableSQL(.caCertificates),
    ]

    let db: SQLiteDB
    public let path: String
    /// Set when the database is elsewhere (PostgreSQL, GWServer): `write` hands the ops to it and leaves
    /// the mirror alone; the mirror changes when the committed change comes back (`applyReplicated`).
    public var writeSink: (([StoreOp]) throws(AdminStoreError) -> Void)?
    public let inMemory: Bool
    var tables: [EntityKind: MemTable] = [:]
    var nextSeq: Int64 = 1
    /// Node id persisted in the database (stable across restarts).
    public private(set) var nodeID: String = ""

    /// Opens (creating if needed) the database at `path`; ":memory:" gives an in-memory store (DB-less mode).
    public init(path: String) throws(AdminStoreError) {
        self.path = path
        inMemory = path == ":memory:"
        db = try SQLiteDB(path: path)
        if !inMemory {
            let st = try db.prepare("PRAGMA journal_mode=WAL")
            _ = try st.step()
            let mode = st.text(0) ?? ""
            if mode.lowercased() != "wal" { throw AdminStoreError("database '\(path)': cannot enable WAL journal (got '\(mode)')") }
        }
        try db.exec("PRAGMA synchronous=FULL")
        try db.exec("PRAGMA foreign_keys=OFF")
        try migrate()
        try load()
    }

    public var schemaVersion: Int { Int((try? db.scalarInt("PRAGMA user_version")) ?? 0) }

    func migrate() throws(AdminStoreError) {
        let current = Int(try db.scalarInt("PRAGMA user_version"))
        guard current < AdminStore.migrations.count else { return }
        for v in current..<AdminStore.migrations.count {
            try db.exec("BEGIN IMMEDIATE")
            do throws(AdminStoreError) {
                try db.exec(AdminStore.migrations[v])
                try db.exec("PRAGMA user_version=\(v + 1)")
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw error
            }
        }
    }

    func load() throws(AdminStoreError) {
        var maxSeq: Int64 = 0
        for kind in EntityKind.allCases {
            var t = MemTable()
            let st = try db.prepare("SELECT id, seq, doc FROM \(kind.rawValue) ORDER BY seq")
            while try st.step() {
                guard let id = st.text(0) else { continue }
                let seq = st.int(1)
                let bytes = st.bytes(2)
                guard let doc = try? JSON.parse(bytes) else {
                    throw AdminStoreError("database '\(path)': corrupt document for \(kind.rawValue) '\(id)'")
                }
                t.put(id, doc, seq: seq, raw: bytes)
                maxSeq = max(maxSeq, seq)
            }
            tables[kind] = t
        }
        nextSeq = maxSeq + 1
        let st = try db.prepare("SELECT value FROM meta WHERE key = 'node_id'")
        if try st.step(), let v = st.text(0) {
            nodeID = v
        } else {
            nodeID = UUID4.generate()
            let ins = try db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('node_id', ?)")
            ins.bind(1, nodeID)
            _ = try ins.step()
        }
    }

    // MARK: Reads

    /// All documents of a kind in insertion order.
    public func all(_ kind: EntityKind) -> [JSON] {
        let t = tables[kind]!
        return t.ids.map { t.docs[$0]! }
    }
    public func count(_ kind: EntityKind) -> Int { tables[kind]!.ids.count }

    /// Appends `[doc,doc,...]` of a kind in insertion order, from the stored serializations.
    public func appendSerializedArray(_ kind: EntityKind, into out: inout [UInt8]) {
        let t = tables[kind]!
        out.append(UInt8(ascii: "["))
        for (i, id) in t.ids.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: t.raw[id]!)
        }
        out.append(UInt8(ascii: "]"))
    }
    public func get(_ kind: EntityKind, id: String) -> JSON? { tables[kind]![id: id] }
    func seq(_ kind: EntityKind, id: String) -> Int64? { tables[kind]!.seqs[id] }
    /// First document whose top-level string `field` equals `value`.
    public func find(_ kind: EntityKind, field: String, value: String) -> JSON? {
        let t = tables[kind]!
        if MemTable.indexed.contains(field) {
            guard let id = t.index[field]?[value] else { return nil }
            return t.docs[id]
        }
        for id in t.ids where t.docs[id]?[field]?.stringValue == value { return t.docs[id] }
        return nil
    }
    /// Documents whose foreign key `field` (`{"id":...}`) references `id`.
    public func referencing(_ kind: EntityKind, field: String, id: String) -> [JSON] {
        let t = tables[kind]!
        guard let children = t.refs[field]?[id], !children.isEmpty else { return [] }
        return children.sorted { (t.seqs[$0] ?? 0) < (t.seqs[$1] ?? 0) }.compactMap { t.docs[$0] }
    }

    /// Entity with the given cache key (targets: upstream+target; plugins: name+route+service+consumer).
    func findByCacheKey(_ kind: EntityKind, _ key: String) -> JSON? {
        let t = tables[kind]!
        guard let id = t.index["#cache_key"]?[key] else { return nil }
        return t.docs[id]
    }

    // MARK: Writes

    /// Applies all ops in one committed transaction, then updates the in-memory mirror.
    /// Scratch stores (declarative validation) keep only the in-memory mirror.
    var mirrorOnly = false

    public func write(_ ops: [StoreOp]) throws(AdminStoreError) {
        guard !ops.isEmpty else { return }
        if let writeSink { try writeSink(ops); return }
        if mirrorOnly { applyToMirror(ops, assigned: [:]); return }
        try db.exec("BEGIN IMMEDIATE")
        var assigned: [String: Int64] = [:]   // "kind/id" → seq
        var statements: [String: Statement] = [:]
        do throws(AdminStoreError) {
            var seq = nextSeq
            for op in ops {
                switch op {
                case .put(let kind, let doc):
                    guard let id = doc["id"]?.stringValue else { throw AdminStoreError("document without id") }
                    let akey = "\(kind.rawValue)/\(id)"
                    let s = tables[kind]!.seqs[id] ?? assigned[akey] ?? { seq += 1; return seq - 1 }()
                    let st: Statement
                    if let cached = statements["put/\(kind.rawValue)"] { st = cached; st.reset() } else {
                        let cols = kind.keyColumns.map(\.0)
                        let names = (["id", "seq", "created_at"] + cols + ["doc"]).joined(separator: ", ")
                        let qs = Array(repeating: "?", count: cols.count + 4).joined(separator: ", ")
                        let updates = (["seq", "created_at"] + cols + ["doc"]).map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
                        st = try db.prepare("INSERT INTO \(kind.rawValue) (\(names)) VALUES (\(qs)) ON CONFLICT(id) DO UPDATE SET \(updates)")
                        statements["put/\(kind.rawValue)"] = st
                    }
                    st.bind(1, id)
                    st.bind(2, s)
                    st.bind(3, doc["created_at"]?.doubleValue ?? 0)
                    var i: Int32 = 4
                    for v in kind.keyValues(doc) { st.bind(i, v); i += 1 }
                    st.bind(i, doc.serializedString)
                    _ = try st.step()
                    assigned[akey] = s
                case .delete(let kind, let id):
                    let st: Statement
                    if let cached = statements["del/\(kind.rawValue)"] { st = cached; st.reset() } else {
                        st = try db.prepare("DELETE FROM \(kind.rawValue) WHERE id = ?")
                        statements["del/\(kind.rawValue)"] = st
                    }
                    st.bind(1, id)
                    _ = try st.step()
                }
            }
            try db.exec("COMMIT")
            nextSeq = seq
        } catch {
            try? db.exec("ROLLBACK")
            throw error
        }
        applyToMirror(ops, assigned: assigned)
    }

    func applyToMirror(_ ops: [StoreOp], assigned: [String: Int64]) {
        for op in ops {
            switch op {
            case .put(let kind, let doc):
                guard let id = doc["id"]?.stringValue else { continue }
                let seq = assigned["\(kind.rawValue)/\(id)"] ?? tables[kind]!.seqs[id] ?? { nextSeq += 1; return nextSeq - 1 }()
                tables[kind]!.put(id, doc, seq: seq)
                noteChange(kind, id)
            case .delete(let kind, let id):
                tables[kind]!.remove(id)
                noteChange(kind, id)
            }
        }
        for kind in EntityKind.allCases { tables[kind]!.compact() }
    }

    /// Removes every entity (used by DB-less `POST /config` and declarative reloads).
    public func replaceAll(with ops: [StoreOp]) throws(AdminStoreError) {
        var all: [StoreOp] = []
        for kind in EntityKind.allCases {
            for id in tables[kind]!.ids { all.append(.delete(kind, id)) }
        }
        try write(all + ops)
        changedAll = true
        changed = []
    }

    // MARK: Change tracking (for the configuration publisher's deltas)

    /// Entities put or deleted since the last `takeChanges()`, in write order (an id may repeat).
    private var changed: [(EntityKind, String)] = []
    /// Everything may have changed (replaceAll, or too many changes to list).
    private var changedAll = false
    static let maxTrackedChanges = 10_000

    func markAllChanged() { changedAll = true; changed = [] }

    private func noteChange(_ kind: EntityKind, _ id: String) {
        guard !changedAll else { return }
        if changed.count >= AdminStore.maxTrackedChanges { changedAll = true; changed = []; return }
        changed.append((kind, id))
    }

    /// What changed since the last call: `all` when a whole-configuration replacement happened (or more
    /// than `maxTrackedChanges` entities changed), else the (kind, id) pairs written, each listed once,
    /// in the order of their first write.
    public func takeChanges() -> (all: Bool, items: [(EntityKind, String)]) {
        defer { changed = []; changedAll = false }
        if changedAll { return (true, []) }
        var seen = Set<String>()
        var items: [(EntityKind, String)] = []
        for (k, id) in changed where seen.insert("\(k.rawValue)/\(id)").inserted { items.append((k, id)) }
        return (false, items)
    }

    // MARK: Keys

    static func targetCacheKey(upstreamID: String, target: String) -> String { "\(upstreamID)|\(target)" }

    /// ACL cache key (Kong's `cache_key = {consumer, group}`).
    static func aclCacheKey(consumerID: String, group: String) -> String { "acls|\(consumerID)|\(group)" }

    static func pluginCacheKey(_ doc: JSON) -> String {
        func fk(_ f: String) -> String { doc[f]?["id"]?.stringValue ?? "" }
        return "\(doc["name"]?.stringValue ?? ""):\(fk("route")):\(fk("service")):\(fk("consumer"))"
    }
}

extension MemTable {
    subscript(id id: String) -> JSON? { docs[id] }
}
