// request-size-limiting (Kong 3.10 `kong/plugins/request-size-limiting/{handler,schema}.lua`,
// KONG-PLUGINS.md §3), priority 951. A Content-Length above `allowed_payload_size` (× size_unit) is
// refused in access: 413 "Request size limit exceeded", or 417 when the client sent
// `Expect: 100-continue` (it is then told before sending the body). Without Content-Length:
// `require_content_length` → 411 "A valid Content-Length header is required"; otherwise, where Kong
// reads the whole body to measure it, the limit is handed to the data path
// (PluginContext.requestBodyLimit), which counts the chunked body's decoded bytes as they arrive and
// answers 413 the moment the limit is passed: nothing is buffered for the count. A body already read
// before access (another plugin asked for it) is measured directly.
import GWHTTP
import GWStore

final class RequestSizeLimiting: PluginHandler {
    static let name = "request-size-limiting"
    static let priority = 951
    static let message = "Request size limit exceeded"

    /// The limit in bytes.
    let allowed: Int
    let requireContentLength: Bool

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: RequestSizeLimiting.name)
        let size = try c.int("allowed_payload_size", 128)
        let unit: Int
        switch try c.string("size_unit", "megabytes") {
        case "megabytes": unit = 1 << 20
        case "kilobytes": unit = 1 << 10
        case "bytes": unit = 1
        case let u: throw PluginError("request-size-limiting: unknown size_unit '\(u)'")
        }
        let (product, overflow) = size.multipliedReportingOverflow(by: unit)
        allowed = overflow ? Int.max : product
        requireContentLength = try c.bool("require_content_length", false)
        super.init(entity: entity, priority: RequestSizeLimiting.priority)
    }

    override var phases: PluginPhases { .access }

    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        let status = request.expectsContinue ? 417 : 413
        if let cl = request.contentLength {
            if cl > allowed { ctx.error(status, RequestSizeLimiting.message) }
            return
        }
        if requireContentLength {
            ctx.exit(411, body: #"{"message":"A valid Content-Length header is required"}"#.utf8, contentType: "application/json; charset=utf-8")
            return
        }
        if let read = ctx.requestBodyReadLength {
            if read > allowed { ctx.error(status, RequestSizeLimiting.message) }
            return
        }
        ctx.limitRequestBody(allowed, status: status)
    }
}
