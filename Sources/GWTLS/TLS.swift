// GWTLS: TLS on OpenSSL 3 (Debian's libssl, through CSSL) for the proxy listeners.
//   TLSServerContext  one per worker: the SSL_CTX built from TLSSettings (protocols, ciphers,
//                     certificate pairs, session tickets sealed with a key every worker shares)
//   TLSConnection     one per client connection: non-blocking read / write / close over its fd,
//                     WANT_READ / WANT_WRITE reported, never a blocking call
//   DefaultCertificates  Kong's self-signed pairs in <prefix>/ssl, made once by the master
//   TicketKeys        the rotated session-ticket keys shared by all workers (shared segment)
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
    let settings: TLSSettings
    let ticketKey: [UInt8]?

    /// What the client hello callback does for one client hello (see `chooseCertificate`).
    public enum CertificateChoice {
        /// The certificates this context was made with (Kong's default certificate).
        case defaultCertificate
        /// The certificates of another context (made with `sibling(pairs:)`).
        case context(TLSServerContext)
        /// The matched certificate cannot be used: the handshake is aborted.
        case abort
    }
    /// Asked during each handshake that carries an SNI (bytes of the name, valid during the call only);
    /// nil: the default certificate always. Called on the worker's loop, inside a TLS read or write.
    public var chooseCertificate: ((UnsafeBufferPointer<UInt8>) -> CertificateChoice)? {
        didSet { if chooseCertificate != nil && hook == nil { installHook() } }
    }
    private var hook: UnsafeMutablePointer<gw_sni_hook>?

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
                                        // only without the shared cache (the master's check context): a private one,
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
        guard let made else { throw TLSError(String(nulTerminated: err)) }
        ctx = made
        settings = s
        self.ticketKey = ticketKey
    }

    deinit {
        SSL_CTX_free(ctx)
        hook?.deallocate()
    }

    /// A context with the same settings (protocols, ciphers, tickets) and other certificate pairs
    /// (PEM texts), for the certificates chosen per SNI.
    public func sibling(pairs: [(cert: String, key: String)]) throws(TLSError) -> TLSServerContext {
        try TLSServerContext(settings: settings, pairs: pairs, ticketKey: ticketKey)
    }

    private func installHook() {
        let h = UnsafeMutablePointer<gw_sni_hook>.allocate(capacity: 1)
        h.initialize(to: gw_sni_hook(select: { owner, name, len, out in
            guard let owner, let name, let out else { return 0 }
            let me = Unmanaged<TLSServerContext>.fromOpaque(owner).takeUnretainedValue()
            guard let choose = me.chooseCertificate else { return 0 }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(name).assumingMemoryBound(to: UInt8.self), count: len)
            switch choose(bytes) {
            case .defaultCertificate: return 0
            case .context(let c): out.pointee = c.ctx; return 1   // SSL_set_SSL_CTX takes its own reference
            case .abort: return -1
            }
        }, owner: Unmanaged.passUnretained(self).toOpaque()))
        hook = h
        gw_tls_set_sni_hook(ctx, h)
    }

    /// A server-side connection over `fd` (the handshake runs inside its first reads and writes).
    public func connection(fd: Int32) -> TLSConnection? {
        guard let s = gw_tls_new_server(ctx, fd) else { return nil }
        return TLSConnection(s)
    }
}

/// The client context for https upstreams with one trust setting (one per setting and worker).
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let verify: Bool
    public let depth: Int

    /// `caPEM`: the trust store (PEM certificates) instead of the system's; `clientPair`: PEM certificate
    /// and key sent when the upstream asks for one (mTLS).
    public init(verify: Bool, depth: Int, caPEM: String? = nil, clientPair: (cert: String, key: String)? = nil) throws(TLSError) {
        var err = [CChar](repeating: 0, count: 512)
        let made: OpaquePointer? = withOptionalCString(caPEM) { ca in
            withOptionalCString(clientPair?.cert) { cert in
                withOptionalCString(clientPair?.key) { key in
                    gw_tls_client_ctx_with(verify ? 1 : 0, Int32(depth), ca, cert, key, &err, err.count)
                }
            }
        }
        guard let c = made else { throw TLSError(String(nulTerminated: err)) }
        ctx = c
        self.verify = verify
        self.depth = depth
    }

    deinit { SSL_CTX_free(ctx) }

    /// Connections made afterwards keep their record buffers between records instead of freeing them
    /// when idle (no allocation per record; ~34 KiB per connection) and read ahead (one read per record):
    /// for a few long-lived busy connections such as Redis'. Their owners loop while `hasPending`.
    public func tuneForBusyConnections() { gw_tls_busy_client(ctx) }

    /// A client connection over a connected `fd`; `sni` nil for none (an IP address).
    public func connection(fd: Int32, sni: String?, host: String) -> TLSConnection? {
        let s: OpaquePointer? = host.withCString { h in
            if let sni { return sni.withCString { gw_tls_new_client(ctx, fd, $0, h, verify ? 1 : 0) } }
            return gw_tls_new_client(ctx, fd, nil, h, verify ? 1 : 0)
        }
        return s.map(TLSConnection.init)
    }
}

/// One TLS connection: the transport under an HTTP connection.
public final class TLSConnection {
    let ssl: OpaquePointer
    /// The last read stopped on WANT_WRITE (resume it when the socket is writable).
    public private(set) var readWantsWrite = false
    /// The last write stopped on WANT_READ (resume it when the socket is readable).
    public private(set) var writeWantsRead = false
    /// OpenSSL's reason for the last failed read or write (for the error log).
    public private(set) var lastError = ""

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
        default: lastError = String(cString: gw_tls_last_error()); return .failed(lastError)
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
        default: lastError = String(cString: gw_tls_last_error()); return .failed(lastError)
        }
    }

    /// Decrypted bytes waiting inside OpenSSL (no socket readiness will announce them).
    public var hasPending: Bool { gw_tls_pending(ssl) > 0 }
    public var handshakeDone: Bool { gw_tls_handshake_done(ssl) != 0 }
    public var version: String { String(cString: gw_tls_version(ssl)) }
    public var cipher: String { gw_tls_cipher(ssl).map { String(cString: $0) } ?? "" }
    public var sessionReused: Bool { gw_tls_session_reused(ssl) != 0 }
    /// The server name the client sent (nil: none); the bytes stay valid while the connection lives.
    public var serverName: UnsafeRawBufferPointer? {
        guard let p = gw_tls_servername(ssl) else { return nil }
        return UnsafeRawBufferPointer(start: p, count: strlen(p))
    }
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
                throw TLSError(String(nulTerminated: err))
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

/// The node's session-ticket keys in the shared segment's TLS area (CSSL.h gw_ticket_keys): the master
/// publishes a new key every ssl_session_timeout, the previous one still opens tickets (renewed under
/// the new one), older ones are forgotten; workers read the area in every ticket operation.
public enum TicketKeys {
    /// Master: `key` (80 bytes) seals new tickets from now on; `first`: the area starts with this key alone.
    public static func publish(area: UnsafeMutableRawPointer, key: [UInt8], first: Bool) {
        precondition(key.count == 80)
        key.withUnsafeBufferPointer { gw_tls_ticket_keys_publish(area, $0.baseAddress, first ? 1 : 0) }
    }

    /// Worker: contexts made afterwards use the shared keys.
    public static func attach(area: UnsafeMutableRawPointer) { gw_tls_ticket_keys_attach(area) }

    /// Rotations published so far (tests, logs).
    public static func rotations(area: UnsafeMutableRawPointer) -> UInt64 {
        area.assumingMemoryBound(to: gw_ticket_keys.self).pointee.rotations
    }
}

/// `body` with `s` as a C string, or NULL when `s` is nil.
func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}
