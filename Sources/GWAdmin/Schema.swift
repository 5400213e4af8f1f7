// A small declarative schema engine mirroring Kong's (`kong/db/schema/init.lua`): field types, defaults,
// generic validators with Kong's messages, form-body type inference, PATCH deep merge, error flattening.
import GWJSON

indirect enum FType: Sendable {
    case string, integer, number, boolean
    case array(Field)
    case set(Field)
    case map(Field)            // values; keys are strings
    case record([Field])
    case foreign(EntityKind)
}

struct Field: Sendable {
    var name: String
    var type: FType
    var required = false
    var defaultValue: JSON? = nil
    var oneOf: [String]? = nil
    var oneOfInts: [Int]? = nil
    var between: (Double, Double)? = nil
    var greaterThan: Double? = nil
    var lenMin: Int? = nil
    var custom: (@Sendable (JSON) -> String?)? = nil
    /// Records: when absent, nil default means "build from subfield defaults"; nullableRecord = default null.
    var nullableRecord = false
    var auto = false

    init(_ name: String, _ type: FType, required: Bool = false, default d: JSON? = nil, oneOf: [String]? = nil,
         oneOfInts: [Int]? = nil, between: (Double, Double)? = nil, greaterThan: Double? = nil, lenMin: Int? = nil,
         nullableRecord: Bool = false, auto: Bool = false, custom: (@Sendable (JSON) -> String?)? = nil) {
        self.name = name; self.type = type; self.required = required; self.defaultValue = d; self.oneOf = oneOf
        self.oneOfInts = oneOfInts; self.between = between; self.greaterThan = greaterThan; self.lenMin = lenMin
        self.nullableRecord = nullableRecord; self.auto = auto; self.custom = custom
    }

    static func element(_ t: FType, oneOf: [String]? = nil, between: (Double, Double)? = nil,
                        custom: (@Sendable (JSON) -> String?)? = nil) -> Field {
        Field("", t, oneOf: oneOf, between: between, custom: custom)
    }
}

/// Accumulated validation errors in Kong's `fields` shape.
struct Errors {
    var fields = JSONObject()
    var entity: [String] = []
    var isEmpty: Bool { fields.isEmpty && entity.isEmpty }

    mutating func set(_ path: [String], _ err: JSON) {
        guard let first = path.first else { return }
        if path.count == 1 { if fields[first] == nil { fields[first] = err }; return }
        var sub = Errors()
        if case .object(let o)? = fields[first] { sub.fields = o }
        sub.set(Array(path.dropFirst()), err)
        fields[first] = .object(sub.fields)
    }
    mutating func field(_ name: String, _ msg: String) { set([name], .string(msg)) }
    mutating func addEntity(_ msg: String) { entity.append(msg) }

    var json: JSON {
        var o = fields
        if !entity.isEmpty { o["@entity"] = .array(entity.map { .string($0) }) }
        return .object(o)
    }

    /// Kong's `schema_violation` message parts (`kong/db/errors.lua`): "@entity" messages first, then fields
    /// sorted; a table-valued field contributes `field.sub: value` per sorted sub-key, deeper tables pl.pretty-printed.
    var flattened: [String] {
        var out = entity
        for (k, v) in fields.sortedByKey() where k != "@entity" {
            switch v {
            case .object(let sub):
                for (sk, sv) in sub.sortedByKey() { out.append("\(k).\(sk): \(Errors.leaf(sv))") }
            case .array(let a):
                for (i, sv) in a.enumerated() where !sv.isNull { out.append("\(k).\(i + 1): \(Errors.leaf(sv))") }
            default:
                out.append("\(k): \(Errors.leaf(v))")
            }
        }
        return out
    }

    static func leaf(_ v: JSON) -> String {
        switch v {
        case .string(let s): return s
        case .object, .array: return Kong.pretty(v, space: "  ")
        default: return v.serializedString
        }
    }

    var message: String {
        let f = flattened
        if f.count == 1 { return "schema violation (\(f[0]))" }
        return "\(f.count) schema violations (\(f.joined(separator: "; ")))"
    }
}

enum Schema {
    static func typeError(_ t: FType) -> String {
        switch t {
        case .string: "expected a string"
        case .integer: "expected an integer"
        case .number: "expected a number"
        case .boolean: "expected a boolean"
        case .array: "expected an array"
        case .set: "expected a set"
        case .map: "expected a map"
        case .record, .foreign: "expected a record"
        }
    }

    static func fmtNum(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d) }

    /// Validates a non-absent value; returns the error (string/object/array) or nil.
    static func validate(_ v: JSON, _ f: Field) -> JSON? {
        if v.isNull { return f.required ? .string("required field missing") : nil }
        switch f.type {
        case .string:
            guard let s = v.stringValue else { return .string(typeError(f.type)) }
            if let m = f.lenMin, s.unicodeScalars.count < m { return .string("length must be at least \(m)") }
            if s.isEmpty && f.lenMin == nil { return .string("length must be at least 1") }
        case .integer:
            guard case .int = v else {
                if case .double(let d) = v, d == d.rounded(), abs(d) < 1e15 { break }
                return .string(typeError(f.type))
            }
        case .number:
            guard v.isNumber else { return .string(typeError(f.type)) }
        case .boolean:
            guard v.boolValue != nil else { return .string(typeError(f.type)) }
        case .array(let el), .set(let el):
            guard let a = v.arrayValue else { return .string(typeError(f.type)) }
            if let m = f.lenMin, a.count < m { return .string("length must be at least \(m)") }
            // Kong indexes element errors: `fields.<name>` is an array holding each failing element's
            // error at its position (null for valid ones before it), e.g. ["expected one of: …"].
            var errs: [JSON] = []
            for (i, e) in a.enumerated() {
                let err: JSON? = e.isNull ? .string("required field missing") : validate(e, el)
                if let err {
                    while errs.count < i { errs.append(.null) }
                    errs.append(err)
                }
            }
            if !errs.isEmpty { return .array(errs) }
        case .map(let valField):
            guard let o = v.objectValue else { return .string(typeError(f.type)) }
            for (_, e) in o { if let err = validate(e, valField) { return err } }
        case .record(let fields):
            guard let o = v.objectValue else { return .string(typeError(f.type)) }
            var errs = Errors()
            validateRecord(o, fields, into: &errs)
            if !errs.isEmpty { return errs.json }
        case .foreign(let parent):
            // Kong's validate_field for "foreign": validate_primary_key(value, true); when that fails, the
            // given fields are validated against the parent's schema (its errors win), else the pk errors.
            guard let o = v.objectValue else { return .string(typeError(f.type)) }
            let pkError: String?
            switch o["id"] {
            case nil: pkError = "missing primary key"
            case .null?: pkError = "required field missing"
            case .string(let s)?: pkError = UUID4.isValid(s) ? nil : "expected a valid UUID"
            default: pkError = "expected a string"
            }
            guard let pkError else { return nil }
            var errs = Errors()
            let parentFields = Schemas.of(parent).fields
            for (k, e) in o {
                guard let pf = parentFields.first(where: { $0.name == k }) else { errs.field(k, "unknown field"); continue }
                if let err = validate(e, pf) { errs.set([k], err) }
            }
            if !errs.isEmpty { return errs.json }
            return .object(JSONObject([("id", .string(pkError))]))
        }
        if let one = f.oneOf, let s = v.stringValue, !one.contains(s) {
            return .string("expected one of: " + one.joined(separator: ", "))
        }
        if let one = f.oneOfInts, let i = v.intValue, !one.contains(i) {
            return .string("expected one of: " + one.map(String.init).joined(separator: ", "))
        }
        if let (lo, hi) = f.between, let d = v.doubleValue, d < lo || d > hi {
            return .string("value should be between \(fmtNum(lo)) and \(fmtNum(hi))")
        }
        if let g = f.greaterThan, let d = v.doubleValue, d <= g { return .string("value must be greater than \(fmtNum(g))") }
        if let c = f.custom, let msg = c(v) { return .string(msg) }
        return nil
    }

    static func validateRecord(_ o: JSONObject, _ fields: [Field], into errs: inout Errors) {
        for (k, _) in o where !fields.contains(where: { $0.name == k }) { errs.field(k, "unknown field") }
        for f in fields {
            if let err = validate(o[f.name] ?? .null, f) { errs.set([f.name], err) }
        }
    }

    /// Default for an absent field.
    static func defaultFor(_ f: Field) -> JSON {
        if let d = f.defaultValue { return d }
        if case .record(let sub) = f.type, !f.nullableRecord { return .object(fillDefaults(JSONObject(), sub)) }
        return .null
    }

    /// Fills defaults for absent fields (recursively in records); output ordered by schema, unknown keys kept last.
    static func fillDefaults(_ o: JSONObject, _ fields: [Field]) -> JSONObject {
        var out = JSONObject()
        for f in fields {
            if let v = o[f.name] {
                if case .record(let sub) = f.type, case .object(let so) = v {
                    out[f.name] = .object(fillDefaults(so, sub))
                } else {
                    out[f.name] = v
                }
            } else {
                out[f.name] = defaultFor(f)
            }
        }
        for (k, v) in o where out[k] == nil { out[k] = v }
        return out
    }

    /// PATCH merge: records deep-merged, everything else replaced.
    static func merge(_ base: JSONObject, _ patch: JSONObject, _ fields: [Field]) -> JSONObject {
        var out = base
        for (k, v) in patch {
            if let f = fields.first(where: { $0.name == k }), case .record(let sub) = f.type,
               case .object(let po) = v, case .object(let bo)? = base[k] {
                out[k] = .object(merge(bo, po, sub))
            } else {
                out[k] = v
            }
        }
        return out
    }

    /// Form-body inference: strings → booleans/numbers, scalars → 1-element arrays, "" → null, indexed objects → arrays.
    static func coerce(_ v: JSON, _ f: Field) -> JSON {
        if case .string(let s) = v, s.isEmpty { return .null }
        switch f.type {
        case .boolean:
            if case .string(let s) = v { if s == "true" { return .bool(true) }; if s == "false" { return .bool(false) } }
        case .integer, .number:
            if case .string(let s) = v {
                if let i = Int64(s) { return .int(i) }
                if let d = Double(s), d.isFinite { return .double(d) }
            }
        case .array(let el), .set(let el):
            switch v {
            case .array(let a): return .array(a.map { coerce($0, el) })
            case .object(let o):
                let keyed = o.pairs.compactMap { p in Int(p.key).map { ($0, p.value) } }
                if keyed.count == o.count { return .array(keyed.sorted { $0.0 < $1.0 }.map { coerce($0.1, el) }) }
            case .null: return .null
            default: return .array([coerce(v, el)])
            }
        case .map(let valField):
            if case .object(let o) = v {
                var out = JSONObject()
                for (k, e) in o { out[k] = coerce(e, valField) }
                return .object(out)
            }
        case .record(let sub):
            if case .object(let o) = v { return .object(coerceRecord(o, sub)) }
        case .foreign:
            if case .string(let s) = v { return UUID4.isValid(s) ? ["id": .string(s)] : ["name": .string(s)] }
            if case .object(let o) = v {
                // `service.name=` in a form is null, as every empty form value (Kong's spec expects
                // `service.id: missing primary key` for it, as for JSON null).
                var out = JSONObject()
                for (k, e) in o { if case .string(let s) = e, s.isEmpty { out[k] = .null } else { out[k] = e } }
                return .object(out)
            }
        case .string: break
        }
        return v
    }

    static func coerceRecord(_ o: JSONObject, _ fields: [Field]) -> JSONObject {
        var out = JSONObject()
        for (k, v) in o {
            if let f = fields.first(where: { $0.name == k }) { out[k] = coerce(v, f) } else {
                if case .string(let s) = v, s.isEmpty { out[k] = .null } else { out[k] = v }
            }
        }
        return out
    }
}
