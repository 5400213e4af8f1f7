// The web dashboard (Kong Manager's role) on `admin_gui_listen` (127.0.0.1:8002 by default): the
// master serves it with a second AdminHTTPServer whose handler is `Dashboard.handler`. Three kinds
// of path:
//   /api, /api/…            forwarded in-process to the Admin API listener's own handler (same
//                           token check, same answers: the page shows what curl shows); a write
//                           whose Origin is not this listener's is refused (403, cross-site forms);
//   /assets/…               the embedded files (DashboardAssets.swift over CDashboardAssets, from Dashboard/);
//   /, /services[/x], …     the page itself (index.html): every view is a deep link.
// Chosen over CORS on admin_listen: the page needs no preflight for Kong-Admin-Token, works when the
// Admin API listens on another interface, and the Admin API's answers are untouched.
// Master-loop confined (runs inside AdminHTTPServer's callbacks).

enum Dashboard {
    /// The views the page renders; each is served as index.html, alone or with one name/id segment.
    static let views: Set<String> = ["services", "routes", "upstreams", "consumers", "plugins"]

    /// The Admin API's handler answers through a callback (later, for a write on PostgreSQL): /api/ requests
    /// are answered whenever it answers; everything else at once.
    static func handler(admin: @escaping AdminHTTPServer.Handler) -> AdminHTTPServer.Handler {
        { req, done in
            let target = req.target
            let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if path == "/api" || path.hasPrefix("/api/") {
                forward(req, admin: admin, done)
            } else {
                done(respond(req, path: path))
            }
        }
    }

    static func respond(_ req: AdminHTTPRequest, path: String) -> AdminHTTPResponse {
        let method = req.method.uppercased()
        guard method == "GET" || method == "HEAD" else {
            return AdminHTTPResponse(status: 405, headers: [("Allow", "GET, HEAD")] + jsonType,
                                     body: Array(#"{"message":"Method not allowed"}"#.utf8))
        }
        if let i = DashboardAssets.index(of: path) {
            return asset(i, req)
        }
        if isView(path), let i = DashboardAssets.index(of: "/index.html") {
            return asset(i, req)
        }
        return AdminHTTPResponse(status: 404, headers: jsonType, body: Array(#"{"message":"Not found"}"#.utf8))
    }

    static let jsonType = [("Content-Type", "application/json; charset=utf-8")]

    /// `/`, `/services`, `/services/{name or id}`, … (one segment after the view, any characters but
    /// `/`; a trailing `/` is allowed, as the page ignores it).
    static func isView(_ path: String) -> Bool {
        if path == "/" { return true }
        let segs = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard let first = segs.first, views.contains(String(first)) else { return false }
        if segs.count == 1 || (segs.count == 2 && segs.last!.isEmpty) { return true }
        return segs.count == 2 || (segs.count == 3 && segs.last!.isEmpty)
    }

    static func forward(_ req: AdminHTTPRequest, admin: AdminHTTPServer.Handler,
                        _ done: @escaping (AdminHTTPResponse) -> Void) {
        let method = req.method.uppercased()
        if !["GET", "HEAD", "OPTIONS"].contains(method), let origin = header(req, "origin"),
           !sameOrigin(origin, host: header(req, "host")) {
            done(AdminHTTPResponse(status: 403, headers: jsonType,
                                   body: Array(#"{"message":"cross-origin write refused by the dashboard listener"}"#.utf8)))
            return
        }
        var inner = req
        let rest = req.target.dropFirst(4)   // "/api"
        inner.target = rest.isEmpty || rest.hasPrefix("?") ? "/" + rest : String(rest)
        admin(inner, done)
    }

    /// `Origin: http://host:port` names this listener when it equals the request's Host.
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, !host.isEmpty else { return false }
        return origin == "http://" + host
    }

    static func header(_ req: AdminHTTPRequest, _ name: String) -> String? {
        req.headers.first { $0.name.lowercased() == name }?.value
    }

    static func asset(_ i: Int, _ req: AdminHTTPRequest) -> AdminHTTPResponse {
        let f = DashboardAssets.files[i]
        var headers: [(String, String)] = [
            ("Content-Type", f.contentType),
            ("ETag", f.etag),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]
        if f.contentType.hasPrefix("text/html") {
            headers.append(("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"))
            headers.append(("X-Frame-Options", "DENY"))
        }
        if let inm = header(req, "if-none-match"), inm == f.etag {
            return AdminHTTPResponse(status: 304, headers: headers, body: [])
        }
        return AdminHTTPResponse(status: 200, headers: headers, body: f.bytes)
    }
}
