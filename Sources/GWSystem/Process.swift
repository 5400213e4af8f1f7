#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// Process-level calls: fork, wait, kill, pid files, directories.
public enum ProcessControl {
    public enum ForkResult { case child, parent(pid_t) }

    /// The target of a symbolic link (e.g. /proc/self/exe), or nil.
    public static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buf, 4096)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func fork() throws -> ForkResult {
        let pid = Glibc.fork()
        if pid == -1 { throw SystemError.last("fork()") }
        return pid == 0 ? .child : .parent(pid)
    }

    /// Reaps one exited child without blocking: (pid, raw wait status) or nil.
    public static func reapOne() -> (pid_t, Int32)? {
        var status: Int32 = 0
        let pid = waitpid(-1, &status, WNOHANG)
        return pid > 0 ? (pid, status) : nil
    }

    public static func describe(status: Int32) -> String {
        if status & 0x7f == 0 { return "exited with code \((status >> 8) & 0xff)" }
        return "killed by signal \(status & 0x7f)"
    }

    /// True when `pid` exists and is not a zombie (a master that exited but was not reaped yet,
    /// e.g. under an init that reaps slowly, must count as stopped for `gateway stop`).
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 else { return false }
        guard let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")),
              close + 2 < stat.count else { return true }
        let state = stat[close + 2]
        return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
    }

    @discardableResult
    public static func signal(_ pid: pid_t, _ sig: Int32) -> Bool { kill(pid, sig) == 0 }

    public static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) == -1 && gw_errno() != EEXIST { throw SystemError.last("mkdir(\"\(path)\")") }
        if access(path, W_OK) != 0 { throw SystemError.last("access(\"\(path)\", W_OK)") }
    }

    public static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd == -1 { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        // Sized from fstat (one more byte to see EOF), so a 5 MB configuration document is read
        // into one 5 MB buffer rather than grown by doubling to 8 MB (the worker's peak memory).
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size > 0 { out.reserveCapacity(Int(st.st_size) + 1) }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
            if n > 0 { out.append(contentsOf: chunk[0..<n]) }
            else if n == 0 { return out }
            else if gw_errno() != EINTR { return nil }
        }
    }

    /// Writes a file atomically (temp file + fsync + rename).
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = path + ".tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd == -1 { throw SystemError.last("open(\"\(tmp)\")") }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0 {
                if gw_errno() == EINTR { continue }
                let e = SystemError.last("write(\"\(tmp)\")")
                close(fd); unlink(tmp)
                throw e
            }
            off += n
        }
        close(fd)
        if rename(tmp, path) == -1 { let e = SystemError.last("rename(\"\(tmp)\")"); unlink(tmp); throw e }
    }

    public static func readPid(_ path: String) -> pid_t? {
        guard let b = readFile(path) else { return nil }
        let s = String(decoding: b, as: UTF8.self).trimmingWhitespace()
        return pid_t(s)
    }

    public static func remove(_ path: String) { unlink(path) }

    /// Names in a directory (without "." and ".."); empty when it cannot be read.
    public static func listDirectory(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    public static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        return getcwd(&buf, 4096) != nil ? String(nulTerminated: buf) : "."
    }

    public static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(nulTerminated: buf)
    }

    public static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }

    public static func cpuCount() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    public static func sleepMillis(_ ms: Int) { usleep(useconds_t(ms * 1000)) }
}

extension String {
    public func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

extension ProcessControl {
    /// Closes every descriptor above 2 except `keep` (a forked worker drops the master's admin
    /// sockets, database and client connections so that they are not kept open by the child).
    public static func closeAllDescriptors(except keep: Set<Int32>) {
        guard let dir = opendir("/proc/self/fd") else { return }
        var fds: [Int32] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> String in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let fd = Int32(name), fd > 2 { fds.append(fd) }
        }
        let dfd = dirfd(dir)
        closedir(dir)
        for fd in fds where fd != dfd && !keep.contains(fd) { close(fd) }
    }

    /// Points stdin/stdout to /dev/null and stderr to `stderrPath` (or /dev/null).
    public static func redirectStandardStreams(stderrPath: String?) {
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            dup2(null, 0); dup2(null, 1)
            if stderrPath == nil { dup2(null, 2) }
            if null > 2 { close(null) }
        }
        if let p = stderrPath {
            let fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            if fd >= 0 { dup2(fd, 2); if fd > 2 { close(fd) } }
        }
    }

    public static func newSession() { _ = setsid() }

    public static func exit(_ code: Int32) -> Never { Glibc.exit(code) }
    public static func immediateExit(_ code: Int32) -> Never { _exit(code) }
    public static var pid: Int32 { getpid() }
    public static var parentPid: Int32 { getppid() }
}

extension ProcessControl {
    /// Blocking-style write of all bytes to a pipe or file (retries EINTR; gives up on EAGAIN).
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n > 0 { off += n } else if n < 0 && gw_errno() == EINTR { continue } else { return }
        }
    }
}
