// The PostgreSQL keys of gateway.conf (Kong's names and defaults, KONG-TLS-CLUSTER.md C.1): pg_host,
// pg_port, pg_user, pg_password, pg_database, pg_schema, pg_timeout, pg_ssl, pg_ssl_verify,
// pg_max_concurrent_queries, and db_update_frequency (the change-log check interval). Read whatever
// `database` says (as Kong does), used only with `database = postgres`. Invariant: a value here is valid;
// libpq is not touched here (GWServer's PGConnection builds the connection string).

/// Where and how the master (and the `migrations` / `config` commands) reach PostgreSQL.
public struct PostgresSettings: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 5432
    public var user = "kong"
    public var password = ""
    public var database = "kong"
    /// Empty: the server's search_path (`CURRENT_SCHEMA`), as Kong with pg_schema unset.
    public var schema = ""
    /// Connect, send and read timeout, milliseconds.
    public var timeoutMs = 5000
    /// TLS asked for (libpq `sslmode=prefer`: plain when the server refuses, as Kong's hint).
    public var ssl = false
    /// With `ssl`: the server certificate is verified (`sslmode=verify-full`) against `sslRootCert`.
    public var sslVerify = false
    /// The CA file for `sslVerify`: the system bundle, or the one file of lua_ssl_trusted_certificate.
    public var sslRootCert = "/etc/ssl/certs/ca-certificates.crt"
    /// 0 = no limit. The master runs one query at a time on one connection, so every limit is met.
    public var maxConcurrentQueries = 0
    /// Seconds between checks of the change log's highest sequence number (backs up LISTEN/NOTIFY).
    public var updateFrequency = 5.0

    public init() {}

    static let keys: [(key: String, defaultValue: String)] = [
        ("pg_host", "127.0.0.1"), ("pg_port", "5432"), ("pg_user", "kong"), ("pg_password", ""),
        ("pg_database", "kong"), ("pg_schema", ""), ("pg_timeout", "5000"), ("pg_ssl", "off"),
        ("pg_ssl_verify", "off"), ("pg_max_concurrent_queries", "0"), ("db_update_frequency", "5"),
    ]

    static func parse(_ v: (String) -> String, _ bad: (String, String) -> ConfigError,
                      bool: (String) throws(ConfigError) -> Bool) throws(ConfigError) -> PostgresSettings {
        var s = PostgresSettings()
        s.host = v("pg_host").trimmingWhitespace()
        guard !s.host.isEmpty, s.host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x27 && $0 != 0x5C }) else {
            throw bad("pg_host", "expected a host name or IP address")
        }
        guard let port = Int(v("pg_port").trimmingWhitespace()), (1...65535).contains(port) else {
            throw bad("pg_port", "expected an integer between 1 and 65535")
        }
        s.port = port
        s.user = v("pg_user").trimmingWhitespace()
        if s.user.isEmpty { throw bad("pg_user", "expected a user name") }
        s.password = v("pg_password")
        s.database = v("pg_database").trimmingWhitespace()
        if s.database.isEmpty { throw bad("pg_database", "expected a database name") }
        s.schema = v("pg_schema").trimmingWhitespace()
        if !s.schema.isEmpty, !s.schema.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x22 }) {
            throw bad("pg_schema", "expected a schema name")
        }
        guard let t = Int(v("pg_timeout").trimmingWhitespace()), (1...3_600_000).contains(t) else {
            throw bad("pg_timeout", "expected milliseconds between 1 and 3600000")
        }
        s.timeoutMs = t
        s.ssl = try bool("pg_ssl")
        s.sslVerify = try bool("pg_ssl_verify")
        guard let mcq = Int(v("pg_max_concurrent_queries").trimmingWhitespace()), mcq >= 0 else {
            throw bad("pg_max_concurrent_queries", "must be greater than or equal to 0")
        }
        s.maxConcurrentQueries = mcq
        guard let f = Double(v("db_update_frequency").trimmingWhitespace()), f > 0, f <= 86_400 else {
            throw bad("db_update_frequency", "must be greater than 0")
        }
        s.updateFrequency = f
        return s
    }
}
