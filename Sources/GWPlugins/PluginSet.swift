// The plugins of one configuration generation, compiled: every enabled instance built once from its
// entity (config JSON read here, never per request), indexed by Kong's scope key, and per
// (route, service) a PluginPlan that already resolved Kong's precedence for everything but the
// consumer. Immutable after init except the plan cache, which only the worker's loop touches.
//
// Precedence (KONG-PLUGINS.md §1.3): per plugin name the first existing enabled instance of
//   1 route+service+consumer, 2 route+consumer, 3 service+consumer, 4 route+service, 5 consumer,
//   6 route, 7 service, 8 global.
// A plan keeps, per name, the instance of levels 4/6/7/8 and, for each consumer that has an instance
// of levels 1/2/3/5 for this route and service, the full resolution for that consumer: with a
// consumer authenticated, its entry (if any) wins, else the consumer-less one, which is exactly the
// table's order. Disabled instances are left out before indexing, so they never shadow anything.
import GWStore

public struct PluginEnvironment: @unchecked Sendable {
    public let credentials: Credentials
    /// Shared-memory state for plugins that need it (rate-limit counters, cache); nil in unit tests
    /// that do not exercise it.
    public let shared: AnyObject?
    /// The configuration being compiled (request-termination's echo shows the matched route and service).
    public let snapshot: ConfigSnapshot?
    /// The master's answers for the logging plugins' host names (LogHosts: name → IPs).
    public let hosts: [String: [String]]
    public init(credentials: Credentials, shared: AnyObject? = nil, snapshot: ConfigSnapshot? = nil, hosts: [String: [String]] = [:]) {
        self.credentials = credentials; self.shared = shared; self.snapshot = snapshot; self.hosts = hosts
    }
}

/// One plugin name's resolution for a (route, service).
struct PlanStep {
    let name: String
    let handler: PluginHandler?
    let byConsumer: [String: PluginHandler]
}

/// The plugins that may run for one (route, service), in execution order.
public final class PluginPlan {
    let steps: [PlanStep]
    public var isEmpty: Bool { steps.isEmpty }
    /// Some instance of the plan (whichever consumer authenticates) reads the request body in access.
    public let needsRequestBody: Bool
    init(steps: [PlanStep]) {
        self.steps = steps
        needsRequestBody = steps.contains { s in
            (s.handler?.needsRequestBody ?? false) || s.byConsumer.values.contains { $0.needsRequestBody }
        }
    }
    nonisolated(unsafe) public static let empty = PluginPlan(steps: [])  // immutable
}

public final class PluginSet {
    public let environment: PluginEnvironment
    /// Enabled instances by scope key "route:service:consumer" (empty string for a missing id), per name.
    private var index: [String: [String: PluginHandler]] = [:]
    /// Plugin names present, in execution order (priority descending, name descending).
    private let order: [String]
    private var plans: [String: PluginPlan] = [:]
    /// Global instances only: what runs for a request no route matched.
    public let globalPlan: PluginPlan
    /// Instances that could not be compiled ("<id> (<name>): <why>"), for the error log.
    public private(set) var errors: [String] = []
    public var isEmpty: Bool { order.isEmpty }
    /// Compiled handlers by plugin id (reused by the next generation when the entity is unchanged).
    public private(set) var handlers: [String: PluginHandler] = [:]

    public convenience init(snapshot: ConfigSnapshot, previous: PluginSet? = nil, shared: AnyObject? = nil,
                            hosts: [String: [String]] = [:]) {
        self.init(snapshot: snapshot, previous: previous, shared: shared, hosts: hosts,
                  registry: PluginRegistry.priorities.keys.map { ($0, PluginRegistry.priorities[$0]!, PluginRegistry.factories[$0]!) })
    }

    /// `registry`: (name, priority, factory) of the plugins to compile (the production registry, or
    /// handlers under test).
    init(snapshot: ConfigSnapshot, previous: PluginSet?, shared: AnyObject?, hosts: [String: [String]] = [:],
         registry: [(String, Int, PluginFactory)]) {
        var priorities: [String: Int] = [:], factories: [String: PluginFactory] = [:]
        for (n, p, f) in registry { priorities[n] = p; factories[n] = f }
        let creds = Credentials(snapshot: snapshot)
        environment = PluginEnvironment(credentials: creds, shared: shared, snapshot: snapshot, hosts: hosts)
        var names = Set<String>()
        for p in snapshot.plugins where p.enabled {
            guard let make = factories[p.name], let prio = priorities[p.name] else {
                errors.append("\(p.id) (\(p.name)): plugin not available in this build")
                continue
            }
            let h: PluginHandler
            // A handler that holds no generation-specific state (credentials are looked up through the
            // environment at request time) is rebuilt anyway: compiling is cheap and keeps the rule simple.
            do { h = try make(p, environment) } catch {
                errors.append("\(p.id) (\(p.name)): \(error.message)")
                continue
            }
            _ = prio
            handlers[p.id] = h
            index[p.name, default: [:]][PluginSet.key(p.routeID, p.serviceID, p.consumerID)] = h
            names.insert(p.name)
        }
        order = names.sorted { a, b in
            let pa = priorities[a] ?? 0, pb = priorities[b] ?? 0
            return pa != pb ? pa > pb : a > b
        }
        var global: [PlanStep] = []
        for n in order { if let h = index[n]?[PluginSet.key(nil, nil, nil)] { global.append(PlanStep(name: n, handler: h, byConsumer: [:])) } }
        globalPlan = PluginPlan(steps: global)
        logDocuments = LogDocuments.always || handlers.values.contains { $0.phases.contains(.log) } ? LogDocuments(snapshot: snapshot) : nil
    }

    /// Route and service documents for the log serializer (nil: no instance has a log phase).
    public let logDocuments: LogDocuments?

    static func key(_ r: String?, _ s: String?, _ c: String?) -> String { "\(r ?? ""):\(s ?? ""):\(c ?? "")" }

    /// The plan for a matched route (and its service, nil when the route has none). Cached: the data
    /// path asks once per router entry and generation.
    public func plan(routeID: String?, serviceID: String?) -> PluginPlan {
        let k = PluginSet.key(routeID, serviceID, nil)
        if let p = plans[k] { return p }
        var steps: [PlanStep] = []
        for n in order {
            guard let byScope = index[n] else { continue }
            let r = routeID ?? "", s = serviceID ?? ""
            func at(_ rr: String, _ ss: String, _ cc: String) -> PluginHandler? { byScope["\(rr):\(ss):\(cc)"] }
            // Levels 4, 6, 7, 8 (no consumer). "route+service" is one entity with both set.
            var plain: PluginHandler? = nil
            if routeID != nil && serviceID != nil { plain = at(r, s, "") }
            if plain == nil && routeID != nil { plain = at(r, "", "") }
            if plain == nil && serviceID != nil { plain = at("", s, "") }
            if plain == nil { plain = at("", "", "") }
            // Consumers with an instance of levels 1, 2, 3 or 5 that can apply here.
            var byConsumer: [String: PluginHandler] = [:]
            for (key, h) in byScope {
                guard let c = h.entity.consumerID, byConsumer[c] == nil else { continue }
                _ = key
                var best: PluginHandler? = nil
                if routeID != nil && serviceID != nil { best = at(r, s, c) }
                if best == nil && routeID != nil { best = at(r, "", c) }
                if best == nil && serviceID != nil { best = at("", s, c) }
                if best == nil && routeID != nil && serviceID != nil { best = at(r, s, "") }
                if best == nil { best = at("", "", c) }
                // Level 5 exists only if the consumer-only instance does; else levels 6–8 (= plain).
                if best == nil { continue }
                if best === plain { continue }
                byConsumer[c] = best
            }
            if plain == nil && byConsumer.isEmpty { continue }
            steps.append(PlanStep(name: n, handler: plain, byConsumer: byConsumer))
        }
        let p = PluginPlan(steps: steps)
        plans[k] = p
        return p
    }
}
