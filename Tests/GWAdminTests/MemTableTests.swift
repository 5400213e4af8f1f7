import Testing
import GWJSON
@testable import GWAdmin

/// The Admin store's in-memory mirror stays bounded under churn (found by `make soak`: empty child sets
/// of deleted parents were kept, so the master grew with every write).
@Suite struct MemTableTests {
    @Test func churnLeavesNoEmptyReferenceSets() {
        var t = MemTable()
        for n in 0 ..< 1000 {
            let service = "s\(n)", route = "r\(n)"
            t.put(route, ["id": .string(route), "name": .string(route), "service": ["id": .string(service)]], seq: Int64(n))
            #expect(t.refs["service"]?[service] == [route])
            t.remove(route)
        }
        #expect(t.refs["service"]?.isEmpty ?? true)
        #expect(t.index["name"]?.isEmpty ?? true)
        #expect(t.docs.isEmpty && t.raw.isEmpty && t.seqs.isEmpty)
        // A parent with two children keeps its entry until the last one goes.
        t.put("a", ["id": "a", "service": ["id": "p"]], seq: 1)
        t.put("b", ["id": "b", "service": ["id": "p"]], seq: 2)
        t.remove("a")
        #expect(t.refs["service"]?["p"] == ["b"])
        t.remove("b")
        #expect(t.refs["service"]?["p"] == nil)
    }
}
