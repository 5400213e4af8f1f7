// A nonblocking TCP connection of the logging plugins (tcp-log's stream, http-log's client) on the
// worker's loop: connect, write a buffer, read what comes back, time out, close when idle; optionally
// TLS over it (tcp-log `tls`, http-log https endpoints: OpenSSL through GWTLS, the handshake running
// inside the first write and read; the peer is not verified, as Kong's loggers do not verify).
// Invariants: never blocks (SOCK_NONBLOCK, EAGAIN / WANT_READ / WANT_WRITE → wait for the IOWatcher,
// watching what OpenSSL waits for); one owner; `timeout` bounds connect, each write wait and each read
// wait; `keepalive` bounds the idle time after which the connection is closed. Worker-loop confined.
import Glibc
import GWEvent
import GWSystem
import GWTLS

/// TLS of a log destination: SNI (nil: none) and the name for the handshake.
struct LogTLS: Hashable {
    var sni: String?
}

final class LogConnection {
    enum State { case closed, connecting, open }
    let loop: EventLoop
    let address: SocketAddress
    let timeout: Double
    let keepalive: Double
    private(set) var state = State.closed
    private var fd: Int32 = -1
    private var io: IOWatcher?
    private var timer: TimerWatcher!
    /// Bytes to write (from `sent` on).
    private(set) var out: [UInt8] = []
    private var sent = 0
    /// Called when every byte of `out` was written.
    var onDrained: () -> Void = {}
    /// Called with bytes read (the owner parses them).
    var onRead: (UnsafeRawBufferPointer) -> Void = { _ in }
    /// Called when the connection failed or the peer closed it (message; nil for an idle close).
    var onClosed: (String?) -> Void = { _ in }
    /// The owner expects bytes (a response): reads are timed by `timeout`.
    var awaitingRead = false
    /// TLS over the connection (nil: plain TCP), and the TLS connection while open.
    let tlsSetup: LogTLS?
    private var tls: TLSConnection?

    init(loop: EventLoop, address: SocketAddress, timeoutMs: Int, keepaliveMs: Int, tls: LogTLS? = nil) {
        self.loop = loop
        self.address = address
        tlsSetup = tls
        timeout = max(Double(timeoutMs) / 1000, 0.001)
        keepalive = max(Double(keepaliveMs) / 1000, 0)
        timer = TimerWatcher(loop: loop) { [unowned self] in self.timedOut() }
    }

    deinit {
        tls = nil
        if fd >= 0 { Socket.close(fd) }
        inBuf?.deallocate()
    }

    /// Queues bytes and sends them (connecting first if needed).
    func send<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if sent > 0 && sent == out.count { out.removeAll(keepingCapacity: true); sent = 0 }
        out.append(contentsOf: bytes)
        switch state {
        case .closed: open()
        case .connecting: break
        case .open: writeOut()
        }
    }

    /// Queues bytes `build` appends in place (no intermediate buffer) and sends them.
    func send(building build: (inout [UInt8]) -> Void) {
        if sent > 0 && sent == out.count { out.removeAll(keepingCapacity: true); sent = 0 }
        build(&out)
        switch state {
        case .closed: open()
        case .connecting: break
        case .open: writeOut()
        }
    }

    var pendingBytes: Int { out.count - sent }

    private func open() {
        switch Socket.connect(to: address) {
        case .failed(let e): fail("connect to \(address) failed: \(String(cString: strerror(e)))")
        case .connected(let f): fd = f; connected()
        case .inProgress(let f): fd = f; state = .connecting; watch(.write); timer.start(after: timeout)
        }
    }

    /// TCP is up: TLS over it when asked, then the queued bytes.
    private func connected() {
        state = .open
        if let t = tlsSetup {
            guard let ctx = LogConnection.tlsContext,
                  let c = ctx.connection(fd: fd, sni: t.sni, host: t.sni ?? address.ip) else {
                fail("TLS to \(address) could not start")
                return
            }
            tls = c
        }
        watch(.read)
        writeOut()
    }

    /// The worker's client context of the loggers (no verification; made at the first TLS connection).
    nonisolated(unsafe) private static var tlsContextMade = false
    nonisolated(unsafe) private static var tlsContextValue: TLSClientContext? = nil
    static var tlsContext: TLSClientContext? {
        if !tlsContextMade { tlsContextMade = true; tlsContextValue = try? TLSClientContext(verify: false, depth: 1) }
        return tlsContextValue
    }

    private func watch(_ ev: IOEvents) {
        if let w = io { w.set(fd: fd, events: ev); w.start(); return }
        let w = IOWatcher(loop: loop, fd: fd, events: ev) { [unowned self] e in self.ready(e) }
        io = w
        w.start()
    }

    private func ready(_ ev: IOEvents) {
        switch state {
        case .closed: return
        case .connecting:
            let e = Socket.pendingError(fd)
            if e != 0 { fail("connect to \(address) failed: \(String(cString: strerror(e)))"); return }
            connected()
        case .open:
            if let t = tls {
                // Whatever OpenSSL waited for may have come: go on writing, then read.
                if pendingBytes > 0, ev.contains(.write) || t.writeWantsRead { writeOut() }
                if state == .open, ev.contains(.read) || t.readWantsWrite { readIn() }
                return
            }
            if ev.contains(.read) { readIn() }
            if state == .open, ev.contains(.write) { writeOut() }
        }
    }

    private func writeOut() {
        if let t = tls { writeTLS(t); return }
        while sent < out.count {
            let r = out.withUnsafeBytes { p in Socket.write(fd, from: p.baseAddress! + sent, count: out.count - sent) }
            switch r {
            case .bytes(let n): sent += n
            case .wouldBlock:
                watch([.read, .write])
                timer.start(after: timeout)
                return
            case .eof: fail("connection to \(address) closed"); return
            case .error(let e): fail("send to \(address) failed: \(String(cString: strerror(e)))"); return
            }
        }
        out.removeAll(keepingCapacity: true)
        sent = 0
        watch(.read)
        armIdle()
        onDrained()
    }

    private func writeTLS(_ t: TLSConnection) {
        while sent < out.count {
            let r = out.withUnsafeBytes { p in t.write(from: p.baseAddress! + sent, count: out.count - sent) }
            switch r {
            case .bytes(let n): sent += n
            case .wouldBlock:
                watch(t.writeWantsRead ? .read : [.read, .write])
                timer.start(after: timeout)
                return
            case .closed: fail("connection to \(address) closed"); return
            case .failed(let why): fail("TLS \(t.handshakeDone ? "write to" : "handshake with") \(address) failed: \(why)"); return
            }
        }
        out.removeAll(keepingCapacity: true)
        sent = 0
        watch(.read)
        armIdle()
        onDrained()
    }

    private func readTLS(_ t: TLSConnection, _ p: UnsafeMutableRawPointer) {
        while state == .open, tls === t {
            switch t.read(into: p, count: LogConnection.readSize) {
            case .bytes(let n): onRead(UnsafeRawBufferPointer(start: p, count: n))
            case .wouldBlock:
                if t.readWantsWrite { watch([.read, .write]) } else if pendingBytes == 0 { watch(.read) }
                armIdle()
                return
            case .closed: fail(awaitingRead || pendingBytes > 0 ? "connection to \(address) closed by the peer" : nil); return
            case .failed(let why): fail("TLS \(t.handshakeDone ? "read from" : "handshake with") \(address) failed: \(why)"); return
            }
        }
    }

    /// The read buffer (allocated at the first read: tcp-log never reads).
    private var inBuf: UnsafeMutableRawPointer? = nil
    static let readSize = 16 << 10

    private func readIn() {
        if inBuf == nil { inBuf = UnsafeMutableRawPointer.allocate(byteCount: LogConnection.readSize, alignment: 16) }
        let p = inBuf!
        if let t = tls { readTLS(t, p); return }
        while state == .open {
            let r = Socket.read(fd, into: p, count: LogConnection.readSize)
            switch r {
            case .bytes(let n):
                onRead(UnsafeRawBufferPointer(start: p, count: n))
                // A short read emptied the socket (level-triggered watcher): no read for EAGAIN.
                if n < LogConnection.readSize { armIdle(); return }
            case .wouldBlock: armIdle(); return
            case .eof: fail(awaitingRead || pendingBytes > 0 ? "connection to \(address) closed by the peer" : nil); return
            case .error(let e): fail("read from \(address) failed: \(String(cString: strerror(e)))"); return
            }
        }
    }

    /// Nothing to write: wait for a response (`timeout`) or close after `keepalive` idle.
    func armIdle() {
        guard state == .open, pendingBytes == 0 else { return }
        if awaitingRead { timer.start(after: timeout) } else if keepalive > 0 { timer.start(after: keepalive) } else { close() }
    }

    private func timedOut() {
        switch state {
        case .closed: return
        case .connecting: fail("timeout connecting to \(address)")
        case .open:
            if pendingBytes > 0 || awaitingRead { fail("timeout talking to \(address)") } else { close() }
        }
    }

    private func fail(_ message: String?) {
        close()
        onClosed(message)
    }

    /// Closes the connection and forgets unsent bytes.
    func close() {
        timer.stop()
        io?.stop()
        tls = nil   // close_notify (never waiting) and free, before the fd is closed
        if fd >= 0 { Socket.close(fd) }
        fd = -1
        state = .closed
        out.removeAll(keepingCapacity: true)
        sent = 0
        awaitingRead = false
    }
}

/// tcp-log: entries + "\n" appended to a bounded buffer, handed to one keep-alive connection by the
/// flush. Bytes the connection could not deliver (refused, reset, timed out) are lost and counted.
final class StreamSink: LogSink {
    private let conn: LogConnection
    private var buffer: [UInt8] = []
    private var entries = 0
    /// Entries handed to the connection and not yet written.
    private var inFlight = 0
    static let limit = 1 << 20

    init(owner: LogSinks, address: SocketAddress, timeoutMs: Int, keepaliveMs: Int, tls: LogTLS?) {
        conn = LogConnection(loop: owner.loop, address: address, timeoutMs: timeoutMs, keepaliveMs: keepaliveMs, tls: tls)
        super.init(owner: owner, label: tls == nil ? "tcp-log \(address)" : "tcp-log tls \(address)")
        conn.onDrained = { [unowned self] in self.inFlight = 0 }
        conn.onClosed = { [unowned self] why in
            if let why, self.inFlight > 0 { self.drop(self.inFlight, why) }
            self.inFlight = 0
        }
    }

    func append(_ entry: [UInt8]) {
        guard buffer.count + conn.pendingBytes + entry.count < StreamSink.limit else { drop(1, "send buffer full"); return }
        buffer.append(contentsOf: entry)
        buffer.append(0x0A)
        entries += 1
        owner.markDirty(self)
    }

    override func flush() {
        guard !buffer.isEmpty else { return }
        inFlight += entries
        entries = 0
        conn.send(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
