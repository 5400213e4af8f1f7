// http-log's delivery, per worker and queue key: a LogQueue (Kong's queue semantics) drained by a
// nonblocking HTTP/1.1 client on the worker's loop. A batch is one request: the entry itself when
// max_batch_size is 1, else a JSON array of the entries; a status < 300 is a success, anything else
// (status, refused connection, timeout, reset) a failure the queue retries with back-off.
//
// Socket work is batched, not the requests: the batches due together leave as one train, pipelined
// HTTP/1.1 requests written with one write on a keep-alive connection, their responses read together
// and matched in order. A new train starts at most once per `pace` per queue (the first entry after a
// quiet period leaves at once), or at once when a whole train (`trainLength` requests) is waiting; so
// under load a request costs the worker a fraction of a syscall, and Kong's one-entry-per-POST
// (max_batch_size 1) is kept. In a train, the requests that got a 2xx are delivered; the failed ones
// (status, or no response before the connection ended) are retried together, in order.
//
// Invariants: the request path only appends to the queue and arms the sender's timer (no syscall); the
// timer hands due trains to idle connections (one per concurrency slot, kept alive `keepalive` ms);
// the queue bounds memory, a train is bounded by `trainLength` requests and `trainBytes`; drops and
// losses are counted and logged at most once per LogSinks.reportInterval. Worker-loop confined.
import GWEvent
import GWHTTP
import GWSystem

/// Where and how an http-log queue sends (parsed once from the instance's config).
struct HTTPLogTarget: Equatable {
    var address: SocketAddress
    /// "METHOD /path HTTP/1.1\r\nHost: …\r\nContent-Type: …\r\n[Authorization: Basic …\r\n][headers]Content-Length: "
    var headPrefix: [UInt8]
    var timeoutMs: Int
    var keepaliveMs: Int
    /// https: TLS with SNI = the host name (none for an IP literal); not verified (Kong's http-log).
    var tls: LogTLS?

    /// The parts of `http[s]://[user[:pass]@]host[:port][/path]` (host without brackets; nil: not that shape).
    static func split(_ endpoint: String) -> (authority: Substring, userinfo: Substring?, host: String, port: Int, rest: Substring, https: Bool)? {
        let scheme = endpoint.prefix(8).lowercased()
        let https = scheme.hasPrefix("https://")
        guard https || scheme.hasPrefix("http://") else { return nil }
        var rest = Substring(endpoint.dropFirst(https ? 8 : 7))
        let authEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authority = rest[..<authEnd]
        rest = rest[authEnd...]
        var userinfo: Substring? = nil
        if let at = authority.lastIndex(of: "@") { userinfo = authority[..<at]; authority = authority[authority.index(after: at)...] }
        var host = authority, port = https ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex) ..< close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { return nil }; port = p }
        } else if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = p
            host = authority[..<colon]
        }
        return (authority, userinfo, String(host), port, rest, https)
    }

    /// Parses `http[s]://[user[:pass]@]host[:port][/path]`; `resolve` gives the host's address (an IP
    /// literal, localhost, or the master's answer for a name; nil: none yet).
    static func parse(endpoint: String, method: String, contentType: String, timeoutMs: Int, keepaliveMs: Int,
                      headers: [(String, String)], resolve: (String, Int) -> SocketAddress?) -> HTTPLogTarget? {
        guard let (authority, userinfo, host, port, rest, https) = split(endpoint) else { return nil }
        guard let address = resolve(host, port) else { return nil }
        // Kong sends to scheme://host:port/path (resty.http request_uri): the path, default "/".
        var path = rest.prefix { $0 != "#" }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        var h: [UInt8] = []
        func put(_ s: String) { h.append(contentsOf: s.utf8) }
        put("\(method) \(path) HTTP/1.1\r\nHost: ")
        put(String(authority))
        put("\r\nUser-Agent: kong/3.10.0\r\nContent-Type: \(contentType)\r\n")
        if let u = userinfo { put("Authorization: Basic "); h.append(contentsOf: base64Encode(Array(u.utf8))); put("\r\n") }
        for (k, v) in headers { put("\(k): \(v)\r\n") }
        put("Content-Length: ")
        let tls = https ? LogTLS(sni: LogHosts.isName(host) || host == "localhost" ? host : nil) : nil
        return HTTPLogTarget(address: address, headPrefix: h, timeoutMs: timeoutMs, keepaliveMs: keepaliveMs, tls: tls)
    }
}

func base64Encode(_ b: [UInt8]) -> [UInt8] {
    let t = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i + 2 < b.count {
        let n = Int(b[i]) << 16 | Int(b[i + 1]) << 8 | Int(b[i + 2])
        out += [t[n >> 18 & 63], t[n >> 12 & 63], t[n >> 6 & 63], t[n & 63]]
        i += 3
    }
    if b.count - i == 1 {
        let n = Int(b[i]) << 16
        out += [t[n >> 18 & 63], t[n >> 12 & 63], 0x3D, 0x3D]
    } else if b.count - i == 2 {
        let n = Int(b[i]) << 16 | Int(b[i + 1]) << 8
        out += [t[n >> 18 & 63], t[n >> 12 & 63], t[n >> 6 & 63], 0x3D]
    }
    return out
}

final class HTTPLogSender {
    unowned let owner: LogSinks
    let key: String
    private(set) var target: HTTPLogTarget
    let queue: LogQueue
    private var timer: TimerWatcher!
    private var clients: [HTTPLogClient] = []
    private var lastFailureReport = -1e9
    private var lastDropReport = -1e9
    private var flushing = false

    init(owner: LogSinks, key: String, target: HTTPLogTarget, config: LogQueueConfig) {
        self.owner = owner
        self.key = key
        self.target = target
        queue = LogQueue(config: config)
        timer = TimerWatcher(loop: owner.loop) { [unowned self] in self.pump() }
    }

    /// A newer instance with the same queue key: its parameters apply to the next batches.
    func update(target t: HTTPLogTarget, config: LogQueueConfig) {
        if t != target {
            target = t
            for c in clients where !c.busy { c.conn.close() }
            clients.removeAll { !$0.busy }
        }
        if config != queue.config { queue.config = config }
    }

    /// Requests per train, and the bytes of a train (its first batch always goes).
    static let trainLength = 128
    static let trainBytes = 512 << 10
    /// The least time between two trains of a queue (unless a whole train waits).
    static let pace = LogSinks.flushDelay
    private var lastTrain = -1e9
    /// When the timer fires (nil: not armed).
    private var wakeTime: Double? = nil

    /// The request path: queue the entry, wake the sender when the next train may leave.
    func enqueue(_ entry: [UInt8]) {
        let now = owner.loop.now
        queue.enqueue(entry, now: now)
        if queue.unreported > 0 || queue.failureMessage != nil { report() }
        if let t = queue.wakeAt(now: now, newAfter: newTrainAfter), wakeTime == nil || t < wakeTime! { arm(t, now) }
    }

    /// New trains wait for the pace, unless a whole train is queued.
    private var newTrainAfter: Double {
        queue.count >= HTTPLogSender.trainLength * max(1, queue.config.maxBatchSize) ? 0 : lastTrain + HTTPLogSender.pace
    }

    private func arm(_ t: Double, _ now: Double) {
        wakeTime = t
        timer.start(after: max(t - now, 0))
    }

    /// Hands every due train to an idle client, then sleeps until the queue's next deadline.
    func pump() {
        let now = owner.loop.now
        wakeTime = nil
        while let b = queue.next(now: now, flushing: flushing, train: HTTPLogSender.trainLength,
                                 trainBytes: HTTPLogSender.trainBytes, newUnits: flushing || now >= newTrainAfter) {
            if b.count > 0 { lastTrain = now }
            client().send(b, target: target)
        }
        if queue.unreported > 0 || queue.failureMessage != nil { report() }
        var wake = queue.wakeAt(now: now, newAfter: flushing ? 0 : newTrainAfter)
        if let r = reportDue { wake = min(wake ?? r, r) }
        if let t = wake { arm(max(t, now + 0.001), now) } else { timer.stop() }
    }

    /// An idle client to the current target (clients left on an older address, e.g. after a DNS
    /// change, are closed once idle).
    private func client() -> HTTPLogClient {
        for c in clients where !c.busy && !c.matches(target) { c.conn.close() }
        clients.removeAll { !$0.busy && !$0.matches(target) }
        if let c = clients.first(where: { !$0.busy }) { return c }
        let c = HTTPLogClient(sender: self, target: target)
        clients.append(c)
        return c
    }

    /// A batch finished (from a client).
    func finished(_ id: Int, failed: [Bool], error: String) {
        queue.done(id, failed: failed, now: owner.loop.now, error: error)
        pump()
    }

    /// Error-log lines, at most one per interval for failures and one per interval for drops; the drop
    /// line counts every entry dropped or lost since the previous one (a drop inside the interval is
    /// reported when it ends: the timer wakes for it).
    private func report() {
        let now = owner.loop.now
        if let m = queue.failureMessage, now - lastFailureReport >= LogSinks.reportInterval {
            lastFailureReport = now
            queue.failureMessage = nil
            owner.report("error", "http-log queue to \(target.address): \(m)")
        }
        guard queue.unreported > 0 else { return }
        if now - lastDropReport >= LogSinks.reportInterval {
            lastDropReport = now
            let n = queue.unreported
            queue.unreported = 0
            owner.report("error", "http-log queue to \(target.address): \(queue.dropMessage ?? "entries dropped"): \(n) entries dropped or lost since the last report (\(queue.dropped + queue.lost) in all)")
            queue.dropMessage = nil
        }
    }

    /// When the pending drop count may be reported (nil: nothing pending).
    private var reportDue: Double? { queue.unreported > 0 ? lastDropReport + LogSinks.reportInterval : nil }

    /// Worker exit: send what is queued without waiting for the coalescing delay.
    func shutdown() {
        flushing = true
        pump()
    }
}

/// One keep-alive connection of an http-log queue and the train it carries (its requests pipelined,
/// their responses matched in order).
final class HTTPLogClient {
    unowned let sender: HTTPLogSender
    let conn: LogConnection
    private let parser = HTTPResponseParser()
    private var unit = 0
    /// Requests in the train, responses read so far, and which requests failed.
    private var parts = 0
    private var answered = 0
    private var failed: [Bool] = []
    private var firstError = ""
    var busy: Bool { unit != 0 }
    func matches(_ t: HTTPLogTarget) -> Bool { conn.address == t.address && conn.tlsSetup == t.tls }

    init(sender: HTTPLogSender, target: HTTPLogTarget) {
        self.sender = sender
        conn = LogConnection(loop: sender.owner.loop, address: target.address, timeoutMs: target.timeoutMs,
                             keepaliveMs: target.keepaliveMs, tls: target.tls)
        conn.onRead = { [unowned self] bytes in self.read(bytes) }
        conn.onClosed = { [unowned self] why in self.closed(why) }
    }

    func send(_ b: LogQueue.Batch, target: HTTPLogTarget) {
        unit = b.id
        parts = b.parts
        answered = 0
        failed.removeAll(keepingCapacity: true)
        firstError = ""
        parser.reset()
        parser.expectResponse(to: .post)
        let single = sender.queue.config.maxBatchSize == 1   // Kong: one object only then; else an array (even of one)
        conn.awaitingRead = true
        conn.send(building: { request in Self.write(b, parts: parts, single: single, target: target, into: &request) })
    }

    /// The train's requests, appended to `request`.
    private static func write(_ b: LogQueue.Batch, parts: Int, single: Bool, target: HTTPLogTarget, into request: inout [UInt8]) {
        for i in 0 ..< parts {
            let entries = b.part(i)
            request.append(contentsOf: target.headPrefix)
            var length = 0
            if single { length = b.entry(entries.lowerBound).count } else {
                length = 2 + max(0, entries.count - 1)
                for k in entries { length += b.entry(k).count }
            }
            LogSerializer.decimal(&request, Int64(length))
            request.append(0x0D); request.append(0x0A); request.append(0x0D); request.append(0x0A)
            if single { request.append(contentsOf: b.entry(entries.lowerBound)) } else {
                request.append(0x5B)
                for k in entries {
                    if k > entries.lowerBound { request.append(0x2C) }
                    request.append(contentsOf: b.entry(k))
                }
                request.append(0x5D)
            }
        }
    }

    private func read(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes
        // The parser pauses after a head or body piece: call it again (with what is left, possibly
        // nothing) until it needs more bytes.
        var paused = false
        while unit != 0, !rest.isEmpty || paused {
            paused = false
            switch parser.execute(rest) {
            case .needMore: return
            case .head(let n):
                rest = UnsafeRawBufferPointer(rebasing: rest[n...]); paused = true
            case .body(_, let n), .informational(let n):
                rest = UnsafeRawBufferPointer(rebasing: rest[n...]); paused = true
            case .messageComplete(let n):
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
                let keep = parser.head.keepAlive
                answer(status: parser.head.status)
                // Closed before the unit is reported: the sender may hand this client its next train.
                if answered == parts { if !keep { conn.close() }; complete(); return }
                if !keep { conn.close(); closed("connection closed by \(conn.address) after \(answered) of \(parts) requests"); return }
                parser.reset()
                parser.expectResponse(to: .post)
                paused = true
            case .upgrade, .error:
                conn.close()
                closed("invalid response from \(conn.address)")
                return
            }
        }
    }

    private func answer(status st: Int) {
        answered += 1
        let bad = st >= 300
        failed.append(bad)
        if bad, firstError.isEmpty { firstError = "request to \(conn.address) returned status code \(st)" }
    }

    private func complete() {
        let id = unit
        unit = 0
        conn.awaitingRead = false
        conn.armIdle()
        sender.finished(id, failed: failed, error: firstError)
    }

    /// The connection ended (or must be given up): the requests without a response failed.
    private func closed(_ why: String?) {
        guard unit != 0 else { return }
        if parser.finish() == .messageComplete {
            answer(status: parser.head.status)
            if answered == parts { complete(); return }
        }
        let message = "failed request to \(conn.address): \(why ?? "connection to \(conn.address) closed")"
        if firstError.isEmpty { firstError = message }
        while failed.count < parts { failed.append(true) }
        let id = unit
        unit = 0
        sender.finished(id, failed: failed, error: firstError)
    }
}
