// GWConfig: the `key = value` configuration file (Kong's kong.conf key names where Kong has one),
// with GATEWAY_<KEY> environment overrides. Read only at start, reload and `gateway check`.
// Precedence (as Kong's conf_loader): defaults < file < environment < command-line flags.
import GWSystem

/// One listen address with its flags (`0.0.0.0:8000 reuseport backlog=16384`).
public struct ListenSpec: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var backlog: Int32
    public var address: SocketAddress
    /// `ssl` flag: TLS is terminated on this listener (TLSSettings).
    public var ssl: Bool = false

    public var description: String { address.description }
}

/// A configuration error: names the key, the value and, for file entries, the line.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

/// The validated configuration. Invariant: every field holds a valid value.
public struct GatewayConfig: Sendable {
    public var prefix: String
    public var proxyListen: [ListenSpec]
    public var adminListen: [ListenSpec]
    /// Kong Manager's `admin_gui_listen` (8002): the dashboard listener of the master; empty = `off`.
    public var adminGuiListen: [ListenSpec] = []
    /// `admin_gui_access_log` (Kong's key): the dashboard listener's access log, or `off`.
    public var adminGuiAccessLog = "logs/admin_gui_access.log"
    public var workerProcesses: Int
    public var daemon: Bool
    public var logLevel: LogLevel
    public var proxyAccessLog: String
    public var proxyErrorLog: String
    public var adminAccessLog: String
    public var adminErrorLog: String
    public var upstreamKeepalivePoolSize: Int
    public var upstreamKeepaliveMaxRequests: Int
    public var upstreamKeepaliveIdleTimeout: Int      // seconds
    public var clientMaxBodySize: Int                 // bytes, 0 = unlimited
    public var clientHeaderBufferSize: Int            // bytes
    public var largeClientHeaderBuffers: (count: Int, size: Int)
    public var clientHeaderTimeout: Int               // seconds
    public var clientBodyTimeout: Int                 // seconds
    /// nginx client_body_buffer_size: a buffered request body is kept in memory up to this size, then
    /// written to a temp file in <prefix>/client_body_temp; plugins read bodies that fit here.
    public var clientBodyBufferSize: Int = 8192
    /// The largest response body a plugin may hold to rewrite it (response-transformer JSON); larger
    /// bodies are relayed untouched.
    public var responseTransformerMaxBodySize: Int = 1 << 20
    /// The TLS keys (used when a proxy_listen entry has `ssl`).
    public var tls = TLSSettings(certificates: [], protocols: [.tls12, .tls13], ciphers: TLSSettings.intermediateCiphers,
                                 preferServerCiphers: false, securityLevel0: false, sessionTickets: true,
                                 sessionTimeout: 86400, sessionCacheSize: 10 << 20)
    /// Some proxy listener terminates TLS.
    public var proxySSLEnabled: Bool { proxyListen.contains { $0.ssl } }
    /// The default certificate pairs generated in the prefix when ssl_cert is not set (Kong's names).
    public var defaultCertificates: [(cert: String, key: String)] {
        [(resolve("ssl/kong-default.crt"), resolve("ssl/kong-default.key")),
         (resolve("ssl/kong-default-ecdsa.crt"), resolve("ssl/kong-default-ecdsa.key"))]
    }
    /// The pairs the proxy loads: ssl_cert's, or the generated defaults.
    public var certificatePairs: [(cert: String, key: String)] { tls.certificates.isEmpty ? defaultCertificates : tls.certificates }
    public var keepaliveTimeout: Int                  // seconds
    public var keepaliveRequests: Int
    public var database: String                       // sqlite | postgres | off
    /// The pg_* keys and db_update_frequency (used with `database = postgres`).
    public var postgres = PostgresSettings()
    public var declarativeConfig: String?
    public var memCacheSize: Int                      // shared-memory size, bytes
    public var rateLimitingCountersSize: Int          // bytes of the shared rate-limiting counters
    public var proxyCacheSize: Int                    // bytes of the shared proxy-cache store
    public var proxyCacheMaxEntrySize: Int            // largest cached response (serialised), bytes
    public var serverTokens: Bool                     // headers: server_tokens (Via, Server)
    public var latencyTokens: Bool                    // headers: latency_tokens (X-Kong-*-Latency)
    public var adminToken: String?
    public var errorDefaultType: String
    public var quitTimeout: Int                       // seconds
    /// The effective `key = value` pairs (for GET / and `gateway check`), secrets removed.
    public var entries: [(String, String)]
    /// Kong `dns_resolver`: DNS servers as `ip[:port]` (comma-separated) for target host names;
    /// empty = the servers of /etc/resolv.conf.
    public var dnsResolver: String = ""
    /// `proxy_access_log_format`: `text` (nginx combined + upstream and latencies) or `json` (one
    /// kong.log.serialize() object per line, the logging plugins' shape).
    public var proxyAccessLogFormat: String = "text"
    /// Kong `trusted_ips`: peers whose X-Forwarded-* headers are forwarded and whose `real_ip_header`
    /// names the client (nginx realip).
    public var trustedIPs = TrustedIPs()
    /// Kong `real_ip_header` (a header name; `proxy_protocol` is refused) and `real_ip_recursive`.
    public var realIPHeader = "X-Real-IP"
    public var realIPRecursive = false
    /// nginx `underscores_in_headers` (Kong's template sets `on`; `nginx_proxy_underscores_in_headers = off`
    /// drops header lines whose name has an underscore, as nginx does).
    public var underscoresInHeaders = true
    /// Kong `status_listen` (3.10 default `127.0.0.1:8007`, `off` = none): GET /status, /status/ready,
    /// /metrics, served by the master.
    public var statusListen: [ListenSpec] = []
    /// Bytes of the prometheus plugin's shared metrics table (Kong's `prometheus_metrics` shm, 5m).
    public var prometheusMetricsSize: Int = 5 << 20
    /// Kong `lua_ssl_trusted_certificate` / `lua_ssl_verify_depth` (CosocketTLS.swift): Redis over TLS.
    public var cosocketTLS = CosocketTLSSettings()

    /// Paths relative to the prefix are resolved against it (as Kong does for log paths).
    public func resolve(_ path: String) -> String {
        if path.hasPrefix("/") || path == "off" { return path }
        return prefix.hasSuffix("/") ? prefix + path : prefix + "/" + path
    }

    public var pidFile: String { resolve("pids/gateway.pid") }
    /// The running node's configuration (Kong's `<prefix>/.kong_env`): written by the master at start and
    /// after each reload, read by the CLI commands that act on a running node (`health`, `stop`, …).
    public var runningConfigFile: String { resolve("run/running.conf") }

    /// `key = value` lines of the effective configuration (`entries`: admin_token and pg_password left out), loadable
    /// with `ConfigLoader.load(path:environment: [:])`.
    public var savedText: String {
        var s = "# the configuration this node runs with (written at start and reload)\n"
        for (k, v) in entries { s += "\(k) = \(k == "prefix" ? prefix : v)\n" }
        return s
    }
    public var databaseFile: String { resolve("gateway.db") }
}

/// The known keys, their defaults and a one-line description (also printed by `gateway check -v`).
public let configKeys: [(key: String, defaultValue: String)] = [
    ("prefix", "/usr/local/gateway"),
    ("proxy_listen", "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 ssl reuseport backlog=16384"),
    ("admin_listen", "127.0.0.1:8001 reuseport backlog=16384"),
    ("status_listen", "127.0.0.1:8007 reuseport backlog=16384"),
    ("admin_gui_listen", "127.0.0.1:8002"),
    ("admin_gui_access_log", "logs/admin_gui_access.log"),
    ("worker_processes", "auto"),
    ("daemon", "on"),
    ("log_level", "notice"),
    ("proxy_access_log", "logs/access.log"),
    ("proxy_access_log_format", "text"),
    ("proxy_error_log", "logs/error.log"),
    ("admin_access_log", "logs/admin_access.log"),
    ("admin_error_log", "logs/error.log"),
    ("upstream_keepalive_pool_size", "512"),
    ("upstream_keepalive_max_requests", "10000"),
    ("upstream_keepalive_idle_timeout", "60"),
    ("client_max_body_size", "0"),
    ("client_header_buffer_size", "1k"),
    ("large_client_header_buffers", "4 8k"),
    ("client_header_timeout", "60s"),
    ("client_body_timeout", "60s"),
    ("client_body_buffer_size", "8k"),
    ("response_transformer_max_body_size", "1m"),
    ("keepalive_timeout", "75s"),
    ("keepalive_requests", "10000"),
    ("database", "sqlite"),
    ("declarative_config", ""),
    ("mem_cache_size", "128m"),
    ("rate_limiting_counters_size", "12m"),
    ("proxy_cache_size", "128m"),
    ("proxy_cache_max_entry_size", "1m"),
    ("prometheus_metrics_size", "5m"),
    ("headers", "server_tokens, latency_tokens"),
    ("admin_token", ""),
    ("error_default_type", "text/plain"),
    ("quit_timeout", "10s"),
    ("dns_resolver", ""),
    ("trusted_ips", ""),
    ("real_ip_header", "X-Real-IP"),
    ("real_ip_recursive", "off"),
    ("nginx_proxy_underscores_in_headers", "on"),
    ("ssl_cert", ""),
    ("ssl_cert_key", ""),
    ("ssl_cipher_suite", "intermediate"),
    ("ssl_ciphers", ""),
    ("ssl_protocols", "TLSv1.2 TLSv1.3"),
    ("ssl_prefer_server_ciphers", "on"),
    ("ssl_session_tickets", "on"),
    ("ssl_session_timeout", "1d"),
    ("ssl_session_cache_size", "10m"),
] + PostgresSettings.keys + CosocketTLSSettings.keys

/// Kong spellings accepted as aliases.
private let aliases: [String: String] = [
    "nginx_worker_processes": "worker_processes",
    "nginx_main_worker_processes": "worker_processes",
    "nginx_daemon": "daemon",
    "nginx_main_daemon": "daemon",
    "nginx_http_client_max_body_size": "client_max_body_size",
    "nginx_proxy_client_max_body_size": "client_max_body_size",
    "nginx_http_client_body_buffer_size": "client_body_buffer_size",
    "nginx_proxy_client_body_buffer_size": "client_body_buffer_size",
    "nginx_http_client_header_buffer_size": "client_header_buffer_size",
    "nginx_http_large_client_header_buffers": "large_client_header_buffers",
    "nginx_http_keepalive_timeout": "keepalive_timeout",
    "nginx_http_keepalive_requests": "keepalive_requests",
    "nginx_proxy_real_ip_header": "real_ip_header",
    "nginx_proxy_real_ip_recursive": "real_ip_recursive",
    "nginx_http_underscores_in_headers": "nginx_proxy_underscores_in_headers",
]

/// The largest worker_processes (half of the shared segment's GW_MAX_WORKERS slots).
public let maxWorkerProcesses = 32

public enum ConfigLoader {
    /// Loads defaults, then `path` (if given), then GATEWAY_<KEY> variables, then `overrides`.
    public static func load(path: String?, overrides: [String: String] = [:],
                            environment: [String: String]? = nil) throws(ConfigError) -> GatewayConfig {
        var values: [String: (value: String, origin: String)] = [:]
        for (k, v) in configKeys { values[k] = (v, "default") }
        if let path {
            guard let bytes = ProcessControl.readFile(path) else {
                throw ConfigError("could not read configuration file \(path)")
            }
            try apply(text: bytes, origin: path, to: &values)
        }
        for (k, _) in configKeys {
            let envName = "GATEWAY_" + k.uppercased()
            let v = environment.map { $0[envName] } ?? ProcessControl.environment(envName)
            if let v { values[k] = (v, "environment variable \(envName)") }
        }
        for (k, v) in overrides {
            let key = aliases[k] ?? k
            guard values[key] != nil else { throw ConfigError("unknown configuration key '\(k)'") }
            values[key] = (v, "command line")
        }
        return try build(values)
    }

    /// Parses gateway.conf text (`key = value` lines, `#` comments) over the defaults only: no file, no
    /// environment, no overrides (the fuzz target's entry point; `load` runs the same code on a file).
    static func load(text: [UInt8], origin: String = "gateway.conf") throws(ConfigError) -> GatewayConfig {
        var values: [String: (value: String, origin: String)] = [:]
        for (k, v) in configKeys { values[k] = (v, "default") }
        try apply(text: text, origin: origin, to: &values)
        return try build(values)
    }

    private static func apply(text bytes: [UInt8], origin path: String,
                              to values: inout [String: (value: String, origin: String)]) throws(ConfigError) {
        let text = String(decoding: bytes, as: UTF8.self)
        var lineNo = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = String(line).trimmingWhitespace()
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ConfigError("\(path):\(lineNo): expected 'key = value', got '\(trimmed)'")
            }
            var key = String(trimmed[..<eq]).trimmingWhitespace().lowercased()
            let value = String(trimmed[trimmed.index(after: eq)...]).trimmingWhitespace()
            key = aliases[key] ?? key
            guard values[key] != nil else {
                throw ConfigError("\(path):\(lineNo): unknown configuration key '\(key)'")
            }
            values[key] = (value, "\(path):\(lineNo)")
        }
    }

    private static func build(_ values: [String: (value: String, origin: String)]) throws(ConfigError) -> GatewayConfig {
        func v(_ k: String) -> String { values[k]!.value }
        func bad(_ k: String, _ why: String) -> ConfigError {
            let e = values[k]!
            return ConfigError("invalid value '\(e.value)' for '\(k)' (\(e.origin)): \(why)")
        }
        func int(_ k: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
            guard let n = Int(v(k)), range.contains(n) else {
                throw bad(k, "expected an integer between \(range.lowerBound) and \(range.upperBound)")
            }
            return n
        }
        func size(_ k: String) throws(ConfigError) -> Int {
            guard let n = parseSize(v(k)) else { throw bad(k, "expected a size such as 512, 8k or 10m") }
            return n
        }
        func seconds(_ k: String) throws(ConfigError) -> Int {
            guard let n = parseSeconds(v(k)) else { throw bad(k, "expected a duration such as 60, 60s or 5m") }
            return n
        }
        func bool(_ k: String) throws(ConfigError) -> Bool {
            switch v(k).lowercased() {
            case "on", "true", "yes", "1": return true
            case "off", "false", "no", "0": return false
            default: throw bad(k, "expected on or off")
            }
        }
        func listen(_ k: String) throws(ConfigError) -> [ListenSpec] {
            let s = v(k).trimmingWhitespace()
            if s == "off" { return [] }
            var out: [ListenSpec] = []
            for item in s.split(separator: ",") {
                let parts = item.split(separator: " ").map(String.init).filter { !$0.isEmpty }
                guard let hp = parts.first, let (host, port) = splitHostPort(hp) else {
                    throw bad(k, "expected host:port entries such as 0.0.0.0:8000 or [::]:8000")
                }
                var backlog: Int32 = 16384
                var ssl = false
                for flag in parts.dropFirst() {
                    if flag.hasPrefix("backlog=") {
                        guard let b = Int32(flag.dropFirst(8)), b > 0 else { throw bad(k, "invalid backlog in '\(flag)'") }
                        backlog = b
                    } else if ["reuseport", "deferred", "bind", "ipv6only=on", "so_keepalive=on"].contains(flag) {
                        continue
                    } else if flag == "ssl" && k == "proxy_listen" {
                        ssl = true
                    } else if flag == "ssl" || flag == "http2" || flag == "proxy_protocol" {
                        throw bad(k, flag == "http2" ? "flag 'http2' is not supported yet (HTTP/2 is not implemented)"
                                                     : "flag '\(flag)' is not supported yet")
                    } else {
                        throw bad(k, "unknown flag '\(flag)'")
                    }
                }
                let ip = host == "*" ? "0.0.0.0" : (host == "localhost" ? "127.0.0.1" : host)
                guard let addr = SocketAddress(ip: ip, port: port) else {
                    throw bad(k, "'\(hp)' is not an IP address and port")
                }
                out.append(ListenSpec(host: ip, port: port, backlog: backlog, address: addr, ssl: ssl))
            }
            return out
        }

        var prefix = v("prefix")
        if !prefix.hasPrefix("/") { prefix = ProcessControl.currentDirectory() + "/" + prefix }
        while prefix.count > 1 && prefix.hasSuffix("/") { prefix.removeLast() }

        // At most half the shared-memory worker slots (GW_MAX_WORKERS = 64): a reload runs the old
        // and the new generation side by side. `auto` is clamped (a 128-core host gets 32).
        let wp: Int
        if v("worker_processes") == "auto" { wp = min(ProcessControl.cpuCount(), maxWorkerProcesses) }
        else { wp = try int("worker_processes", 1...maxWorkerProcesses) }

        guard let level = LogLevel(name: v("log_level")) else {
            throw bad("log_level", "expected one of debug, info, notice, warn, error, crit, alert, emerg")
        }
        let lchb = v("large_client_header_buffers").split(separator: " ").filter { !$0.isEmpty }
        guard lchb.count == 2, let lcount = Int(lchb[0]), lcount >= 1, let lsize = parseSize(String(lchb[1])), lsize >= 128 else {
            throw bad("large_client_header_buffers", "expected '<number> <size>', e.g. 4 8k")
        }
        let db = v("database")
        guard db == "sqlite" || db == "postgres" || db == "off" else { throw bad("database", "expected sqlite, postgres or off") }
        let decl = v("declarative_config").trimmingWhitespace()
        if db == "off" && decl.isEmpty {
            // DB-less without a file starts empty, as Kong does.
        }
        var serverTokens = false, latencyTokens = false
        for h in v("headers").split(separator: ",").map({ String($0).trimmingWhitespace() }) {
            switch h {
            case "off": serverTokens = false; latencyTokens = false
            case "server_tokens", "Server", "Via": serverTokens = true
            case "latency_tokens", "X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency": latencyTokens = true
            case "x-kong-request-id", "X-Kong-Request-Id", "X-Kong-Response-Latency", "X-Kong-Upstream-Status": continue
            default: throw bad("headers", "unknown header token '\(h)'")
            }
        }
        let edt = v("error_default_type")
        guard ["text/plain", "application/json", "text/html", "application/xml"].contains(edt) else {
            throw bad("error_default_type", "expected text/plain, application/json, text/html or application/xml")
        }
        let mem = try size("mem_cache_size")
        guard mem >= 1 << 20 else { throw bad("mem_cache_size", "must be at least 1m") }
        let rlSize = try size("rate_limiting_counters_size")
        guard rlSize >= 64 << 10, rlSize <= 64 << 30 else {
            throw bad("rate_limiting_counters_size", "must be between 64k and 64g")
        }
        let pcSize = try size("proxy_cache_size")
        guard pcSize >= 1 << 20, pcSize <= 1 << 40 else { throw bad("proxy_cache_size", "must be between 1m and 1024g") }
        let pcMax = try size("proxy_cache_max_entry_size")
        guard pcMax >= 1 << 10, pcMax <= pcSize / 2, pcMax <= Int(Int32.max) else {
            throw bad("proxy_cache_max_entry_size", "must be at least 1k and at most half of proxy_cache_size")
        }
        let proxy = try listen("proxy_listen")
        let admin = try listen("admin_listen")
        let token = v("admin_token").trimmingWhitespace()

        var entries: [(String, String)] = []
        for (k, _) in configKeys where k != "admin_token" && k != "pg_password" { entries.append((k, v(k))) }

        var cfg = GatewayConfig(
            prefix: prefix, proxyListen: proxy, adminListen: admin, workerProcesses: wp,
            daemon: try bool("daemon"), logLevel: level,
            proxyAccessLog: v("proxy_access_log"), proxyErrorLog: v("proxy_error_log"),
            adminAccessLog: v("admin_access_log"), adminErrorLog: v("admin_error_log"),
            upstreamKeepalivePoolSize: try int("upstream_keepalive_pool_size", 0...100_000),
            upstreamKeepaliveMaxRequests: try int("upstream_keepalive_max_requests", 0...Int(Int32.max)),
            upstreamKeepaliveIdleTimeout: try int("upstream_keepalive_idle_timeout", 0...86_400),
            clientMaxBodySize: try size("client_max_body_size"),
            clientHeaderBufferSize: try size("client_header_buffer_size"),
            largeClientHeaderBuffers: (lcount, lsize),
            clientHeaderTimeout: try seconds("client_header_timeout"),
            clientBodyTimeout: try seconds("client_body_timeout"),
            keepaliveTimeout: try seconds("keepalive_timeout"),
            keepaliveRequests: try int("keepalive_requests", 1...Int(Int32.max)),
            database: db, declarativeConfig: decl.isEmpty ? nil : decl, memCacheSize: mem,
            rateLimitingCountersSize: rlSize, proxyCacheSize: pcSize, proxyCacheMaxEntrySize: pcMax,
            serverTokens: serverTokens, latencyTokens: latencyTokens,
            adminToken: token.isEmpty ? nil : token, errorDefaultType: edt,
            quitTimeout: try seconds("quit_timeout"), entries: entries)
        switch v("proxy_access_log_format") {
        case "text", "json": cfg.proxyAccessLogFormat = v("proxy_access_log_format")
        default: throw bad("proxy_access_log_format", "expected text or json")
        }
        let cbb = try size("client_body_buffer_size")
        guard cbb >= 1 << 10, cbb <= 64 << 20 else { throw bad("client_body_buffer_size", "must be between 1k and 64m") }
        cfg.clientBodyBufferSize = cbb
        let rtMax = try size("response_transformer_max_body_size")
        guard rtMax >= 1 << 10, rtMax <= 256 << 20 else { throw bad("response_transformer_max_body_size", "must be between 1k and 256m") }
        cfg.responseTransformerMaxBodySize = rtMax
        cfg.statusListen = try listen("status_listen")
        let pmSize = try size("prometheus_metrics_size")
        guard pmSize >= 64 << 10, pmSize <= 4 << 30 else { throw bad("prometheus_metrics_size", "must be between 64k and 4g") }
        cfg.prometheusMetricsSize = pmSize
        cfg.tls = try TLSSettings.parse(v, bad, seconds: seconds, size: size, bool: bool)
        let servers = v("dns_resolver").split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
        for e in servers {
            // ip, ip:port, [ipv6]:port or a bare IPv6 address (what c-ares' ares_set_servers_ports_csv takes).
            var host = e, port = 53
            if e.hasPrefix("["), let close = e.firstIndex(of: "]") {
                host = String(e[e.index(after: e.startIndex)..<close])
                let rest = e[e.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else { throw bad("dns_resolver", "expected ip[:port] entries, got '\(e)'") }
                    port = p
                }
            } else if e.filter({ $0 == ":" }).count == 1, let c = e.firstIndex(of: ":") {
                host = String(e[..<c])
                guard let p = Int(e[e.index(after: c)...]) else { throw bad("dns_resolver", "expected ip[:port] entries, got '\(e)'") }
                port = p
            }
            guard (1...65535).contains(port), SocketAddress(ip: host, port: port) != nil else {
                throw bad("dns_resolver", "expected ip[:port] entries, got '\(e)'")
            }
        }
        cfg.dnsResolver = servers.joined(separator: ",")
        do { cfg.trustedIPs = try TrustedIPs(parsing: v("trusted_ips")) } catch {
            throw bad("trusted_ips", error.message)
        }
        let rih = v("real_ip_header").trimmingWhitespace()
        if rih == "proxy_protocol" { throw bad("real_ip_header", "proxy_protocol is not supported yet") }
        guard !rih.isEmpty, rih.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3A && $0 != 0x2C }) else {
            throw bad("real_ip_header", "expected a header name")
        }
        cfg.realIPHeader = rih
        cfg.realIPRecursive = try bool("real_ip_recursive")
        cfg.underscoresInHeaders = try bool("nginx_proxy_underscores_in_headers")
        cfg.postgres = try PostgresSettings.parse(v, bad, bool: bool)
        cfg.adminGuiListen = try listen("admin_gui_listen")
        cfg.adminGuiAccessLog = v("admin_gui_access_log")
        cfg.cosocketTLS = try CosocketTLSSettings.parse(v, bad)
        if cfg.cosocketTLS.files.count == 1 { cfg.postgres.sslRootCert = cfg.cosocketTLS.files[0] }
        if cfg.cosocketTLS.files.count > 1 && db == "postgres" && cfg.postgres.ssl && cfg.postgres.sslVerify {
            throw bad("lua_ssl_trusted_certificate", "with pg_ssl_verify on, list a single CA file (PostgreSQL's client reads one)")
        }
        return cfg
    }

    /// "512", "8k", "10m", "1g" → bytes.
    public static func parseSize(_ s: String) -> Int? {
        let t = s.trimmingWhitespace().lowercased()
        guard let last = t.last else { return nil }
        var mult = 1
        var num = Substring(t)
        switch last {
        case "k": mult = 1024; num = num.dropLast()
        case "m": mult = 1024 * 1024; num = num.dropLast()
        case "g": mult = 1024 * 1024 * 1024; num = num.dropLast()
        default: break
        }
        guard let n = Int(num), n >= 0, n <= Int.max / mult else { return nil }
        return n * mult
    }

    /// "60", "60s", "5m", "1h" → seconds.
    public static func parseSeconds(_ s: String) -> Int? {
        let t = s.trimmingWhitespace().lowercased()
        guard let last = t.last else { return nil }
        var mult = 1
        var num = Substring(t)
        switch last {
        case "s": num = num.dropLast()
        case "m": mult = 60; num = num.dropLast()
        case "h": mult = 3600; num = num.dropLast()
        case "d": mult = 86400; num = num.dropLast()
        default: break
        }
        guard let n = Int(num), n >= 0 else { return nil }
        return n * mult
    }

    /// "1.2.3.4:80" / "[::1]:80" → (host, port).
    public static func splitHostPort(_ s: String) -> (String, Int)? {
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
            return (host, p)
        }
        guard let colon = s.lastIndex(of: ":") else { return nil }
        guard let p = Int(s[s.index(after: colon)...]), (1...65535).contains(p) else { return nil }
        return (String(s[..<colon]), p)
    }
}

private func splitHostPort(_ s: String) -> (String, Int)? { ConfigLoader.splitHostPort(s) }
