// Process-shared robust mutexes for GWPluginState's tables (see CGWPluginState.h).
#include "CGWShims.h"
#include <errno.h>
#include <pthread.h>

int gw_ps_lock_init(pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc) return rc;
    if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
        (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0) {
        rc = pthread_mutex_init(m, &a);
    }
    pthread_mutexattr_destroy(&a);
    return rc;
}

int gw_ps_lock(pthread_mutex_t *m) {
    int rc = pthread_mutex_lock(m);
    if (rc == 0) return 0;
    if (rc == EOWNERDEAD) {
        // The owner died inside the section. Mark the mutex usable again; the caller repairs the data.
        pthread_mutex_consistent(m);
        return 1;
    }
    return -rc;
}

void gw_ps_unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); }

int gw_ps_lock_and_abandon(pthread_mutex_t *m) { return gw_ps_lock(m); }
