// DeadlineTimer: an activity timeout that is cheap to move (libev's recommended pattern for
// timeouts reset on every read or write; nginx's NGX_TIMER_LAZY_DELAY does the same).
//
// A connection moves its timeout several times per request (header read, upstream write, each
// upstream read, keep-alive wait). Stopping and restarting an ev_timer each time is a heap removal and
// insertion in libev (~300 instructions per request, tools/bench/callgrind.py). Here a new deadline is
// only recorded when the running ev_timer fires no later than it; when the ev_timer fires before the
// recorded deadline it is started again for the rest, and the handler runs only once the deadline has
// passed. `clearDeadline()` means "no timeout now": the running ev_timer is left to fire and does nothing.
//
// Invariants: `due` is the deadline in loop time (`EventLoop.now`), +infinity when there is none;
// `firesAt` is when the ev_timer fires while it is active. The handler runs at most once per deadline,
// never before it, and never after `clearDeadline()` or `cancel()` until a new deadline is set.
// Worker-loop confined, as every watcher.
import CGWShims

public final class DeadlineTimer: TimerWatcher {
    // (The ev_timer, its callback and its release are TimerWatcher's; `start`/`stop` are the plain
    // timer's and bypass the deadline: a connection uses setDeadline, clearDeadline and cancel.)
    @usableFromInline var due: Double = .infinity
    @usableFromInline var firesAt: Double = 0

    /// A deadline is set (the handler will run when it passes unless it is moved or cleared).
    @inlinable public var hasDeadline: Bool { due != .infinity }

    /// The handler runs `seconds` from now (and not at an earlier deadline set before).
    @inlinable public func setDeadline(after seconds: Double) {
        let now = loop.now
        due = now + seconds
        if isActive && firesAt <= due { return }   // fires first; re-armed then
        arm(now, seconds)
    }

    /// No timeout from now on; the running ev_timer, if any, is left to fire and does nothing.
    @inlinable public func clearDeadline() { due = .infinity }

    /// No timeout, and the ev_timer is stopped (for a connection that closes or waits unbounded).
    @inlinable public func cancel() {
        due = .infinity
        stop()
    }

    @usableFromInline func arm(_ now: Double, _ seconds: Double) {
        start(after: seconds)
        firesAt = now + seconds
    }

    override func fired() {
        if due == .infinity { return }
        let now = loop.now
        if due > now {
            arm(now, due - now)   // the deadline moved after the ev_timer was started
            return
        }
        due = .infinity
        handler()
    }
}
