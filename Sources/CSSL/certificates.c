// PEM certificates and keys of the certificates / ca_certificates entities (see include/CSSL.h):
// parsing and checks for the Admin API (Kong's messages come from the Swift side, the OpenSSL reason
// from here), and the per-handshake certificate choice hook on the proxy's server context.
// Invariants: every OpenSSL object made here is freed before returning; the error queue is left empty.
#include "CSSL.h"
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static void reason(char *err, size_t errlen) {
    unsigned long e = ERR_peek_last_error();
    if (e) ERR_error_string_n(e, err, errlen);
    else snprintf(err, errlen, "no PEM data found");
    ERR_clear_error();
}

static X509 *first_cert(const char *pem, BIO **out) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b) return NULL;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (out) *out = b; else BIO_free(b);
    return x;
}

int gw_cert_inspect(const char *pem, gw_cert_info *info, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    ERR_clear_error();
    BIO *b = NULL;
    X509 *x = first_cert(pem, &b);
    if (!x) { reason(err, errlen); if (b) BIO_free(b); return -1; }
    info->cert_count = 1;
    X509 *more;
    while ((more = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) { info->cert_count++; X509_free(more); }
    ERR_clear_error();
    BIO_free(b);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    info->key_type = pk ? EVP_PKEY_get_base_id(pk) : 0;
    info->is_ca = X509_check_ca(x) >= 1 && (X509_get_extension_flags(x) & EXFLAG_CA) ? 1 : 0;
    info->expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0 ? 1 : 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(x, EVP_sha256(), md, &n) == 1) {
        for (unsigned int i = 0; i < n && i < 32; i++) snprintf(info->sha256_hex + 2 * i, 3, "%02x", md[i]);
    }
    X509_free(x);
    ERR_clear_error();
    return 0;
}

int gw_key_check(const char *pem, char *err, size_t errlen) {
    ERR_clear_error();
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    if (b) BIO_free(b);
    if (!k) { reason(err, errlen); return -1; }
    EVP_PKEY_free(k);
    return 0;
}

int gw_cert_key_match(const char *cert_pem, const char *key_pem) {
    ERR_clear_error();
    X509 *x = first_cert(cert_pem, NULL);
    BIO *b = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    if (b) BIO_free(b);
    int ok = x && k && X509_check_private_key(x, k) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return ok ? 1 : 0;
}

// The certificate is chosen in the client hello callback, which OpenSSL runs BEFORE it looks the client's
// session up (the servername callback runs after): SSL_set_SSL_CTX there also gives the connection the
// chosen context's session id context, so OpenSSL resumes only sessions made with that certificate
// (shim.c: the id context names the certificates). The SNI is read from the raw extension
// (server_name_list: u16 length, then entries of type u8, u16 length, name); a malformed one is left to
// OpenSSL, which refuses it when it parses the extension.
static int client_hello_cb(SSL *s, int *alert, void *arg) {
    gw_sni_hook *h = arg;
    const unsigned char *p = NULL;
    size_t len = 0;
    if (!h || !h->select || !SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &p, &len) || len < 5)
        return SSL_CLIENT_HELLO_SUCCESS;   // no SNI: the default certificate
    size_t list = ((size_t)p[0] << 8) | p[1];
    size_t name_len = ((size_t)p[3] << 8) | p[4];
    if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name || name_len == 0 || name_len > list - 3
        || name_len > TLSEXT_MAXLEN_host_name || memchr(p + 5, 0, name_len) != NULL)
        return SSL_CLIENT_HELLO_SUCCESS;
    SSL_CTX *chosen = NULL;
    int r = h->select(h->owner, (const char *)p + 5, name_len, &chosen);
    if (r < 0) { *alert = SSL_AD_UNRECOGNIZED_NAME; return SSL_CLIENT_HELLO_ERROR; }   // the certificate cannot be used
    if (r > 0 && chosen && chosen != SSL_get_SSL_CTX(s)) SSL_set_SSL_CTX(s, chosen);
    return SSL_CLIENT_HELLO_SUCCESS;
}

// The servername callback only acknowledges the name (the choice was made above).
static int servername_cb(SSL *s, int *alert, void *arg) {
    (void)alert; (void)arg;
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    return name && name[0] ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

void gw_tls_set_sni_hook(SSL_CTX *ctx, gw_sni_hook *hook) {
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, hook);
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, hook);
}

const char *gw_tls_servername(const SSL *s) { return SSL_get_servername(s, TLSEXT_NAMETYPE_host_name); }
