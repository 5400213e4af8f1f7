// Kong's log serializer (`kong.log.serialize()`, kong/pdk/log.lua; KONG-PLUGINS.md §7): one JSON object
// per exchange, written byte by byte into a buffer the caller reuses (no allocation once warm). The
// same code serves the logging plugins (file-log, http-log, tcp-log, udp-log) and the JSON access log.
//
// Shape: request{id, uri, url, querystring, method, headers, size}, upstream_uri, upstream_status
// (a string), response{status, headers, size}, latencies{kong, proxy, request, receive}, tries[],
// authenticated_entity{id, consumer_id}, route, service, consumer, client_ip, started_at (ms), source,
// workspace_name. `authorization` and `proxy-authorization` request headers are "REDACTED". Repeated
// headers and query arguments become arrays; a query argument without '=' is `true` (ngx.req.get_uri_args).
// `tries` lists every try: the failed ones (`state` "failed", `code` 502 or 504, as nginx's
// get_last_failure) then the last one; `upstream_status` joins the tries' statuses ("502, 200") as
// $upstream_status does. `response.headers` are the header lines the gateway sent (Via, X-Kong-* and
// the plugins' edits included), as ngx.resp.get_headers() in the log phase.
// Deviations: a try's `balancer_latency` / `balancer_latency_ns` are 0 (the pick is not timed);
// `workspace` (Kong's workspace uuid) is left out (this gateway has one workspace, "default").
import Glibc
import GWHTTP
import GWSystem

/// The exchange facts the serializer needs besides the request head (filled by the data path just
/// before the log phase; plain values, no allocation).
public struct LogFacts {
    public var status = 0
    /// The upstream's status (0: no upstream response).
    public var upstreamStatus = 0
    /// Bytes sent to the client (head + body) and bytes received from it (head + body).
    public var bytesSent = 0
    public var requestSize = 0
    /// Wall clock of the request start, ms since the epoch.
    public var startedAtMs: Int64 = 0
    /// Kong's latencies in ms: kong (time in the gateway), proxy (upstream, -1 when not proxied), request
    /// (whole exchange), receive (response body relay).
    public var kongMs = 0
    public var proxyMs = -1
    public var requestMs = 0
    public var receiveMs = 0
    /// The peer of the last try when it did not fail (nil: none, or it is the last failed try) and the
    /// number of tries.
    public var upstream: SocketAddress? = nil
    public var tries = 0
    /// Monotonic µs of the request's start and of the last try's start (a try's wall time is
    /// `startedAtMs` plus the difference).
    public var requestStartUs: UInt64 = 0
    public var lastTryStartUs: UInt64 = 0
    /// The listening port of the request (for `request.url`).
    public var listenPort = 0
    /// True when a plugin or the gateway answered (Kong's `source` "kong"), false for "upstream".
    public var answeredByKong = true
    /// The request came over TLS (`request.url` starts with https).
    public var https = false
    public init() {}
}

/// A failed try of the exchange (Kong's tries[] entry with state "failed" and its code).
public struct LogTry {
    public var address: SocketAddress
    public var startUs: UInt64
    public var code: Int
    public init(address: SocketAddress, startUs: UInt64, code: Int) { self.address = address; self.startUs = startUs; self.code = code }
}

/// Where the serializer writes: the worker's raw scratch area (HeadWriter: one bounds check and a copy
/// per piece, no `[UInt8].append` uniqueness and capacity checks) or a plain array (tests, rare paths).
public protocol LogByteSink {
    mutating func append(_ b: UInt8)
    mutating func appendRaw(_ p: UnsafeRawBufferPointer)
}

extension Array: LogByteSink where Element == UInt8 {
    @inline(__always) public mutating func appendRaw(_ p: UnsafeRawBufferPointer) { append(contentsOf: p) }
}

extension HeadWriter: LogByteSink {
    @inline(__always) public mutating func append(_ b: UInt8) { put(b) }
    @inline(__always) public mutating func appendRaw(_ p: UnsafeRawBufferPointer) { put(p) }
}

public enum LogSerializer {
    /// Writes the entry of the exchange in `ctx` (facts in `ctx.logFacts`, upstream URI in
    /// `ctx.logUpstreamURI`, response headers as a JSON object in `ctx.logResponseHeaders`) into `out`.
    public static func serialize(_ ctx: PluginContext, request h: borrowing HTTPRequestHead, requestID: [UInt8],
                                 scratch: HeadScratch, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        while true {
            var w = HeadWriter(base: scratch.base, capacity: scratch.capacity)
            write(ctx, request: h, requestID: requestID, into: &w)
            if !w.overflow { out.append(contentsOf: w.bytes); return }
            let need = scratch.capacity + 1
            scratch.write(appendingTo: &out) { w in w.putRaw(maxBytes: need) { _ in 0 } }   // grows the area
            out.removeAll(keepingCapacity: true)
        }
    }

    /// `headers` as a JSON object replacing the content of `out` (written through `scratch`).
    public static func headersJSON(_ hs: borrowing HTTPHeaders, scratch: HeadScratch, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        while true {
            var w = HeadWriter(base: scratch.base, capacity: scratch.capacity)
            headers(&w, hs, redact: false)
            if !w.overflow { out.append(contentsOf: w.bytes); return }
            let need = scratch.capacity + 1
            scratch.write(appendingTo: &out) { w in w.putRaw(maxBytes: need) { _ in 0 } }
            out.removeAll(keepingCapacity: true)
        }
    }

    /// The request's size as received (request line, header lines, blank line) plus `body` bytes.
    public static func requestSize(_ h: borrowing HTTPRequestHead, body: Int) -> Int {
        var size = h.target.count + 12 + 2 + body + h.methodName.utf8.count
        for f in h.headers.fields { size += Int(f.nameLength) + Int(f.valueLength) + 4 }
        return size
    }

    /// The entry, written into any byte sink.
    public static func write<S: LogByteSink>(_ ctx: PluginContext, request h: borrowing HTTPRequestHead, requestID: [UInt8],
                                             into out: inout S) {
        let f = ctx.logFacts
        put(&out, "{\"request\":{\"id\":")
        string(&out, requestID)
        put(&out, ",\"uri\":")
        string(&out, h.target)
        put(&out, f.https ? ",\"url\":\"https://" : ",\"url\":\"http://")
        if let host = h.hostBytes, !host.isEmpty {
            escaped(&out, host.contains(0x3A) ? host[host.startIndex ..< host.firstIndex(of: 0x3A)!] : host)
        } else {
            put(&out, "localhost")
        }
        out.append(0x3A); decimal(&out, Int64(f.listenPort))
        escaped(&out, h.target[h.pathStart...])
        put(&out, "\",\"querystring\":")
        querystring(&out, h)
        put(&out, ",\"method\":")
        string(&out, h.methodName)
        put(&out, ",\"headers\":")
        headers(&out, h.headers, redact: true)
        put(&out, ",\"size\":"); decimal(&out, Int64(f.requestSize))
        put(&out, "},\"upstream_uri\":")
        string(&out, ctx.logUpstreamURI)
        if f.upstreamStatus > 0 || !ctx.logFailedTries.isEmpty {
            put(&out, ",\"upstream_status\":\"")
            var first = true
            for t in ctx.logFailedTries {
                if !first { put(&out, ", ") }
                first = false
                decimal(&out, Int64(t.code))
            }
            if f.upstreamStatus > 0 { if !first { put(&out, ", ") }; decimal(&out, Int64(f.upstreamStatus)) }
            out.append(0x22)
        }
        put(&out, ",\"response\":{\"status\":"); decimal(&out, Int64(f.status))
        put(&out, ",\"headers\":")
        if ctx.logResponseHeaders.isEmpty { put(&out, "{}") } else { ctx.logResponseHeaders.withUnsafeBytes { out.appendRaw($0) } }
        put(&out, ",\"size\":"); decimal(&out, Int64(f.bytesSent))
        put(&out, "},\"latencies\":{\"kong\":"); decimal(&out, Int64(f.kongMs))
        put(&out, ",\"proxy\":"); decimal(&out, Int64(f.proxyMs))
        put(&out, ",\"request\":"); decimal(&out, Int64(f.requestMs))
        put(&out, ",\"receive\":"); decimal(&out, Int64(f.receiveMs))
        put(&out, "},\"tries\":[")
        var firstTry = true
        for t in ctx.logFailedTries {
            if !firstTry { out.append(0x2C) }
            firstTry = false
            logTry(&out, f, t.address, t.startUs, code: t.code)
        }
        if let a = f.upstream {
            if !firstTry { out.append(0x2C) }
            logTry(&out, f, a, f.lastTryStartUs, code: 0)
        }
        out.append(0x5D)
        if let cr = ctx.credential {
            put(&out, ",\"authenticated_entity\":{\"id\":"); string(&out, cr.id)
            put(&out, ",\"consumer_id\":"); string(&out, cr.consumer.id); out.append(0x7D)
        }
        if let c = ctx.consumer {
            put(&out, ",\"consumer\":{\"id\":"); string(&out, c.id)
            if let u = c.username { put(&out, ",\"username\":"); string(&out, u) }
            if let u = c.customID { put(&out, ",\"custom_id\":"); string(&out, u) }
            out.append(0x7D)
        }
        if let docs = ctx.logDocuments {
            if let id = ctx.routeID, let r = docs.routes[id] { put(&out, ",\"route\":"); r.withUnsafeBytes { out.appendRaw($0) } }
            if let id = ctx.serviceID, let s = docs.services[id] { put(&out, ",\"service\":"); s.withUnsafeBytes { out.appendRaw($0) } }
        }
        put(&out, ",\"client_ip\":"); string(&out, ctx.clientIP)
        put(&out, ",\"started_at\":"); decimal(&out, f.startedAtMs)
        put(&out, f.answeredByKong ? ",\"source\":\"kong\"" : ",\"source\":\"upstream\"")
        put(&out, ",\"workspace_name\":\"default\"}")
    }

    /// Headers as a JSON object: lower-case names, a repeated name becomes an array of its values (in
    /// order). `redact`: authorization and proxy-authorization values become "REDACTED". Read in place
    /// (raw pointers into the headers' storage: no slice retains).
    public static func headers<S: LogByteSink>(_ out: inout S, _ hs: borrowing HTTPHeaders, redact: Bool) {
        hs.storage.withUnsafeBytes { st in
            hs.fields.withUnsafeBufferPointer { fs in
                groupedFields(&out, count: fs.count, redact: redact,
                              name: { UnsafeRawBufferPointer(rebasing: st[Int(fs[$0].nameStart) ..< Int(fs[$0].nameStart + fs[$0].nameLength)]) },
                              value: { UnsafeRawBufferPointer(rebasing: st[Int(fs[$0].valueStart) ..< Int(fs[$0].valueStart + fs[$0].valueLength)]) })
            }
        }
    }

    /// `count` header fields as a JSON object, as ngx.req.get_headers() / ngx.resp.get_headers() give them
    /// to Kong's serializer: lower-case names, a name repeated (ASCII case-insensitively) written once, at its
    /// first place, with an array of its values in order; with `redact`, the values of `authorization` and
    /// `proxy-authorization` are "REDACTED". Quadratic in the count, which the head limits bound.
    @inline(__always)
    static func groupedFields<S: LogByteSink>(_ out: inout S, count: Int, redact: Bool,
                                              name: (Int) -> UnsafeRawBufferPointer,
                                              value: (Int) -> UnsafeRawBufferPointer) {
        @inline(__always) func same(_ a: Int, _ b: Int) -> Bool {
            let x = name(a), y = name(b)
            return x.count == y.count && foldedEqual(x, y)
        }
        out.append(0x7B)
        var first = true
        for i in 0 ..< count {
            var seen = false   // a name seen before was written with all its values
            for j in 0 ..< i where same(i, j) { seen = true; break }
            if seen { continue }
            if !first { out.append(0x2C) }
            first = false
            out.append(0x22)
            let n = name(i)
            lowered(&out, n)
            out.append(0x22); out.append(0x3A)
            let secret = redact && (foldedEquals(n, "authorization") || foldedEquals(n, "proxy-authorization"))
            var repeated = 1
            for j in (i + 1) ..< max(i + 1, count) where same(i, j) { repeated += 1 }
            if repeated > 1 { out.append(0x5B) }
            var m = 0
            for k in i ..< count where k == i || same(i, k) {
                if m > 0 { out.append(0x2C) }
                if secret { put(&out, "\"REDACTED\"") } else { out.append(0x22); escapedRaw(&out, value(k)); out.append(0x22) }
                m += 1
            }
            if repeated > 1 { out.append(0x5D) }
        }
        out.append(0x7D)
    }

    /// ASCII case-insensitive equality of two names of the same length.
    @inline(__always) static func foldedEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        for k in 0 ..< a.count where a[k] | 0x20 != b[k] | 0x20 { return false }
        return true
    }

    @inline(__always) static func foldedEquals(_ a: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        guard a.count == s.utf8CodeUnitCount else { return false }
        return foldedEqual(a, UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends a header name in lower case, escaped (names are tokens: folded 8 bytes at a time into a
    /// 64-byte stack chunk, one copy per chunk).
    private static func lowered<S: LogByteSink>(_ out: inout S, _ n: UnsafeRawBufferPointer) {
        if anyNeedsEscape(n) {
            for c in n { escapedByte(&out, c >= 0x41 && c <= 0x5A ? c | 0x20 : c) }
            return
        }
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 8) { b in
            let dst = UnsafeMutableRawPointer(b.baseAddress!)
            var i = 0
            while i < n.count {
                let k = min(64, n.count - i)
                var j = 0
                while j + 8 <= k {
                    dst.storeBytes(of: foldCase(n.loadUnaligned(fromByteOffset: i + j, as: UInt64.self)), toByteOffset: j, as: UInt64.self)
                    j += 8
                }
                while j < k { let c = n[i + j]; dst.storeBytes(of: c &- 0x41 < 26 ? c | 0x20 : c, toByteOffset: j, as: UInt8.self); j += 1 }
                out.appendRaw(UnsafeRawBufferPointer(start: dst, count: k))
                i += k
            }
        }
    }

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let high: UInt64 = 0x8080_8080_8080_8080

    /// ASCII upper-case letters of 8 bytes (all < 0x80) turned lower-case.
    @inline(__always) static func foldCase(_ x: UInt64) -> UInt64 {
        let h = x & ~high
        let geA = h &+ ones &* (0x80 - 0x41), geZ1 = h &+ ones &* (0x80 - 0x5B)
        return x | (((geA & ~geZ1 & ~x) & high) >> 2)
    }

    /// True when one of the 8 bytes needs a JSON escape (< 0x20, '"', '\\', 0x7F) or is not ASCII.
    @inline(__always) static func needsEscape8(_ x: UInt64) -> Bool {
        @inline(__always) func zero(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & high }
        let below = (x &- ones &* 0x20) & ~x & high
        return (below | zero(x ^ (ones &* 0x22)) | zero(x ^ (ones &* 0x5C)) | zero(x ^ (ones &* 0x7F)) | (x & high)) != 0
    }

    @inline(__always) static func needsEscape(_ c: UInt8) -> Bool { c < 0x20 || c == 0x22 || c == 0x5C || c == 0x7F }

    static func anyNeedsEscape(_ n: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i + 8 <= n.count { if needsEscape8(n.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { break }; i += 8 }
        while i < n.count { if needsEscape(n[i]) || n[i] >= 0x80 { return true }; i += 1 }
        return false
    }

    /// Appends bytes JSON-escaped, copying runs that need no escape in one append (scanned 8 bytes at a
    /// time).
    static func escapedRaw<S: LogByteSink>(_ out: inout S, _ s: UnsafeRawBufferPointer) {
        var start = 0, i = 0
        let n = s.count
        while i < n {
            if i + 8 <= n, !needsEscape8(s.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8; continue }
            let c = s[i]
            if needsEscape(c) {
                if i > start { out.appendRaw(UnsafeRawBufferPointer(rebasing: s[start ..< i])) }
                escapedByte(&out, c)
                start = i + 1
            }
            i += 1
        }
        if n > start { out.appendRaw(UnsafeRawBufferPointer(rebasing: s[start ..< n])) }
    }

    /// One tries[] object; `code` 0: the try did not fail.
    static func logTry<S: LogByteSink>(_ out: inout S, _ f: LogFacts, _ a: SocketAddress, _ startUs: UInt64, code: Int) {
        let sinceUs = startUs > f.requestStartUs && f.requestStartUs > 0 ? startUs - f.requestStartUs : 0
        put(&out, "{\"balancer_start\":"); decimal(&out, f.startedAtMs + Int64(sinceUs / 1000))
        put(&out, ",\"balancer_start_ns\":"); decimal(&out, f.startedAtMs &* 1_000_000 &+ Int64(sinceUs) &* 1000)
        put(&out, ",\"ip\":\"")
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: SocketAddress.maxIPLength) { b in
            out.appendRaw(UnsafeRawBufferPointer(start: b.baseAddress!, count: a.writeIP(to: b.baseAddress!)))
        }
        put(&out, "\",\"port\":"); decimal(&out, Int64(a.port))
        put(&out, ",\"balancer_latency\":0,\"balancer_latency_ns\":0")
        if code > 0 { put(&out, ",\"state\":\"failed\",\"code\":"); decimal(&out, Int64(code)) }
        out.append(0x7D)
    }

    /// The header lines of a response head the gateway wrote (`raw` starts at its status line) as a JSON
    /// object replacing the content of `out` (written through `scratch`; lower-case names, a repeated
    /// name once with an array of its values, as ngx.resp.get_headers() gives them).
    public static func headLinesJSON(_ raw: UnsafeRawBufferPointer, scratch: HeadScratch, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        while true {
            var w = HeadWriter(base: scratch.base, capacity: scratch.capacity)
            headLines(&w, raw)
            if !w.overflow { out.append(contentsOf: w.bytes); return }
            let need = scratch.capacity + 1
            scratch.write(appendingTo: &out) { w in w.putRaw(maxBytes: need) { _ in 0 } }
            out.removeAll(keepingCapacity: true)
        }
    }

    /// The header lines of `raw` (from its status line to the blank line) as a JSON object, a repeated name
    /// with an array of its values (`groupedFields`).
    public static func headLines<S: LogByteSink>(_ out: inout S, _ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { put(&out, "{}"); return }
        let n = raw.count
        @inline(__always) func find(_ c: UInt8, _ from: Int, _ to: Int) -> Int {
            guard to > from, let p = memchr(base + from, Int32(c), to - from) else { return to }
            return base.distance(to: UnsafeRawPointer(p))
        }
        // One pass for the number of lines (an upper bound of the fields), one to record each field's
        // name and value ranges in a temporary buffer (on the stack for a usual head).
        let fieldsStart = find(0x0A, 0, n) + 1   // past the status line
        var lines = 0, i = fieldsStart
        while i < n { lines += 1; i = find(0x0A, i, n) + 1 }
        withUnsafeTemporaryAllocation(of: (name: Range<Int>, value: Range<Int>).self, capacity: max(lines, 1)) { fields in
            var count = 0
            i = fieldsStart
            while i < n {
                let e = find(0x0A, i, n)
                var end = e
                if end > i, raw[end - 1] == 0x0D { end -= 1 }
                if end == i { break }   // the blank line
                let colon = find(0x3A, i, end)
                if colon < end {
                    var v = colon + 1
                    while v < end, raw[v] == 0x20 || raw[v] == 0x09 { v += 1 }
                    fields[count] = (i ..< colon, v ..< end)
                    count += 1
                }
                i = e + 1
            }
            groupedFields(&out, count: count, redact: false,
                          name: { UnsafeRawBufferPointer(rebasing: raw[fields[$0].name]) },
                          value: { UnsafeRawBufferPointer(rebasing: raw[fields[$0].value]) })
        }
    }

    /// ngx.req.get_uri_args as JSON: `a=1&b&a=2` → {"a":["1","2"],"b":true}; values percent-decoded.
    static func querystring<S: LogByteSink>(_ out: inout S, _ h: borrowing HTTPRequestHead) {
        guard let q = h.queryBytes, !q.isEmpty else { put(&out, "{}"); return }
        // Arguments as (key range, value range or nil), on the stack for the common small query.
        var args: [(Range<Int>, Range<Int>?)] = []
        var i = q.startIndex
        while i < q.endIndex {
            var e = i
            while e < q.endIndex, q[e] != 0x26 { e += 1 }
            if e > i {
                if let eq = q[i ..< e].firstIndex(of: 0x3D) { args.append((i ..< eq, (eq + 1) ..< e)) } else { args.append((i ..< e, nil)) }
            }
            i = e + 1
        }
        out.append(0x7B)
        var first = true
        for a in 0 ..< args.count {
            let key = q[args[a].0]
            if key.isEmpty { continue }
            var dup = false
            for b in 0 ..< a where q[args[b].0].elementsEqual(key) { dup = true; break }
            if dup { continue }
            if !first { out.append(0x2C) }
            first = false
            out.append(0x22); decoded(&out, key); put(&out, "\":")
            var count = 0
            for b in a ..< args.count where q[args[b].0].elementsEqual(key) { count += 1 }
            if count > 1 { out.append(0x5B) }
            var n = 0
            for b in a ..< args.count where q[args[b].0].elementsEqual(key) {
                if n > 0 { out.append(0x2C) }
                if let v = args[b].1 { out.append(0x22); decoded(&out, q[v]); out.append(0x22) } else { put(&out, "true") }
                n += 1
            }
            if count > 1 { out.append(0x5D) }
        }
        out.append(0x7D)
    }

    /// Percent-decodes ('+' is a space) and JSON-escapes.
    private static func decoded<S: LogByteSink, Q: RandomAccessCollection<UInt8>>(_ out: inout S, _ s: Q) where Q.Index == Int {
        var i = s.startIndex
        @inline(__always) func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30 ... 0x39: return c - 0x30
            case 0x41 ... 0x46: return c - 0x37
            case 0x61 ... 0x66: return c - 0x57
            default: return nil
            }
        }
        while i < s.endIndex {
            let c = s[i]
            if c == 0x25, i + 2 < s.endIndex, let a = hex(s[i + 1]), let b = hex(s[i + 2]) {
                escapedByte(&out, a << 4 | b); i += 3; continue
            }
            escapedByte(&out, c == 0x2B ? 0x20 : c)
            i += 1
        }
    }

    // MARK: JSON pieces

    @inline(__always) public static func put<S: LogByteSink>(_ out: inout S, _ s: StaticString) {
        out.appendRaw(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public static func decimal<S: LogByteSink>(_ out: inout S, _ v: Int64) {
        if v < 0 { out.append(0x2D); decimal(&out, v == Int64.min ? Int64.max : -v); return }
        if v < 10 { out.append(0x30 &+ UInt8(v)); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &digits) { d in
            while x > 0 { d[19 - n] = 0x30 &+ UInt8(x % 10); x /= 10; n += 1 }
            out.appendRaw(UnsafeRawBufferPointer(rebasing: d[(20 - n)...]))
        }
    }

    public static func string<S: LogByteSink, C: Collection>(_ out: inout S, _ s: C) where C.Element == UInt8 {
        out.append(0x22); escaped(&out, s); out.append(0x22)
    }
    public static func string<S: LogByteSink>(_ out: inout S, _ s: String) {
        var s = s
        out.append(0x22)
        s.withUTF8 { escapedRaw(&out, UnsafeRawBufferPointer($0)) }
        out.append(0x22)
    }

    static func escaped<S: LogByteSink, C: Collection>(_ out: inout S, _ s: C) where C.Element == UInt8 {
        if let done: Void = s.withContiguousStorageIfAvailable({ escapedRaw(&out, UnsafeRawBufferPointer($0)) }) { return done }
        for c in s { escapedByte(&out, c) }
    }

    @inline(__always) static func escapedByte<S: LogByteSink>(_ out: inout S, _ c: UInt8) {
        switch c {
        case 0x22: out.append(0x5C); out.append(0x22)
        case 0x5C: out.append(0x5C); out.append(0x5C)
        case 0x0A: out.append(0x5C); out.append(0x6E)
        case 0x0D: out.append(0x5C); out.append(0x72)
        case 0x09: out.append(0x5C); out.append(0x74)
        case 0 ..< 0x20, 0x7F:
            @inline(__always) func hex(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 &+ v : 0x57 &+ v }
            out.append(0x5C); out.append(0x75); out.append(0x30); out.append(0x30)
            out.append(hex(c >> 4)); out.append(hex(c & 15))
        default: out.append(c)
        }
    }
}
