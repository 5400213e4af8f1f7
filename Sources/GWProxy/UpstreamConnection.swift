// One TCP connection to an upstream peer: connect, write the request, parse the response.
// Owned by the ClientConnection using it, or by the keep-alive pool while idle.
// Invariant: `client` is non-nil exactly while a request uses the connection; an idle pooled
// connection keeps its read watcher on so that a close by the upstream is noticed at once.
// Worker-loop confined.
import GWBalancer
import GWEvent
import GWHTTP
import GWSystem

final class UpstreamConnection {
    enum State { case connecting, active, idle, closed }

    // unowned(unsafe): the server outlives every connection of its process; skips ARC checks per access.
    unowned(unsafe) let server: ProxyServer
    let fd: Int32
    let peer: SocketAddress
    let poolKey: PeerKey
    var state: State
    var io: IOWatcher!
    let timer: TimerWatcher
    let parser: HTTPResponseParser
    var inBuf: IOBuffer
    /// Bytes waiting to be written to the upstream (request head and body).
    var out = OutputQueue()
    weak var client: ClientConnection?
    var requestsServed = 0
    var idleSince: UInt64 = 0
    /// True when taken from the pool: a failure before any response byte is a stale connection.
    var reused = false
    var receivedAny = false
    var readPaused = false
    var poolIndex = -1

    init(server: ProxyServer, fd: Int32, peer: SocketAddress, poolKey: PeerKey, connecting: Bool) {
        self.server = server
        self.fd = fd
        self.peer = peer
        self.poolKey = poolKey
        self.state = connecting ? .connecting : .active
        self.parser = HTTPResponseParser()
        self.inBuf = server.upstreamBufferPool.take()
        self.timer = TimerWatcher(loop: server.loop) {}
        out.bytes.reserveCapacity(4096)
        io = IOWatcher(loop: server.loop, fd: fd, events: connecting ? .write : .read) { [unowned self] ev in
            self.handle(ev)
        }
        timer.handler = { [unowned self] in self.timedOut() }
    }

    private func handle(_ ev: IOEvents) {
        switch state {
        case .connecting:
            let err = Socket.pendingError(fd)
            if err != 0 {
                client?.upstreamFailed(self, .connectFailed(err))
                return
            }
            state = .active
            updateInterest()
            client?.upstreamConnected(self)
        case .active:
            if ev.contains(.write) { flush() }
            if state == .active, ev.contains(.read) { client?.upstreamReadable(self) }
        case .idle:
            // Any event on an idle pooled connection is a close (or garbage): drop it.
            server.pool.remove(self)
            close()
        case .closed:
            break
        }
    }

    /// Writes pending bytes. Returns false when the connection failed (the client was told).
    @discardableResult
    func flush() -> Bool {
        switch out.write(to: fd) {
        case .wouldBlock:
            updateInterest()
            return true
        case .failed:
            client?.upstreamFailed(self, .writeFailed)
            return false
        case .drained:
            updateInterest()
            client?.upstreamDrained(self)
            return true
        }
    }

    func updateInterest() {
        guard state == .active || state == .idle else { return }
        var ev: IOEvents = []
        if !readPaused || state == .idle { ev.insert(.read) }
        if out.hasPending { ev.insert(.write) }
        io.set(events: ev)
        if ev.isEmpty { io.stop() } else { io.start() }
    }

    func pauseReading(_ paused: Bool) {
        if readPaused == paused { return }
        readPaused = paused
        updateInterest()
    }

    /// Reads what is available into inBuf. Returns the I/O result of the last read.
    func readAvailable() -> IOResult {
        inBuf.compact()
        if inBuf.freeSpace == 0 { return .wouldBlock }
        let r = Socket.read(fd, into: inBuf.base + inBuf.end, count: inBuf.freeSpace)
        if case .bytes(let n) = r { inBuf.end += n; receivedAny = true }
        return r
    }

    private func timedOut() {
        // Re-armed lazily (see armTimer): the deadline may have moved since the timer was started.
        let remaining = timerBase + timerSeconds - server.loop.now
        if remaining > 0 {
            timer.start(after: remaining)
            return
        }
        client?.upstreamTimedOut(self)
    }

    /// Deadline = `timerBase + timerSeconds` (loop time). Re-arming with the duration already running
    /// only moves the base (libev's recommended pattern for activity timeouts): the write, read and
    /// per-read re-arms of an exchange cost one ev_timer_start instead of four stop/start pairs.
    private var timerSeconds: Double = 0
    private var timerBase: Double = 0

    func armTimer(_ seconds: Double) {
        timerBase = server.loop.now
        if seconds == timerSeconds && timer.isActive { return }
        timerSeconds = seconds
        timer.start(after: seconds)
    }
    func cancelTimer() { timer.stop() }

    func close() {
        guard state != .closed else { return }
        state = .closed
        io.stop()
        timer.stop()
        Socket.close(fd)
        server.upstreamBufferPool.give(inBuf)
        client = nil
    }

    /// Closes with RST (used after errors so that the peer does not keep a half-open socket).
    func abort() {
        guard state != .closed else { return }
        Socket.setLingerZero(fd)
        close()
    }
}

/// Pool key: the peer address (Kong: ip|port for http).
struct PeerKey: Hashable {
    /// The peer address as integers (GWBalancer.PeerAddress): hashing it costs no String work.
    var address: PeerAddress

    init(_ a: PeerAddress) { address = a }
    init?(ip: String, port: Int) {
        guard let a = PeerAddress(ip: ip, port: port) else { return nil }
        address = a
    }
}

/// Per-worker keep-alive pool of idle upstream connections, LIFO per peer, bounded by
/// `upstream_keepalive_pool_size` per peer, `upstream_keepalive_max_requests` per connection and
/// `upstream_keepalive_idle_timeout`. Worker-loop confined.
final class UpstreamPool {
    /// The idle connections of one peer, most recent last. A class so that take/put change the
    /// list in place (a `[PeerKey: [UpstreamConnection]]` copied the whole array on every request).
    private final class PeerList {
        var conns: [UpstreamConnection] = []
    }
    private var idle: [PeerKey: PeerList] = [:]
    /// The list used last: with one upstream peer (or a few), take/put skip hashing the key.
    private var lastKey: PeerKey?
    private var lastList: PeerList?

    @inline(__always) private func list(_ key: PeerKey, create: Bool) -> PeerList? {
        if let l = lastList, lastKey == key { return l }
        var l = idle[key]
        if l == nil && create {
            l = PeerList()
            idle[key] = l
        }
        if let l { lastKey = key; lastList = l }
        return l
    }
    let maxPerPeer: Int
    let maxRequests: Int
    let idleTimeoutMillis: UInt64
    private(set) var idleCount = 0

    init(maxPerPeer: Int, maxRequests: Int, idleTimeoutSeconds: Int) {
        self.maxPerPeer = maxPerPeer
        self.maxRequests = maxRequests
        self.idleTimeoutMillis = UInt64(idleTimeoutSeconds) * 1000
    }

    /// Takes the most recently used idle connection to `key`, if any.
    func take(_ key: PeerKey) -> UpstreamConnection? {
        guard let list = list(key, create: false), !list.conns.isEmpty else { return nil }
        let now = Clock.monotonicMillis()
        while let c = list.conns.popLast() {
            idleCount -= 1
            if idleTimeoutMillis > 0 && now - c.idleSince > idleTimeoutMillis {
                c.close()
                continue
            }
            c.state = .active
            c.reused = true
            return c
        }
        return nil
    }

    /// Offers a connection whose exchange completed cleanly. Closes it when the pool is full.
    func put(_ c: UpstreamConnection) {
        guard maxPerPeer > 0, maxRequests == 0 || c.requestsServed < maxRequests else { c.close(); return }
        let list = self.list(c.poolKey, create: true)!
        if list.conns.count >= maxPerPeer {
            c.close()
            return
        }
        c.client = nil
        c.state = .idle
        c.idleSince = Clock.monotonicMillis()
        c.readPaused = false
        c.cancelTimer()
        c.inBuf.reset()
        c.out.removeAll()
        c.updateInterest()
        list.conns.append(c)
        idleCount += 1
    }

    func remove(_ c: UpstreamConnection) {
        guard let list = idle[c.poolKey], let i = list.conns.firstIndex(where: { $0 === c }) else { return }
        list.conns.remove(at: i)
        idleCount -= 1
    }

    /// Closes idle connections older than the idle timeout (called from a periodic timer).
    func expire() {
        guard idleTimeoutMillis > 0 else { return }
        let now = Clock.monotonicMillis()
        for (_, list) in idle {
            let before = list.conns.count
            let expired = list.conns.filter { now - $0.idleSince > idleTimeoutMillis }
            guard !expired.isEmpty else { continue }
            list.conns.removeAll { now - $0.idleSince > idleTimeoutMillis }
            idleCount -= before - list.conns.count
            for c in expired { c.close() }
        }
    }

    func closeAll() {
        for (_, list) in idle { for c in list.conns { c.close() } }
        idle = [:]
        lastKey = nil
        lastList = nil
        idleCount = 0
    }
}
