// The blob proxy-cache stores per entry (one copy in the shared CacheStore), version 2, laid out so a
// Hit writes it out as it is (PluginContext.CachedAnswer):
//   u8 version(2) | u8 flags | u16 status
//   | u32 length, the served header lines: `Name: value\r\n` each, in the upstream's order (Content-Type
//     spelled so), without what Kong drops on a Hit: hop-by-hop headers, Content-Length, the stored
//     rate-limit state (X-RateLimit-*, RateLimit-*, Retry-After: the request's own are set by that plugin)
//   | u32 length, the dropped lines, same form (kept only for the Admin API's view of the entry)
//   | u16 vary count | per Vary name: u16 name length, u32 value length (0xFFFFFFFF: absent), lower-cased
//     name, the request's value(s) joined by ", "
//   | u32 body length | body
// flags: the served lines have a Date (1) / a Server (2) (they replace the gateway's own, as Kong's
// ngx.header does); they name a header the Hit writes itself (Age, X-Cache-*, X-Kong-Request-Id,
// X-Kong-Response-Latency) (4): such an entry is answered by the generic path (header edits), which
// resolves the clash exactly as before.
// Integers are little-endian. Decoding checks every length against the blob (a torn, foreign or
// version-1 blob is a miss, never a crash); it allocates nothing: a CachedResponse is offsets into the
// bytes it was parsed from.
import GWHTTP
import GWJSON
import GWPluginState

struct CachedResponse {
    static let version: UInt8 = 2
    static let hasDate: UInt8 = 1, hasServer: UInt8 = 2, clashes: UInt8 = 4

    let status: Int
    let flags: UInt8
    /// Byte ranges in the parsed blob.
    let headers: Range<Int>
    let droppedHeaders: Range<Int>
    let vary: Range<Int>
    let varyCount: Int
    let body: Range<Int>

    // MARK: encoding

    static func put16(_ v: Int, _ out: inout [UInt8]) { out.append(UInt8(v & 0xFF)); out.append(UInt8((v >> 8) & 0xFF)) }
    static func put32(_ v: UInt32, _ out: inout [UInt8]) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> UInt32(s)) & 0xFF)) } }
    static func patch32(_ v: Int, at i: Int, _ out: inout [UInt8]) {
        for k in 0 ..< 4 { out[i + k] = UInt8((v >> (8 * k)) & 0xFF) }
    }

    static let hopByHop: [StaticString] = ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                                           "trailers", "transfer-encoding", "upgrade", "content-length"]
    /// Headers a Hit writes itself (flag `clashes`).
    static let ownHeaders: [StaticString] = ["age", "x-cache-status", "x-cache-key", "x-kong-request-id", "x-kong-response-latency"]

    static func named(_ h: borrowing HTTPHeaders, _ i: Int, _ names: [StaticString]) -> Bool {
        for n in names where h.nameEquals(at: i, n) { return true }
        return false
    }

    static func hasPrefix(_ h: borrowing HTTPHeaders, _ i: Int, _ p: StaticString) -> Bool {
        let n = h.nameBytes(at: i)
        guard n.count >= p.utf8CodeUnitCount else { return false }
        var j = n.startIndex
        for k in 0 ..< p.utf8CodeUnitCount {
            let b = n[j]
            if ((b &- 0x41) < 26 ? b | 0x20 : b) != p.utf8Start[k] { return false }
            j += 1
        }
        return true
    }

    /// Header `i` is not served on a Hit (hop-by-hop, Content-Length, stored rate-limit state).
    static func dropped(_ h: borrowing HTTPHeaders, _ i: Int) -> Bool {
        named(h, i, hopByHop) || hasPrefix(h, i, "x-ratelimit-") || hasPrefix(h, i, "ratelimit-") || h.nameEquals(at: i, "retry-after")
    }

    static func putLine(_ h: borrowing HTTPHeaders, _ i: Int, _ out: inout [UInt8]) {
        if h.nameEquals(at: i, "content-type") { out.append(contentsOf: "Content-Type".utf8) } else { out.append(contentsOf: h.nameBytes(at: i)) }
        out.append(0x3A); out.append(0x20)
        out.append(contentsOf: h.valueBytes(at: i))
        out.append(0x0D); out.append(0x0A)
    }

    /// Writes everything but the body; `bodyLength` is the response's Content-Length.
    static func beginEncoding(into out: inout [UInt8], status: Int, headers: borrowing HTTPHeaders, vary: [[UInt8]],
                              request: borrowing HTTPHeaders, bodyLength: Int) {
        out.removeAll(keepingCapacity: true)
        out.append(version)
        out.append(0)
        put16(status, &out)
        var flags: UInt8 = 0
        for pass in 0 ..< 2 {   // served lines, then dropped lines
            let lengthAt = out.count
            put32(0, &out)
            for i in 0 ..< headers.count where dropped(headers, i) == (pass == 1) {
                putLine(headers, i, &out)
                guard pass == 0 else { continue }
                if headers.nameEquals(at: i, "date") { flags |= hasDate }
                if headers.nameEquals(at: i, "server") { flags |= hasServer }
                if named(headers, i, ownHeaders) { flags |= clashes }
            }
            patch32(out.count - lengthAt - 4, at: lengthAt, &out)
        }
        out[1] = flags
        put16(vary.count, &out)
        for name in vary {
            put16(name.count, &out)
            var value: [UInt8] = [], present = false
            for i in 0 ..< request.count where request.nameBytes(at: i).map({ ($0 &- 0x41) < 26 ? $0 | 0x20 : $0 }) == name {
                if present { value.append(contentsOf: ", ".utf8) }
                value.append(contentsOf: request.valueBytes(at: i))
                present = true
            }
            put32(present ? UInt32(value.count) : 0xFFFF_FFFF, &out)
            out.append(contentsOf: name)
            out.append(contentsOf: value)
        }
        put32(UInt32(bodyLength), &out)
    }

    /// Checks that the body appended after `beginEncoding` has the announced length.
    static func finishEncoding(_ blob: inout [UInt8]) -> Bool {
        blob.withUnsafeBytes { CachedResponse($0) } != nil
    }

    // MARK: decoding

    /// Bounds-checked little-endian reads over a blob.
    private struct Reader {
        let b: UnsafeRawBufferPointer
        var p = 0
        mutating func u16() -> Int? {
            guard p + 2 <= b.count else { return nil }
            defer { p += 2 }
            return Int(b[p]) | Int(b[p + 1]) << 8
        }
        mutating func u32() -> UInt32? {
            guard p + 4 <= b.count else { return nil }
            defer { p += 4 }
            return UInt32(b[p]) | UInt32(b[p + 1]) << 8 | UInt32(b[p + 2]) << 16 | UInt32(b[p + 3]) << 24
        }
        mutating func take(_ n: Int) -> Range<Int>? {
            guard n >= 0, n <= b.count - p else { return nil }
            defer { p += n }
            return p ..< p + n
        }
    }

    init?(_ b: UnsafeRawBufferPointer) {
        guard b.count >= 4, b[0] == CachedResponse.version else { return nil }
        var r = Reader(b: b, p: 2)
        guard let st = r.u16(), let hl = r.u32(), let hs = r.take(Int(hl)), let dl = r.u32(), let ds = r.take(Int(dl)),
              let vc = r.u16() else { return nil }
        let varyStart = r.p
        for _ in 0 ..< vc {
            guard let nl = r.u16(), let vl = r.u32(), r.take(nl) != nil else { return nil }
            if vl != 0xFFFF_FFFF { guard r.take(Int(vl)) != nil else { return nil } }
        }
        let varyEnd = r.p
        guard let bl = r.u32(), Int(bl) == b.count - r.p else { return nil }
        status = st
        flags = b[1]
        headers = hs
        droppedHeaders = ds
        vary = varyStart ..< varyEnd
        varyCount = vc
        body = r.p ..< b.count
    }

    /// The request carries the same values for the Vary headers as the one whose response was stored
    /// (`b`: the blob this view was parsed from). Compares in place, no allocation.
    func varyMatches(_ b: UnsafeRawBufferPointer, _ request: borrowing HTTPHeaders) -> Bool {
        guard varyCount > 0 else { return true }
        var r = Reader(b: UnsafeRawBufferPointer(rebasing: b[0 ..< vary.upperBound]), p: vary.lowerBound)
        for _ in 0 ..< varyCount {
            guard let nl = r.u16(), let vl = r.u32(), let nr = r.take(nl) else { return false }
            let name = UnsafeBufferPointer(start: (b.baseAddress! + nr.lowerBound).assumingMemoryBound(to: UInt8.self), count: nl)
            let stored = vl == 0xFFFF_FFFF ? nil : r.take(Int(vl))
            var pos = stored?.lowerBound ?? 0
            let end = stored?.upperBound ?? 0
            var present = false
            for i in 0 ..< request.count where request.nameEquals(at: i, name) {
                guard let _ = stored else { return false }
                if present {
                    guard end - pos >= 2, b[pos] == 0x2C, b[pos + 1] == 0x20 else { return false }
                    pos += 2
                }
                let v = request.valueBytes(at: i)
                guard end - pos >= v.count else { return false }
                for x in v { if b[pos] != x { return false }; pos += 1 }
                present = true
            }
            if present != (stored != nil) || pos != end { return false }
        }
        return true
    }

    /// Calls `body(name, value)` for each `Name: value\r\n` line in `range` of `b`.
    static func forEachLine(_ b: UnsafeRawBufferPointer, _ range: Range<Int>,
                            _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        var i = range.lowerBound
        while i < range.upperBound {
            var colon = i
            while colon < range.upperBound && b[colon] != 0x3A { colon += 1 }
            var e = colon
            while e + 1 < range.upperBound && !(b[e] == 0x0D && b[e + 1] == 0x0A) { e += 1 }
            guard colon + 2 <= e, e + 1 < range.upperBound else { return }
            body(UnsafeRawBufferPointer(rebasing: b[i ..< colon]), UnsafeRawBufferPointer(rebasing: b[colon + 2 ..< e]))
            i = e + 2
        }
    }
}

/// The Admin API's view of the proxy-cache store (Kong's `kong/plugins/proxy-cache/api.lua`): keys as
/// the 64 hex characters of X-Cache-Key, entries as Kong's stored object.
public enum ProxyCacheAdmin {
    /// The store's owner tag of a proxy-cache instance (as ProxyCache computes it).
    public static func pluginHash(id: String) -> Hash128 {
        Hash128(hi: fnv(id.utf8, 0xcbf29ce484222325), lo: fnv(id.utf8, 0x84222325cbf29ce4))
    }

    /// The store key for a 64-hex-character cache key; nil for anything else.
    public static func key(hex: String) -> CacheKey? {
        let u = Array(hex.utf8)
        guard u.count == 64 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in 0 ..< 32 {
            guard let h = hexNibble(u[2 * i]), let l = hexNibble(u[2 * i + 1]) else { return nil }
            bytes[i] = h << 4 | l
        }
        return bytes.withUnsafeBytes { CacheKey(bytes: $0) }
    }

    /// The entry as Kong returns it (`{status, headers, body, body_len, timestamp, ttl, version}`), or nil.
    /// `headers` holds every stored header, served or not.
    public static func entry(_ store: CacheStore, key: CacheKey, now: Int64) -> JSON? {
        let buf = CacheBuffer(capacity: 4096)
        guard let meta = store.lookup(key, now: now, into: buf), let r = CachedResponse(buf.bytes) else { return nil }
        let b = buf.bytes
        var headers = JSONObject()
        for range in [r.headers, r.droppedHeaders] {
            CachedResponse.forEachLine(b, range) { n, v in
                headers[String(decoding: n, as: UTF8.self)] = .string(String(decoding: v, as: UTF8.self))
            }
        }
        let body = UnsafeRawBufferPointer(rebasing: b[r.body])
        return ["status": JSON(r.status), "headers": .object(headers), "body": .string(String(decoding: body, as: UTF8.self)),
                "body_len": JSON(body.count), "timestamp": JSON(Int(meta.storedAt)), "ttl": JSON(Int(meta.ttl)), "version": 1]
    }
}
