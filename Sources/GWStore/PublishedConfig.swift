// What the master publishes to the workers, and how a worker follows it generation by generation.
//
// Two document kinds, both JSON:
// - the full document (`run/config.json`): `ConfigSnapshot`'s entities plus `resolved` (target id →
//   [[ip, port, weight], ...], the master's DNS answers) and `service_addresses` (service id →
//   [[ip, port], ...]; also "host:<name>" → [[ip, 0], ...] for the logging plugins' host names,
//   GWPlugins/LogHosts.swift); a worker can start from it alone.
// - a delta (`run/config.delta.<generation>.json`): `{"generation": N, "base": N-1, "put": {kind: [doc]},
//   "delete": {kind: [id]}, "resolved": {...}, "resolved_removed": [id], "service_addresses": {...},
//   "service_addresses_removed": [id]}`: what changed from generation N-1 to N (entities written by one
//   Admin API request, DNS answers that changed). Applying deltas base+1 … N to the full document of
//   generation `base` gives exactly the full document of N.
// Invariant: entity order is the master store's (an updated entity keeps its place, a new one is
// appended), so a worker that followed deltas and one that read a newer full document hold the same
// arrays.
import GWJSON

/// One address of a target (weight per address: SRV answers carry their own) or of a service host.
public struct PublishedAddress: Sendable, Equatable {
    public var ip: String
    public var port: Int
    public var weight: Int
    public init(ip: String, port: Int, weight: Int) { self.ip = ip; self.port = port; self.weight = weight }
}

/// A worker's whole configuration at one generation.
public struct PublishedConfig: Sendable {
    public var snapshot: ConfigSnapshot
    /// Target id → addresses. No entry ⇒ the target's host is an IP literal used as is.
    public var resolved: [String: [PublishedAddress]]
    /// Service id → addresses of a service whose host is not an upstream. No entry ⇒ resolve locally.
    public var serviceAddresses: [String: [PublishedAddress]]

    public var generation: UInt64 { snapshot.generation }
    /// Per entity kind: position by id, built on the first put of that kind and kept up to date by puts;
    /// a delete of the kind drops it. (Kept by the master and each worker across deltas: one put into
    /// 10 000 routes is a dictionary lookup, not a scan.)
    private var positions: [String: [String: Int]] = [:]

    /// Where the delta of `generation` lives next to the full document `fullPath` (`run/config.json` →
    /// `run/config.delta.<generation>.json`).
    public static func deltaPath(fullPath: String, generation: UInt64) -> String {
        let stem = fullPath.hasSuffix(".json") ? String(fullPath.dropLast(5)) : fullPath
        return "\(stem).delta.\(generation).json"
    }

    /// The generation of a delta file name in the directory of `fullPath`, if `name` is one.
    public static func deltaGeneration(fileName name: String, fullPath: String) -> UInt64? {
        let base = fullPath.split(separator: "/").last.map(String.init) ?? fullPath
        let stem = base.hasSuffix(".json") ? String(base.dropLast(5)) : base
        let head = stem + ".delta.", tail = ".json"
        guard name.hasPrefix(head), name.hasSuffix(tail), name.count > head.count + tail.count else { return nil }
        return UInt64(name.dropFirst(head.count).dropLast(tail.count))
    }

    public init(snapshot: ConfigSnapshot = ConfigSnapshot(), resolved: [String: [PublishedAddress]] = [:],
                serviceAddresses: [String: [PublishedAddress]] = [:]) {
        self.snapshot = snapshot; self.resolved = resolved; self.serviceAddresses = serviceAddresses
    }

    /// Decodes the full document.
    public static func decode(json: JSON) throws(SnapshotError) -> PublishedConfig {
        let snap = try ConfigSnapshot.decode(json: json)
        return PublishedConfig(snapshot: snap, resolved: try addressMap(json["resolved"], "resolved", weighted: true),
                               serviceAddresses: try addressMap(json["service_addresses"], "service_addresses",
                                                                weighted: false))
    }

    /// Decodes the full document from its bytes, one entity at a time (JSON.parseStreamingArrays):
    /// the same result as `decode(json: JSON.parse(bytes))` without the document's whole JSON tree.
    public static func decode(bytes: [UInt8]) throws(SnapshotError) -> PublishedConfig {
        var snap = ConfigSnapshot()
        let rest: JSONObject
        do {
            rest = try JSON.parseStreamingArrays(bytes, streamed: Set(ConfigSnapshot.entityKeys)) { key, e in
                try snap.append(key, e)
            }
        } catch let e as SnapshotError {
            throw e
        } catch {
            throw SnapshotError("invalid JSON: \(error)")
        }
        // What was not streamed (generation, address maps, and an entity key whose value is not an
        // array, which it reports) goes through the tree decoder; streamed keys are empty there.
        var c = try decode(json: .object(rest))
        snap.generation = c.snapshot.generation
        c.snapshot = snap
        return c
    }

    static func addressMap(_ v: JSON?, _ key: String, weighted: Bool) throws(SnapshotError) -> [String: [PublishedAddress]] {
        guard let v, !v.isNull else { return [:] }
        guard let o = v.objectValue else { throw SnapshotError("\(key): expected a map") }
        var out: [String: [PublishedAddress]] = [:]
        for (id, list) in o {
            guard let arr = list.arrayValue else { throw SnapshotError("\(key).\(id): expected an array") }
            var addrs: [PublishedAddress] = []
            addrs.reserveCapacity(arr.count)
            for a in arr {
                guard let ip = a[0]?.stringValue, let port = a[1]?.intValue else {
                    throw SnapshotError("\(key).\(id): expected [ip, port\(weighted ? ", weight" : "")] entries")
                }
                addrs.append(PublishedAddress(ip: ip, port: port, weight: a[2]?.intValue ?? 1))
            }
            out[id] = addrs
        }
        return out
    }

    /// `{"<id>": [[ip, port, weight], ...]}` (weight left out when `weighted` is false).
    public static func addressJSON(_ m: [String: [PublishedAddress]], weighted: Bool) -> JSON {
        var o = JSONObject()
        for (id, list) in m {
            o[id] = .array(list.map { a in
                weighted ? .array([.string(a.ip), .int(Int64(a.port)), .int(Int64(a.weight))])
                         : .array([.string(a.ip), .int(Int64(a.port))])
            })
        }
        return .object(o)
    }

    /// Builds the id indexes now (after a full document), so that the first delta does not pay for them.
    public mutating func buildIndexes() {
        positions["services"] = PublishedConfig.index(snapshot.services)
        positions["routes"] = PublishedConfig.index(snapshot.routes)
        positions["upstreams"] = PublishedConfig.index(snapshot.upstreams)
        positions["targets"] = PublishedConfig.index(snapshot.targets)
        positions["consumers"] = PublishedConfig.index(snapshot.consumers)
        positions["plugins"] = PublishedConfig.index(snapshot.plugins)
        positions["keyauth_credentials"] = PublishedConfig.index(snapshot.keyauthCredentials)
        positions["basicauth_credentials"] = PublishedConfig.index(snapshot.basicauthCredentials)
        positions["acls"] = PublishedConfig.index(snapshot.acls)
        positions["certificates"] = PublishedConfig.index(snapshot.certificates)
        positions["snis"] = PublishedConfig.index(snapshot.snis)
        positions["ca_certificates"] = PublishedConfig.index(snapshot.caCertificates)
    }

    /// Position by id (indices, not enumerated(): that copies every entity).
    static func index<E: PublishedEntity>(_ list: [E], reserve extra: Int = 0) -> [String: Int] {
        var m: [String: Int] = [:]
        m.reserveCapacity(list.count + extra)
        for i in list.indices { m[list[i].id] = i }
        return m
    }

    /// Applies the delta that leads from this generation to `delta.generation`. Returns which route
    /// positions it touched when that is all a router needs to know (see `RouteChanges`), else nil.
    @discardableResult
    public mutating func apply(_ delta: ConfigDelta) throws(SnapshotError) -> RouteChanges? {
        guard delta.base == generation else {
            throw SnapshotError("delta \(delta.generation) applies to generation \(delta.base), not \(generation)")
        }
        var changes: RouteChanges? = RouteChanges(previousCount: snapshot.routes.count, positions: [])
        // A deleted service shifts service positions (Kong refuses it while routes use the service, so
        // it is rare): no shortcut then.
        if delta.deletes["services"] != nil { changes = nil }
        for kind in delta.kinds {
            let puts = delta.puts[kind] ?? []
            let dels = delta.deletes[kind] ?? []
            var index = positions.removeValue(forKey: kind)
            defer { positions[kind] = index }
            switch kind {
            case "services": try PublishedConfig.merge(&snapshot.services, &index, puts, dels, Service.decode)
            case "routes":
                var removed: [Int] = []
                let at = try PublishedConfig.merge(&snapshot.routes, &index, puts, dels, Route.decode, removed: &removed)
                changes?.removed = removed
                changes?.positions.formUnion(at)
            case "upstreams": try PublishedConfig.merge(&snapshot.upstreams, &index, puts, dels, Upstream.decode)
            case "targets": try PublishedConfig.merge(&snapshot.targets, &index, puts, dels, Target.decode)
            case "consumers": try PublishedConfig.merge(&snapshot.consumers, &index, puts, dels, Consumer.decode)
            case "plugins": try PublishedConfig.merge(&snapshot.plugins, &index, puts, dels, Plugin.decode)
            case "keyauth_credentials":
                try PublishedConfig.merge(&snapshot.keyauthCredentials, &index, puts, dels, KeyAuthCredential.decode)
            case "basicauth_credentials":
                try PublishedConfig.merge(&snapshot.basicauthCredentials, &index, puts, dels, BasicAuthCredential.decode)
            case "acls": try PublishedConfig.merge(&snapshot.acls, &index, puts, dels, ACLGroup.decode)
            case "certificates": try PublishedConfig.merge(&snapshot.certificates, &index, puts, dels, Certificate.decode)
            case "snis": try PublishedConfig.merge(&snapshot.snis, &index, puts, dels, SNI.decode)
            case "ca_certificates":
                try PublishedConfig.merge(&snapshot.caCertificates, &index, puts, dels, CACertificate.decode)
            default: throw SnapshotError("delta: unknown entity kind '\(kind)'")
            }
        }
        // A service put in place (host, enabled, ...) changes how its routes are routed: they count as changed.
        if changes != nil, let svcs = delta.puts["services"], !svcs.isEmpty {
            var ids = Set<String>()
            for d in svcs { if let id = d["id"]?.stringValue { ids.insert(id) } }
            for i in snapshot.routes.indices {
                if let sid = snapshot.routes[i].serviceID, ids.contains(sid) { changes!.positions.insert(i) }
            }
        }
        for (id, a) in delta.resolved { resolved[id] = a }
        for id in delta.resolvedRemoved { resolved[id] = nil }
        for (id, a) in delta.serviceAddresses { serviceAddresses[id] = a }
        for id in delta.serviceAddressesRemoved { serviceAddresses[id] = nil }
        snapshot.generation = delta.generation
        return changes
    }

    /// Deletes, then puts: an existing id is replaced in place, a new one appended (the store's order).
    /// Returns the positions the puts took. `index` (position by id) is used and kept up to date, or
    /// built when missing; deletes drop it (positions shift).
    @discardableResult
    static func merge<E: PublishedEntity>(_ list: inout [E], _ index: inout [String: Int]?, _ puts: [JSON],
                                          _ deletes: [String],
                                          _ decode: (JSON) throws(SnapshotError) -> E) throws(SnapshotError) -> [Int] {
        var removed: [Int] = []
        return try merge(&list, &index, puts, deletes, decode, removed: &removed)
    }

    /// As above; `removed` receives the positions (before the change, ascending) of the deleted entities.
    static func merge<E: PublishedEntity>(_ list: inout [E], _ index: inout [String: Int]?, _ puts: [JSON],
                                          _ deletes: [String], _ decode: (JSON) throws(SnapshotError) -> E,
                                          removed: inout [Int]) throws(SnapshotError) -> [Int] {
        if !deletes.isEmpty {
            if let idx = index {
                // Positions from the index, then one pass closing the gaps (no hashing of every id).
                removed = deletes.compactMap { idx[$0] }.sorted()
                var w = removed.first ?? list.count
                var k = 0
                for r in w..<list.count {
                    if k < removed.count && removed[k] == r { k += 1; continue }
                    list.swapAt(w, r)
                    w += 1
                }
                list.removeSubrange(w...)
            } else {
                let gone = Set(deletes)
                for i in list.indices where gone.contains(list[i].id) { removed.append(i) }
                list.removeAll { gone.contains($0.id) }
            }
            index = nil
        }
        guard !puts.isEmpty else { return [] }
        var decoded: [E] = []
        decoded.reserveCapacity(puts.count)
        for p in puts { decoded.append(try decode(p)) }
        if index == nil { index = PublishedConfig.index(list, reserve: decoded.count) }
        var at: [Int] = []
        for e in decoded {
            if let i = index![e.id] { list[i] = e; at.append(i) } else {
                index![e.id] = list.count; at.append(list.count); list.append(e)
            }
        }
        return at
    }
}

/// What a delta did to the routes, when it deleted no service: the routes that remain of the previous
/// `previousCount` (all but `removed`) keep their order, and those not listed in `positions` are the same
/// route with the same service (at the same service position) as before, so a router can take their
/// compiled form without comparing them.
public struct RouteChanges: Sendable, Equatable {
    public var previousCount: Int
    /// Positions (after the change) of routes put, or whose service was put.
    public var positions: Set<Int>
    /// Positions (before the change, ascending) of routes deleted; the others close up in order.
    public var removed: [Int]
    public init(previousCount: Int, positions: Set<Int>, removed: [Int] = []) {
        self.previousCount = previousCount; self.positions = positions; self.removed = removed
    }
}

/// Entities that deltas address by id.
public protocol PublishedEntity { var id: String { get } }
extension Service: PublishedEntity {}
extension Route: PublishedEntity {}
extension Upstream: PublishedEntity {}
extension Target: PublishedEntity {}
extension Consumer: PublishedEntity {}
extension Plugin: PublishedEntity {}
extension KeyAuthCredential: PublishedEntity {}
extension BasicAuthCredential: PublishedEntity {}
extension ACLGroup: PublishedEntity {}
extension Certificate: PublishedEntity {}
extension SNI: PublishedEntity {}
extension CACertificate: PublishedEntity {}

/// The changes from generation `base` to `generation`. Entity documents stay JSON until applied.
public struct ConfigDelta: Sendable {
    public static let entityKinds = ["services", "routes", "upstreams", "targets", "consumers", "plugins",
                                     "keyauth_credentials", "basicauth_credentials", "acls",
                                     "certificates", "snis", "ca_certificates"]
    public var generation: UInt64
    public var base: UInt64
    public var puts: [String: [JSON]] = [:]
    public var deletes: [String: [String]] = [:]
    public var resolved: [String: [PublishedAddress]] = [:]
    public var resolvedRemoved: [String] = []
    public var serviceAddresses: [String: [PublishedAddress]] = [:]
    public var serviceAddressesRemoved: [String] = []

    public init(generation: UInt64, base: UInt64) { self.generation = generation; self.base = base }

    /// Kinds with puts or deletes, in a fixed order.
    var kinds: [String] { ConfigDelta.entityKinds.filter { puts[$0] != nil || deletes[$0] != nil } }

    public var isEmpty: Bool {
        puts.isEmpty && deletes.isEmpty && resolved.isEmpty && resolvedRemoved.isEmpty && serviceAddresses.isEmpty
            && serviceAddressesRemoved.isEmpty
    }

    /// The changes of the address maps between two publications.
    public mutating func diffAddresses(old: PublishedConfig, new: PublishedConfig) {
        for (id, a) in new.resolved where old.resolved[id] != a { resolved[id] = a }
        for id in old.resolved.keys where new.resolved[id] == nil { resolvedRemoved.append(id) }
        for (id, a) in new.serviceAddresses where old.serviceAddresses[id] != a { serviceAddresses[id] = a }
        for id in old.serviceAddresses.keys where new.serviceAddresses[id] == nil { serviceAddressesRemoved.append(id) }
    }

    public var json: JSON {
        var o: JSONObject = ["generation": .int(Int64(clamping: generation)), "base": .int(Int64(clamping: base))]
        var p = JSONObject(), d = JSONObject()
        for (k, v) in puts { p[k] = .array(v) }
        for (k, v) in deletes { d[k] = .array(v.map { .string($0) }) }
        o["put"] = .object(p)
        o["delete"] = .object(d)
        o["resolved"] = PublishedConfig.addressJSON(resolved, weighted: true)
        o["resolved_removed"] = .array(resolvedRemoved.map { .string($0) })
        o["service_addresses"] = PublishedConfig.addressJSON(serviceAddresses, weighted: false)
        o["service_addresses_removed"] = .array(serviceAddressesRemoved.map { .string($0) })
        return .object(o)
    }

    public static func decode(json v: JSON) throws(SnapshotError) -> ConfigDelta {
        guard let g = v["generation"]?.int64Value, g >= 0, let b = v["base"]?.int64Value, b >= 0 else {
            throw SnapshotError("delta: generation and base must be non-negative integers")
        }
        var d = ConfigDelta(generation: UInt64(g), base: UInt64(b))
        func ids(_ x: JSON?, _ what: String) throws(SnapshotError) -> [String] {
            guard let x, !x.isNull else { return [] }
            guard let a = x.stringArrayValue else { throw SnapshotError("delta.\(what): expected an array of ids") }
            return a
        }
        if let p = v["put"]?.objectValue {
            for (k, list) in p {
                guard entityKinds.contains(k) else { throw SnapshotError("delta: unknown entity kind '\(k)'") }
                guard let a = list.arrayValue else { throw SnapshotError("delta.put.\(k): expected an array") }
                d.puts[k] = a
            }
        }
        if let del = v["delete"]?.objectValue {
            for (k, list) in del {
                guard entityKinds.contains(k) else { throw SnapshotError("delta: unknown entity kind '\(k)'") }
                d.deletes[k] = try ids(list, "delete.\(k)")
            }
        }
        d.resolved = try PublishedConfig.addressMap(v["resolved"], "resolved", weighted: true)
        d.resolvedRemoved = try ids(v["resolved_removed"], "resolved_removed")
        d.serviceAddresses = try PublishedConfig.addressMap(v["service_addresses"], "service_addresses", weighted: false)
        d.serviceAddressesRemoved = try ids(v["service_addresses_removed"], "service_addresses_removed")
        return d
    }
}
