// The TLS session cache every worker shares (nginx's `ssl_session_cache shared:SSL:<size>`, read from
// ngx_event_openssl.c: ngx_ssl_new_session / ngx_ssl_get_cached_session / ngx_ssl_remove_session), in
// its own area of the node's shared segment. OpenSSL reaches it through the external cache callbacks
// (SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL): a session is stored as i2d_SSL_SESSION bytes
// under its session id, and read back with d2i_SSL_SESSION on any worker.
//
// Layout (offsets, no pointers; see CSSL.h gw_sess_cache):
//   [gw_sess_cache header, 256 B][u64 buckets[bucket_count]][ring: ring_size bytes]
// The ring is a FIFO log of records in creation order: record = gw_sess_rec (64 B) + DER, rounded up to
// 64 bytes. `head` and `tail` are absolute byte positions (they only grow; a position's place in the
// ring is pos % ring_size); tail <= pos < head is the log. A record never wraps: when it does not fit
// before the end of the ring, the rest of the ring becomes a filler record (kind 0) and the record
// starts at 0. Buckets hold hash chains (absolute position + 1, 0 = end) of the LIVE records only.
//
// Invariants:
//  - A live record is in exactly one chain; a record removed (OpenSSL's remove callback, a replaced id,
//    found expired) is unlinked and marked dead at once; its bytes come back when the tail passes it.
//  - Full: a store evicts from the tail (the OLDEST record, live or not) until the new record fits, so a
//    store never fails for lack of room (a record is at most GW_SC_MAX_SESSION + 64 bytes and the ring
//    is larger than that). Every timeout being ssl_session_timeout, the oldest is also the first to
//    expire; as nginx, a store first drops up to two expired records at the tail.
//  - Expiry: a record past `expires` (unix seconds) is never returned; it is removed when found.
//  - Lock: ONE process-shared robust pthread mutex; nothing else blocks inside (no syscall, no
//    allocation, no OpenSSL call: i2d/d2i run outside, on a 4 KiB stack copy, as nginx does). A process
//    killed inside leaves the mutex owner-dead: the next locker empties the cache (the chains may be
//    half-updated) and counts a recovery; sessions lost only cost full handshakes.
#include "CSSL.h"
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#define GW_SC_MAGIC 0x3148435353455347ULL   /* "GSESSCH1" little-endian */
#define GW_SC_ALIGN 64
#define GW_SC_LIVE 1
#define GW_SC_DEAD 2

_Static_assert(sizeof(gw_sess_cache) == 256, "gw_sess_cache layout");
_Static_assert(sizeof(gw_sess_rec) == 64, "gw_sess_rec layout");
_Static_assert(sizeof(pthread_mutex_t) <= 64, "mutex fits its cache line");

static inline uint64_t *buckets(gw_sess_cache *c) { return (uint64_t *)((unsigned char *)c + c->buckets_offset); }
static inline gw_sess_rec *rec_at(gw_sess_cache *c, uint64_t pos) {
    return (gw_sess_rec *)((unsigned char *)c + c->ring_offset + pos % c->ring_size);
}

// FNV-1a over the id (ids are OpenSSL's random bytes; a client only looks ids up, never inserts them).
static uint32_t id_hash(const unsigned char *id, unsigned len) {
    uint32_t h = 2166136261u;
    for (unsigned i = 0; i < len; i++) { h ^= id[i]; h *= 16777619u; }
    return h;
}

size_t gw_sc_min_size(void) { return 32 * 1024; }

int gw_sc_format(void *area, size_t size) {
    if (!area || size < gw_sc_min_size()) return -1;
    gw_sess_cache *c = area;
    memset(c, 0, sizeof *c);
    // About one bucket per 256 bytes of ring (nginx: ~4000 sessions per megabyte), a power of two.
    uint64_t nb = 64;
    while (nb * 2 * 256 <= size) nb *= 2;
    c->bucket_count = nb;
    c->buckets_offset = sizeof *c;
    c->ring_offset = (c->buckets_offset + nb * sizeof(uint64_t) + GW_SC_ALIGN - 1) & ~(uint64_t)(GW_SC_ALIGN - 1);
    if (c->ring_offset + 2 * (GW_SC_MAX_SESSION + sizeof(gw_sess_rec)) > size) return -1;
    c->ring_size = (size - c->ring_offset) & ~(uint64_t)(GW_SC_ALIGN - 1);
    memset(buckets(c), 0, nb * sizeof(uint64_t));
    if (gw_sc_lock_init(&c->lock) != 0) return -1;
    c->magic = GW_SC_MAGIC;
    return 0;
}

int gw_sc_lock_init(pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc) return rc;
    if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0
        && (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0) rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

static void reset_locked(gw_sess_cache *c) {
    memset(buckets(c), 0, c->bucket_count * sizeof(uint64_t));
    c->head = c->tail = 0;
    c->entries = 0;
}

// 0: locked; -1: the cache cannot be used (not formatted, lock error).
static int lock(gw_sess_cache *c) {
    if (!c || c->magic != GW_SC_MAGIC) return -1;
    int rc = pthread_mutex_lock(&c->lock);
    if (rc == EOWNERDEAD) {
        // The owner died inside a section: the chains may be half-updated. Start empty.
        pthread_mutex_consistent(&c->lock);
        reset_locked(c);
        c->recoveries++;
        return 0;
    }
    return rc == 0 ? 0 : -1;
}

static void unlock(gw_sess_cache *c) { pthread_mutex_unlock(&c->lock); }

// The live record with this id (and the link pointing at it, for unlinking), or NULL.
static gw_sess_rec *find(gw_sess_cache *c, const unsigned char *id, unsigned len, uint32_t h, uint64_t **link) {
    uint64_t *l = &buckets(c)[h & (c->bucket_count - 1)];
    unsigned steps = 0;
    while (*l) {
        uint64_t pos = *l - 1;
        if (pos < c->tail || pos >= c->head || ++steps > c->bucket_count) {   // never: a broken chain
            reset_locked(c);
            return NULL;
        }
        gw_sess_rec *r = rec_at(c, pos);
        if (r->hash == h && r->id_len == len && memcmp(r->id, id, len) == 0) {
            if (link) *link = l;
            return r;
        }
        l = &r->next;
    }
    return NULL;
}

static void unlink_rec(gw_sess_cache *c, gw_sess_rec *r, uint64_t *link) {
    *link = r->next;
    r->kind = GW_SC_DEAD;
    OPENSSL_cleanse((unsigned char *)(r + 1), r->der_len);   // as nginx: no key material left behind
    c->entries--;
}

// Drops the record at the tail. Returns 0 when the log is empty.
static int drop_tail(gw_sess_cache *c, int64_t now) {
    if (c->tail == c->head) return 0;
    gw_sess_rec *r = rec_at(c, c->tail);
    if (r->kind == GW_SC_LIVE) {
        uint64_t *link = NULL;
        if (find(c, r->id, r->id_len, r->hash, &link) == r && link) {
            if (r->expires <= now) c->expired++; else c->evictions++;
            unlink_rec(c, r, link);
        }
        if (c->tail == c->head) return 0;   // find() reset a broken cache
    }
    c->tail += r->size;
    if (c->tail > c->head) c->tail = c->head;   // never: a broken record size
    return 1;
}

int gw_sc_put(void *area, const unsigned char *id, unsigned id_len, const unsigned char *der, unsigned der_len,
              int64_t expires, int64_t now) {
    gw_sess_cache *c = area;
    if (id_len == 0 || id_len > GW_SC_MAX_ID || der_len == 0 || der_len > GW_SC_MAX_SESSION) {
        if (c && c->magic == GW_SC_MAGIC) __atomic_add_fetch(&c->too_big, 1, __ATOMIC_RELAXED);
        return -1;
    }
    if (lock(c) != 0) return -1;
    uint32_t h = id_hash(id, id_len);
    uint64_t *link = NULL;
    gw_sess_rec *old = find(c, id, id_len, h, &link);
    if (old) unlink_rec(c, old, link);
    // As nginx: drop up to two expired sessions (and whatever dead records lead the log).
    for (int expired = 0; c->tail != c->head;) {
        gw_sess_rec *t = rec_at(c, c->tail);
        if (t->kind == GW_SC_LIVE) {
            if (t->expires > now || expired == 2) break;
            expired++;
        }
        drop_tail(c, now);
    }
    uint64_t need = (sizeof(gw_sess_rec) + der_len + GW_SC_ALIGN - 1) & ~(uint64_t)(GW_SC_ALIGN - 1);
    uint64_t off = c->head % c->ring_size;
    uint64_t filler = off + need > c->ring_size ? c->ring_size - off : 0;
    while (c->ring_size - (c->head - c->tail) < filler + need) {
        if (!drop_tail(c, now)) break;
    }
    if (c->ring_size - (c->head - c->tail) < filler + need) {   // never: the ring holds the largest record
        unlock(c);
        return -1;
    }
    if (filler) {
        gw_sess_rec *f = rec_at(c, c->head);
        memset(f, 0, sizeof *f);
        f->size = (uint32_t)filler;
        c->head += filler;
    }
    gw_sess_rec *r = rec_at(c, c->head);
    r->size = (uint32_t)need;
    r->kind = GW_SC_LIVE;
    r->id_len = (uint8_t)id_len;
    r->der_len = (uint16_t)der_len;
    r->hash = h;
    r->expires = expires;
    memset(r->id, 0, sizeof r->id);
    memcpy(r->id, id, id_len);
    memcpy(r + 1, der, der_len);
    uint64_t *b = &buckets(c)[h & (c->bucket_count - 1)];
    r->next = *b;
    *b = c->head + 1;
    c->head += need;
    c->entries++;
    c->stores++;
    unlock(c);
    return 0;
}

int gw_sc_get(void *area, const unsigned char *id, unsigned id_len, int64_t now, unsigned char *out, unsigned cap) {
    gw_sess_cache *c = area;
    if (id_len == 0 || id_len > GW_SC_MAX_ID || lock(c) != 0) return 0;
    uint64_t *link = NULL;
    gw_sess_rec *r = find(c, id, id_len, id_hash(id, id_len), &link);
    int n = 0;
    if (r && r->expires <= now) {
        c->expired++;
        unlink_rec(c, r, link);
        r = NULL;
    }
    if (r && r->der_len <= cap) {
        memcpy(out, r + 1, r->der_len);
        n = r->der_len;
        c->hits++;
    } else {
        c->misses++;
    }
    unlock(c);
    return n;
}

int gw_sc_remove(void *area, const unsigned char *id, unsigned id_len) {
    gw_sess_cache *c = area;
    if (id_len == 0 || id_len > GW_SC_MAX_ID || lock(c) != 0) return 0;
    uint64_t *link = NULL;
    gw_sess_rec *r = find(c, id, id_len, id_hash(id, id_len), &link);
    if (r) { unlink_rec(c, r, link); c->removed++; }
    unlock(c);
    return r ? 1 : 0;
}

int gw_sc_stats(void *area, gw_sess_cache_stats *s) {
    gw_sess_cache *c = area;
    if (lock(c) != 0) return -1;
    s->capacity_bytes = c->ring_size;
    s->used_bytes = c->head - c->tail;
    s->entries = c->entries;
    s->stores = c->stores;
    s->hits = c->hits;
    s->misses = c->misses;
    s->expired = c->expired;
    s->evictions = c->evictions;
    s->removed = c->removed;
    s->too_big = c->too_big;
    s->recoveries = c->recoveries;
    unlock(c);
    return 0;
}

static void *die_holding(void *area) {
    gw_sess_cache *c = area;
    pthread_mutex_lock(&c->lock);
    c->head += 1;   // a half-done update (breaks the log's framing on purpose)
    return NULL;    // the thread ends owning the robust mutex: owner-dead for the next locker
}

int gw_sc_test_die_holding_lock(void *area) {
    pthread_t t;
    if (pthread_create(&t, NULL, die_holding, area) != 0) return -1;
    return pthread_join(t, NULL);
}

// MARK: OpenSSL's external cache callbacks

static gw_sess_cache *gw_shared_cache = NULL;

void gw_tls_session_cache_attach(void *area) { gw_shared_cache = area; }

static int64_t now_seconds(void) { return (int64_t)time(NULL); }

static int new_session_cb(SSL *s, SSL_SESSION *sess) {
    // As nginx: OpenSSL also announces TLS 1.3 sessions that travel in stateless tickets; with tickets
    // on they are not cached (with tickets off, TLS 1.3 tickets are stateful and carry the id).
    if (SSL_version(s) == TLS1_3_VERSION && (SSL_get_options(s) & SSL_OP_NO_TICKET) == 0) return 0;
    unsigned id_len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &id_len);
    int len = i2d_SSL_SESSION(sess, NULL);
    if (len <= 0 || len > GW_SC_MAX_SESSION || id_len == 0 || id_len > GW_SC_MAX_ID) {
        if (gw_shared_cache) __atomic_add_fetch(&gw_shared_cache->too_big, 1, __ATOMIC_RELAXED);
        return 0;
    }
    unsigned char buf[GW_SC_MAX_SESSION];
    unsigned char *p = buf;
    i2d_SSL_SESSION(sess, &p);
    int64_t now = now_seconds();
    (void)gw_sc_put(gw_shared_cache, id, id_len, buf, (unsigned)len, now + SSL_SESSION_get_timeout(sess), now);
    OPENSSL_cleanse(buf, (size_t)len);
    return 0;   // no reference kept: the cache holds bytes
}

static SSL_SESSION *get_session_cb(SSL *s, const unsigned char *id, int id_len, int *copy) {
    (void)s;
    *copy = 0;
    if (id_len <= 0) return NULL;
    unsigned char buf[GW_SC_MAX_SESSION];
    int n = gw_sc_get(gw_shared_cache, id, (unsigned)id_len, now_seconds(), buf, sizeof buf);
    if (n <= 0) return NULL;
    const unsigned char *p = buf;
    SSL_SESSION *sess = d2i_SSL_SESSION(NULL, &p, n);
    OPENSSL_cleanse(buf, (size_t)n);
    return sess;   // OpenSSL owns this reference
}

static void remove_session_cb(SSL_CTX *ctx, SSL_SESSION *sess) {
    (void)ctx;
    unsigned id_len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &id_len);
    (void)gw_sc_remove(gw_shared_cache, id, id_len);
}

int gw_tls_use_shared_session_cache(SSL_CTX *ctx) {
    if (!gw_shared_cache) return 0;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    SSL_CTX_sess_set_get_cb(ctx, get_session_cb);
    SSL_CTX_sess_set_remove_cb(ctx, remove_session_cb);
    return 1;
}
