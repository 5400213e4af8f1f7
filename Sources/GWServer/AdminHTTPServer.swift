// The master's HTTP/1.1 listeners: the Admin API (admin_listen, 127.0.0.1:8001 by default) and,
// with another handler, the dashboard (admin_gui_listen, DashboardServer.swift): keep-alive,
// pipelining, bodies up to 10 MiB (Kong's nginx_admin_client_max_body_size), parsed with the same
// llhttp wrapper as the proxy. Requests are handed whole to `handler` (GWAdmin for admin_listen), which
// answers through a callback: at once, or later (a write on PostgreSQL is answered after its commit).
// While a connection waits for its answer it reads nothing more (pipelined requests stay in order and
// its input stays bounded). Master-loop confined.
import GWConfig
import GWEvent
import GWHTTP
import GWSystem

struct AdminHTTPRequest {
    var method: String
    var target: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    var peer: String
}

struct AdminHTTPResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
}

final class AdminHTTPServer {
    typealias Handler = (AdminHTTPRequest, @escaping (AdminHTTPResponse) -> Void) -> Void
    let loop: EventLoop
    let handler: Handler
    let log: ErrorLog
    let accessLog: LogFile?
    private var listeners: [(fd: Int32, spec: ListenSpec, watcher: IOWatcher)] = []
    private var connections: [ObjectIdentifier: AdminConnection] = [:]
    static let maxBody = 10 * 1024 * 1024
    let time = CachedTime()

    init(loop: EventLoop, log: ErrorLog, accessLog: LogFile?, handler: @escaping Handler) {
        self.loop = loop
        self.log = log
        self.accessLog = accessLog
        self.handler = handler
    }

    /// Binds the admin addresses (a reload may change them: unchanged ones are kept).
    func listen(_ specs: [ListenSpec]) throws {
        var keep: [(fd: Int32, spec: ListenSpec, watcher: IOWatcher)] = []
        for s in specs {
            if let existing = listeners.first(where: { $0.spec.address == s.address }) {
                keep.append(existing)
                continue
            }
            let fd: Int32
            do { fd = try Socket.listen(on: s.address, reusePort: false, backlog: s.backlog) } catch {
                // Sockets made by this call are closed; the running listeners stay as they were.
                for k in keep where !listeners.contains(where: { $0.fd == k.fd }) { k.watcher.stop(); Socket.close(k.fd) }
                throw error
            }
            let w = IOWatcher(loop: loop, fd: fd, events: .read) { [unowned self] _ in self.accept(fd) }
            w.start()
            keep.append((fd, s, w))
        }
        for l in listeners where !keep.contains(where: { $0.fd == l.fd }) {
            l.watcher.stop()
            Socket.close(l.fd)
        }
        listeners = keep
    }

    var listenFDs: [Int32] { listeners.map(\.fd) }

    /// USR1: reopen the access log (after logrotate moved it).
    func reopenLogs() { accessLog?.reopen() }

    private func accept(_ lfd: Int32) {
        var peer = SocketAddress(storage: .init(), length: 0)
        while let fd = Socket.accept(lfd, peer: &peer) {
            let c = AdminConnection(server: self, fd: fd, peer: peer)
            connections[ObjectIdentifier(c)] = c
        }
    }

    func closed(_ c: AdminConnection) { connections[ObjectIdentifier(c)] = nil }

    func closeAll() {
        for l in listeners { l.watcher.stop(); Socket.close(l.fd) }
        listeners = []
        for (_, c) in connections { c.close() }
        connections = [:]
    }

    func logAccess(_ req: AdminHTTPRequest?, status: Int, bytes: Int) {
        guard let f = accessLog else { return }
        time.update()
        var line = Array((req?.peer ?? "-").utf8)
        line += Array(" - - [".utf8) + time.accessLogTime + Array("] \"".utf8)
        if let r = req { line += Array("\(r.method) \(r.target) HTTP/1.1".utf8) }
        line += Array("\" \(status) \(bytes)\n".utf8)
        f.write(line)
    }
}

final class AdminConnection {
    unowned let server: AdminHTTPServer
    var fd: Int32
    let peer: SocketAddress
    var io: IOWatcher!
    let timer: TimerWatcher
    let parser: HTTPRequestParser
    var inBuf: [UInt8] = []
    var out: [UInt8] = []
    var outSent = 0
    var body: [UInt8] = []
    var inMessage = false
    var closeAfter = false
    /// A request was handed to the handler and its answer has not come back yet.
    var waiting = false

    init(server: AdminHTTPServer, fd: Int32, peer: SocketAddress) {
        self.server = server
        self.fd = fd
        self.peer = peer
        parser = HTTPRequestParser(limits: HTTPParserLimits(maxRequestLineLength: 65536, maxHeaderLineLength: 65536,
                                                             maxHeadBytes: 1 << 20, maxHeaderCount: 1000,
                                                             maxBodySize: AdminHTTPServer.maxBody))
        timer = TimerWatcher(loop: server.loop) {}
        io = IOWatcher(loop: server.loop, fd: fd, events: .read) { [unowned self] ev in self.handle(ev) }
        timer.handler = { [unowned self] in self.close() }
        io.start()
        timer.start(after: 60)
    }

    private func handle(_ ev: IOEvents) {
        if ev.contains(.write) { flush(); if fd < 0 { return } }
        guard ev.contains(.read) else { return }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while fd >= 0 {
            let r = chunk.withUnsafeMutableBytes { Socket.read(fd, into: $0.baseAddress!, count: 65536) }
            switch r {
            case .bytes(let n):
                inBuf += chunk[0..<n]
                timer.start(after: 60)
            case .wouldBlock:
                process()
                return
            case .eof:
                // The client half-closed (request + FIN, e.g. `nc -q`, HTTP/1.0 tools): answer what
                // was received, then close once the output is flushed. Read interest is dropped so
                // the level-triggered EOF does not spin while output is pending.
                process()
                guard fd >= 0 else { return }
                closeAfter = true
                if outSent >= out.count && !waiting { close() } else { updateInterest() }
                return
            case .error:
                close()
                return
            }
        }
    }

    private func process() {
        var paused = false   // llhttp paused on an event: run it again even with no new bytes
        while fd >= 0, !waiting, !inBuf.isEmpty || paused {
            paused = false
            let step = inBuf.withUnsafeBytes { parser.execute($0) }
            switch step {
            case .needMore:
                inBuf.removeAll(keepingCapacity: true)
            case .head(let c):
                inBuf.removeFirst(c)
                inMessage = true
                body.removeAll(keepingCapacity: true)
                paused = true
            case .body(let piece, let c):
                body.append(contentsOf: piece)
                inBuf.removeFirst(c)
                paused = true
            case .messageComplete(let c):
                inBuf.removeFirst(c)
                if inMessage { dispatch() }
            case .informational(let c), .upgrade(let c):
                inBuf.removeFirst(c)
            case .error(let e):
                inBuf.removeAll()
                let msg = e.status == 413 ? "Payload too large" : e.kongMessage
                respond(AdminHTTPResponse(status: e.status, headers: [("Content-Type", "application/json; charset=utf-8")],
                                          body: Array("{\"message\":\"\(msg)\"}".utf8)), request: nil, close: true)
                return
            }
        }
    }

    private func dispatch() {
        inMessage = false
        let h = parser.head
        var headers: [(name: String, value: String)] = []
        for i in 0..<h.headers.count { headers.append((h.headers.name(at: i), h.headers.value(at: i))) }
        let method = h.methodName
        let req = AdminHTTPRequest(method: method, target: h.targetString, headers: headers, body: body, peer: peer.ip)
        if h.expectsContinue { }   // the body is already here: nothing to acknowledge
        let keepAlive = h.keepAlive
        waiting = true
        var inHandler = true
        server.handler(req) { [weak self] resp in
            guard let self, self.fd >= 0, self.waiting else { return }
            self.waiting = false
            self.respond(resp, request: req, close: !keepAlive)
            // An answer given later resumes the input; one given at once returns to `process`'s loop.
            if !inHandler, self.fd >= 0, !self.closeAfter {
                self.process()
                self.updateInterest()
            }
        }
        inHandler = false
        if waiting { updateInterest() }
    }

    /// Read interest unless an answer is awaited or the connection closes after its output; write
    /// interest while output is pending.
    private func updateInterest() {
        guard fd >= 0 else { return }
        var ev: IOEvents = []
        if outSent < out.count { ev.insert(.write) }
        if !waiting && !closeAfter { ev.insert(.read) }
        io.set(events: ev)
        if ev.isEmpty { io.stop() } else { io.start() }
    }

    private func respond(_ r: AdminHTTPResponse, request: AdminHTTPRequest?, close c: Bool) {
        HTTPWriter.appendStatusLine(status: r.status, into: &out)
        var hasCT = false
        for (n, v) in r.headers {
            if n.lowercased() == "content-length" || n.lowercased() == "connection" { continue }
            if n.lowercased() == "content-type" { hasCT = true }
            HTTPWriter.appendHeader(n, v, into: &out)
        }
        if !hasCT && !r.body.isEmpty { HTTPWriter.appendHeader("Content-Type", "application/json; charset=utf-8", into: &out) }
        let isHead = request?.method == "HEAD"
        if r.status != 204 && r.status != 304 { HTTPWriter.appendHeader("Content-Length", r.body.count, into: &out) }
        HTTPWriter.appendHeader("Connection", c ? "close" : "keep-alive", into: &out)
        HTTPWriter.appendEndOfHead(into: &out)
        if !isHead && r.status != 204 && r.status != 304 { out += r.body }
        server.logAccess(request, status: r.status, bytes: r.body.count)
        if c { closeAfter = true }
        flush()
    }

    private func flush() {
        while outSent < out.count {
            let r = out.withUnsafeBytes { Socket.write(fd, from: $0.baseAddress! + outSent, count: out.count - outSent) }
            switch r {
            case .bytes(let n): outSent += n
            case .wouldBlock:
                updateInterest()
                return
            case .eof, .error:
                close()
                return
            }
        }
        out.removeAll(keepingCapacity: true)
        outSent = 0
        if closeAfter { close(); return }
        updateInterest()
    }

    func close() {
        guard fd >= 0 else { return }
        io.stop()
        timer.stop()
        Socket.close(fd)
        fd = -1
        server.closed(self)
    }
}
