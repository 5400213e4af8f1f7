// The module is mostly the header (libcrypto does the work); gw_sha256 keeps its context on the stack.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "CCrypto.h"

void gw_sha256(const unsigned char *data, size_t n, unsigned char *out) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, n);
    SHA256_Final(out, &c);
}
