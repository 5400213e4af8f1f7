import Testing
import GWJSON
@testable import GWStore

/// Following deltas from a full document must give exactly the next full document.
@Suite struct PublishedConfigTests {
    static func route(_ id: String, _ path: String, service: String = "s1") -> JSON {
        ["id": .string(id), "paths": .array([.string(path)]), "service": ["id": .string(service)], "created_at": 1]
    }

    static let full: JSON = [
        "generation": 4,
        "services": .array([["id": "s1", "host": "a.test", "port": 80], ["id": "s2", "host": "name.test", "port": 80]]),
        "routes": .array([route("r1", "/a"), route("r2", "/b"), route("r3", "/c")]),
        "upstreams": .array([["id": "u1", "name": "up"]]),
        "targets": .array([["id": "t1", "upstream": ["id": "u1"], "target": "10.0.0.1:80", "weight": 100]]),
        "resolved": ["t1": .array([.array(["10.0.0.1", 80, 100])])],
        "service_addresses": ["s2": .array([.array(["10.1.1.1", 80])])],
    ]

    /// The worker's streaming decoder gives what the tree decoder gives, and reports the same errors.
    @Test func decodeFromBytesMatchesTheTreeDecoder() throws {
        let bytes = Array(Self.full.serialized())
        let tree = try PublishedConfig.decode(json: try JSON.parse(bytes))
        let streamed = try PublishedConfig.decode(bytes: bytes)
        #expect(streamed.generation == tree.generation)
        #expect(streamed.snapshot.routes == tree.snapshot.routes && streamed.snapshot.services == tree.snapshot.services)
        #expect(streamed.snapshot.targets == tree.snapshot.targets && streamed.snapshot.upstreams == tree.snapshot.upstreams)
        #expect(streamed.resolved == tree.resolved && streamed.serviceAddresses == tree.serviceAddresses)
        // empty arrays, null and absent keys
        let small = try PublishedConfig.decode(bytes: Array(#"{"generation":7,"routes":[],"services":null}"#.utf8))
        #expect(small.generation == 7 && small.snapshot.routes.isEmpty && small.snapshot.services.isEmpty)
        // errors: bad entity, non-array entity key, bad JSON inside and after an array, duplicate key
        let bad = [#"{"routes":[{"paths":["/a"]}]}"#, #"{"routes":1}"#, #"{"routes":[{"id":"r1",]}"#,
                   #"{"routes":[]} x"#, #"{"routes":[],"routes":[]}"#, #"[1]"#]
        for text in bad {
            #expect(throws: SnapshotError.self) { try PublishedConfig.decode(bytes: Array(text.utf8)) }
        }
    }

    @Test func deltasReproduceTheNextState() throws {
        var c = try PublishedConfig.decode(json: Self.full)
        #expect(c.generation == 4)
        #expect(c.resolved["t1"] == [PublishedAddress(ip: "10.0.0.1", port: 80, weight: 100)])
        #expect(c.serviceAddresses["s2"] == [PublishedAddress(ip: "10.1.1.1", port: 80, weight: 1)])

        // gen 5: route r2 updated in place, r4 appended (positions 1 and 3), a DNS answer changed
        var d = ConfigDelta(generation: 5, base: 4)
        d.puts["routes"] = [Self.route("r2", "/b2"), Self.route("r4", "/d")]
        d.serviceAddresses["s2"] = [PublishedAddress(ip: "10.1.1.2", port: 80, weight: 1)]
        // through JSON, as a worker reads it
        let wire = try ConfigDelta.decode(json: try JSON.parse(Array(d.json.serialized())))
        let ch = try c.apply(wire)
        #expect(ch == RouteChanges(previousCount: 3, positions: [1, 3]))
        #expect(c.generation == 5)
        #expect(c.snapshot.routes.map(\.id) == ["r1", "r2", "r3", "r4"])
        #expect(c.snapshot.routes[1].paths == ["/b2"])
        #expect(c.serviceAddresses["s2"]?.first?.ip == "10.1.1.2")

        // gen 6: a route deleted and a target removed (with its address entry): the old position is reported
        d = ConfigDelta(generation: 6, base: 5)
        d.deletes["routes"] = ["r1"]
        d.deletes["targets"] = ["t1"]
        d.resolvedRemoved = ["t1"]
        #expect(try c.apply(d) == RouteChanges(previousCount: 4, positions: [], removed: [0]))
        #expect(c.snapshot.routes.map(\.id) == ["r2", "r3", "r4"])
        #expect(c.snapshot.targets.isEmpty)
        #expect(c.resolved.isEmpty)

        // gen 7: a service changed: its routes count as changed
        d = ConfigDelta(generation: 7, base: 6)
        d.puts["services"] = [["id": "s1", "host": "a.test", "port": 81]]
        #expect(try c.apply(d) == RouteChanges(previousCount: 3, positions: [0, 1, 2]))
        #expect(c.snapshot.services.first?.port == 81)

        // gen 8: a service deleted: service positions shift, no RouteChanges
        d = ConfigDelta(generation: 8, base: 7)
        d.deletes["services"] = ["s2"]
        #expect(try c.apply(d) == nil)
    }

    /// Deleting with the id index (after a put built it) and without it gives the same order.
    @Test func deletesKeepTheOrderWithAndWithoutIndex() throws {
        var routes: [JSON] = []
        for i in 0..<50 { routes.append(Self.route("r\(i)", "/\(i)")) }
        var a = try PublishedConfig.decode(json: ["generation": 1, "routes": .array(routes)])
        var b = a
        var put = ConfigDelta(generation: 2, base: 1)
        put.puts["routes"] = [Self.route("r3", "/three")]
        try a.apply(put)
        try b.apply(put)
        var d = ConfigDelta(generation: 3, base: 2)
        d.deletes["routes"] = ["r49", "r0", "r17", "r18", "missing"]
        let viaIndex = try a.apply(d)
        var fresh = try PublishedConfig.decode(json: ["generation": 2, "routes": .array(b.snapshot.routes.map(\.json))])
        let viaScan = try fresh.apply(d)
        #expect(a.snapshot.routes.map(\.id) == fresh.snapshot.routes.map(\.id))
        #expect(a.snapshot.routes.count == 46)
        #expect(viaIndex?.removed == [0, 17, 18, 49] && viaScan?.removed == [0, 17, 18, 49])
    }

    @Test func aDeltaForAnotherBaseIsRefused() throws {
        var c = try PublishedConfig.decode(json: Self.full)
        let d = ConfigDelta(generation: 9, base: 8)
        #expect(throws: SnapshotError.self) { try c.apply(d) }
        #expect(c.generation == 4)
    }

    @Test func malformedDeltasAreErrorsNotCrashes() throws {
        for text in [#"{"generation":-1,"base":0}"#, #"{"generation":2}"#, #"{"generation":2,"base":1,"put":{"bogus":[]}}"#,
                     #"{"generation":2,"base":1,"delete":{"routes":[1]}}"#,
                     #"{"generation":2,"base":1,"resolved":{"t":[["x"]]}}"#] {
            #expect(throws: SnapshotError.self) { try ConfigDelta.decode(json: try JSON.parse(Array(text.utf8))) }
        }
        var c = try PublishedConfig.decode(json: Self.full)
        var d = ConfigDelta(generation: 5, base: 4)
        d.puts["routes"] = [["id": "rX", "paths": "not-an-array"]]
        #expect(throws: SnapshotError.self) { try c.apply(d) }
    }

    @Test func addressDiffListsOnlyChanges() throws {
        let old = try PublishedConfig.decode(json: Self.full)
        var new = old
        new.resolved["t2"] = [PublishedAddress(ip: "10.0.0.2", port: 80, weight: 5)]
        new.serviceAddresses["s2"] = nil
        var d = ConfigDelta(generation: 5, base: 4)
        d.diffAddresses(old: old, new: new)
        #expect(d.resolved.keys.sorted() == ["t2"])
        #expect(d.resolvedRemoved.isEmpty)
        #expect(d.serviceAddressesRemoved == ["s2"])
        var unchanged = ConfigDelta(generation: 5, base: 4)
        unchanged.diffAddresses(old: old, new: old)
        #expect(unchanged.isEmpty)
    }

    @Test func deltaFileNames() {
        #expect(PublishedConfig.deltaPath(fullPath: "/p/run/config.json", generation: 12) == "/p/run/config.delta.12.json")
        #expect(PublishedConfig.deltaGeneration(fileName: "config.delta.12.json", fullPath: "/p/run/config.json") == 12)
        #expect(PublishedConfig.deltaGeneration(fileName: "config.json", fullPath: "/p/run/config.json") == nil)
        #expect(PublishedConfig.deltaGeneration(fileName: "config.delta.x.json", fullPath: "/p/run/config.json") == nil)
        #expect(PublishedConfig.deltaGeneration(fileName: "config.delta.3.json.tmp.5", fullPath: "/p/run/config.json") == nil)
    }
}
