// nginx's URI checks on the request path, run before routing (ngx_http_parse_complex_uri): a bad
// %-escape, or dot-segments climbing above the root, get 400. Pure functions over the parser's bytes.
import GWHTTP

@inline(__always) private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

/// nginx's URI checks (ngx_http_parse_complex_uri): every `%` starts a two-hex-digit escape, and
/// dot-segments (after decoding escapes, `/` and `.` included) never climb above the root.
func requestPathIsValid(_ head: borrowing HTTPRequestHead) -> Bool {
    head.target.withUnsafeBufferPointer { t in
        requestPathIsValid(UnsafeBufferPointer(rebasing: t[head.pathStart ..< head.queryStart]))
    }
}

func requestPathIsValid(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
    guard path.first == 0x2F else { return true }     // "*", or absolute-form without a path
    var i = path.startIndex
    var depth = 0
    var seg: (len: Int, dots: Int) = (0, 0)           // current segment length and count of '.'
    func endSegment() -> Bool {
        if seg.len == 2 && seg.dots == 2 {
            depth -= 1
            if depth < 0 { return false }
        } else if seg.len > 0 && !(seg.len == 1 && seg.dots == 1) {
            depth += 1
        }
        seg = (0, 0)
        return true
    }
    var first = true
    while i < path.endIndex {
        var c = path[i]
        if c == 0x25 {
            guard i + 2 < path.endIndex, let h = hexValue(path[i + 1]), let l = hexValue(path[i + 2]) else {
                return false
            }
            c = h << 4 | l
            i += 3
        } else {
            i += 1
        }
        if c == 0x2F {
            if first { first = false; continue }
            if !endSegment() { return false }
        } else {
            first = false
            seg.len += 1
            if c == 0x2E { seg.dots += 1 }
        }
    }
    return endSegment()
}
