// Where the logging plugins' entries go, per worker: one sink per destination (file path, TCP or UDP
// address, http-log queue key), shared by every plugin instance and configuration generation that
// names it (Kong keeps its file descriptors and queues per worker in the same way).
//
// Invariants: nothing here runs a syscall on the request path. A handler appends the entry to the
// sink's bounded buffer and arms the worker's flush timer (0.2 s, one-shot, armed only when idle);
// files are written, sockets connected and fed by that timer and by IOWatchers on the worker's loop,
// with nonblocking sockets. Every buffer has a byte bound; an entry that does not fit is dropped and
// counted, and drops are reported in the error log at most once per `reportInterval` per sink.
// Worker-loop confined (`LogSinks.worker` is set by the worker before the first request).
import Glibc
import GWEvent
import GWSystem

public final class LogSinks {
    /// The worker's sinks (nil in the master and in unit tests that do not install one).
    nonisolated(unsafe) public static var worker: LogSinks? = nil

    let loop: EventLoop
    /// The worker's error log (level name, message).
    let report: (String, String) -> Void
    private var files: [String: FileSink] = [:]
    private var streams: [String: StreamSink] = [:]
    private var datagrams: [String: DatagramSink] = [:]
    private var queues: [String: HTTPLogSender] = [:]
    private var flushTimer: TimerWatcher!
    /// Sinks with buffered bytes, flushed by the timer.
    private var dirty: [LogSink] = []
    static let flushDelay = 0.2
    static let reportInterval = 60.0

    public init(loop: EventLoop, report: @escaping (String, String) -> Void) {
        self.loop = loop
        self.report = report
        flushTimer = TimerWatcher(loop: loop) { [unowned self] in self.flushAll() }
    }

    /// The sink of a file (one per path and worker).
    func file(_ path: String) -> FileSink {
        if let f = files[path] { return f }
        let f = FileSink(owner: self, path: path)
        files[path] = f
        return f
    }

    /// At most this many stream and datagram sinks per worker (a host name whose address keeps changing
    /// leaves old sinks behind); past it, new destinations get no sink and their entries are dropped.
    static let maxSinks = 256

    func stream(address a: SocketAddress, timeoutMs: Int, keepaliveMs: Int, tls: LogTLS?) -> StreamSink? {
        let key = "\(a):\(timeoutMs):\(keepaliveMs):\(tls.map { "tls:\($0.sni ?? "")" } ?? "")"
        if let s = streams[key] { return s }
        guard streams.count < LogSinks.maxSinks else { dropUnresolved("tcp-log", "\(a)", why: "too many tcp-log destinations"); return nil }
        let s = StreamSink(owner: self, address: a, timeoutMs: timeoutMs, keepaliveMs: keepaliveMs, tls: tls)
        streams[key] = s
        return s
    }

    func datagram(address a: SocketAddress) -> DatagramSink? {
        let key = "\(a)"
        if let s = datagrams[key] { return s }
        guard datagrams.count < LogSinks.maxSinks else { dropUnresolved("udp-log", key, why: "too many udp-log destinations"); return nil }
        let s = DatagramSink(owner: self, address: a)
        datagrams[key] = s
        return s
    }

    /// Entries that have no destination (a host name without an address yet, too many sinks): counted
    /// per destination and reported at most once per interval.
    private var undelivered: [String: LogSink] = [:]
    func dropUnresolved(_ plugin: String, _ host: String, why: String? = nil) {
        let s: LogSink
        if let x = undelivered[host] { s = x } else {
            s = LogSink(owner: self, label: "\(plugin) \(host)")
            if undelivered.count < LogSinks.maxSinks { undelivered[host] = s }
        }
        s.drop(1, why ?? "no address for \(host) yet (name not resolved by the master)")
    }

    /// The http-log queue named `key` (Kong's queue name); a newer instance's parameters replace the
    /// queue's for the next batches.
    func httpQueue(key: String, target: HTTPLogTarget, config: LogQueueConfig) -> HTTPLogSender {
        if let q = queues[key] { q.update(target: target, config: config); return q }
        let q = HTTPLogSender(owner: self, key: key, target: target, config: config)
        queues[key] = q
        return q
    }

    /// An IP literal, or `localhost` (127.0.0.1); nil for a name (LogHosts: the master resolves names).
    static func address(_ host: String, _ port: Int) -> SocketAddress? {
        var h = host
        if h == "localhost" { h = "127.0.0.1" }
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        return SocketAddress(ip: h, port: port)
    }

    /// A sink has new bytes: flush it on the next timer.
    @inline(__always) func markDirty(_ s: LogSink) {
        guard !s.isDirty else { return }
        s.isDirty = true
        dirty.append(s)
        if !flushTimer.isActive { flushTimer.start(after: LogSinks.flushDelay) }
    }

    /// Writes every buffered sink (the timer, a full buffer, worker exit).
    public func flushAll() {
        let list = dirty
        dirty.removeAll(keepingCapacity: true)
        for s in list { s.isDirty = false; s.flush() }
    }

    /// SIGUSR1: files are reopened by name at their next write.
    public func reopen() { for f in files.values { f.flush(); f.closeFile() } }

    /// Worker exit: last flush (files synchronously; sockets get what a nonblocking send takes).
    public func shutdown() {
        flushAll()
        for q in queues.values { q.shutdown() }
    }
}

/// A destination with a buffer flushed by the worker's timer.
class LogSink {
    unowned let owner: LogSinks
    var isDirty = false
    /// Entries dropped since the last report, and when the last report was made (loop time).
    var dropped = 0
    var lastReport = -1e9
    let label: String

    init(owner: LogSinks, label: String) { self.owner = owner; self.label = label }

    func flush() {}

    /// Counts `n` lost entries and reports them at most once per interval.
    func drop(_ n: Int, _ why: String) {
        dropped += n
        let now = owner.loop.now
        guard now - lastReport >= LogSinks.reportInterval else { return }
        lastReport = now
        owner.report("error", "\(label): \(dropped) log entries dropped (\(why))")
        dropped = 0
    }
}

/// file-log: entries + "\n" appended to a buffer of at most `limit` bytes; written with one write(2)
/// per flush, O_APPEND|O_CREAT, mode 0644; the fd is kept per worker (closed on reopen).
final class FileSink: LogSink {
    let path: String
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    static let limit = 64 << 10

    init(owner: LogSinks, path: String) {
        self.path = path
        super.init(owner: owner, label: "file-log \(path)")
        buffer.reserveCapacity(FileSink.limit)
    }

    func append(_ entry: [UInt8], reopen: Bool) {
        if reopen { reopenNext = true }
        buffer.append(contentsOf: entry)
        buffer.append(0x0A)
        if buffer.count >= FileSink.limit { flush() } else { owner.markDirty(self) }
    }
    private var reopenNext = false

    override func flush() {
        guard !buffer.isEmpty else { return }
        if reopenNext { closeFile(); reopenNext = false }
        if fd < 0 {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            if fd < 0 {
                let e = errno
                buffer.removeAll(keepingCapacity: true)
                drop(1, "cannot open \(path): \(String(cString: strerror(e)))")
                return
            }
        }
        let n = buffer.withUnsafeBytes { p in write(fd, p.baseAddress, p.count) }
        if n < buffer.count { drop(1, "short write to \(path)") }
        buffer.removeAll(keepingCapacity: true)
    }

    func closeFile() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}

/// udp-log: one datagram per entry, sent by the flush on a connected nonblocking UDP socket with
/// sendmmsg(2) (64 datagrams per call); the pending entries are bounded by `limit` bytes.
final class DatagramSink: LogSink {
    let address: SocketAddress
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    /// End offset of each datagram in `buffer`.
    private var ends: [Int] = []
    static let limit = 1 << 20

    init(owner: LogSinks, address: SocketAddress) {
        self.address = address
        super.init(owner: owner, label: "udp-log \(address)")
    }

    func append(_ entry: [UInt8]) {
        guard buffer.count + entry.count <= DatagramSink.limit else { drop(1, "send buffer full"); return }
        buffer.append(contentsOf: entry)
        ends.append(buffer.count)
        owner.markDirty(self)
    }

    override func flush() {
        defer { buffer.removeAll(keepingCapacity: true); ends.removeAll(keepingCapacity: true) }
        if fd < 0 {
            fd = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { drop(ends.count, "socket: \(String(cString: strerror(errno)))"); return }
            var st = address.storage
            let rc = withUnsafePointer(to: &st) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) } }
            if rc != 0 { drop(ends.count, "connect: \(String(cString: strerror(errno)))"); close(fd); fd = -1; return }
        }
        var i = 0
        while i < ends.count {
            let k = min(64, ends.count - i)
            let n = buffer.withUnsafeBytes { p in
                ends.withUnsafeBufferPointer { e in Socket.sendDatagrams(fd, base: p.baseAddress!, ends: e.baseAddress!, first: i, count: k) }
            }
            if n > 0 { i += n; continue }
            let e = Int32(-n)
            if e == EAGAIN || e == EWOULDBLOCK { drop(ends.count - i, "socket buffer full"); return }
            // ECONNREFUSED: an ICMP answer to an earlier datagram (nobody listening); this one is lost.
            drop(1, "send: \(String(cString: strerror(e)))")
            i += 1
        }
    }
}
