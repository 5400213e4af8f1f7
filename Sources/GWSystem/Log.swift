#if canImport(Glibc)
import Glibc
#endif

/// nginx's log levels, Kong's names.
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug = 0, info, notice, warn, error, crit, alert, emerg

    public init?(name: String) {
        guard let l = LogLevel.allCases.first(where: { $0.name == name }) else { return nil }
        self = l
    }

    public var name: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warn: "warn"
        case .error: "error"
        case .crit: "crit"
        case .alert: "alert"
        case .emerg: "emerg"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// Formats the current local time once per second (nginx's cached time strings).
/// Process-confined: each process owns one and touches it from its loop only.
public final class CachedTime {
    private var second: Int = -1
    /// "2026/11/25 12:00:00"
    public private(set) var errorLogTime: [UInt8] = []
    /// "25/Nov/2026:12:00:00 +0000"
    public private(set) var accessLogTime: [UInt8] = []
    /// "Wed, 25 Nov 2026 12:00:00 GMT" (IMF-fixdate, the HTTP Date header)
    public private(set) var httpDate: [UInt8] = []

    public init() { update() }

    public func update() {
        var now = time_t(Clock.wallSeconds())
        if Int(now) == second { return }
        second = Int(now)
        var tmv = tm()
        localtime_r(&now, &tmv)
        var buf = [CChar](repeating: 0, count: 64)
        let n1 = strftime(&buf, 64, "%Y/%m/%d %H:%M:%S", &tmv)
        errorLogTime = buf[0..<n1].map { UInt8(bitPattern: $0) }
        let n2 = strftime(&buf, 64, "%d/%b/%Y:%H:%M:%S %z", &tmv)
        accessLogTime = buf[0..<n2].map { UInt8(bitPattern: $0) }
        var gmt = tm()
        gmtime_r(&now, &gmt)
        let n3 = strftime(&buf, 64, "%a, %d %b %Y %H:%M:%S GMT", &gmt)
        httpDate = buf[0..<n3].map { UInt8(bitPattern: $0) }
    }
}

/// An append-only log file that can be reopened (SIGUSR1, for logrotate). Writes go straight to
/// the fd for the error log; the access log buffers (`bufferSize`) and is flushed by the caller's
/// timer and on exit, like nginx's `access_log ... buffer=`.
public final class LogFile {
    public let path: String
    public private(set) var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private let bufferSize: Int

    public init(path: String, bufferSize: Int = 0) throws {
        self.path = path
        self.bufferSize = bufferSize
        buffer.reserveCapacity(bufferSize)
        try open()
    }

    private func open() throws {
        if path == "off" { fd = -1; return }
        if path == "/dev/stderr" { fd = dup(2); return }
        if path == "/dev/stdout" { fd = dup(1); return }
        let f = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        if f == -1 { throw SystemError.last("open(\"\(path)\")") }
        fd = f
    }

    /// Reopens the file by name (after logrotate moved it away).
    public func reopen() {
        flush()
        let old = fd
        do { try open() } catch { fd = old; return }
        if old >= 0 { Glibc.close(old) }
    }

    public func write(_ bytes: [UInt8]) {
        guard fd >= 0 else { return }
        if bufferSize == 0 {
            bytes.withUnsafeBytes { p in _ = Glibc.write(fd, p.baseAddress, p.count) }
            return
        }
        buffer.append(contentsOf: bytes)
        if buffer.count >= bufferSize { flush() }
    }

    /// Appends through a closure that writes into the internal buffer (no temporary array).
    public func append(_ body: (inout [UInt8]) -> Void) {
        guard fd >= 0 else { return }
        body(&buffer)
        if buffer.count >= bufferSize { flush() }
    }

    public func flush() {
        guard fd >= 0, !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { p in _ = Glibc.write(fd, p.baseAddress, p.count) }
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() {
        flush()
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

/// The error log: `2026/11/25 12:00:00 [notice] 1234#0: message`, filtered by level.
/// Process-confined (one per process; the master and each worker reopen their own on USR1).
public final class ErrorLog {
    public var level: LogLevel
    public let file: LogFile
    public let time = CachedTime()
    public var workerIndex: Int = 0
    /// When set (foreground mode), lines are also written to stderr.
    public var alsoStderr: Bool = false

    public init(path: String, level: LogLevel) throws {
        self.level = level
        self.file = try LogFile(path: path)
    }

    public func log(_ l: LogLevel, _ message: @autoclosure () -> String) {
        guard l >= level else { return }
        time.update()
        var line: [UInt8] = time.errorLogTime
        line.append(contentsOf: " [\(l.name)] \(getpid())#\(workerIndex): ".utf8)
        line.append(contentsOf: message().utf8)
        line.append(10)
        file.write(line)
        if alsoStderr, file.path != "/dev/stderr" {
            line.withUnsafeBytes { p in _ = Glibc.write(2, p.baseAddress, p.count) }
        }
    }

    public func reopen() { file.reopen() }
}
