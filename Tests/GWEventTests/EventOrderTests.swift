// EventLoop runs the I/O callbacks of one poll in the order the kernel reported readiness (nginx's
// order; libev alone runs them last-ready-first), drops the event of a watcher stopped earlier in the
// same batch, survives a watcher freed while queued, and runs fed events in the same iteration.
// Real sockets (nonblocking socketpairs) and a real libev loop.
import Glibc
import Testing
import GWEvent
import GWSystem

@Suite struct EventOrderTests {
    final class Pairs {
        var fds: [(Int32, Int32)] = []
        init(_ n: Int) throws { for _ in 0..<n { fds.append(try Socket.socketPair()) } }
        deinit { for (a, b) in fds { Socket.close(a); Socket.close(b) } }
        func poke(_ i: Int) { var b: UInt8 = 1; _ = Socket.write(fds[i].1, from: &b, count: 1) }
    }

    /// One iteration with an unrelated event, so that libev hands the started watchers' descriptors to
    /// epoll (it adds them when it polls; a descriptor already readable when added is reported in the
    /// order of addition, not of readiness).
    func registerStartedWatchers(_ loop: EventLoop) throws {
        let warm = try Pairs(1)
        var seen = false
        let w = IOWatcher(loop: loop, fd: warm.fds[0].0, events: .read) { _ in seen = true }
        w.start()
        warm.poke(0)
        while !seen { loop.runOnce() }
        w.stop()
    }

    @Test func callbacksRunInReadinessOrder() throws {
        let loop = EventLoop()
        let pairs = try Pairs(6)
        var order: [Int] = []
        let watchers = (0..<6).map { i in
            IOWatcher(loop: loop, fd: pairs.fds[i].0, events: .read) { _ in order.append(i) }
        }
        for w in watchers { w.start() }
        try registerStartedWatchers(loop)
        let ready = [3, 0, 5, 1, 4, 2]
        for i in ready { pairs.poke(i) }
        loop.runOnce()
        #expect(order == ready)   // libev's own order would be the reverse
        for w in watchers { w.stop() }
    }

    @Test func aWatcherStoppedEarlierInTheBatchIsNotCalled() throws {
        let loop = EventLoop()
        let pairs = try Pairs(3)
        var called: [Int] = []
        var watchers: [IOWatcher] = []
        for i in 0..<3 {
            watchers.append(IOWatcher(loop: loop, fd: pairs.fds[i].0, events: .read) { _ in
                called.append(i)
                if i == 0 { watchers[2].stop() }
            })
        }
        for w in watchers { w.start() }
        for i in 0..<3 { pairs.poke(i) }
        loop.runOnce()
        #expect(called == [0, 1])
        for w in watchers { w.stop() }
    }

    @Test func aWatcherFreedWhileQueuedIsSkipped() throws {
        let loop = EventLoop()
        let pairs = try Pairs(3)
        var called: [Int] = []
        var third: IOWatcher? = nil
        let first = IOWatcher(loop: loop, fd: pairs.fds[0].0, events: .read) { _ in
            called.append(0)
            third = nil   // the last reference: freed while it waits in the queue
        }
        let second = IOWatcher(loop: loop, fd: pairs.fds[1].0, events: .read) { _ in called.append(1) }
        third = IOWatcher(loop: loop, fd: pairs.fds[2].0, events: .read) { _ in called.append(2) }
        first.start(); second.start(); third?.start()
        for i in 0..<3 { pairs.poke(i) }
        loop.runOnce()
        #expect(called == [0, 1])
        #expect(third == nil)
        first.stop(); second.stop()
    }

    @Test func eventsFedDuringTheBatchRunInTheSameIteration() throws {
        let loop = EventLoop()
        let pairs = try Pairs(2)
        var called: [String] = []
        var quiet: IOWatcher! = nil
        let loud = IOWatcher(loop: loop, fd: pairs.fds[0].0, events: .read) { _ in
            called.append("loud")
            quiet.feed(.read)   // no readiness on its fd: only the fed event
        }
        quiet = IOWatcher(loop: loop, fd: pairs.fds[1].0, events: .read) { ev in
            called.append(ev.contains(.read) ? "quiet-read" : "quiet-other")
        }
        loud.start(); quiet.start()
        pairs.poke(0)
        loop.runOnce()
        #expect(called == ["loud", "quiet-read"])
        loud.stop(); quiet.stop()
    }

    @Test func moreReadyWatchersThanTheQueueStartsWithAllRunInOrder() throws {
        let loop = EventLoop()
        let n = 300   // the queue starts with room for 256
        let pairs = try Pairs(n)
        var order: [Int] = []
        let watchers = (0..<n).map { i in
            IOWatcher(loop: loop, fd: pairs.fds[i].0, events: .read) { _ in
                order.append(i)
                var b: UInt8 = 0
                _ = Socket.read(pairs.fds[i].0, into: &b, count: 1)   // consumed: not reported again
            }
        }
        for w in watchers { w.start() }
        try registerStartedWatchers(loop)
        let ready = Array((0..<n).reversed())
        for i in ready { pairs.poke(i) }
        while order.count < n { loop.runOnce() }   // epoll_wait returns at most libev's batch per call
        #expect(order == ready)
        for w in watchers { w.stop() }
    }
}
