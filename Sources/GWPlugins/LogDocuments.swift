// The route and service documents the log serializer copies into `route` and `service` (Kong's
// serializer logs the whole entities): serialized once per configuration generation, by id, and only
// when a logging plugin is configured. Immutable after init.
import GWJSON
import GWStore

public final class LogDocuments {
    /// Built for every generation, logging plugin or not (the worker's JSON access log needs them).
    nonisolated(unsafe) public static var always = false
    public let routes: [String: [UInt8]]
    public let services: [String: [UInt8]]

    public init(routes: [String: [UInt8]], services: [String: [UInt8]]) { self.routes = routes; self.services = services }

    public convenience init(snapshot: ConfigSnapshot) {
        var r: [String: [UInt8]] = [:], s: [String: [UInt8]] = [:]
        for x in snapshot.routes { r[x.id] = x.json.serialized() }
        for x in snapshot.services { s[x.id] = x.json.serialized() }
        self.init(routes: r, services: s)
    }
}
