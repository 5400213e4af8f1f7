// cors (Kong 3.10 `kong/plugins/cors/handler.lua`, KONG-PLUGINS.md §3), priority 2000, before the auth
// plugins. access answers preflights (OPTIONS with Origin and Access-Control-Request-Method) with 200
// and the CORS headers, unless preflight_continue; header_filter adds the origin, credentials and
// expose headers to every other response, the gateway's own errors included.
// Origins: none or ["*"] → "*"; one plain entry → that literal; else "*" entries, regexes (anchored
// at both ends, matched on the host, or on scheme://host:port when the entry has a ':') and plain
// entries compared with the normalised request origin (default ports dropped).
import GWHTTP
import GWStore

final class Cors: PluginHandler {
    static let name = "cors"
    static let priority = 2000
    /// Per-request flag: this request was a preflight (answered here or delegated): header_filter adds nothing.
    static let skipResponseHeaders: UInt32 = 1

    enum OriginRule {
        case regex(Regex, byHost: Bool)
        case plain(String)
    }

    let origins: [String]
    let rules: [OriginRule]
    let hasStar: Bool
    /// No origins, or exactly "*".
    let allowAllAlways: Bool
    /// A single plain origin: ACAO is that literal.
    let singleLiteral: String?
    let headers: String?
    let exposedHeaders: String?
    let methods: String
    let maxAge: String?
    let credentials: Bool
    let privateNetwork: Bool
    let preflightContinue: Bool
    let allowOriginAbsent: Bool

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: Cors.name)
        origins = try c.strings("origins") ?? []
        allowAllAlways = origins.isEmpty || origins == ["*"]
        singleLiteral = origins.count == 1 && Cors.isPlain(origins[0]) ? origins[0] : nil
        var rules: [OriginRule] = []
        for var entry in origins where entry != "*" {
            let byHost = !entry.contains(":")
            if Cors.isPlain(entry) {
                rules.append(.plain(Cors.normalize(Array(entry.utf8)).domain))
            } else {
                if !entry.hasSuffix("$") { entry += "$" }
                if entry.hasPrefix("^") { entry.removeFirst() }
                let (re, err) = Regex.compile(entry)
                guard let re else { throw PluginError("cors: origin '\(entry)' is not a valid regex: \(err ?? "")") }
                rules.append(.regex(re, byHost: byHost))
            }
        }
        self.rules = rules
        hasStar = origins.contains("*")
        let hs = try c.strings("headers") ?? []
        headers = hs.isEmpty ? nil : hs.joined(separator: ",")
        let eh = try c.strings("exposed_headers") ?? []
        exposedHeaders = eh.isEmpty ? nil : eh.joined(separator: ",")
        methods = (try c.strings("methods") ?? ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"])
            .joined(separator: ",")
        maxAge = try c.double("max_age").map { $0 == $0.rounded() ? String(Int64($0)) : String($0) }
        credentials = try c.bool("credentials", false)
        privateNetwork = try c.bool("private_network", false)
        preflightContinue = try c.bool("preflight_continue", false)
        allowOriginAbsent = try c.bool("allow_origin_absent", true)
        super.init(entity: entity, priority: Cors.priority)
    }

    override var phases: PluginPhases { [.access, .headerFilter] }

    static func isPlain(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2E || b == 0x3A || b == 0x2F || b == 0x2D
        }
    }

    /// LuaSocket's url.parse as Kong uses it: "scheme://host[:port]" with 80/443 dropped for http/https;
    /// a value without "//authority" is its own domain and host.
    static func normalize(_ origin: [UInt8]) -> (domain: String, host: String) {
        let s = String(decoding: origin, as: UTF8.self)
        var sep = -1
        if origin.count >= 3 {
            for i in 0 ... origin.count - 3 where origin[i] == 0x3A && origin[i + 1] == 0x2F && origin[i + 2] == 0x2F { sep = i; break }
        }
        guard sep >= 0 else { return (s, s) }
        let scheme = String(decoding: origin[..<sep], as: UTF8.self)
        var authority = origin[(sep + 3)...]
        if let end = authority.firstIndex(where: { $0 == 0x2F || $0 == 0x3F || $0 == 0x23 }) { authority = authority[..<end] }
        if let at = authority.lastIndex(of: 0x40) { authority = authority[(at + 1)...] }
        guard !authority.isEmpty else { return (s, s) }
        var host = String(decoding: authority, as: UTF8.self), port: String? = nil
        if let colon = authority.lastIndex(of: 0x3A), authority.last != 0x5D {
            host = String(decoding: authority[..<colon], as: UTF8.self)
            port = String(decoding: authority[(colon + 1)...], as: UTF8.self)
        }
        if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") { port = nil }
        return ("\(scheme)://\(host)\(port.map { ":" + $0 } ?? "")", host)
    }

    /// Kong's configure_origin: returns true when the origin is allowed as "*".
    private func configureOrigin(_ ctx: PluginContext, headerFilter: Bool, origin: [UInt8]?) -> Bool {
        if allowAllAlways {
            ctx.responseHeaders.set("Access-Control-Allow-Origin", "*")
            return true
        }
        if headerFilter { ctx.responseHeaders.add("Vary", "Origin") } else { ctx.responseHeaders.set("Vary", "Origin") }
        if let lit = singleLiteral {
            ctx.responseHeaders.set("Access-Control-Allow-Origin", lit)
            return false
        }
        if let origin {
            if hasStar {
                ctx.responseHeaders.set("Access-Control-Allow-Origin", "*")
                return true
            }
            let norm = Cors.normalize(origin)
            for rule in rules {
                let found: Bool
                switch rule {
                case .regex(let re, let byHost): found = re.matches(Array((byHost ? norm.host : norm.domain).utf8), anchored: true)
                case .plain(let d): found = d == norm.domain
                }
                if found {
                    ctx.responseHeaders.set("Access-Control-Allow-Origin", norm.domain)
                    return false
                }
            }
        }
        ctx.responseHeaders.remove("Access-Control-Allow-Origin")
        return false
    }

    private func configureCredentials(_ ctx: PluginContext, allowAll: Bool, headerFilter: Bool, origin: [UInt8]?) {
        guard credentials else { return }
        if !allowAll {
            ctx.responseHeaders.set("Access-Control-Allow-Credentials", "true")
            return
        }
        if let origin {
            if headerFilter { ctx.responseHeaders.add("Vary", "Origin") } else { ctx.responseHeaders.set("Vary", "Origin") }
            ctx.responseHeaders.set("Access-Control-Allow-Origin", String(decoding: origin, as: UTF8.self))
            ctx.responseHeaders.set("Access-Control-Allow-Credentials", "true")
        }
    }

    private func header(_ request: borrowing HTTPRequestHead, _ name: StaticString) -> [UInt8]? {
        request.headers.firstIndex(of: name).map { Array(request.headers.valueBytes(at: $0)) }
    }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        guard request.method == .options, let origin = header(request, "origin"),
              request.headers.firstIndex(of: "access-control-request-method") != nil else { return }
        ctx.setFlag(Cors.skipResponseHeaders)
        if preflightContinue { return }
        let allowAll = configureOrigin(ctx, headerFilter: false, origin: origin)
        configureCredentials(ctx, allowAll: allowAll, headerFilter: false, origin: origin)
        if let headers {
            ctx.responseHeaders.set("Access-Control-Allow-Headers", headers)
        } else if let acrh = request.headers.firstIndex(of: "access-control-request-headers") {
            ctx.responseHeaders.set("Access-Control-Allow-Headers", request.headers.value(at: acrh))
        } else {
            ctx.responseHeaders.remove("Access-Control-Allow-Headers")
        }
        ctx.responseHeaders.set("Access-Control-Allow-Methods", methods)
        if let maxAge { ctx.responseHeaders.set("Access-Control-Max-Age", maxAge) }
        if privateNetwork, let i = request.headers.firstIndex(of: "access-control-request-private-network"),
           request.headers.valueBytes(at: i).elementsEqual("true".utf8) {
            ctx.responseHeaders.set("Access-Control-Allow-Private-Network", "true")
        }
        ctx.exit(200, body: EmptyCollection<UInt8>(), contentType: nil)
    }

    override func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int, headers: borrowing HTTPHeaders) {
        if ctx.flag(Cors.skipResponseHeaders) { return }
        let origin = header(request, "origin")
        if origin == nil && !allowOriginAbsent { return }
        let allowAll = configureOrigin(ctx, headerFilter: true, origin: origin)
        configureCredentials(ctx, allowAll: allowAll, headerFilter: true, origin: origin)
        if let exposedHeaders { ctx.responseHeaders.set("Access-Control-Expose-Headers", exposedHeaders) }
    }
}
