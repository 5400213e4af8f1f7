// proxy-cache's Admin API (Kong 3.10 `kong/plugins/proxy-cache/api.lua`): purge everything, read or
// purge one entry by its X-Cache-Key, optionally through the proxy-cache instance that stored it.
// The store is the node's shared-memory CacheStore (the master maps the same segment as the workers):
// a purge is seen by every worker's next lookup. 404s have no body, as Kong's.
import GWJSON
import GWPluginState
import GWPlugins

extension AdminAPI {
    func proxyCache(_ req: Req, _ extra: inout [(String, String)]) throws(OpFailure) -> Result {
        let s = req.segs
        let store = context.proxyCache
        let now = Clock.seconds()
        let notFound: Result = (404, .null)
        switch s.count {
        case 1:
            return try methods(req, &extra, [("DELETE", { store?.purgeAll(); return (204, .null) })])
        case 2:
            return try methods(req, &extra, [
                ("GET", {
                    guard let store, let key = ProxyCacheAdmin.key(hex: s[1]),
                          let e = ProxyCacheAdmin.entry(store, key: key, now: now) else { return notFound }
                    return (200, e)
                }),
                ("DELETE", {
                    guard let store, let key = ProxyCacheAdmin.key(hex: s[1]), store.purge(key) else { return notFound }
                    return (204, .null)
                }),
            ])
        case 4 where s[2] == "caches":
            let pluginExists = { () -> Bool in
                self.store.get(.plugins, id: s[1]).map { $0["name"]?.stringValue == "proxy-cache" } ?? false
            }
            return try methods(req, &extra, [
                ("GET", {
                    guard pluginExists(), let store, let key = ProxyCacheAdmin.key(hex: s[3]),
                          let e = ProxyCacheAdmin.entry(store, key: key, now: now) else { return notFound }
                    return (200, e)
                }),
                ("DELETE", {
                    guard pluginExists(), let store, let key = ProxyCacheAdmin.key(hex: s[3]),
                          store.purge(plugin: ProxyCacheAdmin.pluginHash(id: s[1]), key: key) else { return notFound }
                    return (204, .null)
                }),
            ])
        default:
            return AdminAPI.notFound
        }
    }
}
