// tcp-log (Kong 3.10 `kong/plugins/tcp-log/{handler,schema}.lua`, KONG-PLUGINS.md §7), priority 7.
// Each entry + "\n" goes to the worker's StreamSink for (host, port, timeout, keepalive): batched by the
// flush timer onto one nonblocking keep-alive connection (Kong: one cosocket send per entry from a
// 0-delay timer). `host` is an IP literal, `localhost`, or a name the master resolves (LogHosts); a
// name without an answer yet drops the entries (counted); `tls: true` runs TLS over the connection
// (SNI `tls_sni`, the certificate not verified, as Kong).
import GWStore
import GWSystem

final class TCPLog: PluginHandler {
    static let name = "tcp-log"
    static let priority = 7

    let host: String
    let port: Int
    let timeout: Int
    let keepalive: Int
    /// TLS to the collector (`tls`, SNI `tls_sni`; not verified, as Kong's sslhandshake(…, false)).
    let tls: LogTLS?
    /// nil: `host` is a name without an address yet.
    let address: SocketAddress?
    private var sink: StreamSink?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: TCPLog.name)
        guard let h = try c.string("host") else { throw PluginError("tcp-log: config.host is required") }
        host = h
        let pt = try c.int("port", 0)
        port = pt
        timeout = try c.int("timeout", 10000)
        keepalive = try c.int("keepalive", 60000)
        tls = try c.bool("tls", false) ? LogTLS(sni: try c.string("tls_sni")) : nil
        let a = LogHosts.address(h, pt, env)
        guard a != nil || LogHosts.isName(h) else { throw PluginError("tcp-log: invalid host") }
        address = a
        super.init(entity: entity, priority: TCPLog.priority)
    }

    override var phases: PluginPhases { .log }

    override func log(_ ctx: PluginContext, status: Int) {
        if sink == nil {
            guard let a = address else { LogSinks.worker?.dropUnresolved(TCPLog.name, host); return }
            sink = LogSinks.worker?.stream(address: a, timeoutMs: timeout, keepaliveMs: keepalive, tls: tls)
        }
        sink?.append(ctx.logEntry)
    }
}
