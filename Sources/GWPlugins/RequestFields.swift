// Reading the request the way Kong's PDK does, without allocating: header values by name with nginx's
// `underscores_in_headers on` equivalence ('_' and '-' alike, case-insensitive), and query arguments
// (`kong.request.get_query_arg`: percent-decoded, '+' as space, a bare `name` has no value).
import GWHTTP

@inline(__always) func headerNameByte(_ b: UInt8) -> UInt8 {
    let l = (b &- 0x41) < 26 ? b | 0x20 : b
    return l == 0x5F ? 0x2D : l    // '_' → '-'
}

/// Header names equal under nginx's rules (case-insensitive, '_' ≡ '-').
func headerNameMatches<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool where A.Element == UInt8, B.Element == UInt8 {
    guard a.count == b.count else { return false }
    var i = a.startIndex, j = b.startIndex
    while i != a.endIndex {
        if headerNameByte(a[i]) != headerNameByte(b[j]) { return false }
        i = a.index(after: i); j = b.index(after: j)
    }
    return true
}

/// Result of looking a name up among headers or query arguments.
enum FieldLookup: Equatable {
    case absent
    /// One occurrence; its (decoded, for queries) bytes are in the caller's buffer.
    case one
    /// More than one occurrence (Kong: a table value).
    case many
    /// Present without a value (a bare query argument `?name`).
    case bare
}

/// The index of the one request header named `name` (nginx's rules); -1 when absent, -2 when repeated.
func findHeader(_ headers: borrowing HTTPHeaders, _ name: [UInt8]) -> Int {
    var found = -1
    let n = Int32(name.count)
    let many: Bool = headers.storage.withUnsafeBufferPointer { st in
        name.withUnsafeBufferPointer { nb in
            for i in 0 ..< headers.fields.count {
                let f = headers.fields[i]
                guard f.nameLength == n else { continue }
                var eq = true
                var j = Int(f.nameStart)
                for b in nb { if headerNameByte(st[j]) != headerNameByte(b) { eq = false; break }; j += 1 }
                if !eq { continue }
                if found >= 0 { return true }
                found = i
            }
            return false
        }
    }
    return many ? -2 : found
}

@inline(__always) func hexNibble(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x37
    case 0x61...0x66: return c - 0x57
    default: return nil
    }
}

/// Appends the percent-decoded form of `raw` ('+' → space) to `out`.
func appendDecoded<C: Collection>(_ raw: C, to out: inout [UInt8]) where C.Element == UInt8, C.Index == Int {
    var i = raw.startIndex
    while i < raw.endIndex {
        let c = raw[i]
        if c == 0x25, i + 2 < raw.endIndex, let h = hexNibble(raw[i + 1]), let l = hexNibble(raw[i + 2]) {
            out.append(h << 4 | l); i += 3; continue
        }
        out.append(c == 0x2B ? 0x20 : c)
        i += 1
    }
}

/// Iterates `a=b&c&d=e` arguments: calls `body(nameRange, valueRange?)` with ranges into `query`
/// (raw, not decoded). Empty segments are skipped.
func forEachQueryArg<Q: RandomAccessCollection<UInt8>>(_ query: Q, _ body: (Range<Int>, Range<Int>?) -> Void) where Q.Index == Int {
    var i = query.startIndex
    while i < query.endIndex {
        var end = i
        while end < query.endIndex && query[end] != 0x26 { end += 1 }
        if end > i {
            var eq = i
            while eq < end && query[eq] != 0x3D { eq += 1 }
            body(i ..< eq, eq < end ? (eq + 1) ..< end : nil)
        }
        i = end + 1
    }
}

/// True when the raw argument name `raw` decodes to exactly `name`.
func queryNameEquals<Q: RandomAccessCollection<UInt8>>(_ raw: Q, _ name: [UInt8], scratch: inout [UInt8]) -> Bool where Q.Index == Int {
    if raw.count == name.count && raw.elementsEqual(name) { return true }
    guard raw.contains(0x25) || raw.contains(0x2B) else { return false }
    scratch.removeAll(keepingCapacity: true)
    appendDecoded(raw, to: &scratch)
    return scratch == name
}

/// Looks `name` up in the query; the decoded value goes to `out` when found once with a value.
func lookupQueryArg<Q: RandomAccessCollection<UInt8>>(_ query: Q?, _ name: [UInt8], into out: inout [UInt8], scratch: inout [UInt8]) -> FieldLookup where Q.Index == Int {
    guard let query else { return .absent }
    var result = FieldLookup.absent
    forEachQueryArg(query) { n, v in
        guard queryNameEquals(query[n], name, scratch: &scratch) else { return }
        if result != .absent { result = .many; return }
        if let v {
            out.removeAll(keepingCapacity: true)
            appendDecoded(query[v], to: &out)
            result = .one
        } else {
            result = .bare
        }
    }
    return result
}

/// Writes `query` without the arguments named `name` into `out` (raw segments kept as sent, in order).
/// Returns false when no argument had that name (nothing to change).
func queryRemoving<Q: RandomAccessCollection<UInt8>>(_ query: Q, _ name: [UInt8], into out: inout [UInt8], scratch: inout [UInt8]) -> Bool where Q.Index == Int {
    var removed = false
    out.removeAll(keepingCapacity: true)
    forEachQueryArg(query) { n, v in
        if queryNameEquals(query[n], name, scratch: &scratch) { removed = true; return }
        if !out.isEmpty { out.append(0x26) }
        out.append(contentsOf: query[n.lowerBound ..< (v?.upperBound ?? n.upperBound)])
    }
    return removed
}
