// ip-restriction (Kong 3.10 `kong/plugins/ip-restriction/handler.lua`, KONG-PLUGINS.md §3), priority 990.
// The deny list is checked first, then the allow list; a block is `kong.response.error(status or 403,
// message or "IP address not allowed: <client ip>")`. A client without an IP address (unix socket)
// gets 403 "Cannot identify the client IP address, unix domain sockets are not supported.".
// Kong's `kong.response.error` accepts only 400-599: another configured status is a handler error (500).
// The lists are compiled into IPMatchers once per configuration; a request costs a few binary searches.
import GWHTTP
import GWStore

final class IPRestriction: PluginHandler {
    static let name = "ip-restriction"
    static let priority = 990

    let allow: IPMatcher?
    let deny: IPMatcher?
    let status: Int
    let message: String?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: IPRestriction.name)
        func list(_ k: String) throws(PluginError) -> IPMatcher? {
            guard let entries = try c.strings(k), !entries.isEmpty else { return nil }
            guard let m = IPMatcher(entries) else { throw PluginError("ip-restriction: config.\(k) holds an invalid ip or cidr range") }
            return m
        }
        allow = try list("allow")
        deny = try list("deny")
        guard allow != nil || deny != nil else { throw PluginError("ip-restriction: one of allow or deny is required") }
        status = try c.double("status").map { Int($0) } ?? 403
        message = try c.string("message")
        super.init(entity: entity, priority: IPRestriction.priority)
    }

    override var phases: PluginPhases { .access }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        let address = ctx.clientAddress
        if case .none = address {
            ctx.error(403, "Cannot identify the client IP address, unix domain sockets are not supported.")
            return
        }
        if let deny, deny.matches(address) { return try block(ctx) }
        if let allow, !allow.matches(address) { return try block(ctx) }
    }

    private func block(_ ctx: PluginContext) throws(PluginError) {
        guard status >= 400 && status <= 599 else { throw PluginError("code must be a number between 400 and 599") }
        ctx.error(status, message ?? "IP address not allowed: \(ctx.clientIP)")
    }
}
