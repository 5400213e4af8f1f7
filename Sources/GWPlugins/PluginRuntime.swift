// Kong's phase loop for HTTP (KONG-PLUGINS.md §1.1, §1.4), called by the data path:
//   access(plan)        after routing: every plugin of the plan in execution order; each one's config
//                       resolved with the consumer authenticated so far; the first exit wins and the
//                       later access handlers are skipped, but every resolved instance is collected;
//   collectGlobal(plan) for a request no route matched (or refused before access): the global instances;
//   headerFilter / bodyFilter / log  on the collected instances, whatever produced the response.
//   resumeAccess        an access handler suspended the request (ctx.suspended after access returned):
//                       once its reply arrived, the handler finishes (`accessResumed`) and the plan
//                       goes on from the next step, exactly as if access had not stopped.
// Rewrite (global configs, before routing) has no handler among the plugins this build runs.
import GWHTTP

public enum PluginRuntime {
    /// Runs the access phase. Returns true when the request was answered by a plugin (`ctx.exitStatus`).
    /// False with `ctx.suspended`: a handler waits; the data path calls `resumeAccess` when it is ready.
    @discardableResult
    public static func access(_ plan: PluginPlan, _ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> Bool {
        runSteps(plan, ctx, request, from: 0)
    }

    /// The suspended handler's reply arrived: it finishes, then the plan goes on after it. Same result as `access`.
    public static func resumeAccess(_ plan: PluginPlan, _ ctx: PluginContext, _ request: borrowing HTTPRequestHead) -> Bool {
        guard ctx.suspended else { return ctx.exitStatus != 0 }
        ctx.suspended = false
        let h = ctx.collected(ctx.current)
        do throws(PluginError) { try h.accessResumed(ctx, request) } catch { ctx.fail("\(h.entity.name) (\(h.entity.id)): \(error.message)") }
        if ctx.suspended { return false }
        return runSteps(plan, ctx, request, from: ctx.suspendStep + 1)
    }

    @inline(__always)
    private static func runSteps(_ plan: PluginPlan, _ ctx: PluginContext, _ request: borrowing HTTPRequestHead, from: Int) -> Bool {
        // The steps are read in place through a buffer pointer: copying a PlanStep out of the array
        // retains and releases its name, handler and dictionary (callgrind.py --plugins key-auth,rate-limiting:
        // this function's own instructions 230 -> 195 per request).
        plan.steps.withUnsafeBufferPointer { steps in
            for i in from ..< steps.count {
                var h = steps[i].handler
                if !steps[i].byConsumer.isEmpty, let c = ctx.consumer, let hc = steps[i].byConsumer[c.id] { h = hc }
                guard let h else { continue }
                ctx.collect(h)
                if ctx.exitStatus != 0 || !h.phases.contains(.access) { continue }
                ctx.current = ctx.collectedCount - 1
                do throws(PluginError) { try h.access(ctx, request) } catch { ctx.fail("\(h.entity.name) (\(h.entity.id)): \(error.message)") }
                if ctx.suspended {
                    if ctx.exitStatus != 0 { ctx.cancelSuspension(); continue }   // failed after suspending: no wait
                    ctx.suspendStep = i
                    return false
                }
            }
            return ctx.exitStatus != 0
        }
    }

    /// Collects the global instances (router miss, request refused before routing).
    public static func collectGlobal(_ plan: PluginPlan, _ ctx: PluginContext) {
        for step in plan.steps {
            guard let h = step.handler else { continue }
            ctx.collect(h)
        }
    }

    /// header_filter on the collected instances. `headers` are the upstream response's (empty for a
    /// generated response).
    public static func headerFilter(_ ctx: PluginContext, _ request: borrowing HTTPRequestHead, status: Int,
                                    headers: borrowing HTTPHeaders) {
        guard ctx.phases.contains(.headerFilter) else { return }
        for i in 0 ..< ctx.collectedCount {
            let h = ctx.collected(i)
            guard h.phases.contains(.headerFilter) else { continue }
            ctx.current = i
            h.headerFilter(ctx, request, status: status, headers: headers)
        }
    }

    /// An empty request head, for responses to requests that could not be parsed.
    public static let noRequest = HTTPRequestHead()

    /// body_filter on the collected instances (observe only).
    public static func bodyFilter(_ ctx: PluginContext, _ piece: UnsafeRawBufferPointer, last: Bool) {
        guard ctx.phases.contains(.bodyFilter) else { return }
        for i in 0 ..< ctx.collectedCount {
            let h = ctx.collected(i)
            guard h.phases.contains(.bodyFilter) else { continue }
            ctx.current = i
            h.bodyFilter(ctx, piece, last: last)
        }
    }

    /// The held response body through every collected instance's transformResponseBody, in order;
    /// nil when none changed it.
    public static func transformResponseBody(_ ctx: PluginContext, _ body: [UInt8]) -> [UInt8]? {
        var current: [UInt8]? = nil
        for i in 0 ..< ctx.collectedCount {
            let h = ctx.collected(i)
            ctx.current = i
            if let r = h.transformResponseBody(ctx, current ?? body) { current = r }
        }
        return current
    }

    /// metrics (the counting handlers' log phase) on the collected instances.
    public static func metrics(_ ctx: PluginContext, _ facts: MetricFacts) {
        for i in 0 ..< ctx.collectedCount {
            let h = ctx.collected(i)
            guard h.phases.contains(.metrics) else { continue }
            ctx.current = i
            h.metrics(ctx, facts)
        }
    }

    /// log on the collected instances.
    public static func log(_ ctx: PluginContext, status: Int) {
        guard ctx.phases.contains(.log) else { return }
        for i in 0 ..< ctx.collectedCount {
            let h = ctx.collected(i)
            guard h.phases.contains(.log) else { continue }
            ctx.current = i
            h.log(ctx, status: status)
        }
    }
}
