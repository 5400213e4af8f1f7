// request-transformer (Kong 3.10 `kong/plugins/request-transformer/{access,schema}.lua`, KONG-PLUGINS.md §3),
// priority 801. Order: replace.uri → http_method → headers → querystring; within each list
// remove → rename → replace → add → append. Entries are `name:value` (Kong's `^([^:]+):*(.-)$`: the
// value starts after the first run of colons). Headers: Host never counts as present (Kong drops it from
// the table first): it can be replaced but not added, renamed or removed; replace touches existing names
// only, add absent names only, append adds one more value. Querystring (only when a querystring list is
// set): Kong's table semantics over the decoded arguments (rename of an absent name clears the new one;
// append to a bare `?a` replaces it), re-encoded as `kong.service.request.set_query` does: one segment per
// name (`k=v&k=v2`, bare `k`), segments sorted, values escaped like ngx.encode_args.
// Values are `$(…)` templates (TransformTemplate.swift), all rendered before any change, so they see the
// request as it reached the plugin (Kong's "removed/replaced header can be used as template" specs).
// Bodies (RequestTransformerBody.swift): `body` lists transform a form, JSON or multipart body read
// before access; http_method GET/HEAD/TRACE copies a form body's arguments into the query string.
import GWHTTP
import GWStore

/// One decoded query argument of the querystring being rebuilt (ranges into `ctx.scratch3`).
struct XformArg {
    var name: Range<Int>
    /// nil: a bare argument (Lua's `true`).
    var value: Range<Int>?
    var live = true
}

final class RequestTransformer: PluginHandler {
    static let name = "request-transformer"
    static let priority = 801

    enum Segment {
        case literal([UInt8])
        case header([UInt8], fallback: [UInt8]?)
        case query([UInt8], fallback: [UInt8]?)
        case capture(String, fallback: [UInt8]?)
        case unsupported(String)
    }

    struct Entry {
        let name: String
        let nameBytes: [UInt8]
        let isHost: Bool
        /// The value's template, nil for an entry without value; `slot` indexes the rendered values.
        let value: [Segment]?
        let slot: Int
        /// A header rename's new name, lower-cased (Kong), when it is literal.
        let literalLower: String?
    }

    struct Lists {
        var remove: [Entry] = [], rename: [Entry] = [], replace: [Entry] = [], add: [Entry] = [], append: [Entry] = []
        var isEmpty: Bool { remove.isEmpty && rename.isEmpty && replace.isEmpty && add.isEmpty && append.isEmpty }
    }

    let headers: Lists
    let query: Lists
    let body: Lists
    /// http_method GET/HEAD/TRACE: a form body's arguments are added to the query string.
    let methodTakesBodyArgs: Bool
    let uri: [Segment]?
    let uriSlot: Int
    let method: String?
    let slots: Int

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: RequestTransformer.name)
        var slots = 0
        func compile(_ text: String) -> [Segment] {
            TransformTemplate(text).parts.map { p -> Segment in
                switch p {
                case .literal(let b): return .literal(b)
                case .field(.headers, let k, let fb): return .header(k, fallback: fb)
                case .field(.queryParams, let k, let fb): return .query(k, fallback: fb)
                case .field(.uriCaptures, let k, let fb): return .capture(String(decoding: k, as: UTF8.self), fallback: fb)
                case .unsupported(let e): return .unsupported(e)
                }
            }
        }
        var uri: [Segment]? = nil
        var uriSlot = -1
        if let u = try c.object("replace")?.string("uri"), !u.isEmpty { uri = compile(u); uriSlot = slots; slots += 1 }
        func entries(_ section: String, _ field: String, lowerNew: Bool = false) throws(PluginError) -> [Entry] {
            guard let list = try c.object(section)?.strings(field) else { return [] }
            var out: [Entry] = []
            for raw in list {
                let b = Array(raw.utf8)
                guard let colon = b.firstIndex(of: 0x3A) ?? Optional(b.count), colon > 0 else {
                    throw PluginError("request-transformer: invalid entry '\(raw)' in config.\(section).\(field)")
                }
                var v = colon
                while v < b.count, b[v] == 0x3A { v += 1 }
                let name = String(decoding: b[..<colon], as: UTF8.self)
                let valueText = String(decoding: b[v...], as: UTF8.self)
                let value = valueText.isEmpty ? nil : compile(valueText)
                var lower: String? = nil
                if lowerNew, let value, value.count == 1, case .literal(let l) = value[0] {
                    lower = String(decoding: l.map { ($0 &- 0x41) < 26 ? $0 | 0x20 : $0 }, as: UTF8.self)
                }
                out.append(Entry(name: name, nameBytes: Array(name.utf8), isHost: name.lowercased() == "host",
                                 value: value, slot: value == nil ? -1 : slots, literalLower: lower))
                if value != nil { slots += 1 }
            }
            return out
        }
        headers = Lists(remove: try entries("remove", "headers"), rename: try entries("rename", "headers", lowerNew: true),
                        replace: try entries("replace", "headers"), add: try entries("add", "headers"),
                        append: try entries("append", "headers"))
        query = Lists(remove: try entries("remove", "querystring"), rename: try entries("rename", "querystring"),
                      replace: try entries("replace", "querystring"), add: try entries("add", "querystring"),
                      append: try entries("append", "querystring"))
        body = Lists(remove: try entries("remove", "body"), rename: try entries("rename", "body"),
                     replace: try entries("replace", "body"), add: try entries("add", "body"),
                     append: try entries("append", "body"))
        let m = try c.string("http_method")?.uppercased()
        method = m
        methodTakesBodyArgs = m == "GET" || m == "HEAD" || m == "TRACE"
        self.uri = uri
        self.uriSlot = uriSlot
        self.slots = slots
        super.init(entity: entity, priority: RequestTransformer.priority)
    }

    override var phases: PluginPhases { .access }
    override var needsRequestBody: Bool { !body.isEmpty || methodTakesBodyArgs }

    // MARK: rendering

    /// The rendered value of `slot` (valid until the next request).
    @inline(__always) func rendered(_ ctx: PluginContext, _ slot: Int) -> ArraySlice<UInt8> {
        ctx.xformValues[(slot == 0 ? 0 : ctx.xformEnds[slot - 1]) ..< ctx.xformEnds[slot]]
    }

    /// Calls `body` with the base query in place: the one a previous plugin set, else the client's (nil:
    /// none). `body` must not change `ctx.upstreamQuery`.
    func withBaseQuery<R>(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead,
                          _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        if ctx.replacesQuery {
            if ctx.upstreamQuery.isEmpty { return body(nil) }
            return ctx.upstreamQuery.withUnsafeBufferPointer { body($0) }
        }
        guard let q = request.queryBytes else { return body(nil) }
        return q.withUnsafeBufferPointer { body($0) }
    }

    private func render(_ segs: [Segment], _ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        for s in segs {
            switch s {
            case .literal(let b): ctx.xformValues.append(contentsOf: b)
            case .header(let k, let fb):
                let n = ctx.upstreamHeaders.forEachValue(of: k, original: request.headers) { v in
                    ctx.xformValues.append(contentsOf: v); return false
                }
                if n == 0, let fb { ctx.xformValues.append(contentsOf: fb) }
            case .query(let k, let fb):
                var found = false
                withBaseQuery(ctx, request) { q in
                    guard let q else { return }
                    forEachQueryArg(q) { n, v in
                        guard !found, queryNameEquals(q[n], k, scratch: &ctx.scratch) else { return }
                        found = true
                        if let v { appendDecoded(q[v], to: &ctx.xformValues) } else { ctx.xformValues.append(contentsOf: "true".utf8) }
                    }
                }
                if !found, let fb { ctx.xformValues.append(contentsOf: fb) }
            case .capture(let k, let fb):
                if let v = ctx.uriCaptures[k] { ctx.xformValues.append(contentsOf: v.utf8) } else if let fb { ctx.xformValues.append(contentsOf: fb) }
            case .unsupported(let e):
                throw PluginError("[request-transformer] failed to render the template $(\(e)): unsupported expression")
            }
        }
        ctx.xformEnds.append(ctx.xformValues.count)
    }

    private func renderAll(_ lists: Lists, _ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        for e in lists.remove { if let v = e.value { try render(v, ctx, request) } }
        for e in lists.rename { if let v = e.value { try render(v, ctx, request) } }
        for e in lists.replace { if let v = e.value { try render(v, ctx, request) } }
        for e in lists.add { if let v = e.value { try render(v, ctx, request) } }
        for e in lists.append { if let v = e.value { try render(v, ctx, request) } }
    }

    // MARK: access

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if slots > 0 {
            ctx.xformValues.removeAll(keepingCapacity: true)
            ctx.xformEnds.removeAll(keepingCapacity: true)
            if let uri { try render(uri, ctx, request) }
            try renderAll(headers, ctx, request)
            try renderAll(query, ctx, request)
            try renderAll(body, ctx, request)
        }
        if uriSlot >= 0 {
            let path = rendered(ctx, uriSlot)
            guard path.first == 0x2F else { throw PluginError("[request-transformer] path must start with /") }
            ctx.upstreamPath.removeAll(keepingCapacity: true)
            RequestTransformer.escapePath(path, into: &ctx.upstreamPath)
            ctx.replacesPath = true
        }
        if let method { ctx.upstreamMethod = method }
        let merged = methodTakesBodyArgs && bodyArgsToQuery(ctx, request)
        if !headers.isEmpty { transformHeaders(ctx, request) }
        if !body.isEmpty { transformBody(ctx, request) }
        if !query.isEmpty || merged { transformQuery(ctx, request) }
    }

    /// Kong's `kong.tools.uri.escape`: percent-encodes every byte outside `!#$&'()*+,/:;=?@[]A-Za-z0-9-_.~%`.
    static func escapePath(_ p: ArraySlice<UInt8>, into out: inout [UInt8]) {
        let hex: StaticString = "0123456789ABCDEF"
        for c in p {
            let keep: Bool
            switch c {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: keep = true
            case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x3A, 0x3B, 0x3D, 0x3F,
                 0x40, 0x5B, 0x5D, 0x5F, 0x7E: keep = true
            default: keep = false
            }
            if keep { out.append(c) } else {
                out.append(0x25); out.append(hex.utf8Start[Int(c >> 4)]); out.append(hex.utf8Start[Int(c & 15)])
            }
        }
    }

    private func headerPresent(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, _ e: Entry) -> Bool {
        if e.isHost { return false }
        return ctx.upstreamHeaders.forEachValue(of: e.nameBytes, original: request.headers) { _ in false } > 0
    }

    private func transformHeaders(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) {
        for e in headers.remove where headerPresent(ctx, request, e) { ctx.upstreamHeaders.remove(e.name) }
        for e in headers.rename where e.slot >= 0 && headerPresent(ctx, request, e) {
            // every value of the old name goes to the new one (LF-separated: header values hold none)
            ctx.scratch.removeAll(keepingCapacity: true)
            ctx.upstreamHeaders.forEachValue(of: e.nameBytes, original: request.headers) { v in
                ctx.scratch.append(contentsOf: v); ctx.scratch.append(0x0A); return true
            }
            let newName = e.literalLower ?? String(decoding: rendered(ctx, e.slot), as: UTF8.self).lowercased()
            var start = 0, first = true
            for i in ctx.scratch.indices where ctx.scratch[i] == 0x0A {
                if first { ctx.upstreamHeaders.set(newName, bytes: ctx.scratch[start ..< i]) } else {
                    ctx.upstreamHeaders.add(newName, bytes: ctx.scratch[start ..< i])
                }
                first = false; start = i + 1
            }
            ctx.upstreamHeaders.remove(e.name)
        }
        for e in headers.replace where e.slot >= 0 && (e.isHost || headerPresent(ctx, request, e)) {
            ctx.upstreamHeaders.set(e.name, bytes: rendered(ctx, e.slot))
        }
        for e in headers.add where e.slot >= 0 && !e.isHost && !headerPresent(ctx, request, e) {
            ctx.upstreamHeaders.set(e.name, bytes: rendered(ctx, e.slot))
        }
        for e in headers.append where e.slot >= 0 && !e.isHost {
            ctx.upstreamHeaders.add(e.name, bytes: rendered(ctx, e.slot))
        }
    }
}

// MARK: querystring

extension RequestTransformer {
    private func argName(_ ctx: PluginContext, _ a: XformArg) -> ArraySlice<UInt8> { ctx.scratch3[a.name] }

    /// True when a live argument is named `name`.
    private func argPresent(_ ctx: PluginContext, _ name: [UInt8]) -> Bool {
        for a in ctx.xformArgs where a.live && ctx.scratch3[a.name].elementsEqual(name) { return true }
        return false
    }

    private func removeArgs<C: Collection>(_ ctx: PluginContext, _ name: C) where C.Element == UInt8 {
        for i in ctx.xformArgs.indices where ctx.xformArgs[i].live && ctx.scratch3[ctx.xformArgs[i].name].elementsEqual(name) {
            ctx.xformArgs[i].live = false
        }
    }

    private func pushArg<C: Collection>(_ ctx: PluginContext, name: C, value: ArraySlice<UInt8>) where C.Element == UInt8 {
        let ns = ctx.scratch3.count
        ctx.scratch3.append(contentsOf: name)
        let vs = ctx.scratch3.count
        ctx.scratch3.append(contentsOf: value)
        ctx.xformArgs.append(XformArg(name: ns ..< vs, value: vs ..< ctx.scratch3.count))
    }

    fileprivate func transformQuery(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) {
        // Decode the base query (ngx.decode_args) into ctx.scratch3 / ctx.xformArgs.
        ctx.scratch3.removeAll(keepingCapacity: true)
        ctx.xformArgs.removeAll(keepingCapacity: true)
        withBaseQuery(ctx, request) { q in
            guard let q else { return }
            forEachQueryArg(q) { n, v in
                let ns = ctx.scratch3.count
                appendDecoded(q[n], to: &ctx.scratch3)
                let vs = ctx.scratch3.count
                if let v { appendDecoded(q[v], to: &ctx.scratch3) }
                ctx.xformArgs.append(XformArg(name: ns ..< vs, value: v == nil ? nil : vs ..< ctx.scratch3.count))
            }
        }
        for e in query.remove { removeArgs(ctx, e.nameBytes) }
        for e in query.rename where e.slot >= 0 {
            // querystring[new] = querystring[old]; querystring[old] = nil
            let newName = rendered(ctx, e.slot)
            removeArgs(ctx, newName)
            let ns = ctx.scratch3.count
            ctx.scratch3.append(contentsOf: newName)
            let renamed = ns ..< ctx.scratch3.count
            for i in ctx.xformArgs.indices where ctx.xformArgs[i].live && argName(ctx, ctx.xformArgs[i]).elementsEqual(e.nameBytes) {
                ctx.xformArgs[i].name = renamed
            }
            if newName.elementsEqual(e.nameBytes) { removeArgs(ctx, e.nameBytes) }
        }
        for e in query.replace where e.slot >= 0 && argPresent(ctx, e.nameBytes) {
            removeArgs(ctx, e.nameBytes)
            pushArg(ctx, name: e.nameBytes, value: rendered(ctx, e.slot))
        }
        for e in query.add where e.slot >= 0 && !argPresent(ctx, e.nameBytes) {
            pushArg(ctx, name: e.nameBytes, value: rendered(ctx, e.slot))
        }
        for e in query.append where e.slot >= 0 {
            // append_value: a bare argument (true) is replaced, a string or list gets one more value
            var onlyBare = false
            for a in ctx.xformArgs where a.live && argName(ctx, a).elementsEqual(e.nameBytes) {
                if a.value != nil { onlyBare = false; break }
                onlyBare = true
            }
            if onlyBare { removeArgs(ctx, e.nameBytes) }
            pushArg(ctx, name: e.nameBytes, value: rendered(ctx, e.slot))
        }
        encodeQuery(ctx)
    }

    /// Kong's make_ordered_args: one `k=v&k=v2` segment per name (bare: `k`), sorted, joined with '&'.
    private func encodeQuery(_ ctx: PluginContext) {
        ctx.scratch2.removeAll(keepingCapacity: true)
        ctx.xformKeys.removeAll(keepingCapacity: true)
        for i in ctx.xformArgs.indices where ctx.xformArgs[i].live {
            let start = ctx.scratch2.count
            let name = ctx.xformArgs[i].name
            for j in i ..< ctx.xformArgs.count where ctx.xformArgs[j].live && ctx.scratch3[ctx.xformArgs[j].name].elementsEqual(ctx.scratch3[name]) {
                if ctx.scratch2.count > start { ctx.scratch2.append(0x26) }
                RequestTransformer.encodeArg(ctx.scratch3[name], into: &ctx.scratch2)
                if let v = ctx.xformArgs[j].value {
                    ctx.scratch2.append(0x3D)
                    RequestTransformer.encodeArg(ctx.scratch3[v], into: &ctx.scratch2)
                }
                ctx.xformArgs[j].live = false
            }
            // insertion sort: argument lists are short
            let seg = start ..< ctx.scratch2.count
            var k = ctx.xformKeys.count
            ctx.xformKeys.append(seg)
            while k > 0 && ctx.scratch2[seg].lexicographicallyPrecedes(ctx.scratch2[ctx.xformKeys[k - 1]]) {
                ctx.xformKeys[k] = ctx.xformKeys[k - 1]; k -= 1
            }
            ctx.xformKeys[k] = seg
        }
        ctx.upstreamQuery.removeAll(keepingCapacity: true)
        for (n, r) in ctx.xformKeys.enumerated() {
            if n > 0 { ctx.upstreamQuery.append(0x26) }
            ctx.upstreamQuery.append(contentsOf: ctx.scratch2[r])
        }
        ctx.replacesQuery = true
    }

    /// ngx.encode_args' escaping (ngx.escape_uri): everything but ALPHA / DIGIT / "-" / "." / "_" / "~".
    static func encodeArg(_ s: ArraySlice<UInt8>, into out: inout [UInt8]) {
        let hex: StaticString = "0123456789ABCDEF"
        for c in s {
            switch c {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: out.append(c)
            default: out.append(0x25); out.append(hex.utf8Start[Int(c >> 4)]); out.append(hex.utf8Start[Int(c & 15)])
            }
        }
    }
}
