import Testing
import GWHTTP
import GWJSON
import GWStore
@testable import GWPlugins

/// A test-only handler that names the scope it was configured on in an upstream header, and can
/// authenticate a consumer (like Kong's precedence spec, spec/02-integration/15-plugins-iterator).
final class Tagger: PluginHandler {
    let tag: String
    init(_ e: Plugin) { tag = e.config["tag"]?.stringValue ?? "?"; super.init(entity: e, priority: 800) }
    override var phases: PluginPhases { [.access, .headerFilter, .log] }
    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if tag == "boom" { throw PluginError("boom") }
        ctx.upstreamHeaders.set("X-Tag", tag)
    }
    override func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int, headers: borrowing HTTPHeaders) {
        ctx.responseHeaders.add("X-Filtered", tag)
    }
}

/// Authenticates the consumer named by the `X-Who` header (priority above the tagger).
final class Who: PluginHandler {
    let consumers: Credentials
    init(_ e: Plugin, _ env: PluginEnvironment) { consumers = env.credentials; super.init(entity: e, priority: 1000) }
    override var phases: PluginPhases { .access }
    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        guard let i = request.headers.firstIndex(of: "x-who") else { return }
        if let c = consumers.consumer(reference: request.headers.value(at: i)) { ctx.authenticate(c, credential: nil) }
    }
}

let testHandlers: [(String, Int, PluginFactory)] = [
    ("tagger", 800, { @Sendable e, _ in Tagger(e) }),
    ("who", 1000, { @Sendable e, env in Who(e, env) }),
]

@Suite struct PrecedenceTests {
    func tagger(_ tag: String, route: String? = nil, service: String? = nil, consumer: String? = nil, enabled: Bool = true) -> Plugin {
        plugin("tagger", route: route, service: service, consumer: consumer, enabled: enabled, ["tag": .string(tag)])
    }

    /// All eight levels, each removed in turn from the most specific down.
    @Test func eightLevels() {
        let c = Consumer(id: "c1", username: "alice")
        var levels: [Plugin] = [
            tagger("1", route: "r1", service: "s1", consumer: "c1"), tagger("2", route: "r1", consumer: "c1"),
            tagger("3", service: "s1", consumer: "c1"), tagger("4", route: "r1", service: "s1"), tagger("5", consumer: "c1"),
            tagger("6", route: "r1"), tagger("7", service: "s1"), tagger("8"),
        ]
        let who = plugin("who")
        for expected in 1 ... 8 {
            let set = compile(ConfigSnapshot(consumers: [c], plugins: levels + [who]), extra: testHandlers)
            let ctx = run(set, get("/", [("X-Who", "alice")]))
            #expect(ctx.upstreamHeaders.value(of: "X-Tag") == String(expected), "level \(expected)")
            levels.removeFirst()
        }
    }

    @Test func withoutConsumerConsumerScopesDoNotApply() {
        let c = Consumer(id: "c1", username: "alice")
        let set = compile(ConfigSnapshot(consumers: [c], plugins: [tagger("5", consumer: "c1"), tagger("6", route: "r1"),
                                                                    plugin("who")]), extra: testHandlers)
        #expect(run(set, get("/")).upstreamHeaders.value(of: "X-Tag") == "6")
        #expect(run(set, get("/", [("X-Who", "alice")])).upstreamHeaders.value(of: "X-Tag") == "5",
                "consumer-only ranks above route-only (Kong #14726)")
        #expect(run(set, get("/"), route: "r2", service: "s2").upstreamHeaders.value(of: "X-Tag") == nil)
    }

    @Test func disabledInstancesNeverShadow() {
        let set = compile(ConfigSnapshot(plugins: [tagger("6", route: "r1", enabled: false), tagger("7", service: "s1"), tagger("8")]),
                          extra: testHandlers)
        #expect(run(set, get("/")).upstreamHeaders.value(of: "X-Tag") == "7")
        #expect(run(set, get("/"), route: "r9", service: "s9").upstreamHeaders.value(of: "X-Tag") == "8")
    }

    @Test func routeAndServiceMeansOneEntityWithBoth() {
        let set = compile(ConfigSnapshot(plugins: [tagger("4", route: "r1", service: "s1"), tagger("7", service: "s1")]),
                          extra: testHandlers)
        #expect(run(set, get("/")).upstreamHeaders.value(of: "X-Tag") == "4")
        #expect(run(set, get("/"), route: "r2", service: "s1").upstreamHeaders.value(of: "X-Tag") == "7")
    }

    @Test func exitSkipsLaterAccessButCollectsThem() {
        // key-auth (1250) refuses; the tagger (800) is collected, its access skipped, its header_filter runs.
        let set = compile(ConfigSnapshot(plugins: [plugin("key-auth", route: "r1"), tagger("6", route: "r1")]), extra: testHandlers)
        let ctx = run(set, get("/"))
        #expect(ctx.exitStatus == 401 && ctx.upstreamHeaders.value(of: "X-Tag") == nil)
        #expect(ctx.collected.count == 2 && ctx.phases.contains(.headerFilter))
        PluginRuntime.headerFilter(ctx, PluginRuntime.noRequest, status: 401, headers: HTTPHeaders())
        #expect(ctx.responseHeaders.value(of: "X-Filtered") == "6")
    }

    @Test func failingHandlerIs500AndStopsAccess() {
        let set = compile(ConfigSnapshot(plugins: [tagger("boom", route: "r1")]), extra: testHandlers)
        let ctx = run(set, get("/"))
        #expect(ctx.exitStatus == 500 && ctx.exitMessage == "An unexpected error occurred" && ctx.failure != nil)
    }

    @Test func routerMissRunsGlobalOnly() {
        let set = compile(ConfigSnapshot(plugins: [tagger("8"), tagger("6", route: "r1")]), extra: testHandlers)
        let ctx = PluginContext(clientIP: "127.0.0.1")
        PluginRuntime.collectGlobal(set.globalPlan, ctx)
        PluginRuntime.headerFilter(ctx, PluginRuntime.noRequest, status: 404, headers: HTTPHeaders())
        #expect(ctx.responseHeaders.value(of: "X-Filtered") == "8")
    }

    @Test func orderIsPriorityThenNameDescending() {
        let set = compile(ConfigSnapshot(plugins: [tagger("8"), plugin("who"), plugin("key-auth", ["anonymous": "x"])]),
                          extra: testHandlers + [("zz-tagger", 800, { @Sendable e, _ in Tagger(e) })])
        let names = set.plan(routeID: "r1", serviceID: "s1").steps.map { $0.name }
        #expect(names == ["key-auth", "who", "tagger"])
    }
}
