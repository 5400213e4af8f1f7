// http-log (Kong 3.10 `kong/plugins/http-log/{handler,schema}.lua`, KONG-PLUGINS.md §7), priority 12.
// Each entry joins the worker's queue named as Kong names it (`endpoint:method:content_type:timeout:
// keepalive:retry_count`), so instances sending to the same server share one queue; HTTPLogSender
// delivers it off the request path. The deprecated `queue_size` / `flush_timeout` map to
// `queue.max_batch_size` / `queue.max_coalescing_delay` when those keep their defaults (Kong's
// Queue.get_plugin_params); `retry_count` does nothing (as in Kong). The endpoint's host is an IP
// literal, localhost, or a name the master resolves (LogHosts; no answer yet: entries dropped and
// counted). The Admin API refuses https endpoints (no TLS yet) and custom_fields_by_lua.
import GWStore

final class HTTPLog: PluginHandler {
    static let name = "http-log"
    static let priority = 12

    let queueKey: String
    /// nil: the endpoint's host is a name without an address yet.
    let target: HTTPLogTarget?
    let host: String
    let queueConfig: LogQueueConfig
    private var sender: HTTPLogSender?

    init(entity: Plugin, env: PluginEnvironment) throws(PluginError) {
        let c = PluginConfig(entity.config, plugin: HTTPLog.name)
        guard let endpoint = try c.string("http_endpoint") else { throw PluginError("http-log: config.http_endpoint is required") }
        let method = try c.string("method", "POST")
        let contentType = try c.string("content_type", "application/json")
        let timeout = try c.int("timeout", 10000)
        let keepalive = try c.int("keepalive", 60000)
        var headers: [(String, String)] = []
        if let h = c.object("headers"), let o = h.json.objectValue {
            for (k, v) in o.sortedByKey() {
                guard let s = v.stringValue else { throw PluginError("http-log: config.headers values must be strings") }
                headers.append((k, s))
            }
        }
        guard let parts = HTTPLogTarget.split(endpoint) else { throw PluginError("http-log: http_endpoint must be an http:// URL") }
        let t = HTTPLogTarget.parse(endpoint: endpoint, method: method, contentType: contentType, timeoutMs: timeout,
                                    keepaliveMs: keepalive, headers: headers) { h, p in LogHosts.address(h, p, env) }
        guard t != nil || LogHosts.isName(parts.host) else { throw PluginError("http-log: invalid http_endpoint host") }
        host = parts.host
        target = t
        var q = LogQueueConfig()
        if let qc = c.object("queue") {
            q.maxBatchSize = try qc.int("max_batch_size", 1)
            q.maxCoalescingDelay = try qc.double("max_coalescing_delay") ?? 1
            q.maxEntries = try qc.int("max_entries", 10000)
            q.maxBytes = try qc.double("max_bytes").map { Int($0) }
            q.maxRetryTime = try qc.double("max_retry_time") ?? 60
            q.initialRetryDelay = try qc.double("initial_retry_delay") ?? 0.01
            q.maxRetryDelay = try qc.double("max_retry_delay") ?? 60
            q.concurrencyLimit = try qc.int("concurrency_limit", 1)
        }
        let queueSize = try c.double("queue_size"), flushTimeout = try c.double("flush_timeout")
        if let n = queueSize, q.maxBatchSize == 1 { q.maxBatchSize = max(1, Int(n)) }
        if let d = flushTimeout, q.maxCoalescingDelay == 1 { q.maxCoalescingDelay = d }
        queueConfig = q
        func lua(_ d: Double?) -> String { d.map { $0 == $0.rounded() ? String(Int64($0)) : String($0) } ?? "nil" }
        queueKey = "\(endpoint):\(method):\(contentType):\(timeout):\(keepalive):\(lua(try c.double("retry_count")))"
        super.init(entity: entity, priority: HTTPLog.priority)
    }

    override var phases: PluginPhases { .log }

    override func log(_ ctx: PluginContext, status: Int) {
        if sender == nil {
            guard let target else { LogSinks.worker?.dropUnresolved(HTTPLog.name, host); return }
            sender = LogSinks.worker?.httpQueue(key: queueKey, target: target, config: queueConfig)
        }
        sender?.enqueue(ctx.logEntry)
    }
}
