// response-transformer (Kong 3.10 `kong/plugins/response-transformer/{handler,header_transformer,schema}.lua`,
// KONG-PLUGINS.md §3), priority 800: header_filter only, on proxied and generated responses alike.
// Order remove → rename → replace → add → append (Kong's transform_headers): remove clears the name;
// rename moves every value of an existing header to the new name; replace sets existing names only,
// add absent names only; append adds one more value. "Existing" means in the head being written: the
// upstream's headers with the edits earlier plugins made. An entry without value (`name:`) does nothing
// (Kong: nil value).
// Not yet: the `json` lists and `json_types` (body_filter would have to buffer and rewrite the JSON body,
// and Content-Length would be dropped for application/json): the Admin API refuses them, and compiling
// refuses them too.
import GWHTTP
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

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: ResponseTransformer.name)
        func entries(_ section: String) throws(PluginError) -> [Entry] {
            guard let sec = c.object(section) else { return [] }
            for f in ["json", "json_types"] {
                if let l = try sec.strings(f), !l.isEmpty {
                    throw PluginError("response-transformer: config.\(section).\(f) is not supported (response bodies are not buffered)")
                }
            }
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
        super.init(entity: entity, priority: ResponseTransformer.priority)
    }

    override var phases: PluginPhases { .headerFilter }

    private func present(_ ctx: PluginContext, _ headers: borrowing HTTPHeaders, _ e: Entry) -> Bool {
        ctx.responseHeaders.forEachValue(of: e.nameBytes, original: headers) { _ in false } > 0
    }

    override func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int, headers: borrowing HTTPHeaders) {
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
}
