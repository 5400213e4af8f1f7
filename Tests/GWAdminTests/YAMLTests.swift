import Testing
import GWJSON
@testable import GWAdmin

@Suite struct YAMLTests {
    func parse(_ s: String) throws(YAML.ParseError) -> JSON? { try YAML.parse(Array(s.utf8)) }

    @Test func implicitScalarTypes() throws {
        let doc = try parse("""
        n1: ~
        n2: null
        n3:
        b1: true
        b2: No
        b3: on
        i1: 42
        i2: -7
        i3: 0x1F
        i4: 0b101
        i5: 017
        i6: 1_000
        f1: 1.5
        f2: -2.5e3
        f3: .inf
        s1: hello world
        s2: "42"
        s3: 'true'
        s4: 1.2.3
        s5: 10.0.0.1:8080
        big: 99999999999999999999
        """)
        let o = try #require(doc)
        #expect(o["n1"] == .null && o["n2"] == .null && o["n3"] == .null)
        #expect(o["b1"] == .bool(true) && o["b2"] == .bool(false) && o["b3"] == .bool(true))
        #expect(o["i1"] == .int(42) && o["i2"] == .int(-7) && o["i3"] == .int(31) && o["i4"] == .int(5))
        #expect(o["i5"] == .int(15) && o["i6"] == .int(1000))
        #expect(o["f1"] == .double(1.5) && o["f2"] == .double(-2500) && o["f3"] == .string(".inf"))  // non-finite: no JSON form
        #expect(o["s1"] == "hello world" && o["s2"] == "42" && o["s3"] == "true")
        #expect(o["s4"] == "1.2.3" && o["s5"] == "10.0.0.1:8080")
        #expect(o["big"]?.doubleValue != nil || o["big"]?.stringValue != nil)
    }

    @Test func explicitTagsAndBlockScalars() throws {
        let o = try #require(try parse("a: !!str 123\nb: !!int \"7\"\nc: |\n  line1\n  line2\nd: >\n  folded\n  text\n"))
        #expect(o["a"] == "123" && o["b"] == .int(7))
        #expect(o["c"] == "line1\nline2\n" && o["d"] == "folded text\n")
    }

    @Test func collectionsKeepOrderAndFlowStyle() throws {
        let o = try #require(try parse("z: 1\na: [x, {k: v}]\nm: {}\nl: []\n"))
        #expect(o.objectValue?.pairs.map(\.key) == ["z", "a", "m", "l"])
        #expect(o["a"] == .array(["x", .object(JSONObject([("k", "v")]))]))
        #expect(o["m"] == .object(JSONObject()) && o["l"] == .array([]))
    }

    @Test func anchorsAndAliasesExpand() throws {
        let o = try #require(try parse("base: &b {host: a.test, port: 80}\ncopy: *b\nname: &n svc\nagain: *n\n"))
        #expect(o["copy"] == o["base"] && o["again"] == "svc")
        #expect(throws: YAML.ParseError.self) { try parse("a: *missing\n") }
    }

    @Test func aliasExpansionIsBounded() throws {
        var s = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 { s += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        do {
            _ = try parse(s)
            Issue.record("a billion-laughs document parsed")
        } catch {
            #expect(error.description.contains("more than"))
        }
    }

    @Test func errorsNameTheLine() throws {
        do {
            _ = try parse("a: 1\nb: [unclosed\nc: 2\n")
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("line"))
        }
        #expect(throws: YAML.ParseError.self) { try parse("a: 1\n---\nb: 2\n") }
        #expect(try parse("") == nil)
        #expect(try parse("# only a comment\n") == nil)
    }

    @Test func emitRoundTrips() throws {
        var o = JSONObject()
        o["_format_version"] = "3.0"
        o["looks_like_int"] = "1"
        o["looks_like_bool"] = "true"
        o["looks_like_null"] = "null"
        o["text"] = "quote \" backslash \\ newline \n tab \t unicode é ✓"
        o["n"] = .int(-3)
        o["d"] = .double(2.5)
        o["b"] = .bool(false)
        o["nothing"] = .null
        o["list"] = .array([.int(1), "two", .object(JSONObject([("k", .array([]))]))])
        o["empty"] = .object(JSONObject())
        o["1"] = "numeric key"
        let v = JSON.object(o)
        let text = YAML.emit(v)
        #expect(!text.hasPrefix("{"))          // block style, not the JSON fallback
        #expect(try parse(text) == v)
    }
}
