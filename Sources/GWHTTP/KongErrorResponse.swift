// Kong-generated error responses (KONG.md §3.6): content negotiation as `kong/tools/http.lua`
// get_response_type/get_mime_type, the four body templates, and the full response bytes.
// Error paths are cold: Strings are fine here.

public enum KongErrorResponse {
    public static let mimeJSON = "application/json; charset=utf-8"
    public static let mimeHTML = "text/html; charset=utf-8"
    public static let mimeXML = "application/xml; charset=utf-8"
    public static let mimePlain = "text/plain; charset=utf-8"

    /// `get_mime_type`: media type → Kong MIME type (unknown → JSON; `application/grpc` → "").
    public static func mimeType(forMediaType mt: Substring) -> String {
        let media = mt.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(trim) ?? ""
        let parts = media.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count > 1 else { return mimeJSON }
        if parts[1] == "*" {
            if parts[0] == "*" { return mimeJSON }
            switch parts[0] {
            case "application": return mimeJSON
            case "text": return mimePlain
            default: return mimeJSON
            }
        }
        switch media {
        case "application/json": return mimeJSON
        case "text/html": return mimeHTML
        case "application/xml": return mimeXML
        case "text/plain": return mimePlain
        case "application/grpc": return ""
        default: return mimeJSON
        }
    }

    /// `get_response_type(accept)`: highest q wins (first among equals); no header → JSON.
    public static func responseType(accept: String?) -> String {
        guard let accept else { return mimeJSON }
        var best = mimeJSON
        var maxQ = 0.0
        for raw in accept.split(separator: ",", omittingEmptySubsequences: false) {
            let v = trim(raw)
            guard let (media, q) = parseAcceptValue(v) else { continue }
            if q > maxQ {
                maxQ = q
                best = mimeType(forMediaType: media)
            }
        }
        return best
    }

    static func isTokenStart(_ c: Character) -> Bool {
        guard let a = c.asciiValue else { return false }
        let l = asciiLower(a)
        return (l >= 0x61 && l <= 0x7A) || (l >= 0x30 && l <= 0x39)
    }
    static func isTokenChar(_ c: Character) -> Bool {
        if isTokenStart(c) { return true }
        return "-!#$&^_+.".contains(c)
    }

    /// Mirrors Kong's anchored PCRE: `(token|*)/(token|*)` then `;q=…` / `;param[=…]` parameters.
    static func parseAcceptValue(_ v: Substring) -> (Substring, Double)? {
        var i = v.startIndex
        func token() -> Bool {
            guard i < v.endIndex else { return false }
            if v[i] == "*" { i = v.index(after: i); return true }
            guard isTokenStart(v[i]) else { return false }
            let s = i
            i = v.index(after: i)
            while i < v.endIndex, isTokenChar(v[i]) { i = v.index(after: i) }
            return v.distance(from: s, to: i) >= 2
        }
        let start = i
        guard token(), i < v.endIndex, v[i] == "/" else { return nil }
        i = v.index(after: i)
        guard token() else { return nil }
        let media = v[start..<i]
        var q = 1.0
        let params = v[i...].split(separator: ";", omittingEmptySubsequences: false).dropFirst()
        for p in params {
            let t = trim(p)
            let kv = t.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, kv[0] == "q" || kv[0] == "Q" else { continue }
            let val = kv[1]
            // q = 1(\.0{0,3})? | 0(\.\d{0,3})?
            guard let first = val.first, first == "0" || first == "1" else { continue }
            let rest = val.dropFirst()
            if !rest.isEmpty {
                guard rest.first == ".", rest.count <= 4 else { continue }
                let digits = rest.dropFirst()
                guard digits.allSatisfy({ first == "1" ? $0 == "0" : ($0.isASCII && $0.isNumber) }) else { continue }
            }
            q = Double(String(val)) ?? 1
        }
        return (media, q)
    }

    static func trim(_ s: Substring) -> Substring {
        var a = s.startIndex, b = s.endIndex
        while a < b, s[a] == " " || s[a] == "\t" { a = s.index(after: a) }
        while b > a, s[s.index(before: b)] == " " || s[s.index(before: b)] == "\t" { b = s.index(before: b) }
        return s[a..<b]
    }

    /// The body for a Kong MIME type (`get_error_template` + `string.format`).
    public static func body(mimeType: String, message: String, requestID: String) -> String {
        switch mimeType {
        case mimeHTML:
            return "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>\(message).</p>\n    <p>request_id: \(requestID)</p>\n  </body>\n</html>\n"
        case mimeXML:
            return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>\(message)</message>\n  <requestid>\(requestID)</requestid>\n</error>\n"
        case mimePlain:
            return "\(message)\nrequest_id: \(requestID)\n"
        case "":
            return ""
        default:
            return "{\n  \"message\":\"\(message)\",\n  \"request_id\":\"\(requestID)\"\n}"
        }
    }

    /// Appends a complete Kong error response.
    /// - defaultType: nil = `kong.response.error` (Accept only, JSON default); non-nil = nginx error_page handler
    ///   (`kong/error_handlers.lua`: Accept, else request Content-Type, else `error_default_type`, e.g. "text/plain").
    /// - status 494 is answered as 400.
    public static func build(into out: inout some ByteSink, status: Int, message: String, requestID: String,
                             accept: String?, contentType: String?, isHEAD: Bool, defaultType: String? = nil,
                             serverToken: String? = "kong/3.10.0", keepAlive: Bool, connection: String? = nil,
                             date: String? = nil,
                             responseLatency: Int? = nil, extraHeaders: [(String, String)] = []) {
        let negotiationInput: String?
        if let d = defaultType { negotiationInput = accept ?? contentType ?? d } else { negotiationInput = accept }
        let mime = responseType(accept: negotiationInput)
        let bodyText = body(mimeType: mime, message: message, requestID: requestID)
        let st = status == 494 ? 400 : status
        HTTPWriter.appendStatusLine(status: st, into: &out)
        if let date { HTTPWriter.appendHeader("Date", date, into: &out) }
        if !mime.isEmpty { HTTPWriter.appendHeader("Content-Type", mime, into: &out) }
        HTTPWriter.appendHeader("Connection", connection ?? (keepAlive ? "keep-alive" : "close"), into: &out)
        HTTPWriter.appendHeader("Content-Length", bodyText.utf8.count, into: &out)
        for (n, v) in extraHeaders { HTTPWriter.appendHeader(n, v, into: &out) }
        if let l = responseLatency { HTTPWriter.appendHeader("X-Kong-Response-Latency", l, into: &out) }
        if let s = serverToken { HTTPWriter.appendHeader("Server", s, into: &out) }
        if !requestID.isEmpty { HTTPWriter.appendHeader("X-Kong-Request-Id", requestID, into: &out) }
        HTTPWriter.appendEndOfHead(into: &out)
        if !isHEAD { out.append(contentsOf: bodyText.utf8) }
    }
}
