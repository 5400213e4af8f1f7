// The strict RFC 8259 parser of GWJSON, working on raw bytes: whole documents (JSON.parse) and the
// streaming top-level form the workers use for large configurations (JSON.parseStreamingArrays).
// Invariants: integers that fit Int64 stay `.int`; non-finite numbers are refused; nesting is bounded
// by JSON.maxDepth.
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Parsing

extension JSON {
    public static let maxDepth = 512

    /// Strict RFC 8259 parse of a complete document (surrounding whitespace allowed).
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONError) -> JSON {
        let r: Result<JSON, JSONError>? = bytes.withContiguousStorageIfAvailable { buf in
            parseBuffer(UnsafeRawBufferPointer(buf))
        }
        if let r { return try r.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBytes { parseBuffer($0) }.get()
    }

    public static func parse(_ string: String) throws(JSONError) -> JSON {
        var s = string
        let r: Result<JSON, JSONError> = s.withUTF8 { parseBuffer(UnsafeRawBufferPointer($0)) }
        return try r.get()
    }

    static func parseBuffer(_ buf: UnsafeRawBufferPointer) -> Result<JSON, JSONError> {
        var p = JSONParser(buf)
        do throws(JSONError) {
            p.skipWS()
            let v = try p.parseValue(depth: 0)
            p.skipWS()
            if p.pos != p.end { throw p.err("unexpected trailing characters") }
            return .success(v)
        } catch {
            return .failure(error)
        }
    }
}

extension JSON {
    /// Parses a document whose top level is an object and hands each element of the arrays under the
    /// `streamed` keys to `element` as soon as it is parsed, without ever holding the whole array:
    /// a large document (a worker's 10 000-route configuration) is decoded with the memory of one
    /// element's tree at a time, and the trees freed along the way are reused by the next ones instead
    /// of leaving the heap fragmented. Every other member is parsed as usual and returned (a streamed
    /// key is returned as an empty array). A duplicate top-level key is an error here. Errors thrown
    /// by `element` are passed through.
    public static func parseStreamingArrays(_ bytes: [UInt8], streamed: Set<String>,
                                            element: (String, JSON) throws -> Void) throws -> JSONObject {
        try bytes.withUnsafeBytes { buf in
            var p = JSONParser(buf)
            return try p.parseTopLevelStreaming(streamed: streamed, element: element)
        }
    }
}

struct JSONParser {
    let base: UnsafePointer<UInt8>?
    let end: Int
    var pos = 0
    var scratch: [UInt8] = []
    var pairStack: [(key: String, value: JSON)] = []
    var keyStack: [(Int, Int)] = []
    var valueStack: [JSON] = []
    var escapedStrings = 0

    init(_ buf: UnsafeRawBufferPointer) {
        base = buf.baseAddress?.assumingMemoryBound(to: UInt8.self)
        end = buf.count
    }

    @inline(__always) func byte(_ i: Int) -> UInt8 { base.unsafelyUnwrapped[i] }

    func err(_ msg: String) -> JSONError { JSONError(msg, offset: pos) }

    @inline(__always) mutating func skipWS() {
        while pos < end {
            let c = byte(pos)
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONError) -> JSON {
        guard pos < end else { throw err("unexpected end of input") }
        let c = byte(pos)
        switch c {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw err("unexpected character '\(printable(c))'")
        }
    }

    func printable(_ c: UInt8) -> String {
        if c >= 0x20 && c < 0x7F { return String(UnicodeScalar(c)) }
        return "\\x" + String(c, radix: 16)
    }

    mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= end else { throw err("invalid literal") }
        let w = word.utf8Start
        for i in 0..<n where byte(pos + i) != w[i] { throw err("invalid literal") }
        pos += n
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSON {
        if depth > JSON.maxDepth { throw err("maximum nesting depth \(JSON.maxDepth) exceeded") }
        pos += 1
        skipWS()
        if pos < end && byte(pos) == UInt8(ascii: "}") { pos += 1; return .object(JSONObject(uniquePairs: [])) }
        // Members accumulate on parser-wide stacks and are copied once, exactly sized, at the end.
        let base0 = pairStack.count
        defer { pairStack.removeSubrange(base0...); keyStack.removeSubrange(base0...) }
        var hasDup = false
        while true {
            skipWS()
            guard pos < end, byte(pos) == UInt8(ascii: "\"") else { throw err("expected string key in object") }
            let keyStart = pos + 1
            let escapesBefore = escapedStrings
            let key = try parseString()
            // Raw key range (only when the key had no escapes) for cheap duplicate detection.
            let range = escapedStrings == escapesBefore ? (keyStart, pos - 1 - keyStart) : (-1, 0)
            if !hasDup { hasDup = isDuplicate(range, key, from: base0) }
            skipWS()
            guard pos < end, byte(pos) == UInt8(ascii: ":") else { throw err("expected ':' after object key") }
            pos += 1
            skipWS()
            let v = try parseValue(depth: depth)
            pairStack.append((key, v))
            keyStack.append(range)
            if try !nextItem(closer: UInt8(ascii: "}"), in: "object") { break }
        }
        var pairs = Array(pairStack[base0...])
        if hasDup {
            // Keep first position, last value.
            var out: [(key: String, value: JSON)] = []
            for p in pairs {
                if let i = out.firstIndex(where: { $0.key == p.key }) { out[i].value = p.value } else { out.append(p) }
            }
            pairs = out
        }
        return .object(JSONObject(uniquePairs: pairs))
    }

    @inline(__always) func isDuplicate(_ r: (Int, Int), _ key: String, from base0: Int) -> Bool {
        let n = keyStack.count
        if n == base0 { return false }
        let b = base.unsafelyUnwrapped
        for i in base0..<n {
            let o = keyStack[i]
            if r.0 >= 0 && o.0 >= 0 {
                if o.1 == r.1 && memcmp(b + o.0, b + r.0, r.1) == 0 { return true }
            } else if pairStack[i].key == key {
                return true
            }
        }
        return false
    }

    /// After an object member or array element: true at ',' (another follows), false at `closer`.
    @inline(__always) mutating func nextItem(closer: UInt8, in what: StaticString) throws(JSONError) -> Bool {
        skipWS()
        guard pos < end else { throw err("unexpected end of input in \(what)") }
        let c = byte(pos)
        pos += 1
        if c == UInt8(ascii: ",") { return true }
        if c == closer { return false }
        pos -= 1
        throw err("expected ',' or '\(Character(Unicode.Scalar(closer)))' in \(what)")
    }

    mutating func parseTopLevelStreaming(streamed: Set<String>, element: (String, JSON) throws -> Void) throws -> JSONObject {
        skipWS()
        guard pos < end, byte(pos) == UInt8(ascii: "{") else { throw err("expected an object at the top level") }
        pos += 1
        skipWS()
        var pairs: [(key: String, value: JSON)] = []
        var seen = Set<String>()
        if pos < end && byte(pos) == UInt8(ascii: "}") {
            pos += 1
        } else {
            while true {
                skipWS()
                guard pos < end, byte(pos) == UInt8(ascii: "\"") else { throw err("expected string key in object") }
                let key = try parseString()
                guard seen.insert(key).inserted else { throw err("duplicate top-level key '\(key)'") }
                skipWS()
                guard pos < end, byte(pos) == UInt8(ascii: ":") else { throw err("expected ':' after object key") }
                pos += 1
                skipWS()
                if streamed.contains(key), pos < end, byte(pos) == UInt8(ascii: "[") {
                    pos += 1
                    skipWS()
                    if pos < end && byte(pos) == UInt8(ascii: "]") {
                        pos += 1
                    } else {
                        while true {
                            skipWS()
                            try element(key, try parseValue(depth: 1))
                            if try !nextItem(closer: UInt8(ascii: "]"), in: "array") { break }
                        }
                    }
                    pairs.append((key, .array([])))
                } else {
                    pairs.append((key, try parseValue(depth: 1)))
                }
                if try !nextItem(closer: UInt8(ascii: "}"), in: "object") { break }
            }
        }
        skipWS()
        if pos != end { throw err("unexpected trailing characters") }
        return JSONObject(uniquePairs: pairs)
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSON {
        if depth > JSON.maxDepth { throw err("maximum nesting depth \(JSON.maxDepth) exceeded") }
        pos += 1
        skipWS()
        if pos < end && byte(pos) == UInt8(ascii: "]") { pos += 1; return .array([]) }
        let base0 = valueStack.count
        defer { valueStack.removeSubrange(base0...) }
        while true {
            skipWS()
            let v = try parseValue(depth: depth)
            valueStack.append(v)
            if try !nextItem(closer: UInt8(ascii: "]"), in: "array") { break }
        }
        return .array(Array(valueStack[base0...]))
    }

    @inline(__always) static func hexVal(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard pos + 4 <= end else { throw err("truncated \\u escape") }
        var v: UInt32 = 0
        for i in 0..<4 {
            guard let h = JSONParser.hexVal(byte(pos + i)) else { throw err("invalid \\u escape") }
            v = v << 4 | h
        }
        pos += 4
        return v
    }

    mutating func parseString() throws(JSONError) -> String {
        pos += 1  // opening quote
        let start = pos
        var needsValidation = false
        // Fast scan: no escapes.
        while pos < end {
            let c = byte(pos)
            if c == UInt8(ascii: "\"") {
                let s = try makeString(UnsafeBufferPointer(start: base.unsafelyUnwrapped + start, count: pos - start),
                                       validate: needsValidation, at: start)
                pos += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw err("unescaped control character in string") }
            if c >= 0x80 { needsValidation = true }
            pos += 1
        }
        guard pos < end else { throw err("unterminated string") }
        // Slow path with escapes.
        escapedStrings += 1
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(start: base.unsafelyUnwrapped + start, count: pos - start))
        while pos < end {
            let c = byte(pos)
            if c == UInt8(ascii: "\"") {
                pos += 1
                return try makeString(scratchBuffer: needsValidation, at: start)
            }
            if c < 0x20 { throw err("unescaped control character in string") }
            if c >= 0x80 { needsValidation = true }
            if c != UInt8(ascii: "\\") { scratch.append(c); pos += 1; continue }
            pos += 1
            guard pos < end else { break }
            let e = byte(pos)
            pos += 1
            switch e {
            case UInt8(ascii: "\""): scratch.append(0x22)
            case UInt8(ascii: "\\"): scratch.append(0x5C)
            case UInt8(ascii: "/"): scratch.append(0x2F)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var cp = try hex4()
                if cp >= 0xD800 && cp <= 0xDBFF {
                    guard pos + 6 <= end, byte(pos) == UInt8(ascii: "\\"), byte(pos + 1) == UInt8(ascii: "u") else {
                        throw err("unpaired high surrogate in \\u escape")
                    }
                    pos += 2
                    let lo = try hex4()
                    guard lo >= 0xDC00 && lo <= 0xDFFF else { throw err("invalid low surrogate in \\u escape") }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                } else if cp >= 0xDC00 && cp <= 0xDFFF {
                    throw err("unpaired low surrogate in \\u escape")
                }
                appendUTF8(cp)
            default:
                pos -= 1
                throw err("invalid escape character '\(printable(e))'")
            }
        }
        pos = end
        throw err("unterminated string")
    }

    mutating func appendUTF8(_ cp: UInt32) {
        if cp < 0x80 {
            scratch.append(UInt8(cp))
        } else if cp < 0x800 {
            scratch.append(UInt8(0xC0 | (cp >> 6)))
            scratch.append(UInt8(0x80 | (cp & 0x3F)))
        } else if cp < 0x10000 {
            scratch.append(UInt8(0xE0 | (cp >> 12)))
            scratch.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (cp & 0x3F)))
        } else {
            scratch.append(UInt8(0xF0 | (cp >> 18)))
            scratch.append(UInt8(0x80 | ((cp >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (cp & 0x3F)))
        }
    }

    func makeString(_ b: UnsafeBufferPointer<UInt8>, validate: Bool, at start: Int) throws(JSONError) -> String {
        if !validate { return String(decoding: b, as: UTF8.self) }
        guard let s = String(validating: b, as: UTF8.self) else { throw JSONError("invalid UTF-8 in string", offset: start) }
        return s
    }

    func makeString(scratchBuffer validate: Bool, at start: Int) throws(JSONError) -> String {
        try scratch.withUnsafeBufferPointer { (b) throws(JSONError) -> String in
            try makeString(b, validate: validate, at: start)
        }
    }

    mutating func parseNumber() throws(JSONError) -> JSON {
        let start = pos
        var negative = false
        if byte(pos) == UInt8(ascii: "-") { negative = true; pos += 1 }
        guard pos < end, isDigit(byte(pos)) else { throw err("invalid number") }
        var intVal: UInt64 = 0
        var overflow = false
        if byte(pos) == UInt8(ascii: "0") {
            pos += 1
            if pos < end && isDigit(byte(pos)) { throw err("leading zeros are not allowed in numbers") }
        } else {
            while pos < end, isDigit(byte(pos)) {
                let d = UInt64(byte(pos) - UInt8(ascii: "0"))
                let (m, o1) = intVal.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(d)
                if o1 || o2 { overflow = true }
                intVal = a
                pos += 1
            }
        }
        var isFloat = false
        if pos < end && byte(pos) == UInt8(ascii: ".") {
            isFloat = true
            pos += 1
            guard pos < end, isDigit(byte(pos)) else { throw err("expected digit after decimal point") }
            while pos < end, isDigit(byte(pos)) { pos += 1 }
        }
        if pos < end && (byte(pos) == UInt8(ascii: "e") || byte(pos) == UInt8(ascii: "E")) {
            isFloat = true
            pos += 1
            if pos < end && (byte(pos) == UInt8(ascii: "+") || byte(pos) == UInt8(ascii: "-")) { pos += 1 }
            guard pos < end, isDigit(byte(pos)) else { throw err("expected digit in exponent") }
            while pos < end, isDigit(byte(pos)) { pos += 1 }
        }
        if !isFloat && !overflow {
            if negative {
                if intVal <= UInt64(Int64.max) { return .int(-Int64(intVal)) }
                if intVal == UInt64(Int64.max) + 1 { return .int(Int64.min) }
            } else if intVal <= UInt64(Int64.max) {
                return .int(Int64(intVal))
            }
        }
        let text = String(decoding: UnsafeBufferPointer(start: base.unsafelyUnwrapped + start, count: pos - start),
                          as: UTF8.self)
        guard let d = Double(text) else { throw JSONError("invalid number", offset: start) }
        // 1e999 would be +inf, which no JSON text can carry back (it serializes as null): refused.
        guard d.isFinite else { throw JSONError("number out of range", offset: start) }
        return .double(d)
    }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
}
