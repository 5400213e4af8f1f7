// udp-log (Kong 3.10 `kong/plugins/udp-log/{handler,schema}.lua`, KONG-PLUGINS.md §7), priority 8.
// Each entry is one datagram to (host, port), sent by the worker's flush timer from a connected
// nonblocking UDP socket (Kong: one send per entry from a 0-delay timer). `host` is an IP literal or
// `localhost`. `timeout` bounds nothing here: a nonblocking datagram send never waits.
import GWStore

final class UDPLog: PluginHandler {
    static let name = "udp-log"
    static let priority = 8

    let host: String
    let port: Int
    private var sink: DatagramSink?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: UDPLog.name)
        guard let h = try c.string("host") else { throw PluginError("udp-log: config.host is required") }
        host = h
        port = try c.int("port", 0)
        guard LogSinks.address(host, port) != nil else { throw PluginError("udp-log: host must be an IP address or localhost") }
        super.init(entity: entity, priority: UDPLog.priority)
    }

    override var phases: PluginPhases { .log }

    override func log(_ ctx: PluginContext, status: Int) {
        if sink == nil { sink = LogSinks.worker?.datagram(host: host, port: port) }
        sink?.append(ctx.logEntry)
    }
}
