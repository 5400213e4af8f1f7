import Testing
@testable import GWConfig
#if canImport(Glibc)
import Glibc
#endif

private func withFile(_ text: String, _ body: (String) throws -> Void) rethrows {
    let path = "/tmp/gwconfig-\(getpid())-\(Int.random(in: 0..<1_000_000)).conf"
    let f = fopen(path, "w")!
    fputs(text, f)
    fclose(f)
    defer { unlink(path) }
    try body(path)
}

@Suite struct ConfigLoaderTests {
    @Test func defaultsMatchKong() throws {
        let c = try ConfigLoader.load(path: nil, environment: [:])
        #expect(c.proxyListen.map(\.description) == ["0.0.0.0:8000", "0.0.0.0:8443"])
        #expect(c.proxyListen.map(\.ssl) == [false, true])
        #expect(c.tls.protocols == [.tls12, .tls13] && c.tls.ciphers == TLSSettings.intermediateCiphers)
        #expect(c.tls.sessionTickets && c.tls.sessionTimeout == 86400 && c.tls.sessionCacheSize == 10 << 20)
        #expect(c.certificatePairs.map(\.cert) == [c.prefix + "/ssl/kong-default.crt", c.prefix + "/ssl/kong-default-ecdsa.crt"])
        #expect(c.adminListen.map(\.description) == ["127.0.0.1:8001"])
        #expect(c.adminGuiListen.map(\.description) == ["127.0.0.1:8002"])   // Kong: 0.0.0.0; loopback here
        #expect(c.upstreamKeepalivePoolSize == 512)
        #expect(c.upstreamKeepaliveMaxRequests == 10000)
        #expect(c.upstreamKeepaliveIdleTimeout == 60)
        #expect(c.clientMaxBodySize == 0)
        #expect(c.database == "sqlite")
        #expect(c.serverTokens && c.latencyTokens)
        #expect(c.rateLimitingCountersSize == 12 << 20)
        #expect(c.proxyCacheSize == 128 << 20)
        #expect(c.proxyCacheMaxEntrySize == 1 << 20)
    }

    @Test func pluginStateSizesFromEnvironment() throws {
        let c = try ConfigLoader.load(path: nil, environment: ["GATEWAY_PROXY_CACHE_SIZE": "256m",
                                                               "GATEWAY_RATE_LIMITING_COUNTERS_SIZE": "128k",
                                                               "GATEWAY_PROXY_CACHE_MAX_ENTRY_SIZE": "512k"])
        #expect(c.proxyCacheSize == 256 << 20)
        #expect(c.rateLimitingCountersSize == 128 << 10)
        #expect(c.proxyCacheMaxEntrySize == 512 << 10)
    }

    @Test func fileValuesCommentsAndLists() throws {
        try withFile("""
        # comment
        proxy_listen = 127.0.0.1:9000, [::1]:9001 backlog=10   # trailing comment
        worker_processes = 3
        client_max_body_size = 10m
        headers = off
        nginx_http_keepalive_timeout = 5s
        """) { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.proxyListen.map(\.description) == ["127.0.0.1:9000", "[::1]:9001"])
            #expect(c.proxyListen[1].backlog == 10)
            #expect(c.workerProcesses == 3)
            #expect(c.clientMaxBodySize == 10 * 1024 * 1024)
            #expect(!c.serverTokens && !c.latencyTokens)
            #expect(c.keepaliveTimeout == 5)
        }
    }

    @Test func dnsResolverServers() throws {
        let d = try ConfigLoader.load(path: nil, environment: [:])
        #expect(d.dnsResolver == "")
        try withFile("dns_resolver = 127.0.0.1:5353, [::1]:53 ,10.0.0.1\n") { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.dnsResolver == "127.0.0.1:5353,[::1]:53,10.0.0.1")
        }
        for bad in ["ns.example.com", "1.2.3.4:x", "1.2.3.4:0", "[::1]x"] {
            try withFile("dns_resolver = \(bad)\n") { path in
                #expect(throws: (any Error).self) { _ = try ConfigLoader.load(path: path, environment: [:]) }
            }
        }
    }

    @Test func environmentOverridesFile() throws {
        try withFile("worker_processes = 2\n") { path in
            let c = try ConfigLoader.load(path: path, environment: ["GATEWAY_WORKER_PROCESSES": "5"])
            #expect(c.workerProcesses == 5)
        }
    }

    @Test func unknownKeyNamesKeyAndLine() throws {
        try withFile("log_level = info\nbogus_key = 1\n") { path in
            do {
                _ = try ConfigLoader.load(path: path, environment: [:])
                Issue.record("expected an error")
            } catch {
                #expect("\(error)".contains("bogus_key"))
                #expect("\(error)".contains(":2"))
            }
        }
    }

    @Test(arguments: [
        ("worker_processes = lots", "worker_processes"),
        ("log_level = loud", "log_level"),
        ("proxy_listen = nowhere", "proxy_listen"),
        ("client_max_body_size = 10q", "client_max_body_size"),
        ("daemon = maybe", "daemon"),
        ("database = cassandra", "database"),
        ("rate_limiting_counters_size = 1k", "rate_limiting_counters_size"),
        ("proxy_cache_size = 12x", "proxy_cache_size"),
        ("proxy_cache_max_entry_size = 200m", "proxy_cache_max_entry_size"),
        ("ssl_cert = /a.crt", "ssl_cert_key must be specified"),
        ("ssl_cert_key = /a.key", "ssl_cert must be specified"),
        ("ssl_cert = /a.crt, /b.crt\nssl_cert_key = /a.key", "ssl_cert was specified 2 times while ssl_cert_key was specified 1 times"),
        ("ssl_cipher_suite = fancy", "Undefined cipher suite fancy"),
        ("ssl_protocols = TLSv9", "ssl_protocols"),
        ("ssl_session_cache_size = 1k", "'ssl_session_cache_size' ("),
        ("ssl_session_cache_size = 2g", "must be between 32k and 1g"),
        ("proxy_listen = 127.0.0.1:8443 ssl http2", "http2"),
        ("admin_listen = 127.0.0.1:8444 ssl", "admin_listen"),
        ("admin_gui_listen = 127.0.0.1:8445 ssl", "admin_gui_listen"),
        ("admin_gui_listen = somewhere", "admin_gui_listen"),
        ("client_body_buffer_size = 1", "client_body_buffer_size"),
    ])
    func badValuesAreRejected(line: String, key: String) throws {
        try withFile(line + "\n") { path in
            do {
                _ = try ConfigLoader.load(path: path, environment: [:])
                Issue.record("expected an error for \(line)")
            } catch {
                #expect("\(error)".contains(key))
                #expect("\(error)".contains("line") || "\(error)".contains(":1"))
            }
        }
    }

    @Test func adminGuiListenOffAndAddresses() throws {
        try withFile("admin_gui_listen = off\n") { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.adminGuiListen.isEmpty)
        }
        try withFile("admin_gui_listen = 127.0.0.1:9002, [::1]:9002 backlog=64\nadmin_gui_access_log = off\n") { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.adminGuiListen.map(\.description) == ["127.0.0.1:9002", "[::1]:9002"])
            #expect(c.adminGuiListen.map(\.backlog) == [16384, 64] && c.adminGuiAccessLog == "off")
        }
    }

    @Test func sizesAndDurations() {
        #expect(ConfigLoader.parseSize("8k") == 8192)
        #expect(ConfigLoader.parseSize("1g") == 1 << 30)
        #expect(ConfigLoader.parseSize("-1") == nil)
        #expect(ConfigLoader.parseSeconds("5m") == 300)
        #expect(ConfigLoader.parseSeconds("60") == 60)
        #expect(ConfigLoader.parseSeconds("x") == nil)
    }

    @Test func cipherSuites() throws {
        try withFile("ssl_cipher_suite = modern\nssl_protocols = TLSv1\n") { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.tls.protocols == [.tls13] && c.tls.ciphers.isEmpty, "a named suite overrides ssl_protocols")
        }
        try withFile("ssl_cipher_suite = old\n") { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.tls.protocols.first == .tls1 && c.tls.securityLevel0 && c.tls.preferServerCiphers)
        }
        try withFile("ssl_cipher_suite = custom\nssl_protocols = TLSv1.3\nssl_ciphers = ECDHE-RSA-AES128-GCM-SHA256\nssl_session_timeout = 5m\n") { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.tls.protocols == [.tls13] && c.tls.ciphers == "ECDHE-RSA-AES128-GCM-SHA256" && c.tls.sessionTimeout == 300)
        }
        try withFile("ssl_cert = /a.crt, /b.crt\nssl_cert_key = /a.key, /b.key\n") { path in
            let c = try ConfigLoader.load(path: path, environment: [:])
            #expect(c.certificatePairs.map(\.key) == ["/a.key", "/b.key"])
        }
    }
}

/// The text entry point the fuzz target fuzz-gateway-conf uses: the same parser as a file, no environment.
@Test func loadFromTextIgnoresEnvironmentAndReportsLines() throws {
    let c = try ConfigLoader.load(text: Array("worker_processes = 3 # x\n\n  proxy_listen = 127.0.0.1:9000\n".utf8))
    #expect(c.workerProcesses == 3)
    #expect(c.proxyListen.map(\.port) == [9000])
    #expect(throws: ConfigError.self) { try ConfigLoader.load(text: Array("a\nworker_processes = 1\n".utf8)) }
    do { _ = try ConfigLoader.load(text: Array("\nnope = 1\n".utf8)) } catch {
        #expect(error.message == "gateway.conf:2: unknown configuration key 'nope'")
    }
}

@Suite struct PostgresSettingsTests {
    @Test func kongDefaults() throws {
        let c = try ConfigLoader.load(path: nil, environment: [:])
        let p = c.postgres
        #expect(p.host == "127.0.0.1" && p.port == 5432 && p.user == "kong" && p.database == "kong")
        #expect(p.password.isEmpty && p.schema.isEmpty && p.timeoutMs == 5000 && !p.ssl && !p.sslVerify)
        #expect(p.maxConcurrentQueries == 0 && p.updateFrequency == 5)
    }

    @Test func valuesAndEnvironment() throws {
        try withFile("database = postgres\npg_host = db.internal\npg_port = 6432\npg_password = s3cret\npg_schema = gw\n"
                     + "pg_ssl = on\ndb_update_frequency = 0.5\n") { path in
            let c = try ConfigLoader.load(path: path, environment: ["GATEWAY_PG_USER": "gw", "GATEWAY_PG_TIMEOUT": "1500"])
            #expect(c.database == "postgres")
            #expect(c.postgres.host == "db.internal" && c.postgres.port == 6432 && c.postgres.user == "gw")
            #expect(c.postgres.timeoutMs == 1500 && c.postgres.ssl && c.postgres.schema == "gw")
            #expect(c.postgres.updateFrequency == 0.5)
            // The password is not among the entries GET / shows and run/running.conf saves.
            #expect(!c.entries.contains { $0.0 == "pg_password" })
            #expect(!c.savedText.contains("s3cret"))
        }
    }

    @Test func badValuesRefused() {
        for (k, v) in [("pg_port", "0"), ("pg_port", "x"), ("pg_timeout", "0"), ("pg_ssl", "maybe"),
                       ("pg_max_concurrent_queries", "-1"), ("db_update_frequency", "0"), ("database", "cassandra"),
                       ("pg_user", "")] {
            #expect(throws: ConfigError.self) { try ConfigLoader.load(path: nil, environment: ["GATEWAY_" + k.uppercased(): v]) }
        }
    }
}
