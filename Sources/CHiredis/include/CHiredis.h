// Debian's hiredis (libhiredis-dev, 0.14): the asynchronous Redis client GWRedis drives on a worker's
// libev loop with its own watchers (ac->ev hooks). Accessors for what Swift does not import well.
#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

static inline int CHiredis_fd(const redisAsyncContext *ac) { return ac->c.fd; }
static inline int CHiredis_ok(void) { return REDIS_OK; }
static inline int CHiredis_reply_integer(void) { return REDIS_REPLY_INTEGER; }
static inline int CHiredis_reply_array(void) { return REDIS_REPLY_ARRAY; }
static inline int CHiredis_reply_error(void) { return REDIS_REPLY_ERROR; }
static inline int CHiredis_reply_status(void) { return REDIS_REPLY_STATUS; }
static inline int CHiredis_reply_string(void) { return REDIS_REPLY_STRING; }
static inline int CHiredis_reply_nil(void) { return REDIS_REPLY_NIL; }
#endif
