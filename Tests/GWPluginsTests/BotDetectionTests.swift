import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// bot-detection (Kong's spec/03-plugins/21-bot-detection/01-access_spec.lua), without sockets.
@Suite struct BotDetectionTests {
    func set(_ name: String, _ config: JSON) -> PluginSet { compile(ConfigSnapshot(plugins: [plugin(name, route: "r1", config)])) }

    // MARK: bot-detection

    func bot(_ s: PluginSet, _ ua: String?) -> Int {
        let c = run(s, get("/", ua.map { [("User-Agent", $0)] } ?? []))
        return c.exitStatus == 0 ? 200 : c.exitStatus
    }

    @Test func botRules() {
        let s = set("bot-detection", [:])
        for ua in [nil, "curl/7.43.0", "HelloWorld", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36", ""] {
            #expect(bot(s, ua) == 200, "\(ua ?? "nil")")
        }
        for ua in ["Googlebot/2.1 (+http://www.google.com/bot.html)", "facebookexternalhit/1.1", "okhttp/4.9.0",
                   "Go-http-client/1.1", "axios/1.2.0", "Python-urllib/3.8", "Apache-HttpClient/4.5", "Twitterbot/1.0"] {
            #expect(bot(s, ua) == 403, "\(ua)")
        }
        let c = run(s, get("/", [("User-Agent", "a"), ("user-agent", "b")]))
        #expect(c.exitStatus == 400 && c.exitMessage == "Only one User-Agent header allowed")
        #expect(run(s, get("/", [("User-Agent", "Googlebot/2.1")])).exitMessage == "Forbidden")
    }

    @Test func botAllowDenyAndCache() {
        let s = set("bot-detection", ["allow": ["facebookexternalhit/1.1"], "deny": ["^Hello", "World$"]])
        #expect(bot(s, "facebookexternalhit/1.1") == 200)
        #expect(bot(s, "Hello there") == 403 && bot(s, "the World") == 403 && bot(s, "a Hello World b") == 200)
        #expect(bot(s, "  Hello there  ") == 403, "stripped before matching")
        for _ in 0 ..< 3 { #expect(bot(s, "Hello there") == 403 && bot(s, "Mozilla") == 200) }
        // Many distinct agents: each verdict right whatever the table holds.
        for i in 0 ..< 3 * BotDetection.cacheSlots where i % 7 == 0 {
            #expect(bot(s, i % 2 == 0 ? "Hello \(i)" : "Mozilla \(i)") == (i % 2 == 0 ? 403 : 200))
        }
        let bad = compile(ConfigSnapshot(plugins: [plugin("bot-detection", route: "r1", ["deny": ["(unclosed"]])]))
        #expect(bad.errors.count == 1)
    }

    @Test func hashSpreads() {
        var seen = Set<UInt64>()
        for i in 0 ..< 10000 {
            let s = Array("agent-\(i)".utf8)
            seen.insert(s.withUnsafeBytes { BotDetection.hash($0).0 })
        }
        #expect(seen.count == 10000)
    }
}
