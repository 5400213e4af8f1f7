// GWTLS: TLS on OpenSSL 3 (Debian's libssl, through CSSL) for the proxy listeners.
//   TLSServerContext  one per worker: the SSL_CTX built from TLSSettings (protocols, ciphers,
//                     certificate pairs, session tickets sealed with a key every worker shares)
//   TLSConnection     one per client connection: non-blocking read / write / close over its fd,
//                     WANT_READ / WANT_WRITE reported, never a blocking call
//   DefaultCertificates  Kong's self-signed pairs in <prefix>/ssl, made once by the master
// Invariants: OpenSSL objects are freed exactly once (deinit); a TLSConnection is used only on its
// worker's loop. No Foundation.
#if canImport(Glibc)
import Glibc
#endif
import CSSL
import GWConfig

public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The proxy's server context (one per worker process).
public final class TLSServerContext: @unchecked Sendable {
    let ctx: OpaquePointer

    /// `ticketKey`: 80 bytes shared by all workers (resumption on any worker); nil: tickets sealed
    /// with OpenSSL's per-process key.
    public init(settings s: TLSSettings, pairs: [(cert: String, key: String)], ticketKey: [UInt8]?) throws(TLSError) {
        func version(_ p: TLSSettings.TLSProtocol) -> Int32 {
            switch p {
            case .tls1: return TLS1_VERSION
            case .tls11: return TLS1_1_VERSION
            case .tls12: return TLS1_2_VERSION
            case .tls13: return TLS1_3_VERSION
            }
        }
        let versions = s.protocols.map(version)
        var err = [CChar](repeating: 0, count: 512)
        let certs = pairs.map { strdup($0.cert) }, keys = pairs.map { strdup($0.key) }
        defer { certs.forEach { free($0) }; keys.forEach { free($0) } }
        let made: OpaquePointer? = s.ciphers.withCString { ciphers in
            (ticketKey ?? []).withUnsafeBufferPointer { tk in
                var cfg = gw_tls_config(min_proto: versions.min() ?? 0, max_proto: versions.max() ?? 0,
                                        ciphers: s.ciphers.isEmpty ? nil : ciphers,
                                        prefer_server_ciphers: s.preferServerCiphers ? 1 : 0,
                                        security_level0: s.securityLevel0 ? 1 : 0,
                                        session_tickets: s.sessionTickets ? 1 : 0, session_timeout: s.sessionTimeout,
                                        // nginx: about 4000 sessions per megabyte of ssl_session_cache_size
                                        session_cache_entries: s.sessionCacheSize / 256,
                                        ticket_key: tk.count == 80 ? tk.baseAddress : nil)
                let c = certs.map { UnsafePointer($0) }, k = keys.map { UnsafePointer($0) }
                return c.withUnsafeBufferPointer { cp in
                    k.withUnsafeBufferPointer { kp in
                        gw_tls_server_ctx(&cfg, cp.baseAddress, kp.baseAddress, Int32(pairs.count), &err, err.count)
                    }
                }
            }
        }
        guard let made else { throw TLSError(String(cString: err)) }
        ctx = made
    }

    deinit { SSL_CTX_free(ctx) }

    /// A server-side connection over `fd` (the handshake runs inside its first reads and writes).
    public func connection(fd: Int32) -> TLSConnection? {
        guard let s = gw_tls_new_server(ctx, fd) else { return nil }
        return TLSConnection(s)
    }
}

/// One TLS connection: the transport under an HTTP connection.
public final class TLSConnection {
    let ssl: OpaquePointer
    /// The last read stopped on WANT_WRITE (resume it when the socket is writable).
    public private(set) var readWantsWrite = false
    /// The last write stopped on WANT_READ (resume it when the socket is readable).
    public private(set) var writeWantsRead = false

    public enum Result: Equatable {
        case bytes(Int)
        case wouldBlock
        case closed
        case failed(String)
    }

    init(_ s: OpaquePointer) { ssl = s }
    deinit { gw_tls_close(ssl) }

    @inline(__always) public func read(into p: UnsafeMutableRawPointer, count: Int) -> Result {
        let r = gw_tls_read(ssl, p, Int32(min(count, Int(Int32.max))))
        readWantsWrite = false
        if r > 0 { return .bytes(Int(r)) }
        switch r {
        case 0: return .closed
        case Int32(GW_TLS_WANT_READ): return .wouldBlock
        case Int32(GW_TLS_WANT_WRITE): readWantsWrite = true; return .wouldBlock
        default: return .failed(String(cString: gw_tls_last_error()))
        }
    }

    /// At most one 16 KiB record per call (nginx's ssl_buffer_size): the caller loops.
    @inline(__always) public func write(from p: UnsafeRawPointer, count: Int) -> Result {
        let r = gw_tls_write(ssl, p, Int32(min(count, 16384)))
        writeWantsRead = false
        if r > 0 { return .bytes(Int(r)) }
        switch r {
        case 0: return .closed
        case Int32(GW_TLS_WANT_WRITE): return .wouldBlock
        case Int32(GW_TLS_WANT_READ): writeWantsRead = true; return .wouldBlock
        default: return .failed(String(cString: gw_tls_last_error()))
        }
    }

    /// Decrypted bytes waiting inside OpenSSL (no socket readiness will announce them).
    public var hasPending: Bool { gw_tls_pending(ssl) > 0 }
    public var handshakeDone: Bool { gw_tls_handshake_done(ssl) != 0 }
    public var version: String { String(cString: gw_tls_version(ssl)) }
    public var cipher: String { gw_tls_cipher(ssl).map { String(cString: $0) } ?? "" }
    public var sessionReused: Bool { gw_tls_session_reused(ssl) != 0 }
}

/// Kong's generated default certificates (KONG-TLS-CLUSTER.md A.2): made at the first start with an
/// ssl listener and no ssl_cert, reused afterwards; keys mode 0600.
public enum DefaultCertificates {
    public static func ensure(_ pairs: [(cert: String, key: String)], directory: String) throws(TLSError) {
        _ = mkdir(directory, 0o700)
        for (i, p) in pairs.enumerated() {
            if access(p.cert, R_OK) == 0 && access(p.key, R_OK) == 0 { continue }
            var err = [CChar](repeating: 0, count: 512)
            if gw_tls_generate_self_signed(p.cert, p.key, i == 0 ? 0 : 1, &err, err.count) != 0 {
                throw TLSError(String(cString: err))
            }
        }
    }

    /// 80 random bytes for session tickets (name, HMAC key, AES key).
    public static func newTicketKey() -> [UInt8] {
        var k = [UInt8](repeating: 0, count: 80)
        k.withUnsafeMutableBytes { _ = getentropy($0.baseAddress, 80) }
        return k
    }
}
