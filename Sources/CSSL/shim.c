// See include/CSSL.h. nginx's choices (ngx_event_openssl.c) where Kong inherits them: no compression,
// no client-initiated renegotiation, an EOF without close_notify is a clean close, read-ahead, buffers released
// while a connection is idle, partial writes and a moving write buffer (our output queue may grow
// between two attempts of the same write).
#include "CSSL.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static unsigned char gw_ticket_key[80];
static int gw_ticket_key_set = 0;

static void set_err(char *err, size_t errlen, const char *what, const char *detail) {
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s%s%s", what, detail ? detail : "", e ? " (" : "", buf, e ? ")" : "");
    ERR_clear_error();
}

_Static_assert(sizeof(gw_ticket_keys) <= 256, "gw_ticket_keys must fit GW_SHM_TLS_AREA_SIZE (CGWShims.h)");
static gw_ticket_keys *gw_shared_keys = NULL;

void gw_tls_ticket_keys_publish(void *area, const unsigned char *key, int first) {
    gw_ticket_keys *k = area;
    uint64_t seq = __atomic_load_n(&k->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&k->seq, seq + 1, __ATOMIC_RELAXED);   // odd: readers retry
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (first) {
        memset(k->keys, 0, sizeof k->keys);
        k->count = 1;
        k->rotations = 0;
    } else {
        memcpy(k->keys[1], k->keys[0], 80);
        k->count = GW_TICKET_KEYS;
        k->rotations++;
    }
    memcpy(k->keys[0], key, 80);
    __atomic_store_n(&k->seq, seq + 2, __ATOMIC_RELEASE);
}

void gw_tls_ticket_keys_attach(void *area) { gw_shared_keys = area; }

// A consistent copy of the shared keys; 0 when the master kept writing (it writes once per
// ssl_session_timeout: practically never seen).
static int shared_keys_copy(unsigned char out[GW_TICKET_KEYS][80], int *count) {
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint64_t s1 = __atomic_load_n(&gw_shared_keys->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) continue;
        uint64_t n = gw_shared_keys->count;
        memcpy(out, gw_shared_keys->keys, sizeof gw_shared_keys->keys);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&gw_shared_keys->seq, __ATOMIC_RELAXED) == s1) {
            *count = n >= 1 && n <= GW_TICKET_KEYS ? (int)n : 1;
            return 1;
        }
    }
    return 0;
}

// Session tickets sealed with the keys every worker shares (nginx keeps its keys in the shared zone):
// a session resumed on another worker (or after a reload, or after one rotation) decrypts there too.
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                     int enc) {
    unsigned char keys[GW_TICKET_KEYS][80];
    int count = 1;
    if (gw_shared_keys) {
        if (!shared_keys_copy(keys, &count)) return enc ? -1 : 0;
    } else {
        memcpy(keys[0], gw_ticket_key, 80);
    }
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    int rc = -1;
    if (enc) {
        memcpy(key_name, keys[0], 16);
        if (RAND_bytes(iv, 16) == 1 && EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, keys[0] + 48, iv) == 1
            && EVP_MAC_init(hctx, keys[0] + 16, 32, params) == 1) rc = 1;
    } else {
        rc = 0;   // a key aged out or another node's: full handshake
        for (int i = 0; i < count; i++) {
            if (memcmp(key_name, keys[i], 16) != 0) continue;
            if (EVP_MAC_init(hctx, keys[i] + 16, 32, params) != 1
                || EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, keys[i] + 48, iv) != 1) rc = -1;
            // 2: a new ticket is sent. Under an older key (renewed under the current one), and always in
            // TLS 1.3, where OpenSSL otherwise sends no ticket after a resumption while a TLS 1.3 client
            // (OpenSSL's, e.g. wrk) uses a ticket once: without a new one its next connection was a full
            // handshake (every other connection of tools/bench's tls-resumed; nginx, on OpenSSL's own
            // ticket keys, sends one).
            else rc = (i == 0 && SSL_version(s) != TLS1_3_VERSION) ? 1 : 2;
            break;
        }
    }
    OPENSSL_cleanse(keys, sizeof keys);
    return rc;
}

// A certificate or key given as a path, or as PEM text (Kong accepts both).
static BIO *open_pem(const char *v) {
    if (strncmp(v, "-----BEGIN", 10) == 0) return BIO_new_mem_buf(v, -1);
    return BIO_new_file(v, "r");
}

// `md` (may be NULL): the certificate's SHA-256 is added to it (the session id context, see gw_tls_server_ctx).
static int use_pair(SSL_CTX *ctx, const char *crt, const char *key, EVP_MD_CTX *md, char *err, size_t errlen) {
    BIO *b = open_pem(crt);
    X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
    if (!x) {
        if (b) BIO_free(b);
        set_err(err, errlen, "ssl_cert: failed loading certificate from ", strncmp(crt, "-----", 5) ? crt : "PEM text");
        return -1;
    }
    int ok = SSL_CTX_use_certificate(ctx, x);
    if (ok == 1 && md) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;
        ok = X509_digest(x, EVP_sha256(), d, &dlen) == 1 && EVP_DigestUpdate(md, d, dlen) == 1;
    }
    X509_free(x);
    // The rest of the file is the chain.
    X509 *ca;
    while (ok == 1 && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) { X509_free(ca); ok = 0; }
    }
    ERR_clear_error();   // the end of the file reads as an error
    BIO_free(b);
    if (ok != 1) { set_err(err, errlen, "ssl_cert: failed using certificate from ", crt); return -1; }
    b = open_pem(key);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    if (b) BIO_free(b);
    if (!k) { set_err(err, errlen, "ssl_cert_key: failed loading key from ", strncmp(key, "-----", 5) ? key : "PEM text"); return -1; }
    ok = SSL_CTX_use_PrivateKey(ctx, k);
    EVP_PKEY_free(k);
    if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        set_err(err, errlen, "ssl_cert_key: key does not match the certificate: ", key);
        return -1;
    }
    return 0;
}

SSL_CTX *gw_tls_server_ctx(const gw_tls_config *cfg, const char *const *certs, const char *const *keys, int npairs,
                           char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) { set_err(err, errlen, "SSL_CTX_new failed", NULL); return NULL; }
    uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF;
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
    opts |= SSL_OP_NO_CLIENT_RENEGOTIATION;
#endif
    if (cfg->prefer_server_ciphers) opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    if (!cfg->session_tickets) opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (cfg->min_proto && SSL_CTX_set_min_proto_version(ctx, cfg->min_proto) != 1) goto fail_cfg;
    if (cfg->max_proto && SSL_CTX_set_max_proto_version(ctx, cfg->max_proto) != 1) goto fail_cfg;
    if (cfg->security_level0) SSL_CTX_set_security_level(ctx, 0);
    if (cfg->ciphers && cfg->ciphers[0] && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1) {
        set_err(err, errlen, "ssl_ciphers: no usable cipher in ", cfg->ciphers);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_dh_auto(ctx, 1);
    // nginx's read-ahead: one read(2) takes a whole record (and whatever follows) instead of a 5-byte
    // header read and a body read; gw_tls_pending counts the bytes read ahead.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_timeout(ctx, cfg->session_timeout > 0 ? cfg->session_timeout : 86400);
    if (gw_tls_use_shared_session_cache(ctx)) {
        // The node's shared cache (sessioncache.c): a session resumes on any worker.
    } else if (cfg->session_cache_entries > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, cfg->session_cache_entries);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (cfg->session_tickets && (cfg->ticket_key || gw_shared_keys)) {
        if (cfg->ticket_key) memcpy(gw_ticket_key, cfg->ticket_key, 80);
        gw_ticket_key_set = 1;
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    }
    // The session id context names the certificates (as nginx's ngx_ssl_session_id_context): OpenSSL resumes
    // a session (cached or in a ticket) only under the context it was made in. The context of a connection
    // is chosen per SNI before OpenSSL looks the session up (certificates.c: the client hello callback),
    // so a session made with one certificate is never resumed under another (nor under the default one).
    // The same certificates give the same context in every worker and after a reload.
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(md, "gateway", 7) != 1) {
        EVP_MD_CTX_free(md);
        set_err(err, errlen, "SHA-256 unavailable", NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    for (int i = 0; i < npairs; i++) {
        if (use_pair(ctx, certs[i], keys[i], md, err, errlen) != 0) { EVP_MD_CTX_free(md); SSL_CTX_free(ctx); return NULL; }
    }
    unsigned char sid_ctx[EVP_MAX_MD_SIZE];
    unsigned int sid_len = 0;
    int ok = EVP_DigestFinal_ex(md, sid_ctx, &sid_len) == 1;
    EVP_MD_CTX_free(md);
    if (!ok || SSL_CTX_set_session_id_context(ctx, sid_ctx, sid_len > SSL_MAX_SID_CTX_LENGTH ? SSL_MAX_SID_CTX_LENGTH : sid_len) != 1) {
        set_err(err, errlen, "SSL_CTX_set_session_id_context failed", NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
fail_cfg:
    set_err(err, errlen, "ssl_protocols: not supported by this OpenSSL", NULL);
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *gw_tls_client_ctx(int verify, int depth, char *err, size_t errlen) {
    return gw_tls_client_ctx_with(verify, depth, NULL, NULL, NULL, err, errlen);
}

SSL_CTX *gw_tls_client_ctx_with(int verify, int depth, const char *ca_pem, const char *cert_pem, const char *key_pem,
                                char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) { set_err(err, errlen, "SSL_CTX_new failed", NULL); return NULL; }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (verify) {
        if (ca_pem) {
            // The service's ca_certificates replace the system store (Kong's ca_stores).
            X509_STORE *st = SSL_CTX_get_cert_store(ctx);
            BIO *b = BIO_new_mem_buf(ca_pem, -1);
            X509 *x;
            int n = 0;
            while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
                if (X509_STORE_add_cert(st, x) == 1) n++;
                X509_free(x);
            }
            ERR_clear_error();
            if (b) BIO_free(b);
            if (n == 0) { set_err(err, errlen, "no usable CA certificate", NULL); SSL_CTX_free(ctx); return NULL; }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            set_err(err, errlen, "no system CA store", NULL); SSL_CTX_free(ctx); return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_verify_depth(ctx, depth);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cert_pem && key_pem && use_pair(ctx, cert_pem, key_pem, NULL, err, errlen) != 0) { SSL_CTX_free(ctx); return NULL; }
    return ctx;
}

void gw_tls_busy_client(SSL_CTX *ctx) {
    SSL_CTX_clear_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
}

SSL *gw_tls_new_client(SSL_CTX *ctx, int fd, const char *sni, const char *host, int verify) {
    SSL *s = SSL_new(ctx);
    if (!s) return NULL;
    if (SSL_set_fd(s, fd) != 1) { SSL_free(s); return NULL; }
    if (sni && sni[0]) SSL_set_tlsext_host_name(s, sni);
    if (verify && host && host[0]) SSL_set1_host(s, host);
    SSL_set_connect_state(s);
    return s;
}

SSL *gw_tls_new_server(SSL_CTX *ctx, int fd) {
    SSL *s = SSL_new(ctx);
    if (!s) return NULL;
    if (SSL_set_fd(s, fd) != 1) { SSL_free(s); return NULL; }
    SSL_set_accept_state(s);
    return s;
}

static __thread char gw_tls_err[256];

static int map_result(SSL *s, int r) {
    if (r > 0) return r;
    int e = SSL_get_error(s, r);
    switch (e) {
    case SSL_ERROR_WANT_READ: return GW_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return GW_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: {
        unsigned long q = ERR_peek_error();
        if (q == 0 && errno == 0) return 0;   // EOF (SSL_OP_IGNORE_UNEXPECTED_EOF normally maps it to ZERO_RETURN)
        if (q) ERR_error_string_n(q, gw_tls_err, sizeof gw_tls_err);
        else snprintf(gw_tls_err, sizeof gw_tls_err, "%s", strerror(errno));
        ERR_clear_error();
        return GW_TLS_ERROR;
    }
    default: {
        unsigned long q = ERR_get_error();
        if (q) ERR_error_string_n(q, gw_tls_err, sizeof gw_tls_err);
        else snprintf(gw_tls_err, sizeof gw_tls_err, "SSL error %d", e);
        ERR_clear_error();
        // A failed verification: its reason, as nginx logs it ("certificate verify error: (21:unable to ...)").
        long v = SSL_get_verify_result(s);
        if (v != X509_V_OK) {
            size_t used = strlen(gw_tls_err);
            snprintf(gw_tls_err + used, sizeof gw_tls_err - used, " (%ld:%s)", v, X509_verify_cert_error_string(v));
        }
        return GW_TLS_ERROR;
    }
    }
}

int gw_tls_read(SSL *s, void *buf, int n) {
    ERR_clear_error();
    errno = 0;
    return map_result(s, SSL_read(s, buf, n));
}

int gw_tls_write(SSL *s, const void *buf, int n) {
    ERR_clear_error();
    errno = 0;
    return map_result(s, SSL_write(s, buf, n));
}

// SSL_has_pending, not SSL_pending: with read-ahead, records not yet decrypted wait in OpenSSL's buffer
// and no socket readiness announces them (a partial record makes the next read return WANT_READ).
int gw_tls_pending(const SSL *s) { return SSL_has_pending(s); }
const char *gw_tls_last_error(void) { return gw_tls_err; }

void gw_tls_close(SSL *s) {
    if (!s) return;
    if (SSL_is_init_finished(s)) {
        ERR_clear_error();
        (void)SSL_shutdown(s);   // one close_notify, never waiting for the peer's
        ERR_clear_error();
    }
    SSL_free(s);
}

const char *gw_tls_version(const SSL *s) { return SSL_get_version(s); }
const char *gw_tls_cipher(const SSL *s) { return SSL_get_cipher_name(s); }
int gw_tls_session_reused(const SSL *s) { return SSL_session_reused((SSL *)s); }
int gw_tls_handshake_done(const SSL *s) { return SSL_is_init_finished(s); }

static int add_name(X509_NAME *n, const char *field, const char *value) {
    return X509_NAME_add_entry_by_txt(n, field, MBSTRING_ASC, (const unsigned char *)value, -1, -1, 0);
}

int gw_tls_generate_self_signed(const char *crt_path, const char *key_path, int ecdsa, char *err, size_t errlen) {
    EVP_PKEY *k = ecdsa ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1") : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!k) { set_err(err, errlen, "could not generate a key", NULL); return -1; }
    X509 *x = X509_new();
    int ok = x != NULL;
    if (ok) ok = X509_set_version(x, 2);   // v3
    if (ok) {
        unsigned char serial[16];
        ok = RAND_bytes(serial, sizeof serial) == 1;
        serial[0] &= 0x7f;
        BIGNUM *bn = ok ? BN_bin2bn(serial, sizeof serial, NULL) : NULL;
        ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
        BN_free(bn);
    }
    if (ok) ok = X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL
                 && X509_gmtime_adj(X509_getm_notAfter(x), 20L * 365 * 86400) != NULL;
    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    if (ok) ok = add_name(name, "C", "US") && add_name(name, "ST", "California") && add_name(name, "L", "San Francisco")
                 && add_name(name, "O", "Kong") && add_name(name, "OU", "IT Department") && add_name(name, "CN", "localhost");
    if (ok) ok = X509_set_issuer_name(x, name) == 1 && X509_set_pubkey(x, k) == 1;
    if (ok) {
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "CA:FALSE");
        X509_EXTENSION *eku = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage, "serverAuth,clientAuth");
        ok = bc && eku && X509_add_ext(x, bc, -1) == 1 && X509_add_ext(x, eku, -1) == 1;
        X509_EXTENSION_free(bc);
        X509_EXTENSION_free(eku);
    }
    if (ok) ok = X509_sign(x, k, EVP_sha256()) > 0;
    if (!ok) { set_err(err, errlen, "could not build the certificate", NULL); X509_free(x); EVP_PKEY_free(k); return -1; }
    int kfd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *kf = kfd >= 0 ? fdopen(kfd, "w") : NULL;
    if (!kf) { if (kfd >= 0) close(kfd); snprintf(err, errlen, "could not write %s: %s", key_path, strerror(errno));
               X509_free(x); EVP_PKEY_free(k); return -1; }
    ok = PEM_write_PrivateKey(kf, k, NULL, NULL, 0, NULL, NULL) == 1;
    fclose(kf);
    FILE *cf = ok ? fopen(crt_path, "w") : NULL;
    if (cf) { ok = PEM_write_X509(cf, x) == 1; fclose(cf); } else ok = 0;
    X509_free(x);
    EVP_PKEY_free(k);
    if (!ok) { snprintf(err, errlen, "could not write %s", crt_path); return -1; }
    return 0;
}
