// request-termination (Kong 3.10 `kong/plugins/request-termination/handler.lua`, KONG-PLUGINS.md §3),
// priority 2. access answers every request (or, with `trigger`, those carrying that header or query
// argument) with `status_code` and:
//   - `body` (+ `content_type`, none when unset) as given;
//   - otherwise `{"message":<message or Kong's default for the status>}` as application/json (no body
//     when the status has no default message, e.g. 204);
//   - with `echo`, a JSON copy of the request (Kong's shape: message, kong{node_id… worker_pid,
//     hostname}, request{scheme, host, port, headers, query, body, raw_body, method, path,
//     uri_captures{named, unnamed}}, matched_route, matched_service).
// The non-echo answers are encoded once per configuration: no allocation per request. echo (a
// debugging aid) builds its JSON per request and has the body read before access (needsRequestBody):
// `raw_body` is absent for a body larger than client_body_buffer_size (Kong: get_raw_body fails),
// `body` is the JSON, form-urlencoded or multipart body decoded; `kong.node_id` is absent (workers do
// not know the node id) and the route and service show the fields the worker holds.
import Glibc
import GWHTTP
import GWJSON
import GWStore

final class RequestTermination: PluginHandler {
    static let name = "request-termination"
    static let priority = 2

    static func defaultMessage(_ status: Int) -> String? {
        switch status {
        case 401: "Unauthorized"
        case 404: "Not found"
        case 405: "Method not allowed"
        case 500: "An unexpected error occurred"
        case 502: "Bad Gateway"
        case 503: "Service unavailable"
        default: nil
        }
    }

    let status: Int
    let message: String?
    /// The answer's body and type when not echoing.
    let body: [UInt8]
    /// The answer's Content-Type: `content_type` with a raw body, JSON for a message, none otherwise.
    let bodyType: String?
    let echo: Bool
    /// The trigger as a lower-case header name ('_' read as '-', as ngx.req.get_headers' lookup) and
    /// as a query argument name.
    let triggerHeader: [UInt8]?
    let triggerArg: [UInt8]?
    let routes: [String: Route]
    let services: [String: Service]

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: RequestTermination.name)
        status = try c.int("status_code", 503)
        guard status >= 100 && status <= 599 else { throw PluginError("request-termination: status_code \(status) out of range") }
        message = try c.string("message")
        let rawBody = try c.string("body")
        let contentType = try c.string("content_type")
        echo = try c.bool("echo", false)
        if let t = try c.string("trigger") {
            triggerArg = Array(t.utf8)
            triggerHeader = t.utf8.map { $0 == 0x5F ? 0x2D : ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) }
        } else {
            triggerArg = nil; triggerHeader = nil
        }
        if let rawBody {
            body = Array(rawBody.utf8); bodyType = contentType
        } else if let m = message ?? RequestTermination.defaultMessage(status) {
            body = JSON.object(["message": .string(m)]).serialized(); bodyType = RequestTermination.jsonType
        } else {
            body = []; bodyType = nil
        }
        if echo, let snap = env.snapshot {
            routes = Dictionary(snap.routes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            services = Dictionary(snap.services.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        } else {
            routes = [:]; services = [:]
        }
        super.init(entity: entity, priority: RequestTermination.priority)
    }

    override var phases: PluginPhases { .access }
    override var needsRequestBody: Bool { echo }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if triggerHeader != nil, !triggered(ctx, request) { return }
        if echo {
            ctx.exit(status, body: echoBody(ctx, request), contentType: RequestTermination.jsonType)
        } else {
            ctx.exit(status, body: body, contentType: bodyType)
        }
    }

    static let jsonType = "application/json; charset=utf-8"

    private func triggered(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> Bool {
        if let h = triggerHeader, h.withUnsafeBufferPointer({ request.headers.firstIndex(of: $0) }) != nil { return true }
        if let a = triggerArg {
            switch lookupQueryArg(request.queryBytes, a, into: &ctx.scratch, scratch: &ctx.scratch2) {
            case .absent: return false
            default: return true
            }
        }
        return false
    }

    // MARK: echo

    private func echoBody(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> [UInt8] {
        var req = JSONObject()
        req["scheme"] = "http"
        req["host"] = .string(RequestTermination.host(request))
        req["port"] = JSON(ctx.serverPort)
        req["headers"] = .object(RequestTermination.headers(request))
        req["query"] = .object(RequestTermination.query(request.queryBytes))
        let raw = rawBody(ctx, request)
        if let raw, let parsed = RequestTermination.parsedBody(raw, request) { req["body"] = parsed }
        if let raw { req["raw_body"] = .string(String(decoding: raw, as: UTF8.self)) }
        req["method"] = .string(String(describing: request.method.name))
        req["path"] = .string(String(decoding: request.pathBytes, as: UTF8.self))
        var named = JSONObject(), unnamed: [JSON] = []
        var k = 1
        while let v = ctx.uriCaptures[String(k)] { unnamed.append(.string(v)); k += 1 }
        for (n, v) in ctx.uriCaptures where !n.isEmpty && !n.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { named[n] = .string(v) }
        req["uri_captures"] = .object(["named": .object(named), "unnamed": .array(unnamed)])
        var doc = JSONObject()
        if let m = message ?? RequestTermination.defaultMessage(status) { doc["message"] = .string(m) }
        doc["kong"] = .object(["worker_pid": JSON(Int(getpid())), "hostname": .string(RequestTermination.hostname)])
        doc["request"] = .object(req)
        if let id = ctx.routeID, let r = routes[id] { doc["matched_route"] = RequestTermination.json(r) }
        if let id = ctx.serviceID, let s = services[id] { doc["matched_service"] = RequestTermination.json(s) }
        return JSON.object(doc).serialized()
    }

    /// The body bytes when the whole body was read before access ("" without a body); nil when it
    /// did not fit in memory.
    private func rawBody(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> ArraySlice<UInt8>? {
        switch ctx.requestBodyState {
        case .available: return ArraySlice(ctx.requestBody)
        case .tooLarge: return nil
        case .none: return request.isChunked || (request.contentLength ?? 0) > 0 ? nil : []
        }
    }

    static let hostname: String = {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// ngx.var.host: the Host header without its port, lower-cased.
    static func host(_ request: borrowing HTTPRequestHead) -> String {
        guard let i = request.headers.firstIndex(of: "host") else { return "" }
        var v = Array(request.headers.valueBytes(at: i))
        if v.first == 0x5B, let close = v.firstIndex(of: 0x5D) { v = Array(v[...close]) }
        else if let colon = v.firstIndex(of: 0x3A) { v = Array(v[..<colon]) }
        return String(decoding: v.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// kong.request.get_headers(): lower-case names, a repeated header as an array (at most 100 headers).
    static func headers(_ request: borrowing HTTPRequestHead) -> JSONObject {
        var out = JSONObject()
        var order: [String] = []
        var values: [String: [String]] = [:]
        for i in 0 ..< min(request.headers.count, 100) {
            let n = request.headers.name(at: i).lowercased()
            if values[n] == nil { order.append(n) }
            values[n, default: []].append(request.headers.value(at: i))
        }
        for n in order {
            let v = values[n]!
            out[n] = v.count == 1 ? .string(v[0]) : .array(v.map { .string($0) })
        }
        return out
    }

    /// ngx.req.get_uri_args(): decoded names and values, a bare name → true, a repeated one → an array.
    static func query<Q: RandomAccessCollection<UInt8>>(_ q: Q?) -> JSONObject where Q.Index == Int {
        guard let q else { return JSONObject() }
        return args(q)
    }

    static func args<Q: RandomAccessCollection<UInt8>>(_ q: Q) -> JSONObject where Q.Index == Int {
        var order: [String] = []
        var values: [String: [JSON]] = [:]
        var count = 0
        forEachQueryArg(q) { n, v in
            guard count < 100 else { return }
            count += 1
            var nb: [UInt8] = []
            appendDecoded(q[n], to: &nb)
            let name = String(decoding: nb, as: UTF8.self)
            let value: JSON
            if let v { var vb: [UInt8] = []; appendDecoded(q[v], to: &vb); value = .string(String(decoding: vb, as: UTF8.self)) }
            else { value = .bool(true) }
            if values[name] == nil { order.append(name) }
            values[name, default: []].append(value)
        }
        var out = JSONObject()
        for n in order { let v = values[n]!; out[n] = v.count == 1 ? v[0] : .array(v) }
        return out
    }

    /// kong.request.get_body(): JSON, form-urlencoded or multipart bodies decoded; nil for other types
    /// (and bodies that do not decode).
    static func parsedBody(_ raw: ArraySlice<UInt8>, _ request: borrowing HTTPRequestHead) -> JSON? {
        let ct = request.headers.firstIndex(of: "content-type").map { request.headers.valueBytes(at: $0) }
        switch BodyKind.of(contentType: ct) {
        case .json: return try? JSON.parse(Array(raw))
        case .form: return .object(args(raw))
        case .multipart(let boundary):
            let bytes = Array(raw)
            guard let m = bytes.withUnsafeBytes({ MultipartBody($0, boundary: boundary) }) else { return nil }
            var o = JSONObject()
            for p in m.parts { if let n = p.name { o[n] = .string(p.value) } }
            return .object(o)
        case .other: return nil
        }
    }

    static func json(_ r: Route) -> JSON {
        var o = JSONObject()
        o["id"] = .string(r.id)
        o["name"] = JSON(r.name)
        o["protocols"] = JSON(r.protocols)
        o["methods"] = JSON(r.methods)
        o["hosts"] = JSON(r.hosts)
        o["paths"] = JSON(r.paths)
        if let h = r.headers { o["headers"] = .object(JSONObject(h.sorted { $0.key < $1.key }.map { ($0.key, JSON($0.value)) })) } else { o["headers"] = .null }
        o["strip_path"] = .bool(r.stripPath)
        o["preserve_host"] = .bool(r.preserveHost)
        o["regex_priority"] = JSON(r.regexPriority)
        o["path_handling"] = .string(r.pathHandling)
        o["service"] = r.serviceID.map { .object(["id": .string($0)]) } ?? .null
        o["created_at"] = JSON(r.createdAt)
        return .object(o)
    }

    static func json(_ s: Service) -> JSON {
        var o = JSONObject()
        o["id"] = .string(s.id)
        o["name"] = JSON(s.name)
        o["protocol"] = .string(s.protocolName)
        o["host"] = .string(s.host)
        o["port"] = JSON(s.port)
        o["path"] = JSON(s.path)
        o["retries"] = JSON(s.retries)
        o["connect_timeout"] = JSON(s.connectTimeout)
        o["write_timeout"] = JSON(s.writeTimeout)
        o["read_timeout"] = JSON(s.readTimeout)
        o["enabled"] = .bool(s.enabled)
        return .object(o)
    }
}
