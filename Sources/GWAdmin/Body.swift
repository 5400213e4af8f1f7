// Request body decoding (KONG.md §2.5): JSON, x-www-form-urlencoded and multipart/form-data with Kong's
// array/record/map notations. Form values stay strings here; Schema.coerce infers types afterwards.
import GWJSON

enum FormDecoder {
    enum Seg { case key(String), append }

    /// `a.b[1][]` → [key a, key b, key 1, append]
    static func segments(_ key: String) -> [Seg] {
        var out: [Seg] = []
        var cur = ""
        var i = key.startIndex
        var hadBracket = false
        while i < key.endIndex {
            let c = key[i]
            if c == "[" {
                if !cur.isEmpty || (!hadBracket && out.isEmpty) { out.append(.key(cur)); cur = "" }
                guard let close = key[i...].firstIndex(of: "]") else { cur.append(contentsOf: key[i...]); break }
                let inner = String(key[key.index(after: i)..<close])
                out.append(inner.isEmpty ? .append : .key(inner))
                hadBracket = true
                i = key.index(after: close)
                continue
            }
            if c == "." {
                if !cur.isEmpty { out.append(.key(cur)) }
                cur = ""
            } else {
                cur.append(c)
            }
            i = key.index(after: i)
        }
        if !cur.isEmpty { out.append(.key(cur)) }
        return out
    }

    static func insert(_ node: inout JSON, _ segs: ArraySlice<Seg>, _ value: String) {
        guard let seg = segs.first else { return }
        let rest = segs.dropFirst()
        switch seg {
        case .append:
            var a: [JSON]
            if case .array(let x) = node { a = x } else if node.isNull { a = [] } else { a = [node] }
            if rest.isEmpty { a.append(.string(value)) } else {
                var child: JSON = .null
                insert(&child, rest, value)
                a.append(child)
            }
            node = .array(a)
        case .key(let k):
            var o: JSONObject
            if case .object(let x) = node { o = x } else { o = JSONObject() }
            if rest.isEmpty {
                switch o[k] {
                case nil, .null?: o[k] = .string(value)
                case .array(var a)?: a.append(.string(value)); o[k] = .array(a)
                case let old?: o[k] = .array([old, .string(value)])
                }
            } else {
                var child = o[k] ?? .null
                insert(&child, rest, value)
                o[k] = child
            }
            node = .object(o)
        }
    }

    static func build(_ pairs: [(String, String)]) -> JSONObject {
        var root: JSON = .object(JSONObject())
        for (k, v) in pairs {
            let segs = segments(k)
            if segs.isEmpty { continue }
            insert(&root, segs[...], v)
        }
        return root.objectValue ?? JSONObject()
    }

    /// multipart/form-data fields (files are taken as their text content).
    static func multipart(_ body: [UInt8], boundary: String) -> [(String, String)]? {
        let delim = Array(("--" + boundary).utf8)
        var out: [(String, String)] = []
        func find(_ needle: [UInt8], from: Int) -> Int? {
            guard needle.count <= body.count else { return nil }
            var i = from
            while i + needle.count <= body.count {
                if body[i] == needle[0] && Array(body[i..<i + needle.count]) == needle { return i }
                i += 1
            }
            return nil
        }
        guard var pos = find(delim, from: 0) else { return nil }
        while true {
            pos += delim.count
            if pos + 1 < body.count && body[pos] == UInt8(ascii: "-") && body[pos + 1] == UInt8(ascii: "-") { break }
            // skip CRLF
            if pos + 1 < body.count && body[pos] == 13 && body[pos + 1] == 10 { pos += 2 }
            guard let hdrEnd = find([13, 10, 13, 10], from: pos) else { return nil }
            let headerText = String(decoding: body[pos..<hdrEnd], as: UTF8.self)
            let contentStart = hdrEnd + 4
            guard let next = find([13, 10] + delim, from: contentStart) else { return nil }
            var name: String?
            for line in headerText.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition") {
                for param in line.split(separator: ";") {
                    let p = param.trimmingSpaces
                    if p.hasPrefix("name=") {
                        var v = p.dropFirst(5)
                        if v.hasPrefix("\"") && v.hasSuffix("\"") && v.count >= 2 { v = v.dropFirst().dropLast() }
                        name = String(v)
                    }
                }
            }
            if let name { out.append((name, String(decoding: body[contentStart..<next], as: UTF8.self))) }
            pos = next + 2
        }
        return out
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}

extension String {
    var trimmingSpaces: String { String(Substring(self).trimmingSpaces) }
}
