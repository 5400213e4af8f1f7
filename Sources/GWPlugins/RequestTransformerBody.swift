// request-transformer's body side (Kong 3.10 `kong/plugins/request-transformer/access.lua`:
// transform_method, transform_body): the `body` lists applied to a form, JSON or multipart body, in
// Kong's order remove → rename → replace → add → append (multipart: rename → remove → replace → add,
// no append), and http_method GET/HEAD/TRACE copying a form body's arguments into the query string.
// remove, rename and replace act only on a non-empty body; add and append also build a body from
// nothing when the request has a Content-Type Kong decodes. A body that does not parse is left as
// it is. Deviation: a body too large to be read in memory (client_body_buffer_size) is left untouched
// and logged, where Kong would replace it with the added fields alone.
import GWHTTP
import GWJSON

extension RequestTransformer {
    private func bodyKind(_ request: borrowing HTTPRequestHead) -> BodyKind {
        BodyKind.of(contentType: request.headers.firstIndex(of: "content-type").map { request.headers.valueBytes(at: $0) })
    }

    private func value(_ ctx: PluginContext, _ e: Entry) -> String {
        e.slot >= 0 ? String(decoding: rendered(ctx, e.slot), as: UTF8.self) : ""
    }

    /// transform_method for GET/HEAD/TRACE: the form body's arguments join the query string (the body
    /// itself is still sent). True when the query was changed.
    func bodyArgsToQuery(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> Bool {
        guard ctx.requestBodyState == .available, bodyKind(request) == .form else { return false }
        let pairs = ctx.withCurrentBody { FormBody.decode($0) }
        guard !pairs.isEmpty else { return false }
        var q: [UInt8] = withBaseQuery(ctx, request) { $0.map { Array($0) } } ?? []
        for p in pairs {
            if !q.isEmpty { q.append(0x26) }
            FormBody.escape(p.name, into: &q)
            q.append(0x3D)
            FormBody.escape(p.value, into: &q)
        }
        ctx.upstreamQuery = q
        ctx.replacesQuery = true
        return true
    }

    func transformBody(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) {
        let kind = bodyKind(request)
        if kind == .other { return }
        if ctx.requestBodyState == .tooLarge {
            ctx.warn("[request-transformer] request body did not fit into client body buffer, consider raising 'client_body_buffer_size': body left untransformed")
            return
        }
        let out: [UInt8]? = ctx.withCurrentBody { raw in
            switch kind {
            case .json: return transformJSON(ctx, raw)
            case .form: return transformForm(ctx, raw)
            case .multipart(let b): return transformMultipart(ctx, raw, boundary: b)
            case .other: return nil
            }
        }
        if let out { ctx.replaceBody(out) }
    }

    /// Lua truthiness of a decoded JSON member (absent and false are false).
    private static func truthy(_ v: JSON?) -> Bool {
        guard let v else { return false }
        if case .bool(false) = v { return false }
        return true
    }

    private func transformJSON(_ ctx: PluginContext, _ raw: UnsafeRawBufferPointer) -> [UInt8]? {
        let nonEmpty = raw.count > 0
        var o = JSONObject()
        if nonEmpty {
            guard let j = try? JSON.parse(raw), case .object(let parsed) = j else { return nil }
            o = parsed
        }
        var changed = false
        if nonEmpty {
            for e in body.remove { _ = o.removeValue(forKey: e.name); changed = true }
            for e in body.rename where e.slot >= 0 {
                let new = value(ctx, e)
                guard new != e.name, RequestTransformer.truthy(o[e.name]), let v = o.removeValue(forKey: e.name) else { continue }
                o[new] = v
                changed = true
            }
            for e in body.replace where e.slot >= 0 && RequestTransformer.truthy(o[e.name]) {
                o[e.name] = .string(value(ctx, e)); changed = true
            }
        }
        for e in body.add where e.slot >= 0 && !RequestTransformer.truthy(o[e.name]) {
            o[e.name] = .string(value(ctx, e)); changed = true
        }
        for e in body.append where e.slot >= 0 {
            let v = JSON.string(value(ctx, e))
            switch o[e.name] {
            case .string(let s)?: o[e.name] = .array([.string(s), v])
            case .array(var a)?: a.append(v); o[e.name] = .array(a)
            default: o[e.name] = .array([v])
            }
            changed = true
        }
        return changed ? JSON.object(o).serialized() : nil
    }

    private func transformForm(_ ctx: PluginContext, _ raw: UnsafeRawBufferPointer) -> [UInt8]? {
        // Lua table semantics over the decoded arguments: one entry per name, its values in order.
        var names: [String] = [], values: [String: [String]] = [:]
        for p in FormBody.decode(raw) {
            if values[p.name] == nil { names.append(p.name) }
            values[p.name, default: []].append(p.value)
        }
        func set(_ n: String, _ v: [String]?) {
            if let v {
                if values[n] == nil { names.append(n) }
                values[n] = v
            } else if values.removeValue(forKey: n) != nil {
                names.removeAll { $0 == n }
            }
        }
        var changed = false
        let nonEmpty = raw.count > 0
        if nonEmpty {
            for e in body.remove { set(e.name, nil); changed = true }
            for e in body.rename where e.slot >= 0 {
                let new = value(ctx, e)
                guard new != e.name, let v = values[e.name] else { continue }
                set(e.name, nil); set(new, v); changed = true
            }
            for e in body.replace where e.slot >= 0 && values[e.name] != nil { set(e.name, [value(ctx, e)]); changed = true }
        }
        for e in body.add where e.slot >= 0 && values[e.name] == nil { set(e.name, [value(ctx, e)]); changed = true }
        for e in body.append where e.slot >= 0 {
            set(e.name, (values[e.name] ?? []) + [value(ctx, e)]); changed = true
        }
        guard changed else { return nil }
        var pairs: [(name: String, value: String)] = []
        for n in names { for v in values[n] ?? [] { pairs.append((n, v)) } }
        return FormBody.encode(pairs)
    }

    private func transformMultipart(_ ctx: PluginContext, _ raw: UnsafeRawBufferPointer, boundary: [UInt8]) -> [UInt8]? {
        guard var m = MultipartBody(raw, boundary: boundary) else { return nil }
        var changed = false
        if raw.count > 0 {
            for e in body.rename where e.slot >= 0 {
                let new = value(ctx, e)
                guard new != e.name, let p = m.get(e.name) else { continue }
                m.setSimple(new, p.value); m.delete(e.name); changed = true
            }
            for e in body.remove { m.delete(e.name); changed = true }
            for e in body.replace where e.slot >= 0 && m.get(e.name) != nil {
                m.delete(e.name); m.setSimple(e.name, value(ctx, e)); changed = true
            }
        }
        for e in body.add where e.slot >= 0 && m.get(e.name) == nil { m.setSimple(e.name, value(ctx, e)); changed = true }
        return changed ? m.serialized() : nil
    }
}
