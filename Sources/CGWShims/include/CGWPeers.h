// CGWPeers: fixed layout of the balancer's "peer area" inside the shared segment (owned by GWBalancer).
// Plain C structs, offsets only, no pointers. Documented in GWBalancer/PeerStateTable.swift.
//
// [gw_peer_table_header (128 B)][gw_peer_record x capacity (384 B each, capacity = power of two)]
// [uint32_t in-flight counts: worker_rows rows x capacity] (row w written only by the worker in slot w;
//  the master subtracts a dead worker's row from the records' `active` and zeroes it)
//
// A record is keyed by (upstream name, ip, port). Only the master inserts (single writer): it writes the
// key fields, then publishes with a release store of key_state = 1. Records are never emptied (a retired
// record may be re-keyed in place, like a tombstone), so readers probing with acquire loads stop at the
// first key_state == 0.
#ifndef CGWPEERS_H
#define CGWPEERS_H

#include <stdint.h>
#include <stddef.h>

#define GW_PEER_MAGIC 0x3153524545505747ULL   /* "GWPEERS1" little-endian */
#define GW_PEER_LAYOUT_VERSION 1
#define GW_PEER_NAME_MAX 255

typedef struct gw_peer_table_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t record_size;          // sizeof(gw_peer_record)
    uint32_t capacity;             // number of records, power of two
    uint32_t count;                // published records (written by the master only)
    uint64_t transitions;          // bumped by every health transition / reset / manual set (any process)
    uint64_t records_offset;       // from the start of the peer area
    uint32_t worker_rows;          // per-worker in-flight rows (GW_MAX_WORKERS)
    uint32_t _reserved;
    uint64_t inflight_offset;      // from the start of the peer area
    uint8_t _pad[128 - 56];
} gw_peer_table_header;

typedef struct gw_peer_record {
    // cache line 0: key (immutable once published) + health (read on every pick, written rarely)
    uint32_t key_state;            // 0 = empty, 1 = published, 2 = being re-keyed by the master (skip)
    uint16_t port;
    uint8_t family;                // 4 or 6
    uint8_t name_len;              // bytes used in name[]
    uint64_t key_hash;             // FNV-1a 64 of (name, family, ip, port)
    uint8_t ip[16];                // IPv4 in the first 4 bytes
    uint64_t health;               // packed health word, updated by CAS (see PeerStateTable.swift)
    uint64_t last_transition_ms;   // unix ms (CLOCK_REALTIME) of the last transition
    uint32_t last_reason;          // TransitionReason raw value
    uint32_t dns_state;            // 0 = ok/unknown, 1 = DNS error
    uint64_t retired_ms;           // unix ms when the master forgot it (0 = in use); re-keyable after a grace period
    // cache line 1: per-request counters (written by every worker)
    uint64_t active;               // in-flight picks, all workers (pick +1, release -1)
    uint64_t ewma;                 // (ewma_us << 32) | (sample time: CLOCK_MONOTONIC ms, low 32 bits); 0 = no sample
    uint64_t requests;             // released picks
    uint64_t failures;             // released picks with a failure outcome
    uint8_t _pad1[32];
    // cache lines 2..5: the upstream name (cold; compared only by findSlot/ensureSlot)
    uint8_t name[256];
} gw_peer_record;

enum {
    GW_PEER_RECORD_SIZE = sizeof(gw_peer_record),
    GW_PEER_HEADER_SIZE = sizeof(gw_peer_table_header),
    GW_PEER_OFF_KEY_STATE = offsetof(gw_peer_record, key_state),
    GW_PEER_OFF_PORT = offsetof(gw_peer_record, port),
    GW_PEER_OFF_FAMILY = offsetof(gw_peer_record, family),
    GW_PEER_OFF_NAME_LEN = offsetof(gw_peer_record, name_len),
    GW_PEER_OFF_KEY_HASH = offsetof(gw_peer_record, key_hash),
    GW_PEER_OFF_IP = offsetof(gw_peer_record, ip),
    GW_PEER_OFF_HEALTH = offsetof(gw_peer_record, health),
    GW_PEER_OFF_LAST_TRANSITION = offsetof(gw_peer_record, last_transition_ms),
    GW_PEER_OFF_LAST_REASON = offsetof(gw_peer_record, last_reason),
    GW_PEER_OFF_DNS_STATE = offsetof(gw_peer_record, dns_state),
    GW_PEER_OFF_RETIRED = offsetof(gw_peer_record, retired_ms),
    GW_PEER_OFF_ACTIVE = offsetof(gw_peer_record, active),
    GW_PEER_OFF_EWMA = offsetof(gw_peer_record, ewma),
    GW_PEER_OFF_REQUESTS = offsetof(gw_peer_record, requests),
    GW_PEER_OFF_FAILURES = offsetof(gw_peer_record, failures),
    GW_PEER_OFF_NAME = offsetof(gw_peer_record, name),
    GW_PEER_HDR_OFF_COUNT = offsetof(gw_peer_table_header, count),
    GW_PEER_HDR_OFF_TRANSITIONS = offsetof(gw_peer_table_header, transitions),
    GW_PEER_HDR_OFF_CAPACITY = offsetof(gw_peer_table_header, capacity),
    GW_PEER_HDR_OFF_RECORDS = offsetof(gw_peer_table_header, records_offset),
    GW_PEER_HDR_OFF_WORKER_ROWS = offsetof(gw_peer_table_header, worker_rows),
    GW_PEER_HDR_OFF_INFLIGHT = offsetof(gw_peer_table_header, inflight_offset),
};

_Static_assert(sizeof(gw_peer_table_header) == 128, "peer table header is 128 bytes");
_Static_assert(sizeof(gw_peer_record) == 384, "peer record is 6 cache lines");
_Static_assert(offsetof(gw_peer_record, active) == 64, "counters start on cache line 1");
_Static_assert(offsetof(gw_peer_record, name) == 128, "name starts on cache line 2");

#endif
