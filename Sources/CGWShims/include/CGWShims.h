// CGWShims: what Swift cannot import or must not write itself.
//  - libev's function-like macros (ev_io_init, ev_timer_init ...) as static inline functions.
//  - Signal handlers: C functions that only set a flag and write one byte to a self-pipe
//    (async-signal-safe); no Swift code ever runs inside a handler.
//  - Atomics on raw shared memory (__atomic builtins; lock-free on x86_64/aarch64, so they work
//    across processes on a MAP_SHARED mapping).
//  - The fixed layout of the shared-memory segment (plain C structs, offsets not pointers).
#ifndef CGWSHIMS_H
#define CGWSHIMS_H

#include <ev.h>
#include <stdint.h>
#include <stddef.h>
#include <signal.h>
#include <sys/types.h>

// MARK: libev

typedef void (*gw_io_cb)(struct ev_loop *loop, ev_io *w, int revents);
typedef void (*gw_timer_cb)(struct ev_loop *loop, ev_timer *w, int revents);

static inline void gw_io_init(ev_io *w, gw_io_cb cb, int fd, int events) { ev_io_init(w, cb, fd, events); }
static inline void gw_io_set(ev_io *w, int fd, int events) { ev_io_set(w, fd, events); }
static inline int gw_io_is_active(const ev_io *w) { return ev_is_active(w); }
static inline void gw_timer_init(ev_timer *w, gw_timer_cb cb, double after, double repeat) {
    ev_timer_init(w, cb, after, repeat);
}
static inline void gw_timer_set(ev_timer *w, double after, double repeat) { ev_timer_set(w, after, repeat); }
static inline int gw_timer_is_active(const ev_timer *w) { return ev_is_active(w); }
static inline void *gw_io_data(const ev_io *w) { return w->data; }
static inline void gw_io_set_data(ev_io *w, void *d) { w->data = d; }
static inline void *gw_timer_data(const ev_timer *w) { return w->data; }
static inline void gw_timer_set_data(ev_timer *w, void *d) { w->data = d; }
static inline int gw_ev_read(void) { return EV_READ; }
static inline int gw_ev_write(void) { return EV_WRITE; }
static inline unsigned int gw_evflag_auto_nosigmask(void) { return EVFLAG_AUTO | EVFLAG_NOSIGMASK; }
static inline int gw_evbreak_all(void) { return EVBREAK_ALL; }
static inline int gw_evrun_once(void) { return EVRUN_ONCE; }

// MARK: signals
// Flags set by the handlers; read and cleared by gw_signals_take(). Bit = 1 << signo.
void gw_signals_install(int wake_fd);             // HUP INT TERM QUIT USR1 USR2 CHLD WINCH; SIGPIPE ignored
void gw_signals_reset_to_default(void);           // in a child after fork, before it installs its own
uint64_t gw_signals_take(void);                   // atomically fetch-and-clear the pending set
void gw_set_pdeathsig(int signo);                 // prctl(PR_SET_PDEATHSIG)
void gw_set_process_title(int argc, char **argv, const char *title);

// GNU extensions Glibc's Swift overlay hides (need _GNU_SOURCE).
struct sockaddr;
int gw_accept4(int fd, struct sockaddr *addr, unsigned int *len, int flags);
int gw_pipe2(int fds[2], int flags);
int gw_memfd_create(const char *name);            // memfd_create(name, MFD_CLOEXEC)
int gw_clear_cloexec(int fd);                     // fcntl: clear FD_CLOEXEC (an fd handed to an exec'd worker)
void gw_unblock_all_signals(void);                // sigprocmask(SIG_SETMASK, empty): before exec
uint64_t gw_heap_bytes(void);                     // mallinfo2().uordblks: the process's allocated heap
// sendmmsg on a connected socket: datagrams first ..< first+count (at most 64), datagram i being
// base[ends[i-1] ..< ends[i]] (0 for ends[-1]). Returns the number sent (-1 with errno when none was).
int gw_send_datagrams(int fd, const void *base, const long *ends, long first, int count);

// errno without ARC traffic in between (read right after the failing call in C).
static inline int gw_errno(void) { extern int *__errno_location(void); return *__errno_location(); }

// MARK: atomics on shared memory (sequentially consistent unless named otherwise)
static inline uint64_t gw_atomic_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gw_atomic_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t gw_atomic_add_u64(uint64_t *p, uint64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline uint64_t gw_atomic_sub_u64(uint64_t *p, uint64_t v) { return __atomic_sub_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline int gw_atomic_cas_u64(uint64_t *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline uint32_t gw_atomic_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gw_atomic_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t gw_atomic_add_u32(uint32_t *p, uint32_t v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline uint32_t gw_atomic_sub_u32(uint32_t *p, uint32_t v) { return __atomic_sub_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline int gw_atomic_cas_u32(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline int64_t gw_atomic_load_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gw_atomic_store_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int64_t gw_atomic_add_i64(int64_t *p, int64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }

// MARK: shared-memory segment layout (documented in ARCHITECTURE.md)
// [gw_shm_header][gw_worker_slot x GW_MAX_WORKERS][TLS area: GW_SHM_TLS_AREA_SIZE bytes, the session-ticket
// keys (CSSL.h gw_ticket_keys)][peer area: peer_area_size bytes at peer_area_offset]
// [plugin area: plugin_area_size bytes at plugin_area_offset (CGWPluginState.h); size 0 = none]
// [TLS session cache: tls_cache_size bytes at tls_cache_offset (CSSL.h gw_sess_cache); size 0 = none]
#define GW_SHM_MAGIC 0x3157474154455741ULL  /* "AWETAGW1" little-endian */
#define GW_SHM_LAYOUT_VERSION 3
#define GW_MAX_WORKERS 64
#define GW_SHM_TLS_AREA_SIZE 256

typedef struct gw_shm_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t max_workers;
    uint64_t size;                 // whole segment, bytes
    uint64_t config_generation;    // bumped by the master after each published configuration
    uint64_t peer_area_offset;     // from the segment start
    uint64_t peer_area_size;
    int64_t master_pid;
    uint64_t started_at;           // unix seconds
    uint64_t plugin_area_offset;   // from the segment start (page-aligned)
    uint64_t plugin_area_size;
    uint64_t tls_cache_offset;     // from the segment start (page-aligned): the shared TLS session cache
    uint64_t tls_cache_size;
    uint8_t _pad[128 - 96];
} gw_shm_header;

// One per worker slot; padded to 128 bytes so that workers never share a cache line.
typedef struct gw_worker_slot {
    int64_t pid;                   // 0 = free
    uint64_t heartbeat;            // monotonic ms, written by the worker once a second
    uint64_t requests;             // requests served
    uint64_t connections_active;
    uint64_t connections_accepted;
    uint64_t connections_reading;
    uint64_t connections_writing;
    uint64_t config_generation;    // the generation this worker has applied
    uint64_t ready;                // 1 once the worker accepts connections
    uint64_t config_applied_at_ms; // wall clock (ms) when `config_generation` was applied
    uint64_t heap_bytes;           // the worker's allocated heap (mallinfo2 uordblks), 1 Hz
    uint8_t _pad[128 - 88];
} gw_worker_slot;

_Static_assert(sizeof(gw_shm_header) == 128, "gw_shm_header layout");
_Static_assert(sizeof(gw_worker_slot) == 128, "gw_worker_slot layout");

#endif
#include "CGWPeers.h"
#include "CGWPluginState.h"
#include "CGWMetrics.h"
