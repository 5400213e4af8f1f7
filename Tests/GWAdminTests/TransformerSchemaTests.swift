import Testing
import GWJSON
@testable import GWAdmin

/// Kong's spec/03-plugins/36-request-transformer/01-schema_spec.lua and the response-transformer schema,
/// plus this gateway's write-time refusals (body/json transforms, unsupported templates).
@Suite struct TransformerSchemaTests {
    func post(_ h: Harness, _ name: String, _ config: JSON) -> (Int, JSON) { h.req("POST", "/plugins", ["name": .string(name), "config": config]) }

    @Test func requestTransformerDefaults() throws {
        let h = try Harness()
        let r = post(h, "request-transformer", [:])
        #expect(r.0 == 201)
        let empty: JSON = ["body": [], "headers": [], "querystring": []]
        #expect(r.1["config"]?["remove"] == empty && r.1["config"]?["add"] == empty && r.1["config"]?["append"] == empty)
        #expect(r.1["config"]?["replace"] == ["body": [], "headers": [], "querystring": [], "uri": .null])
        #expect(r.1["config"]?["http_method"] == .null)
    }

    @Test func requestTransformerValidation() throws {
        let h = try Harness()
        var r = post(h, "request-transformer", ["http_method": "HELLO!"])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["http_method"] == "invalid value: HELLO!")
        r = post(h, "request-transformer", ["add": ["querystring": ["uri_param1:$(uri_captures.user1)", "uri_param2:value"]]])
        #expect(r.0 == 201)
        r = post(h, "request-transformer", ["add": ["querystring": ["uri_param2:"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["add"]?["querystring"] == ["key 'uri_param2' has no value"])
        r = post(h, "request-transformer", ["add": ["headers": ["novalue"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["add"]?["headers"] == ["invalid value: novalue"])
        r = post(h, "request-transformer", ["add": ["headers": ["bad header:v"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["add"]?["headers"] == ["'bad header' is not a valid header"])
        r = post(h, "request-transformer", ["rename": ["headers": ["x-a:x b"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["rename"]?["headers"] == ["'x b' is not a valid header"])
        r = post(h, "request-transformer", ["remove": ["headers": ["x y"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["remove"]?["headers"] == ["'x y' is not a valid header"])
    }

    @Test func requestTransformerRefusals() throws {
        let h = try Harness()
        var r = post(h, "request-transformer", ["add": ["body": ["a:$(type(headers.x))"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["add"]?["body"]?.stringValue?.contains("type(headers.x)") == true)
        #expect(post(try Harness(), "request-transformer", ["add": ["body": ["a:b"]]]).0 == 201)
        r = post(h, "request-transformer", ["add": ["querystring": ["uri_param2:$(uri_captures user2)"]]])
        #expect(r.0 == 400)
        #expect(r.1["fields"]?["config"]?["add"]?["querystring"]?.stringValue?.hasPrefix("value '$(uri_captures user2)' is not in supported format") == true)
        r = post(h, "request-transformer", ["append": ["headers": ["x-t:$(type(headers.x))"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["append"]?["headers"]?.stringValue?.contains("type(headers.x)") == true)
        r = post(h, "request-transformer", ["replace": ["uri": "/a/$(10 * uri_captures.x)"]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["replace"]?["uri"] != nil)
        #expect(post(try Harness(), "request-transformer", ["http_method": "GET"]).0 == 201)
        r = post(h, "request-transformer", ["http_method": "POST", "replace": ["uri": "/u/$(uri_captures[1] or \"x\")"],
                                           "add": ["headers": ["x-h:$(headers[\"X-Foo\"]) and $(query_params.q)"]]])
        #expect(r.0 == 201)
    }

    @Test func responseTransformer() throws {
        let h = try Harness()
        var r = post(h, "response-transformer", [:])
        #expect(r.0 == 201)
        #expect(r.1["config"]?["add"] == ["json": [], "json_types": [], "headers": []])
        #expect(r.1["config"]?["remove"] == ["json": [], "headers": []])
        #expect(r.1["config"]?["rename"] == ["json": [], "headers": []])
        r = post(try Harness(), "response-transformer", ["add": ["headers": ["x-a:1"]], "remove": ["headers": ["x-b"]], "rename": ["headers": ["x-c:x-d"]]])
        #expect(r.0 == 201)
        r = post(h, "response-transformer", ["add": ["headers": ["nocolon"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["add"]?["headers"] == ["invalid value: nocolon"])
        r = post(h, "response-transformer", ["rename": ["headers": ["x-c:x d"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["rename"]?["headers"] == ["'x d' is not a valid header"])
        r = post(h, "response-transformer", ["add": ["json_types": ["float"]]])
        #expect(r.0 == 400 && r.1["fields"]?["config"]?["add"]?["json_types"] == ["expected one of: boolean, number, string"])
        #expect(post(try Harness(), "response-transformer", ["remove": ["json": ["url"]]]).0 == 201)
        #expect(post(try Harness(), "response-transformer", ["append": ["json": ["a:1"], "json_types": ["number"]]]).0 == 201)
    }
}
