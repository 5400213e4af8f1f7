// Typed reads of a plugin's `config` JSON, done once when an instance is compiled. The Admin API has
// already validated the config and filled Kong's defaults; a value of the wrong type here means a
// document written by something else, and compiling fails with a clear message (the instance is
// reported in the error log and the worker keeps its previous behaviour for nothing: see PluginSet).
import GWJSON

struct PluginConfig {
    let json: JSON
    let plugin: String

    init(_ json: JSON, plugin: String) { self.json = json; self.plugin = plugin }

    func bool(_ k: String, _ def: Bool) throws(PluginError) -> Bool {
        guard let v = json[k], !v.isNull else { return def }
        guard let b = v.boolValue else { throw PluginError("\(plugin): config.\(k) must be a boolean") }
        return b
    }
    func string(_ k: String) throws(PluginError) -> String? {
        guard let v = json[k], !v.isNull else { return nil }
        guard let s = v.stringValue else { throw PluginError("\(plugin): config.\(k) must be a string") }
        return s
    }
    func string(_ k: String, _ def: String) throws(PluginError) -> String { try string(k) ?? def }
    func strings(_ k: String) throws(PluginError) -> [String]? {
        guard let v = json[k], !v.isNull else { return nil }
        guard let a = v.arrayValue else { throw PluginError("\(plugin): config.\(k) must be an array") }
        var out: [String] = []
        for e in a {
            guard let s = e.stringValue else { throw PluginError("\(plugin): config.\(k) must hold strings") }
            out.append(s)
        }
        return out
    }
    func double(_ k: String) throws(PluginError) -> Double? {
        guard let v = json[k], !v.isNull else { return nil }
        guard let d = v.doubleValue else { throw PluginError("\(plugin): config.\(k) must be a number") }
        return d
    }
    func int(_ k: String, _ def: Int) throws(PluginError) -> Int {
        guard let d = try double(k) else { return def }
        return Int(d)
    }
    func ints(_ k: String) throws(PluginError) -> [Int]? {
        guard let v = json[k], !v.isNull else { return nil }
        guard let a = v.arrayValue else { throw PluginError("\(plugin): config.\(k) must be an array") }
        var out: [Int] = []
        for e in a {
            guard let i = e.intValue else { throw PluginError("\(plugin): config.\(k) must hold integers") }
            out.append(i)
        }
        return out
    }
    func object(_ k: String) -> PluginConfig? {
        guard let v = json[k], !v.isNull else { return nil }
        return PluginConfig(v, plugin: plugin)
    }
}
