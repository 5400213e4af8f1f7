// The blob proxy-cache stores per entry (one copy in the shared CacheStore):
//   u8 version(1) | u16 status | u16 header count | per header: u16 name length, u32 value length, name, value
//   | u16 vary count | per Vary name: u16 name length, u32 value length (0xFFFFFFFF: absent), name, the
//   request's value(s) joined by ", " | u32 body length | body
// Integers are little-endian. Decoding checks every length against the blob (a torn or foreign blob is
// a miss, never a crash).
import GWHTTP
import GWJSON
import GWPluginState

struct CachedResponse {
    let status: Int
    let headers: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)]
    let vary: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>?)]
    let body: ArraySlice<UInt8>

    static let hopByHop: [String] = ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                                     "trailers", "transfer-encoding", "upgrade", "content-length"]

    // MARK: encoding

    static func put16(_ v: Int, _ out: inout [UInt8]) { out.append(UInt8(v & 0xFF)); out.append(UInt8((v >> 8) & 0xFF)) }
    static func put32(_ v: UInt32, _ out: inout [UInt8]) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> UInt32(s)) & 0xFF)) } }

    /// Writes everything but the body; `bodyLength` is the response's Content-Length.
    static func beginEncoding(into out: inout [UInt8], status: Int, headers: borrowing HTTPHeaders, vary: [[UInt8]],
                              request: borrowing HTTPHeaders, bodyLength: Int) {
        out.removeAll(keepingCapacity: true)
        out.append(1)
        put16(status, &out)
        var kept: [Int] = []
        for i in 0 ..< headers.count {
            let skip = hopByHop.contains { headers.nameEquals(at: i, $0) }
            if !skip { kept.append(i) }
        }
        put16(kept.count, &out)
        for i in kept {
            let n = headers.nameBytes(at: i), v = headers.valueBytes(at: i)
            put16(n.count, &out); put32(UInt32(v.count), &out)
            out.append(contentsOf: n); out.append(contentsOf: v)
        }
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
        guard let r = CachedResponse(blob.withUnsafeBytes { Array($0) }[...]) else { return false }
        _ = r
        return true
    }

    // MARK: decoding

    init?(_ raw: UnsafeRawBufferPointer) { self.init(Array(raw)[...]) }

    init?(_ b: ArraySlice<UInt8>) {
        var p = b.startIndex
        func u16() -> Int? { guard p + 2 <= b.endIndex else { return nil }; defer { p += 2 }; return Int(b[p]) | Int(b[p + 1]) << 8 }
        func u32() -> UInt32? {
            guard p + 4 <= b.endIndex else { return nil }
            defer { p += 4 }
            return UInt32(b[p]) | UInt32(b[p + 1]) << 8 | UInt32(b[p + 2]) << 16 | UInt32(b[p + 3]) << 24
        }
        func take(_ n: Int) -> ArraySlice<UInt8>? { guard n >= 0, p + n <= b.endIndex else { return nil }; defer { p += n }; return b[p ..< p + n] }
        guard p < b.endIndex, b[p] == 1 else { return nil }
        p += 1
        guard let st = u16(), let hc = u16() else { return nil }
        var hs: [(ArraySlice<UInt8>, ArraySlice<UInt8>)] = []
        for _ in 0 ..< hc {
            guard let nl = u16(), let vl = u32(), let n = take(nl), let v = take(Int(vl)) else { return nil }
            hs.append((n, v))
        }
        guard let vc = u16() else { return nil }
        var vs: [(ArraySlice<UInt8>, ArraySlice<UInt8>?)] = []
        for _ in 0 ..< vc {
            guard let nl = u16(), let vl = u32(), let n = take(nl) else { return nil }
            if vl == 0xFFFF_FFFF { vs.append((n, nil)) } else {
                guard let v = take(Int(vl)) else { return nil }
                vs.append((n, v))
            }
        }
        guard let bl = u32(), Int(bl) == b.endIndex - p else { return nil }
        status = st
        headers = hs.map { (name: $0.0, value: $0.1) }
        vary = vs.map { (name: $0.0, value: $0.1) }
        body = b[p...]
    }

    /// The request carries the same values for the Vary headers as the one whose response was stored.
    func varyMatches(_ request: borrowing HTTPHeaders) -> Bool {
        for (name, stored) in vary {
            var value: [UInt8] = [], present = false
            for i in 0 ..< request.count where request.nameBytes(at: i).map({ ($0 &- 0x41) < 26 ? $0 | 0x20 : $0 }).elementsEqual(name) {
                if present { value.append(contentsOf: ", ".utf8) }
                value.append(contentsOf: request.valueBytes(at: i))
                present = true
            }
            if present != (stored != nil) { return false }
            if let stored, !stored.elementsEqual(value) { return false }
        }
        return true
    }

    /// Adds the stored headers to a Hit's response (Kong drops hop-by-hop headers and the stored
    /// rate-limit state: this request's own rate-limit headers are set by that plugin).
    func addHeaders(to edits: inout HeaderEdits) {
        var seen: [String] = []
        for (n, v) in headers {
            let lname = String(decoding: n, as: UTF8.self).lowercased()
            if lname.hasPrefix("x-ratelimit-") || lname.hasPrefix("ratelimit-") || lname == "retry-after" { continue }
            let name = lname == "content-type" ? "Content-Type" : String(decoding: n, as: UTF8.self)
            // Kong sets each stored header (replacing the gateway's own Date, Server, ...); a repeated name
            // (Set-Cookie) keeps every value.
            if seen.contains(lname) { edits.add(name, String(decoding: v, as: UTF8.self)) } else {
                seen.append(lname)
                edits.set(name, String(decoding: v, as: UTF8.self))
            }
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
    public static func entry(_ store: CacheStore, key: CacheKey, now: Int64) -> JSON? {
        let buf = CacheBuffer(capacity: 4096)
        guard let meta = store.lookup(key, now: now, into: buf), let r = CachedResponse(buf.bytes) else { return nil }
        var headers = JSONObject()
        for (n, v) in r.headers { headers[String(decoding: n, as: UTF8.self)] = .string(String(decoding: v, as: UTF8.self)) }
        return ["status": JSON(r.status), "headers": .object(headers), "body": .string(String(decoding: r.body, as: UTF8.self)),
                "body_len": JSON(r.body.count), "timestamp": JSON(Int(meta.storedAt)), "ttl": JSON(Int(meta.ttl)), "version": 1]
    }
}
