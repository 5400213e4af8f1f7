// rate-limiting's policy settings in the Admin API (Kong 3.10 `kong/plugins/rate-limiting/schema.lua`,
// `kong/tools/redis/schema.lua`, KONG-PLUGINS.md §4): the deprecated flat `redis_*` shorthands, and the
// refusal of what the data path would not do. The field list and defaults are in EntitySchemas.swift.
//
// Refused with Kong's field errors:
// - `policy = cluster` without database = postgres: Kong offers it only with a database its nodes share;
//   in DB-less mode its schema says `expected one of: local, redis` (the same answer here). SQLite is one
//   node's file: cluster would only be `local` under another name, so it is refused with a message that
//   names what it needs (GWServer/RateLimitClusterSync.swift holds the postgres side).
// - `sync_rate` other than -1 with redis (every request is checked in Redis).
// `redis.ssl`, `ssl_verify` and `server_name` are accepted (TLS to Redis: GWRedis over GWTLS).
// A Redis host name is accepted (Kong's `typedefs.host`): the master resolves it (GWPlugins/LogHosts.swift).
import GWJSON

extension AdminAPI {
    /// Kong's shorthand fields (removal planned for 4.0): `config.redis_<field>` → `config.redis.<field>`.
    static let redisShorthands: [(String, String, JSONKindHint)] = [
        ("redis_host", "host", .string), ("redis_port", "port", .integer), ("redis_password", "password", .string),
        ("redis_username", "username", .string), ("redis_ssl", "ssl", .boolean), ("redis_ssl_verify", "ssl_verify", .boolean),
        ("redis_server_name", "server_name", .string), ("redis_timeout", "timeout", .integer),
        ("redis_database", "database", .integer),
    ]
    enum JSONKindHint { case string, integer, boolean }

    /// The shorthands of the input moved into `config.redis` (Kong's `process_auto_fields`): a shorthand and
    /// its new field both given with different values is Kong's field error.
    static func applyRateLimitingShorthands(_ input: inout JSONObject) throws(OpFailure) {
        guard case .object(var cfg)? = input["config"] else { return }
        var redis: JSONObject = cfg["redis"]?.objectValue ?? [:]
        var moved = false
        var e = Errors()
        for (flat, field, kind) in redisShorthands {
            guard let v = cfg.removeValue(forKey: flat) else { continue }
            moved = true
            if v.isNull { continue }
            var value = v
            // Form-encoded input carries text: the shorthand's own type, as Kong's coercion would.
            if let s = v.stringValue {
                switch kind {
                case .integer: if let i = Int(s) { value = JSON(i) }
                case .boolean: if s == "true" { value = .bool(true) } else if s == "false" { value = .bool(false) }
                case .string: break
                }
            }
            if let given = redis[field], !given.isNull, given != value {
                e.set(["config", flat], .string("both deprecated and new field are used but their values mismatch: " +
                    "\(flat) = \(luaString(value)) vs redis.\(field) = \(luaString(given))"))
                continue
            }
            redis[field] = value
        }
        if !e.isEmpty { throw OpFailure(Kong.schemaViolation(e)) }
        guard moved else { return }
        cfg["redis"] = .object(redis)
        input["config"] = .object(cfg)
    }

    /// Lua's tostring of a scalar.
    private static func luaString(_ v: JSON) -> String { v.stringValue ?? Kong.pretty(v) }

    /// Kong shows the deprecated fields in its answers, mirroring `config.redis` (spec
    /// 06-shorthand_fields_spec.lua): they are dropped before validation and written again after it.
    static func rateLimitingLegacyFields(_ doc: inout JSONObject, add: Bool) {
        guard case .object(var cfg)? = doc["config"] else { return }
        let redis = cfg["redis"]?.objectValue
        for (flat, field, _) in redisShorthands {
            cfg[flat] = add ? (redis?[field] ?? .null) : nil
        }
        doc["config"] = .object(cfg)
    }

    /// The policy checks (after the schema's field checks).
    static func rateLimitingPolicyChecks(_ cfg: JSONObject, _ e: inout Errors, databaseOff: Bool, sharedDatabase: Bool) {
        let policy = cfg["policy"]?.stringValue ?? "local"
        if policy == "cluster" && !sharedDatabase {
            e.set(["config", "policy"], .string(databaseOff ? "expected one of: local, redis"
                : "policy 'cluster' needs database = postgres (this node's database is its own SQLite file); use local or redis"))
        }
        if policy != "redis" {
            if let rate = cfg["sync_rate"]?.doubleValue, rate != -1 {
                e.set(["config"], .string("sync_rate can only be used with the redis policy"))
            }
            return
        }
        if let rate = cfg["sync_rate"]?.doubleValue, rate != -1 {
            if rate < 0.02 {
                e.set(["config"], .string("sync_rate must be greater than 0.02, or -1 to disable"))
            } else {
                e.set(["config", "sync_rate"], .string("sync_rate is not supported by this gateway yet; use -1 (every request is checked in Redis)"))
            }
        }
    }
}
