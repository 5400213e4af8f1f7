import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// Parses one raw request; the parser owns the head (`parser.head`).
func parse(_ raw: String) -> HTTPRequestParser {
    let p = HTTPRequestParser()
    var bytes = Array(raw.utf8)
    bytes.withUnsafeMutableBytes { b in
        switch p.execute(UnsafeRawBufferPointer(b)) {
        case .head: break
        default: preconditionFailure("not a request head: \(raw)")
        }
    }
    return p
}

func get(_ target: String, _ headers: [(String, String)] = [], method: String = "GET") -> HTTPRequestParser {
    var raw = "\(method) \(target) HTTP/1.1\r\nHost: test\r\n"
    for (n, v) in headers { raw += "\(n): \(v)\r\n" }
    return parse(raw + "\r\n")
}

/// Handlers under test: the written ones plus any extra (test-only) handlers.
func compile(_ snap: ConfigSnapshot, extra: [(String, Int, PluginFactory)] = []) -> PluginSet {
    PluginSet(snapshot: snap, previous: nil, shared: nil,
              registry: PluginRegistry.implemented.map { ($0.key, $0.value.priority, $0.value.factory) } + extra)
}

let uuidA = "11111111-1111-4111-8111-111111111111"

func plugin(_ name: String, id: String = "p-\(Int.random(in: 0 ..< 1_000_000_000))", route: String? = nil, service: String? = nil,
            consumer: String? = nil, enabled: Bool = true, _ config: JSON = [:]) -> Plugin {
    Plugin(id: id, name: name, routeID: route, serviceID: service, consumerID: consumer, config: config, enabled: enabled)
}

/// Runs access for a request on (route, service) and returns the context.
@discardableResult
func run(_ set: PluginSet, _ req: HTTPRequestParser, route: String? = "r1", service: String? = "s1", now: Int64 = 1_700_000_000,
         ctx: PluginContext = PluginContext(clientIP: "127.0.0.1")) -> PluginContext {
    ctx.reset()
    ctx.routeID = route; ctx.serviceID = service; ctx.now = now
    PluginRuntime.access(set.plan(routeID: route, serviceID: service), ctx, req.head)
    ctx.materializeTypedHeaders()   // typed outputs as the edits a header_filter would see
    return ctx
}
