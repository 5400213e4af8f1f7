// basic-auth (Kong 3.10 `kong/plugins/basic-auth/access.lua`, KONG-PLUGINS.md §3), priority 1100.
// Proxy-Authorization is tried first, then Authorization: `\s*[Bb]asic\s*(.+)`, base64-decoded, split
// at the first ':'; the stored value is Kong's sha1_hex(password .. consumer_id). Every 401 carries
// `WWW-Authenticate: Basic realm="<realm>"`. No run_on_preflight (as Kong).
import CCrypto
import GWHTTP
import GWStore

final class BasicAuth: PluginHandler {
    static let name = "basic-auth"
    static let priority = 1100

    let anonymous: String?
    let hideCredentials: Bool
    let wwwAuthenticate: String
    let credentials: Credentials

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: BasicAuth.name)
        anonymous = try c.string("anonymous")
        hideCredentials = try c.bool("hide_credentials", false)
        wwwAuthenticate = "Basic realm=\"\(try c.string("realm", "service"))\""
        credentials = env.credentials
        super.init(entity: entity, priority: BasicAuth.priority)
    }

    override var phases: PluginPhases { .access }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if anonymous != nil && ctx.credential != nil { return }
        if let cred = authenticate(ctx, request) {
            if hideCredentials {
                ctx.upstreamHeaders.remove("Authorization")
                ctx.upstreamHeaders.remove("Proxy-Authorization")
            }
            ctx.authenticate(cred.consumer, credential: cred)
            return
        }
        if let anon = anonymous { ctx.authenticateAnonymous(anon, credentials); return }
        ctx.responseHeaders.set("WWW-Authenticate", wwwAuthenticate)
        ctx.error(401, "Unauthorized")
    }

    private func authenticate(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> CredentialRecord? {
        for header: StaticString in ["proxy-authorization", "authorization"] {
            guard let i = request.headers.firstIndex(of: header) else { continue }
            if let c = check(request.headers.valueBytes(at: i), ctx) { return c }
        }
        return nil
    }

    /// Parses one header value and checks the credential it names.
    private func check(_ value: HeaderBytes, _ ctx: PluginContext) -> CredentialRecord? {
        var i = value.startIndex
        while i < value.endIndex && (value[i] == 0x20 || value[i] == 0x09) { i += 1 }
        guard value.endIndex - i >= 5, value[i] == 0x42 || value[i] == 0x62,
              value[(i + 1) ..< (i + 5)].elementsEqual("asic".utf8) else { return nil }
        i += 5
        while i < value.endIndex && (value[i] == 0x20 || value[i] == 0x09) { i += 1 }
        guard i < value.endIndex, base64Decode(value[i...], into: &ctx.scratch),
              let colon = ctx.scratch.firstIndex(of: 0x3A) else { return nil }
        guard let cred = credentials.basicAuth.lookup(ctx.scratch[..<colon]) else { return nil }
        // sha1_hex(password .. consumer_id)
        ctx.scratch2.removeAll(keepingCapacity: true)
        ctx.scratch2.append(contentsOf: ctx.scratch[(colon + 1)...])
        ctx.scratch2.append(contentsOf: cred.consumer.id.utf8)
        var digest = (UInt64(0), UInt64(0), UInt64(0))   // 24 bytes ≥ SHA_DIGEST_LENGTH (20)
        let ok = withUnsafeMutableBytes(of: &digest) { d -> Bool in
            ctx.scratch2.withUnsafeBytes { src in
                _ = SHA1(src.baseAddress?.assumingMemoryBound(to: UInt8.self), src.count, d.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            guard cred.secretHash.count == 40 else { return false }
            var diff: UInt8 = 0
            for k in 0 ..< 20 {
                diff |= cred.secretHash[2 * k] ^ hex[Int(d[k] >> 4)]
                diff |= cred.secretHash[2 * k + 1] ^ hex[Int(d[k] & 15)]
            }
            return diff == 0
        }
        return ok ? cred : nil
    }
}

/// Standard base64 (padding optional); false on any other byte.
func base64Decode<C: RandomAccessCollection<UInt8>>(_ s: C, into out: inout [UInt8]) -> Bool where C.Index == Int {
    out.removeAll(keepingCapacity: true)
    var acc: UInt32 = 0, bits = 0
    var end = s.endIndex
    while end > s.startIndex && (s[end - 1] == 0x3D || s[end - 1] == 0x20) { end -= 1 }
    for c in s[s.startIndex ..< end] {
        let v: UInt32
        switch c {
        case 0x41...0x5A: v = UInt32(c - 0x41)
        case 0x61...0x7A: v = UInt32(c - 0x61 + 26)
        case 0x30...0x39: v = UInt32(c - 0x30 + 52)
        case 0x2B: v = 62
        case 0x2F: v = 63
        default: return false
        }
        acc = acc << 6 | v
        bits += 6
        if bits >= 8 { bits -= 8; out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits))) }
    }
    return true
}
