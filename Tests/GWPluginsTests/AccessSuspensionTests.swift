import Testing
import GWHTTP
import GWJSON
import GWRedis
import GWStore
@testable import GWPlugins

/// A test handler that waits in access (as rate-limiting's redis policy does) and finishes in accessResumed.
final class Waiting: PluginHandler {
    nonisolated(unsafe) static var lastTag: UInt64 = 0
    override var phases: PluginPhases { .access }
    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        Waiting.lastTag = ctx.suspend()
    }
    override func accessResumed(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        if ctx.asyncReply.status != .ok { throw PluginError("store error") }
        ctx.upstreamHeaders.set("X-Waited", "\(ctx.asyncReply[0])")
    }
}

/// Runs after it (lower priority): must not run before the wait is over.
final class After: PluginHandler {
    override var phases: PluginPhases { .access }
    override func access(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead) throws(PluginError) {
        ctx.upstreamHeaders.set("X-After", "yes")
    }
}

final class Resumer: AccessResumer {
    var ready = 0
    func accessReady(_ ctx: PluginContext) { ready += 1 }
}

@Suite struct AccessSuspensionTests {
    func plan() -> PluginPlan {
        let s = compile(ConfigSnapshot(plugins: [plugin("waiting", route: "r1"), plugin("after", route: "r1")]), extra: [
            ("waiting", 1000, { e, _ in Waiting(entity: e, priority: 1000) }),
            ("after", 500, { e, _ in After(entity: e, priority: 500) }),
        ])
        return s.plan(routeID: "r1", serviceID: "s1")
    }

    @Test func suspendsThenResumesWherePlanStopped() {
        let p = plan(), req = get("/")
        let ctx = PluginContext(clientIP: "127.0.0.1")
        let r = Resumer()
        ctx.resumer = r
        #expect(PluginRuntime.access(p, ctx, req.head) == false)
        #expect(ctx.suspended)
        #expect(ctx.upstreamValue(of: "X-After") == nil)   // the plan stopped at the waiting handler
        var reply = RedisReply()
        reply.count = 1
        reply[0] = 42
        ctx.redisDone(reply, tag: Waiting.lastTag &+ 7)     // not its tag: dropped
        #expect(r.ready == 0)
        ctx.redisDone(reply, tag: Waiting.lastTag)
        #expect(r.ready == 1)
        #expect(PluginRuntime.resumeAccess(p, ctx, req.head) == false)
        #expect(!ctx.suspended)
        #expect(ctx.upstreamValue(of: "X-Waited") == "42")
        #expect(ctx.upstreamValue(of: "X-After") == "yes")
        #expect(ctx.collectedCount == 2)
    }

    @Test func failureAfterTheWaitIsA500AndSkipsTheRest() {
        let p = plan(), req = get("/")
        let ctx = PluginContext(clientIP: "127.0.0.1")
        let r = Resumer()
        ctx.resumer = r
        PluginRuntime.access(p, ctx, req.head)
        var reply = RedisReply()
        reply.status = .timeout
        ctx.redisDone(reply, tag: Waiting.lastTag)
        #expect(PluginRuntime.resumeAccess(p, ctx, req.head) == true)
        #expect(ctx.exitStatus == 500 && ctx.exitMessage == "An unexpected error occurred")
        #expect(ctx.upstreamValue(of: "X-After") == nil)
    }

    @Test func aLateReplyNeverReachesTheNextRequest() {
        let p = plan(), req = get("/")
        let ctx = PluginContext(clientIP: "127.0.0.1")
        let r = Resumer()
        ctx.resumer = r
        PluginRuntime.access(p, ctx, req.head)
        let stale = Waiting.lastTag
        ctx.reset()                                // the exchange ended (client gone)
        #expect(!ctx.suspended)
        PluginRuntime.access(p, ctx, req.head)     // the next request waits too
        ctx.redisDone(RedisReply(), tag: stale)
        #expect(r.ready == 0)
        ctx.redisDone(RedisReply(), tag: Waiting.lastTag)
        #expect(r.ready == 1)
    }
}
