// What a worker's Redis users share: the endpoint and reply types, and `RedisClients`, the worker's
// connections (one per endpoint, RedisConnection.swift) with the TLS client contexts they use.
// Invariants: at most `maxConnections` connections (when full an idle one is dropped to make room; with
// none idle the new endpoint gets none and its requests count as Redis down); at most two TLS client
// contexts (verify on / off), made on first use from the node's cosocket trust store
// (`lua_ssl_trusted_certificate`, `lua_ssl_verify_depth`). Worker-loop confined.
import GWEvent
import GWTLS

/// TLS to a Redis endpoint (Kong's `config.redis.ssl_verify`, `config.redis.server_name`).
public struct RedisTLS: Hashable, Sendable {
    /// Verify the server's chain (and, with `serverName`, its name) against the cosocket trust store.
    public var verify: Bool
    /// The SNI sent and the name verified; nil: no SNI, and the chain alone is verified.
    public var serverName: String?
    public init(verify: Bool, serverName: String?) { self.verify = verify; self.serverName = serverName }
}

/// Where and how to connect (Kong's `config.redis.*` that matter on the wire).
public struct RedisEndpoint: Hashable, Sendable {
    public var ip: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?
    /// nil: plain TCP.
    public var tls: RedisTLS?
    public init(ip: String, port: Int, database: Int = 0, username: String? = nil, password: String? = nil,
                tls: RedisTLS? = nil) {
        self.ip = ip; self.port = port; self.database = database; self.username = username; self.password = password
        self.tls = tls
    }
    /// Kong's pool name (`host:port;db`), for log lines.
    public var label: String { "\(ip):\(port);\(database)" }
}

/// A Lua script and its SHA-1 (hex), sent with EVALSHA; the connection loads it with SCRIPT LOAD
/// before the first use on each new connection (and again after a NOSCRIPT answer).
public final class RedisScript: Sendable {
    public let text: [UInt8]
    public let sha: [UInt8]
    public init(text: String, sha1Hex: String) { self.text = Array(text.utf8); self.sha = Array(sha1Hex.utf8) }
}

/// A finished command. Integer replies (an integer, or an array of up to 8 integers) are kept without
/// allocating; anything else is `.error` with the server's or the client's message.
public struct RedisReply {
    public enum Status: Sendable { case ok, error, timeout, down }
    public var status = Status.ok
    public var count = 0
    public var values: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0, 0, 0)
    public var message = ""
    public init() {}
    public subscript(i: Int) -> Int64 {
        get { withUnsafeBytes(of: values) { $0.load(fromByteOffset: i * 8, as: Int64.self) } }
        set { withUnsafeMutableBytes(of: &values) { $0.storeBytes(of: newValue, toByteOffset: i * 8, as: Int64.self) } }
    }
    static func failed(_ s: Status, _ m: String) -> RedisReply { var r = RedisReply(); r.status = s; r.message = m; return r }
}

/// Receives the reply of a command it sent, with the tag it sent it with.
public protocol RedisWaiter: AnyObject {
    func redisDone(_ reply: RedisReply, tag: UInt64)
}

public enum RedisSendResult: Sendable { case queued, down, busy }

/// The trust store of Redis over TLS (GWConfig's CosocketTLSSettings).
public struct RedisTrust: Sendable {
    /// PEM CA certificates; nil: the system store.
    public var caPEM: String?
    public var depth: Int
    public init(caPEM: String? = nil, depth: Int = 1) { self.caPEM = caPEM; self.depth = depth }
}

/// The worker's Redis connections, one per endpoint, kept across configuration generations.
public final class RedisClients {
    nonisolated(unsafe) public static var worker: RedisClients? = nil
    public static let maxConnections = 64
    let loop: EventLoop
    /// The worker's error log.
    public let log: (String) -> Void
    let trust: RedisTrust
    private var connections: [RedisEndpoint: RedisConnection] = [:]
    /// TLS client contexts by `verify` (made on first use; a failure is kept and logged per connect).
    private var contexts: [Bool: Result<TLSClientContext, TLSError>] = [:]

    public init(loop: EventLoop, trust: RedisTrust = RedisTrust(), log: @escaping (String) -> Void) {
        self.loop = loop
        self.trust = trust
        self.log = log
    }

    private func context(verify: Bool) -> Result<TLSClientContext, TLSError> {
        if let c = contexts[verify] { return c }
        let made: Result<TLSClientContext, TLSError>
        do {
            let c = try TLSClientContext(verify: verify, depth: trust.depth, caPEM: verify ? trust.caPEM : nil)
            c.tuneForBusyConnections()   // a handful of busy connections: buffers kept, read-ahead
            made = .success(c)
        } catch { made = .failure(error) }
        contexts[verify] = made
        return made
    }

    public func connection(_ e: RedisEndpoint) -> RedisConnection? {
        if let c = connections[e] { return c }
        // Full: an idle connection makes room (e.g. the old address of a Redis host name whose answer
        // changed; a handler still holding it keeps it until that handler's generation goes).
        if connections.count >= RedisClients.maxConnections,
           let idle = connections.first(where: { $0.value.pendingCount == 0 })?.key {
            connections[idle] = nil
        }
        guard connections.count < RedisClients.maxConnections else {
            log("Redis \(e.label): more than \(RedisClients.maxConnections) Redis endpoints on this worker, not connecting")
            return nil
        }
        var ctx: TLSClientContext? = nil, problem: String? = nil
        if let t = e.tls {
            switch context(verify: t.verify) {
            case .success(let c): ctx = c
            case .failure(let err): problem = err.description
            }
        }
        let c = RedisConnection(endpoint: e, loop: loop, log: log, tlsContext: ctx, tlsProblem: problem)
        connections[e] = c
        return c
    }
}
