// PEM certificates and private keys as the Admin API checks them (certificates, ca_certificates):
// parse results with OpenSSL's reason, the key type, the CA flag, expiry, the SHA-256 digest, and
// whether a certificate and a key are a pair. Pure functions over CSSL; no state.
import CSSL

public enum PEM {
    public struct CertificateInfo: Sendable, Equatable {
        /// OpenSSL's key type id of the (first) certificate's public key (RSA, EC, ...).
        public var keyType: Int32
        public var count: Int
        public var isCA: Bool
        public var expired: Bool
        /// Hex SHA-256 of the first certificate (DER), Kong's `cert_digest`.
        public var sha256: String
    }

    /// The certificate (chain) in `pem`, or OpenSSL's reason it does not parse.
    public static func inspectCertificate(_ pem: String) -> Result<CertificateInfo, TLSError> {
        var info = gw_cert_info()
        var err = [CChar](repeating: 0, count: 256)
        let r = gw_cert_inspect(pem, &info, &err, err.count)
        guard r == 0 else { return .failure(TLSError(String(nulTerminated: err))) }
        let hex = withUnsafeBytes(of: info.sha256_hex) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return .success(CertificateInfo(keyType: info.key_type, count: Int(info.cert_count), isCA: info.is_ca != 0,
                                        expired: info.expired != 0, sha256: hex))
    }

    /// nil when `pem` holds a private key, else OpenSSL's reason.
    public static func checkKey(_ pem: String) -> String? {
        var err = [CChar](repeating: 0, count: 256)
        return gw_key_check(pem, &err, err.count) == 0 ? nil : String(nulTerminated: err)
    }

    /// True when the certificate's public key is the public half of `key`.
    public static func matches(certificate: String, key: String) -> Bool { gw_cert_key_match(certificate, key) == 1 }
}
