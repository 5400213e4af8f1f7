// The `$(…)` templates of request-transformer values (Kong 3.10 `kong/plugins/request-transformer/access.lua`:
// pl.template with `$(expr)` inline expressions rendered in a sandbox over `headers`, `query_params`,
// `uri_captures`). Kong evaluates any Lua expression; this build renders the forms people write, parsed
// once when a config is compiled (and by the Admin API, which refuses the others at write time):
//   $(headers.NAME)  $(headers["NAME"])  $(query_params.NAME)  $(query_params["NAME"])
//   $(uri_captures.NAME)  $(uri_captures["NAME"])  $(uri_captures[N])  $("literal")
// each optionally followed by ` or "literal"` (single or double quotes, no escapes). As in Lua, `or`
// applies only to a missing value (nil): an empty header or argument renders empty; a bare query
// argument (`?a`) is Lua's `true` and renders "true". A missing value without `or` renders empty.
// Like pl.template, a `$(` without a balanced `)` is literal text. A repeated header or argument is a
// Lua table in Kong (rendered "table: 0x…"); this build renders its first value.
public enum TemplateSource: UInt8, Sendable {
    case headers, queryParams, uriCaptures
}

public enum TemplatePart: Sendable {
    case literal([UInt8])
    /// A lookup: `key` as written (header names are matched case-insensitively, '_' ≡ '-').
    case field(TemplateSource, key: [UInt8], fallback: [UInt8]?)
    /// An expression this build cannot evaluate: rendering fails (Kong's 500 for a template error).
    case unsupported(String)
}

public struct TransformTemplate: Sendable {
    public let parts: [TemplatePart]

    /// True when the value contains no `$(…)` expression.
    public var isLiteral: Bool { parts.allSatisfy { if case .literal = $0 { true } else { false } } }

    /// The first expression this build cannot render, if any (the Admin API refuses such values).
    public var unsupported: String? {
        for p in parts { if case .unsupported(let e) = p { return e } }
        return nil
    }

    public static let supportedForms =
        "supported: $(headers.NAME), $(headers[\"NAME\"]), $(query_params.NAME), $(query_params[\"NAME\"]), "
        + "$(uri_captures.NAME), $(uri_captures[N]), each optionally followed by or \"default\""

    public init(_ text: String) {
        let s = Array(text.utf8)
        var parts: [TemplatePart] = []
        var lit: [UInt8] = []
        var i = 0
        while i < s.count {
            if s[i] == 0x24, i + 1 < s.count, s[i + 1] == 0x28, let close = TransformTemplate.balancedClose(s, from: i + 1) {
                let expr = Array(s[(i + 2) ..< close])
                if !lit.isEmpty { parts.append(.literal(lit)); lit = [] }
                parts.append(TransformTemplate.parseExpression(expr))
                i = close + 1
                continue
            }
            lit.append(s[i]); i += 1
        }
        if !lit.isEmpty || parts.isEmpty { parts.append(.literal(lit)) }
        // merge adjacent literals produced by string-literal expressions
        var merged: [TemplatePart] = []
        for p in parts {
            if case .literal(let b) = p, case .literal(let a)? = merged.last { merged[merged.count - 1] = .literal(a + b) } else { merged.append(p) }
        }
        self.parts = merged
    }

    /// Lua's `%b()` from the '(' at `open`: the index of the matching ')'.
    static func balancedClose(_ s: [UInt8], from open: Int) -> Int? {
        var depth = 0
        for j in open ..< s.count {
            if s[j] == 0x28 { depth += 1 } else if s[j] == 0x29 { depth -= 1; if depth == 0 { return j } }
        }
        return nil
    }

    private struct Cursor {
        let b: [UInt8]
        var i = 0
        mutating func skipSpaces() { while i < b.count, b[i] == 0x20 || b[i] == 0x09 { i += 1 } }
        var atEnd: Bool { i >= b.count }
        mutating func eat(_ c: UInt8) -> Bool {
            skipSpaces()
            if i < b.count, b[i] == c { i += 1; return true }
            return false
        }
        static func isIdentStart(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A || c == 0x5F }
        static func isIdent(_ c: UInt8) -> Bool { isIdentStart(c) || (c >= 0x30 && c <= 0x39) }
        mutating func identifier() -> [UInt8]? {
            skipSpaces()
            guard i < b.count, Cursor.isIdentStart(b[i]) else { return nil }
            let start = i
            while i < b.count, Cursor.isIdent(b[i]) { i += 1 }
            return Array(b[start ..< i])
        }
        /// A quoted string without escapes.
        mutating func string() -> [UInt8]? {
            skipSpaces()
            guard i < b.count, b[i] == 0x22 || b[i] == 0x27 else { return nil }
            let q = b[i]
            var j = i + 1
            while j < b.count, b[j] != q { if b[j] == 0x5C || b[j] == 0x0A { return nil }; j += 1 }
            guard j < b.count else { return nil }
            defer { i = j + 1 }
            return Array(b[(i + 1) ..< j])
        }
        mutating func integer() -> [UInt8]? {
            skipSpaces()
            let start = i
            while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
            return i > start ? Array(b[start ..< i]) : nil
        }
    }

    static func parseExpression(_ expr: [UInt8]) -> TemplatePart {
        let text = String(decoding: expr, as: UTF8.self)
        var c = Cursor(b: expr)
        let primary: TemplatePart
        if let lit = c.string() {
            primary = .literal(lit)
        } else if let name = c.identifier() {
            let source: TemplateSource
            switch String(decoding: name, as: UTF8.self) {
            case "headers": source = .headers
            case "query_params": source = .queryParams
            case "uri_captures": source = .uriCaptures
            default: return .unsupported(text)
            }
            let key: [UInt8]
            if c.eat(0x2E) {
                guard let k = c.identifier() else { return .unsupported(text) }
                key = k
            } else if c.eat(0x5B) {
                if let k = c.string() { key = k } else if source == .uriCaptures, let n = c.integer() { key = n } else { return .unsupported(text) }
                guard c.eat(0x5D) else { return .unsupported(text) }
            } else {
                return .unsupported(text)
            }
            primary = .field(source, key: key, fallback: nil)
        } else {
            return .unsupported(text)
        }
        c.skipSpaces()
        if c.atEnd { return primary }
        // ` or "literal"`
        guard let kw = c.identifier(), kw == Array("or".utf8), let fb = c.string() else { return .unsupported(text) }
        c.skipSpaces()
        guard c.atEnd else { return .unsupported(text) }
        if case .field(let s, let k, _) = primary { return .field(s, key: k, fallback: fb) }
        return primary    // "a" or "b" is "a"
    }
}
