// RESP2, the Redis wire format, as much as the gateway needs: commands written as arrays of bulk
// strings (`RESP.appendCommand`), replies read one at a time from a byte buffer (`RESP.parse`).
// Our own code rather than hiredis' reader and formatter: hiredis allocates a reply object per element
// and an sds per command and per feed (2.3 mallocs per rate-limited request measured with 0.14), and the
// gateway keeps only integers and error texts, which this parser reads in place without allocating.
//
// Invariants (fuzz-safe: any bytes give a reply, "incomplete" or an error, never a trap):
// - `parse` reads only inside the buffer it is given and never past `maxReply` bytes; a reply that
//   would need more is `.invalid` (the connection is dropped, nothing is buffered without bound).
// - Nesting is bounded (`maxDepth`): deeper arrays are `.invalid` (no unbounded recursion).
// - Lengths and integers are checked for overflow; a bulk string must end with CRLF.
// - Only an error reply allocates (its message); integers, arrays of integers, statuses, bulk strings
//   and nils do not.

public enum RESP {
    /// Largest reply read (bytes); the connection's input buffer is this big.
    public static let maxReply = 64 << 10
    /// Deepest array nesting accepted (the gateway's replies are flat).
    static let maxDepth = 8

    public enum Parsed {
        /// A whole reply of `length` bytes.
        case reply(RedisReply, length: Int)
        /// More bytes are needed (and fewer than `maxReply` are buffered).
        case incomplete
        /// Not RESP, or a reply larger than `maxReply`: the connection cannot go on.
        case invalid(String)
    }

    /// Appends `*n\r\n` then `$len\r\nword\r\n` per word.
    public static func appendCommand(_ out: inout [UInt8], _ words: UnsafeBufferPointer<UnsafeRawBufferPointer>) {
        out.append(0x2A)   // *
        appendDecimal(&out, words.count)
        out.append(0x0D); out.append(0x0A)
        for w in words {
            out.append(0x24)   // $
            appendDecimal(&out, w.count)
            out.append(0x0D); out.append(0x0A)
            out.append(contentsOf: w)
            out.append(0x0D); out.append(0x0A)
        }
    }

    /// `appendCommand` for a few words given as byte arrays (setup commands: AUTH, SELECT, SCRIPT LOAD).
    public static func appendCommand(_ out: inout [UInt8], words: [[UInt8]]) {
        out.append(0x2A)
        appendDecimal(&out, words.count)
        out.append(0x0D); out.append(0x0A)
        for w in words {
            out.append(0x24)
            appendDecimal(&out, w.count)
            out.append(0x0D); out.append(0x0A)
            out.append(contentsOf: w)
            out.append(0x0D); out.append(0x0A)
        }
    }

    static func appendDecimal(_ out: inout [UInt8], _ v: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: enough for 19 digits
        var m = v.magnitude, n = 0
        if v < 0 { out.append(0x2D) }
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[23 - n] = UInt8(0x30 + m % 10); m /= 10; n += 1 } while m > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - n)...]))
        }
    }

    /// The first reply in `bytes`. Top-level integers and arrays (their integer elements, at most 8
    /// kept, others read as 0) fill `values`; an error reply is `.error` with its text; a status, a bulk
    /// string or a nil has count 0.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Parsed {
        var reply = RedisReply()
        var at = 0
        switch element(bytes, &at, depth: 0, top: &reply) {
        case .done: return .reply(reply, length: at)
        case .more: return bytes.count >= maxReply ? .invalid("Redis reply larger than \(maxReply) bytes") : .incomplete
        case .bad(let why): return .invalid(why)
        }
    }

    private enum Step { case done, more, bad(String) }

    /// One element at `at` (advanced past it when whole). `top`: the reply being filled (depth 0 only).
    private static func element(_ b: UnsafeRawBufferPointer, _ at: inout Int, depth: Int, top: inout RedisReply) -> Step {
        let limit = min(b.count, maxReply)
        guard at < limit else { return .more }
        let type = b[at]
        var p = at + 1
        // The line after the type byte, up to CRLF.
        var end = p
        while end + 1 < limit, !(b[end] == 0x0D && b[end + 1] == 0x0A) { end += 1 }
        guard end + 1 < limit else { return .more }
        let line = UnsafeRawBufferPointer(rebasing: b[p ..< end])
        p = end + 2
        switch type {
        case 0x2B:   // + status
            at = p
            return .done
        case 0x2D:   // - error
            if depth == 0 {
                top.status = .error
                top.message = String(decoding: line, as: UTF8.self)
            }
            at = p
            return .done
        case 0x3A:   // : integer
            guard let v = integer(line) else { return .bad("Redis reply: bad integer") }
            if depth == 0 { top.count = 1; top[0] = v }
            at = p
            return .done
        case 0x24:   // $ bulk string
            guard let n = integer(line), n >= -1 else { return .bad("Redis reply: bad bulk length") }
            if n == -1 { at = p; return .done }
            guard n <= Int64(maxReply) else { return .bad("Redis reply larger than \(maxReply) bytes") }
            let stop = p + Int(n)
            guard stop + 2 <= limit else { return .more }
            guard b[stop] == 0x0D, b[stop + 1] == 0x0A else { return .bad("Redis reply: bulk string without CRLF") }
            at = stop + 2
            return .done
        case 0x2A:   // * array
            guard let n = integer(line), n >= -1 else { return .bad("Redis reply: bad array length") }
            if n == -1 { at = p; return .done }
            // Every element takes at least 3 bytes: a longer array cannot fit.
            guard n <= Int64(maxReply / 3) else { return .bad("Redis reply larger than \(maxReply) bytes") }
            guard depth < maxDepth else { return .bad("Redis reply nested too deep") }
            var scratch = RedisReply()
            for i in 0 ..< Int(n) {
                let first = p
                switch element(b, &p, depth: depth + 1, top: &scratch) {
                case .done:
                    if depth == 0, i < 8 {
                        top.count = i + 1
                        top[i] = b[first] == 0x3A ? (integer(UnsafeRawBufferPointer(rebasing: b[(first + 1) ..< (p - 2)])) ?? 0) : 0
                    }
                case .more: return .more
                case .bad(let why): return .bad(why)
                }
            }
            at = p
            return .done
        default:
            return .bad("Redis reply: unexpected type byte \(type)")
        }
    }

    /// A signed decimal (Redis' integers are 64-bit); nil when empty, not digits, or out of range.
    static func integer(_ s: UnsafeRawBufferPointer) -> Int64? {
        guard !s.isEmpty else { return nil }
        var i = 0, negative = false
        if s[0] == 0x2D { negative = true; i = 1 }
        guard i < s.count, s.count - i <= 19 else { return nil }
        var v: Int64 = 0
        while i < s.count {
            let d = s[i] &- 0x30
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(d))
            guard !o1, !o2 else { return nil }
            v = a
            i += 1
        }
        return negative ? -v : v
    }
}
