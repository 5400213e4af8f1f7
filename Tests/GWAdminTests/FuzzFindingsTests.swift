// Regression tests for what the libFuzzer target fuzz-declarative (Fuzz/) found in GWAdmin's YAML.
import Testing
import GWJSON
@testable import GWAdmin

@Suite struct YAMLFuzzFindingsTests {
    /// The fuzzer's seed: `.inf` parsed as a Double infinity, which YAML.emit (db_export) writes as null, so
    /// the exported document no longer read back as the imported one. Non-finite scalars stay strings now.
    @Test func nonFiniteScalarsStayStrings() throws {
        let text = "base: &b {x: 1, y: [a, b]}\nother: *b\nlist:\n  - 1\n  - 2.5\n  - true\n  - ~\n  - '0x1F'\n  - 0o17\n  - .inf\n"
        let doc = try #require(try YAML.parse(Array(text.utf8)))
        #expect(doc["list"]?[6] == .string(".inf"))
        let back = try YAML.parse(Array(YAML.emit(doc).utf8))
        #expect(back == doc)
        for s in [".nan", "-.inf", "+.INF", "1e999", "-1.5e400", "!!float .inf"] {
            let v = try YAML.parse(Array("v: \(s)".utf8))
            #expect(v?["v"]?.doubleValue == nil, "\(s)")
        }
        #expect(try YAML.parse(Array("v: 1.5e300".utf8))?["v"] == .double(1.5e300))
    }
}
