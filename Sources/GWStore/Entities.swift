// Typed Kong entities as the data path sees them: plain, immutable values decoded from the Admin
// API's JSON documents (see ConfigSnapshot). Field names follow Kong; defaults follow KONG.md §1.
// Invariant: values here are already validated by the Admin API / declarative loader.

/// A Kong service (`kong/db/schema/entities/services.lua`).
public struct Service: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var protocolName: String      // "http" | "https" | ...
    public var host: String
    public var port: Int
    public var path: String?
    public var retries: Int
    public var connectTimeout: Int       // ms
    public var writeTimeout: Int         // ms
    public var readTimeout: Int          // ms
    public var enabled: Bool
    /// https services: Kong's `tls_verify` (nil: the node's default, off as Kong's
    /// nginx_proxy_proxy_ssl_verify) and `tls_verify_depth` (nil: 1, nginx's proxy_ssl_verify_depth).
    public var tlsVerify: Bool? = nil
    public var tlsVerifyDepth: Int? = nil
    /// https services: Kong's `ca_certificates` (ids; the trust store instead of the system's) and
    /// `client_certificate` (id; mTLS to the upstream).
    public var caCertificateIDs: [String]? = nil
    public var clientCertificateID: String? = nil

    public init(id: String, name: String? = nil, protocolName: String = "http", host: String, port: Int = 80,
                path: String? = nil, retries: Int = 5, connectTimeout: Int = 60000, writeTimeout: Int = 60000,
                readTimeout: Int = 60000, enabled: Bool = true) {
        self.id = id; self.name = name; self.protocolName = protocolName; self.host = host; self.port = port
        self.path = path; self.retries = retries; self.connectTimeout = connectTimeout
        self.writeTimeout = writeTimeout; self.readTimeout = readTimeout; self.enabled = enabled
    }
}

/// A Kong route (`routes.lua`), traditional_compatible fields.
public struct Route: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var protocols: [String]
    public var methods: [String]?
    public var hosts: [String]?
    public var paths: [String]?
    public var headers: [String: [String]]?
    public var stripPath: Bool
    public var preserveHost: Bool
    public var regexPriority: Int
    public var pathHandling: String
    public var serviceID: String?
    public var createdAt: Int
    /// Kong's `request_buffering` (default true): read and validate the whole request body before the
    /// upstream sees anything; false streams it (re-chunked canonically when chunked).
    public var requestBuffering: Bool = true
    /// Kong's `snis`: on a TLS connection the client's server name must match one of them.
    public var snis: [String]? = nil

    public init(id: String, name: String? = nil, protocols: [String] = ["http", "https"], methods: [String]? = nil,
                hosts: [String]? = nil, paths: [String]? = nil, headers: [String: [String]]? = nil,
                stripPath: Bool = true, preserveHost: Bool = false, regexPriority: Int = 0,
                pathHandling: String = "v0", serviceID: String? = nil, createdAt: Int = 0) {
        self.id = id; self.name = name; self.protocols = protocols; self.methods = methods; self.hosts = hosts
        self.paths = paths; self.headers = headers; self.stripPath = stripPath; self.preserveHost = preserveHost
        self.regexPriority = regexPriority; self.pathHandling = pathHandling; self.serviceID = serviceID
        self.createdAt = createdAt
    }
}

/// Kong's `healthchecks` record on an upstream (units: seconds for intervals and timeout).
public struct Healthchecks: Sendable, Equatable {
    public struct Active: Sendable, Equatable {
        public var type: String = "http"
        public var timeout: Double = 1
        public var concurrency: Int = 10
        public var httpPath: String = "/"
        public var httpsSni: String? = nil
        public var httpsVerifyCertificate: Bool = true
        public var headers: [String: [String]]? = nil
        public var healthyInterval: Double = 0
        public var healthyHTTPStatuses: [Int] = [200, 302]
        public var healthySuccesses: Int = 0
        public var unhealthyInterval: Double = 0
        public var unhealthyHTTPStatuses: [Int] = [429, 404, 500, 501, 502, 503, 504, 505]
        public var unhealthyTCPFailures: Int = 0
        public var unhealthyTimeouts: Int = 0
        public var unhealthyHTTPFailures: Int = 0
        public init() {}
    }
    public struct Passive: Sendable, Equatable {
        public var type: String = "http"
        public var healthyHTTPStatuses: [Int] = [200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                                 300, 301, 302, 303, 304, 305, 306, 307, 308]
        public var healthySuccesses: Int = 0
        public var unhealthyHTTPStatuses: [Int] = [429, 500, 503]
        public var unhealthyTCPFailures: Int = 0
        public var unhealthyTimeouts: Int = 0
        public var unhealthyHTTPFailures: Int = 0
        public init() {}
    }
    public var threshold: Double = 0
    public var active = Active()
    public var passive = Passive()
    public init() {}

    /// Kong creates a health checker only when one of these is non-zero (KONG.md §5.1).
    public var checkerEnabled: Bool {
        active.healthyInterval != 0 || active.unhealthyInterval != 0 ||
        passive.unhealthyTCPFailures != 0 || passive.unhealthyTimeouts != 0 || passive.unhealthyHTTPFailures != 0
    }
}

/// A Kong upstream (`upstreams.lua`).
public struct Upstream: Sendable, Equatable {
    public var id: String
    public var name: String
    public var algorithm: String          // round-robin | consistent-hashing | least-connections | latency
    public var hashOn: String             // none | consumer | ip | header | cookie | path | query_arg | uri_capture
    public var hashFallback: String
    public var hashOnHeader: String?
    public var hashFallbackHeader: String?
    public var hashOnCookie: String?
    public var hashOnCookiePath: String
    public var hashOnQueryArg: String?
    public var hashFallbackQueryArg: String?
    public var hashOnURICapture: String?
    public var hashFallbackURICapture: String?
    public var slots: Int
    public var hostHeader: String?
    public var healthchecks: Healthchecks
    /// Kong's `client_certificate` of an upstream: mTLS when the service names none.
    public var clientCertificateID: String? = nil

    public init(id: String, name: String, algorithm: String = "round-robin", hashOn: String = "none",
                hashFallback: String = "none", hashOnHeader: String? = nil, hashFallbackHeader: String? = nil,
                hashOnCookie: String? = nil, hashOnCookiePath: String = "/", hashOnQueryArg: String? = nil,
                hashFallbackQueryArg: String? = nil, hashOnURICapture: String? = nil,
                hashFallbackURICapture: String? = nil, slots: Int = 10000, hostHeader: String? = nil,
                healthchecks: Healthchecks = Healthchecks()) {
        self.id = id; self.name = name; self.algorithm = algorithm; self.hashOn = hashOn
        self.hashFallback = hashFallback; self.hashOnHeader = hashOnHeader; self.hashFallbackHeader = hashFallbackHeader
        self.hashOnCookie = hashOnCookie; self.hashOnCookiePath = hashOnCookiePath; self.hashOnQueryArg = hashOnQueryArg
        self.hashFallbackQueryArg = hashFallbackQueryArg; self.hashOnURICapture = hashOnURICapture
        self.hashFallbackURICapture = hashFallbackURICapture; self.slots = slots; self.hostHeader = hostHeader
        self.healthchecks = healthchecks
    }
}

/// A Kong target (`targets.lua`): `target` is normalised `host:port` (default port 8000).
public struct Target: Sendable, Equatable {
    public var id: String
    public var upstreamID: String
    public var target: String
    public var host: String               // without brackets for IPv6
    public var port: Int
    public var weight: Int
    public var createdAt: Double

    public init(id: String, upstreamID: String, target: String, host: String, port: Int, weight: Int = 100,
                createdAt: Double = 0) {
        self.id = id; self.upstreamID = upstreamID; self.target = target; self.host = host; self.port = port
        self.weight = weight; self.createdAt = createdAt
    }
}

/// Everything a worker needs to route and balance, at one configuration generation.
/// Invariant: immutable once built; workers swap whole snapshots between requests.
public struct ConfigSnapshot: Sendable {
    public var generation: UInt64
    public var services: [Service]
    public var routes: [Route]
    public var upstreams: [Upstream]
    public var targets: [Target]
    /// Consumers, plugins, credentials and ACL groups (for plugin execution in workers; may be empty).
    public var consumers: [Consumer]
    public var plugins: [Plugin]
    public var keyauthCredentials: [KeyAuthCredential]
    public var basicauthCredentials: [BasicAuthCredential]
    public var acls: [ACLGroup]
    /// TLS: certificates, their server names and trusted CA certificates (Certificates.swift).
    public var certificates: [Certificate] = []
    public var snis: [SNI] = []
    public var caCertificates: [CACertificate] = []

    public init(generation: UInt64 = 0, services: [Service] = [], routes: [Route] = [], upstreams: [Upstream] = [],
                targets: [Target] = [], consumers: [Consumer] = [], plugins: [Plugin] = [],
                keyauthCredentials: [KeyAuthCredential] = [], basicauthCredentials: [BasicAuthCredential] = [],
                acls: [ACLGroup] = []) {
        self.generation = generation; self.services = services; self.routes = routes
        self.upstreams = upstreams; self.targets = targets
        self.consumers = consumers; self.plugins = plugins; self.keyauthCredentials = keyauthCredentials
        self.basicauthCredentials = basicauthCredentials; self.acls = acls
    }
}
