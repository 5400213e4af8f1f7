// One TCP connection to an upstream peer: connect, write the request, parse the response.
// Owned by the ClientConnection using it, or by the keep-alive pool while idle.
// Invariant: `client` is non-nil exactly while a request uses the connection; an idle pooled
// connection keeps its read watcher on so that a close by the upstream is noticed at once.
// Worker-loop confined.
import GWBalancer
import GWEvent
import GWHTTP
import GWSystem
import GWTLS

final class UpstreamConnection {
    enum State { case connecting, active, idle, closed }

    // Strong and `let`: the server outlives every connection of its process, and a `let` class reference
    // is read without retain or release (an unowned(unsafe) one was copied to a strong reference around
    // each use: 11 retain/release pairs per request, 450 instructions, callgrind.py). No cycle: the
    // server drops a connection from its table when it closes.
    let server: ProxyServer
    let fd: Int32
    let peer: SocketAddress
    let poolKey: PeerKey
    var state: State
    let io: IOWatcher   // `let`: read without retain (its handler is set once self is initialized)
    let timer: DeadlineTimer       // connect / write / read timeout (lazy: see armTimer)
    let parser: HTTPResponseParser
    var inBuf: IOBuffer
    /// Bytes waiting to be written to the upstream (request head and body).
    var out = OutputQueue()
    /// Not weak: a weak reference gives every ClientConnection a side table, whose retains and releases
    /// all take the slow path, and costs a weak load per event (~330 instructions per request,
    /// callgrind.py). Safe by the invariant above: every path that drops a connection from its client
    /// closes it or pools it, both of which clear `client`; ClientConnection.deinit clears it as well.
    unowned(unsafe) var client: ClientConnection?
    var requestsServed = 0
    var idleSince: Double = 0     // loop time (EventLoop.now) at which it went into the pool
    /// True when taken from the pool: a failure before any response byte is a stale connection.
    var reused = false
    var receivedAny = false
    var readPaused = false
    var poolIndex = -1
    /// https: the TLS connection over the socket (made once TCP is connected, from `tlsSetup`).
    var tls: TLSConnection?
    var tlsSetup: (context: TLSClientContext, sni: String?, host: String)?

    init(server: ProxyServer, fd: Int32, peer: SocketAddress, poolKey: PeerKey, connecting: Bool) {
        self.server = server
        self.fd = fd
        self.peer = peer
        self.poolKey = poolKey
        self.state = connecting ? .connecting : .active
        self.parser = HTTPResponseParser()
        self.inBuf = server.upstreamBufferPool.take()
        self.timer = DeadlineTimer(loop: server.loop) {}
        self.io = IOWatcher(loop: server.loop, fd: fd, events: connecting ? .write : .read) { _ in }
        // unowned(unsafe): the watchers belong to self and stop when it goes, so self is alive whenever
        // they call (and retained for the call); a checked unowned load costs more per event.
        io.handler = { [unowned(unsafe) self] ev in self.handle(ev) }
        timer.handler = { [unowned(unsafe) self] in self.timedOut() }
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
            guard startTLS() else { client?.upstreamFailed(self, .connectFailed(71)); return }
            updateInterest()
            client?.upstreamConnected(self)
        case .active:
            if ev.contains(.write) {
                flush()
                // TLS: a read that stopped on WANT_WRITE goes on once the socket is writable.
                if state == .active, let t = tls, t.readWantsWrite { client?.upstreamReadable(self); return }
            }
            if state == .active, ev.contains(.read) {
                if let t = tls, t.writeWantsRead, out.hasPending { guard flush() else { return } }
                if state == .active { client?.upstreamReadable(self) }
            }
        case .idle:
            // TLS 1.3 servers send session tickets after the handshake: records that carry no data keep
            // the connection; anything else on an idle pooled connection is a close (or garbage).
            if let t = tls, idleTLSRecordsOnly(t) { return }
            server.pool.remove(self)
            close()
        case .closed:
            break
        }
    }

    /// Writes pending bytes. Returns false when the connection failed (the client was told).
    @discardableResult
    func flush() -> Bool {
        switch tls == nil ? out.write(to: fd) : out.write(tls: tls!) {
        case .wouldBlock:
            updateInterest()
            return true
        case .failed:
            if let t = tls {
                server.log.log(.error, "upstream \(peer): TLS \(t.handshakeDone ? "write" : "handshake") failed: \(t.lastError)")
            }
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
        if !readPaused || state == .idle || tls?.writeWantsRead == true { ev.insert(.read) }
        if out.hasPending || tls?.readWantsWrite == true { ev.insert(.write) }
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
        let r: IOResult
        if let t = tls {
            switch t.read(into: inBuf.base + inBuf.end, count: inBuf.freeSpace) {
            case .bytes(let n): r = .bytes(n)
            case .wouldBlock:
                if t.readWantsWrite { updateInterest() }
                r = .wouldBlock
            case .closed: r = .eof
            case .failed(let why):
                server.log.log(.error, "upstream \(peer): TLS \(t.handshakeDone ? "read" : "handshake") failed: \(why)")
                r = .error(71)
            }
        } else {
            r = Socket.read(fd, into: inBuf.base + inBuf.end, count: inBuf.freeSpace)
        }
        if case .bytes(let n) = r { inBuf.end += n; receivedAny = true }
        return r
    }

    private func timedOut() {
        client?.upstreamTimedOut(self)   // (runs only once the deadline has passed: DeadlineTimer)
    }

    /// The write, read and per-read re-arms of an exchange move a lazy deadline (DeadlineTimer): one
    /// ev_timer start per exchange instead of four stop/start pairs.
    func armTimer(_ seconds: Double) { timer.setDeadline(after: seconds) }
    func cancelTimer() { timer.cancel() }

    func close() {
        guard state != .closed else { return }
        state = .closed
        io.stop()
        timer.cancel()
        tls = nil   // close_notify (never waiting) and free, before the fd is closed
        Socket.close(fd)
        server.upstreamBufferPool.give(inBuf)
        client = nil
    }

    /// https: wraps the connected socket in TLS (the handshake runs inside the first write and read).
    /// False when OpenSSL could not make the connection object.
    func startTLS() -> Bool {
        guard let s = tlsSetup else { return true }
        tlsSetup = nil
        guard let t = s.context.connection(fd: fd, sni: s.sni, host: s.sni ?? s.host) else { return false }
        tls = t
        return true
    }

    /// An idle TLS connection became readable: true when only records without application data were
    /// there (the connection stays pooled).
    private func idleTLSRecordsOnly(_ t: TLSConnection) -> Bool {
        // Idle: no read buffer is held. Records without application data are consumed inside OpenSSL; any
        // application byte means the connection is not reusable, so a small stack area is enough.
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 16) { tmp in
            if case .wouldBlock = t.read(into: tmp.baseAddress!, count: tmp.count) { return !t.readWantsWrite }
            return false
        }
    }

    /// Closes with RST (used after errors so that the peer does not keep a half-open socket).
    func abort() {
        guard state != .closed else { return }
        Socket.setLingerZero(fd)
        close()
    }
}

/// Pool key: the peer address (Kong: ip|port for http), and for https the TLS parameters' id
/// (UpstreamTLS.keyID: SNI and trust setting), 0 for plain HTTP.
struct PeerKey: Hashable {
    /// The peer address as integers (GWBalancer.PeerAddress): hashing it costs no String work.
    var address: PeerAddress
    var tls = 0

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
    let idleTimeout: Double       // seconds; 0: none
    /// The worker's loop: idle times are read from its cached clock (nginx's ngx_current_msec), not with a
    /// clock_gettime per take and put.
    private let loop: EventLoop
    private(set) var idleCount = 0

    init(maxPerPeer: Int, maxRequests: Int, idleTimeoutSeconds: Int, loop: EventLoop) {
        self.maxPerPeer = maxPerPeer
        self.maxRequests = maxRequests
        self.idleTimeout = Double(idleTimeoutSeconds)
        self.loop = loop
    }

    /// Takes the most recently used idle connection to `key`, if any.
    func take(_ key: PeerKey) -> UpstreamConnection? {
        guard let list = list(key, create: false), !list.conns.isEmpty else { return nil }
        let now = loop.now
        while let c = list.conns.popLast() {
            idleCount -= 1
            if idleTimeout > 0 && now - c.idleSince > idleTimeout {
                c.close()
                continue
            }
            c.state = .active
            c.reused = true
            c.inBuf = c.server.upstreamBufferPool.take()
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
        c.idleSince = loop.now
        c.readPaused = false
        // The timer keeps running (lazy, as armTimer): it finds no client if it fires while idle, and
        // the next exchange only moves its deadline: no stop and start per request.
        // An idle pooled connection keeps no read buffer (32 KiB; issue #18): it goes back to the worker's
        // pool and is taken again when the connection is reused. (Its output array, a request head long,
        // stays: the pool holds at most upstream_keepalive_pool_size connections per peer.)
        c.server.upstreamBufferPool.give(c.inBuf)
        c.inBuf = IOBuffer.none
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
        guard idleTimeout > 0 else { return }
        let now = loop.now
        for (_, list) in idle {
            let before = list.conns.count
            let expired = list.conns.filter { now - $0.idleSince > idleTimeout }
            guard !expired.isEmpty else { continue }
            list.conns.removeAll { now - $0.idleSince > idleTimeout }
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
