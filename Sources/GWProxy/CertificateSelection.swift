// The certificate of a TLS handshake on the proxy listeners (KONG-TLS-CLUSTER.md A.2, Kong's
// kong/runloop/certificate.lua): in the client hello callback (before OpenSSL looks a session up, so a
// session resumes only under the certificate it was made with) the worker looks the client's SNI up in
// the current configuration (SNIIndex: exact, prefix wildcard, suffix wildcard, `*`; no SNI or no
// match → the default certificate) and hands OpenSSL the server context of the chosen certificate.
// The configuration is refreshed first (one atomic load), so a certificate or SNI created, replaced
// or deleted before a client connects is what that client gets, on every worker, without restart.
//
// CertificateContexts: per worker, the server contexts made from certificate entities, by id, with
// the certificate they were made from (a replaced certificate makes a new context). Bounded: at
// most `capacity` contexts; when full, the least recently used one is dropped (a handshake using it
// holds its own reference); contexts of certificates a new configuration no longer has are dropped at
// the first handshake after it. A certificate that cannot be loaded aborts the handshake (as Kong).
// Worker-loop confined.
import GWStore
import GWSystem
import GWTLS

final class CertificateContexts {
    static let capacity = 1000
    private struct Entry {
        var certificate: Certificate
        var context: TLSServerContext
        var lastUse: UInt64
    }
    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0
    private var generation: UInt64 = 0
    var count: Int { entries.count }

    /// Drops the contexts of certificates that configuration `generation` no longer has.
    func prune(generation g: UInt64, keeping certificates: [String: Certificate]) {
        guard g != generation else { return }
        generation = g
        if !entries.isEmpty { entries = entries.filter { certificates[$0.key] != nil } }
    }

    /// The context for `c`, made from `base` on first use or after `c` changed; nil when OpenSSL refuses it.
    func context(for c: Certificate, base: TLSServerContext, log: ErrorLog) -> TLSServerContext? {
        clock &+= 1
        if var e = entries[c.id], e.certificate == c {
            e.lastUse = clock
            entries[c.id] = e
            return e.context
        }
        let made: TLSServerContext
        do { made = try base.sibling(pairs: c.pairs) } catch {
            log.log(.error, "certificate \(c.id) cannot be used: \(error)")
            entries[c.id] = nil
            return nil
        }
        if entries[c.id] == nil && entries.count >= CertificateContexts.capacity,
           let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            entries[oldest] = nil
        }
        entries[c.id] = Entry(certificate: c, context: made, lastUse: clock)
        return made
    }
}

extension ProxyServer {
    /// Installs the SNI choice on the listeners' context (once, at start).
    func installCertificateSelection() {
        guard let base = tlsContext else { return }
        base.chooseCertificate = { [unowned self, unowned base] name in self.chooseCertificate(name, base: base) }
    }

    private func chooseCertificate(_ name: UnsafeBufferPointer<UInt8>, base: TLSServerContext) -> TLSServerContext.CertificateChoice {
        refreshConfigurationIfStale()
        guard let cfg = config else { return .defaultCertificate }
        certificateContexts.prune(generation: cfg.generation, keeping: cfg.certificates)
        guard !cfg.sniIndex.isEmpty else { return .defaultCertificate }
        let sni = String(decoding: name, as: UTF8.self)
        guard let id = cfg.sniIndex.certificateID(for: sni), let cert = cfg.certificates[id] else { return .defaultCertificate }
        guard let ctx = certificateContexts.context(for: cert, base: base, log: log) else { return .abort }
        return .context(ctx)
    }
}
