// GWEvent: libev, one loop per process. Watchers are final classes that own a malloc'd libev
// watcher (stable address) and find themselves again through the watcher's `data` pointer.
// Invariant: a loop and its watchers are confined to the process (and thread) that created them;
// nothing here is Sendable. A watcher must be stopped before it is released (deinit does it).
import CGWShims
import GWSystem

/// A libev loop (ev_loop_new, EVFLAG_NOSIGMASK: signals are handled by CGWShims' self-pipe).
public final class EventLoop {
    public let raw: OpaquePointer

    public init() {
        guard let l = ev_loop_new(gw_evflag_auto_nosigmask()) else { fatalError("ev_loop_new failed") }
        raw = l
    }

    /// Runs until `stop()` or until no active watcher is left.
    public func run() { ev_run(raw, 0) }

    public func stop() { ev_break(raw, gw_evbreak_all()) }

    /// The loop's cached time (seconds, monotonic-ish), updated once per iteration.
    @inlinable public var now: Double { ev_now(raw) }

    /// Forces the cached time to be updated (after long blocking work).
    public func updateNow() { ev_now_update(raw) }

    /// Frees the loop in a forked child that does not use its parent's loop.
    public func destroyInChild() { ev_loop_destroy(raw) }
}

/// Readiness of a file descriptor.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let read = IOEvents(rawValue: gw_ev_read())
    public static let write = IOEvents(rawValue: gw_ev_write())
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
            Unmanaged<IOWatcher>.fromOpaque(d)._withUnsafeGuaranteedRef { $0.handler(IOEvents(rawValue: revents)) }
        }, fd, events.rawValue)
        gw_io_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        ev_io_stop(loop.raw, w)
        w.deallocate()
    }

    @inlinable public var isActive: Bool { gw_io_is_active(w) != 0 }

    @inlinable public func start() { if !isActive { ev_io_start(loop.raw, w) } }
    @inlinable public func stop() { if isActive { ev_io_stop(loop.raw, w) } }
    /// Queues `events` for this watcher as if the fd had reported them (libev ev_feed_event): for data
    /// a library holds with no readiness on the fd (TLS records OpenSSL already decrypted).
    public func feed(_ events: IOEvents) { ev_feed_event(loop.raw, UnsafeMutableRawPointer(w), Int32(events.rawValue)) }

    /// Changes the fd and/or interest set (stops and restarts if active).
    @inlinable public func set(fd: Int32? = nil, events: IOEvents) {
        let newFD = fd ?? self.fd
        if newFD == self.fd && events == self.events { return }
        let active = isActive
        if active { ev_io_stop(loop.raw, w) }
        storedFD = newFD
        storedEvents = events
        gw_io_set(w, newFD, events.rawValue)
        if active && !events.isEmpty { ev_io_start(loop.raw, w) }
    }
}

/// An ev_timer. `start(after:)` (re)arms a one-shot; `repeat` re-fires periodically.
public final class TimerWatcher {
    public let loop: EventLoop
    @usableFromInline let w: UnsafeMutablePointer<ev_timer>
    public var handler: () -> Void

    public init(loop: EventLoop, handler: @escaping () -> Void) {
        self.loop = loop
        self.handler = handler
        w = .allocate(capacity: 1)
        gw_timer_init(w, { _, w, _ in
            guard let w, let d = gw_timer_data(w) else { return }
            Unmanaged<TimerWatcher>.fromOpaque(d)._withUnsafeGuaranteedRef { $0.handler() }
        }, 0, 0)
        gw_timer_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        ev_timer_stop(loop.raw, w)
        w.deallocate()
    }

    @inlinable public var isActive: Bool { gw_timer_is_active(w) != 0 }
    /// Seconds until an active timer fires (libev's ev_timer_remaining).
    @inlinable public var remaining: Double { ev_timer_remaining(loop.raw, w) }

    @inlinable public func start(after: Double, repeat rep: Double = 0) {
        ev_timer_stop(loop.raw, w)
        gw_timer_set(w, after, rep)
        ev_timer_start(loop.raw, w)
    }

    @inlinable public func stop() { ev_timer_stop(loop.raw, w) }
}
