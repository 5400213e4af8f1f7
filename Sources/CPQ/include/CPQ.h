// Debian's libpq (libpq-dev): the PostgreSQL client library, used by the master only (GWServer's
// PostgreSQL store) and by the CLI (`gateway migrations`, `config db_import/db_export`).
#ifndef CPQ_H
#define CPQ_H
#include <postgresql/libpq-fe.h>
#endif
