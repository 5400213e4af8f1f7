// rate-limiting's `policy = cluster` in the Admin API: accepted with a shared database (database =
// postgres), refused on SQLite (what it needs is named) and in DB-less mode (Kong's schema answer).
import GWJSON
@testable import GWAdmin
import Testing

@Suite struct RateLimitingClusterSchemaTests {
    let cluster: JSON = ["name": "rate-limiting", "config": ["minute": 5, "policy": "cluster"]]

    @Test func refusedOnSQLite() throws {
        let h = try Harness()
        let p = h.req("POST", "/plugins", cluster)
        #expect(p.0 == 400)
        #expect(p.1["fields"]?["config"]?["policy"] == .string("policy 'cluster' needs database = postgres (this node's database is its own SQLite file); use local or redis"))
    }

    @Test func acceptedWithASharedDatabase() throws {
        let h = try Harness()
        h.api.context.sharedDatabase = true
        let p = h.req("POST", "/plugins", cluster)
        #expect(p.0 == 201 && p.1["config"]?["policy"] == "cluster" && p.1["config"]?["fault_tolerant"] == true)
        // sync_rate stays a redis-only field.
        let q = h.req("POST", "/plugins", ["name": "rate-limiting", "config": ["minute": 5, "policy": "cluster", "sync_rate": 1]])
        #expect(q.0 == 400 && q.1["fields"]?["config"] == "sync_rate can only be used with the redis policy")
    }

    @Test func refusedInDBLessDeclarative() throws {
        let h = try Harness(databaseOff: true)
        let r = h.req("POST", "/config", ["_format_version": "3.0", "plugins": [cluster]])
        #expect(r.0 == 400)
        #expect(r.1["fields"]?["plugins"]?["1"]?["config"]?["policy"] == "expected one of: local, redis")
    }
}
