// A general way for an access handler to wait for the worker's loop (a Redis reply) without blocking
// it: the handler calls `ctx.suspend()`, starts its I/O with the returned tag and returns; the runtime
// stops the plan there (PluginRuntime.runSteps) and the data path parks the request. The completion
// (`redisDone`, called from the loop) checks the tag and hands the context back to its `resumer` (the
// client connection), which calls PluginRuntime.resumeAccess.
//
// Invariants: at most one suspension per context at a time; a completion whose tag is not the current
// one (the request was cancelled: the client went away, the context was reset) is dropped, so a late
// reply never touches a later request. Nothing here allocates. Worker-loop confined.
import GWRedis

/// The data path's side: a context it owns is ready to go on.
public protocol AccessResumer: AnyObject {
    func accessReady(_ ctx: PluginContext)
}

extension PluginContext: RedisWaiter {
    /// The calling access handler waits: returns the tag its completion must carry.
    func suspend() -> UInt64 {
        suspended = true
        suspendTag &+= 1
        return suspendTag
    }

    /// The wait is over without a completion (not sent after all, or the request is gone).
    public func cancelSuspension() {
        suspended = false
        suspendTag &+= 1
    }

    public func redisDone(_ reply: RedisReply, tag: UInt64) {
        guard suspended, tag == suspendTag else { return }
        asyncReply = reply
        if let r = resumer { r.accessReady(self) } else { cancelSuspension() }
    }
}
