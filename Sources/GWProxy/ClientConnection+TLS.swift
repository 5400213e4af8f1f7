// TLS under a client connection (GWTLS.TLSConnection over the socket): the same HTTP connection,
// parser, plugins and pipelining run on top; only the reads and writes change (readClient,
// flushClient, tunnelFromClient call the TLS side when `tls` is set). The handshake happens inside the
// first reads and writes; WANT_READ / WANT_WRITE are turned into the watcher's interest set
// (updateInterest), never into a busy loop. A stalled or garbage handshake ends with the header
// timer (client_header_timeout), like a slow request head.
//
// On a TLS listener the first byte decides: a TLS record (0x16) starts TLS; anything else is served
// as plain HTTP only to answer nginx's 400 "The plain HTTP request was sent to HTTPS port" and close.
// Worker-loop confined.
import GWSystem
import GWTLS

extension ClientConnection {
    /// On a TLS listener, before the first read: peeks at the first byte. False when there is nothing
    /// to read yet or the connection is gone.
    func decideTLS() -> Bool {
        let (byte, r) = Socket.peekByte(fd)
        switch r {
        case .bytes:
            tlsUndecided = false
            if byte == 0x16, let ctx = server.tlsContext, let t = ctx.connection(fd: fd) {
                tls = t
            } else {
                plainOnTLSPort = true
            }
            return true
        case .wouldBlock:
            return false
        case .eof, .error:
            tlsUndecided = false
            clientEOF = true
            close()
            return false
        }
    }

    /// One TLS read as an IOResult (a broken TLS stream reads as an error, logged at info as nginx does).
    func tlsRead(into p: UnsafeMutableRawPointer, count: Int) -> IOResult {
        guard let t = tls else { return .error(0) }
        switch t.read(into: p, count: count) {
        case .bytes(let n): return .bytes(n)
        case .wouldBlock: return .wouldBlock
        case .closed: return .eof
        case .failed(let why):
            server.log.log(.info, "client \(peer.ip): TLS \(t.handshakeDone ? "read" : "handshake") failed: \(why)")
            return .error(71)   // EPROTO
        }
    }
}
