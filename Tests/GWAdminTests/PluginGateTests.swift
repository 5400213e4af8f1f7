import Testing
import GWJSON
import GWPlugins
@testable import GWAdmin

/// The Admin API accepts only plugins the data path runs (`PluginRegistry`), in every mode.
@Suite struct PluginGateTests {
    /// A harness whose context is the production one: the registry decides.
    func production() throws -> Harness {
        let h = try Harness()
        h.api.context.availablePlugins = AdminContext().availablePlugins
        return h
    }

    /// Plugins GWAdmin has a schema for but whose handler does not run in this build.
    var notRunning: [String] { Schemas.plugins.keys.filter { PluginRegistry.priorities[$0] == nil }.sorted() }

    @Test func registryNamesHaveSchemas() {
        for n in PluginRegistry.names { #expect(Schemas.plugins[n] != nil, "\(n) runs but has no config schema") }
    }

    @Test func adminRefusesPluginsThatDoNotRun() throws {
        let h = try production()
        h.req("POST", "/services", ["name": "svc", "url": "http://127.0.0.1:9"])
        h.req("POST", "/services/svc/routes", ["name": "r", "paths": ["/"]])
        for n in notRunning {
            for path in ["/plugins", "/routes/r/plugins", "/services/svc/plugins"] {
                let r = h.req("POST", path, ["name": .string(n)])
                #expect(r.0 == 400)
                #expect(r.1["message"] == .string("schema violation (name: plugin '\(n)' not enabled; add it to the 'plugins' configuration property)"))
                #expect(r.1["fields"]?["name"] == .string("plugin '\(n)' not enabled; add it to the 'plugins' configuration property"))
            }
            #expect(h.req("PUT", "/plugins/6f1a1c9e-3c4b-4c5e-9a51-0d3c7f6a2b10", ["name": .string(n)]).0 == 400)
            #expect(h.req("POST", "/schemas/plugins/validate", ["name": .string(n)]).0 == 400)
            #expect(h.req("GET", "/schemas/plugins/\(n)").0 == 404)
        }
        #expect(h.store.count(.plugins) == 0)
        #expect(h.req("GET", "/plugins/enabled").1 == ["enabled_plugins": JSON(PluginRegistry.names)])
    }

    @Test func declarativeRefusesPluginsThatDoNotRun() throws {
        for n in notRunning {
            let yaml = """
            _format_version: "3.0"
            services:
            - name: s
              url: http://127.0.0.1:9
              plugins: [{name: \(n)}]
            """
            let h = try production()
            #expect(throws: (any Error).self) { try h.api.dbImport(Array(yaml.utf8)) }
            #expect(h.store.count(.plugins) == 0 && h.store.count(.services) == 0)
            let db = try Harness(databaseOff: true)
            db.api.context.availablePlugins = AdminContext().availablePlugins
            let r = db.req("POST", "/config", ["_format_version": "3.0", "services": [[
                "name": "s", "url": "http://127.0.0.1:9", "plugins": [["name": .string(n)]]]]])
            #expect(r.0 == 400)
            #expect(db.store.count(.plugins) == 0)
        }
    }
}
