// One Redis server as one worker sees it: a single pipelined connection made with Debian's hiredis
// (async API) and driven by this process's libev loop through GWEvent watchers (hiredis' `ev` hooks),
// so no call here ever blocks: the connect is nonblocking, replies are read when the socket is
// readable, and every command has a deadline.
//
// Invariants:
// - Commands are answered in the order they were sent (Redis pipelining): `pending` is a FIFO ring of
//   at most `maxPending` entries; when it is full, `send` answers `.busy` at once (the caller decides:
//   rate-limiting treats it like Redis being down). Nothing else is queued anywhere.
// - Waiters are called only from `dispatch()`, after hiredis has returned (never from inside a hiredis
//   callback): a waiter may send again, or cause anything on the connection it resumes.
// - A command past its deadline, a lost connection, a failed connect, AUTH or SELECT fails every
//   pending command and frees the hiredis context; the next attempt waits for a back-off (0.1 s
//   doubling to 5 s, reset by the first good reply). While backing off `send` answers `.down` at once.
// - Errors go to the error log at most once per `reportInterval` per connection (the rest are counted
//   and the count is logged with the next report).
// Worker-loop confined.
import CHiredis
import GWEvent

/// Where and how to connect (Kong's `config.redis.*` that matter on the wire).
public struct RedisEndpoint: Hashable, Sendable {
    public var ip: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?
    public init(ip: String, port: Int, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.ip = ip; self.port = port; self.database = database; self.username = username; self.password = password
    }
    /// Kong's pool name (`host:port;db`), for log lines.
    public var label: String { "\(ip):\(port);\(database)" }
}

/// A Lua script and its SHA-1 (hex), sent with EVALSHA; the connection loads it with SCRIPT LOAD
/// before the first use on each new connection (and again after a NOSCRIPT answer).
public final class RedisScript: Sendable {
    public let text: [UInt8]
    public let sha: [UInt8]
    public init(text: String, sha1Hex: String) { self.text = Array(text.utf8); self.sha = Array(sha1Hex.utf8) }
}

/// A finished command. Integer replies (an integer, or an array of up to 8 integers) are kept without
/// allocating; anything else is `.error` with the server's or the client's message.
public struct RedisReply {
    public enum Status: Sendable { case ok, error, timeout, down }
    public var status = Status.ok
    public var count = 0
    public var values: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0, 0, 0)
    public var message = ""
    public init() {}
    public subscript(i: Int) -> Int64 {
        get { withUnsafeBytes(of: values) { $0.load(fromByteOffset: i * 8, as: Int64.self) } }
        set { withUnsafeMutableBytes(of: &values) { $0.storeBytes(of: newValue, toByteOffset: i * 8, as: Int64.self) } }
    }
    static func failed(_ s: Status, _ m: String) -> RedisReply { var r = RedisReply(); r.status = s; r.message = m; return r }
}

/// Receives the reply of a command it sent, with the tag it sent it with.
public protocol RedisWaiter: AnyObject {
    func redisDone(_ reply: RedisReply, tag: UInt64)
}

public enum RedisSendResult: Sendable { case queued, down, busy }

public final class RedisConnection {
    public let endpoint: RedisEndpoint
    let loop: EventLoop
    let log: (String) -> Void
    public static let maxPending = 1024
    static let reportInterval = 10.0
    static let minBackoff = 0.1, maxBackoff = 5.0

    private var ac: UnsafeMutablePointer<redisAsyncContext>? = nil
    private var watcher: IOWatcher? = nil
    private var wantRead = false, wantWrite = false
    private var retryAt = 0.0
    private var backoff = 0.0
    /// Scripts loaded on the current hiredis context (by SHA).
    private var loaded: [[UInt8]] = []

    private enum Kind { case user, setup(String), scriptLoad }
    private struct Entry {
        var waiter: RedisWaiter?
        var tag: UInt64
        var deadline: Double
        var kind: Kind
    }
    private var ring: [Entry?]
    private var head = 0, count = 0
    /// Replies read, waiting for dispatch() (never more than maxPending + 1).
    private var done: [(RedisWaiter, UInt64, RedisReply)] = []
    private var failAfterCallbacks: String? = nil
    private let timer: TimerWatcher
    private var lastReport = -1e9
    private var suppressed = 0
    private var dispatching = false

    public init(endpoint: RedisEndpoint, loop: EventLoop, log: @escaping (String) -> Void) {
        self.endpoint = endpoint
        self.loop = loop
        self.log = log
        ring = Array(repeating: nil, count: RedisConnection.maxPending + 8)
        done.reserveCapacity(64)
        timer = TimerWatcher(loop: loop) {}
        timer.handler = { [unowned self] in self.checkDeadlines(); self.dispatch() }
    }

    deinit { if let a = ac { redisAsyncFree(a) } }

    public var isConnected: Bool { ac != nil }
    public var pendingCount: Int { count }

    // MARK: sending

    /// Sends one command (`args`: the words, e.g. EVALSHA sha numkeys keys… args…), answered to `waiter`
    /// with `tag` within `timeoutMs`. `.down` / `.busy`: not sent, nobody will be called.
    public func send(_ args: UnsafeBufferPointer<UnsafeRawBufferPointer>, script: RedisScript? = nil,
                     waiter: RedisWaiter, tag: UInt64, timeoutMs: Int) -> RedisSendResult {
        let now = loop.now
        if ac == nil {
            if now < retryAt { return .down }
            guard connect() else { return .down }
        }
        guard count + 3 < ring.count - 8 else { report("Redis \(endpoint.label): \(RedisConnection.maxPending) commands pending, request not counted"); return .busy }
        let deadline = now + Double(max(timeoutMs, 1)) / 1000
        if let s = script, !loaded.contains(s.sha) {
            guard issue([Array("SCRIPT".utf8), Array("LOAD".utf8), s.text], Entry(waiter: nil, tag: 0, deadline: deadline, kind: .scriptLoad)) else { return .down }
            loaded.append(s.sha)
        }
        guard queue(args) else {
            fail("Redis \(endpoint.label): could not queue a command")
            if !done.isEmpty { timer.start(after: 0) }   // the others' failures, dispatched from the loop
            return .down
        }
        push(Entry(waiter: waiter, tag: tag, deadline: deadline, kind: .user))
        return .queued
    }

    nonisolated(unsafe) private static let emptyWord: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1); p.pointee = 0; return UnsafePointer(p)
    }()

    /// A setup command (AUTH, SELECT, SCRIPT LOAD) in the pipeline (made once per connection).
    private func issue(_ words: [[UInt8]], _ e: Entry) -> Bool {
        var flat: [UInt8] = []
        for w in words { flat.append(contentsOf: w) }
        let ok: Bool = flat.withUnsafeBytes { b in
            var views: [UnsafeRawBufferPointer] = []
            var at = 0
            for w in words { views.append(UnsafeRawBufferPointer(rebasing: b[at ..< at + w.count])); at += w.count }
            return views.withUnsafeBufferPointer { queue($0) }
        }
        guard ok else { fail("Redis \(endpoint.label): could not queue a command"); return false }
        push(e)
        return true
    }

    /// redisAsyncCommandArgv over the words (hiredis copies them into its output buffer).
    private func queue(_ args: UnsafeBufferPointer<UnsafeRawBufferPointer>) -> Bool {
        withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: args.count) { ptrs in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: args.count) { lens in
                for i in 0 ..< args.count {
                    ptrs[i] = args[i].count == 0 ? RedisConnection.emptyWord
                        : args[i].baseAddress!.assumingMemoryBound(to: CChar.self)
                    lens[i] = args[i].count
                }
                return redisAsyncCommandArgv(ac, RedisConnection.onReply, Unmanaged.passUnretained(self).toOpaque(),
                                             Int32(args.count), ptrs.baseAddress, lens.baseAddress) == CHiredis_ok()
            }
        }
    }

    private func push(_ e: Entry) {
        ring[(head + count) % ring.count] = e
        count += 1
        if !timer.isActive { timer.start(after: max(0.001, e.deadline - loop.now)) }
    }

    // MARK: connection

    private func connect() -> Bool {
        guard let a = redisAsyncConnect(endpoint.ip, Int32(endpoint.port)) else {
            backOff("Redis \(endpoint.label): cannot allocate a connection")
            return false
        }
        if a.pointee.err != 0 {
            let m = String(cString: a.pointee.errstr)
            redisAsyncFree(a)
            backOff("failed to connect to Redis \(endpoint.label): \(m)")
            return false
        }
        ac = a
        loaded.removeAll(keepingCapacity: true)
        wantRead = false; wantWrite = false
        let me = Unmanaged.passUnretained(self).toOpaque()
        a.pointee.ev.data = me
        a.pointee.ev.addRead = { d in RedisConnection.from(d).setInterest(read: true, write: nil) }
        a.pointee.ev.delRead = { d in RedisConnection.from(d).setInterest(read: false, write: nil) }
        a.pointee.ev.addWrite = { d in RedisConnection.from(d).setInterest(read: nil, write: true) }
        a.pointee.ev.delWrite = { d in RedisConnection.from(d).setInterest(read: nil, write: false) }
        a.pointee.ev.cleanup = { d in RedisConnection.from(d).contextGone() }
        let fd = CHiredis_fd(a)
        if let w = watcher { w.set(fd: fd, events: []) } else {
            watcher = IOWatcher(loop: loop, fd: fd, events: []) { [unowned self] ev in self.ready(ev) }
        }
        // After the hooks: setting the connect callback asks for the first write event.
        redisAsyncSetConnectCallback(a) { c, status in
            guard let c, status != CHiredis_ok(), let d = c.pointee.ev.data else { return }
            let me = RedisConnection.from(d)
            me.failAfterCallbacks = "failed to connect to Redis \(me.endpoint.label): " + (c.pointee.errstr.map { String(cString: $0) } ?? "error")
        }
        redisAsyncSetDisconnectCallback(a) { c, status in
            guard let c, status != CHiredis_ok(), let d = c.pointee.ev.data else { return }
            let me = RedisConnection.from(d)
            if me.failAfterCallbacks == nil {
                me.failAfterCallbacks = "connection to Redis \(me.endpoint.label) lost: " + (c.pointee.errstr.map { String(cString: $0) } ?? "closed")
            }
        }
        let deadline = loop.now + 5
        if let p = endpoint.password {
            var words: [[UInt8]] = [Array("AUTH".utf8)]
            if let u = endpoint.username { words.append(Array(u.utf8)) }
            words.append(Array(p.utf8))
            guard issue(words, Entry(waiter: nil, tag: 0, deadline: deadline, kind: .setup("failed to auth Redis"))) else { return false }
        }
        if endpoint.database != 0 {
            guard issue([Array("SELECT".utf8), Array(String(endpoint.database).utf8)],
                        Entry(waiter: nil, tag: 0, deadline: deadline, kind: .setup("failed to change Redis database"))) else { return false }
        }
        return true
    }

    @inline(__always) private static func from(_ d: UnsafeMutableRawPointer?) -> RedisConnection {
        Unmanaged<RedisConnection>.fromOpaque(d!).takeUnretainedValue()
    }

    private func setInterest(read: Bool?, write: Bool?) {
        if let r = read { wantRead = r }
        if let w = write { wantWrite = w }
        guard let w = watcher else { return }
        var ev: IOEvents = []
        if wantRead { ev.insert(.read) }
        if wantWrite { ev.insert(.write) }
        w.set(events: ev)
        if ev.isEmpty { w.stop() } else { w.start() }
    }

    /// hiredis freed its context (cleanup hook): the watcher stops, the pointer is forgotten.
    private func contextGone() {
        ac = nil
        wantRead = false; wantWrite = false
        watcher?.stop()
    }

    private func ready(_ ev: IOEvents) {
        if ev.contains(.write), let a = ac { redisAsyncHandleWrite(a) }
        if ev.contains(.read), let a = ac { redisAsyncHandleRead(a) }
        afterHiredis()
    }

    /// Work hiredis callbacks left for after hiredis returned: a failure to act on, replies to dispatch.
    private func afterHiredis() {
        if let m = failAfterCallbacks {
            failAfterCallbacks = nil
            fail(m)
        }
        dispatch()
    }

    // MARK: replies

    private static let onReply: @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, r, d in
        from(d).replied(r?.assumingMemoryBound(to: redisReply.self))
    }

    private func replied(_ r: UnsafeMutablePointer<redisReply>?) {
        guard count > 0, let e = ring[head] else { return }
        ring[head] = nil
        head = (head + 1) % ring.count
        count -= 1
        guard let r else {
            if let w = e.waiter { done.append((w, e.tag, .failed(.down, "Redis \(endpoint.label): connection closed"))) }
            return
        }
        var reply = RedisReply()
        let t = r.pointee.type
        if t == CHiredis_reply_integer() {
            reply.count = 1
            reply[0] = r.pointee.integer
        } else if t == CHiredis_reply_array() {
            let n = min(Int(r.pointee.elements), 8)
            reply.count = n
            for i in 0 ..< n {
                guard let el = r.pointee.element[i] else { continue }
                reply[i] = el.pointee.type == CHiredis_reply_integer() ? el.pointee.integer : 0
            }
        } else if t == CHiredis_reply_error() {
            reply.status = .error
            reply.message = r.pointee.str.map { String(cString: $0) } ?? "error"
        } else if t == CHiredis_reply_status() || t == CHiredis_reply_string() || t == CHiredis_reply_nil() {
            reply.count = 0
        }
        switch e.kind {
        case .setup(let what):
            if reply.status == .error && failAfterCallbacks == nil { failAfterCallbacks = "\(what) \(endpoint.label): \(reply.message)" }
        case .scriptLoad:
            if reply.status == .error && failAfterCallbacks == nil { failAfterCallbacks = "Redis \(endpoint.label): SCRIPT LOAD failed: \(reply.message)" }
        case .user:
            if let m = failAfterCallbacks {
                // A setup command before it failed (AUTH, SELECT): this reply is not what was asked for.
                if let w = e.waiter { done.append((w, e.tag, .failed(.down, m))) }
                return
            }
            if reply.status == .ok { backoff = 0 }
            if reply.status == .error && reply.message.hasPrefix("NOSCRIPT") { loaded.removeAll() }
            if let w = e.waiter { done.append((w, e.tag, reply)) }
        }
    }

    /// Calls the waiters of the replies read (outside hiredis; a waiter may send again).
    private func dispatch() {
        guard !dispatching else { return }
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

    /// Fails every pending command, drops the connection and backs off.
    private func fail(_ message: String, status: RedisReply.Status = .down) {
        if let a = ac {
            // hiredis answers its pending callbacks with no reply (they land in `done` as .down) and calls
            // the cleanup hook.
            ac = nil
            a.pointee.onDisconnect = nil
            a.pointee.onConnect = nil
            redisAsyncFree(a)
            contextGone()
        }
        // Entries hiredis no longer knows (never queued, or already answered by the free above).
        while count > 0 {
            if let e = ring[head], let w = e.waiter {
                done.append((w, e.tag, .failed(status, message)))
            }
            ring[head] = nil
            head = (head + 1) % ring.count
            count -= 1
        }
        // The replies of the free above said "connection closed": the cause is `message`.
        for i in 0 ..< done.count where done[i].2.status == .down && status == .timeout { done[i].2 = .failed(.timeout, message) }
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

/// The worker's Redis connections, one per endpoint, kept across configuration generations (bounded:
/// at most `maxConnections`; when full an idle one is dropped to make room; with none idle the new
/// endpoint gets none and its requests count as Redis down).
public final class RedisClients {
    nonisolated(unsafe) public static var worker: RedisClients? = nil
    public static let maxConnections = 64
    let loop: EventLoop
    /// The worker's error log.
    public let log: (String) -> Void
    private var connections: [RedisEndpoint: RedisConnection] = [:]

    public init(loop: EventLoop, log: @escaping (String) -> Void) {
        self.loop = loop
        self.log = log
    }

    public func connection(_ e: RedisEndpoint) -> RedisConnection? {
        if let c = connections[e] { return c }
        // Full: an idle connection makes room (e.g. the old address of a Redis host name whose answer
        // changed; a handler still holding it keeps it until that handler's generation goes).
        if connections.count >= RedisClients.maxConnections,
           let idle = connections.first(where: { $0.value.pendingCount == 0 })?.key {
            connections[idle] = nil
        }
        guard connections.count < RedisClients.maxConnections else {
            log("Redis \(e.label): more than \(RedisClients.maxConnections) Redis endpoints on this worker, not connecting")
            return nil
        }
        let c = RedisConnection(endpoint: e, loop: loop, log: log)
        connections[e] = c
        return c
    }
}
