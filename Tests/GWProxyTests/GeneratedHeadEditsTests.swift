import Testing
import GWHTTP
import GWPlugins
@testable import GWProxy

/// Plugin response-header edits applied to a head the gateway generated (error pages, exits).
@Suite struct GeneratedHeadEditsTests {
    let head = "HTTP/1.1 401 Unauthorized\r\nDate: x\r\nContent-Type: application/json; charset=utf-8\r\nConnection: keep-alive\r\nContent-Length: 2\r\nX-Kong-Request-Id: abc\r\n\r\n{}"

    func apply(_ edits: HeaderEdits, prefix: String = "") -> String {
        var out = FlatArray((prefix + head).utf8)
        out.rewriteHead(from: prefix.utf8.count, edits)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func endOfHeadFindsTheBody() {
        let b = FlatArray(head.utf8)
        #expect(String(decoding: b[b.endOfHead(from: 0)...], as: UTF8.self) == "{}")
        #expect(FlatArray("no blank line".utf8).endOfHead(from: 0) == 13)
    }

    @Test func setAddAndRemove() {
        var e = HeaderEdits()
        e.set("WWW-Authenticate", "Key")
        e.add("X-RateLimit-Remaining", "0")
        e.set("content-type", "text/plain")
        e.remove("date")
        let r = apply(e)
        #expect(r == "HTTP/1.1 401 Unauthorized\r\nConnection: keep-alive\r\nContent-Length: 2\r\nX-Kong-Request-Id: abc\r\nWWW-Authenticate: Key\r\nX-RateLimit-Remaining: 0\r\ncontent-type: text/plain\r\n\r\n{}")
    }

    @Test func onlyTheHeadFromStartIsTouched() {
        // A pipelined earlier response is already queued in front of this one.
        var e = HeaderEdits()
        e.remove("X-Kong-Request-Id")
        let earlier = "HTTP/1.1 200 OK\r\nX-Kong-Request-Id: old\r\n\r\n"
        let r = apply(e, prefix: earlier)
        #expect(r.hasPrefix(earlier))
        #expect(!r.dropFirst(earlier.count).contains("X-Kong-Request-Id"))
        #expect(r.hasSuffix("Content-Length: 2\r\n\r\n{}"))
    }

    @Test func pluginContextIsReusedWithoutGrowingState() {
        let ctx = PluginContext(clientIP: "127.0.0.1")
        ctx.responseHeaders.set("Retry-After", 3)
        ctx.upstreamHeaders.set("X-Consumer-ID", "c1")
        ctx.reset()
        #expect(ctx.responseHeaders.isEmpty && ctx.upstreamHeaders.isEmpty && ctx.collected.isEmpty && ctx.phases.isEmpty)
    }
}
