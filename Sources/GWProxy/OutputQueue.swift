// Bytes waiting to be written to one socket and the write loop that drains them (≈ NIO's
// PendingWritesManager, one flat byte array instead of a list of buffers). Used by both sides of an
// exchange: ClientConnection (response towards the client) and UpstreamConnection (request towards
// the upstream).
//
// Invariant: 0 <= sent <= bytes.count; bytes[sent...] is what is still to be written. Once drained,
// the array is emptied keeping its capacity, so a warm connection appends without allocating.
// Worker-loop confined; a value stored in its connection (no reference of its own).
import GWHTTP
import GWSystem
import GWTLS

struct OutputQueue {
    var bytes = FlatArray<UInt8>()
    var sent = 0

    /// What one `write(to:)` call did.
    enum WriteResult: Equatable {
        /// Everything queued was written (the queue is empty); `wrote` bytes moved by this call.
        case drained(wrote: Int)
        /// The socket is full; `wrote` bytes moved by this call, the rest waits for writability.
        case wouldBlock(wrote: Int)
        /// The peer is gone; nothing more can be delivered.
        case failed
    }

    @inline(__always) var pending: Int { bytes.count - sent }
    @inline(__always) var hasPending: Bool { sent < bytes.count }

    @inline(__always) mutating func append(_ p: UnsafeRawBufferPointer) { bytes.append(contentsOf: p) }
    @inline(__always) mutating func append(_ a: [UInt8]) { a.withUnsafeBytes { bytes.append(contentsOf: $0) } }

    /// `piece` as one HTTP/1.1 chunk of ours: lower-case hex size without leading zeros, CRLF, the
    /// bytes, CRLF (no extension). The terminal chunk is "0\r\n\r\n", appended by the caller.
    mutating func appendChunk(_ piece: UnsafeRawBufferPointer) {
        let hex: StaticString = "0123456789abcdef"
        var shift = 0
        while shift < 60 && piece.count >> (shift + 4) > 0 { shift += 4 }
        while shift >= 0 {
            bytes.append(hex.utf8Start[(piece.count >> shift) & 15])
            shift -= 4
        }
        bytes.append(0x0D); bytes.append(0x0A)
        bytes.append(contentsOf: piece)
        bytes.append(0x0D); bytes.append(0x0A)
    }

    /// Writes as much as the TLS connection takes (records of at most 16 KiB).
    mutating func write(tls: TLSConnection) -> WriteResult {
        drain { p, n in
            switch tls.write(from: p, count: n) {
            case .bytes(let k): return .bytes(k)
            case .wouldBlock: return .wouldBlock
            case .closed, .failed: return .error(32)   // EPIPE: the peer is gone
            }
        }
    }

    /// Forgets everything queued (keeps the capacity).
    @inline(__always) mutating func removeAll() {
        bytes.removeAll()
        sent = 0
    }

    /// Writes as much as the socket takes.
    @inline(__always) mutating func write(to fd: Int32) -> WriteResult {
        drain { p, n in Socket.write(fd, from: p, count: n) }
    }

    /// The write loop over one transport's `send`.
    @inline(__always) private mutating func drain(_ send: (UnsafeRawPointer, Int) -> IOResult) -> WriteResult {
        var wrote = 0
        while sent < bytes.count {
            let r = bytes.withUnsafeBytes { send($0.baseAddress! + sent, $0.count - sent) }
            switch r {
            case .bytes(let n):
                sent += n
                wrote += n
            case .wouldBlock:
                return .wouldBlock(wrote: wrote)
            case .eof, .error:
                return .failed
            }
        }
        removeAll()
        return .drained(wrote: wrote)
    }
}
