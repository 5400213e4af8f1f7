#define _GNU_SOURCE
#include "CGWShims.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>

int gw_accept4(int fd, struct sockaddr *addr, unsigned int *len, int flags) { return accept4(fd, addr, (socklen_t *)len, flags); }
int gw_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

static volatile sig_atomic_t gw_wake_fd = -1;
static uint64_t gw_pending;   // bit per signal; updated with __atomic ops only

static void gw_handler(int signo) {
    int saved = errno;
    __atomic_or_fetch(&gw_pending, (uint64_t)1 << signo, __ATOMIC_SEQ_CST);
    int fd = gw_wake_fd;
    if (fd >= 0) {
        char c = (char)signo;
        ssize_t r = write(fd, &c, 1);   // nonblocking pipe; a full pipe already means "wake up"
        (void)r;
    }
    errno = saved;
}

static const int gw_signals[] = { SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH };

void gw_signals_install(int wake_fd) {
    gw_wake_fd = wake_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gw_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof gw_signals / sizeof gw_signals[0]; i++) sigaction(gw_signals[i], &sa, NULL);
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void gw_signals_reset_to_default(void) {
    gw_wake_fd = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof gw_signals / sizeof gw_signals[0]; i++) sigaction(gw_signals[i], &sa, NULL);
    __atomic_store_n(&gw_pending, 0, __ATOMIC_SEQ_CST);
}

uint64_t gw_signals_take(void) { return __atomic_exchange_n(&gw_pending, 0, __ATOMIC_SEQ_CST); }

void gw_set_pdeathsig(int signo) { prctl(PR_SET_PDEATHSIG, signo); }

// Process titles the nginx way: overwrite the argv area (argv strings are contiguous) and
// also set the comm name (what `ps -o comm` and /proc/PID/comm show, 15 chars).
void gw_set_process_title(int argc, char **argv, const char *title) {
    if (argc > 0 && argv && argv[0]) {
        char *start = argv[0];
        char *end = argv[argc - 1] + strlen(argv[argc - 1]);
        size_t room = (size_t)(end - start);
        size_t n = strlen(title);
        if (n > room) n = room;
        memcpy(start, title, n);
        memset(start + n, 0, room - n + 1);
    }
    prctl(PR_SET_NAME, title, 0, 0, 0);
}
