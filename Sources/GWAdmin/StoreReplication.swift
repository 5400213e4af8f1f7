// The Admin API over a database that is not the embedded SQLite (PostgreSQL, driven by GWServer):
// the store's mirror is changed only by committed changes read back from the database
// (`applyReplicated`, `replaceMirror`), and a write the database refused is turned into Kong's answer
// (`constraintFailure`). Invariant: with a `writeSink`, nothing but these two functions changes the mirror.
import GWJSON
import GWStore

extension AdminStore {
    /// Applies committed changes (this node's or another node's) to the mirror and records them for the
    /// publisher's next delta.
    public func applyReplicated(_ ops: [StoreOp]) {
        guard !ops.isEmpty else { return }
        applyToMirror(ops, assigned: [:])
    }

    /// Replaces the whole mirror (start-up load, or a reload after the change log was trimmed); the next
    /// publication is a full document.
    public func replaceMirror(with ops: [StoreOp]) {
        var all: [StoreOp] = []
        for kind in EntityKind.allCases {
            for id in tables[kind]!.ids { all.append(.delete(kind, id)) }
        }
        applyToMirror(all + ops, assigned: [:])
        markAllChanged()
    }
}

extension AdminAPI {
    /// Kong's answer for a write the database refused on a constraint (`sqlState` 23505 unique, 23503
    /// foreign key; constraint names are `<table>__<column>__uq|fk|pkey`), keeping `base`'s headers. Call it
    /// after the mirror caught up with the database, so the other writer's entity is known: the unique
    /// checks of the normal path then name the clash exactly as Kong does. Anything else is Kong's 500.
    public func constraintFailure(sqlState: String, constraint: String, ops: [StoreOp], base: AdminResponse) -> AdminResponse {
        var result: (Int, JSON) = Kong.databaseError()
        let parts = constraint.components("__")
        let table = parts.first.flatMap { EntityKind(rawValue: $0) }
        let column = parts.count > 1 ? parts[1] : ""
        if sqlState == "23505" {
            result = Kong.unique(.object(JSONObject()))
            var found = false
            for case .put(let kind, let doc) in ops {
                do throws(OpFailure) { try checkUnique(kind, doc) } catch {
                    result = (error.status, error.body)
                    found = true
                    break
                }
            }
            if !found, let table {
                for case .put(let kind, let doc) in ops where kind == table {
                    if column == "id" || parts.last == "pkey" {
                        result = Kong.primaryKeyViolation(doc["id"]?.stringValue ?? "")
                    } else if let v = doc[column]?.stringValue {
                        result = Kong.unique(.object(JSONObject([(column, .string(v))])))
                    }
                    break
                }
            }
        } else if sqlState == "23503", let table, column.hasSuffix("_id") {
            let field = String(column.dropLast(3))
            let parent = AdminAPI.parentKind(field)
            var inserted = false
            for case .put(let kind, let doc) in ops where kind == table {
                if let ref = doc[field]?["id"]?.stringValue, let parent {
                    result = Kong.foreignKeyViolation(field: field, key: ["id": .string(ref)], parent: parent)
                    inserted = true
                    break
                }
            }
            if !inserted, let parent { result = Kong.referencedBy(table, parent) }
        }
        return AdminResponse(status: result.0, headers: base.headers, body: result.1.isNull ? [] : result.1.serialized())
    }

    static func parentKind(_ field: String) -> EntityKind? {
        switch field {
        case "service": .services
        case "route": .routes
        case "consumer": .consumers
        case "upstream": .upstreams
        default: nil
        }
    }
}

extension String {
    /// Split on a multi-character separator.
    func components(_ sep: String) -> [String] {
        split(separator: sep, omittingEmptySubsequences: false).map(String.init)
    }
}

extension AdminAPI {
    /// Applies a manual healthy/unhealthy override another node made (read from the change log); false
    /// when the upstream or target is unknown here or has no health checker.
    @discardableResult
    public func applyReplicatedHealth(upstreamID: String, targetID: String, address: String?, healthy: Bool) -> Bool {
        guard let up = store.get(.upstreams, id: upstreamID), let u = typed(up),
              let td = store.get(.targets, id: targetID), let t = try? Target.decode(json: td),
              let provider = context.health else { return false }
        return provider.setTargetHealth(upstream: u, target: t, address: address, healthy: healthy)
    }
}
