import Glibc
import GWJSON
@testable import GWAdmin

/// A temp-dir SQLite-backed AdminAPI for tests.
final class Harness {
    let dir: String
    var store: AdminStore
    var api: AdminAPI
    var changes = 0

    init(databaseOff: Bool = false, token: String? = nil) throws {
        var tmpl = Array("/tmp/gwadmin-XXXXXX".utf8CString)
        let p = tmpl.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        dir = String(cString: p!)
        store = try AdminStore(path: databaseOff ? ":memory:" : dir + "/gateway.db")
        api = AdminAPI(store: store, context: Harness.context())
        api.context.databaseOff = databaseOff
        api.context.adminToken = token
        api.context.onChange = { [unowned self] in self.changes += 1 }
    }

    func reopen() throws {
        store = try AdminStore(path: dir + "/gateway.db")
        api = AdminAPI(store: store, context: Harness.context())
    }

    /// A context that accepts every plugin GWAdmin has a schema for: these tests check the Admin API's
    /// schema handling, not which plugins the data path runs (PluginGateTests checks that).
    static func context() -> AdminContext {
        var c = AdminContext()
        c.availablePlugins = Set(Schemas.plugins.keys)
        return c
    }

    deinit {
        for f in ["gateway.db", "gateway.db-wal", "gateway.db-shm"] { unlink(dir + "/" + f) }
        rmdir(dir)
    }

    @discardableResult
    func req(_ method: String, _ target: String, _ json: JSON? = nil, headers: [(name: String, value: String)] = []) -> (Int, JSON) {
        let r: AdminRequest
        if let json { r = AdminRequest(method: method, target: target, json: json, headers: headers) } else {
            r = AdminRequest(method: method, target: target, headers: headers)
        }
        let resp = api.handle(r)
        return (resp.status, resp.json ?? .null)
    }

    @discardableResult
    func form(_ method: String, _ target: String, _ body: String) -> (Int, JSON) {
        let resp = api.handle(AdminRequest(method: method, target: target,
                                           headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                           body: Array(body.utf8)))
        return (resp.status, resp.json ?? .null)
    }

    func raw(_ method: String, _ target: String, contentType: String?, body: String) -> AdminResponse {
        var h: [(name: String, value: String)] = []
        if let contentType { h.append(("Content-Type", contentType)) }
        return api.handle(AdminRequest(method: method, target: target, headers: h, body: Array(body.utf8)))
    }
}
