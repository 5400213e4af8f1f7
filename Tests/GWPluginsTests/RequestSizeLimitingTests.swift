import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// Kong's spec/03-plugins/12-request-size-limiting/01-access_spec.lua, without sockets.
@Suite struct RequestSizeLimitingTests {
    func limited(_ config: JSON, _ raw: String) -> PluginContext {
        let s = compile(ConfigSnapshot(plugins: [plugin("request-size-limiting", route: "r1", config)]))
        #expect(s.errors.isEmpty)
        return run(s, parse(raw))
    }

    @Test func contentLength() {
        let cfg: JSON = ["allowed_payload_size": 10, "size_unit": "bytes"]
        #expect(limited(cfg, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n").exitStatus == 0)
        let over = limited(cfg, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        #expect(over.exitStatus == 413 && over.exitMessage == "Request size limit exceeded")
        #expect(limited(cfg, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n").exitStatus == 417)
        #expect(limited(["allowed_payload_size": 1, "size_unit": "kilobytes"], "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n").exitStatus == 413)
        #expect(limited(["allowed_payload_size": 1], "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n").exitStatus == 0)
    }

    @Test func withoutContentLength() {
        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        let streaming = limited(["allowed_payload_size": 10, "size_unit": "bytes"], chunked)
        #expect(streaming.exitStatus == 0 && streaming.requestBodyLimit == 10 && streaming.requestBodyLimitStatus == 413)
        let required = limited(["require_content_length": true], chunked)
        #expect(required.exitStatus == 411)
    }
}
