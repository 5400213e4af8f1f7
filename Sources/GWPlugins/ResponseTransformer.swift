// response-transformer (Kong 3.10 `kong/plugins/response-transformer/{handler,header_transformer,schema}.lua`,
// KONG-PLUGINS.md §3), priority 800: header_filter only, on proxied and generated responses alike.
// Order remove → rename → replace → add → append (Kong's transform_headers): remove clears the name;
// rename moves every value of an existing header to the new name; replace sets existing names only,
// add absent names only; append adds one more value. "Existing" means in the head being written: the
// upstream's headers with the edits earlier plugins made. An entry without value (`name:`) does nothing
// (Kong: nil value).
// JSON bodies (Kong's body_transformer.lua): with any `json` list set and a Content-Type containing
// application/json, header_filter asks the data path to hold the body (holdResponseBody, bounded by
// response_transformer_max_body_size; a larger body passes through untouched and is logged), then
// transformResponseBody applies remove → rename → replace → add → append on the top-level object,
// values cast by `json_types` (string, number, boolean). A body that does not parse is left alone.
import GWHTTP
import GWJSON
import GWStore

final class ResponseTransformer: PluginHandler {
    static let name = "response-transformer"
    static let priority = 800

    struct Entry {
        let name: String
        let nameBytes: [UInt8]
        let value: [UInt8]?
        let valueString: String?
    }

    let remove: [Entry], rename: [Entry], replace: [Entry], add: [Entry], append: [Entry]

    /// One `json` entry: the name and the value it sets (already cast by json_types; nil: no value).
    struct JSONEntry {
        let name: String
        let value: JSON?
        let newName: String?
    }
    let jsonRemove: [JSONEntry], jsonRename: [JSONEntry], jsonReplace: [JSONEntry], jsonAdd: [JSONEntry], jsonAppend: [JSONEntry]
    var transformsJSON: Bool {
        !(jsonRemove.isEmpty && jsonRename.isEmpty && jsonReplace.isEmpty && jsonAdd.isEmpty && jsonAppend.isEmpty)
    }

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: ResponseTransformer.name)
        func entries(_ section: String) throws(PluginError) -> [Entry] {
            guard let sec = c.object(section) else { return [] }
            var out: [Entry] = []
            for raw in try sec.strings("headers") ?? [] {
                // Kong's "^([^:]+):*(.-)$"
                let b = Array(raw.utf8)
                let colon = b.firstIndex(of: 0x3A) ?? b.count
                guard colon > 0 else { throw PluginError("response-transformer: invalid entry '\(raw)' in config.\(section).headers") }
                var v = colon
                while v < b.count, b[v] == 0x3A { v += 1 }
                let name = String(decoding: b[..<colon], as: UTF8.self)
                let value = v < b.count ? Array(b[v...]) : nil
                out.append(Entry(name: name, nameBytes: Array(name.utf8), value: value,
                                 valueString: value.map { String(decoding: $0, as: UTF8.self) }))
            }
            return out
        }
        remove = try entries("remove")
        rename = try entries("rename")
        replace = try entries("replace")
        add = try entries("add")
        append = try entries("append")
        func jsonEntries(_ section: String) throws(PluginError) -> [JSONEntry] {
            guard let sec = c.object(section) else { return [] }
            let types = try sec.strings("json_types") ?? []
            var out: [JSONEntry] = []
            for (i, raw) in (try sec.strings("json") ?? []).enumerated() {
                let b = Array(raw.utf8)
                let colon = b.firstIndex(of: 0x3A) ?? b.count
                guard colon > 0 else { throw PluginError("response-transformer: invalid entry '\(raw)' in config.\(section).json") }
                var v = colon
                while v < b.count, b[v] == 0x3A { v += 1 }
                let name = String(decoding: b[..<colon], as: UTF8.self)
                let text: String? = v < b.count ? String(decoding: b[v...], as: UTF8.self) : nil
                var value: JSON? = text.map { .string($0) }
                if let t = text, i < types.count {
                    switch types[i] {
                    case "number":
                        // Lua's tonumber: not a number → nil (the entry then does nothing)
                        if let n = Int64(t) { value = .int(n) } else if let d = Double(t) { value = .double(d) } else { value = nil }
                    case "boolean": value = .bool(t == "true")
                    default: break
                    }
                }
                out.append(JSONEntry(name: name, value: value, newName: text))
            }
            return out
        }
        jsonRemove = try jsonEntries("remove")
        jsonRename = try jsonEntries("rename")
        jsonReplace = try jsonEntries("replace")
        jsonAdd = try jsonEntries("add")
        jsonAppend = try jsonEntries("append")
        super.init(entity: entity, priority: ResponseTransformer.priority)
    }

    override var phases: PluginPhases { .headerFilter }

    private func present(_ ctx: PluginContext, _ headers: borrowing HTTPHeaders, _ e: Entry) -> Bool {
        ctx.responseHeaders.forEachValue(of: e.nameBytes, original: headers) { _ in false } > 0
    }

    override func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int, headers: borrowing HTTPHeaders) {
        if transformsJSON && isJSON(ctx, headers) { ctx.holdResponseBody = true }
        for e in remove { ctx.responseHeaders.remove(e.name) }
        for e in rename {
            guard let newName = e.valueString, present(ctx, headers, e) else { continue }
            // every value of the old name (LF-separated: header values hold none)
            ctx.scratch.removeAll(keepingCapacity: true)
            ctx.responseHeaders.forEachValue(of: e.nameBytes, original: headers) { v in
                ctx.scratch.append(contentsOf: v); ctx.scratch.append(0x0A); return true
            }
            var start = 0, first = true
            for i in ctx.scratch.indices where ctx.scratch[i] == 0x0A {
                if first { ctx.responseHeaders.set(newName, bytes: ctx.scratch[start ..< i]) } else {
                    ctx.responseHeaders.add(newName, bytes: ctx.scratch[start ..< i])
                }
                first = false; start = i + 1
            }
            ctx.responseHeaders.remove(e.name)
        }
        for e in replace {
            guard let v = e.value, present(ctx, headers, e) else { continue }
            ctx.responseHeaders.set(e.name, bytes: v)
        }
        for e in add {
            guard let v = e.value, !present(ctx, headers, e) else { continue }
            ctx.responseHeaders.set(e.name, bytes: v)
        }
        for e in append {
            guard let v = e.value else { continue }
            ctx.responseHeaders.add(e.name, bytes: v)
        }
    }

    /// Kong's is_json_body: the (edited) Content-Type contains "application/json", case-insensitively.
    private func isJSON(_ ctx: PluginContext, _ headers: borrowing HTTPHeaders) -> Bool {
        var json = false
        ctx.responseHeaders.forEachValue(of: ResponseTransformer.contentType, original: headers) { v in
            json = String(decoding: v, as: UTF8.self).lowercased().contains("application/json")
            return false
        }
        return json
    }
    static let contentType: [UInt8] = Array("content-type".utf8)

    private static func truthy(_ v: JSON?) -> Bool {
        guard let v else { return false }
        if case .bool(false) = v { return false }
        return true
    }

    override func transformResponseBody(_ ctx: PluginContext, _ body: [UInt8]) -> [UInt8]? {
        guard transformsJSON, let parsed = try? JSON.parse(body), case .object(var o) = parsed else {
            ctx.warn("[response-transformer] body transform failed: failed parsing json body")
            return nil
        }
        for e in jsonRemove { _ = o.removeValue(forKey: e.name) }
        for e in jsonRename {
            guard let new = e.newName, let v = o[e.name] else { continue }
            _ = o.removeValue(forKey: e.name)
            o[new] = v
        }
        for e in jsonReplace where ResponseTransformer.truthy(o[e.name]) {
            if let v = e.value { o[e.name] = v }
        }
        for e in jsonAdd where !ResponseTransformer.truthy(o[e.name]) {
            if let v = e.value { o[e.name] = v }
        }
        for e in jsonAppend {
            guard let v = e.value else { continue }
            switch o[e.name] {
            case .string(let s)?: o[e.name] = .array([.string(s), v])
            case .array(var a)?: a.append(v); o[e.name] = .array(a)
            default: o[e.name] = .array([v])
            }
        }
        return JSON.object(o).serialized()
    }
}
