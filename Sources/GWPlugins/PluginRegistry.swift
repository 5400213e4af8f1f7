// The plugins this build runs on the data path. The Admin API accepts a plugin name only if it is
// listed here (every mode: Admin API writes, DB-less `POST /config`, `declarative_config`, `db_import`),
// so an operator who adds a plugin gets either its behaviour or a 400, never a stored instance that
// the workers skip. A name joins the list in the commit that makes its handler run.
//
// Invariant: every name in `running` has a handler in `implemented` and a config schema in GWAdmin's
// plugin schemas; priorities are Kong 3.10's (KONG-PLUGINS.md §1.2).

public enum PluginRegistry {
    /// The plugins the data path runs: each one's phases are wired (GWProxy/ClientConnection+Plugins)
    /// and its black-box tests pass (Tests/integration/test_plugins_*.py).
    static let running: [String] = [KeyAuth.name, BasicAuth.name, ACL.name, RateLimiting.name, Cors.name, ProxyCache.name,
                                    RequestTransformer.name, ResponseTransformer.name, IPRestriction.name,
                                    CorrelationID.name, BotDetection.name, RequestTermination.name, RequestSizeLimiting.name,
                                    FileLog.name, TCPLog.name, UDPLog.name, HTTPLog.name, Prometheus.name]

    /// Kong name → PRIORITY, for every plugin whose handler runs in the worker.
    public static let priorities: [String: Int] = Dictionary(uniqueKeysWithValues: running.map { ($0, implemented[$0]!.priority) })

    /// Kong name → the function compiling an instance of it (same keys as `priorities`).
    public static let factories: [String: PluginFactory] = Dictionary(uniqueKeysWithValues: running.map { ($0, implemented[$0]!.factory) })

    /// Every handler written: `running` lists those the Admin API accepts; unit tests compile any of them.
    static let implemented: [String: (priority: Int, factory: PluginFactory)] = [
        KeyAuth.name: (KeyAuth.priority, { e, env throws(PluginError) in try KeyAuth(entity: e, env: env) }),
        RateLimiting.name: (RateLimiting.priority, { e, env throws(PluginError) in try RateLimiting(entity: e, env: env) }),
        BasicAuth.name: (BasicAuth.priority, { e, env throws(PluginError) in try BasicAuth(entity: e, env: env) }),
        ACL.name: (ACL.priority, { e, env throws(PluginError) in try ACL(entity: e, env: env) }),
        Cors.name: (Cors.priority, { e, env throws(PluginError) in try Cors(entity: e, env: env) }),
        ProxyCache.name: (ProxyCache.priority, { e, env throws(PluginError) in try ProxyCache(entity: e, env: env) }),
        RequestTransformer.name: (RequestTransformer.priority, { e, env throws(PluginError) in try RequestTransformer(entity: e, env: env) }),
        ResponseTransformer.name: (ResponseTransformer.priority, { e, env throws(PluginError) in try ResponseTransformer(entity: e, env: env) }),
        IPRestriction.name: (IPRestriction.priority, { e, env throws(PluginError) in try IPRestriction(entity: e, env: env) }),
        CorrelationID.name: (CorrelationID.priority, { e, env throws(PluginError) in try CorrelationID(entity: e, env: env) }),
        BotDetection.name: (BotDetection.priority, { e, env throws(PluginError) in try BotDetection(entity: e, env: env) }),
        RequestTermination.name: (RequestTermination.priority, { e, env throws(PluginError) in try RequestTermination(entity: e, env: env) }),
        RequestSizeLimiting.name: (RequestSizeLimiting.priority, { e, env throws(PluginError) in try RequestSizeLimiting(entity: e, env: env) }),
        FileLog.name: (FileLog.priority, { e, env throws(PluginError) in try FileLog(entity: e, env: env) }),
        TCPLog.name: (TCPLog.priority, { e, env throws(PluginError) in try TCPLog(entity: e, env: env) }),
        UDPLog.name: (UDPLog.priority, { e, env throws(PluginError) in try UDPLog(entity: e, env: env) }),
        HTTPLog.name: (HTTPLog.priority, { e, env throws(PluginError) in try HTTPLog(entity: e, env: env) }),
        Prometheus.name: (Prometheus.priority, { e, env throws(PluginError) in try Prometheus(entity: e, env: env) }),
    ]

    /// The names the Admin API accepts, sorted.
    public static var names: [String] { priorities.keys.sorted() }
}
