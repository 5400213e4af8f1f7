// Debian's libsqlite3 (libsqlite3-dev). SQLITE_TRANSIENT is a macro Swift cannot import.
#ifndef CSQLITE_H
#define CSQLITE_H
#include <sqlite3.h>
static inline sqlite3_destructor_type CSQLite_transient(void) { return SQLITE_TRANSIENT; }
#endif
