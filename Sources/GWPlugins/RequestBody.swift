// The request body as plugins see it in the access phase (Kong's kong.request.get_raw_body /
// get_body and kong.service.request.set_body), and the three body formats Kong's plugins read and
// re-encode: application/x-www-form-urlencoded, application/json and multipart/form-data.
//
// Invariants: a plugin sees the body only when the data path read it whole before access (a plan
// with a plugin whose `needsRequestBody` is true) and it fitted in client_body_buffer_size; otherwise
// the state says why (Kong: "request body did not fit into client body buffer"). The bytes are
// borrowed from the connection's body buffer for the access phase only. A plugin that changes the
// body writes `PluginContext.replaceBody`, which the data path sends with its own Content-Length.
// Parsing allocates (only requests whose plugins asked for the body pay for it).
import GWJSON
import GWHTTP

/// Whether the access phase can read the request body.
public enum RequestBodyState: Sendable, Equatable {
    /// The request has no body (or the plan needs none: the body was not read before access).
    case none
    /// The whole body is in `PluginContext.requestBody`.
    case available
    /// The body was read but went to a temp file (larger than client_body_buffer_size).
    case tooLarge
}

/// The body formats Kong's plugins decode (`kong.request.get_body`), from the Content-Type.
public enum BodyKind: Equatable, Sendable {
    case form
    case json
    case multipart(boundary: [UInt8])
    case other

    /// The kind named by a Content-Type value (type/subtype case-insensitive, parameters after ';').
    public static func of(contentType: HeaderBytes?) -> BodyKind {
        guard let ct = contentType else { return .other }
        let semi = ct.firstIndex(of: 0x3B) ?? ct.endIndex
        let mime = String(decoding: ct[ct.startIndex ..< semi], as: UTF8.self).trimmingSpaces().lowercased()
        switch mime {
        case "application/x-www-form-urlencoded": return .form
        case "application/json": return .json
        case "multipart/form-data":
            guard let b = parameter("boundary", in: ct[semi...]), !b.isEmpty, b.count <= 200 else { return .other }
            return .multipart(boundary: b)
        default:
            // Kong's get_body treats `application/<anything>+json` as JSON too.
            if mime.hasPrefix("application/") && mime.hasSuffix("+json") { return .json }
            return .other
        }
    }

    /// The value of parameter `name` in "; a=b; name=value" (quotes removed).
    static func parameter<C: RandomAccessCollection<UInt8>>(_ name: String, in params: C) -> [UInt8]? where C.Index == Int {
        for part in params.split(separator: 0x3B) {
            guard let eq = part.firstIndex(of: 0x3D) else { continue }
            let k = String(decoding: part[part.startIndex ..< eq], as: UTF8.self).trimmingSpaces().lowercased()
            guard k == name else { continue }
            var v = Array(part[(eq + 1)...])
            while let f = v.first, f == 0x20 || f == 0x09 { v.removeFirst() }
            while let l = v.last, l == 0x20 || l == 0x09 { v.removeLast() }
            if v.count >= 2 && v.first == 0x22 && v.last == 0x22 { v = Array(v[1 ..< v.count - 1]) }
            return v
        }
        return nil
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

// MARK: - application/x-www-form-urlencoded

/// ngx.decode_args / ngx.encode_args: `a=1&b=2`, '+' is a space, %XX escapes.
public enum FormBody {
    /// Every pair in order (a name without '=' has the value "" here; Kong gives `true`, which no
    /// plugin here distinguishes from an empty string).
    public static func decode(_ body: UnsafeRawBufferPointer) -> [(name: String, value: String)] {
        var out: [(String, String)] = []
        for piece in body.split(separator: 0x26, omittingEmptySubsequences: true) {
            if let eq = piece.firstIndex(of: 0x3D) {
                out.append((unescape(piece[piece.startIndex ..< eq]), unescape(piece[(eq + 1)...])))
            } else {
                out.append((unescape(piece[...]), ""))
            }
            if out.count >= 1000 { break }   // ngx.decode_args' default max_args is 100; Kong raises it to 1000
        }
        return out
    }

    public static func encode(_ pairs: [(name: String, value: String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, p) in pairs.enumerated() {
            if i > 0 { out.append(0x26) }
            escape(p.name, into: &out)
            out.append(0x3D)
            escape(p.value, into: &out)
        }
        return out
    }

    static func unescape(_ s: Slice<UnsafeRawBufferPointer>) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.count)
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == 0x2B { bytes.append(0x20); i += 1; continue }
            if c == 0x25, i + 2 < s.endIndex, let h = hex(s[i + 1]), let l = hex(s[i + 2]) {
                bytes.append(h << 4 | l); i += 3; continue
            }
            bytes.append(c)
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    static func escape(_ s: String, into out: inout [UInt8]) {
        let digits: [UInt8] = Array("0123456789ABCDEF".utf8)
        for c in s.utf8 {
            switch c {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: out.append(c)
            default:
                out.append(0x25); out.append(digits[Int(c >> 4)]); out.append(digits[Int(c & 15)])
            }
        }
    }
}

// MARK: - multipart/form-data

/// A multipart/form-data body as a list of parts (Kong's `multipart` library: get, set_simple, delete,
/// tostring). Parts keep their own header block and bytes; parts added here are simple fields.
public struct MultipartBody {
    public struct Part {
        /// The `name` of its Content-Disposition (nil: none).
        public var name: String?
        /// The part's header lines as received (CRLF-separated, without the blank line).
        var headerBlock: [UInt8]
        public var body: [UInt8]
        public var value: String { String(decoding: body, as: UTF8.self) }
    }

    public let boundary: [UInt8]
    public private(set) var parts: [Part] = []

    /// Parses `body`; nil when it is not a well-formed multipart body for `boundary`.
    public init?(_ body: UnsafeRawBufferPointer, boundary: [UInt8]) {
        self.boundary = boundary
        let delim = [0x2D, 0x2D] + boundary   // "--boundary"
        guard var pos = MultipartBody.find(delim, in: body, from: 0) else {
            if body.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x0A }) { return }   // empty body: no parts
            return nil
        }
        while parts.count < 1000 {
            pos += delim.count
            // "--" after the delimiter ends the body.
            if pos + 1 < body.count && body[pos] == 0x2D && body[pos + 1] == 0x2D { return }
            // The rest of the delimiter line (transport padding) then CRLF.
            guard let eol = MultipartBody.find([0x0D, 0x0A], in: body, from: pos) else { return nil }
            let headStart = eol + 2
            guard let headEnd = MultipartBody.find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: headStart)
                    ?? (body.count >= headStart + 2 && body[headStart] == 0x0D && body[headStart + 1] == 0x0A ? headStart - 2 : nil)
            else { return nil }
            let block = headEnd >= headStart ? Array(body[headStart ..< headEnd]) : []
            let dataStart = headEnd + 4
            guard dataStart <= body.count, let next = MultipartBody.find([0x0D, 0x0A] + delim, in: body, from: dataStart) else { return nil }
            parts.append(Part(name: MultipartBody.dispositionName(block), headerBlock: block, body: Array(body[dataStart ..< next])))
            pos = next + 2
        }
        return nil
    }

    public func get(_ name: String) -> Part? { parts.first { $0.name == name } }

    public mutating func delete(_ name: String) { parts.removeAll { $0.name == name } }

    /// Sets a simple field: replaces the first part of that name, or appends one.
    public mutating func setSimple(_ name: String, _ value: String) {
        let p = Part(name: name, headerBlock: Array("Content-Disposition: form-data; name=\"\(name)\"".utf8), body: Array(value.utf8))
        if let i = parts.firstIndex(where: { $0.name == name }) { parts[i] = p } else { parts.append(p) }
    }

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        for p in parts {
            out += [0x2D, 0x2D] + boundary + [0x0D, 0x0A]
            out += p.headerBlock
            out += [0x0D, 0x0A, 0x0D, 0x0A]
            out += p.body
            out += [0x0D, 0x0A]
        }
        out += [0x2D, 0x2D] + boundary + [0x2D, 0x2D, 0x0D, 0x0A]
        return out
    }

    static func find(_ needle: [UInt8], in hay: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count else { return nil }
        var i = from
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == needle[0] {
                var k = 1
                while k < needle.count && hay[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// `name` of `Content-Disposition: form-data; name="x"` in a part's header block.
    static func dispositionName(_ block: [UInt8]) -> String? {
        for line in block.split(separator: 0x0A) {
            var l = line
            if l.last == 0x0D { l = l.dropLast() }
            guard let colon = l.firstIndex(of: 0x3A) else { continue }
            let n = String(decoding: l[l.startIndex ..< colon], as: UTF8.self).trimmingSpaces().lowercased()
            guard n == "content-disposition" else { continue }
            return BodyKind.parameter("name", in: l[(colon + 1)...]).map { String(decoding: $0, as: UTF8.self) }
        }
        return nil
    }
}

// MARK: - kong.request.get_body

/// A decoded body's named values, as Kong's `get_body` returns them: for each name a string, or
/// several strings (a repeated form field, a JSON array), or another JSON value.
public enum BodyValue: Equatable {
    case string(String)
    case strings([String])
    case other
}

public enum DecodedBody {
    /// The value of `name` in `body` of `kind` (nil: absent, or the body could not be decoded).
    public static func value(_ name: String, body: UnsafeRawBufferPointer, kind: BodyKind) -> BodyValue? {
        switch kind {
        case .form:
            let vs = FormBody.decode(body).filter { $0.name == name }.map(\.value)
            if vs.isEmpty { return nil }
            return vs.count == 1 ? .string(vs[0]) : .strings(vs)
        case .json:
            guard let j = try? JSON.parse(body), case .object(let o) = j, let v = o[name] else { return nil }
            switch v {
            case .string(let s): return .string(s)
            case .array: return .strings([])
            case .null: return nil
            default: return .other
            }
        case .multipart(let b):
            guard let m = MultipartBody(body, boundary: b), let p = m.get(name) else { return nil }
            return .string(p.value)
        case .other:
            return nil
        }
    }
}
