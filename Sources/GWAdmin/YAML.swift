// YAML for declarative configuration (read: files, `POST /config`; write: `db_export`), on Debian's
// libyaml (CYAML). libyaml gives parser and emitter events; this file maps them to and from GWJSON.
// Scalars follow YAML 1.1's implicit types, as Kong's lyaml and as Yams (used before) do: a plain
// scalar is null (`~`, `null`, empty), a bool (true/false, yes/no, on/off in three casings), an int
// (decimal, 0x hex, 0b binary, 0-prefixed octal, `_` separators), a float (incl. .inf/.nan) or a
// string; quoted and block scalars are strings; an explicit `!!str`/`!!int`/… tag wins.
// Anchors and aliases are expanded; merge keys (`<<`) are not applied (Kong rejects the field).
// Invariants: at most one document per stream; alias expansion is bounded (`maxNodes`), so a
// "billion laughs" document is an error, not an exhausted master.
import CYAML
import GWJSON

enum YAML {
    struct ParseError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Nodes (after alias expansion) one document may have.
    static let maxNodes = 1_000_000

    /// The stream's document as JSON, or nil when the stream has none.
    static func parse(_ bytes: [UInt8]) throws(ParseError) -> JSON? {
        let reader = Reader()
        guard reader.ready else { throw ParseError("cannot initialize the YAML parser") }
        do {
            return try bytes.withUnsafeBufferPointer { buf in
                // libyaml reads from the pointer until `count`; an empty array may have no storage.
                yaml_parser_set_input_string(&reader.parser, buf.baseAddress ?? UnsafePointer(YAML.emptyByte), buf.count)
                return try reader.stream()
            }
        } catch let e as ParseError {
            throw e
        } catch {
            throw ParseError("\(error)")
        }
    }

    private final class Reader {
        var parser = yaml_parser_t()
        let ready: Bool
        var anchors: [String: (value: JSON, nodes: Int)] = [:]
        var nodes = 0

        init() { ready = yaml_parser_initialize(&parser) == 1 }
        deinit { if ready { yaml_parser_delete(&parser) } }

        func next() throws(ParseError) -> yaml_event_t {
            var e = yaml_event_t()
            guard yaml_parser_parse(&parser, &e) == 1 else {
                let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
                let m = parser.problem_mark
                var context = ""
                if let c = parser.context { context = " \(String(cString: c))" }
                throw ParseError("\(problem)\(context) at line \(m.line + 1), column \(m.column + 1)")
            }
            return e
        }

        func stream() throws(ParseError) -> JSON? {
            var e = try next()                      // STREAM-START
            yaml_event_delete(&e)
            e = try next()
            if e.type == YAML_STREAM_END_EVENT { yaml_event_delete(&e); return nil }
            yaml_event_delete(&e)                   // DOCUMENT-START
            var root = try next()
            let value = try node(&root)
            e = try next()                          // DOCUMENT-END
            yaml_event_delete(&e)
            e = try next()
            defer { yaml_event_delete(&e) }
            guard e.type == YAML_STREAM_END_EVENT else {
                throw ParseError("expected a single document in the stream, found another at line \(e.start_mark.line + 1)")
            }
            return value
        }

        static func string(_ p: UnsafeMutablePointer<yaml_char_t>?, _ n: Int) -> String {
            guard let p else { return "" }
            return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        }

        static func cString(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            p.map { String(cString: $0) }
        }

        func count(_ n: Int) throws(ParseError) {
            nodes += n
            if nodes > YAML.maxNodes { throw ParseError("document has more than \(YAML.maxNodes) nodes (alias expansion)") }
        }

        /// The node that starts with `e` (consumed, with all its children).
        func node(_ e: inout yaml_event_t) throws(ParseError) -> JSON {
            let start = nodes
            switch e.type {
            case YAML_SCALAR_EVENT:
                let s = e.data.scalar
                let text = Reader.string(s.value, s.length)
                let anchor = Reader.cString(s.anchor)
                let v = YAML.scalar(text, tag: Reader.cString(s.tag), plain: s.style == YAML_PLAIN_SCALAR_STYLE)
                yaml_event_delete(&e)
                try count(1)
                if let anchor { anchors[anchor] = (v, 1) }
                return v
            case YAML_ALIAS_EVENT:
                let name = Reader.cString(e.data.alias.anchor) ?? ""
                let line = e.start_mark.line + 1
                yaml_event_delete(&e)
                guard let a = anchors[name] else { throw ParseError("unknown anchor '\(name)' at line \(line)") }
                try count(a.nodes)
                return a.value
            case YAML_SEQUENCE_START_EVENT:
                let anchor = Reader.cString(e.data.sequence_start.anchor)
                yaml_event_delete(&e)
                try count(1)
                var items: [JSON] = []
                while true {
                    var c = try next()
                    if c.type == YAML_SEQUENCE_END_EVENT { yaml_event_delete(&c); break }
                    items.append(try node(&c))
                }
                let v = JSON.array(items)
                if let anchor { anchors[anchor] = (v, nodes - start) }
                return v
            case YAML_MAPPING_START_EVENT:
                let anchor = Reader.cString(e.data.mapping_start.anchor)
                yaml_event_delete(&e)
                try count(1)
                var o = JSONObject()
                while true {
                    var k = try next()
                    if k.type == YAML_MAPPING_END_EVENT { yaml_event_delete(&k); break }
                    // Keys are their text (a key `1` or `true` is the string "1" / "true"); a
                    // collection as a key has no text: "".
                    let key: String
                    if k.type == YAML_SCALAR_EVENT {
                        key = Reader.string(k.data.scalar.value, k.data.scalar.length)
                        if let a = Reader.cString(k.data.scalar.anchor) { anchors[a] = (.string(key), 1) }
                        yaml_event_delete(&k)
                        try count(1)
                    } else {
                        let kv = try node(&k)
                        key = kv.stringValue ?? ""
                    }
                    var v = try next()
                    o[key] = try node(&v)
                }
                let v = JSON.object(o)
                if let anchor { anchors[anchor] = (v, nodes - start) }
                return v
            default:
                let line = e.start_mark.line + 1
                yaml_event_delete(&e)
                throw ParseError("unexpected YAML event at line \(line)")
            }
        }
    }

    // MARK: scalars

    static let nulls: Set<String> = ["", "~", "null", "Null", "NULL"]
    static let trues: Set<String> = ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"]
    static let falses: Set<String> = ["false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"]

    /// A scalar's value: explicit tag first, then (plain scalars only) YAML 1.1's implicit types.
    static func scalar(_ text: String, tag: String?, plain: Bool) -> JSON {
        if let tag, tag != "!" {
            let core = "tag:yaml.org,2002:"
            let t = tag.hasPrefix(core) ? String(tag.dropFirst(core.count)) : tag
            switch t {
            case "null": return .null
            case "bool": return bool(text).map(JSON.bool) ?? .string(text)
            case "int": return int(text).map(JSON.int) ?? .string(text)
            case "float": return double(text).map(JSON.double) ?? int(text).map { .double(Double($0)) } ?? .string(text)
            default: return .string(text)
            }
        }
        guard plain, tag == nil else { return .string(text) }
        if nulls.contains(text) { return .null }
        if let b = bool(text) { return .bool(b) }
        if let i = int(text) { return .int(i) }
        if let d = double(text) { return .double(d) }
        return .string(text)
    }

    static func bool(_ s: String) -> Bool? {
        if trues.contains(s) { return true }
        if falses.contains(s) { return false }
        return nil
    }

    /// YAML 1.1 ints: [-+] then 0b…, 0x…, 0… (octal) or decimal, with `_` separators. Nil if not an
    /// int or out of Int64's range.
    static func int(_ s: String) -> Int64? {
        var t = Substring(s)
        var negative = false
        if let f = t.first, f == "-" || f == "+" { negative = f == "-"; t = t.dropFirst() }
        guard let first = t.first, first.isASCII, first.isNumber else { return nil }
        var radix = 10
        if t.hasPrefix("0b") { radix = 2; t = t.dropFirst(2) }
        else if t.hasPrefix("0x") { radix = 16; t = t.dropFirst(2) }
        else if t.count > 1 && t.hasPrefix("0") { radix = 8; t = t.dropFirst(1) }
        let digits = t.filter { $0 != "_" }
        guard !digits.isEmpty, let m = UInt64(digits, radix: radix) else { return nil }
        if negative { return m <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- m) : nil }
        return m <= UInt64(Int64.max) ? Int64(m) : nil
    }

    /// YAML 1.1 floats: [-+] digits [. digits] [e[-+]digits] (or .digits), `_` separators. Not .inf, .nan or
    /// an overflowing 1e999: a non-finite number has no JSON form (the store and db_export would turn it into
    /// null, and NaN passes every range check), so such a scalar stays a string and fails a number field's check.
    static func double(_ s: String) -> Double? {
        let t = s.filter { $0 != "_" }
        var sawDigit = false, sawDot = false, sawExp = false, expDigits = false
        var prev: Character = " "
        for (i, c) in t.enumerated() {
            if c.isASCII && c.isNumber {
                if sawExp { expDigits = true } else { sawDigit = true }
            } else if c == "." {
                if sawDot || sawExp { return nil }
                sawDot = true
            } else if c == "e" || c == "E" {
                if sawExp || !sawDigit { return nil }
                sawExp = true
            } else if c == "-" || c == "+" {
                if !(i == 0 || prev == "e" || prev == "E") { return nil }
            } else {
                return nil
            }
            prev = c
        }
        guard sawDigit, sawDot || sawExp, !sawExp || expDigits, let d = Double(t), d.isFinite else { return nil }
        return d
    }

    // MARK: emitting

    /// `v` as a YAML document in block style. Strings are always double-quoted, so that "1",
    /// "true" or "null" read back as strings; keys are plain where libyaml finds that safe.
    static func emit(_ v: JSON) -> String {
        final class Output { var bytes: [UInt8] = [] }
        let out = Output()
        var emitter = yaml_emitter_t()
        guard yaml_emitter_initialize(&emitter) == 1 else { return v.serializedString }
        defer { yaml_emitter_delete(&emitter) }
        yaml_emitter_set_output(&emitter, { data, buffer, size in
            let o = Unmanaged<Output>.fromOpaque(data!).takeUnretainedValue()
            o.bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
            return 1
        }, Unmanaged.passUnretained(out).toOpaque())
        yaml_emitter_set_unicode(&emitter, 1)
        yaml_emitter_set_width(&emitter, -1)
        var ok = true
        func send(_ fill: (UnsafeMutablePointer<yaml_event_t>) -> Int32) {
            guard ok else { return }
            var e = yaml_event_t()
            ok = fill(&e) == 1 && yaml_emitter_emit(&emitter, &e) == 1
        }
        func scalar(_ s: String, quoted: Bool, key: Bool = false) {
            var s = s
            s.withUTF8 { u in
                let p = UnsafeMutablePointer(mutating: u.baseAddress ?? UnsafePointer(YAML.emptyByte))
                send { yaml_scalar_event_initialize($0, nil, nil, p, Int32(u.count), quoted ? 0 : 1, 1,
                                                    quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                                           : (key ? YAML_ANY_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE)) }
            }
        }
        func value(_ v: JSON) {
            switch v {
            case .null: scalar("null", quoted: false)
            case .bool(let b): scalar(b ? "true" : "false", quoted: false)
            case .int, .double: scalar(v.serializedString, quoted: false)
            case .string(let s): scalar(s, quoted: true)
            case .array(let a):
                send { yaml_sequence_start_event_initialize($0, nil, nil, 1, YAML_BLOCK_SEQUENCE_STYLE) }
                for x in a { value(x) }
                send { yaml_sequence_end_event_initialize($0) }
            case .object(let o):
                send { yaml_mapping_start_event_initialize($0, nil, nil, 1, YAML_BLOCK_MAPPING_STYLE) }
                for (k, x) in o.pairs { scalar(k, quoted: false, key: true); value(x) }
                send { yaml_mapping_end_event_initialize($0) }
            }
        }
        send { yaml_stream_start_event_initialize($0, YAML_UTF8_ENCODING) }
        send { yaml_document_start_event_initialize($0, nil, nil, nil, 1) }
        value(v)
        send { yaml_document_end_event_initialize($0, 1) }
        send { yaml_stream_end_event_initialize($0) }
        guard ok else { return v.serializedString }   // JSON is YAML too
        return String(decoding: out.bytes, as: UTF8.self)
    }

    nonisolated(unsafe) static let emptyByte: UnsafeMutablePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
}
