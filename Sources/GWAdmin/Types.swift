// Public request/response/context types of the Admin API engine (no sockets: the master's HTTP server calls it).
import GWJSON
import GWPlugins
import GWPluginState
import GWStore

public struct AdminRequest: Sendable {
    public var method: String
    /// Raw request target: `path?query`.
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, target: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method; self.target = target; self.headers = headers; self.body = body
    }

    /// Convenience: JSON body with `Content-Type: application/json`.
    public init(method: String, target: String, json: JSON, headers: [(name: String, value: String)] = []) {
        self.init(method: method, target: target, headers: headers + [("Content-Type", "application/json")],
                  body: json.serialized())
    }

    /// Values of a header (case-insensitive name).
    public func headerValues(_ name: String) -> [String] {
        let n = name.lowercased()
        return headers.filter { $0.name.lowercased() == n }.map(\.value)
    }
}

public struct AdminResponse: Sendable {
    public var status: Int
    /// Response headers (no Content-Length: the HTTP server adds framing).
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status; self.headers = headers; self.body = body
    }

    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0.lowercased() == n }?.1
    }
    /// The body parsed as JSON (nil when empty or not JSON).
    public var json: JSON? { body.isEmpty ? nil : try? JSON.parse(body) }
}

/// Health of one address of a target, as the balancer sees it.
public struct AddressHealth: Sendable, Equatable {
    public var ip: String
    public var port: Int
    public var weight: Int
    /// HEALTHY | UNHEALTHY | HEALTHCHECKS_OFF
    public var health: String
    public init(ip: String, port: Int, weight: Int, health: String) {
        self.ip = ip; self.port = port; self.weight = weight; self.health = health
    }
}

/// Health of one target: HEALTHY | UNHEALTHY | DNS_ERROR | HEALTHCHECKS_OFF, with its resolved addresses.
public struct TargetHealth: Sendable, Equatable {
    public var targetID: String
    public var health: String
    public var addresses: [AddressHealth]
    public init(targetID: String, health: String, addresses: [AddressHealth]) {
        self.targetID = targetID; self.health = health; self.addresses = addresses
    }
}

/// Supplied by the server (backed by the balancer's shared-memory health state).
public protocol AdminHealthProvider: AnyObject {
    /// Health of `targets` (all belonging to `upstream`); one entry per target, matched by `targetID`.
    func targetHealth(upstream: Upstream, targets: [Target]) -> [TargetHealth]
    /// Manual override; `address` is `ip[:port]` or nil for all addresses of the target.
    /// Returns false when the upstream has no health checker (→ 400 `no healthchecker found for <name>`).
    func setTargetHealth(upstream: Upstream, target: Target, address: String?, healthy: Bool) -> Bool
}

/// What the server provides to the Admin API.
public struct AdminContext {
    /// Extra fields merged into `GET /` (e.g. "pids", "configuration", "hostname").
    public var nodeInfo: () -> JSON
    /// The "server" object of `GET /status`.
    public var serverStatus: () -> JSON
    public var health: AdminHealthProvider?
    /// When set, requests need a matching `Kong-Admin-Token` header.
    public var adminToken: String?
    /// DB-less mode: writes refused (code 12), `/config` enabled.
    public var databaseOff: Bool
    /// database = postgres: a database every node shares (rate-limiting's `policy = cluster` is accepted).
    public var sharedDatabase = false
    /// Called after each committed configuration write.
    public var onChange: () -> Void
    /// `Server` response header value.
    public var serverHeader: String
    /// Current log level for `GET /debug/node/log-level` (nil: "notice").
    public var logLevel: (() -> String)?
    /// Changes the node's log level (`PUT /debug/node/log-level/{level}`); nil: not supported (→ 405).
    public var setLogLevel: ((String) -> Void)?
    /// `GET /status/ready`: nil when ready, else the reason (→ 503), e.g. "draining" or workers not up yet.
    public var readiness: (() -> String?)?
    /// Plugin names the Admin API accepts: the plugins the data path runs (`PluginRegistry`). Any other
    /// name is refused with Kong's "not enabled" 400. Tests of the admin schemas may widen it.
    public var availablePlugins: Set<String> = Set(PluginRegistry.names)
    /// The node's shared proxy-cache store (the master's mapping of the segment), for /proxy-cache.
    public var proxyCache: CacheStore? = nil
    /// GET /status `memory`: the workers' heaps and the shared-memory areas (nil: empty lists).
    public var memory: (() -> MemoryStatus)? = nil
    /// `POST /status/ready` with status=draining: GET /status/ready answers 503 "draining" from then on.
    public var draining = false
    /// `GET /status` database.reachable when the database is not the store's own SQLite (PostgreSQL).
    public var databaseReachable: (() -> Bool)? = nil
    /// A manual healthy/unhealthy override was applied on this node (upstream id, target id, address,
    /// healthy): with PostgreSQL it is also written to the change log so that every node applies it.
    public var onTargetHealth: ((String, String, String?, Bool) -> Void)? = nil

    public init(nodeInfo: @escaping () -> JSON = { .object(JSONObject()) },
                serverStatus: @escaping () -> JSON = { .object(JSONObject()) },
                health: AdminHealthProvider? = nil, adminToken: String? = nil, databaseOff: Bool = false,
                onChange: @escaping () -> Void = {}, serverHeader: String = AdminAPI.defaultServerHeader,
                logLevel: (() -> String)? = nil, setLogLevel: ((String) -> Void)? = nil,
                readiness: (() -> String?)? = nil) {
        self.nodeInfo = nodeInfo; self.serverStatus = serverStatus; self.health = health
        self.adminToken = adminToken; self.databaseOff = databaseOff; self.onChange = onChange
        self.serverHeader = serverHeader; self.logLevel = logLevel; self.setLogLevel = setLogLevel
        self.readiness = readiness
    }
}
