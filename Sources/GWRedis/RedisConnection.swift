// One Redis server as one worker sees it: a single pipelined connection whose socket, I/O and TLS are
// ours, on this process's libev loop (GWEvent watchers): a nonblocking connect, then TLS through GWTLS
// when the endpoint asks for it (the handshake runs inside the first writes and reads), commands
// written in RESP and replies read with RESP.swift. No call here ever blocks, and every command has a
// deadline.
//
// Invariants:
// - Commands are answered in the order they were sent (Redis pipelining): `ring` is a FIFO of at most
//   `maxPending` entries; when it is full (or `maxOutput` bytes wait to be written), `send` answers
//   `.busy` at once (the caller decides: rate-limiting treats it like Redis being down).
// - Waiters are called only from `dispatch()`, never from inside `send` (a failure found while sending
//   is dispatched from the loop): a waiter may send again, or cause anything on the connection it resumes.
// - A command past its deadline, a lost connection, a failed connect or TLS handshake, a failed AUTH,
//   SELECT or SCRIPT LOAD, or bytes that are not RESP fail every pending command and close the socket;
//   the next attempt waits for a back-off (0.1 s doubling to 5 s, reset by the first good reply). While
//   backing off `send` answers `.down` at once. The server closing an idle connection is no failure.
// - Errors go to the error log at most once per `reportInterval` per connection (the rest are counted
//   and the count is logged with the next report).
// - Memory: the output buffer (bounded by `maxOutput`), one input buffer of `RESP.maxReply` bytes, the
//   ring; the keep-alive path allocates nothing (the buffers keep their capacity).
// Worker-loop confined.
#if canImport(Glibc)
import Glibc
#endif
import GWEvent
import GWSystem
import GWTLS

public final class RedisConnection {
    public let endpoint: RedisEndpoint
    let loop: EventLoop
    let log: (String) -> Void
    /// The client context for a TLS endpoint (nil: plain, or the context could not be made: `tlsProblem`).
    let tlsContext: TLSClientContext?
    let tlsProblem: String?
    public static let maxPending = 1024
    static let maxOutput = 4 << 20
    static let reportInterval = 10.0
    static let minBackoff = 0.1, maxBackoff = 5.0

    private enum State { case closed, connecting, open }
    private var state = State.closed
    private var fd: Int32 = -1
    private var io: IOWatcher? = nil
    private var watching: IOEvents = []
    private var tls: TLSConnection? = nil
    private var retryAt = 0.0
    private var backoff = 0.0
    /// Scripts loaded on the current connection (by SHA).
    private var loaded: [[UInt8]] = []

    /// Bytes to write (from `sent` on).
    private var out: [UInt8] = []
    private var sent = 0
    /// Bytes read and not yet parsed: `input[inLo ..< inHi]`.
    private let input: UnsafeMutableRawPointer
    private var inLo = 0, inHi = 0

    private enum Kind { case user, setup(String), scriptLoad }
    private struct Entry {
        var waiter: RedisWaiter?
        var tag: UInt64
        var deadline: Double
        var kind: Kind
    }
    private var ring: [Entry?]
    private var head = 0, count = 0
    /// Replies read (or failures), waiting for dispatch() (never more than maxPending + 8).
    private var done: [(RedisWaiter, UInt64, RedisReply)] = []
    private let timer: TimerWatcher
    private var lastReport = -1e9
    private var suppressed = 0
    private var dispatching = false

    init(endpoint: RedisEndpoint, loop: EventLoop, log: @escaping (String) -> Void,
         tlsContext: TLSClientContext?, tlsProblem: String?) {
        self.endpoint = endpoint
        self.loop = loop
        self.log = log
        self.tlsContext = tlsContext
        self.tlsProblem = tlsProblem
        ring = Array(repeating: nil, count: RedisConnection.maxPending + 8)
        done.reserveCapacity(64)
        out.reserveCapacity(4096)
        input = UnsafeMutableRawPointer.allocate(byteCount: RESP.maxReply, alignment: 16)
        timer = TimerWatcher(loop: loop) {}
        timer.handler = { [unowned self] in self.checkDeadlines(); self.dispatch() }
    }

    deinit {
        tls = nil
        io?.stop()
        if fd >= 0 { Socket.close(fd) }
        input.deallocate()
    }

    public var isConnected: Bool { state != .closed }
    public var pendingCount: Int { count }

    // MARK: sending

    /// Sends one command (`args`: the words, e.g. EVALSHA sha numkeys keys… args…), answered to `waiter`
    /// with `tag` within `timeoutMs`. `.down` / `.busy`: not sent, nobody will be called.
    public func send(_ args: UnsafeBufferPointer<UnsafeRawBufferPointer>, script: RedisScript? = nil,
                     waiter: RedisWaiter, tag: UInt64, timeoutMs: Int) -> RedisSendResult {
        let now = loop.now
        if state == .closed {
            if now < retryAt { return .down }
            guard open() else { return .down }
        }
        guard count + 3 < ring.count - 8, out.count - sent < RedisConnection.maxOutput else {
            report("Redis \(endpoint.label): \(count) commands pending, request not counted")
            return .busy
        }
        let deadline = now + Double(max(timeoutMs, 1)) / 1000
        if sent > 0 && sent == out.count { out.removeAll(keepingCapacity: true); sent = 0 }
        if let s = script, !loaded.contains(s.sha) {
            RESP.appendCommand(&out, words: [Array("SCRIPT".utf8), Array("LOAD".utf8), s.text])
            push(Entry(waiter: nil, tag: 0, deadline: deadline, kind: .scriptLoad))
            loaded.append(s.sha)
        }
        RESP.appendCommand(&out, args)
        push(Entry(waiter: waiter, tag: tag, deadline: deadline, kind: .user))
        if state == .open {
            writeOut()
            rewatch()
            // A failure while writing: its waiters (this one included) are called from the loop.
            if !done.isEmpty { timer.start(after: 0) }
        }
        return .queued
    }

    private func push(_ e: Entry) {
        ring[(head + count) % ring.count] = e
        count += 1
        if !timer.isActive { timer.start(after: max(0.001, e.deadline - loop.now)) }
    }

    // MARK: connection

    /// Starts the connect; AUTH and SELECT go first in the output (written once connected).
    private func open() -> Bool {
        guard let address = SocketAddress(ip: endpoint.ip, port: endpoint.port) else {
            backOff("failed to connect to Redis \(endpoint.label): not an IP address")
            return false
        }
        if endpoint.tls != nil && tlsContext == nil {
            backOff("failed to connect to Redis \(endpoint.label): no TLS client context: \(tlsProblem ?? "unknown error")")
            return false
        }
        switch Socket.connect(to: address) {
        case .failed(let e):
            backOff("failed to connect to Redis \(endpoint.label): \(String(cString: strerror(e)))")
            return false
        case .connected(let f), .inProgress(let f):
            fd = f   // a connect that finished at once is reported writable too
        }
        state = .connecting
        loaded.removeAll(keepingCapacity: true)
        out.removeAll(keepingCapacity: true)
        sent = 0
        inLo = 0; inHi = 0
        watch(.write)
        let deadline = loop.now + 5
        if let p = endpoint.password {
            var words: [[UInt8]] = [Array("AUTH".utf8)]
            if let u = endpoint.username { words.append(Array(u.utf8)) }
            words.append(Array(p.utf8))
            RESP.appendCommand(&out, words: words)
            push(Entry(waiter: nil, tag: 0, deadline: deadline, kind: .setup("failed to auth Redis")))
        }
        if endpoint.database != 0 {
            RESP.appendCommand(&out, words: [Array("SELECT".utf8), Array(String(endpoint.database).utf8)])
            push(Entry(waiter: nil, tag: 0, deadline: deadline, kind: .setup("failed to change Redis database")))
        }
        return true
    }

    /// The connect finished: TLS over it when asked, then the queued commands.
    private func connected() {
        let e = Socket.pendingError(fd)
        if e != 0 { fail("failed to connect to Redis \(endpoint.label): \(String(cString: strerror(e)))"); return }
        state = .open
        if let t = endpoint.tls, let ctx = tlsContext {
            // Kong (lua-resty-redis over ngx_lua's sslhandshake): `server_name` is the SNI and, with
            // ssl_verify, the name checked against the certificate; none given: no SNI, chain only.
            guard let c = ctx.connection(fd: fd, sni: t.serverName, host: t.verify ? (t.serverName ?? "") : "") else {
                fail("failed to connect to Redis \(endpoint.label): TLS could not start")
                return
            }
            tls = c
        }
        writeOut()
        rewatch()
    }

    /// Watches what the connection waits for: the connect; else always reads (replies, the server
    /// closing) and writes while bytes wait (unless TLS waits for a read first) or a TLS read waits for one.
    private func rewatch() {
        switch state {
        case .closed: return
        case .connecting: watch(.write)
        case .open:
            let wantWrite = (sent < out.count && tls?.writeWantsRead != true) || tls?.readWantsWrite == true
            watch(wantWrite ? [.read, .write] : .read)
        }
    }

    private func watch(_ ev: IOEvents) {
        if let w = io {
            if w.fd != fd || watching != ev { w.set(fd: fd, events: ev); watching = ev }
            w.start()
            return
        }
        let w = IOWatcher(loop: loop, fd: fd, events: ev) { [unowned self] e in self.ready(e) }
        io = w
        watching = ev
        w.start()
    }

    private func ready(_ ev: IOEvents) {
        switch state {
        case .closed: return
        case .connecting: connected()
        case .open:
            if let t = tls {
                // Whatever OpenSSL waited for may have come: go on writing, then read.
                if sent < out.count, ev.contains(.write) || t.writeWantsRead { writeOut() }
                if state == .open, ev.contains(.read) || t.readWantsWrite { readIn() }
            } else {
                if ev.contains(.write) { writeOut() }
                if state == .open, ev.contains(.read) { readIn() }
            }
            rewatch()
        }
        dispatch()
    }

    private func writeOut() {
        while sent < out.count {
            let n = out.count - sent
            if let t = tls {
                let r = out.withUnsafeBytes { t.write(from: $0.baseAddress! + sent, count: n) }
                switch r {
                case .bytes(let k): sent += k
                case .wouldBlock: return
                case .closed: fail("connection to Redis \(endpoint.label) lost: closed"); return
                case .failed(let why): fail(tlsFailure(t, why)); return
                }
            } else {
                let r = out.withUnsafeBytes { Socket.write(fd, from: $0.baseAddress! + sent, count: n) }
                switch r {
                case .bytes(let k): sent += k
                case .wouldBlock: return
                case .eof: fail("connection to Redis \(endpoint.label) lost: closed"); return
                case .error(let e): fail("connection to Redis \(endpoint.label) lost: \(String(cString: strerror(e)))"); return
                }
            }
        }
        out.removeAll(keepingCapacity: true)
        sent = 0
    }

    private func tlsFailure(_ t: TLSConnection, _ why: String) -> String {
        t.handshakeDone ? "connection to Redis \(endpoint.label) lost: TLS: \(why)"
                        : "failed to connect to Redis \(endpoint.label): TLS handshake failed: \(why)"
    }

    private func readIn() {
        while state == .open {
            let space = RESP.maxReply - inHi
            if space == 0 { fail("Redis \(endpoint.label): reply larger than \(RESP.maxReply) bytes"); return }
            if let t = tls {
                switch t.read(into: input + inHi, count: space) {
                case .bytes(let n):
                    inHi += n
                    parseReplies()
                    // A short read with nothing left inside OpenSSL: the socket readiness tells the rest.
                    if n < space && !t.hasPending { return }
                case .wouldBlock: return
                case .closed: closedByPeer(); return
                case .failed(let why): fail(tlsFailure(t, why)); return
                }
            } else {
                switch Socket.read(fd, into: input + inHi, count: space) {
                case .bytes(let n):
                    inHi += n
                    parseReplies()
                    if n < space { return }   // a short read emptied the socket (level-triggered watcher)
                case .wouldBlock: return
                case .eof: closedByPeer(); return
                case .error(let e): fail("connection to Redis \(endpoint.label) lost: \(String(cString: strerror(e)))"); return
                }
            }
        }
    }

    /// The server closed: with nothing pending (an idle connection, e.g. Redis' `timeout`) the next
    /// command reconnects at once; otherwise the pending commands fail.
    private func closedByPeer() {
        if count == 0 && sent == out.count {
            close()
            return
        }
        fail("connection to Redis \(endpoint.label) lost: closed")
    }

    // MARK: replies

    private func parseReplies() {
        while state == .open, inLo < inHi {
            switch RESP.parse(UnsafeRawBufferPointer(start: input + inLo, count: inHi - inLo)) {
            case .reply(let r, let length):
                inLo += length
                replied(r)
            case .incomplete:
                if inLo > 0 {
                    memmove(input, input + inLo, inHi - inLo)
                    inHi -= inLo
                    inLo = 0
                }
                return
            case .invalid(let why):
                fail("Redis \(endpoint.label): \(why)")
                return
            }
        }
        if inLo == inHi { inLo = 0; inHi = 0 }
    }

    private func replied(_ reply: RedisReply) {
        guard count > 0, let e = ring[head] else {
            fail("Redis \(endpoint.label): a reply to no command")
            return
        }
        ring[head] = nil
        head = (head + 1) % ring.count
        count -= 1
        switch e.kind {
        case .setup(let what):
            if reply.status == .error { fail("\(what) \(endpoint.label): \(reply.message)") }
        case .scriptLoad:
            if reply.status == .error { fail("Redis \(endpoint.label): SCRIPT LOAD failed: \(reply.message)") }
        case .user:
            if reply.status == .ok { backoff = 0 }
            if reply.status == .error && reply.message.hasPrefix("NOSCRIPT") { loaded.removeAll() }
            if let w = e.waiter { done.append((w, e.tag, reply)) }
        }
    }

    /// Calls the waiters of the replies read (outside any I/O; a waiter may send again).
    private func dispatch() {
        guard !dispatching, !done.isEmpty else {
            if count == 0 && !dispatching { timer.stop() }
            return
        }
        dispatching = true
        defer { dispatching = false }
        var i = 0
        while i < done.count {
            let (w, tag, r) = done[i]
            if r.status != .ok { report(r.message) }
            w.redisDone(r, tag: tag)
            i += 1
        }
        done.removeAll(keepingCapacity: true)
        if count == 0 { timer.stop() }
    }

    // MARK: failures

    private func checkDeadlines() {
        guard count > 0 else { return }
        let now = loop.now
        var next = Double.infinity
        for k in 0 ..< count {
            guard let e = ring[(head + k) % ring.count] else { continue }
            if e.deadline <= now {
                fail("Redis \(endpoint.label): timeout", status: .timeout)
                return
            }
            next = min(next, e.deadline)
        }
        timer.start(after: max(0.001, next - now))
    }

    /// Closes the socket (TLS close_notify, never waiting); pending commands are the caller's business.
    private func close() {
        io?.stop()
        tls = nil
        if fd >= 0 { Socket.close(fd) }
        fd = -1
        state = .closed
        out.removeAll(keepingCapacity: true)
        sent = 0
        inLo = 0; inHi = 0
        loaded.removeAll(keepingCapacity: true)
    }

    /// Fails every pending command, drops the connection and backs off.
    private func fail(_ message: String, status: RedisReply.Status = .down) {
        close()
        while count > 0 {
            if let e = ring[head], let w = e.waiter {
                done.append((w, e.tag, .failed(status, message)))
            }
            ring[head] = nil
            head = (head + 1) % ring.count
            count -= 1
        }
        timer.stop()
        backOff(message)
    }

    private func backOff(_ message: String) {
        backoff = backoff == 0 ? RedisConnection.minBackoff : min(backoff * 2, RedisConnection.maxBackoff)
        retryAt = loop.now + backoff
        report(message)
    }

    /// The error log, at most once per interval for this connection.
    func report(_ message: String) {
        let now = loop.now
        if now - lastReport < RedisConnection.reportInterval { suppressed += 1; return }
        lastReport = now
        log(suppressed > 0 ? "\(message) (\(suppressed) more Redis errors since the last report)" : message)
        suppressed = 0
    }
}
