// Debian's c-ares (libc-ares-dev, 1.18): asynchronous DNS for the master's libev loop.
// ARES_SOCKET_BAD and the T_* / C_IN constants are macros Swift does not import reliably.
#ifndef CARES_SHIM_H
#define CARES_SHIM_H
#include <ares.h>
#include <arpa/nameser.h>
static inline ares_socket_t CAres_socket_bad(void) { return ARES_SOCKET_BAD; }
static inline int CAres_class_in(void) { return 1; }   /* C_IN */
static inline int CAres_type_srv(void) { return 33; }  /* T_SRV */
#endif
