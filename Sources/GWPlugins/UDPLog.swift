// udp-log (Kong 3.10 `kong/plugins/udp-log/{handler,schema}.lua`, KONG-PLUGINS.md §7), priority 8.
// Each entry is one datagram to (host, port), sent by the worker's flush timer from a connected
// nonblocking UDP socket with sendmmsg (Kong: one send per entry from a 0-delay timer). `host` is an IP
// literal, `localhost`, or a name the master resolves (LogHosts; no answer yet: entries dropped and
// counted). `timeout` bounds nothing here: a nonblocking datagram send never waits.
import GWStore
import GWSystem

final class UDPLog: PluginHandler {
    static let name = "udp-log"
    static let priority = 8

    let host: String
    let port: Int
    /// nil: `host` is a name without an address yet.
    let address: SocketAddress?
    private var sink: DatagramSink?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: UDPLog.name)
        guard let h = try c.string("host") else { throw PluginError("udp-log: config.host is required") }
        host = h
        let pt = try c.int("port", 0)
        port = pt
        let a = LogHosts.address(h, pt, env)
        guard a != nil || LogHosts.isName(h) else { throw PluginError("udp-log: invalid host") }
        address = a
        super.init(entity: entity, priority: UDPLog.priority)
    }

    override var phases: PluginPhases { .log }

    override func log(_ ctx: PluginContext, status: Int) {
        if sink == nil {
            guard let a = address else { LogSinks.worker?.dropUnresolved(UDPLog.name, host); return }
            sink = LogSinks.worker?.datagram(address: a)
        }
        sink?.append(ctx.logEntry)
    }
}
