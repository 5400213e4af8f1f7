// CGWMetrics: fixed layout of the prometheus plugin's metrics table (Kong's `prometheus_metrics` shm)
// inside the plugin area of the shared segment (owned by GWPluginState.MetricsTable), and the one
// observation step the request path runs (static inline: no call, no lock, no allocation).
//
// table: [gw_metrics_header (128 B)][gw_metric_row x capacity (1 KiB each, capacity a power of two)]
//
// A row is one label set (service, route, consumer) of the node: its status-code counters (16 code
// slots), bandwidth counters and three histograms (Kong's kong/upstream/request latency buckets; each
// bucket counts the observations of its own range, the exposition makes them cumulative). Every
// counter is a relaxed atomic add on shared memory: exact across all workers, no lock on the request
// path; the master reads them at scrape time without stopping anyone.
//
// Row claim (lock-free, any process): the row's `tag` goes 0 -> (key_hi | 1) by CAS; the winner writes
// key_lo, the label lengths and bytes, then stores state = 2 (release). A scrape shows rows in state 2
// only. A process that sees its own tag on a row still in state 1 (a concurrent claim of the same key)
// counts into it at once: counters do not depend on the labels. Rows are never freed (the table lives
// as long as the master; a reload keeps every count). No free row in the probe window: the
// observation is dropped and `full` counted (the caller logs it, at most once a minute).
#ifndef CGWMETRICS_H
#define CGWMETRICS_H

#include <stdint.h>
#include <stddef.h>

#define GW_METRICS_MAGIC 0x3152544d57474750ULL   /* "PGGWMTR1" little-endian */
#define GW_METRICS_LAYOUT_VERSION 1
#define GW_METRICS_CODES 16
#define GW_METRICS_KONG_BUCKETS 18               /* 17 bounds + the +Inf bucket */
#define GW_METRICS_UPSTREAM_BUCKETS 14           /* 13 bounds + the +Inf bucket */
#define GW_METRICS_LABEL_BYTES 328
#define GW_METRICS_PROBE_LIMIT 64

// Flags of one observation (the instance's config).
#define GW_METRICS_STATUS 1u
#define GW_METRICS_LATENCY 2u
#define GW_METRICS_BANDWIDTH 4u

typedef struct gw_metrics_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t row_size;             // sizeof(gw_metric_row)
    uint64_t capacity;             // rows, a power of two
    uint64_t rows_offset;          // from the start of the table
    uint64_t used;                 // rows claimed
    uint64_t full;                 // observations dropped: no free row in the probe window
    uint64_t codes_full;           // status codes dropped: the row's 16 code slots were taken
    uint64_t too_long;             // observations dropped: labels longer than GW_METRICS_LABEL_BYTES
    uint8_t _pad[128 - 64];
} gw_metrics_header;

typedef struct gw_metric_code {
    uint32_t key;                  // 0 = free; else (status << 1 | source_kong) + 1
    uint32_t _r;
    uint64_t count;
} gw_metric_code;

typedef struct gw_metric_row {
    uint64_t tag;                  // 0 = free; key_hi | 1 once claimed
    uint64_t key_lo;
    uint32_t state;                // 0 free, 1 claimed (labels being written), 2 ready
    uint16_t service_len;          // label bytes: service, then route, then consumer
    uint16_t route_len;
    uint16_t consumer_len;
    uint16_t _r0;
    uint32_t _r1;
    uint64_t ingress;              // bandwidth bytes
    uint64_t egress;
    uint64_t kong[GW_METRICS_KONG_BUCKETS];
    uint64_t kong_sum;
    uint64_t upstream[GW_METRICS_UPSTREAM_BUCKETS];
    uint64_t upstream_sum;
    uint64_t request[GW_METRICS_UPSTREAM_BUCKETS];
    uint64_t request_sum;
    gw_metric_code codes[GW_METRICS_CODES];
    uint8_t labels[GW_METRICS_LABEL_BYTES];
} gw_metric_row;

_Static_assert(sizeof(gw_metrics_header) == 128, "gw_metrics_header layout");
_Static_assert(sizeof(gw_metric_code) == 16, "gw_metric_code layout");
_Static_assert(sizeof(gw_metric_row) == 1024, "gw_metric_row layout");

static inline void gw_metric_add(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline uint64_t gw_metric_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint32_t gw_metric_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

// Kong's buckets (kong/plugins/prometheus/exporter.lua): le = bound, value in ms.
static inline unsigned gw_metrics_kong_bucket(int64_t ms) {
    static const int32_t b[17] = {1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000};
    unsigned i = 0;
    while (i < 17 && ms > b[i]) i++;
    return i;
}
static inline unsigned gw_metrics_upstream_bucket(int64_t ms) {
    static const int32_t b[13] = {25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000};
    unsigned i = 0;
    while (i < 13 && ms > b[i]) i++;
    return i;
}

// Counts one exchange in `row`. status_key = (status << 1 | source_kong) + 1. A latency < 0 is not
// observed (Kong: upstream latency only for proxied requests); bandwidth only when > 0.
// Returns 0, or 1 when the status code found no free code slot (the caller counts it).
static inline int gw_metrics_observe(gw_metrics_header *h, gw_metric_row *row, uint32_t flags, uint32_t status_key,
                                     int64_t kong_ms, int64_t upstream_ms, int64_t request_ms,
                                     uint64_t ingress, uint64_t egress) {
    int dropped = 0;
    if (flags & GW_METRICS_STATUS) {
        unsigned i = 0;
        for (; i < GW_METRICS_CODES; i++) {
            gw_metric_code *c = &row->codes[i];
            uint32_t k = __atomic_load_n(&c->key, __ATOMIC_RELAXED);
            if (k == 0) {
                uint32_t expected = 0;
                if (__atomic_compare_exchange_n(&c->key, &expected, status_key, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) k = status_key;
                else k = expected;
            }
            if (k == status_key) { __atomic_fetch_add(&c->count, 1, __ATOMIC_RELAXED); break; }
        }
        if (i == GW_METRICS_CODES) { __atomic_fetch_add(&h->codes_full, 1, __ATOMIC_RELAXED); dropped = 1; }
    }
    if (flags & GW_METRICS_LATENCY) {
        if (request_ms >= 0) {
            __atomic_fetch_add(&row->request[gw_metrics_upstream_bucket(request_ms)], 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&row->request_sum, (uint64_t)request_ms, __ATOMIC_RELAXED);
        }
        if (upstream_ms >= 0) {
            __atomic_fetch_add(&row->upstream[gw_metrics_upstream_bucket(upstream_ms)], 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&row->upstream_sum, (uint64_t)upstream_ms, __ATOMIC_RELAXED);
        }
        if (kong_ms >= 0) {
            __atomic_fetch_add(&row->kong[gw_metrics_kong_bucket(kong_ms)], 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&row->kong_sum, (uint64_t)kong_ms, __ATOMIC_RELAXED);
        }
    }
    if (flags & GW_METRICS_BANDWIDTH) {
        if (ingress > 0) __atomic_fetch_add(&row->ingress, ingress, __ATOMIC_RELAXED);
        if (egress > 0) __atomic_fetch_add(&row->egress, egress, __ATOMIC_RELAXED);
    }
    return dropped;
}

#endif
