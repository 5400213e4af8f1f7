// GWEvent: libev, one loop per process. Watchers are final classes that own a malloc'd libev
// watcher (stable address) and find themselves again through the watcher's `data` pointer.
// Invariant: a loop and its watchers are confined to the process (and thread) that created them;
// nothing here is Sendable. A watcher must be stopped before it is released (deinit does it).
import CGWShims
import GWSystem

/// A libev loop (ev_loop_new, EVFLAG_NOSIGMASK: signals are handled by CGWShims' self-pipe).
///
/// I/O callbacks run in the order the kernel reported readiness (nginx's order). libev runs the
/// callbacks of one poll last-ready-first (its pending array is a stack), so a request that became
/// ready first was served last of its batch; here the I/O watchers' libev callbacks only queue the
/// watcher (`ready`), and the loop's invoke hook (ev_set_invoke_pending_cb) then runs them in reverse
/// queue order, which is the poll's order. Timers and other watchers still run inside libev's
/// ev_invoke_pending. Events fed while the queue is run (IOWatcher.feed) are run in the same hook.
/// Invariant: `ready` / `running` hold unretained watchers; a watcher is in them at most once
/// (`queued`), and a watcher freed while queued removes itself (IOWatcher.deinit).
public final class EventLoop {
    public let raw: OpaquePointer
    /// The queue being filled and the one being run: plain buffers (no array uniqueness checks or
    /// generic clears per event: an array cost ~95 instructions per event, these ~30).
    @usableFromInline var ready = WatcherQueue()
    var running = WatcherQueue()

    public init() {
        guard let l = ev_loop_new(gw_evflag_auto_nosigmask()) else { fatalError("ev_loop_new failed") }
        raw = l
        ev_set_userdata(l, Unmanaged.passUnretained(self).toOpaque())
        ev_set_invoke_pending_cb(l) { l in
            guard let l, let d = ev_userdata(l) else { return }
            Unmanaged<EventLoop>.fromOpaque(d)._withUnsafeGuaranteedRef { $0.invokePending() }
        }
    }

    /// libev's pending watchers, then the queued I/O watchers in poll order, until nothing is pending.
    private func invokePending() {
        repeat {
            ev_invoke_pending(raw)
            guard ready.count > 0 else { continue }
            swap(&ready, &running)
            var i = running.count
            while i > 0 {
                i &-= 1
                guard let p = running.slots[i] else { continue }   // freed while queued
                running.slots[i] = nil
                Unmanaged<IOWatcher>.fromOpaque(p)._withUnsafeGuaranteedRef { $0.dispatch() }
            }
            running.count = 0
        } while ev_pending_count(raw) > 0 || ready.count > 0
    }

    /// Removes a freed watcher's entry from the queues.
    func forget(_ p: UnsafeMutableRawPointer) {
        ready.forget(p)
        running.forget(p)
    }

    /// Runs until `stop()` or until no active watcher is left.
    public func run() { ev_run(raw, 0) }

    /// One iteration: waits for at least one event, handles what is ready (tests).
    public func runOnce() { ev_run(raw, gw_evrun_once()) }

    public func stop() { ev_break(raw, gw_evbreak_all()) }

    /// The loop's cached time (seconds, monotonic-ish), updated once per iteration.
    @inlinable public var now: Double { ev_now(raw) }

    /// Forces the cached time to be updated (after long blocking work).
    public func updateNow() { ev_now_update(raw) }

    /// Frees the loop in a forked child that does not use its parent's loop.
    public func destroyInChild() { ev_loop_destroy(raw) }
}

/// Unretained watcher addresses in a malloc'd buffer that doubles when full (bounded by the number of
/// watchers: a watcher is queued at most once). Owned by its EventLoop; never freed (loops live as long
/// as their process).
@usableFromInline struct WatcherQueue {
    @usableFromInline var slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    @usableFromInline var count = 0
    @usableFromInline var capacity = 256

    init() { slots = .allocate(capacity: 256) }

    @inline(__always) mutating func append(_ p: UnsafeMutableRawPointer) {
        if count == capacity {
            let bigger = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: capacity * 2)
            bigger.initialize(from: slots, count: count)
            slots.deallocate()
            slots = bigger
            capacity *= 2
        }
        slots[count] = p
        count &+= 1
    }

    mutating func forget(_ p: UnsafeMutableRawPointer) {
        for i in 0..<count where slots[i] == p { slots[i] = nil }
    }
}

/// Readiness of a file descriptor.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    // Computed from libev's constants (static inline shims): a `static let` is a lazily initialised
    // global, read from another module through an addressor and swift_once (7 per proxied request).
    @inlinable public static var read: IOEvents { IOEvents(rawValue: gw_ev_read()) }
    @inlinable public static var write: IOEvents { IOEvents(rawValue: gw_ev_write()) }
}

/// An ev_io watcher. The handler is set once (at creation), not per event.
public final class IOWatcher {
    public let loop: EventLoop
    // (usableFromInline and the inlinable accessors below: a call from another module through a
    // connection's `let io` then needs no retain of the watcher or its loop)
    @usableFromInline let w: UnsafeMutablePointer<ev_io>
    public var handler: (IOEvents) -> Void
    @usableFromInline var storedFD: Int32
    @usableFromInline var storedEvents: IOEvents
    /// Events reported and not yet handled (EventLoop runs them in poll order); cleared when the watcher
    /// stops, as libev drops a stopped watcher's pending event.
    @usableFromInline var deferred = IOEvents(rawValue: 0)
    /// In the loop's queue (at most once).
    var queued = false
    public var fd: Int32 { storedFD }
    public var events: IOEvents { storedEvents }

    public init(loop: EventLoop, fd: Int32, events: IOEvents, handler: @escaping (IOEvents) -> Void) {
        self.loop = loop
        storedFD = fd
        storedEvents = events
        self.handler = handler
        w = .allocate(capacity: 1)
        gw_io_init(w, { _, w, revents in
            guard let w, let d = gw_io_data(w) else { return }
            // Guaranteed, not retained: the watcher's owner keeps it alive while libev can call it.
            Unmanaged<IOWatcher>.fromOpaque(d)._withUnsafeGuaranteedRef { $0.enqueue(IOEvents(rawValue: revents), d) }
        }, fd, events.rawValue)
        gw_io_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if queued { loop.forget(Unmanaged.passUnretained(self).toOpaque()) }
        ev_io_stop(loop.raw, w)
        w.deallocate()
    }

    private func enqueue(_ ev: IOEvents, _ me: UnsafeMutableRawPointer) {
        deferred.formUnion(ev)
        if !queued {
            queued = true
            loop.ready.append(me)
        }
    }

    /// Runs the handler with the events gathered since the watcher was queued (none: it was stopped).
    fileprivate func dispatch() {
        queued = false
        let ev = deferred
        if ev.rawValue == 0 { return }
        deferred = IOEvents(rawValue: 0)
        handler(ev)
    }

    @inlinable public var isActive: Bool { gw_io_is_active(w) != 0 }

    @inlinable public func start() { if !isActive { ev_io_start(loop.raw, w) } }
    @inlinable public func stop() {
        deferred = IOEvents(rawValue: 0)
        if isActive { ev_io_stop(loop.raw, w) }
    }
    /// Queues `events` for this watcher as if the fd had reported them (libev ev_feed_event): for data
    /// a library holds with no readiness on the fd (TLS records OpenSSL already decrypted).
    public func feed(_ events: IOEvents) { ev_feed_event(loop.raw, UnsafeMutableRawPointer(w), Int32(events.rawValue)) }

    /// Changes the fd and/or interest set (stops and restarts if active).
    @inlinable public func set(fd: Int32? = nil, events: IOEvents) {
        let newFD = fd ?? self.fd
        if newFD == self.fd && events == self.events { return }
        let active = isActive
        if active { ev_io_stop(loop.raw, w); deferred = IOEvents(rawValue: 0) }
        storedFD = newFD
        storedEvents = events
        gw_io_set(w, newFD, events.rawValue)
        if active && !events.isEmpty { ev_io_start(loop.raw, w) }
    }
}

/// An ev_timer. `start(after:)` (re)arms a one-shot; `repeat` re-fires periodically. Not final only for
/// DeadlineTimer, which decides in `fired()` whether a fire runs the handler; its other members are final.
public class TimerWatcher {
    public let loop: EventLoop
    @usableFromInline let w: UnsafeMutablePointer<ev_timer>
    public var handler: () -> Void

    public init(loop: EventLoop, handler: @escaping () -> Void) {
        self.loop = loop
        self.handler = handler
        w = .allocate(capacity: 1)
        gw_timer_init(w, { _, w, _ in
            guard let w, let d = gw_timer_data(w) else { return }
            Unmanaged<TimerWatcher>.fromOpaque(d)._withUnsafeGuaranteedRef { $0.fired() }
        }, 0, 0)
        gw_timer_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        ev_timer_stop(loop.raw, w)
        w.deallocate()
    }

    /// The ev_timer fired.
    func fired() { handler() }

    @inlinable public final var isActive: Bool { gw_timer_is_active(w) != 0 }

    @inlinable public final func start(after: Double, repeat rep: Double = 0) {
        ev_timer_stop(loop.raw, w)
        gw_timer_set(w, after, rep)
        ev_timer_start(loop.raw, w)
    }

    @inlinable public final func stop() { ev_timer_stop(loop.raw, w) }
}
