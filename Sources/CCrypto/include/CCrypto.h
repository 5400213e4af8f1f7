// Debian's OpenSSL libcrypto (libssl-dev): message digests for the plugins (basic-auth stores
// sha1_hex(password .. consumer_id) as Kong does; proxy-cache keys are sha256_hex) and random bytes.
#ifndef CCRYPTO_H
#define CCRYPTO_H
#include <openssl/sha.h>
#include <openssl/rand.h>
#endif
