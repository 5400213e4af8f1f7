// The Admin API over an external database (PostgreSQL in GWServer): writes go to the sink and leave the
// mirror alone, committed changes come back through applyReplicated, and a refused write becomes Kong's
// answer (constraintFailure).
import Testing
import GWJSON
@testable import GWAdmin

@Suite struct StoreReplicationTests {
    /// A harness whose store hands its writes to `sink` instead of SQLite.
    final class Sink { var ops: [StoreOp] = []; var down = false }

    func make() throws -> (Harness, Sink) {
        let h = try Harness()
        let sink = Sink()
        h.store.writeSink = { (ops: [StoreOp]) throws(AdminStoreError) in
            if sink.down { throw AdminStoreError("database unreachable") }
            sink.ops += ops
        }
        return (h, sink)
    }

    @Test func writesGoToTheSinkNotTheMirror() throws {
        let (h, sink) = try make()
        let (st, doc) = h.req("POST", "/services", ["name": "s1", "url": "http://a.test"])
        #expect(st == 201 && doc["name"] == "s1")
        #expect(sink.ops.count == 1)
        #expect(h.changes == 0)                         // nothing published before the commit comes back
        #expect(h.req("GET", "/services/s1").0 == 404)
        h.store.applyReplicated(sink.ops)
        #expect(h.req("GET", "/services/s1").0 == 200)
        let changes = h.store.takeChanges()
        #expect(!changes.all && changes.items.count == 1)
    }

    @Test func unreachableDatabaseIsKongs500() throws {
        let (h, sink) = try make()
        sink.down = true
        let (st, body) = h.req("POST", "/services", ["name": "s1", "url": "http://a.test"])
        #expect(st == 500 && body == ["message": "An unexpected error occurred"])
    }

    @Test func uniqueViolationNamedAfterCatchUp() throws {
        let (h, sink) = try make()
        let base = h.api.handle(AdminRequest(method: "POST", target: "/services", json: ["name": "dup", "url": "http://a.test"]))
        let mine = sink.ops
        // Another node's service of the same name arrives with the catch-up.
        let other: JSON = ["id": "6c2cbf34-6c8c-4d5e-8a3e-0cbd0b0f0a11", "name": "dup", "host": "b.test", "port": 80,
                           "protocol": "http", "created_at": 1, "updated_at": 1]
        h.store.applyReplicated([.put(.services, other)])
        let r = h.api.constraintFailure(sqlState: "23505", constraint: "services__name__uq", ops: mine, base: base)
        #expect(r.status == 409)
        let body = try JSON.parse(r.body)
        #expect(body["message"] == "UNIQUE violation detected on '{name=\"dup\"}'" && body["code"] == 5)
        #expect(r.headers.contains { $0.0 == "Content-Type" })
    }

    @Test func foreignKeyViolations() throws {
        let (h, _) = try make()
        let route: JSON = ["id": "0f7a1e0e-9b55-4f4e-8f6b-1c3a3c1b2d10", "paths": ["/x"],
                           "service": ["id": "3b1c2d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"]]
        let base = AdminResponse(status: 201, headers: [("Content-Type", "application/json; charset=utf-8")])
        let ins = h.api.constraintFailure(sqlState: "23503", constraint: "routes__service_id__fk", ops: [.put(.routes, route)], base: base)
        #expect(ins.status == 400)
        #expect(try JSON.parse(ins.body)["name"] == "foreign key violation")
        let del = h.api.constraintFailure(sqlState: "23503", constraint: "routes__service_id__fk",
                                          ops: [.delete(.services, "3b1c2d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d")], base: base)
        #expect(del.status == 400)
        #expect(try JSON.parse(del.body)["message"] == "an existing 'routes' entity references this 'services' entity")
        let other = h.api.constraintFailure(sqlState: "40001", constraint: "", ops: [], base: base)
        #expect(other.status == 500)
    }
}
