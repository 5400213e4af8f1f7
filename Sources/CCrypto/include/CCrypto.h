// Debian's OpenSSL libcrypto (libssl-dev): message digests for the plugins (basic-auth stores
// sha1_hex(password .. consumer_id) as Kong does; proxy-cache keys are sha256_hex) and random bytes.
#ifndef CCRYPTO_H
#define CCRYPTO_H
#include <openssl/sha.h>
#include <openssl/rand.h>

// sha256 of n bytes into out[32] with the context on the stack: OpenSSL 3's one-shot SHA256() goes
// through EVP (three heap allocations per call); proxy-cache computes one key per request.
void gw_sha256(const unsigned char *data, size_t n, unsigned char *out);
#endif
