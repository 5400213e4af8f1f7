// key-auth (Kong 3.10 `kong/plugins/key-auth/handler.lua`, KONG-PLUGINS.md §2), priority 1250.
// The key is looked up per name in `key_names` order: header (case-insensitive, '_' ≡ '-'), then the
// query string; the first name with a value wins. A repeated header or argument is refused
// ("Duplicate API key found"). Credentials come from the worker's own per-generation index.
// `key_in_body`: the form, JSON or multipart body (RequestBody.swift) is searched after the header
// and the query for each name; the plan then makes the data path read the body before access.
import GWHTTP
import GWJSON
import GWStore

final class KeyAuth: PluginHandler {
    static let name = "key-auth"
    static let priority = 1250

    let keyNames: [[UInt8]]
    let keyNameStrings: [String]
    let hideCredentials: Bool
    let anonymous: String?
    let inHeader: Bool
    let inQuery: Bool
    let inBody: Bool
    let runOnPreflight: Bool
    let wwwAuthenticate: String
    let credentials: Credentials

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: KeyAuth.name)
        keyNameStrings = try c.strings("key_names") ?? ["apikey"]
        keyNames = keyNameStrings.map { Array($0.utf8) }
        hideCredentials = try c.bool("hide_credentials", false)
        anonymous = try c.string("anonymous")
        inHeader = try c.bool("key_in_header", true)
        inQuery = try c.bool("key_in_query", true)
        inBody = try c.bool("key_in_body", false)
        runOnPreflight = try c.bool("run_on_preflight", true)
        wwwAuthenticate = (try c.string("realm")).map { "Key realm=\"\($0)\"" } ?? "Key"
        credentials = env.credentials
        super.init(entity: entity, priority: KeyAuth.priority)
    }

    override var phases: PluginPhases { .access }
    override var needsRequestBody: Bool { inBody }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if !runOnPreflight && request.method == .options { return }
        if anonymous != nil && ctx.credential != nil { return }   // logical OR: already authenticated
        switch authenticate(ctx, request) {
        case nil: return
        case let (status, message)?:
            if let anon = anonymous { ctx.authenticateAnonymous(anon, credentials); return }
            ctx.responseHeaders.set("WWW-Authenticate", wwwAuthenticate)
            ctx.error(status, message)
        }
    }

    /// nil on success, else Kong's status and message. A key from the query is decoded into
    /// `ctx.scratch`; a key from a header is looked up where the request holds it (`keyHeader`): copying
    /// it out first cost ~100 instructions per request (callgrind.py --plugins key-auth,rate-limiting).
    private func authenticate(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> (Int, String)? {
        var foundName = -1
        var keyHeader = -1
        for (n, name) in keyNames.enumerated() {
            if inHeader {
                let i = findHeader(request.headers, name)
                if i == -2 { return (401, "Duplicate API key found") }
                if i >= 0 && request.headers.fields[i].valueLength > 0 { foundName = n; keyHeader = i }
            }
            if foundName < 0 && inQuery {
                switch lookupQueryArg(request.queryBytes, name, into: &ctx.scratch, scratch: &ctx.scratch2) {
                case .many: return (401, "Duplicate API key found")
                case .one where !ctx.scratch.isEmpty: foundName = n
                default: break
                }
            }
            if foundName < 0 && inBody {
                switch bodyValue(ctx, request, keyNameStrings[n]) {
                case .string(let v)?:
                    ctx.scratch.removeAll(keepingCapacity: true)
                    ctx.scratch.append(contentsOf: v.utf8)
                    foundName = n
                case .strings?: return (401, "Duplicate API key found")
                default: break
                }
            }
            if foundName >= 0 { break }
        }
        if hideCredentials && inBody && foundName >= 0 { removeFromBody(ctx, request, keyNameStrings[foundName]) }
        if hideCredentials {
            // Kong clears the key's name from the upstream headers and query, wherever it was found
            // (every name when none carried a key).
            for (n, name) in keyNames.enumerated() where n == foundName || foundName < 0 {
                ctx.upstreamHeaders.remove(keyNameStrings[n])
                if let q = request.queryBytes {
                    let removed = ctx.replacesQuery
                        ? queryRemoving(ctx.upstreamQuery[...], name, into: &ctx.scratch2, scratch: &ctx.scratch3)
                        : queryRemoving(q, name, into: &ctx.scratch2, scratch: &ctx.scratch3)
                    if removed {
                        swap(&ctx.upstreamQuery, &ctx.scratch2)
                        ctx.replacesQuery = true
                    }
                }
            }
        }
        guard foundName >= 0 else { return (401, "No API key found in request") }
        let found: CredentialRecord?
        if keyHeader >= 0 {
            let f = request.headers.fields[keyHeader]
            found = request.headers.storage.withUnsafeBytes {
                credentials.keys.lookup(UnsafeRawBufferPointer(rebasing: $0[Int(f.valueStart) ..< Int(f.valueStart + f.valueLength)]))
            }
        } else {
            found = credentials.keys.lookup(ctx.scratch)
        }
        guard let cred = found, !cred.isExpired(now: ctx.now) else { return (401, "Unauthorized") }
        ctx.authenticate(cred.consumer, credential: cred)
        return nil
    }

    /// Kong's `kong.request.get_body()[name]`: nothing when the body is not available or not a form,
    /// JSON or multipart body.
    private func bodyValue(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, _ name: String) -> BodyValue? {
        guard ctx.requestBodyState == .available else { return nil }
        let kind = BodyKind.of(contentType: request.headers.firstIndex(of: "content-type").map { request.headers.valueBytes(at: $0) })
        return ctx.withCurrentBody { DecodedBody.value(name, body: $0, kind: kind) }
    }

    /// hide_credentials with key_in_body: the key's field leaves the body sent upstream (re-encoded in
    /// the body's own format, Kong's `kong.service.request.set_body`).
    private func removeFromBody(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, _ name: String) {
        guard ctx.requestBodyState == .available else { return }
        let kind = BodyKind.of(contentType: request.headers.firstIndex(of: "content-type").map { request.headers.valueBytes(at: $0) })
        let rebuilt: [UInt8]? = ctx.withCurrentBody { body in
            switch kind {
            case .form:
                let pairs = FormBody.decode(body)
                return pairs.contains { $0.name == name } ? FormBody.encode(pairs.filter { $0.name != name }) : nil
            case .json:
                guard let j = try? JSON.parse(body), case .object(var o) = j, o.removeValue(forKey: name) != nil else { return nil }
                return JSON.object(o).serialized()
            case .multipart(let b):
                guard var m = MultipartBody(body, boundary: b), m.get(name) != nil else { return nil }
                m.delete(name)
                return m.serialized()
            case .other:
                return nil
            }
        }
        if let r = rebuilt { ctx.replaceBody(r) }
    }
}
