// Kong error bodies (KONG.md §2.2) and pl.pretty-style key formatting.
import GWJSON

enum Kong {
    /// Lua `pl.pretty.write(v, space)`: `{name="x"}` with space "" (keys sorted, `null`), multi-line with indent.
    static func pretty(_ v: JSON, space: String = "", level: Int = 0) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int, .double: return v.serializedString
        case .string(let s): return "\"" + s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
        case .array(let a):
            return wrap(a.map { pretty($0, space: space, level: level + 1) }, space: space, level: level)
        case .object(let o):
            let eq = space.isEmpty ? "=" : " = "
            return wrap(o.sortedByKey().map { kv in
                "\(luaKey(kv.key))\(eq)\(pretty(kv.value, space: space, level: level + 1))"
            }, space: space, level: level)
        }
    }

    static func wrap(_ items: [String], space: String, level: Int) -> String {
        if space.isEmpty { return "{" + items.joined(separator: ",") + "}" }
        if items.isEmpty { return "{}" }
        let inner = String(repeating: space, count: level + 1)
        let outer = String(repeating: space, count: level)
        return "{\n" + items.map { inner + $0 }.joined(separator: ",\n") + "\n" + outer + "}"
    }

    static func luaKey(_ k: String) -> String {
        let u = Array(k.utf8)
        let ident = !u.isEmpty && !(u[0] >= 0x30 && u[0] <= 0x39) && u.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
        }
        return ident ? k : "[\"\(k)\"]"
    }

    static func message(_ status: Int, _ msg: String) -> (Int, JSON) { (status, ["message": .string(msg)]) }

    static func schemaViolation(_ e: Errors) -> (Int, JSON) {
        (400, ["code": 2, "name": "schema violation", "message": .string(e.message), "fields": e.json])
    }
    static func schemaViolation(field: String, _ msg: String) -> (Int, JSON) {
        var e = Errors(); e.field(field, msg); return schemaViolation(e)
    }
    static func invalidPrimaryKey(_ id: String) -> (Int, JSON) {
        (400, ["code": 1, "name": "invalid primary key", "message": .string("invalid primary key: '{id=\"\(id)\"}'"),
               "fields": ["id": .string(id)]])
    }
    static func primaryKeyViolation(_ id: String) -> (Int, JSON) {
        (400, ["code": 3, "name": "primary key violation",
               "message": .string("primary key violation on key '{id=\"\(id)\"}'"), "fields": ["id": .string(id)]])
    }
    static func foreignKeyViolation(field: String, key: JSON, parent: EntityKind) -> (Int, JSON) {
        (400, ["code": 4, "name": "foreign key violation",
               "message": .string("the foreign key '\(pretty(key))' does not reference an existing '\(parent.rawValue)' entity."),
               "fields": .object(JSONObject([(field, key)]))])
    }
    /// Code 13 (kong/db/errors.lua foreign_keys_unresolved): per foreign field, its unique fields' messages.
    static func foreignKeysUnresolved(_ errors: [(String, [(String, String)])]) -> (Int, JSON) {
        var fields = JSONObject()
        var parts: [String] = []
        for (f, subs) in errors.sorted(by: { $0.0 < $1.0 }) {
            var o = JSONObject()
            for (k, msg) in subs.sorted(by: { $0.0 < $1.0 }) {
                o[k] = .string(msg)
                parts.append("\(f).\(k): \(msg)")
            }
            fields[f] = .object(o)
        }
        let msg = parts.count == 1 ? "foreign key unresolved (\(parts[0]))"
                                   : "\(parts.count) foreign keys unresolved (\(parts.joined(separator: "; ")))"
        return (400, ["code": 13, "name": "foreign keys unresolved", "message": .string(msg), "fields": .object(fields)])
    }
    static func referencedBy(_ child: EntityKind, _ parent: EntityKind) -> (Int, JSON) {
        (400, ["code": 4, "name": "foreign key violation",
               "message": .string("an existing '\(child.rawValue)' entity references this '\(parent.rawValue)' entity"),
               "fields": ["@referenced_by": .string(child.rawValue)]])
    }
    static func unique(_ fields: JSON) -> (Int, JSON) {
        (409, ["code": 5, "name": "unique constraint violation",
               "message": .string("UNIQUE violation detected on '\(pretty(fields))'"), "fields": fields])
    }
    static func notFoundEntity(_ key: JSON, byPrimaryKey: Bool) -> (Int, JSON) {
        let msg = byPrimaryKey ? "could not find the entity with primary key '\(pretty(key))'"
                               : "could not find the entity with '\(pretty(key))'"
        return (404, ["code": 6, "name": "not found", "message": .string(msg), "fields": key])
    }
    static func invalidOffset(_ o: String) -> (Int, JSON) {
        (400, ["code": 7, "name": "invalid offset", "message": .string("'\(o)' is not a valid offset: bad base64 encoding"),
               "fields": ["offset": .string(o)]])
    }
    static func databaseError() -> (Int, JSON) { (500, ["message": "An unexpected error occurred"]) }
    static func invalidSize(_ msg: String) -> (Int, JSON) {
        (400, ["code": 9, "name": "invalid size", "message": .string(msg)])
    }
    static func invalidOptions(_ key: String, _ msg: String) -> (Int, JSON) {
        (400, ["code": 11, "name": "invalid options", "message": .string("invalid option (\(key): \(msg))"),
               "options": .object(JSONObject([(key, .string(msg))]))])
    }
    static func operationUnsupported(_ verb: String, _ kind: String) -> (Int, JSON) {
        (405, ["code": 12, "name": "operation unsupported",
               "message": .string("cannot \(verb) '\(kind)' entities when not using a database")])
    }
    static func invalidDeclarative(_ errs: JSON, message: String) -> (Int, JSON) {
        (400, ["code": 14, "name": "invalid declarative configuration", "message": .string(message), "fields": errs])
    }
}

extension String {
    func replacingAll(_ a: String, with b: String) -> String {
        guard contains(a) else { return self }
        return split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
