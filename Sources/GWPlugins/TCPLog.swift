// tcp-log (Kong 3.10 `kong/plugins/tcp-log/{handler,schema}.lua`, KONG-PLUGINS.md §7), priority 7.
// Each entry + "\n" goes to the worker's StreamSink for (host, port, timeout, keepalive): batched by the
// flush timer onto one nonblocking keep-alive connection (Kong: one cosocket send per entry from a
// 0-delay timer). `host` is an IP literal or `localhost` (the Admin API refuses names: no resolver on
// the worker); `tls: true` is refused until TLS exists.
import GWStore

final class TCPLog: PluginHandler {
    static let name = "tcp-log"
    static let priority = 7

    let host: String
    let port: Int
    let timeout: Int
    let keepalive: Int
    private var sink: StreamSink?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: TCPLog.name)
        guard let h = try c.string("host") else { throw PluginError("tcp-log: config.host is required") }
        host = h
        port = try c.int("port", 0)
        timeout = try c.int("timeout", 10000)
        keepalive = try c.int("keepalive", 60000)
        if try c.bool("tls", false) { throw PluginError("tcp-log: tls is not supported") }
        guard LogSinks.address(host, port) != nil else { throw PluginError("tcp-log: host must be an IP address or localhost") }
        super.init(entity: entity, priority: TCPLog.priority)
    }

    override var phases: PluginPhases { .log }

    override func log(_ ctx: PluginContext, status: Int) {
        if sink == nil { sink = LogSinks.worker?.stream(host: host, port: port, timeoutMs: timeout, keepaliveMs: keepalive) }
        sink?.append(ctx.logEntry)
    }
}
