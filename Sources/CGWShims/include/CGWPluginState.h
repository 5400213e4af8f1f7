// CGWPluginState: fixed layout of the plugins' area inside the shared segment (owned by GWPluginState):
// the rate-limiting counters (Kong's `kong_rate_limiting_counters` shm) and the proxy-cache store
// (Kong's proxy-cache `memory` strategy). Plain C structs, offsets only, no pointers; documented in
// GWPluginState/PluginState.swift and ARCHITECTURE.md "Shared-memory layout".
//
// plugin area: [gw_plugin_area_header (128 B)][rate-limit table][cache store][metrics table (CGWMetrics.h)]
//              [cluster counter table (database = postgres only)]
//   rate-limit table: [gw_rl_header (128 B)][gw_rl_slot x capacity (32 B each)]
//   cache store:      [gw_cache_header (256 B)][uint32_t buckets x bucket_count][chunks x chunk_count (1 KiB)]
//
// Each table has ONE process-shared, robust pthread mutex (PTHREAD_PROCESS_SHARED +
// PTHREAD_MUTEX_ROBUST), initialised once by the master. gw_ps_lock returns 1 when the previous owner
// died inside the section (the mutex was made consistent again; the caller repairs or resets what it
// protects), 0 otherwise.
#ifndef CGWPLUGINSTATE_H
#define CGWPLUGINSTATE_H

#include <stdint.h>
#include <stddef.h>
#include <pthread.h>

#define GW_PLUGIN_MAGIC 0x31474c5057475047ULL   /* "GPGWPLG1" little-endian */
#define GW_PLUGIN_LAYOUT_VERSION 2
#define GW_RL_MAGIC 0x31544d4c52574750ULL       /* "PGWRLMT1" */
#define GW_CACHE_MAGIC 0x3148434143574750ULL    /* "PGWCACH1" */
#define GW_CACHE_CHUNK_SIZE 1024
#define GW_RLC_MAGIC 0x314c43524c574750ULL      /* "PGWLRCL1" */
#define GW_RLC_IDENT_MAX 112

typedef struct gw_plugin_area_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t _reserved;
    uint64_t counters_offset;      // from the start of the plugin area
    uint64_t counters_size;
    uint64_t cache_offset;         // from the start of the plugin area
    uint64_t cache_size;
    uint64_t metrics_offset;       // from the start of the plugin area (CGWMetrics.h)
    uint64_t metrics_size;
    uint64_t cluster_offset;       // from the start of the plugin area (0 size: no cluster table)
    uint64_t cluster_size;
    uint8_t _pad[128 - 80];
} gw_plugin_area_header;

// MARK: rate-limit counters

typedef struct gw_rl_header {
    pthread_mutex_t lock;          // 40 B on glibc x86_64/aarch64 (asserted below to fit in 64)
    uint8_t _lockpad[64 - sizeof(pthread_mutex_t)];
    uint64_t magic;
    uint32_t layout_version;
    uint32_t slot_size;            // sizeof(gw_rl_slot)
    uint64_t capacity;             // number of slots (any positive number; indexed by multiply-shift)
    uint64_t full;                 // consume() calls answered .full (no free or expired slot)
    uint64_t inserts;              // windows created (a new key, or an expired slot reused)
    uint64_t recoveries;           // lock taken over from a process that died holding it
    uint64_t slots_offset;         // from the start of the table
    uint64_t probe_limit;          // slots examined from a key's home slot
} gw_rl_header;

// One counter of one window. window_end == 0: never used (stops a probe); window_end <= now: expired
// (reusable, the probe continues past it). Written in the order key, count, window_end, so a writer
// killed midway leaves either the old expired window or the complete new one.
typedef struct gw_rl_slot {
    uint64_t key_hi;
    uint64_t key_lo;
    int64_t window_end;            // unix seconds; the window is live while now < window_end
    int64_t count;
} gw_rl_slot;

// MARK: rate-limiting policy `cluster` (database = postgres; GWPluginState/ClusterCounterTable.swift)
//   table: [gw_rlc_header (128 B)][gw_rlc_slot x capacity (256 B each)]

typedef struct gw_rlc_header {
    pthread_mutex_t lock;
    uint8_t _lockpad[64 - sizeof(pthread_mutex_t)];
    uint64_t magic;
    uint32_t layout_version;
    uint32_t slot_size;            // sizeof(gw_rlc_slot)
    uint64_t capacity;
    uint64_t full;                 // consume() calls answered .full
    uint64_t inserts;              // windows created
    uint64_t recoveries;           // lock taken over from a dead process
    int64_t synced_at;             // unix seconds of the master's last successful sync (atomic)
    uint64_t probe_limit;
} gw_rlc_header;

// One (instance, identifier, period, window) counter. Usage = synced + inflight + pending.
// window_end == 0: never used; <= now: expired (reusable). Written key, identity, counts, window_end last.
typedef struct gw_rlc_slot {
    uint64_t key_hi;
    uint64_t key_lo;
    int64_t window_end;            // unix seconds
    int64_t window_start;          // unix seconds (Kong's period_date)
    int64_t synced;                // the cluster-wide value the master last read from PostgreSQL
    int64_t pending;               // this node's requests not yet taken by the master
    int64_t inflight;              // taken by the master, its statement not answered yet
    uint8_t period;                // 0 second ... 5 year
    uint8_t ident_len;             // bytes of identifier
    uint8_t _r[6];
    char service_id[36];           // the instance's scope as Kong writes it (text uuid)
    char route_id[36];
    char identifier[GW_RLC_IDENT_MAX];   // printable ASCII; longer or other bytes: "h:" + hash hex
    uint8_t _pad[8];
} gw_rlc_slot;

// MARK: proxy-cache store

typedef struct gw_cache_header {
    pthread_mutex_t lock;
    uint8_t _lockpad[64 - sizeof(pthread_mutex_t)];
    uint64_t magic;
    uint32_t layout_version;
    uint32_t chunk_size;           // GW_CACHE_CHUNK_SIZE
    uint64_t chunk_count;
    uint64_t bucket_count;         // power of two
    uint64_t buckets_offset;       // from the start of the store
    uint64_t chunks_offset;        // from the start of the store
    uint64_t max_entry_size;       // blob bytes; larger blobs are refused
    uint32_t free_head;            // chunk index + 1 of the free list (0 = empty)
    uint32_t lru_head;             // most recently used entry (head chunk index + 1)
    uint32_t lru_tail;             // least recently used entry
    uint32_t fresh;                // chunks [fresh, chunk_count) were never used (not on the free list,
                                   // never touched: their pages cost no memory until needed)
    uint64_t free_chunks;          // free-list chunks + never-used chunks
    uint64_t entries;
    uint64_t bytes;                // blob bytes stored
    uint64_t hits;
    uint64_t misses;
    uint64_t stores;
    uint64_t evictions;            // live entries evicted to make room (LRU)
    uint64_t refused;              // store() refused: blob larger than max_entry_size or than the store
    uint64_t recoveries;           // lock taken over from a dead process (the store was emptied)
    uint8_t _pad[256 - 208];
} gw_cache_header;

// Every chunk starts with gw_cache_link. The first chunk of an entry is a gw_cache_entry (the link,
// the key and metadata, then data); its following chunks carry data after their link.
typedef struct gw_cache_link {
    uint32_t next;                 // next chunk of this entry / of the free list (index + 1; 0 = end)
    uint32_t kind;                 // 0 = free, 1 = entry head, 2 = entry data
} gw_cache_link;

typedef struct gw_cache_entry {
    gw_cache_link link;
    uint64_t key[4];               // the caller's 32-byte key (sha256)
    int64_t stored_at;             // unix seconds
    int64_t ttl;                   // seconds after stored_at when the entry is stale
    int64_t expires_at;            // unix seconds; gone from then on (storage expiry)
    uint64_t plugin_hi;            // plugin instance id (e.g. its UUID's 16 bytes)
    uint64_t plugin_lo;
    uint32_t blob_len;
    uint32_t chunks;               // chunks used, this one included
    uint32_t lru_prev;             // toward the head (more recent); index + 1
    uint32_t lru_next;             // toward the tail (less recent)
    uint32_t hash_next;            // next entry in this bucket
    uint32_t _r0;
    uint8_t _pad[128 - 104];
} gw_cache_entry;

enum {
    GW_CACHE_HEAD_DATA = GW_CACHE_CHUNK_SIZE - (int)sizeof(gw_cache_entry),   // blob bytes in a head chunk
    GW_CACHE_CHUNK_DATA = GW_CACHE_CHUNK_SIZE - (int)sizeof(gw_cache_link),   // blob bytes in a data chunk
};

_Static_assert(sizeof(pthread_mutex_t) <= 64, "pthread_mutex_t must fit in its cache line");
_Static_assert(sizeof(gw_plugin_area_header) == 128, "gw_plugin_area_header layout");
_Static_assert(sizeof(gw_rl_header) == 128, "gw_rl_header layout");
_Static_assert(sizeof(gw_rl_slot) == 32, "gw_rl_slot layout");
_Static_assert(sizeof(gw_rlc_header) == 128, "gw_rlc_header layout");
_Static_assert(sizeof(gw_rlc_slot) == 256, "gw_rlc_slot layout");
_Static_assert(sizeof(gw_cache_header) == 256, "gw_cache_header layout");
_Static_assert(sizeof(gw_cache_link) == 8, "gw_cache_link layout");
_Static_assert(sizeof(gw_cache_entry) == 128, "gw_cache_entry layout");
_Static_assert(offsetof(gw_cache_entry, key) == 8, "gw_cache_entry key offset");

// MARK: locks (shims.c)

// Initialises a process-shared robust mutex in place (the master, once, before any worker starts).
// Returns 0 or an errno value.
int gw_ps_lock_init(pthread_mutex_t *m);
// Locks; returns 0, or 1 when the previous owner died holding it (now consistent again), or -errno.
int gw_ps_lock(pthread_mutex_t *m);
void gw_ps_unlock(pthread_mutex_t *m);
// Test hook: locks and never unlocks (a process that then dies leaves the mutex owner-dead).
int gw_ps_lock_and_abandon(pthread_mutex_t *m);

#endif
