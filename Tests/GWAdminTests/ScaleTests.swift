import Testing
import GWJSON
import GWStore
@testable import GWAdmin

@Suite struct ScaleTests {
    @Test func dbLessLoadOfManyRoutes() throws {
        let h = try Harness(databaseOff: true)
        let n = 3000
        var routes: [JSON] = []
        for i in 0..<n { routes.append(["name": .string("r\(i)"), "paths": [.string("/p\(i)")], "service": "svc"]) }
        var targets: [JSON] = []
        for i in 0..<500 { targets.append(["target": .string("10.0.\(i / 250).\(i % 250 + 1):80")]) }
        let doc: JSON = ["_format_version": "3.0", "services": [["name": "svc", "host": "a.test"]], "routes": .array(routes),
                         "upstreams": [["name": "u", "targets": .array(targets)]]]
        let clock = ContinuousClock()
        let t = try clock.measure { try h.api.loadDeclarative(doc) }
        #expect(h.store.count(.routes) == n && h.store.count(.targets) == 500)
        let t2 = try clock.measure { try h.api.loadDeclarative(doc) }  // replace with the same ids
        #expect(h.store.count(.routes) == n)
        let bytes = h.api.publishedDocument(generation: 1)
        let snap = try ConfigSnapshot.decode(bytes: bytes)
        #expect(snap.routes.count == n && snap.targets.count == 500)
        print("load \(t), reload \(t2)")
        #expect(t < .seconds(20) && t2 < .seconds(20))
        let page = h.req("GET", "/routes?size=1000").1
        #expect(page["data"]?.arrayValue?.count == 1000 && page["next"]?.stringValue != nil)
    }
}
