// What the libFuzzer target fuzz-path (Fuzz/) showed about KongPath.normalize, kept as tests.
import Testing
@testable import GWRouter

/// normalize decodes in one pass, as Kong's (kong/tools/uri.lua): a `%` left undecoded can meet decoded hex
/// digits and form a new escape, which a second pass would decode. Routing uses one pass, as Kong does; the
/// fuzz target checks idempotence everywhere else.
@Test func normalizeIsOnePass() {
    #expect(KongPath.normalize(Array("/%6%66".utf8)) == "/%6f")
    #expect(KongPath.normalize(Array("/%6f".utf8)) == "/o")
    #expect(KongPath.normalize(Array("/4%3%61".utf8)) == "/4%3a")
    #expect(KongPath.normalize(Array("/4%3a".utf8)) == "/4%3A")
    // otherwise idempotent, and no dot segment survives decoding
    for p in ["/a/%2e%2E/b", "/%2E/x//y/./z/..", "/a%2Fb/%7e", "//%41%25%32%35"] {
        let once = KongPath.normalize(Array(p.utf8))
        #expect(KongPath.normalize(Array(once.utf8)) == once, "\(p)")
        #expect(!once.split(separator: "/").contains { $0 == "." || $0 == ".." }, "\(p)")
    }
}
