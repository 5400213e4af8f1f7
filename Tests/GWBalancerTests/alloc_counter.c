// Allocation counter for GWBalancerTests.noAllocationPerPick (not compiled by SwiftPM; excluded in Package.swift).
// Build and run:
//   cc -shared -fPIC -O2 -o /tmp/alloc_counter.so Tests/GWBalancerTests/alloc_counter.c
//   LD_PRELOAD=/tmp/alloc_counter.so .build-balancer/debug/gatewayPackageTests.xctest \
//       --testing-library swift-testing --filter noAllocationPerPick
// Counts malloc-family calls made by the calling thread while counting is on.
#include <stddef.h>
#include <stdint.h>
#include <errno.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static __thread int gw_counting;
static __thread uint64_t gw_count;

void gw_alloc_counter_start(void) { gw_count = 0; gw_counting = 1; }
uint64_t gw_alloc_counter_stop(void) { gw_counting = 0; return gw_count; }

void *malloc(size_t n) { if (gw_counting) gw_count++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (gw_counting) gw_count++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (gw_counting) gw_count++; return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { if (gw_counting) gw_count++; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { if (gw_counting) gw_count++; return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    if (gw_counting) gw_count++;
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
