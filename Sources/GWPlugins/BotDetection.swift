// bot-detection (Kong 3.10 `kong/plugins/bot-detection/handler.lua`, KONG-PLUGINS.md §3), priority 2500.
// The User-Agent (whitespace stripped at both ends) is examined in Kong's order: an `allow` regex that
// finds it → pass; then a `deny` regex → 403; then Kong's built-in rules (BotRules) → 403 "Forbidden".
// No User-Agent → pass; more than one → 400 "Only one User-Agent header allowed".
// Regexes are PCRE2 in byte mode (ngx.re without "u"), unanchored, compiled once per configuration.
// Kong caches verdicts per user agent (an LRU of 10^4 per configuration); here a fixed table of
// `cacheSlots` verdicts (64 KiB, made on first use) indexed by a 128-bit hash of the stripped agent, a new agent overwriting its
// slot (bounded memory; a hash collision could only hand one agent another's verdict, and the client
// chooses its User-Agent anyway). Worker-loop confined: the table belongs to this instance.
import GWHTTP
import GWStore

final class BotDetection: PluginHandler {
    static let name = "bot-detection"
    static let priority = 2500
    static let cacheSlots = 4096

    enum Verdict: UInt64 { case pass = 1, deny = 2 }

    let allow: [Regex]
    let deny: [Regex]
    let bots: [Regex]
    /// `cacheSlots` entries of two words: (hash₁, hash₂ with the verdict in its low 2 bits); 0 = empty.
    /// Made on the instance's first examined agent (an instance that never sees traffic costs nothing).
    private var cache: [UInt64] = []

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: BotDetection.name)
        func compile(_ patterns: [String], _ field: String) throws(PluginError) -> [Regex] {
            var out: [Regex] = []
            for p in patterns {
                let (re, err) = Regex.compile(p, utf: false)
                guard let re else { throw PluginError("bot-detection: config.\(field) '\(p)' is not a valid regex: \(err ?? "")") }
                out.append(re)
            }
            return out
        }
        allow = try compile(try c.strings("allow") ?? [], "allow")
        deny = try compile(try c.strings("deny") ?? [], "deny")
        bots = try compile(BotRules.bots, "rules")
        super.init(entity: entity, priority: BotDetection.priority)
    }

    override var phases: PluginPhases { .access }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        let name: StaticString = "user-agent"
        guard let i = request.headers.firstIndex(of: name) else { return }
        if request.headers.firstIndex(of: name, from: i + 1) != nil {
            ctx.error(400, "Only one User-Agent header allowed")
            return
        }
        let f = request.headers.fields[i]
        let v: Verdict = request.headers.storage.withUnsafeBytes { st in
            var lo = Int(f.valueStart), hi = Int(f.valueStart + f.valueLength)
            while lo < hi && BotDetection.isSpace(st[lo]) { lo += 1 }
            while hi > lo && BotDetection.isSpace(st[hi - 1]) { hi -= 1 }
            return verdict(UnsafeRawBufferPointer(rebasing: st[lo ..< hi]))
        }
        if v == .deny { ctx.error(403, "Forbidden") }
    }

    /// Kong's strip: space and \t \n \v \f \r.
    @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    private func verdict(_ agent: UnsafeRawBufferPointer) -> Verdict {
        let (h1, h2) = BotDetection.hash(agent)
        let key2 = h2 & ~3
        let slot = Int(h1 & UInt64(BotDetection.cacheSlots - 1)) * 2
        if cache.isEmpty { cache = [UInt64](repeating: 0, count: 2 * BotDetection.cacheSlots) }
        if cache[slot] == h1, cache[slot + 1] & ~3 == key2, let v = Verdict(rawValue: cache[slot + 1] & 3) { return v }
        let v = examine(agent)
        cache[slot] = h1
        cache[slot + 1] = key2 | v.rawValue
        return v
    }

    /// Kong's examine_agent.
    func examine(_ agent: UnsafeRawBufferPointer) -> Verdict {
        for re in allow where re.matches(agent) { return .pass }
        for re in deny where re.matches(agent) { return .deny }
        for re in bots where re.matches(agent) { return .deny }
        return .pass
    }

    /// Two 64-bit hashes of `bytes`, 8 bytes a step.
    static func hash(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        let n = bytes.count
        var a: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(n), b: UInt64 = 0xC2B2_AE3D_27D4_EB4F &+ UInt64(n)
        var i = 0
        @inline(__always) func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        while i + 8 <= n {
            let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            a = rotl(a ^ w, 29) &* 0xBF58_476D_1CE4_E5B9
            b = rotl(b ^ w, 31) &* 0x94D0_49BB_1331_11EB
            i += 8
        }
        var tail: UInt64 = 0
        var s: UInt64 = 0
        while i < n { tail |= UInt64(bytes[i]) << s; s += 8; i += 1 }
        a = rotl(a ^ tail, 29) &* 0xBF58_476D_1CE4_E5B9
        b = rotl(b ^ tail, 31) &* 0x94D0_49BB_1331_11EB
        return (mix64(a), mix64(b ^ a))
    }
}
