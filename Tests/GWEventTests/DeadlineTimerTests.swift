// DeadlineTimer runs its handler once the latest deadline has passed (never at an earlier one it was
// moved from), not at all after clearDeadline() or cancel(), and again for a deadline set afterwards.
// A real libev loop; times are the loop's own clock (EventLoop.now), deadlines a few milliseconds away.
import Testing
import GWEvent

@Suite struct DeadlineTimerTests {
    /// Runs the loop until `done()` or until `limit` seconds of loop time have passed.
    func run(_ loop: EventLoop, for limit: Double, until done: () -> Bool = { false }) {
        let guardTimer = TimerWatcher(loop: loop) {}
        guardTimer.start(after: limit)
        let end = loop.now + limit
        while !done() && loop.now < end { loop.runOnce() }
        guardTimer.stop()
    }

    @Test func aMovedDeadlineFiresOnceAtTheLaterTime() {
        let loop = EventLoop()
        var fires: [Double] = []
        let t = DeadlineTimer(loop: loop) { fires.append(loop.now) }
        t.setDeadline(after: 0.02)
        let due = loop.now + 0.06
        t.setDeadline(after: 0.06)   // later: the running ev_timer is kept and re-armed when it fires
        #expect(t.hasDeadline)
        run(loop, for: 2) { !fires.isEmpty }
        #expect(fires.count == 1)
        #expect(fires[0] >= due, "not before the latest deadline")
        #expect(!t.hasDeadline)
        run(loop, for: 0.1)
        #expect(fires.count == 1, "once per deadline")
    }

    @Test func anEarlierDeadlineRestartsTheTimer() {
        let loop = EventLoop()
        var fired = false
        let t = DeadlineTimer(loop: loop) { fired = true }
        t.setDeadline(after: 30)
        t.setDeadline(after: 0.02)
        run(loop, for: 2) { fired }
        #expect(fired, "the earlier deadline is honoured")
    }

    @Test func clearedOrCancelledDeadlinesDoNotFire() {
        let loop = EventLoop()
        var fires = 0
        let t = DeadlineTimer(loop: loop) { fires += 1 }
        t.setDeadline(after: 0.02)
        t.clearDeadline()
        run(loop, for: 0.1)
        #expect(fires == 0, "cleared: the ev_timer fired and did nothing")
        t.setDeadline(after: 0.02)
        t.cancel()
        run(loop, for: 0.1)
        #expect(fires == 0)
        t.setDeadline(after: 0.02)
        run(loop, for: 2) { fires > 0 }
        #expect(fires == 1, "a deadline set after a clear fires")
    }
}
