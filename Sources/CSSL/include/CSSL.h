// Debian's OpenSSL 3 libssl (libssl-dev) for TLS termination on the proxy listeners: a server
// context built from the configuration (protocols, ciphers, certificate pairs, session tickets
// with keys shared by every worker), non-blocking reads and writes on a connection, and the
// self-signed default certificates Kong generates in <prefix>/ssl. The C side exists because
// OpenSSL's configuration calls are macros over SSL_CTX_ctrl that Swift cannot import.
#ifndef CSSL_H
#define CSSL_H
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

typedef struct gw_tls_config {
    int min_proto;                       // e.g. TLS1_2_VERSION; 0: OpenSSL's default
    int max_proto;                       // e.g. TLS1_3_VERSION; 0: OpenSSL's default
    const char *ciphers;                 // TLS <= 1.2 cipher list; NULL: OpenSSL's default
    int prefer_server_ciphers;
    int security_level0;                 // Kong's `old` suite: @SECLEVEL=0
    int session_tickets;
    long session_timeout;                // seconds
    long session_cache_entries;          // without the shared cache (sessioncache.c): a private one (0: off)
    const unsigned char *ticket_key;     // 80 bytes (name 16, HMAC 32, AES 32) shared by all workers
} gw_tls_config;

// Session-ticket keys shared by every worker through the node's shared segment (nginx keeps its
// rotated keys in the shared session cache zone): keys[0] seals new tickets, keys[1] (the previous
// one, once a rotation happened) still opens tickets, which are then renewed under keys[0]. The
// master alone writes (a sequence lock: `seq` odd while writing); workers copy both keys per ticket
// operation. The master rotates every ssl_session_timeout, so a ticket's key outlives the ticket.
#define GW_TICKET_KEYS 2
typedef struct gw_ticket_keys {
    uint64_t seq;
    uint64_t rotations;                  // keys made so far minus one
    uint64_t count;                      // keys in use: 1 (after start) or 2
    unsigned char keys[GW_TICKET_KEYS][80];   // name 16, HMAC 32, AES 32
} gw_ticket_keys;
// Master: `key` becomes keys[0] (the previous keys[0] moves to keys[1] unless `first`).
void gw_tls_ticket_keys_publish(void *area, const unsigned char *key, int first);
// Worker: tickets use the keys at `area` (the segment's TLS area) from now on; before any context.
void gw_tls_ticket_keys_attach(void *area);

// The proxy's server context with `npairs` certificate/key pairs (paths or PEM text); NULL with a
// message in err on failure (Kong's "ssl_cert: failed loading certificate from <x>" wording).
SSL_CTX *gw_tls_server_ctx(const gw_tls_config *cfg, const char *const *certs, const char *const *keys, int npairs,
                           char *err, size_t errlen);

// The client context for https upstreams: verify (SSL_VERIFY_PEER against the system's CA store,
// Kong's lua_ssl_trusted_certificate = system) up to `depth`; no session reuse (Kong never resumes
// upstream sessions).
SSL_CTX *gw_tls_client_ctx(int verify, int depth, char *err, size_t errlen);
// For a few long-lived busy client connections (Redis): each keeps its read and write buffers between
// records (the client contexts release them when a connection is idle, SSL_MODE_RELEASE_BUFFERS: less
// memory per pooled upstream connection, but allocations per record) and reads ahead (one read per
// record instead of a header read and a body read; gw_tls_pending counts the bytes read ahead).
void gw_tls_busy_client(SSL_CTX *ctx);
// A client-side TLS connection over fd: SNI `sni` (NULL: none, e.g. an IP), and with verification the
// certificate must match `host`.
SSL *gw_tls_new_client(SSL_CTX *ctx, int fd, const char *sni, const char *host, int verify);

// A server-side TLS connection over fd (accept state; the handshake runs inside read/write).
SSL *gw_tls_new_server(SSL_CTX *ctx, int fd);

enum { GW_TLS_WANT_READ = -1, GW_TLS_WANT_WRITE = -2, GW_TLS_ERROR = -3 };
// > 0: bytes; 0: the peer closed (close_notify or EOF); GW_TLS_WANT_*: retry when the socket is
// readable / writable; GW_TLS_ERROR: the connection is broken (reason in gw_tls_last_error).
int gw_tls_read(SSL *s, void *buf, int n);
int gw_tls_write(SSL *s, const void *buf, int n);
// 1 when OpenSSL holds bytes of the peer (decrypted or read ahead) that no socket readiness announces.
int gw_tls_pending(const SSL *s);
// The last error's text for logs (thread-local OpenSSL error queue, or errno).
const char *gw_tls_last_error(void);
// Sends close_notify once (never waits) and frees.
void gw_tls_close(SSL *s);
const char *gw_tls_version(const SSL *s);
const char *gw_tls_cipher(const SSL *s);
int gw_tls_session_reused(const SSL *s);
int gw_tls_handshake_done(const SSL *s);

// Writes a self-signed certificate and its key (mode 0600) as Kong's gen_default_ssl_cert does:
// RSA 2048 (ecdsa = 0) or EC prime256v1, CN=localhost, 20 years. 0 on success.
int gw_tls_generate_self_signed(const char *crt_path, const char *key_path, int ecdsa, char *err, size_t errlen);
// --- certificates.c: the certificates / ca_certificates entities and the choice per SNI ---
typedef struct gw_cert_info {
    int key_type;          // EVP_PKEY base id of the (first) certificate's public key (EVP_PKEY_RSA, _EC, ...)
    int cert_count;        // certificates in the PEM text (a chain has several)
    int is_ca;             // basic constraints CA:TRUE
    int expired;           // "Not After" is in the past
    char sha256_hex[65];   // hex SHA-256 of the first certificate's DER (Kong's cert_digest)
} gw_cert_info;
// Parses the PEM certificate (chain) `pem`; 0, or -1 with OpenSSL's reason in err.
int gw_cert_inspect(const char *pem, gw_cert_info *info, char *err, size_t errlen);
// Parses the PEM private key; 0, or -1 with OpenSSL's reason in err.
int gw_key_check(const char *pem, char *err, size_t errlen);
// 1 when the certificate's public key is the public half of the private key.
int gw_cert_key_match(const char *cert_pem, const char *key_pem);

// The choice of a certificate per SNI (client hello callback, before OpenSSL looks the session up; the
// servername callback then only acknowledges the name). `select` returns 1 with *ctx set (use
// that context's certificates), 0 (the default certificates) or -1 (abort the handshake). The hook
// must outlive the SSL_CTX it is set on.
typedef struct gw_sni_hook {
    int (*select)(void *owner, const char *name, size_t len, SSL_CTX **ctx);
    void *owner;
} gw_sni_hook;
void gw_tls_set_sni_hook(SSL_CTX *ctx, gw_sni_hook *hook);
// The server name the client sent (NULL: none); valid while the connection lives.
const char *gw_tls_servername(const SSL *s);

// The client context for https upstreams with a trust store of its own and a client certificate:
// `ca_pem` (PEM certificates, NULL: the system store) and `cert_pem`/`key_pem` (NULL: no client
// certificate, i.e. no mTLS).
SSL_CTX *gw_tls_client_ctx_with(int verify, int depth, const char *ca_pem, const char *cert_pem, const char *key_pem,
                                char *err, size_t errlen);
// --- sessioncache.c: the TLS session cache every worker shares (nginx's ssl_session_cache shared:SSL) ---
// An area of the node's shared segment (sized by ssl_session_cache_size), formatted once by the master;
// layout and invariants in sessioncache.c. Sessions larger than GW_SC_MAX_SESSION bytes of DER (nginx's
// NGX_SSL_MAX_SESSION_SIZE was 4096 until it became 8192) or with ids over 32 bytes are not cached.
#include <pthread.h>
#define GW_SC_MAX_SESSION 4096
#define GW_SC_MAX_ID 32
typedef struct gw_sess_cache {
    pthread_mutex_t lock;                // process-shared, robust (own cache line)
    uint8_t _lockpad[64 - sizeof(pthread_mutex_t)];
    uint64_t magic;
    uint64_t bucket_count;               // power of 2
    uint64_t buckets_offset;             // from the area start
    uint64_t ring_offset;                // from the area start, 64-aligned
    uint64_t ring_size;                  // bytes, a multiple of 64
    uint64_t head, tail;                 // absolute positions: the log is [tail, head)
    uint64_t entries;                    // live sessions
    uint64_t stores, hits, misses, expired, evictions, removed, too_big, recoveries;
    uint8_t _pad[256 - 64 - 16 * 8];
} gw_sess_cache;
typedef struct gw_sess_rec {             // 64 B, then der_len bytes of i2d_SSL_SESSION
    uint32_t size;                       // whole record, a multiple of 64
    uint8_t kind;                        // 0 filler (rest of the ring), 1 live, 2 dead
    uint8_t id_len;
    uint16_t der_len;
    uint32_t hash;
    uint32_t _reserved;
    int64_t expires;                     // unix seconds
    uint64_t next;                       // hash chain: absolute position + 1 of the next live record, 0 = end
    uint8_t id[GW_SC_MAX_ID];
} gw_sess_rec;
typedef struct gw_sess_cache_stats {
    uint64_t capacity_bytes, used_bytes, entries, stores, hits, misses, expired, evictions, removed, too_big, recoveries;
} gw_sess_cache_stats;
// The smallest area gw_sc_format accepts (nginx: a zone of 8 pages).
size_t gw_sc_min_size(void);
// Lays out an empty cache in `size` bytes at `area`; 0, or -1 when too small.
int gw_sc_format(void *area, size_t size);
int gw_sc_lock_init(pthread_mutex_t *m);
// Table operations (the OpenSSL callbacks use them; tests call them with their own clock). put: 0 stored
// (the oldest records evicted as needed), -1 refused (too large, no cache). get: the DER length copied
// into out (0: unknown, expired or larger than cap). remove: 1 when a record was removed.
int gw_sc_put(void *area, const unsigned char *id, unsigned id_len, const unsigned char *der, unsigned der_len,
              int64_t expires, int64_t now);
int gw_sc_get(void *area, const unsigned char *id, unsigned id_len, int64_t now, unsigned char *out, unsigned cap);
int gw_sc_remove(void *area, const unsigned char *id, unsigned id_len);
int gw_sc_stats(void *area, gw_sess_cache_stats *out);
// Tests: a thread locks the cache, half-updates it and ends without unlocking (owner-dead).
int gw_sc_test_die_holding_lock(void *area);
// Worker: server contexts made afterwards keep their sessions in the cache at `area` (before any context).
void gw_tls_session_cache_attach(void *area);
// Installs the external cache callbacks on ctx when a cache is attached; 1 if installed, 0 if not.
int gw_tls_use_shared_session_cache(SSL_CTX *ctx);
#endif
