#if canImport(Glibc)
import Glibc
#endif
import CGWShims

/// Result of a nonblocking read or write.
public enum IOResult: Equatable, Sendable {
    case bytes(Int)       // > 0 bytes moved
    case wouldBlock
    case eof              // read only: orderly shutdown by the peer
    case error(Int32)     // errno (ECONNRESET, EPIPE ...)
}

/// Socket and file-descriptor calls. Every function is a thin, allocation-free wrapper.
public enum Socket {
    /// Creates a nonblocking listening TCP socket. `reusePort` adds SO_REUSEPORT so that one socket
    /// per worker can be bound to the same address (the kernel spreads connections across them).
    public static func listen(on address: SocketAddress, reusePort: Bool, backlog: Int32) throws -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd == -1 { throw SystemError.last("socket()") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        if address.family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, address.length) }
        }
        if rc == -1 {
            let err = SystemError.last("bind(\(address))")
            close(fd)
            throw err
        }
        if Glibc.listen(fd, backlog) == -1 {
            let err = SystemError.last("listen(\(address))")
            close(fd)
            throw err
        }
        return fd
    }

    /// accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC. Returns nil when nothing is pending (or on a
    /// transient error such as ECONNABORTED / EMFILE, which the caller treats as "try later").
    @inline(__always)
    public static func accept(_ listenFD: Int32, peer: inout SocketAddress) -> Int32? {
        var len = socklen_t(MemoryLayout<sockaddr_in6>.size)   // TCP listeners: AF_INET or AF_INET6 peers
        let fd = withUnsafeMutablePointer(to: &peer.raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                gw_accept4(listenFD, $0, &len, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            }
        }
        if fd == -1 { return nil }
        peer.length = len
        return fd
    }

    public enum ConnectResult {
        case connected(Int32)
        case inProgress(Int32)
        case failed(Int32)   // errno
    }

    /// Starts a nonblocking connect.
    public static func connect(to address: SocketAddress) -> ConnectResult {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd == -1 { return .failed(gw_errno()) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if rc == 0 { return .connected(fd) }
        let e = gw_errno()
        if e == EINPROGRESS || e == EINTR { return .inProgress(fd) }
        close(fd)
        return .failed(e)
    }

    /// SO_ERROR of a socket whose nonblocking connect finished (0 = connected).
    public static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 { return gw_errno() }
        return err
    }

    /// Sends any delayed ACK now (TCP_QUICKACK). Used when a response is incomplete and we are
    /// about to wait: an upstream that writes head and body in two sends with Nagle on would
    /// otherwise wait for our delayed ACK (~40 ms) before sending the body.
    @inline(__always)
    public static func quickAck(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> IOResult {
        while true {
            let n = Glibc.read(fd, buffer, count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .eof }
            let e = gw_errno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .error(e)
        }
    }

    @inline(__always)
    public static func write(_ fd: Int32, from buffer: UnsafeRawPointer, count: Int) -> IOResult {
        while true {
            let n = send(fd, buffer, count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .bytes(n) }
            let e = gw_errno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .error(e)
        }
    }

    /// Datagrams `first ..< first + count` (at most 64) on a connected nonblocking socket with one
    /// sendmmsg(2), datagram i being `base[ends[i-1] ..< ends[i]]` (from 0 for the first). The number
    /// sent, or -errno when none was.
    public static func sendDatagrams(_ fd: Int32, base: UnsafeRawPointer, ends: UnsafePointer<Int>, first: Int, count: Int) -> Int {
        let n = gw_send_datagrams(fd, base, ends, first, Int32(min(count, 64)))
        return n >= 0 ? Int(n) : -Int(gw_errno())
    }

    /// The first byte waiting on `fd`, left in place (MSG_PEEK): nil with `.wouldBlock`, `.eof` or `.error`.
    public static func peekByte(_ fd: Int32) -> (UInt8?, IOResult) {
        var b: UInt8 = 0
        while true {
            let n = recv(fd, &b, 1, Int32(MSG_PEEK))
            if n == 1 { return (b, .bytes(1)) }
            if n == 0 { return (nil, .eof) }
            let e = gw_errno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return (nil, .wouldBlock) }
            return (nil, .error(e))
        }
    }

    /// Closes a descriptor. Never retried on EINTR (Linux closes the fd anyway).
    @inline(__always)
    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// Sets SO_LINGER 0 so that close() sends RST (used for upstreams that misbehave).
    public static func setLingerZero(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    /// A nonblocking, close-on-exec pipe. Returns (read, write).
    public static func pipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        if gw_pipe2(&fds, Int32(O_NONBLOCK) | Int32(O_CLOEXEC)) == -1 { throw SystemError.last("pipe2()") }
        return (fds[0], fds[1])
    }

    /// A nonblocking, close-on-exec AF_UNIX stream socketpair (master ⇄ worker channel).
    public static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if socketpair(AF_UNIX, type, 0, &fds) == -1 { throw SystemError.last("socketpair()") }
        return (fds[0], fds[1])
    }

    /// Resolves a host name or IP literal to addresses (blocking getaddrinfo: call it only where
    /// blocking is acceptable, i.e. in the master or while loading a configuration).
    public static func resolve(host: String, port: Int) -> [SocketAddress] {
        if let a = SocketAddress(ip: host, port: port) { return [a] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var res: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, nil, &hints, &res) == 0, let first = res else { return [] }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var cur: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cur {
            if let sa = ai.pointee.ai_addr, ai.pointee.ai_family == AF_INET || ai.pointee.ai_family == AF_INET6 {
                var st = sockaddr_storage()
                withUnsafeMutableBytes(of: &st) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))
                }
                var addr = SocketAddress(storage: st, length: ai.pointee.ai_addrlen)
                if let withPort = SocketAddress(ip: addr.ip, port: port) { addr = withPort }
                if !out.contains(addr) { out.append(addr) }
            }
            cur = ai.pointee.ai_next
        }
        return out
    }
}
