// acl (Kong 3.10 `kong/plugins/acl/handler.lua`, KONG-PLUGINS.md §3), priority 950. Groups are the
// authenticated consumer's `acls` rows. Exactly one of allow / deny is configured (the Admin API
// enforces it). 401 without any consumer and credential, 403 "You cannot consume this service"
// otherwise; a pass sends X-Consumer-Groups upstream unless hide_groups_header.
import GWHTTP
import GWStore

final class ACL: PluginHandler {
    static let name = "acl"
    static let priority = 950

    let allow: Set<String>?
    let deny: Set<String>?
    let hideGroupsHeader: Bool

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: ACL.name)
        allow = (try c.strings("allow")).map(Set.init)
        deny = (try c.strings("deny")).map(Set.init)
        guard (allow == nil) != (deny == nil) else { throw PluginError("acl: exactly one of allow or deny is required") }
        hideGroupsHeader = try c.bool("hide_groups_header", false)
        super.init(entity: entity, priority: ACL.priority)
    }

    override var phases: PluginPhases { .access }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        guard let consumer = ctx.consumer else {
            // Kong: no consumer and no credential → 401; a credential without consumer → 403.
            if ctx.credential != nil { ctx.error(403, "You cannot consume this service") } else { ctx.error(401, "Unauthorized") }
            return
        }
        let groups = consumer.groups
        if let allow {
            if groups.isEmpty {
                if ctx.credential != nil { ctx.error(403, "You cannot consume this service") } else { ctx.error(401, "Unauthorized") }
                return
            }
            guard groups.contains(where: { allow.contains($0) }) else { ctx.error(403, "You cannot consume this service"); return }
        } else if let deny, groups.contains(where: { deny.contains($0) }) {
            ctx.error(403, "You cannot consume this service")
            return
        }
        if !hideGroupsHeader && !groups.isEmpty { ctx.upstreamHeaders.set("X-Consumer-Groups", consumer.groupsHeader) }
    }
}
