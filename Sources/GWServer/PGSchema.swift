// The PostgreSQL schema and Kong's migration bookkeeping (KONG-TLS-CLUSTER.md C.2):
// - `schema_meta` (key, subsystem, last_executed, executed TEXT[], pending TEXT[]), one row for `core`;
//   the database "needs bootstrap" when the table does not exist;
// - one table per entity kind (id, seq, created_at, the kind's key columns, the JSON document), unique
//   constraints named `<table>__<column>__uq` and deferred foreign keys `<table>__<column>__fk` (checked
//   at commit: two nodes racing on a parent and a child are refused by the database, not the mirror);
// - `gw_changes` (seq BIGSERIAL, at, node_id, kind, id, op p|d|h, doc): the change log every write appends
//   to in its transaction; `gw_state.trimmed_through` is the highest seq deleted by trimming;
// - `ratelimiting_metrics` (Kong's columns and primary key): rate-limiting's cluster policy counters.
// Migrations are append only; each has an `up` and an optional `teardown` (run by `finish`).
import GWAdmin
import GWJSON

enum PGSchema {
    struct Migration {
        let name: String
        let up: String
        let teardown: String?
    }

    /// Advisory lock ids: writers of the change log (commit order = seq order) and migrations.
    static let writeLock: Int64 = 0x4757_4348   // "GWCH"
    static let migrationLock: Int64 = 0x4757_4D49   // "GWMI"
    static let notifyChannel = "gateway_changes"

    static func tableSQL(_ kind: EntityKind) -> String {
        var cols = ["id TEXT CONSTRAINT \"\(kind.rawValue)__id__pkey\" PRIMARY KEY", "seq BIGSERIAL",
                    "created_at DOUBLE PRECISION NOT NULL DEFAULT 0"]
        var extra = ""
        for (c, unique) in kind.keyColumns {
            var def = "\(c) TEXT"
            if unique { def += " CONSTRAINT \"\(kind.rawValue)__\(c)__uq\" UNIQUE" }
            if !unique, c.hasSuffix("_id"), let parent = parentTable(c) {
                def += " CONSTRAINT \"\(kind.rawValue)__\(c)__fk\" REFERENCES \(parent)(id) DEFERRABLE INITIALLY DEFERRED"
                extra += "CREATE INDEX IF NOT EXISTS \(kind.rawValue)_\(c)_idx ON \(kind.rawValue)(\(c));\n"
            }
            cols.append(def)
        }
        cols.append("doc TEXT NOT NULL")
        return "CREATE TABLE IF NOT EXISTS \(kind.rawValue) (\(cols.joined(separator: ", ")));\n"
            + "CREATE INDEX IF NOT EXISTS \(kind.rawValue)_seq_idx ON \(kind.rawValue)(seq);\n" + extra
    }

    static func parentTable(_ column: String) -> String? {
        switch column {
        case "service_id": "services"
        case "route_id": "routes"
        case "consumer_id": "consumers"
        case "upstream_id": "upstreams"
        default: nil
        }
    }

    static let migrations: [Migration] = [
        Migration(name: "000_base_gateway", up: """
            CREATE TABLE IF NOT EXISTS gw_changes (seq BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now(),
              node_id TEXT, kind TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL, doc TEXT);
            CREATE INDEX IF NOT EXISTS gw_changes_at_idx ON gw_changes(at);
            CREATE TABLE IF NOT EXISTS gw_state (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
            INSERT INTO gw_state (key, value) VALUES ('trimmed_through', 0) ON CONFLICT DO NOTHING;

            """ + EntityKind.allCases.map(tableSQL).joined(), teardown: nil),
        // rate-limiting's policy cluster: Kong's table (000_base_rate_limiting + the ttl column and indexes of
        // its later migrations), written by GWServer/RateLimitClusterSync.swift.
        Migration(name: "001_ratelimiting_metrics", up: """
            CREATE TABLE IF NOT EXISTS ratelimiting_metrics (identifier TEXT NOT NULL, period TEXT NOT NULL,
              period_date TIMESTAMP WITH TIME ZONE NOT NULL,
              service_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::UUID,
              route_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::UUID,
              value INTEGER, ttl TIMESTAMP WITH TIME ZONE,
              PRIMARY KEY (identifier, period, period_date, service_id, route_id));
            CREATE INDEX IF NOT EXISTS ratelimiting_metrics_idx ON ratelimiting_metrics (service_id, route_id, period_date, period);
            CREATE INDEX IF NOT EXISTS ratelimiting_metrics_ttl_idx ON ratelimiting_metrics (ttl);

            """, teardown: nil),
    ]

    static let schemaMetaSQL = """
        CREATE TABLE IF NOT EXISTS schema_meta (key TEXT, subsystem TEXT, last_executed TEXT, executed TEXT[],
          pending TEXT[], PRIMARY KEY (key, subsystem));
        """

    /// Kong's NEEDS_BOOTSTRAP_MSG (kong/cmd/utils/migrations.lua).
    static let needsBootstrapMessage = "Database needs bootstrapping or is older than Kong 1.0.\n\n"
        + "To start a new installation from scratch, run 'kong migrations bootstrap'.\n\n"
        + "To migrate from a version older than 1.0, migrated to Kong 1.5.0 first. \n"
        + "If you still have 'apis' entities, you can convert them to Routes and Services\n"
        + "using the 'kong migrations migrate-apis' command in Kong 1.5.0.\n\n"
    static let newMigrationsMessage = "New migrations available; run 'kong migrations up' to proceed"

    /// What the database holds.
    struct State {
        var bootstrapped = false
        var executed: [String] = []
        var pending: [String] = []
        var new: [Migration] { PGSchema.migrations.filter { !executed.contains($0.name) && !pending.contains($0.name) } }
    }

    /// `{a,b}` text array literal → names.
    static func parseArray(_ s: String?) -> [String] {
        guard let s, s.count >= 2 else { return [] }
        return s.dropFirst().dropLast().split(separator: ",").map { String($0).trimmingCharacters("\"") }
    }

    static func arrayLiteral(_ names: [String]) -> String {
        PG.literal("{" + names.map { "\"\($0)\"" }.joined(separator: ",") + "}") + "::TEXT[]"
    }

    static func state(_ c: PGConnection) throws(PGError) -> State {
        let r = try c.exec("SELECT to_regclass('schema_meta') IS NOT NULL")
        guard r.first?.rows.first?[0] == "t" else { return State() }
        var s = State(bootstrapped: true)
        let m = try c.exec("SELECT executed, pending FROM schema_meta WHERE key = 'schema_meta' AND subsystem = 'core'")
        if let row = m.first?.rows.first {
            s.executed = parseArray(row[0])
            s.pending = parseArray(row[1])
        }
        return s
    }

    /// The statements that record `executed` / `pending` for core.
    static func recordSQL(_ s: State) -> String {
        let last = (s.pending.last ?? s.executed.last).map { PG.literal($0) } ?? "NULL"
        return "INSERT INTO schema_meta (key, subsystem, last_executed, executed, pending) VALUES ('schema_meta', 'core', "
            + "\(last), \(arrayLiteral(s.executed)), \(arrayLiteral(s.pending))) ON CONFLICT (key, subsystem) DO UPDATE SET "
            + "last_executed = excluded.last_executed, executed = excluded.executed, pending = excluded.pending;"
    }

    /// The start check (Kong.init): connect, server version, bootstrap and new migrations. Throws the text
    /// `gateway start` prints after `Error: `.
    static func checkStartable(_ c: PGConnection) throws(PGError) {
        let v: [PGRows]
        do { v = try c.exec("SHOW server_version_num") } catch {
            throw PGError(message: "[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: \(error.message)")
        }
        if let n = v.first?.int(0, 0), n < 90500 {
            throw PGError(message: "[PostgreSQL error] PostgreSQL 9.5 or later is required (server_version_num \(n))")
        }
        let s = try state(c)
        if !s.bootstrapped { throw PGError(message: needsBootstrapMessage) }
        if !s.new.isEmpty { throw PGError(message: newMigrationsMessage) }
    }

    /// One statement per kind, then the change log's highest seq, in one REPEATABLE READ snapshot:
    /// results [1] = max seq, [2 + i] = documents of `EntityKind.allCases[i]` in seq order.
    static let loadSQL: String = {
        var sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT COALESCE(max(seq), 0) FROM gw_changes; "
        for k in EntityKind.allCases { sql += "SELECT doc FROM \(k.rawValue) ORDER BY seq; " }
        return sql + "COMMIT;"
    }()

    /// Decodes `loadSQL`'s results into put ops and the seq they are at.
    static func decodeLoad(_ r: [PGRows]) -> (ops: [StoreOp], seq: Int64)? {
        guard r.count == EntityKind.allCases.count + 3, let seq = r[1].int(0, 0) else { return nil }
        var ops: [StoreOp] = []
        for (i, k) in EntityKind.allCases.enumerated() {
            for row in r[2 + i].rows {
                guard let text = row[0], let doc = try? JSON.parse(text) else { continue }
                ops.append(.put(k, doc))
            }
        }
        return (ops, seq)
    }
}

extension String {
    func trimmingCharacters(_ c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return String(s)
    }
}
